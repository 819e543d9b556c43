//! The invocation with every AWS client replaced by an `aws-smithy-mocks` double:
//! one test binary, so the four SDK crates are linked once.
//!
//! - `scenarios`: behaviour read as scenarios over a small world of WorkSpaces,
//!   source servers and products (the `fixture` layer);
//! - `calls`: the exact calls made, how answers map to outcomes, what is dead-lettered;
//! - `chains`: the links between messages: who may send a check or a fan-out child,
//!   what a child or a replay inherits, tokens without a message id;
//! - `corpus`: every bad input refused clearly and dead-lettered;
//! - `properties`: random batches, every id once, every record accounted for.

#[path = "../doubles/mod.rs"]
mod doubles;
mod fixture;

mod calls;
mod chains;
mod corpus;
mod follow_up;
mod places;
mod properties;
mod scale;
mod scenarios;
