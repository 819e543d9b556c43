//! teardown: terminates WorkSpaces, MGN target instances and Service Catalog
//! provisioned products on request, and accounts for every one.
//!
//! Three crates, dependencies pointing one way (ARCHITECTURE.md):
//! - `teardown-core` (crates/teardown-core): pure: decoding, requests, guards,
//!   outcomes, follow-up decisions, reports, metrics;
//! - `teardown-aws` (crates/teardown-aws): the AWS adapters, one seam per service;
//! - this crate: the entry points. [`handler`] (one invocation: vet, validate,
//!   resolve, execute, settle, publish), [`cli`] (the operator's command line),
//!   [`wiring`] (the clients from the environment) and [`settings`].

pub mod cli;
pub mod handler;
pub mod settings;
pub mod wiring;

pub use teardown_aws::{audit, classify, deadletter, identity, request_queue, services, state, target_items};
pub use teardown_core::{codes, confirm, decode, guard, lifecycle, metrics, outcome, report, request};
