//! docs/reference.md, "A request": turns one JSON request into a [`Request`], or says exactly which
//! field breaks which rule. Unknown members are refused at every depth, because
//! a misspelt member (`WorkspaceID`) must never quietly terminate nothing — or
//! the wrong thing.

use serde_json::Value;

use super::error::ValidationError;
use super::ids::{
    LANGUAGE_RULE, PRODUCT_ID_RULE, REGION_RULE, SOURCE_SERVER_RULE, TOKEN_RULE, WORKSPACE_RULE, account_id,
    account_list, dedup, id_list, is_arn, is_language, is_product_id, is_product_name, is_region, is_source_server_id,
    is_token, is_workspace_id, tag_map,
};
use super::json::{
    Result, kind, object, only_members, optional_bool, optional_pattern, quote, required_array, required_string, string,
};
use super::select::selection;
use super::types::{
    FanOut, Operation, ProductRef, ProvisionedProductInput, Request, Scope, Target, TargetInstancesInput,
    WorkspacesInput,
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

pub fn validate(value: &Value, limits: Limits) -> Result<Request> {
    let root = object(value, "request")?;
    only_members(
        root,
        "",
        &["operation", "input", "select", "notice", "dryRun", "account", "region", "accounts", "regions", "origin"],
    )?;

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

    let place = place(root)?;
    let input = match (root.get("input"), root.get("select")) {
        (Some(_), Some(_)) => {
            return Err(ValidationError::new("input", "and select are exclusive: give exactly one"));
        }
        (None, None) => return Err(ValidationError::new("input", "is required (or select)")),
        (None, Some(select)) => {
            let (account, region, fan_out, origin) = place;
            let target = selection(operation, select, root.get("notice"))?;
            return Ok(Request { target, dry_run, account, region, fan_out, origin });
        }
        (Some(_), None) if root.contains_key("notice") => {
            return Err(ValidationError::new(
                "notice",
                "is given only with select: a notice tags what a selection finds, in place of terminating it",
            ));
        }
        (Some(input), None) => input,
    };

    let target = match operation {
        Operation::TerminateWorkspaces => Target::Workspaces(Scope::Named(workspaces(input)?)),
        Operation::TerminateTargetInstances => Target::TargetInstances(Scope::Named(target_instances(input)?)),
        Operation::TerminateProvisionedProduct => Target::ProvisionedProduct(Scope::Named(provisioned_product(input)?)),
    };
    let (account, region, fan_out, origin) = place;
    let request = Request { target, dry_run, account, region, fan_out, origin };

    let count = request.named_ids().map_or(0, |ids| ids.len());
    if count > limits.max_targets {
        return Err(ValidationError::with_code(
            "TooManyTargets",
            "input",
            format!("names {count} targets, more than MAX_TARGETS ({})", limits.max_targets),
        ));
    }
    Ok(request)
}

/// docs/reference.md, "Accounts, regions and fan-out": `account` / `region`, or a fan-out's `accounts` / `regions`, and `origin`.
type Place = (Option<String>, Option<String>, Option<FanOut>, Option<String>);

fn place(root: &serde_json::Map<String, Value>) -> Result<Place> {
    let account = root.get("account").map(|v| account_id(v, "account")).transpose()?;
    let region = optional_pattern(root, "", "region", is_region, REGION_RULE)?;
    let accounts = root.get("accounts").map(|v| account_list(v, "accounts")).transpose()?;
    let regions = match root.get("regions") {
        None => None,
        Some(value) => {
            let list = value
                .as_array()
                .ok_or_else(|| ValidationError::new("regions", format!("must be a list, not {}", kind(value))))?;
            if list.is_empty() {
                return Err(ValidationError::new("regions", "must name at least one region"));
            }
            let mut regions = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                let field = format!("regions[{i}]");
                let name = string(item, &field)?;
                if !is_region(name) {
                    return Err(ValidationError::new(field, format!("{} {REGION_RULE}", quote(name))));
                }
                regions.push(name.to_owned());
            }
            Some(dedup(regions))
        }
    };
    if accounts.is_some() && account.is_some() {
        return Err(ValidationError::new("accounts", "and account are exclusive: a fan-out names its accounts"));
    }
    if regions.is_some() && region.is_some() {
        return Err(ValidationError::new("regions", "and region are exclusive: a fan-out names its regions"));
    }
    if (accounts.is_some() || regions.is_some()) && (account.is_some() || region.is_some()) {
        return Err(ValidationError::new("accounts", "a fan-out (accounts, regions) takes no account or region"));
    }
    let fan_out = (accounts.is_some() || regions.is_some())
        .then(|| FanOut { accounts: accounts.unwrap_or_default(), regions: regions.unwrap_or_default() });
    let origin = optional_pattern(
        root,
        "",
        "origin",
        |s| (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "is not an origin teardown set",
    )?;
    Ok((account, region, fan_out, origin))
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
        let id = required_string(entry, &path, "WorkspaceId")?;
        if !is_workspace_id(id) {
            return Err(ValidationError::new(format!("{path}.WorkspaceId"), format!("{} {WORKSPACE_RULE}", quote(id))));
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
            if !is_product_id(id) {
                return Err(ValidationError::new(
                    "input.ProvisionedProductId",
                    format!("{} {PRODUCT_ID_RULE}", quote(id)),
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

    let terminate_token = optional_pattern(map, "input", "TerminateToken", is_token, TOKEN_RULE)?;
    let accept_language = optional_pattern(map, "input", "AcceptLanguage", is_language, LANGUAGE_RULE)?;
    Ok(ProvisionedProductInput {
        product,
        terminate_token,
        ignore_errors: optional_bool(map, "input", "IgnoreErrors")?,
        retain_physical_resources: optional_bool(map, "input", "RetainPhysicalResources")?,
        accept_language,
    })
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
