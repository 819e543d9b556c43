//! Behaviour as a person would describe it: given what exists, when a batch or a
//! request arrives, then these calls, these outcomes, these records.

use crate::doubles::*;
use crate::fixture::{World, given};

fn ws(ids: &[&str]) -> Value {
    json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": ids.iter().map(|i| json!({"WorkspaceId": i})).collect::<Vec<_>>()}})
}

fn mgn(ids: &[&str]) -> Value {
    json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ids}})
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test]
async fn a_batch_shares_one_call_and_each_message_gets_its_own_targets() {
    let then = given(
        World::new()
            .workspace("ws-aaaaaaaa", "AVAILABLE", &[])
            .workspace("ws-bbbbbbbb", "SUSPENDED", &[])
            .workspace("ws-cccccccc", "AVAILABLE", &[("teardown:protect", "legal hold")])
            .workspace("ws-dddddddd", "AVAILABLE", &[]),
    )
    .when(sqs_event(&[("m-1", ws(&["ws-aaaaaaaa", "ws-bbbbbbbb"])), ("m-2", ws(&["ws-cccccccc", "ws-dddddddd"]))]))
    .await;

    assert_eq!(then.calls(), vec![("TerminateWorkspaces", vec!["ws-aaaaaaaa".into(), "ws-dddddddd".into()])]);
    assert!(then.redelivered().is_empty());
    assert!(then.records().is_empty(), "skipped and protected are not failures");

    // The same batch as a direct invocation shows each request's own targets.
    let then = given(
        World::new()
            .workspace("ws-aaaaaaaa", "AVAILABLE", &[])
            .workspace("ws-bbbbbbbb", "SUSPENDED", &[])
            .workspace("ws-cccccccc", "AVAILABLE", &[("teardown:protect", "legal hold")])
            .workspace("ws-dddddddd", "AVAILABLE", &[]),
    )
    .when(json!({"requests": [ws(&["ws-aaaaaaaa", "ws-bbbbbbbb"]), ws(&["ws-cccccccc", "ws-dddddddd"])]}))
    .await;
    assert_eq!(then.outcomes(0), pairs(&[("ws-aaaaaaaa", "terminated"), ("ws-bbbbbbbb", "skipped")]));
    assert_eq!(then.outcomes(1), pairs(&[("ws-cccccccc", "protected"), ("ws-dddddddd", "terminated")]));
}

#[tokio::test]
async fn a_refused_workspace_is_dead_lettered_alone_with_a_retry_for_it() {
    let then = given(
        World::new()
            .workspace("ws-aaaaaaaa", "AVAILABLE", &[])
            .workspace("ws-bbbbbbbb", "AVAILABLE", &[])
            .refusing("ws-bbbbbbbb", "InvalidResourceState"),
    )
    .when(sqs_event(&[("m-1", ws(&["ws-aaaaaaaa", "ws-bbbbbbbb"]))]))
    .await;

    assert!(then.redelivered().is_empty(), "a refusal is final");
    assert_eq!(
        then.records(),
        vec![("m-1".into(), "rejected".into(), "InvalidResourceState".into(), vec!["ws-bbbbbbbb".into()])]
    );
    assert_eq!(then.record_bodies()[0]["retryRequest"], ws(&["ws-bbbbbbbb"]));
}

#[tokio::test]
async fn a_selection_dry_run_calls_nothing_and_says_what_would_happen() {
    let world = World::new()
        .workspace("ws-sbx00001", "AVAILABLE", &[("env", "sandbox")])
        .workspace("ws-sbx00002", "SUSPENDED", &[("env", "sandbox")])
        .workspace("ws-prod0001", "AVAILABLE", &[("env", "prod")]);
    let select = json!({"operation": "TerminateWorkspaces", "dryRun": true, "select": {"tags": {"env": "sandbox"}}});

    let then = given(world).when(select).await;

    assert!(then.calls().is_empty());
    assert_eq!(then.outcomes(0), pairs(&[("ws-sbx00001", "dry_run"), ("ws-sbx00002", "skipped")]));
}

#[tokio::test]
async fn the_kill_switch_turns_a_real_run_into_a_dry_run() {
    let world = World::new()
        .workspace("ws-aaaaaaaa", "AVAILABLE", &[])
        .with_settings(Settings { enforce_dry_run: true, ..settings() });
    let mut request = ws(&["ws-aaaaaaaa"]);
    request["dryRun"] = json!(false);

    let then = given(world).when(request).await;

    assert!(then.calls().is_empty());
    assert_eq!(then.outcomes(0), pairs(&[("ws-aaaaaaaa", "dry_run")]));
}

#[tokio::test]
async fn one_messages_bad_server_is_charged_to_that_message_alone() {
    let then = given(
        World::new()
            .server("s-aaaaaaaaaaaaaaaaa", "READY_FOR_CUTOVER", &[])
            .server("s-bbbbbbbbbbbbbbbbb", "READY_FOR_TEST", &[])
            .refusing("s-bbbbbbbbbbbbbbbbb", "ConflictException"),
    )
    .when(sqs_event(&[("m-1", mgn(&["s-aaaaaaaaaaaaaaaaa"])), ("m-2", mgn(&["s-bbbbbbbbbbbbbbbbb"]))]))
    .await;

    assert_eq!(then.terminated("TerminateTargetInstances").len(), 4, "the shared call, then one call apart each");
    assert!(then.redelivered().is_empty());
    assert_eq!(
        then.records(),
        vec![("m-2".into(), "rejected".into(), "ConflictException".into(), vec!["s-bbbbbbbbbbbbbbbbb".into()])]
    );
}

#[tokio::test]
async fn a_disconnected_server_is_never_sent() {
    let then = given(World::new().server("s-ddddddddddddddddd", "DISCONNECTED", &[]))
        .when(mgn(&["s-ddddddddddddddddd"]))
        .await;

    assert!(then.calls().is_empty());
    assert_eq!(then.outcomes(0), pairs(&[("s-ddddddddddddddddd", "skipped")]));
}

#[tokio::test]
async fn expired_sandboxes_go_and_protected_or_unexpired_ones_stay() {
    let then = given(
        World::new()
            .product("pp-old00001", "old", "AVAILABLE", &[("teardown:expires-at", "2026-11-01")])
            .product("pp-new00001", "new", "AVAILABLE", &[("teardown:expires-at", "2027-01-01")])
            .product(
                "pp-kept0001",
                "kept",
                "AVAILABLE",
                &[("teardown:expires-at", "2026-01-01"), ("teardown:protect", "")],
            ),
    )
    .when(json!({"operation": "TerminateProvisionedProduct", "select": {"expired": true}}))
    .await;

    assert_eq!(then.calls(), vec![("TerminateProvisionedProduct", vec!["pp-old00001".into()])]);
    assert_eq!(then.outcomes(0), pairs(&[("pp-old00001", "terminated"), ("pp-kept0001", "protected")]));
}
