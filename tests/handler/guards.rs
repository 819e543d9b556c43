//! Refusals and guards that hold for every service: nothing called, the blast radius, the kill switch.

use crate::doubles::*;
use crate::shared::*;
use aws_sdk_mgn::operation::terminate_target_instances::TerminateTargetInstancesOutput;

#[tokio::test]
async fn refusals_make_no_terminate_call() {
    let ws_calls = log();
    let ws = ws_terminate_ok(&ws_calls);
    let mgn = mock!(aws_sdk_mgn::Client::terminate_target_instances)
        .then_output(|| TerminateTargetInstancesOutput::builder().build());
    let sc = mock!(aws_sdk_servicecatalog::Client::terminate_provisioned_product)
        .then_output(|| TerminateProvisionedProductOutput::builder().build());
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&ws], mgn: &[&mgn], sc: &[&sc], sqs: &[&send] }.app(settings());

    let too_many = ws_request(&ws_ids(101, "e"));
    let invalid_mgn = json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-short"]}});
    let dry = |mut r: Value| {
        r["dryRun"] = json!(true);
        r
    };
    let report = invoke(
        &app,
        json!({"requests": [
            too_many,
            invalid_mgn,
            dry(ws_request(&ws_ids(3, "f"))),
            dry(json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": source_ids(2)}})),
            dry(json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-1"}})),
        ]}),
    )
    .await
    .unwrap();

    assert!(taken(&ws_calls).is_empty());
    assert_eq!(mgn.num_calls(), 0);
    assert_eq!(sc.num_calls(), 0);
    let outcomes: Vec<&str> =
        report["requests"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["invalid", "invalid", "dry_run", "dry_run", "dry_run"]);
    assert_eq!(target_outcomes(&report, 2).len(), 3, "a dry run reports the targets it would terminate");
    let sent = taken(&sent);
    assert_eq!(sent.len(), 2, "the invalid requests are dead-lettered; dry runs are not");
    assert_eq!(sent[0].1["error"]["code"], "TooManyTargets");
    assert_eq!(
        sent[1].1["error"]["message"],
        r#"input.sourceServerIDs[0]: "s-short" does not match ^s-[0-9a-zA-Z]{17}$"#
    );

    // The DRY_RUN setting is the default for requests that do not say.
    let app = Doubles { ws: &[&ws], mgn: &[], sc: &[], sqs: &[] }.app(Settings { dry_run: true, ..settings() });
    let report = invoke(&app, ws_request(&ws_ids(1, "g"))).await.unwrap();
    assert_eq!(report["requests"][0]["outcome"], "dry_run");
    assert!(taken(&ws_calls).is_empty());
}

#[tokio::test]
async fn a_selection_over_max_targets_terminates_nothing() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let describe = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_output(|| {
        DescribeWorkspacesOutput::builder()
            .set_workspaces(Some(
                (0..3).map(|i| workspace(&format!("ws-many000{i}"), WorkspaceState::Available)).collect(),
            ))
            .build()
    });
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&describe, &terminate], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { max_targets: 2, ..settings() });

    let report = invoke(&app, json!({"operation": "TerminateWorkspaces", "select": {"directoryId": "d-1234567890"}}))
        .await
        .unwrap();

    assert!(taken(&calls).is_empty());
    assert_eq!(report["requests"][0]["outcome"], "invalid");
    let sent = taken(&sent);
    assert_eq!(sent[0].1["error"]["code"], "TooManyTargets");
    assert_eq!(
        sent[0].1["error"]["message"],
        "select matched 3 targets, more than MAX_TARGETS (2): nothing was terminated"
    );

    // At the bound, it proceeds.
    let app = Doubles { ws: &[&describe, &terminate], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { max_targets: 3, ..settings() });
    invoke(&app, json!({"operation": "TerminateWorkspaces", "select": {"directoryId": "d-1234567890"}})).await.unwrap();
    assert_eq!(taken(&calls).concat().len(), 3);
}

/// Rule 6: the kill switch. With ENFORCE_DRY_RUN, `"dryRun": false` is a dry run.
#[tokio::test]
async fn enforce_dry_run_makes_every_request_a_dry_run_whatever_it_says() {
    let (ws_calls, mgn_calls, sc_calls) = (log(), log(), log());
    let (ws, mgn, sc) =
        (ws_terminate_ok(&ws_calls), mgn_terminate_recording(&mgn_calls), sc_terminate_recording(&sc_calls));
    let app = Doubles { ws: &[&ws], mgn: &[&mgn], sc: &[&sc], sqs: &[] }
        .app(Settings { enforce_dry_run: true, ..settings() });
    let mut ws_real = ws_request(&ws_ids(2, "k"));
    ws_real["dryRun"] = json!(false);
    let requests = json!({"requests": [
        ws_real,
        {"operation": "TerminateTargetInstances", "dryRun": false, "input": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa"]}},
        {"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-kill0001"}}
    ]});

    let report = invoke(&app, requests).await.unwrap();

    assert!(taken(&ws_calls).is_empty() && taken(&mgn_calls).is_empty() && taken(&sc_calls).is_empty());
    for i in 0..3 {
        assert_eq!(report["requests"][i]["outcome"], "dry_run", "{report}");
        assert_eq!(report["requests"][i]["dryRun"], true);
    }
}
