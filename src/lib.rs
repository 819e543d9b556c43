//! teardown: terminates WorkSpaces, MGN target instances and Service Catalog
//! provisioned products on request, and accounts for every one.
//!
//! Reading order: [`decode`] (what arrived) → [`request`] (is it valid) →
//! [`handler`] (the invocation) → [`services`] (the AWS calls) →
//! [`deadletter`] (where failures go) → [`report`] (what is answered and logged).

pub mod deadletter;
pub mod decode;
pub mod guard;
pub mod handler;
pub mod outcome;
pub mod report;
pub mod request;
pub mod services;
pub mod settings;
