//! docs/reference.md, "The dead-letter record": the dead-letter record's `retryRequest`, a request in the
//! contract's own spelling that can be sent back as it is, once the cause is fixed.
//!
//! A replay is never broader than its original: it names only the failed ids,
//! keeps `dryRun`, and for a selection keeps every filter, so that a target is
//! terminated on replay only if it still matches what the original rule asked for.

use serde_json::{Map, Value, json};

use super::types::{
    ProductRef, ProvisionedProductFilters, ProvisionedProductInput, Request, Scope, Selection, Target,
    TargetInstancesFilters, TargetInstancesInput, WorkspacesFilters,
};

/// The request for exactly `ids`, or `None` when there is nothing to retry.
pub fn retry_request(request: &Request, ids: &[String]) -> Option<Value> {
    if ids.is_empty() {
        return None;
    }
    let mut out = Map::new();
    out.insert("operation".into(), json!(request.operation().as_str()));
    let (member, body) = match &request.target {
        Target::Workspaces(Scope::Named(_)) => ("input", workspaces_input(ids)),
        Target::Workspaces(Scope::Select(s)) => ("select", workspaces_select(s, ids)),
        Target::TargetInstances(Scope::Named(input)) => ("input", target_instances_input(input, ids)),
        Target::TargetInstances(Scope::Select(s)) => ("select", target_instances_select(s, ids)),
        Target::ProvisionedProduct(Scope::Named(input)) => ("input", provisioned_product_input(input)),
        Target::ProvisionedProduct(Scope::Select(s)) => ("select", provisioned_product_select(s, ids)),
    };
    out.insert(member.into(), Value::Object(body));
    // A notice's replay is a notice: without it, the replay would terminate.
    if let Some(days) = request.notice_days() {
        out.insert("notice".into(), json!({"days": days}));
    }
    if let Some(dry_run) = request.dry_run {
        out.insert("dryRun".into(), json!(dry_run));
    }
    // Where the targets are stays; `origin` does not: a replay derives fresh tokens.
    put(&mut out, "account", &request.account);
    put(&mut out, "region", &request.region);
    Some(Value::Object(out))
}

fn workspaces_input(ids: &[String]) -> Map<String, Value> {
    let requests: Vec<Value> = ids.iter().map(|id| json!({"WorkspaceId": id})).collect();
    Map::from_iter([("TerminateWorkspaceRequests".to_owned(), json!(requests))])
}

fn target_instances_input(input: &TargetInstancesInput, ids: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("sourceServerIDs".into(), json!(ids));
    if !input.tags.is_empty() {
        out.insert("tags".into(), json!(input.tags));
    }
    put(&mut out, "accountID", &input.account_id);
    out
}

/// One product a request: its retry names it again, as the request did.
fn provisioned_product_input(input: &ProvisionedProductInput) -> Map<String, Value> {
    let mut out = Map::new();
    match &input.product {
        ProductRef::Id(id) => out.insert("ProvisionedProductId".into(), json!(id)),
        ProductRef::Name(name) => out.insert("ProvisionedProductName".into(), json!(name)),
    };
    // The token is left out on purpose: a replay after the cause is fixed must not be
    // deduplicated by Service Catalog against the failed attempt.
    put(&mut out, "IgnoreErrors", &input.ignore_errors);
    put(&mut out, "RetainPhysicalResources", &input.retain_physical_resources);
    put(&mut out, "AcceptLanguage", &input.accept_language);
    out
}

/// Every filter a selection has in common, with the id list set to exactly `ids`
/// (replacing any list the selection had: the failed ids are a subset of what it matched).
fn common<F>(selection: &Selection<F>, id_member: &str, ids: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(id_member.into(), json!(ids));
    if !selection.tags.is_empty() {
        // One value is written as a string, as a request would most often give it.
        let tags: Map<String, Value> = selection
            .tags
            .iter()
            .map(|(k, values)| match values.as_slice() {
                [one] => (k.clone(), json!(one)),
                _ => (k.clone(), json!(values)),
            })
            .collect();
        out.insert("tags".into(), Value::Object(tags));
    }
    list(&mut out, "tagsAbsent", &selection.tags_absent);
    if selection.expired {
        out.insert("expired".into(), json!(true));
    }
    out
}

fn workspaces_select(selection: &Selection<WorkspacesFilters>, ids: &[String]) -> Map<String, Value> {
    let mut out = common(selection, "ids", ids);
    let WorkspacesFilters { directory_id, bundle_id, user_name, states, running_modes, idle_days } = &selection.filters;
    put(&mut out, "directoryId", directory_id);
    put(&mut out, "bundleId", bundle_id);
    put(&mut out, "userName", user_name);
    list(&mut out, "states", states);
    list(&mut out, "runningModes", running_modes);
    put(&mut out, "idleDays", idle_days);
    out
}

fn target_instances_select(selection: &Selection<TargetInstancesFilters>, ids: &[String]) -> Map<String, Value> {
    let mut out = common(selection, "sourceServerIDs", ids);
    let TargetInstancesFilters { lifecycle_states, account_id } = &selection.filters;
    list(&mut out, "lifecycleStates", lifecycle_states);
    put(&mut out, "accountID", account_id);
    out
}

fn provisioned_product_select(selection: &Selection<ProvisionedProductFilters>, ids: &[String]) -> Map<String, Value> {
    let mut out = common(selection, "ids", ids);
    let ProvisionedProductFilters {
        product_id,
        provisioning_artifact_id,
        statuses,
        older_than_days,
        ignore_errors,
        retain_physical_resources,
        accept_language,
    } = &selection.filters;
    put(&mut out, "productId", product_id);
    put(&mut out, "provisioningArtifactId", provisioning_artifact_id);
    list(&mut out, "statuses", statuses);
    put(&mut out, "olderThanDays", older_than_days);
    put(&mut out, "IgnoreErrors", ignore_errors);
    put(&mut out, "RetainPhysicalResources", retain_physical_resources);
    put(&mut out, "AcceptLanguage", accept_language);
    out
}

fn put<T: serde::Serialize>(out: &mut Map<String, Value>, member: &str, value: &Option<T>) {
    if let Some(value) = value {
        out.insert(member.into(), json!(value));
    }
}

fn list(out: &mut Map<String, Value>, member: &str, values: &[String]) {
    if !values.is_empty() {
        out.insert(member.into(), json!(values));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::request::{Limits, validate};

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// The replay of a selection validates to the same selection, narrowed to the
    /// failed ids: no filter is lost, for any of the three services.
    #[test]
    fn a_selections_retry_keeps_every_filter_and_dry_run_and_names_only_the_failed_ids() {
        let cases = [
            (
                json!({"operation": "TerminateWorkspaces", "dryRun": false, "select": {
                    "ids": ["ws-aaaaaaaa", "ws-bbbbbbbb", "ws-cccccccc"], "directoryId": "d-1234567890",
                    "bundleId": "wsb-12345678", "userName": "alice", "states": ["AVAILABLE", "STOPPED"],
                    "tags": {"env": "sandbox", "team": "a"}, "idleDays": 30, "expired": true}}),
                ids(&["ws-bbbbbbbb"]),
            ),
            (
                json!({"operation": "TerminateWorkspaces", "select": {"tags": {"env": "sandbox"}, "idleDays": 30}}),
                ids(&["ws-bbbbbbbb", "ws-dddddddd"]),
            ),
            (
                json!({"operation": "TerminateWorkspaces", "notice": {"days": 7}, "select": {
                    "tags": {"env": ["sandbox", "dev"], "team": "a"}, "tagsAbsent": ["owner", "keep"],
                    "runningModes": ["ALWAYS_ON"], "idleDays": 14}}),
                ids(&["ws-bbbbbbbb"]),
            ),
            (
                json!({"operation": "TerminateTargetInstances", "notice": {"days": 90}, "select": {
                    "tags": {"wave": ["3", "4"]}, "tagsAbsent": ["owner"]}}),
                ids(&["s-0123456789abcdefA"]),
            ),
            (
                json!({"operation": "TerminateTargetInstances", "dryRun": true, "select": {
                    "lifecycleStates": ["READY_FOR_TEST"], "tags": {"wave": "3"}, "accountID": "123456789012",
                    "expired": true}}),
                ids(&["s-0123456789abcdefA"]),
            ),
            (
                json!({"operation": "TerminateProvisionedProduct", "select": {
                    "productId": "prod-abc", "provisioningArtifactId": "pa-abc", "statuses": ["AVAILABLE"],
                    "tags": {"env": ["sandbox", "dev"]}, "tagsAbsent": ["owner"], "olderThanDays": 7, "expired": true, "IgnoreErrors": true,
                    "RetainPhysicalResources": false, "AcceptLanguage": "jp"}}),
                ids(&["pp-one"]),
            ),
        ];
        for (original, failed) in cases {
            let request = validate(&original, Limits::default()).unwrap();
            let retry = retry_request(&request, &failed).unwrap();
            let replayed = validate(&retry, Limits::default()).unwrap_or_else(|e| panic!("{retry}: {e}"));
            let mut want = request.target.clone();
            match &mut want {
                Target::Workspaces(Scope::Select(s)) => s.ids = failed.clone(),
                Target::TargetInstances(Scope::Select(s)) => s.ids = failed.clone(),
                Target::ProvisionedProduct(Scope::Select(s)) => s.ids = failed.clone(),
                other => panic!("not a selection: {other:?}"),
            }
            assert_eq!(replayed.target, want, "{retry}");
            assert_eq!(replayed.dry_run, request.dry_run);
            assert_eq!(replayed.notice_days(), request.notice_days(), "a notice's replay must not terminate: {retry}");
        }
    }

    #[test]
    fn a_named_retry_drops_the_terminate_token_and_keeps_the_options() {
        let original = json!({"operation": "TerminateProvisionedProduct", "dryRun": true, "input": {
            "ProvisionedProductName": "sandbox-1", "TerminateToken": "tok-1", "IgnoreErrors": true,
            "AcceptLanguage": "en"}});
        let request = validate(&original, Limits::default()).unwrap();
        let retry = retry_request(&request, &ids(&["sandbox-1"])).unwrap();
        assert_eq!(
            retry,
            json!({"operation": "TerminateProvisionedProduct", "dryRun": true, "input": {
                "ProvisionedProductName": "sandbox-1", "IgnoreErrors": true, "AcceptLanguage": "en"}})
        );
        assert!(retry_request(&request, &[]).is_none());
    }
}
