//! Why a request was refused.

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

    pub fn with_code(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { code, field: cut_field(field.into()), message: shorten(message.into(), 2000) }
    }
}

/// Cuts a message built from outside input, so that a 1 MiB id cannot turn one
/// error line into a megabyte of log.
pub(crate) fn shorten(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}… ({} characters)", s.chars().count())
}

/// A field path built from the payload's own keys, cut short like quoted values: a
/// 1 MiB member name must not make a 1 MiB error.
pub(crate) fn cut_field(field: String) -> String {
    if field.chars().count() > 200 { field.chars().take(200).collect::<String>() + "…" } else { field }
}
