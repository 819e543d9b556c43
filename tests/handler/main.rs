//! The invocation with every AWS client replaced by an `aws-smithy-mocks` double:
//! one test binary, so the four SDK crates are linked once.
//!
//! - `scenarios`: behaviour read as scenarios over a small world of WorkSpaces,
//!   source servers and products (the `fixture` layer);
//! - by service, the exact calls made and refused and what each answer means:
//!   `workspaces`, `mgn`, `catalog`;
//! - by concern: `guards` (refusals that hold for every service), `deliveries`
//!   (redelivery, deadlines, FIFO), `dead_letters` (the record, published or not,
//!   replays), `follow_up` (checks and audit events), `places` (accounts, regions,
//!   fan-out), `chains` (who may send a check or child, what a child or a replay
//!   inherits), `scale` (calls in flight, lookups in one round);
//! - `corpus`: every bad input refused clearly and dead-lettered;
//! - `properties`: random batches, every id once, every record accounted for.

#[path = "../doubles/mod.rs"]
mod doubles;
mod fixture;

mod catalog;
mod chains;
mod corpus;
mod dead_letters;
mod deliveries;
mod follow_up;
mod guards;
mod mgn;
mod places;
mod properties;
mod scale;
mod scenarios;
mod shared;
mod workspaces;
