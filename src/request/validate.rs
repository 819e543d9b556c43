//! Contract §1: turns one JSON request into a [`Request`], or says exactly which
//! field breaks which rule. Unknown members are refused at every depth, because
//! a misspelt member (`WorkspaceID`) must never quietly terminate nothing — or
//! the wrong thing.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use super::{
    Operation, ProductRef, ProvisionedProductInput, Request, Scope, TargetInstancesInput, Targets, WorkspacesInput,
};

/// Bounds that come from settings rather than from the AWS model.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_targets: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_targets: 100 }
    }
}

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

    /// Field paths are built from the payload's own keys, so they are cut short like
    /// quoted values: a 1 MiB member name must not make a 1 MiB error.
    pub(crate) fn with_code(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        let field: String = field.into();
        let field =
            if field.chars().count() > 200 { field.chars().take(200).collect::<String>() + "…" } else { field };
        ValidationError { code, field, message: shorten(message.into(), 2000) }
    }
}

type Result<T> = std::result::Result<T, ValidationError>;

pub fn validate(value: &Value, limits: Limits) -> Result<Request> {
    let root = object(value, "request")?;
    only_members(root, "", &["operation", "input", "select", "dryRun"])?;

    let operation = match root.get("operation") {
        None => return Err(ValidationError::new("operation", "is required")),
        Some(Value::String(name)) => Operation::parse(name).ok_or_else(|| {
            ValidationError::new(
                "operation",
                format!(
                    "{} is not one of TerminateWorkspaces, TerminateTargetInstances, TerminateProvisionedProduct",
                    quote(name)
                ),
            )
        })?,
        Some(other) => return Err(ValidationError::new("operation", format!("must be a string, not {}", kind(other)))),
    };

    let dry_run = match root.get("dryRun") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(ValidationError::new("dryRun", format!("must be true or false, not {}", kind(other))));
        }
    };

    let input = match (root.get("input"), root.get("select")) {
        (Some(_), Some(_)) => {
            return Err(ValidationError::new("input", "and select are exclusive: give exactly one"));
        }
        (None, None) => return Err(ValidationError::new("input", "is required (or select)")),
        (None, Some(select)) => {
            let selection = super::select::selection(operation, select)?;
            return Ok(Request { operation, scope: Scope::Select(selection), dry_run });
        }
        (Some(input), None) => input,
    };

    let targets = match operation {
        Operation::TerminateWorkspaces => Targets::Workspaces(workspaces(input)?),
        Operation::TerminateTargetInstances => Targets::TargetInstances(target_instances(input)?),
        Operation::TerminateProvisionedProduct => Targets::ProvisionedProduct(provisioned_product(input)?),
    };

    let count = targets.ids().len();
    if count > limits.max_targets {
        return Err(ValidationError {
            code: "TooManyTargets",
            field: "input".into(),
            message: format!("names {count} targets, more than MAX_TARGETS ({})", limits.max_targets),
        });
    }
    Ok(Request { operation, scope: Scope::Named(targets), dry_run })
}

fn workspaces(input: &Value) -> Result<WorkspacesInput> {
    let map = object(input, "input")?;
    only_members(map, "input", &["TerminateWorkspaceRequests"])?;
    let list = required_array(map, "input", "TerminateWorkspaceRequests")?;
    let mut ids = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let path = format!("input.TerminateWorkspaceRequests[{i}]");
        let entry = object(item, &path)?;
        only_members(entry, &path, &["WorkspaceId"])?;
        let field = format!("{path}.WorkspaceId");
        let id = required_string(entry, &path, "WorkspaceId")?;
        if !is_workspace_id(id) {
            return Err(ValidationError::new(field, format!("{} does not match ^ws-[0-9a-z]{{8,63}}$", quote(id))));
        }
        ids.push(id.to_owned());
    }
    Ok(WorkspacesInput { workspace_ids: dedup(ids) })
}

fn target_instances(input: &Value) -> Result<TargetInstancesInput> {
    let map = object(input, "input")?;
    only_members(map, "input", &["sourceServerIDs", "tags", "accountID"])?;
    let source_server_ids = match map.get("sourceServerIDs") {
        Some(list) => id_list(list, "input.sourceServerIDs", is_source_server_id, SOURCE_SERVER_RULE)?,
        None => return Err(ValidationError::new("input.sourceServerIDs", "is required")),
    };
    let tags = map.get("tags").map(|v| tag_map(v, "input.tags")).transpose()?.unwrap_or_default();
    let account_id = map.get("accountID").map(|v| account_id(v, "input.accountID")).transpose()?;
    Ok(TargetInstancesInput { source_server_ids, tags, account_id })
}

fn provisioned_product(input: &Value) -> Result<ProvisionedProductInput> {
    let map = object(input, "input")?;
    only_members(
        map,
        "input",
        &[
            "ProvisionedProductId",
            "ProvisionedProductName",
            "TerminateToken",
            "IgnoreErrors",
            "RetainPhysicalResources",
            "AcceptLanguage",
        ],
    )?;

    let product = match (map.get("ProvisionedProductId"), map.get("ProvisionedProductName")) {
        (Some(_), Some(_)) => {
            return Err(ValidationError::new(
                "input.ProvisionedProductId",
                "and ProvisionedProductName are exclusive: give exactly one",
            ));
        }
        (None, None) => {
            return Err(ValidationError::new("input.ProvisionedProductId", "is required (or ProvisionedProductName)"));
        }
        (Some(id), None) => {
            let id = string(id, "input.ProvisionedProductId")?;
            let len = id.chars().count();
            if !(1..=100).contains(&len) || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return Err(ValidationError::new(
                    "input.ProvisionedProductId",
                    format!("{} does not match ^[a-zA-Z0-9_-]{{1,100}}$", quote(id)),
                ));
            }
            ProductRef::Id(id.to_owned())
        }
        (None, Some(name)) => {
            let name = string(name, "input.ProvisionedProductName")?;
            if !is_product_name(name) && !is_arn(name) {
                return Err(ValidationError::new(
                    "input.ProvisionedProductName",
                    format!(
                        "{} is neither a name matching ^[a-zA-Z0-9][a-zA-Z0-9._-]{{0,127}}$ nor an ARN",
                        quote(name)
                    ),
                ));
            }
            ProductRef::Name(name.to_owned())
        }
    };

    let terminate_token = match map.get("TerminateToken") {
        None => None,
        Some(value) => {
            let token = string(value, "input.TerminateToken")?;
            if !is_token(token) {
                return Err(ValidationError::new(
                    "input.TerminateToken",
                    format!("{} does not match ^[a-zA-Z0-9][a-zA-Z0-9_-]{{0,127}}$", quote(token)),
                ));
            }
            Some(token.to_owned())
        }
    };

    let accept_language = match map.get("AcceptLanguage") {
        None => None,
        Some(value) => {
            let lang = string(value, "input.AcceptLanguage")?;
            if !matches!(lang, "en" | "jp" | "zh") {
                return Err(ValidationError::new(
                    "input.AcceptLanguage",
                    format!("{} is not one of en, jp, zh", quote(lang)),
                ));
            }
            Some(lang.to_owned())
        }
    };

    Ok(ProvisionedProductInput {
        product,
        terminate_token,
        ignore_errors: optional_bool(map, "input", "IgnoreErrors")?,
        retain_physical_resources: optional_bool(map, "input", "RetainPhysicalResources")?,
        accept_language,
    })
}

/// Tags as the AWS APIs bound them: at most 50; keys 1 to 256 characters, values at most 256.
pub(super) fn tag_map(value: &Value, path: &str) -> Result<BTreeMap<String, String>> {
    let tag_map = object(value, path)?;
    if tag_map.len() > 50 {
        return Err(ValidationError::new(path, format!("has {} tags, more than 50", tag_map.len())));
    }
    let mut tags = BTreeMap::new();
    for (key, value) in tag_map {
        let field = join(path, key);
        let key_len = key.chars().count();
        if key_len == 0 || key_len > 256 {
            return Err(ValidationError::new(field, format!("key is {key_len} characters, must be 1 to 256")));
        }
        let value = string(value, &field)?;
        let value_len = value.chars().count();
        if value_len > 256 {
            return Err(ValidationError::new(field, format!("value is {value_len} characters, more than 256")));
        }
        tags.insert(key.clone(), value.to_owned());
    }
    Ok(tags)
}

pub(super) fn account_id(value: &Value, path: &str) -> Result<String> {
    let account = string(value, path)?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValidationError::new(path, format!("{} is not exactly 12 digits", quote(account))));
    }
    Ok(account.to_owned())
}

/// A non-empty list of ids, each checked by `valid` (whose pattern `rule` names), duplicates removed.
pub(super) fn id_list(value: &Value, path: &str, valid: fn(&str) -> bool, rule: &str) -> Result<Vec<String>> {
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
            return Err(ValidationError::new(field, format!("{} does not match {rule}", quote(id))));
        }
        ids.push(id.to_owned());
    }
    Ok(dedup(ids))
}

pub(crate) fn is_workspace_id(id: &str) -> bool {
    id.strip_prefix("ws-").is_some_and(|rest| {
        (8..=63).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

pub(super) const WORKSPACE_RULE: &str = "^ws-[0-9a-z]{8,63}$";
pub(super) const SOURCE_SERVER_RULE: &str = "^s-[0-9a-zA-Z]{17}$";
pub(super) const PRODUCT_ID_RULE: &str = "^[a-zA-Z0-9_-]{1,100}$";

pub(crate) fn is_source_server_id(id: &str) -> bool {
    id.strip_prefix("s-").is_some_and(|rest| rest.len() == 17 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn is_product_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The shape the Service Catalog model allows for a name-or-ARN:
/// `arn:partition:service:region:account:resource`, resource not starting with `/`.
fn is_arn(s: &str) -> bool {
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

fn is_token(token: &str) -> bool {
    let bytes = token.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(super) fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.into_iter().filter(|id| seen.insert(id.clone())).collect()
}

/// `path.member`, or `path["member"]` when the member name is not a plain word
/// (empty, spaces, dots), so that every error names a field a person can find.
pub(super) fn join(path: &str, member: &str) -> String {
    let plain = !member.is_empty() && member.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'));
    match (plain, path.is_empty()) {
        (true, true) => member.to_owned(),
        (true, false) => format!("{path}.{member}"),
        (false, _) => format!("{path}[{}]", quote(member)),
    }
}

pub(super) fn only_members(map: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<()> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(ValidationError::new(
            join(path, unknown),
            format!("is not a known member (expected one of: {})", allowed.join(", ")),
        )),
    }
}

pub(super) fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| ValidationError::new(path, format!("must be a JSON object, not {}", kind(value))))
}

pub(super) fn string<'a>(value: &'a Value, path: &str) -> Result<&'a str> {
    value.as_str().ok_or_else(|| ValidationError::new(path, format!("must be a string, not {}", kind(value))))
}

fn required_string<'a>(map: &'a Map<String, Value>, path: &str, member: &str) -> Result<&'a str> {
    let field = join(path, member);
    map.get(member).ok_or_else(|| ValidationError::new(&field, "is required")).and_then(|v| string(v, &field))
}

fn required_array<'a>(map: &'a Map<String, Value>, path: &str, member: &str) -> Result<&'a Vec<Value>> {
    let field = join(path, member);
    let value = map.get(member).ok_or_else(|| ValidationError::new(&field, "is required"))?;
    let list =
        value.as_array().ok_or_else(|| ValidationError::new(&field, format!("must be a list, not {}", kind(value))))?;
    if list.is_empty() {
        return Err(ValidationError::new(field, "must name at least one target"));
    }
    Ok(list)
}

pub(super) fn optional_bool(map: &Map<String, Value>, path: &str, member: &str) -> Result<Option<bool>> {
    match map.get(member) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => {
            Err(ValidationError::new(join(path, member), format!("must be true or false, not {}", kind(other))))
        }
    }
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

/// Quotes a value from outside for an error message, cut short so that a 1 MiB
/// id cannot turn one error line into a megabyte of log.
fn shorten(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}… ({} characters)", s.chars().count())
}

pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}… ({} characters)", s.chars().count())
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
