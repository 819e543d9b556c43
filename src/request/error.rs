//! Why a request was refused.

use super::json::{cut_field, shorten};

/// Why a request was refused: the field's path, and the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// A stable code for the dead-letter record, so people can filter on it.
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::with_code("InvalidRequest", field, message)
    }

    pub(crate) fn with_code(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { code, field: cut_field(field.into()), message: shorten(message.into(), 2000) }
    }
}
