//! Contract §4: the dead-letter record's `retryRequest`, a request in the
//! contract's own spelling that can be sent back as it is, once the cause is fixed.
//!
//! A replay is never broader than its original: it names only the failed ids,
//! keeps `dryRun`, and for a selection keeps every filter, so that a target is
//! terminated on replay only if it still matches what the original rule asked for.

use serde_json::{Map, Value, json};

use super::{ProductRef, Request, Scope, Selection, ServiceFilters, Targets};

/// The request for exactly `ids`, or `None` when there is nothing to retry.
pub fn retry_request(request: &Request, ids: &[String]) -> Option<Value> {
    if ids.is_empty() {
        return None;
    }
    let mut out = Map::new();
    out.insert("operation".into(), json!(request.operation.as_str()));
    match &request.scope {
        Scope::Named(targets) => out.insert("input".into(), named_input(targets, ids)),
        Scope::Select(selection) => out.insert("select".into(), select(selection, ids)),
    };
    if let Some(dry_run) = request.dry_run {
        out.insert("dryRun".into(), json!(dry_run));
    }
    Some(Value::Object(out))
}

fn named_input(targets: &Targets, ids: &[String]) -> Value {
    match targets {
        Targets::Workspaces(_) => json!({
            "TerminateWorkspaceRequests": ids.iter().map(|id| json!({"WorkspaceId": id})).collect::<Vec<_>>()
        }),
        Targets::TargetInstances(t) => {
            let mut input = Map::new();
            input.insert("sourceServerIDs".into(), json!(ids));
            if !t.tags.is_empty() {
                input.insert("tags".into(), json!(t.tags));
            }
            put(&mut input, "accountID", &t.account_id);
            Value::Object(input)
        }
        Targets::ProvisionedProduct(p) => {
            let mut input = Map::new();
            match &p.product {
                ProductRef::Id(id) => input.insert("ProvisionedProductId".into(), json!(id)),
                ProductRef::Name(name) => input.insert("ProvisionedProductName".into(), json!(name)),
            };
            // The token is left out on purpose: a replay after the cause is fixed must
            // not be deduplicated by Service Catalog against the failed attempt.
            put(&mut input, "IgnoreErrors", &p.ignore_errors);
            put(&mut input, "RetainPhysicalResources", &p.retain_physical_resources);
            put(&mut input, "AcceptLanguage", &p.accept_language);
            Value::Object(input)
        }
    }
}

/// Every filter of the selection, with the id list set to exactly `ids` (replacing
/// any list the selection had: the failed ids are a subset of what it matched).
fn select(selection: &Selection, ids: &[String]) -> Value {
    let mut out = Map::new();
    if !selection.tags.is_empty() {
        out.insert("tags".into(), json!(selection.tags));
    }
    if selection.expired {
        out.insert("expired".into(), json!(true));
    }
    let nonempty = |out: &mut Map<String, Value>, member: &str, list: &[String]| {
        if !list.is_empty() {
            out.insert(member.into(), json!(list));
        }
    };
    match &selection.filters {
        ServiceFilters::Workspaces { directory_id, bundle_id, user_name, states, idle_days } => {
            out.insert("ids".into(), json!(ids));
            put(&mut out, "directoryId", directory_id);
            put(&mut out, "bundleId", bundle_id);
            put(&mut out, "userName", user_name);
            nonempty(&mut out, "states", states);
            put(&mut out, "idleDays", idle_days);
        }
        ServiceFilters::TargetInstances { lifecycle_states, account_id } => {
            out.insert("sourceServerIDs".into(), json!(ids));
            nonempty(&mut out, "lifecycleStates", lifecycle_states);
            put(&mut out, "accountID", account_id);
        }
        ServiceFilters::ProvisionedProduct {
            product_id,
            provisioning_artifact_id,
            statuses,
            older_than_days,
            ignore_errors,
            retain_physical_resources,
            accept_language,
        } => {
            out.insert("ids".into(), json!(ids));
            put(&mut out, "productId", product_id);
            put(&mut out, "provisioningArtifactId", provisioning_artifact_id);
            nonempty(&mut out, "statuses", statuses);
            put(&mut out, "olderThanDays", older_than_days);
            put(&mut out, "IgnoreErrors", ignore_errors);
            put(&mut out, "RetainPhysicalResources", retain_physical_resources);
            put(&mut out, "AcceptLanguage", accept_language);
        }
    }
    Value::Object(out)
}

fn put<T: serde::Serialize>(out: &mut Map<String, Value>, member: &str, value: &Option<T>) {
    if let Some(value) = value {
        out.insert(member.into(), json!(value));
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
                json!({"operation": "TerminateTargetInstances", "dryRun": true, "select": {
                    "lifecycleStates": ["READY_FOR_TEST"], "tags": {"wave": "3"}, "accountID": "123456789012",
                    "expired": true}}),
                ids(&["s-0123456789abcdefA"]),
            ),
            (
                json!({"operation": "TerminateProvisionedProduct", "select": {
                    "productId": "prod-abc", "provisioningArtifactId": "pa-abc", "statuses": ["AVAILABLE"],
                    "tags": {"env": "sandbox"}, "olderThanDays": 7, "expired": true, "IgnoreErrors": true,
                    "RetainPhysicalResources": false, "AcceptLanguage": "jp"}}),
                ids(&["pp-one"]),
            ),
        ];
        for (original, failed) in cases {
            let request = validate(&original, Limits::default()).unwrap();
            let retry = retry_request(&request, &failed).unwrap();
            let replayed = validate(&retry, Limits::default()).unwrap_or_else(|e| panic!("{retry}: {e}"));
            let Scope::Select(mut want) = request.scope.clone() else { panic!() };
            want.ids = failed.clone();
            assert_eq!(replayed.scope, Scope::Select(want), "{retry}");
            assert_eq!(replayed.dry_run, request.dry_run);
            assert_eq!(replayed.operation, request.operation);
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
