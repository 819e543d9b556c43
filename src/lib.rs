//! teardown: terminates WorkSpaces, MGN target instances and Service Catalog
//! provisioned products on request, and accounts for every one.
//!
//! Reading order, the way one delivery travels:
//! [`settings`] (read once at start) → [`decode`] (what arrived) → [`request`]
//! (is it a valid request) → [`handler`] (the invocation: resolve, execute, settle)
//! → [`guard`] (filters and guards, pure) → [`services`] (the AWS calls, one module
//! per service) → [`classify`] (what an AWS error means) → [`outcome`] (what each
//! request and target ends as) → [`deadletter`] (where failures go) → [`report`]
//! (what is answered and logged). Around them: [`wiring`] (the clients from the
//! environment), [`cli`] (the operator's command line), [`confirm`], [`audit`],
//! [`metrics`], [`request_queue`] (contract §7–§9), [`identity`] (whose checks and
//! fan-out children are honoured, contract §10.1).

pub mod audit;
mod batches;
pub mod classify;
pub mod cli;
pub mod confirm;
pub mod deadletter;
pub mod decode;
pub mod guard;
pub mod handler;
pub mod identity;
pub mod metrics;
pub mod outcome;
pub mod report;
pub mod request;
pub mod request_queue;
pub mod services;
pub mod settings;
pub mod wiring;
