//! docs/reference.md, "A request" and "Selection": what one request asks for, and whether it may.
//!
//! Everything here is pure: no SDK types, no I/O. The decoder hands JSON in; the
//! handler gets typed requests out, and the dead-letter record's `retryRequest`
//! is rendered back from them.

mod error;
mod ids;
pub mod json;
mod retry;
mod select;
mod types;
mod validate;

pub use error::ValidationError;
pub use retry::retry_request;
pub use types::{
    FanOut, Operation, ProductRef, ProvisionedProductFilters, ProvisionedProductInput, Request, Scope, Selection,
    Target, TargetInstancesFilters, TargetInstancesInput, WorkspacesFilters, WorkspacesInput,
};
pub use validate::{Limits, validate};
