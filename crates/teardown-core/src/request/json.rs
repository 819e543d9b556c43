//! Walking a JSON request: typed reads that fail with the path of the field, and
//! the quoting that keeps an error message short whatever the payload holds.

use serde_json::{Map, Value};

use super::error::ValidationError;
pub(crate) use super::error::{cut_field, shorten};

pub(crate) type Result<T> = std::result::Result<T, ValidationError>;

/// `path.member`, or `path["member"]` when the member name is not a plain word
/// (empty, spaces, dots), so that every error names a field a person can find.
pub(crate) fn join(path: &str, member: &str) -> String {
    let plain = !member.is_empty() && member.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'));
    match (plain, path.is_empty()) {
        (true, true) => member.to_owned(),
        (true, false) => format!("{path}.{member}"),
        (false, _) => format!("{path}[{}]", quote(member)),
    }
}

pub(crate) fn only_members(map: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<()> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(ValidationError::new(
            join(path, unknown),
            format!("is not a known member (expected one of: {})", allowed.join(", ")),
        )),
    }
}

pub(crate) fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| ValidationError::new(path, format!("must be a JSON object, not {}", kind(value))))
}

pub(crate) fn string<'a>(value: &'a Value, path: &str) -> Result<&'a str> {
    value.as_str().ok_or_else(|| ValidationError::new(path, format!("must be a string, not {}", kind(value))))
}

pub(crate) fn required_string<'a>(map: &'a Map<String, Value>, path: &str, member: &str) -> Result<&'a str> {
    let field = join(path, member);
    map.get(member).ok_or_else(|| ValidationError::new(&field, "is required")).and_then(|v| string(v, &field))
}

pub(crate) fn required_array<'a>(map: &'a Map<String, Value>, path: &str, member: &str) -> Result<&'a Vec<Value>> {
    let field = join(path, member);
    let value = map.get(member).ok_or_else(|| ValidationError::new(&field, "is required"))?;
    let list =
        value.as_array().ok_or_else(|| ValidationError::new(&field, format!("must be a list, not {}", kind(value))))?;
    if list.is_empty() {
        return Err(ValidationError::new(field, "must name at least one target"));
    }
    Ok(list)
}

pub(crate) fn optional_bool(map: &Map<String, Value>, path: &str, member: &str) -> Result<Option<bool>> {
    match map.get(member) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => {
            Err(ValidationError::new(join(path, member), format!("must be true or false, not {}", kind(other))))
        }
    }
}

/// An optional string member that must satisfy `valid` (whose rule `rule` names).
pub(crate) fn optional_pattern(
    map: &Map<String, Value>,
    path: &str,
    member: &str,
    valid: impl Fn(&str) -> bool,
    rule: &str,
) -> Result<Option<String>> {
    let field = join(path, member);
    let Some(value) = map.get(member) else { return Ok(None) };
    let s = string(value, &field)?;
    if !valid(s) {
        return Err(ValidationError::new(field, format!("{} {rule}", quote(s))));
    }
    Ok(Some(s.to_owned()))
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Quotes a value from outside for an error message, cut short.
pub fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}… ({} characters)", s.chars().count())
    }
}
