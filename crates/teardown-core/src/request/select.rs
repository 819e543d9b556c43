//! docs/reference.md, "Selection": `select`, the filters a scheduled cleanup finds its targets by.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::ValidationError;
use super::ids::{
    LANGUAGE_RULE, PRODUCT_ID_RULE, SOURCE_SERVER_RULE, WORKSPACE_RULE, account_id, id_list, is_language,
    is_product_id, is_source_server_id, is_workspace_id, tag_entries, tag_key, tag_value,
};
use super::json::{Result, kind, object, only_members, optional_bool, optional_pattern, quote, string};
use super::types::{
    Operation, ProvisionedProductFilters, Scope, Selection, Target, TargetInstancesFilters, WorkspacesFilters,
};

const WORKSPACE_STATES: &[&str] = &[
    "PENDING",
    "AVAILABLE",
    "IMPAIRED",
    "UNHEALTHY",
    "REBOOTING",
    "STARTING",
    "REBUILDING",
    "RESTORING",
    "MAINTENANCE",
    "ADMIN_MAINTENANCE",
    "TERMINATING",
    "TERMINATED",
    "SUSPENDED",
    "UPDATING",
    "STOPPING",
    "STOPPED",
    "ERROR",
];
const LIFECYCLE_STATES: &[&str] = &[
    "STOPPED",
    "NOT_READY",
    "READY_FOR_TEST",
    "TESTING",
    "READY_FOR_CUTOVER",
    "CUTTING_OVER",
    "CUTOVER",
    "DISCONNECTED",
    "DISCOVERED",
    "PENDING_INSTALLATION",
];
const PRODUCT_STATUSES: &[&str] = &["AVAILABLE", "UNDER_CHANGE", "TAINTED", "ERROR", "PLAN_IN_PROGRESS"];
/// Members that shape each termination rather than choose targets.
const OPTIONS: [&str; 3] = ["IgnoreErrors", "RetainPhysicalResources", "AcceptLanguage"];

const RUNNING_MODES: &[&str] = &["ALWAYS_ON", "AUTO_STOP", "MANUAL"];
/// The most values one tag key may list in a selection.
const MAX_TAG_VALUES: usize = 20;
/// The longest notice a selection may give (docs/reference.md, "Notice").
pub const MAX_NOTICE_DAYS: u64 = 90;

/// A selection, and the notice its request gives in place of terminating (`notice`,
/// a member of the request beside `select`).
pub(super) fn selection(operation: Operation, value: &Value, notice: Option<&Value>) -> Result<Target> {
    let map = object(value, "select")?;
    let allowed: &[&str] = match operation {
        Operation::TerminateWorkspaces => &[
            "ids",
            "directoryId",
            "bundleId",
            "userName",
            "states",
            "runningModes",
            "tags",
            "tagsAbsent",
            "idleDays",
            "expired",
        ],
        Operation::TerminateTargetInstances => {
            &["sourceServerIDs", "lifecycleStates", "tags", "tagsAbsent", "accountID", "expired"]
        }
        Operation::TerminateProvisionedProduct => &[
            "ids",
            "productId",
            "provisioningArtifactId",
            "statuses",
            "tags",
            "tagsAbsent",
            "olderThanDays",
            "expired",
            "IgnoreErrors",
            "RetainPhysicalResources",
            "AcceptLanguage",
        ],
    };
    only_members(map, "select", allowed)?;
    if !map.keys().any(|k| !OPTIONS.contains(&k.as_str())) {
        return Err(ValidationError::new("select", "has no filter: an empty selection would select everything"));
    }
    let ids = match operation {
        Operation::TerminateWorkspaces => ids(map, "ids", is_workspace_id, WORKSPACE_RULE)?,
        Operation::TerminateTargetInstances => ids(map, "sourceServerIDs", is_source_server_id, SOURCE_SERVER_RULE)?,
        Operation::TerminateProvisionedProduct => ids(map, "ids", is_product_id, PRODUCT_ID_RULE)?,
    };
    let tags = map.get("tags").map(|v| tag_choices(v, "select.tags")).transpose()?.unwrap_or_default();
    let tags_absent = map.get("tagsAbsent").map(|v| tag_keys(v, "select.tagsAbsent")).transpose()?.unwrap_or_default();
    let expired = match map.get("expired") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(other) => {
            return Err(ValidationError::new("select.expired", format!("must be true or false, not {}", kind(other))));
        }
    };
    let notice = notice.map(|value| notice_days(operation, value)).transpose()?;
    let common = Common { ids, tags, tags_absent, expired, notice };

    Ok(match operation {
        Operation::TerminateWorkspaces => {
            let filters = WorkspacesFilters {
                directory_id: optional_pattern(
                    map,
                    "select",
                    "directoryId",
                    |s| prefixed(s, "d-", 8, 63, |b| b.is_ascii_hexdigit()),
                    "does not match ^d-[0-9a-f]{8,63}$",
                )?,
                bundle_id: optional_pattern(
                    map,
                    "select",
                    "bundleId",
                    |s| prefixed(s, "wsb-", 8, 63, |b| b.is_ascii_alphanumeric()),
                    "does not match ^wsb-[0-9a-z]{8,63}$",
                )?,
                user_name: optional_pattern(
                    map,
                    "select",
                    "userName",
                    |s| (1..=63).contains(&s.chars().count()),
                    "does not match 1 to 63 characters",
                )?,
                states: one_of_list(map, "states", WORKSPACE_STATES)?,
                running_modes: one_of_list(map, "runningModes", RUNNING_MODES)?,
                idle_days: days(map, "idleDays")?,
            };
            Target::Workspaces(Scope::Select(built(common, filters)))
        }
        Operation::TerminateTargetInstances => {
            let filters = TargetInstancesFilters {
                lifecycle_states: one_of_list(map, "lifecycleStates", LIFECYCLE_STATES)?,
                account_id: map.get("accountID").map(|v| account_id(v, "select.accountID")).transpose()?,
            };
            Target::TargetInstances(Scope::Select(built(common, filters)))
        }
        Operation::TerminateProvisionedProduct => {
            let filters = ProvisionedProductFilters {
                product_id: optional_pattern(map, "select", "productId", is_product_id, PRODUCT_ID_RULE)?,
                provisioning_artifact_id: optional_pattern(
                    map,
                    "select",
                    "provisioningArtifactId",
                    is_product_id,
                    PRODUCT_ID_RULE,
                )?,
                statuses: one_of_list(map, "statuses", PRODUCT_STATUSES)?,
                older_than_days: days(map, "olderThanDays")?,
                ignore_errors: optional_bool(map, "select", "IgnoreErrors")?,
                retain_physical_resources: optional_bool(map, "select", "RetainPhysicalResources")?,
                accept_language: optional_pattern(map, "select", "AcceptLanguage", is_language, LANGUAGE_RULE)?,
            };
            Target::ProvisionedProduct(Scope::Select(built(common, filters)))
        }
    })
}

/// The members every service's selection has.
struct Common {
    ids: Vec<String>,
    tags: BTreeMap<String, Vec<String>>,
    tags_absent: Vec<String>,
    expired: bool,
    notice: Option<u32>,
}

fn built<F>(Common { ids, tags, tags_absent, expired, notice }: Common, filters: F) -> Selection<F> {
    Selection { ids, tags, tags_absent, expired, notice, filters }
}

/// `"notice": {"days": N}`, 1..90. Service Catalog cannot take one: tagging a
/// provisioned product means updating its stack.
fn notice_days(operation: Operation, value: &Value) -> Result<u32> {
    if operation == Operation::TerminateProvisionedProduct {
        return Err(ValidationError::new(
            "notice",
            "is not possible for TerminateProvisionedProduct: Service Catalog tags a provisioned product only by \
             updating its stack; set the teardown:expires-at tag when provisioning, and select with expired",
        ));
    }
    let map = object(value, "notice")?;
    only_members(map, "notice", &["days"])?;
    match map.get("days") {
        None => Err(ValidationError::new("notice.days", "is required")),
        Some(days) => match days.as_u64() {
            Some(n @ 1..=MAX_NOTICE_DAYS) => Ok(n as u32),
            _ => {
                let shown = if days.is_number() { days.to_string() } else { kind(days).to_owned() };
                Err(ValidationError::new(
                    "notice.days",
                    format!("must be a whole number of days from 1 to {MAX_NOTICE_DAYS}, not {shown}"),
                ))
            }
        },
    }
}

/// `tags`: each key with one value, or a list of values of which the tag must hold one.
fn tag_choices(value: &Value, path: &str) -> Result<BTreeMap<String, Vec<String>>> {
    tag_entries(value, path, |value, field| {
        let Value::Array(list) = value else { return Ok(vec![tag_value(value, field)?.to_owned()]) };
        if list.is_empty() {
            return Err(ValidationError::new(field, "must name at least one value"));
        }
        // The tag index takes at most 20 values for one key.
        if list.len() > MAX_TAG_VALUES {
            return Err(ValidationError::new(
                field,
                format!("names {} values, more than {MAX_TAG_VALUES}", list.len()),
            ));
        }
        let mut values: Vec<String> = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let v = tag_value(item, &format!("{field}[{i}]"))?;
            if !values.iter().any(|known| known == v) {
                values.push(v.to_owned());
            }
        }
        Ok(values)
    })
}

/// `tagsAbsent`: a non-empty list of tag keys.
fn tag_keys(value: &Value, path: &str) -> Result<Vec<String>> {
    let list =
        value.as_array().ok_or_else(|| ValidationError::new(path, format!("must be a list, not {}", kind(value))))?;
    if list.is_empty() {
        return Err(ValidationError::new(path, "must name at least one tag key"));
    }
    let mut keys: Vec<String> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let field = format!("{path}[{i}]");
        let key = string(item, &field)?;
        tag_key(key, &field)?;
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_owned());
        }
    }
    Ok(keys)
}

fn ids(map: &Map<String, Value>, member: &str, valid: fn(&str) -> bool, rule: &str) -> Result<Vec<String>> {
    match map.get(member) {
        None => Ok(Vec::new()),
        Some(v) => id_list(v, &format!("select.{member}"), valid, rule),
    }
}

fn prefixed(s: &str, prefix: &str, min: usize, max: usize, ok: fn(&u8) -> bool) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| {
        (min..=max).contains(&rest.len()) && rest.bytes().all(|b| ok(&b) && !b.is_ascii_uppercase())
    })
}

fn one_of_list(map: &Map<String, Value>, member: &str, allowed: &[&str]) -> Result<Vec<String>> {
    let field = format!("select.{member}");
    let Some(value) = map.get(member) else { return Ok(Vec::new()) };
    let list =
        value.as_array().ok_or_else(|| ValidationError::new(&field, format!("must be a list, not {}", kind(value))))?;
    if list.is_empty() {
        return Err(ValidationError::new(field, "must name at least one value"));
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{field}[{i}]");
            let s = string(item, &path)?;
            if allowed.contains(&s) {
                Ok(s.to_owned())
            } else {
                Err(ValidationError::new(path, format!("{} is not one of {}", quote(s), allowed.join(", "))))
            }
        })
        .collect()
}

fn days(map: &Map<String, Value>, member: &str) -> Result<Option<u32>> {
    let field = format!("select.{member}");
    match map.get(member) {
        None => Ok(None),
        Some(value) => match value.as_u64() {
            Some(n @ 1..=3650) => Ok(Some(n as u32)),
            _ => {
                let shown = if value.is_number() { value.to_string() } else { kind(value).to_owned() };
                Err(ValidationError::new(field, format!("must be a whole number of days from 1 to 3650, not {shown}")))
            }
        },
    }
}
