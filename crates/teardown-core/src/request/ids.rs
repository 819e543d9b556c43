//! The rules the AWS API models put on ids, names and small values, each written
//! once and used by both `input` and `select` validation.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::error::ValidationError;
use super::json::{Result, join, kind, object, quote, string};

pub(crate) const WORKSPACE_RULE: &str = "does not match ^ws-[0-9a-z]{8,63}$";
pub(crate) const SOURCE_SERVER_RULE: &str = "does not match ^s-[0-9a-zA-Z]{17}$";
pub(crate) const PRODUCT_ID_RULE: &str = "does not match ^[a-zA-Z0-9_-]{1,100}$";
pub(crate) const TOKEN_RULE: &str = "does not match ^[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$";
pub(crate) const LANGUAGE_RULE: &str = "is not one of en, jp, zh";

pub(crate) fn is_workspace_id(id: &str) -> bool {
    id.strip_prefix("ws-").is_some_and(|rest| {
        (8..=63).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

pub(crate) fn is_source_server_id(id: &str) -> bool {
    id.strip_prefix("s-").is_some_and(|rest| rest.len() == 17 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

pub(crate) fn is_product_id(id: &str) -> bool {
    (1..=100).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn is_product_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The shape the Service Catalog model allows for a name-or-ARN:
/// `arn:partition:service:region:account:resource`, resource not starting with `/`.
pub(crate) fn is_arn(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("arn:") else {
        return false;
    };
    let mut parts = rest.splitn(5, ':');
    let segment = |p: Option<&str>, min: usize| {
        p.is_some_and(|p| {
            (min..=63).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        })
    };
    segment(parts.next(), 1)
        && segment(parts.next(), 0)
        && segment(parts.next(), 0)
        && segment(parts.next(), 0)
        && parts.next().is_some_and(|resource| {
            let len = resource.chars().count();
            (1..=1024).contains(&len) && !resource.starts_with('/') && !resource.chars().any(char::is_control)
        })
}

pub(crate) fn is_token(token: &str) -> bool {
    let bytes = token.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn is_language(s: &str) -> bool {
    matches!(s, "en" | "jp" | "zh")
}

pub(crate) fn account_id(value: &Value, path: &str) -> Result<String> {
    let account = string(value, path)?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValidationError::new(path, format!("{} is not exactly 12 digits", quote(account))));
    }
    Ok(account.to_owned())
}

/// Tags as the AWS APIs bound them: at most 50; keys 1 to 256 characters, values at most 256.
pub(crate) fn tag_map(value: &Value, path: &str) -> Result<BTreeMap<String, String>> {
    tag_entries(value, path, |value, field| tag_value(value, field).map(str::to_owned))
}

/// A map of at most 50 tag keys, each checked, with what `each` makes of its value
/// (given the value and its field).
pub(crate) fn tag_entries<V>(
    value: &Value,
    path: &str,
    mut each: impl FnMut(&Value, &str) -> Result<V>,
) -> Result<BTreeMap<String, V>> {
    let tag_map = object(value, path)?;
    if tag_map.len() > 50 {
        return Err(ValidationError::new(path, format!("has {} tags, more than 50", tag_map.len())));
    }
    let mut tags = BTreeMap::new();
    for (key, value) in tag_map {
        let field = join(path, key);
        tag_key(key, &field)?;
        tags.insert(key.clone(), each(value, &field)?);
    }
    Ok(tags)
}

/// A tag key: 1 to 256 characters.
pub(crate) fn tag_key(key: &str, field: &str) -> Result<()> {
    let key_len = key.chars().count();
    if key_len == 0 || key_len > 256 {
        return Err(ValidationError::new(field, format!("key is {key_len} characters, must be 1 to 256")));
    }
    Ok(())
}

/// A tag value: a string of at most 256 characters.
pub(crate) fn tag_value<'a>(value: &'a Value, field: &str) -> Result<&'a str> {
    let value = string(value, field)?;
    let value_len = value.chars().count();
    if value_len > 256 {
        return Err(ValidationError::new(field, format!("value is {value_len} characters, more than 256")));
    }
    Ok(value)
}

/// A non-empty list of ids, each checked by `valid` (whose rule `rule` names), duplicates removed.
pub(crate) fn id_list(value: &Value, path: &str, valid: fn(&str) -> bool, rule: &str) -> Result<Vec<String>> {
    let list =
        value.as_array().ok_or_else(|| ValidationError::new(path, format!("must be a list, not {}", kind(value))))?;
    if list.is_empty() {
        return Err(ValidationError::new(path, "must name at least one target"));
    }
    let mut ids = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let field = format!("{path}[{i}]");
        let id = string(item, &field)?;
        if !valid(id) {
            return Err(ValidationError::new(field, format!("{} {rule}", quote(id))));
        }
        ids.push(id.to_owned());
    }
    Ok(dedup(ids))
}

pub(crate) fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.into_iter().filter(|id| seen.insert(id.clone())).collect()
}

/// An AWS region name, as `^[a-z]{2}(-[a-z]+)+-\d$`.
pub(crate) fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts.last().is_some_and(|d| d.len() == 1 && d.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) const REGION_RULE: &str = "is not a region name (^[a-z]{2}(-[a-z]+)+-\\d$)";

/// A non-empty list of account ids, duplicates removed.
pub(crate) fn account_list(value: &Value, path: &str) -> Result<Vec<String>> {
    let list =
        value.as_array().ok_or_else(|| ValidationError::new(path, format!("must be a list, not {}", kind(value))))?;
    if list.is_empty() {
        return Err(ValidationError::new(path, "must name at least one account"));
    }
    let ids =
        list.iter().enumerate().map(|(i, v)| account_id(v, &format!("{path}[{i}]"))).collect::<Result<Vec<_>>>()?;
    Ok(dedup(ids))
}
