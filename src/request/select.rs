//! Contract §6: `select`, the filters a scheduled cleanup finds its targets by.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::validate::{
    PRODUCT_ID_RULE, SOURCE_SERVER_RULE, WORKSPACE_RULE, account_id, id_list, is_source_server_id, is_workspace_id,
    object, only_members, optional_bool, string, tag_map,
};
use super::{Operation, ValidationError, kind, quote};

type Result<T> = std::result::Result<T, ValidationError>;

/// What a scheduled rule asks to be found. All filters are ANDed.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// Only these ids (WorkSpaces `ids`, MGN `sourceServerIDs`, Service Catalog `ids`).
    pub ids: Vec<String>,
    /// Every one of these tags must be present with this value.
    pub tags: BTreeMap<String, String>,
    /// Only targets whose `teardown:expires-at` tag has passed.
    pub expired: bool,
    pub filters: ServiceFilters,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ServiceFilters {
    Workspaces {
        directory_id: Option<String>,
        bundle_id: Option<String>,
        user_name: Option<String>,
        states: Vec<String>,
        idle_days: Option<u32>,
    },
    TargetInstances {
        lifecycle_states: Vec<String>,
        account_id: Option<String>,
    },
    ProvisionedProduct {
        product_id: Option<String>,
        provisioning_artifact_id: Option<String>,
        statuses: Vec<String>,
        older_than_days: Option<u32>,
        ignore_errors: Option<bool>,
        retain_physical_resources: Option<bool>,
        accept_language: Option<String>,
    },
}

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

pub(super) fn selection(operation: Operation, value: &Value) -> Result<Selection> {
    let map = object(value, "select")?;
    let allowed: &[&str] = match operation {
        Operation::TerminateWorkspaces => {
            &["ids", "directoryId", "bundleId", "userName", "states", "tags", "idleDays", "expired"]
        }
        Operation::TerminateTargetInstances => &["sourceServerIDs", "lifecycleStates", "tags", "accountID", "expired"],
        Operation::TerminateProvisionedProduct => &[
            "ids",
            "productId",
            "provisioningArtifactId",
            "statuses",
            "tags",
            "olderThanDays",
            "expired",
            "IgnoreErrors",
            "RetainPhysicalResources",
            "AcceptLanguage",
        ],
    };
    only_members(map, "select", allowed)?;
    let options = ["IgnoreErrors", "RetainPhysicalResources", "AcceptLanguage"];
    if !map.keys().any(|k| !options.contains(&k.as_str())) {
        return Err(ValidationError::new("select", "has no filter: an empty selection would select everything"));
    }

    let ids_member = if operation == Operation::TerminateTargetInstances { "sourceServerIDs" } else { "ids" };
    let ids = match (operation, map.get(ids_member)) {
        (_, None) => Vec::new(),
        (Operation::TerminateWorkspaces, Some(v)) => id_list(v, "select.ids", is_workspace_id, WORKSPACE_RULE)?,
        (Operation::TerminateTargetInstances, Some(v)) => {
            id_list(v, "select.sourceServerIDs", is_source_server_id, SOURCE_SERVER_RULE)?
        }
        (Operation::TerminateProvisionedProduct, Some(v)) => id_list(v, "select.ids", is_product_id, PRODUCT_ID_RULE)?,
    };
    let tags = map.get("tags").map(|v| tag_map(v, "select.tags")).transpose()?.unwrap_or_default();
    let expired = match map.get("expired") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(other) => {
            return Err(ValidationError::new("select.expired", format!("must be true or false, not {}", kind(other))));
        }
    };

    let filters = match operation {
        Operation::TerminateWorkspaces => ServiceFilters::Workspaces {
            directory_id: pattern(
                map,
                "directoryId",
                |s| prefixed(s, "d-", 8, 63, |b| b.is_ascii_hexdigit()),
                "^d-[0-9a-f]{8,63}$",
            )?,
            bundle_id: pattern(
                map,
                "bundleId",
                |s| prefixed(s, "wsb-", 8, 63, |b| b.is_ascii_alphanumeric()),
                "^wsb-[0-9a-z]{8,63}$",
            )?,
            user_name: pattern(map, "userName", |s| (1..=63).contains(&s.chars().count()), "1 to 63 characters")?,
            states: one_of_list(map, "states", WORKSPACE_STATES)?,
            idle_days: days(map, "idleDays")?,
        },
        Operation::TerminateTargetInstances => ServiceFilters::TargetInstances {
            lifecycle_states: one_of_list(map, "lifecycleStates", LIFECYCLE_STATES)?,
            account_id: map.get("accountID").map(|v| account_id(v, "select.accountID")).transpose()?,
        },
        Operation::TerminateProvisionedProduct => ServiceFilters::ProvisionedProduct {
            product_id: pattern(map, "productId", is_product_id, PRODUCT_ID_RULE)?,
            provisioning_artifact_id: pattern(map, "provisioningArtifactId", is_product_id, PRODUCT_ID_RULE)?,
            statuses: one_of_list(map, "statuses", PRODUCT_STATUSES)?,
            older_than_days: days(map, "olderThanDays")?,
            ignore_errors: optional_bool(map, "select", "IgnoreErrors")?,
            retain_physical_resources: optional_bool(map, "select", "RetainPhysicalResources")?,
            accept_language: pattern(map, "AcceptLanguage", |s| matches!(s, "en" | "jp" | "zh"), "one of en, jp, zh")?,
        },
    };
    Ok(Selection { ids, tags, expired, filters })
}

fn is_product_id(id: &str) -> bool {
    (1..=100).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn prefixed(s: &str, prefix: &str, min: usize, max: usize, ok: fn(&u8) -> bool) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| {
        (min..=max).contains(&rest.len()) && rest.bytes().all(|b| ok(&b) && !b.is_ascii_uppercase())
    })
}

fn pattern(map: &Map<String, Value>, member: &str, valid: impl Fn(&str) -> bool, rule: &str) -> Result<Option<String>> {
    let field = format!("select.{member}");
    let Some(value) = map.get(member) else { return Ok(None) };
    let s = string(value, &field)?;
    if !valid(s) {
        return Err(ValidationError::new(field, format!("{} does not match {rule}", quote(s))));
    }
    Ok(Some(s.to_owned()))
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
