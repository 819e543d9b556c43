//! teardown's pure domain: what arrived, whether it is a valid request, how each
//! target is judged, what it ends as, how a follow-up decides, and what is answered
//! and counted. No AWS SDK and no I/O: every function here is a computation on
//! values, unit-testable in microseconds (`cargo test -p teardown-core`).
//!
//! Reading order, the way one delivery travels: [`decode`] (what arrived) →
//! [`request`] (is it a valid request) → [`guard`] (filters and guards) →
//! [`outcome`] (what each request and target ends as) → [`confirm`] (the follow-up
//! of an accepted termination) → [`report`] and [`metrics`] (what is answered and
//! counted). [`codes`] lists every error code a dead-letter record can carry.

pub mod batches;
pub mod codes;
pub mod confirm;
pub mod decode;
pub mod guard;
pub mod lifecycle;
pub mod metrics;
pub mod outcome;
pub mod report;
pub mod request;
