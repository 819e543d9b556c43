//! The invocation with every AWS client replaced by an `aws-smithy-mocks` double:
//! the exact calls made, how answers map to outcomes, and what is dead-lettered.

use crate::doubles::*;
use aws_sdk_mgn::operation::terminate_target_instances::TerminateTargetInstancesOutput;
use aws_sdk_mgn::types::{Job, ParticipatingServer};
use aws_sdk_workspaces::operation::describe_workspaces_connection_status::DescribeWorkspacesConnectionStatusOutput;
use aws_sdk_workspaces::types::{FailedWorkspaceChangeRequest, Tag as WsTag, WorkspaceConnectionStatus};

#[tokio::test]
async fn twenty_six_workspaces_are_terminated_in_calls_of_25_and_1() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    let ids = ws_ids(26, "a");

    let report = invoke(&app, ws_request(&ids)).await.unwrap();

    let mut sizes: Vec<usize> = taken(&calls).iter().map(Vec::len).collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 25]);
    let mut called: Vec<String> = taken(&calls).concat();
    called.sort();
    assert_eq!(called, ids, "every id exactly once");
    assert_eq!(report["requests"][0]["outcome"], "terminated");
    assert_eq!(report["counts"]["targets"]["terminated"], 26);
}

#[tokio::test]
async fn ids_from_different_messages_share_calls_and_each_message_gets_its_own_outcomes() {
    let calls = log();
    let ids = ws_ids(30, "b");
    let (first, second) = ids.split_at(15);
    // One id of the second message is refused: it went between the lookup and the call.
    let gone = second[0].clone();
    let describe = {
        let gone = gone.clone();
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            let asked = req.workspace_ids();
            let after_call = asked == [gone.clone()];
            let found = if after_call {
                Vec::new()
            } else {
                asked.iter().map(|id| workspace(id, WorkspaceState::Available)).collect()
            };
            DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
        })
    };
    let refusing = {
        let calls = calls.clone();
        let gone = gone.clone();
        mock!(aws_sdk_workspaces::Client::terminate_workspaces).then_compute_output(move |req| {
            let ids: Vec<String> =
                req.terminate_workspace_requests().iter().map(|r| r.workspace_id().to_owned()).collect();
            calls.lock().unwrap().push(ids.clone());
            let mut out = TerminateWorkspacesOutput::builder();
            if ids.contains(&gone) {
                out = out.failed_requests(
                    FailedWorkspaceChangeRequest::builder()
                        .workspace_id(&gone)
                        .error_code("400")
                        .error_message("could not be found")
                        .build(),
                );
            }
            out.build()
        })
    };
    let app = Doubles { ws: &[&refusing, &describe], mgn: &[], sc: &[], sqs: &[] }.app(settings());

    let response = invoke(&app, sqs_event(&[("m-1", ws_request(first)), ("m-2", ws_request(second))])).await.unwrap();

    assert_eq!(taken(&calls).len(), 2, "30 distinct ids from two messages: ⌈30/25⌉ calls");
    assert!(failures(&response).is_empty());
    // The attribution is visible in the per-request report of a direct invocation too.
    calls.lock().unwrap().clear();
    let report = invoke(&app, json!({"requests": [ws_request(first), ws_request(second)]})).await.unwrap();
    assert_eq!(taken(&calls).len(), 2);
    let first_outcomes = target_outcomes(&report, 0);
    let second_outcomes = target_outcomes(&report, 1);
    assert_eq!(
        first_outcomes.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        first.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(first_outcomes.iter().all(|(_, o)| o == "terminated"));
    assert_eq!(second_outcomes[0], (gone.clone(), "not_found".to_owned()));
    assert!(second_outcomes[1..].iter().all(|(_, o)| o == "terminated"));
    assert_eq!(second_outcomes.len(), 15);
}

#[tokio::test]
async fn failed_requests_map_per_id_and_only_the_refused_ones_are_dead_lettered() {
    let [a, b, c]: [String; 3] = ["ws-aaaaaaaa", "ws-bbbbbbbb", "ws-cccccccc"].map(String::from);
    let terminate = {
        let (b, c) = (b.clone(), c.clone());
        mock!(aws_sdk_workspaces::Client::terminate_workspaces).then_output(move || {
            TerminateWorkspacesOutput::builder()
                .failed_requests(
                    FailedWorkspaceChangeRequest::builder()
                        .workspace_id(&b)
                        .error_code("ResourceNotFound.WorkSpace")
                        .error_message("gone")
                        .build(),
                )
                .failed_requests(
                    FailedWorkspaceChangeRequest::builder()
                        .workspace_id(&c)
                        .error_code("InvalidResourceState")
                        .error_message("The WorkSpace is SUSPENDED")
                        .build(),
                )
                .build()
        })
    };
    let described = log::<Vec<String>>();
    let describe = {
        let (c, described) = (c.clone(), described.clone());
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            let asked = req.workspace_ids().to_vec();
            let first = described.lock().unwrap().is_empty();
            described.lock().unwrap().push(asked.clone());
            // Before the call all three exist; after it, only c does.
            let found = if first {
                asked.iter().map(|id| workspace(id, WorkspaceState::Available)).collect()
            } else {
                vec![workspace(&c, WorkspaceState::Available)]
            };
            DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
        })
    };
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&terminate, &describe], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());

    let response = invoke(&app, sqs_event(&[("m-1", ws_request(&[a.clone(), b.clone(), c.clone()]))])).await.unwrap();

    assert!(failures(&response).is_empty(), "a refusal is final: not redelivered");
    assert_eq!(
        taken(&described),
        vec![vec![a.clone(), b.clone(), c.clone()], vec![b.clone(), c.clone()]],
        "looked up before the call; after it, only the failed ids"
    );
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    let (url, body, operation, outcome) = &sent[0];
    assert_eq!((url.as_str(), operation.as_str(), outcome.as_str()), (DLQ, "TerminateWorkspaces", "rejected"));
    assert_eq!(
        body["failedTargets"],
        json!([{"id": c, "code": "InvalidResourceState", "message": "The WorkSpace is SUSPENDED"}])
    );
    assert_eq!(body["retryRequest"], ws_request(std::slice::from_ref(&c)));
    assert_eq!(body["error"], json!({"code": "InvalidResourceState", "message": "The WorkSpace is SUSPENDED"}));
}

#[tokio::test]
async fn the_dead_letter_record_is_exactly_the_contract_s() {
    let sent = log();
    let send = sqs_send_ok(&sent);
    let terminate_calls = log();
    let terminate = ws_terminate_ok(&terminate_calls);
    let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());
    let bad = json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceID": "ws-abcd1234"}]}});

    let response = invoke(&app, sqs_event(&[("m-9", bad.clone())])).await.unwrap();

    assert_eq!(response, json!({"batchItemFailures": []}));
    assert!(taken(&terminate_calls).is_empty(), "an invalid request makes no call");
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].1,
        json!({
            "version": 1,
            "failedAt": "2026-11-24T10:00:00Z",
            "source": {"kind": "sqs", "messageId": "m-9", "eventSourceArn": "arn:aws:sqs:us-east-1:123456789012:teardown-requests", "receiveCount": 1},
            "request": bad,
            "outcome": "invalid",
            "error": {"code": "InvalidRequest", "message": "input.TerminateWorkspaceRequests[0].WorkspaceID: is not a known member (expected one of: WorkspaceId)"},
            "failedTargets": []
        })
    );
    assert_eq!((sent[0].2.as_str(), sent[0].3.as_str()), ("TerminateWorkspaces", "invalid"));
}

#[tokio::test]
async fn an_oversized_request_is_cut_with_a_marker_so_the_record_fits_sqs() {
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());
    let huge = format!("{{\"operation\": \"{}\"}}", "x".repeat(1024 * 1024));

    invoke(&app, sqs_event(&[("m-1", Value::String(huge))])).await.unwrap();

    let sent = taken(&sent);
    let body = &sent[0].1;
    assert!(body.to_string().len() <= 256 * 1024);
    assert_eq!(body["request"]["truncated"], true);
    assert!(body["request"]["originalBytes"].as_u64().unwrap() > 1024 * 1024);
    assert!(body["error"]["message"].as_str().unwrap().len() < 500, "the error quotes a bounded prefix");
}

#[tokio::test]
async fn a_record_that_cannot_be_published_is_redelivered() {
    let send = mock!(aws_sdk_sqs::Client::send_message)
        .then_http_response(|| http(500, r#"{"__type":"InternalError","message":"down"}"#));
    let app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());

    let response = invoke(&app, sqs_event(&[("m-1", json!({"operation": "Nope"})), ("m-2", json!("not a request"))]))
        .await
        .unwrap();

    assert_eq!(failures(&response), vec!["m-1", "m-2"]);
    assert_eq!(send.num_calls(), 2, "one publish attempt per record (the doubles do not retry)");
}

#[tokio::test]
async fn outside_sqs_an_unpublished_record_fails_the_invocation() {
    let send = mock!(aws_sdk_sqs::Client::send_message)
        .then_http_response(|| http(500, r#"{"__type":"InternalError","message":"down"}"#));
    let app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());

    let error = invoke(&app, json!({"operation": "Nope"})).await.unwrap_err();

    assert!(error.to_string().contains("could not publish the dead-letter record"), "{error}");
}

#[tokio::test]
async fn two_hundred_and_one_source_servers_go_in_calls_of_200_and_1_with_tags_and_account() {
    let calls = log::<(Vec<String>, Option<std::collections::HashMap<String, String>>, Option<String>)>();
    let terminate = {
        let calls = calls.clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances).then_compute_output(move |req| {
            let ids = req.source_server_ids().to_vec();
            calls.lock().unwrap().push((ids.clone(), req.tags().cloned(), req.account_id().map(str::to_owned)));
            let mut job = Job::builder().job_id(format!("mgnjob-{}", ids.len()));
            for id in &ids {
                job = job.participating_servers(ParticipatingServer::builder().source_server_id(id).build().unwrap());
            }
            TerminateTargetInstancesOutput::builder().job(job.build().unwrap()).build()
        })
    };
    let app = Doubles { ws: &[], mgn: &[&terminate], sc: &[], sqs: &[] }.app(Settings {
        max_targets: 500,
        allowed_accounts: vec!["123456789012".into()],
        ..settings()
    });
    let ids = source_ids(201);

    let report = invoke(&app, json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ids, "tags": {"ticket": "CHG-1"}, "accountID": "123456789012"}})).await.unwrap();

    let mut calls = taken(&calls);
    calls.sort_by_key(|c| c.0.len());
    assert_eq!(calls.iter().map(|c| c.0.len()).collect::<Vec<_>>(), vec![1, 200]);
    assert_eq!([calls[0].0.clone(), calls[1].0.clone()].concat().len(), 201);
    for (_, tags, account) in &calls {
        assert_eq!(tags.as_ref().and_then(|t| t.get("ticket")).map(String::as_str), Some("CHG-1"));
        assert_eq!(account.as_deref(), Some("123456789012"));
    }
    let targets = report["requests"][0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 201);
    assert_eq!(targets[0]["jobId"], "mgnjob-200");
    assert_eq!(targets[200]["jobId"], "mgnjob-1");
    assert_eq!(report["requests"][0]["outcome"], "terminated");
}

#[tokio::test]
/// Only DescribeSourceServers decides that a server is gone: one the job leaves out
/// is not reported done, but left for a later attempt (here, outside SQS, a record
/// with a retry request for it alone).
async fn a_server_left_out_of_the_job_is_not_reported_gone() {
    let ids = source_ids(2);
    let terminate = {
        let first = ids[0].clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances).then_output(move || {
            let job = Job::builder()
                .job_id("mgnjob-1")
                .participating_servers(ParticipatingServer::builder().source_server_id(&first).build().unwrap());
            TerminateTargetInstancesOutput::builder().job(job.build().unwrap()).build()
        })
    };
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[], mgn: &[&terminate], sc: &[], sqs: &[&send] }.app(settings());

    let report = invoke(&app, json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ids}}))
        .await
        .unwrap();

    assert_eq!(
        target_outcomes(&report, 0),
        vec![(ids[0].clone(), "terminated".into()), (ids[1].clone(), "transient".into())]
    );
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].1["retryRequest"],
        json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": [ids[1]]}})
    );
}

#[tokio::test]
async fn the_terminate_token_follows_the_sqs_message() {
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&terminate], sqs: &[] }.app(settings());
    let request = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-sandbox1"}});

    invoke(&app, sqs_event(&[("m-1", request.clone())])).await.unwrap();
    invoke(&app, sqs_event(&[("m-1", request.clone())])).await.unwrap();
    invoke(&app, sqs_event(&[("m-2", request.clone())])).await.unwrap();
    let given = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox", "TerminateToken": "mine-1"}});
    invoke(&app, sqs_event(&[("m-3", given)])).await.unwrap();

    let seen = taken(&seen);
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].0.as_deref(), Some("pp-sandbox1"));
    let token = seen[0].2.clone().unwrap();
    assert_eq!(seen[1].2.as_deref(), Some(token.as_str()), "a redelivery reuses the token");
    assert_ne!(seen[2].2.as_deref(), Some(token.as_str()), "another message gets another token");
    // Named by name, the call names the product that was looked up, by its id.
    assert_eq!(
        (seen[3].0.as_deref(), seen[3].1.as_deref(), seen[3].2.as_deref()),
        (Some("pp-sandbox"), None, Some("mine-1")),
        "a given token is used as is"
    );
}

#[tokio::test]
async fn a_product_already_gone_is_not_found_and_not_dead_lettered() {
    let terminate = mock!(aws_sdk_servicecatalog::Client::terminate_provisioned_product).then_http_response(|| {
        http(400, r#"{"__type":"ResourceNotFoundException","Message":"Provisioned product not found"}"#)
    });
    let send = mock!(aws_sdk_sqs::Client::send_message).then_output(|| SendMessageOutput::builder().build());
    let app = Doubles { ws: &[], mgn: &[], sc: &[&terminate], sqs: &[&send] }.app(settings());

    let response = invoke(
        &app,
        sqs_event(&[(
            "m-1",
            json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-gone"}}),
        )]),
    )
    .await
    .unwrap();

    assert!(failures(&response).is_empty());
    assert_eq!(send.num_calls(), 0);
    let report =
        invoke(&app, json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-gone"}}))
            .await
            .unwrap();
    assert_eq!(report["requests"][0]["outcome"], "not_found");
}

#[tokio::test]
async fn throttling_and_server_errors_are_transient_and_redelivered_without_a_record() {
    let throttled = mock!(aws_sdk_workspaces::Client::terminate_workspaces)
        .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
    let unavailable = mock!(aws_sdk_mgn::Client::terminate_target_instances)
        .then_http_response(|| http(503, r#"{"message":"Service Unavailable"}"#));
    let send = mock!(aws_sdk_sqs::Client::send_message).then_output(|| SendMessageOutput::builder().build());
    let app = Doubles { ws: &[&throttled], mgn: &[&unavailable], sc: &[], sqs: &[&send] }.app(settings());

    let response = invoke(
        &app,
        sqs_event(&[
            ("m-1", ws_request(&ws_ids(1, "c"))),
            ("m-2", json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": source_ids(1)}})),
        ]),
    )
    .await
    .unwrap();

    assert_eq!(failures(&response), vec!["m-1", "m-2"]);
    assert_eq!(send.num_calls(), 0, "redelivery, not a dead-letter record, for a transient failure");
}

#[tokio::test]
async fn outside_sqs_a_transient_failure_is_dead_lettered_with_a_retry_request() {
    let throttled = mock!(aws_sdk_workspaces::Client::terminate_workspaces)
        .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&throttled], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());
    let ids = ws_ids(2, "d");

    let report = invoke(&app, ws_request(&ids)).await.unwrap();

    assert_eq!(report["requests"][0]["outcome"], "transient");
    assert_eq!(report["requests"][0]["deadLetter"], "published");
    let sent = taken(&sent);
    assert_eq!(sent[0].1["outcome"], "transient");
    assert_eq!(sent[0].1["error"]["code"], "ThrottlingException");
    assert_eq!(sent[0].1["retryRequest"], ws_request(&ids));
    assert_eq!(sent[0].1["source"], json!({"kind": "direct", "requestId": "req-1"}));
}

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
async fn near_the_deadline_nothing_new_starts_and_the_message_is_redelivered() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    let mut context = Context::default();
    let now_ms = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
    context.deadline = now_ms + 500; // less than the reserve kept for answering

    let response =
        handle(&app, LambdaEvent::new(sqs_event(&[("m-1", ws_request(&ws_ids(1, "h")))]), context)).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1"]);
    assert!(taken(&calls).is_empty(), "no call is started that could be cut off");
}

#[tokio::test]
async fn a_mixed_batch_redelivers_exactly_the_transient_and_dead_letters_exactly_the_rest() {
    let ws_calls = log();
    let ws = ws_terminate_ok(&ws_calls);
    let mgn = mock!(aws_sdk_mgn::Client::terminate_target_instances)
        .then_http_response(|| http(429, r#"{"message":"Too many requests"}"#));
    let sc = mock!(aws_sdk_servicecatalog::Client::terminate_provisioned_product).then_http_response(|| {
        http(400, r#"{"__type":"InvalidParametersException","Message":"Product is UNDER_CHANGE"}"#)
    });
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&ws], mgn: &[&mgn], sc: &[&sc], sqs: &[&send] }.app(settings());

    let response = invoke(
        &app,
        sqs_event(&[
            ("valid", ws_request(&ws_ids(2, "i"))),
            ("bad-json", Value::String("{\"operation\":".into())),
            ("unknown-op", json!({"operation": "TerminateInstances", "input": {}})),
            (
                "transient",
                json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": source_ids(1)}}),
            ),
            (
                "rejected",
                json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-1"}}),
            ),
        ]),
    )
    .await
    .unwrap();

    assert_eq!(failures(&response), vec!["transient"]);
    assert_eq!(taken(&ws_calls).concat(), ws_ids(2, "i"));
    let mut records: Vec<(String, String, String)> = taken(&sent)
        .iter()
        .map(|(_, body, _, outcome)| {
            (
                body["source"]["messageId"].as_str().unwrap().to_owned(),
                outcome.clone(),
                body["error"]["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    records.sort();
    assert_eq!(
        records,
        vec![
            ("bad-json".into(), "invalid".into(), "BadInput".into()),
            ("rejected".into(), "rejected".into(), "InvalidParametersException".into()),
            ("unknown-op".into(), "invalid".into(), "InvalidRequest".into()),
        ]
    );
    let rejected = taken(&sent).into_iter().find(|(_, b, _, _)| b["source"]["messageId"] == "rejected").unwrap().1;
    assert_eq!(
        rejected["retryRequest"],
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-1"}})
    );
    assert_eq!(
        rejected["failedTargets"],
        json!([{"id": "pp-1", "code": "InvalidParametersException", "message": "Product is UNDER_CHANGE"}])
    );
}

// ── Selection and guards (docs/reference.md, "Selection") ──────────────────────────────────────

/// Page `n` (0-based) of three, by the token the caller sends back.
fn page_of(token: Option<&str>) -> usize {
    match token {
        None => 0,
        Some("page-2") => 1,
        Some(_) => 2,
    }
}

fn next_token(page: usize) -> Option<String> {
    match page {
        0 => Some("page-2".to_owned()),
        1 => Some("page-3".to_owned()),
        _ => None,
    }
}

fn days_ago(days: i64) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(
        (time::macros::datetime!(2026-11-24 10:00 UTC) - time::Duration::days(days)).unix_timestamp(),
    )
}

#[tokio::test]
async fn idle_workspaces_are_found_across_pages_and_a_suspended_one_is_skipped() {
    // Three pages: idle 40 days, busy 10 days ago, never connected, suspended and idle.
    let pages = [
        vec![workspace("ws-idle0040", WorkspaceState::Available)],
        vec![workspace("ws-busy0010", WorkspaceState::Available), workspace("ws-never000", WorkspaceState::Available)],
        vec![workspace("ws-susp0100", WorkspaceState::Suspended)],
    ];
    let asked_directory = log();
    let describe = {
        let asked_directory = asked_directory.clone();
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            asked_directory.lock().unwrap().push(req.directory_id().map(str::to_owned));
            let page = page_of(req.next_token());
            DescribeWorkspacesOutput::builder()
                .set_workspaces(Some(pages[page].clone()))
                .set_next_token(next_token(page))
                .build()
        })
    };
    let connections = mock!(aws_sdk_workspaces::Client::describe_workspaces_connection_status).then_output(|| {
        let status = |id: &str, days: i64| {
            WorkspaceConnectionStatus::builder()
                .workspace_id(id)
                .last_known_user_connection_timestamp(days_ago(days))
                .build()
        };
        DescribeWorkspacesConnectionStatusOutput::builder()
            .workspaces_connection_status(status("ws-idle0040", 40))
            .workspaces_connection_status(status("ws-busy0010", 10))
            .workspaces_connection_status(status("ws-susp0100", 100))
            .build()
    });
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&describe, &connections, &terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());

    let report = invoke(
        &app,
        json!({"operation": "TerminateWorkspaces", "select": {"directoryId": "d-1234567890", "idleDays": 30}}),
    )
    .await
    .unwrap();

    assert_eq!(taken(&asked_directory).len(), 3, "every page is read");
    assert!(taken(&asked_directory).iter().all(|d| d.as_deref() == Some("d-1234567890")), "narrowed on the server");
    assert_eq!(
        taken(&calls),
        vec![vec!["ws-idle0040".to_owned()]],
        "only the idle, terminable WorkSpace is terminated"
    );
    let targets = report["requests"][0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "the busy and the never-connected are not selected: {targets:?}");
    assert_eq!(targets[0]["id"], "ws-idle0040");
    assert_eq!(targets[0]["outcome"], "terminated");
    assert_eq!(targets[0]["reason"], "matched: directoryId d-1234567890, idle 40 days (≥ 30)");
    assert_eq!(targets[1]["id"], "ws-susp0100");
    assert_eq!(targets[1]["outcome"], "skipped");
    assert_eq!(report["requests"][0]["outcome"], "terminated");
}

#[tokio::test]
async fn mgn_selection_reads_every_page_and_terminates_only_what_passes_the_guards() {
    let pages = [
        vec![
            source_server("s-aaaaaaaaaaaaaaaaa", LifeCycleState::ReadyForCutover, true, &[("wave", "3")]),
            source_server("s-bbbbbbbbbbbbbbbbb", LifeCycleState::Testing, true, &[("wave", "3")]),
        ],
        vec![
            source_server("s-ccccccccccccccccc", LifeCycleState::ReadyForTest, false, &[("wave", "3")]),
            source_server("s-ddddddddddddddddd", LifeCycleState::ReadyForCutover, true, &[("wave", "4")]),
        ],
        vec![source_server(
            "s-eeeeeeeeeeeeeeeee",
            LifeCycleState::ReadyForCutover,
            true,
            &[("wave", "3"), ("teardown:protect", "")],
        )],
    ];
    let describe = mock!(aws_sdk_mgn::Client::describe_source_servers).then_compute_output(move |req| {
        let page = page_of(req.next_token());
        DescribeSourceServersOutput::builder()
            .set_items(Some(pages[page].clone()))
            .set_next_token(next_token(page))
            .build()
    });
    let calls = log::<Vec<String>>();
    let terminate = {
        let calls = calls.clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances).then_compute_output(move |req| {
            calls.lock().unwrap().push(req.source_server_ids().to_vec());
            TerminateTargetInstancesOutput::builder().job(Job::builder().job_id("mgnjob-w3").build().unwrap()).build()
        })
    };
    let app = Doubles { ws: &[], mgn: &[&describe, &terminate], sc: &[], sqs: &[] }.app(settings());
    let select = json!({"operation": "TerminateTargetInstances", "select": {"tags": {"wave": "3"}}});

    let mut dry = select.clone();
    dry["dryRun"] = json!(true);
    let report = invoke(&app, dry).await.unwrap();
    assert!(taken(&calls).is_empty(), "a dry run makes no terminate call");
    let summary = target_outcomes(&report, 0);
    assert_eq!(
        summary,
        vec![
            ("s-aaaaaaaaaaaaaaaaa".into(), "dry_run".into()),
            ("s-bbbbbbbbbbbbbbbbb".into(), "skipped".into()),
            ("s-eeeeeeeeeeeeeeeee".into(), "protected".into()),
        ]
    );
    assert_eq!(
        report["requests"][0]["targets"][1]["reason"],
        "lifecycle TESTING: a launch is in progress; only NOT_READY, READY_FOR_TEST, READY_FOR_CUTOVER, STOPPED are terminated"
    );

    let report = invoke(&app, select).await.unwrap();
    assert_eq!(taken(&calls), vec![vec!["s-aaaaaaaaaaaaaaaaa".to_owned()]]);
    assert_eq!(report["requests"][0]["targets"][0]["jobId"], "mgnjob-w3");
    assert_eq!(report["counts"]["targets"], json!({"protected": 1, "skipped": 1, "terminated": 1}));
}

#[tokio::test]
async fn expired_sandboxes_are_found_across_pages_each_with_its_own_token() {
    fn expires(when: &str) -> [(&str, &str); 1] {
        [("teardown:expires-at", when)]
    }
    let pages = [
        vec![
            product("pp-past00001", "sbx-past", ProvisionedProductStatus::Available, &expires("2026-11-01")),
            product("pp-future001", "sbx-future", ProvisionedProductStatus::Available, &expires("2027-01-01")),
        ],
        vec![
            product("pp-garbled01", "sbx-garbled", ProvisionedProductStatus::Available, &expires("whenever")),
            product("pp-changing1", "sbx-changing", ProvisionedProductStatus::UnderChange, &expires("2026-10-01")),
        ],
        vec![
            product(
                "pp-keep00001",
                "sbx-keep",
                ProvisionedProductStatus::Available,
                &[("teardown:expires-at", "2026-10-01"), ("teardown:protect", "x")],
            ),
            product("pp-past00002", "sbx-past2", ProvisionedProductStatus::Error, &expires("2026-11-24T09:00:00Z")),
        ],
    ];
    let catalog: Vec<ProvisionedProductAttribute> = pages.concat();
    let queries = log::<Option<String>>();
    let search = {
        let queries = queries.clone();
        mock!(aws_sdk_servicecatalog::Client::search_provisioned_products).then_compute_output(move |req| {
            queries
                .lock()
                .unwrap()
                .push(req.filters().and_then(|f| f.values().next()).and_then(|v| v.first()).cloned());
            let page = page_of(req.page_token());
            SearchProvisionedProductsOutput::builder()
                .set_provisioned_products(Some(pages[page].clone()))
                .set_next_page_token(next_token(page))
                .build()
        })
    };
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let sent = log();
    let send = sqs_send_ok(&sent);
    let (describe, record) = sc_authoritative(catalog);
    let app =
        Doubles { ws: &[], mgn: &[], sc: &[&search, &describe, &record, &terminate], sqs: &[&send] }.app(settings());

    let report = invoke(
        &app,
        json!({"operation": "TerminateProvisionedProduct", "select": {"productId": "prod-sandbox", "expired": true, "RetainPhysicalResources": false}}),
    )
    .await
    .unwrap();

    assert_eq!(
        taken(&queries),
        vec![Some("productId:prod-sandbox".to_owned()); 3],
        "every page, narrowed on the server"
    );
    let mut terminated: Vec<(Option<String>, Option<String>)> =
        taken(&seen).into_iter().map(|(id, _, token)| (id, token)).collect();
    terminated.sort();
    assert_eq!(
        terminated.iter().map(|(id, _)| id.clone().unwrap()).collect::<Vec<_>>(),
        vec!["pp-past00001", "pp-past00002"]
    );
    assert_ne!(terminated[0].1, terminated[1].1, "one token per product");
    let outcomes = target_outcomes(&report, 0);
    assert_eq!(
        outcomes,
        vec![
            ("pp-past00001".into(), "terminated".into()),
            ("pp-garbled01".into(), "skipped".into()),
            ("pp-changing1".into(), "transient".into()),
            ("pp-keep00001".into(), "protected".into()),
            ("pp-past00002".into(), "terminated".into()),
        ]
    );
    // UNDER_CHANGE will settle: outside SQS that is a record with a replayable request,
    // which keeps every filter of the selection (docs/reference.md, "The dead-letter record"): on replay the product
    // is terminated only if it is still of that product and still expired.
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1["outcome"], "transient");
    assert_eq!(
        sent[0].1["retryRequest"],
        json!({"operation": "TerminateProvisionedProduct", "select": {
            "ids": ["pp-changing1"], "productId": "prod-sandbox", "expired": true, "RetainPhysicalResources": false}})
    );
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

#[tokio::test]
async fn a_named_target_that_is_protected_or_suspended_gets_no_call() {
    let describe = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(|req| {
        let found = req
            .workspace_ids()
            .iter()
            .map(|id| {
                workspace(id, if id == "ws-susp0001" { WorkspaceState::Suspended } else { WorkspaceState::Available })
            })
            .collect();
        DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
    });
    let tags = mock!(aws_sdk_workspaces::Client::describe_tags)
        .match_requests(|req| req.resource_id() == Some("ws-prot0001"))
        .then_output(|| {
            DescribeTagsOutput::builder()
                .tag_list(WsTag::builder().key("teardown:protect").value("legal hold").build().unwrap())
                .build()
        });
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&describe, &tags, &terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());

    let report = invoke(&app, ws_request(&["ws-prot0001".into(), "ws-susp0001".into()])).await.unwrap();

    assert!(taken(&calls).is_empty(), "no terminate call at all");
    assert_eq!(report["requests"][0]["targets"][0]["outcome"], "protected");
    assert_eq!(report["requests"][0]["targets"][0]["reason"], "tag teardown:protect=\"legal hold\": never terminated");
    assert_eq!(report["requests"][0]["targets"][1]["outcome"], "skipped");
    assert_eq!(report["requests"][0]["outcome"], "skipped");
}

#[tokio::test]
async fn a_workspace_whose_tags_cannot_be_read_is_not_terminated() {
    let tags = mock!(aws_sdk_workspaces::Client::describe_tags)
        .then_http_response(|| http(400, r#"{"__type":"AccessDeniedException","message":"not allowed"}"#));
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&tags, &terminate], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());

    let report = invoke(&app, ws_request(&["ws-tags0001".into()])).await.unwrap();

    assert!(taken(&calls).is_empty(), "without its tags, protection cannot be checked: no call");
    assert_eq!(taken(&sent)[0].1["failedTargets"][0]["code"], "AccessDeniedException");
    assert_eq!(report["requests"][0]["outcome"], "rejected");
    assert_eq!(report["requests"][0]["targets"][0]["error"]["code"], "AccessDeniedException");
}

#[tokio::test]
async fn source_servers_from_different_messages_share_calls_when_their_job_tags_match() {
    let calls = log::<(Vec<String>, Option<std::collections::HashMap<String, String>>)>();
    let terminate = {
        let calls = calls.clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances).then_compute_output(move |req| {
            let ids = req.source_server_ids().to_vec();
            calls.lock().unwrap().push((ids.clone(), req.tags().cloned()));
            let mut job = Job::builder().job_id(format!("job-{}", ids[0]));
            for id in &ids {
                job = job.participating_servers(ParticipatingServer::builder().source_server_id(id).build().unwrap());
            }
            TerminateTargetInstancesOutput::builder().job(job.build().unwrap()).build()
        })
    };
    let app =
        Doubles { ws: &[], mgn: &[&terminate], sc: &[], sqs: &[] }.app(Settings { max_targets: 500, ..settings() });
    let ids = source_ids(330);
    let request = |ids: &[String], ticket: &str| json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ids, "tags": {"ticket": ticket}}});
    // Two messages with the same job tags (overlapping by 20), one with other tags.
    let report = invoke(
        &app,
        json!({"requests": [request(&ids[..170], "A"), request(&ids[150..300], "A"), request(&ids[300..], "B")]}),
    )
    .await
    .unwrap();

    let calls = taken(&calls);
    let mut shapes: Vec<(usize, String)> = calls
        .iter()
        .map(|(ids, tags)| (ids.len(), tags.as_ref().and_then(|t| t.get("ticket")).cloned().unwrap_or_default()))
        .collect();
    shapes.sort();
    assert_eq!(
        shapes,
        vec![(30, "B".into()), (100, "A".into()), (200, "A".into())],
        "⌈300/200⌉ shared calls for A, one for B"
    );
    let mut sent: Vec<String> = calls.iter().flat_map(|(ids, _)| ids.clone()).collect();
    sent.sort();
    assert_eq!(sent, ids, "each server exactly once");
    // Each request gets exactly its own servers, in its own order, with the outcome its call gave them.
    for (r, own) in [(0, &ids[..170]), (1, &ids[150..300]), (2, &ids[300..])] {
        let got = target_outcomes(&report, r);
        assert_eq!(
            got.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            own.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert!(got.iter().all(|(_, outcome)| outcome == "terminated"), "request {r}");
        // Each target names the job of the one call that carried it.
        for (i, target) in report["requests"][r]["targets"].as_array().unwrap().iter().enumerate() {
            let call = calls.iter().find(|(ids, _)| ids.contains(&own[i])).unwrap();
            assert_eq!(target["jobId"], format!("job-{}", call.0[0]), "request {r}, {}", own[i]);
        }
    }
}

// ---------------------------------------------------------------------------
// Contract v2: never broader, never twice, never lost. One test (at least) per rule.
// ---------------------------------------------------------------------------

/// An SQS event whose records carry the given attributes (receive count, FIFO group…)
/// and come from `queue_arn`.
type Attributes<'a> = &'a [(&'a str, &'a str)];

fn sqs_event_from(queue_arn: &str, records: &[(&str, Value, Attributes)]) -> Value {
    let mut event = sqs_event(&records.iter().map(|(id, body, _)| (*id, body.clone())).collect::<Vec<_>>());
    for (record, (_, _, attributes)) in event["Records"].as_array_mut().unwrap().iter_mut().zip(records) {
        record["eventSourceARN"] = json!(queue_arn);
        for (name, value) in attributes.iter() {
            record["attributes"][*name] = json!(value);
        }
    }
    event
}

/// WorkSpaces all tagged env=sandbox; the user of each last connected `idle_days` ago.
fn idle_sandbox(idle_days: &'static Mutex<i64>) -> (Rule, Rule) {
    let tags = mock!(aws_sdk_workspaces::Client::describe_tags).then_output(|| {
        DescribeTagsOutput::builder().tag_list(WsTag::builder().key("env").value("sandbox").build().unwrap()).build()
    });
    let connections =
        mock!(aws_sdk_workspaces::Client::describe_workspaces_connection_status).then_compute_output(move |req| {
            let days = *idle_days.lock().unwrap();
            let statuses = req
                .workspace_ids()
                .iter()
                .map(|id| {
                    WorkspaceConnectionStatus::builder()
                        .workspace_id(id)
                        .last_known_user_connection_timestamp(days_ago(days))
                        .build()
                })
                .collect();
            DescribeWorkspacesConnectionStatusOutput::builder().set_workspaces_connection_status(Some(statuses)).build()
        });
    (tags, connections)
}

/// Rule 1: a replay is never broader than its original. The retry of a failed
/// selection keeps its filters, so once the WorkSpace's user is back, replaying the
/// record terminates nothing.
#[tokio::test]
async fn replaying_a_selections_record_after_the_user_came_back_terminates_nothing() {
    static IDLE_DAYS: Mutex<i64> = Mutex::new(40);
    let (tags, connections) = idle_sandbox(&IDLE_DAYS);
    let listed = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(|req| {
        let ids =
            if req.workspace_ids().is_empty() { vec!["ws-idle0001".to_owned()] } else { req.workspace_ids().to_vec() };
        let found = ids.iter().map(|id| workspace(id, WorkspaceState::Available)).collect();
        DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
    });
    let calls = log::<Vec<String>>();
    let refused_once = {
        let calls = calls.clone();
        mock!(aws_sdk_workspaces::Client::terminate_workspaces).then_compute_output(move |req| {
            let ids: Vec<String> =
                req.terminate_workspace_requests().iter().map(|r| r.workspace_id().to_owned()).collect();
            calls.lock().unwrap().push(ids.clone());
            let failed = FailedWorkspaceChangeRequest::builder()
                .workspace_id(&ids[0])
                .error_code("InvalidResourceState")
                .error_message("busy")
                .build();
            TerminateWorkspacesOutput::builder().failed_requests(failed).build()
        })
    };
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&listed, &tags, &connections, &refused_once], mgn: &[], sc: &[], sqs: &[&send] }
        .app(settings());
    let original = json!({"operation": "TerminateWorkspaces", "dryRun": false,
        "select": {"tags": {"env": "sandbox"}, "idleDays": 30, "directoryId": "d-1234567890"}});

    let report = invoke(&app, original).await.unwrap();
    assert_eq!(report["requests"][0]["outcome"], "rejected");
    let retry = taken(&sent)[0].1["retryRequest"].clone();
    assert_eq!(
        retry,
        json!({"operation": "TerminateWorkspaces", "dryRun": false, "select": {
            "ids": ["ws-idle0001"], "tags": {"env": "sandbox"}, "idleDays": 30, "directoryId": "d-1234567890"}})
    );

    // The user connects again; the cause of the refusal is fixed; a person replays.
    *IDLE_DAYS.lock().unwrap() = 1;
    calls.lock().unwrap().clear();
    let replay = invoke(&app, retry).await.unwrap();
    assert!(taken(&calls).is_empty(), "the replay must not terminate a WorkSpace that is no longer idle");
    assert_eq!(replay["requests"][0]["targets"], json!([]));
}

fn sc_search_nothing() -> Rule {
    mock!(aws_sdk_servicecatalog::Client::search_provisioned_products)
        .then_output(|| SearchProvisionedProductsOutput::builder().build())
}

/// Rule 2: a search miss is not "gone". DescribeProvisionedProduct decides; a product
/// the search index misses but that exists has unknown tags: transient, no call.
#[tokio::test]
async fn a_product_the_search_index_misses_is_transient_and_never_terminated() {
    let calls = log();
    let terminate = sc_terminate_recording(&calls);
    let search = sc_search_nothing();
    let app = Doubles { ws: &[], mgn: &[], sc: &[&search, &terminate], sqs: &[] }.app(settings());
    let request =
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox-new"}});

    let response = invoke(&app, sqs_event(&[("m-1", request)])).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1"], "redelivered: the index may list it later");
    assert!(taken(&calls).is_empty(), "its protection tag is unknown: no terminate call");
}

#[tokio::test]
async fn a_product_that_describe_does_not_know_is_not_found_without_a_terminate_call() {
    let calls = log();
    let terminate = sc_terminate_recording(&calls);
    let gone = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_http_response(|| {
        http(400, r#"{"__type":"ResourceNotFoundException","Message":"Provisioned product not found"}"#)
    });
    let app = Doubles { ws: &[], mgn: &[], sc: &[&gone, &terminate], sqs: &[] }.app(settings());
    let request = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-gone0001"}});

    let report = invoke(&app, request).await.unwrap();

    assert_eq!(target_outcomes(&report, 0), vec![("pp-gone0001".to_owned(), "not_found".to_owned())]);
    assert!(taken(&calls).is_empty());
}

fn mgn_jobs(jobs: Vec<Job>) -> Rule {
    mock!(aws_sdk_mgn::Client::describe_jobs)
        .then_output(move || DescribeJobsOutput::builder().set_items(Some(jobs.clone())).build())
}

fn job(id: &str, kind: aws_sdk_mgn::types::JobType, status: aws_sdk_mgn::types::JobStatus, servers: &[&str]) -> Job {
    Job::builder()
        .job_id(id)
        .r#type(kind)
        .status(status)
        .set_participating_servers(Some(
            servers.iter().map(|s| ParticipatingServer::builder().source_server_id(*s).build().unwrap()).collect(),
        ))
        .build()
        .unwrap()
}

fn mgn_terminate_recording(calls: &Log<Vec<String>>) -> Rule {
    let calls = calls.clone();
    mock!(aws_sdk_mgn::Client::terminate_target_instances).then_compute_output(move |req| {
        calls.lock().unwrap().push(req.source_server_ids().to_vec());
        TerminateTargetInstancesOutput::builder().job(Job::builder().job_id("mgnjob-new").build().unwrap()).build()
    })
}

/// Rule 3: a redelivery never starts a second MGN job. A server in a PENDING or
/// STARTED TERMINATE job is `terminated`, naming that job; finished jobs and launch
/// jobs do not count.
#[tokio::test]
async fn a_server_already_in_a_running_terminate_job_is_not_sent_again() {
    use aws_sdk_mgn::types::{JobStatus, JobType};
    let (a, b, c) = ("s-aaaaaaaaaaaaaaaaa", "s-bbbbbbbbbbbbbbbbb", "s-ccccccccccccccccc");
    let jobs = mgn_jobs(vec![
        job("mgnjob-running", JobType::Terminate, JobStatus::Started, &[a]),
        job("mgnjob-pending", JobType::Terminate, JobStatus::Pending, &[b]),
        job("mgnjob-done", JobType::Terminate, JobStatus::Completed, &[c]),
        job("mgnjob-launch", JobType::Launch, JobStatus::Started, &[c]),
    ]);
    let calls = log();
    let terminate = mgn_terminate_recording(&calls);
    let app = Doubles { ws: &[], mgn: &[&jobs, &terminate], sc: &[], sqs: &[] }.app(settings());
    let request = json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": [a, b, c]}});

    let report = invoke(&app, request).await.unwrap();

    assert_eq!(taken(&calls), vec![vec![c.to_owned()]], "only the server in no running TERMINATE job is sent");
    let targets = report["requests"][0]["targets"].as_array().unwrap();
    assert_eq!(
        (targets[0]["outcome"].as_str(), targets[0]["jobId"].as_str()),
        (Some("terminated"), Some("mgnjob-running"))
    );
    assert_eq!(
        (targets[1]["outcome"].as_str(), targets[1]["jobId"].as_str()),
        (Some("terminated"), Some("mgnjob-pending"))
    );
    assert_eq!(
        (targets[2]["outcome"].as_str(), targets[2]["jobId"].as_str()),
        (Some("terminated"), Some("mgnjob-new"))
    );
}

/// Rule 4: MGN lifecycle is an allow-list, so naming a DISCONNECTED or CUTOVER
/// server (or one in a state teardown does not know) makes no call.
#[tokio::test]
async fn named_servers_outside_the_allowed_lifecycle_states_get_no_call() {
    let describe = mock!(aws_sdk_mgn::Client::describe_source_servers).then_compute_output(|req| {
        let ids = req.filters().map(|f| f.source_server_ids().to_vec()).unwrap_or_default();
        let state = |id: &str| match id {
            "s-ddddddddddddddddd" => LifeCycleState::Disconnected,
            "s-ccccccccccccccccc" => LifeCycleState::Cutover,
            _ => LifeCycleState::from("FUTURE_STATE"),
        };
        let found = ids.iter().map(|id| source_server(id, state(id), true, &[])).collect();
        DescribeSourceServersOutput::builder().set_items(Some(found)).build()
    });
    let calls = log();
    let terminate = mgn_terminate_recording(&calls);
    let app = Doubles { ws: &[], mgn: &[&describe, &terminate], sc: &[], sqs: &[] }.app(settings());
    let ids = ["s-ddddddddddddddddd", "s-ccccccccccccccccc", "s-fffffffffffffffff"];
    let request = json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ids}});

    let report = invoke(&app, request).await.unwrap();

    assert!(taken(&calls).is_empty());
    let reasons: Vec<(&str, &str)> = report["requests"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["outcome"].as_str().unwrap(), t["reason"].as_str().unwrap()))
        .collect();
    assert!(reasons.iter().all(|(o, _)| *o == "skipped"), "{reasons:?}");
    assert!(reasons[0].1.starts_with("lifecycle DISCONNECTED: its launched instance may be serving production"));
    assert!(reasons[1].1.starts_with("lifecycle CUTOVER"));
    assert!(reasons[2].1.starts_with("lifecycle FUTURE_STATE"));
}

/// Rule 5: one target's fault stays its own. A shared TerminateTargetInstances call
/// refused as a whole is retried apart, so m-1's good server is terminated and only
/// m-2, whose server is bad, is rejected. No id is sent in two apart calls.
#[tokio::test]
async fn a_shared_mgn_call_refused_as_a_whole_is_retried_apart_per_message() {
    let (good, bad) = ("s-aaaaaaaaaaaaaaaaa", "s-bbbbbbbbbbbbbbbbb");
    let calls = log::<Vec<String>>();
    let terminate = {
        let calls = calls.clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances)
            .match_requests(move |req| {
                calls.lock().unwrap().push(req.source_server_ids().to_vec());
                req.source_server_ids().iter().any(|id| id == bad)
            })
            .then_http_response(|| {
                http(409, r#"{"message":"Source server s-bbbbbbbbbbbbbbbbb is not ready","code":"ConflictException"}"#)
            })
    };
    let accept = mock!(aws_sdk_mgn::Client::terminate_target_instances).then_output(|| {
        TerminateTargetInstancesOutput::builder().job(Job::builder().job_id("mgnjob-apart").build().unwrap()).build()
    });
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[], mgn: &[&terminate, &accept], sc: &[], sqs: &[&send] }.app(settings());
    let request = |id: &str| json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": [id]}});

    let response = invoke(&app, sqs_event(&[("m-1", request(good)), ("m-2", request(bad))])).await.unwrap();

    assert!(failures(&response).is_empty());
    let mut calls = taken(&calls);
    calls.sort();
    assert_eq!(calls, vec![vec![good.to_owned()], vec![good.to_owned(), bad.to_owned()], vec![bad.to_owned()]]);
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1, "only m-2 is dead-lettered");
    assert_eq!(sent[0].1["source"]["messageId"], "m-2");
    assert_eq!(sent[0].1["failedTargets"][0]["id"], bad);
    assert_eq!(sent[0].3, "rejected");
}

/// Rule 5: a WorkSpace that went between a selection's listing and its tag lookup
/// is dropped from the selection, not a failure of the whole scheduled cleanup.
#[tokio::test]
async fn a_workspace_gone_before_its_tag_lookup_is_dropped_and_the_rest_are_terminated() {
    let listed = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_output(|| {
        DescribeWorkspacesOutput::builder()
            .workspaces(workspace("ws-stays0001", WorkspaceState::Available))
            .workspaces(workspace("ws-gone00001", WorkspaceState::Available))
            .build()
    });
    let tags_gone = mock!(aws_sdk_workspaces::Client::describe_tags)
        .match_requests(|req| req.resource_id() == Some("ws-gone00001"))
        .then_http_response(|| http(400, r#"{"__type":"ResourceNotFoundException","message":"not found"}"#));
    let tags = mock!(aws_sdk_workspaces::Client::describe_tags).then_output(|| {
        DescribeTagsOutput::builder().tag_list(WsTag::builder().key("env").value("sandbox").build().unwrap()).build()
    });
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&listed, &tags_gone, &tags, &terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());

    let report = invoke(&app, json!({"operation": "TerminateWorkspaces", "select": {"tags": {"env": "sandbox"}}}))
        .await
        .unwrap();

    assert_eq!(taken(&calls), vec![vec!["ws-stays0001".to_owned()]]);
    assert_eq!(target_outcomes(&report, 0), vec![("ws-stays0001".to_owned(), "terminated".to_owned())]);
    assert_eq!(report["requests"][0]["outcome"], "terminated");
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

/// Rule 7: a FIFO group is worked in order; once a message must be redelivered, the
/// later messages of its group are not worked and go back too. Other groups go on,
/// and no call is shared across groups.
#[tokio::test]
async fn a_fifo_group_stops_at_its_first_redelivered_message_and_other_groups_go_on() {
    let calls = log::<Vec<String>>();
    let terminate = {
        let calls = calls.clone();
        mock!(aws_sdk_workspaces::Client::terminate_workspaces)
            .match_requests(move |req| {
                let ids: Vec<String> =
                    req.terminate_workspace_requests().iter().map(|r| r.workspace_id().to_owned()).collect();
                calls.lock().unwrap().push(ids.clone());
                ids.contains(&"ws-throttl01".to_owned())
            })
            .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#))
    };
    let accept = mock!(aws_sdk_workspaces::Client::terminate_workspaces)
        .then_output(|| TerminateWorkspacesOutput::builder().build());
    let app = Doubles { ws: &[&terminate, &accept], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    let fifo = "arn:aws:sqs:us-east-1:123456789012:teardown-requests.fifo";
    let one = |id: &str| ws_request(&[id.to_owned()]);
    let event = sqs_event_from(
        fifo,
        &[
            ("m-1", one("ws-throttl01"), &[("MessageGroupId", "g1")]),
            ("m-2", one("ws-later0001"), &[("MessageGroupId", "g1")]),
            ("m-3", one("ws-other0001"), &[("MessageGroupId", "g2")]),
            ("m-4", one("ws-other0002"), &[("MessageGroupId", "g2")]),
        ],
    );

    let response = invoke(&app, event).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1", "m-2"]);
    let calls = taken(&calls);
    assert!(calls.iter().all(|c| c.len() == 1), "no call shared across messages of a FIFO queue: {calls:?}");
    let sent: Vec<&str> = calls.iter().map(|c| c[0].as_str()).collect();
    assert!(!sent.contains(&"ws-later0001"), "m-2 waits for m-1: {sent:?}");
    let g2: Vec<&&str> = sent.iter().filter(|id| id.starts_with("ws-other")).collect();
    assert_eq!(g2, vec![&"ws-other0001", &"ws-other0002"], "g2 goes on, in its order");
}

/// Rule 7: a FIFO dead-letter queue gets the source message's group and a
/// deduplication id (the SHA-256 of the record without failedAt).
#[tokio::test]
async fn a_fifo_dead_letter_queue_gets_a_group_and_a_deduplication_id() {
    let sent = log::<(Option<String>, Option<String>, Value)>();
    let send = {
        let sent = sent.clone();
        mock!(aws_sdk_sqs::Client::send_message).then_compute_output(move |req| {
            let body = serde_json::from_str(req.message_body().unwrap_or_default()).unwrap_or(Value::Null);
            sent.lock().unwrap().push((
                req.message_group_id().map(str::to_owned),
                req.message_deduplication_id().map(str::to_owned),
                body,
            ));
            SendMessageOutput::builder().message_id("dlq-1").build()
        })
    };
    let fifo_dlq = "https://sqs.us-east-1.amazonaws.com/123456789012/teardown-dlq.fifo";
    let app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { dlq_url: Some(fifo_dlq.to_owned()), ..settings() });
    let event = sqs_event_from(
        "arn:aws:sqs:us-east-1:123456789012:teardown-requests.fifo",
        &[("m-1", json!({"operation": "Nope"}), &[("MessageGroupId", "team-a")])],
    );
    invoke(&app, event.clone()).await.unwrap();
    invoke(&app, json!({"operation": "Nope"})).await.unwrap();

    let sent = taken(&sent);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].0.as_deref(), Some("team-a"), "the source message's group");
    assert_eq!(sent[1].0.as_deref(), Some("teardown"), "no source group: teardown's own");
    let dedup = sent[0].1.clone().unwrap();
    assert_eq!(dedup.len(), 64);
    assert!(dedup.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(sent[0].1, sent[1].1, "two different records never collide");
    let mut without_time = sent[0].2.clone();
    without_time.as_object_mut().unwrap().remove("failedAt");
    use sha2::Digest;
    let want: String = sha2::Sha256::digest(teardown::decode::canonical(&without_time).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(dedup, want);
}

/// Rule 8: the last delivery is settled with a record (outcome transient, the last
/// error, a retry request) and not handed back; earlier deliveries are handed back
/// without one; an unpublished record still hands the message back.
#[tokio::test]
async fn the_last_delivery_is_settled_with_a_record_instead_of_a_bare_body() {
    let throttled = mock!(aws_sdk_workspaces::Client::terminate_workspaces)
        .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&throttled], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { max_receives: Some(3), ..settings() });
    let ids = ws_ids(1, "l");
    let arn = "arn:aws:sqs:us-east-1:123456789012:teardown-requests";
    let delivery =
        |count: &str| sqs_event_from(arn, &[("m-1", ws_request(&ids), &[("ApproximateReceiveCount", count)])]);

    let second = invoke(&app, delivery("2")).await.unwrap();
    assert_eq!(failures(&second), vec!["m-1"]);
    assert!(taken(&sent).is_empty(), "not the last delivery: no record yet");

    let last = invoke(&app, delivery("3")).await.unwrap();
    assert!(failures(&last).is_empty(), "settled, not handed back");
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].3, "transient");
    assert_eq!(sent[0].1["error"]["code"], "ThrottlingException");
    assert_eq!(sent[0].1["retryRequest"], ws_request(&ids));
    assert_eq!(sent[0].1["source"]["receiveCount"], 3);

    // The record cannot be published: the message goes back, never lost.
    let down = mock!(aws_sdk_sqs::Client::send_message)
        .then_http_response(|| http(500, r#"{"__type":"InternalError","message":"down"}"#));
    let throttled = mock!(aws_sdk_workspaces::Client::terminate_workspaces)
        .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
    let app = Doubles { ws: &[&throttled], mgn: &[], sc: &[], sqs: &[&down] }
        .app(Settings { max_receives: Some(3), ..settings() });
    assert_eq!(failures(&invoke(&app, delivery("4")).await.unwrap()), vec!["m-1"]);
}

/// Rule 8: a FIFO message not worked is returned as it is, even on its last delivery.
#[tokio::test]
async fn a_fifo_message_not_worked_is_returned_without_a_record_even_on_its_last_delivery() {
    let throttled = mock!(aws_sdk_workspaces::Client::terminate_workspaces)
        .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&throttled], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { max_receives: Some(2), ..settings() });
    let event = sqs_event_from(
        "arn:aws:sqs:us-east-1:123456789012:teardown-requests.fifo",
        &[
            ("m-1", ws_request(&ws_ids(1, "f")), &[("MessageGroupId", "g"), ("ApproximateReceiveCount", "1")]),
            ("m-2", ws_request(&ws_ids(1, "g")), &[("MessageGroupId", "g"), ("ApproximateReceiveCount", "2")]),
        ],
    );

    let response = invoke(&app, event).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1", "m-2"]);
    assert!(taken(&sent).is_empty(), "m-2 was not worked: nothing to record");
}

/// Rule 9: dead-letter publishing is bounded by the invocation's deadline: past it
/// nothing is started, and outside SQS the invocation fails so Lambda retries it.
#[tokio::test]
async fn dead_letter_publishing_does_not_start_past_the_deadline() {
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());
    let mut context = Context::default();
    let now_ms = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
    context.deadline = now_ms + 100; // less than what answering needs

    let result = handle(&app, LambdaEvent::new(json!({"operation": "Nope"}), context)).await;

    assert!(result.is_err(), "an unpublished record fails a direct invocation");
    assert!(taken(&sent).is_empty(), "no publish is started that the deadline would cut off");
}

/// An absurd deadline header must not panic the handler.
#[tokio::test]
async fn an_absurd_deadline_does_not_panic() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    let mut context = Context::default();
    context.deadline = u64::MAX;
    let report = handle(&app, LambdaEvent::new(ws_request(&ws_ids(1, "z")), context)).await.unwrap();
    assert_eq!(report["requests"][0]["outcome"], "terminated");
}

// ---------------------------------------------------------------------------
// What the review of the v2 change found: each a way to terminate wrongly, twice,
// or to lose a failure.
// ---------------------------------------------------------------------------

/// One MGN server named by two messages whose job tags differ goes into one call:
/// two calls would start two jobs.
#[tokio::test]
async fn one_mgn_server_named_by_messages_with_different_job_tags_is_sent_once() {
    let calls = log();
    let terminate = mgn_terminate_recording(&calls);
    let app = Doubles { ws: &[], mgn: &[&terminate], sc: &[], sqs: &[] }.app(settings());
    let x = "s-xxxxxxxxxxxxxxxxx";
    let tagged =
        json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": [x], "tags": {"ticket": "A"}}});
    let plain =
        json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": [x, "s-yyyyyyyyyyyyyyyyy"]}});

    let report = invoke(&app, json!({"requests": [tagged, plain]})).await.unwrap();

    let calls = taken(&calls);
    let sent_x = calls.iter().flatten().filter(|id| *id == x).count();
    assert_eq!(sent_x, 1, "{calls:?}");
    assert_eq!(target_outcomes(&report, 0), vec![(x.to_owned(), "terminated".to_owned())]);
    assert_eq!(target_outcomes(&report, 1)[0], (x.to_owned(), "terminated".to_owned()));
}

/// In a FIFO batch, one MGN server named in two groups is sent once: in the same
/// round the call is shared for that server, and a later round finds it among the
/// servers this invocation has already sent.
#[tokio::test]
async fn one_mgn_server_named_by_two_fifo_groups_is_sent_once() {
    let calls = log();
    let terminate = mgn_terminate_recording(&calls);
    let app = Doubles { ws: &[], mgn: &[&terminate], sc: &[], sqs: &[] }.app(settings());
    let x = "s-xxxxxxxxxxxxxxxxx";
    let request = |ids: &[&str]| json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ids}});
    let event = sqs_event_from(
        "arn:aws:sqs:us-east-1:123456789012:teardown-requests.fifo",
        &[
            ("m-1", request(&[x]), &[("MessageGroupId", "g1")]),
            ("m-2", request(&[x]), &[("MessageGroupId", "g2")]),
            ("m-3", request(&["s-aaaaaaaaaaaaaaaaa"]), &[("MessageGroupId", "g3")]),
            ("m-4", request(&[x]), &[("MessageGroupId", "g3")]),
        ],
    );

    let response = invoke(&app, event).await.unwrap();

    assert!(failures(&response).is_empty());
    let calls = taken(&calls);
    assert_eq!(calls.iter().flatten().filter(|id| *id == x).count(), 1, "{calls:?}");
}

/// A whole-call ResourceNotFoundException says one server went, not which: the
/// others are not gone. The message is redelivered, and the next lookup decides.
#[tokio::test]
async fn an_mgn_call_refused_as_not_found_does_not_report_the_other_servers_gone() {
    let missing = mock!(aws_sdk_mgn::Client::terminate_target_instances).then_http_response(|| {
        http(404, r#"{"message":"Source server not found","code":"ResourceNotFoundException"}"#)
    });
    let app = Doubles { ws: &[], mgn: &[&missing], sc: &[], sqs: &[] }.app(settings());
    let request = json!({"operation": "TerminateTargetInstances",
        "input": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa", "s-bbbbbbbbbbbbbbbbb"]}});

    let response = invoke(&app, sqs_event(&[("m-1", request)])).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1"], "redelivered, not reported done");
}

/// A server named by two messages sits in the first one's part; when the first
/// one's own server makes its apart call fail, the second message still gets the
/// shared server terminated, and only the first is charged with its bad server.
#[tokio::test]
async fn a_shared_server_is_not_charged_with_another_messages_bad_server() {
    let (x, bad) = ("s-xxxxxxxxxxxxxxxxx", "s-bbbbbbbbbbbbbbbbb");
    let calls = log::<Vec<String>>();
    let refuse = {
        let calls = calls.clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances)
            .match_requests(move |req| {
                calls.lock().unwrap().push(req.source_server_ids().to_vec());
                req.source_server_ids().iter().any(|id| id == bad)
            })
            .then_http_response(|| http(409, r#"{"message":"not ready","code":"ConflictException"}"#))
    };
    let accept = mock!(aws_sdk_mgn::Client::terminate_target_instances).then_output(|| {
        TerminateTargetInstancesOutput::builder().job(Job::builder().job_id("mgnjob-x").build().unwrap()).build()
    });
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[], mgn: &[&refuse, &accept], sc: &[], sqs: &[&send] }.app(settings());
    let request = |ids: &[&str]| json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ids}});

    let response = invoke(&app, sqs_event(&[("m-1", request(&[x, bad])), ("m-2", request(&[x]))])).await.unwrap();

    assert!(failures(&response).is_empty());
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1, "only m-1 is dead-lettered");
    assert_eq!(sent[0].1["source"]["messageId"], "m-1");
    assert_eq!(sent[0].1["failedTargets"].as_array().unwrap().len(), 1);
    assert_eq!(sent[0].1["failedTargets"][0]["id"], bad);
    let calls = taken(&calls);
    assert_eq!(calls.iter().flatten().filter(|id| *id == x).count(), 3, "shared, m-1 apart, m-2 apart: {calls:?}");
}

/// The search index lags: a product it still shows as expired and AVAILABLE is
/// looked up where Service Catalog is authoritative before it is terminated. Its
/// expiry moved (record tags) or it is changing now: not terminated.
#[tokio::test]
async fn a_selection_judges_products_again_on_authoritative_status_and_tags() {
    let indexed = vec![
        product("pp-moved0001", "moved", ProvisionedProductStatus::Available, &[("teardown:expires-at", "2026-11-01")]),
        product("pp-busy00001", "busy", ProvisionedProductStatus::Available, &[("teardown:expires-at", "2026-11-01")]),
        product("pp-due000001", "due", ProvisionedProductStatus::Available, &[("teardown:expires-at", "2026-11-01")]),
    ];
    let now = vec![
        product("pp-moved0001", "moved", ProvisionedProductStatus::Available, &[("teardown:expires-at", "2027-06-01")]),
        product(
            "pp-busy00001",
            "busy",
            ProvisionedProductStatus::UnderChange,
            &[("teardown:expires-at", "2026-11-01")],
        ),
        product("pp-due000001", "due", ProvisionedProductStatus::Available, &[("teardown:expires-at", "2026-11-01")]),
    ];
    let search = mock!(aws_sdk_servicecatalog::Client::search_provisioned_products).then_output(move || {
        SearchProvisionedProductsOutput::builder().set_provisioned_products(Some(indexed.clone())).build()
    });
    let (describe, record) = sc_authoritative(now);
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&search, &describe, &record, &terminate], sqs: &[] }.app(settings());

    let response = invoke(
        &app,
        sqs_event(&[("m-1", json!({"operation": "TerminateProvisionedProduct", "select": {"expired": true}}))]),
    )
    .await
    .unwrap();

    let terminated: Vec<Option<String>> = taken(&seen).into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(terminated, vec![Some("pp-due000001".to_owned())]);
    assert_eq!(failures(&response), vec!["m-1"], "the product under change is retried");
}

/// A named product whose protection tag is on its record but not yet in the index is protected.
#[tokio::test]
async fn a_named_product_protected_on_its_record_but_not_in_the_index_is_protected() {
    let catalog =
        vec![product("pp-guarded01", "guarded", ProvisionedProductStatus::Available, &[("teardown:protect", "yes")])];
    let (describe, record) = sc_authoritative(catalog);
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    // The default search finds it, untagged: the index has not seen the tag yet.
    let app = Doubles { ws: &[], mgn: &[], sc: &[&describe, &record, &terminate], sqs: &[] }.app(settings());
    let request =
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-guarded01"}});

    let report = invoke(&app, request).await.unwrap();

    assert!(taken(&seen).is_empty());
    assert_eq!(target_outcomes(&report, 0), vec![("pp-guarded01".to_owned(), "protected".to_owned())]);
}

/// A name that, by redelivery time, names a product provisioned after the request
/// was sent is not the product the request meant: nothing is terminated.
#[tokio::test]
async fn a_name_that_now_names_a_newer_product_terminates_nothing() {
    let created = aws_smithy_types::DateTime::from_secs(1_800_000_000); // 2027
    let newer = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_output(move || {
        DescribeProvisionedProductOutput::builder()
            .provisioned_product_detail(
                ProvisionedProductDetail::builder()
                    .id("pp-sandbox")
                    .name("sandbox")
                    .status(ProvisionedProductStatus::Available)
                    .created_time(created)
                    .last_successful_provisioning_record_id("rec-1")
                    .build(),
            )
            .build()
    });
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&newer, &terminate], sqs: &[] }.app(settings());
    let request = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox"}});
    let mut event = sqs_event(&[("m-1", request)]);
    event["Records"][0]["attributes"]["SentTimestamp"] = json!("1763978400000"); // 2025-11-24

    let response = invoke(&app, event).await.unwrap();

    assert!(failures(&response).is_empty());
    assert!(taken(&seen).is_empty(), "the newer product is not the one named");
}

/// A product named by ARN is looked up by the id the ARN ends with, and only if the
/// product there has that ARN.
#[tokio::test]
async fn a_product_named_by_arn_is_looked_up_by_its_id_and_terminated_by_it() {
    let arn = "arn:aws:servicecatalog:us-east-1:123456789012:stack/sandbox/pp-arnnamed1";
    let describe = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product)
        .match_requests(|req| req.id() == Some("pp-arnnamed1") && req.name().is_none())
        .then_output(move || {
            DescribeProvisionedProductOutput::builder()
                .provisioned_product_detail(
                    ProvisionedProductDetail::builder()
                        .id("pp-arnnamed1")
                        .arn(arn)
                        .status(ProvisionedProductStatus::Available)
                        .last_successful_provisioning_record_id("rec-1")
                        .build(),
                )
                .build()
        });
    let search = mock!(aws_sdk_servicecatalog::Client::search_provisioned_products).then_output(|| {
        SearchProvisionedProductsOutput::builder()
            .provisioned_products(product("pp-arnnamed1", "sandbox", ProvisionedProductStatus::Available, &[]))
            .build()
    });
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&describe, &search, &terminate], sqs: &[] }.app(settings());
    let request = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": arn}});

    let report = invoke(&app, request).await.unwrap();

    assert_eq!(target_outcomes(&report, 0), vec![(arn.to_owned(), "terminated".to_owned())]);
    assert_eq!(
        taken(&seen).into_iter().map(|(id, name, _)| (id, name)).collect::<Vec<_>>(),
        vec![(Some("pp-arnnamed1".to_owned()), None)]
    );
}

/// A running TERMINATE job that does not list its servers yet may hold any of them:
/// the request waits (transient), no second job is started.
#[tokio::test]
async fn a_running_job_that_lists_no_servers_holds_every_termination() {
    use aws_sdk_mgn::types::{JobStatus, JobType};
    let jobs = mgn_jobs(vec![job("mgnjob-fresh", JobType::Terminate, JobStatus::Pending, &[])]);
    let calls = log();
    let terminate = mgn_terminate_recording(&calls);
    let app = Doubles { ws: &[], mgn: &[&jobs, &terminate], sc: &[], sqs: &[] }.app(settings());
    let request =
        json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa"]}});

    let response = invoke(&app, sqs_event(&[("m-1", request)])).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1"]);
    assert!(taken(&calls).is_empty());
}

/// In a dry run a server already being terminated is reported as a dry run that
/// would send nothing, naming the job: the report stays a preview.
#[tokio::test]
async fn a_dry_run_reports_a_server_already_terminating_as_a_dry_run_naming_the_job() {
    use aws_sdk_mgn::types::{JobStatus, JobType};
    let a = "s-aaaaaaaaaaaaaaaaa";
    let jobs = mgn_jobs(vec![job("mgnjob-running", JobType::Terminate, JobStatus::Started, &[a])]);
    let app = Doubles { ws: &[], mgn: &[&jobs], sc: &[], sqs: &[] }.app(settings());
    let request = json!({"operation": "TerminateTargetInstances", "dryRun": true, "input": {"sourceServerIDs": [a]}});

    let report = invoke(&app, request).await.unwrap();

    let target = &report["requests"][0]["targets"][0];
    assert_eq!((target["outcome"].as_str(), target["jobId"].as_str()), (Some("dry_run"), Some("mgnjob-running")));
}

// ---------------------------------------------------------------------------
// The second review: what the first fixes still let through.
// ---------------------------------------------------------------------------

/// When an apart call ends transient, the service may have taken it: its servers
/// are not sent again by another message's apart call in this invocation.
#[tokio::test]
async fn a_server_whose_apart_call_may_have_been_taken_is_not_sent_again() {
    let (x, y, bad) = ("s-xxxxxxxxxxxxxxxxx", "s-yyyyyyyyyyyyyyyyy", "s-bbbbbbbbbbbbbbbbb");
    let calls = log::<Vec<String>>();
    let record = {
        let calls = calls.clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances)
            .match_requests(move |req| {
                calls.lock().unwrap().push(req.source_server_ids().to_vec());
                false
            })
            .then_output(|| TerminateTargetInstancesOutput::builder().build())
    };
    let refuse = mock!(aws_sdk_mgn::Client::terminate_target_instances)
        .match_requests(move |req| req.source_server_ids().iter().any(|id| id == bad))
        .then_http_response(|| http(409, r#"{"message":"not ready","code":"ConflictException"}"#));
    let unavailable = mock!(aws_sdk_mgn::Client::terminate_target_instances)
        .match_requests(move |req| req.source_server_ids().iter().any(|id| id == y))
        .then_http_response(|| http(503, r#"{"message":"Service Unavailable"}"#));
    let accept = mgn_terminate_recording(&log());
    let send = mock!(aws_sdk_sqs::Client::send_message).then_output(|| SendMessageOutput::builder().build());
    let app =
        Doubles { ws: &[], mgn: &[&record, &refuse, &unavailable, &accept], sc: &[], sqs: &[&send] }.app(settings());
    let request = |ids: &[&str]| json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ids}});

    let response =
        invoke(&app, sqs_event(&[("m-1", request(&[x, y])), ("m-2", request(&[x])), ("m-3", request(&[bad]))]))
            .await
            .unwrap();

    let calls = taken(&calls);
    assert_eq!(
        calls,
        vec![vec![x.to_owned(), y.to_owned(), bad.to_owned()], vec![x.to_owned(), y.to_owned()], vec![bad.to_owned()]]
    );
    assert_eq!(failures(&response), vec!["m-1", "m-2"], "both wait for the next delivery to look again");
}

/// TerminateTargetInstances is sent once, whatever the SDK's retry settings: MGN
/// takes no client token, so a retried attempt could start a second job.
#[tokio::test]
async fn the_mgn_terminate_call_is_never_retried_by_the_sdk() {
    let attempts = Arc::new(Mutex::new(0));
    let unavailable = {
        let attempts = attempts.clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances)
            .match_requests(move |_| {
                *attempts.lock().unwrap() += 1;
                true
            })
            .then_http_response(|| http(503, r#"{"message":"Service Unavailable"}"#))
    };
    let describe = mgn_describe_launched();
    let jobs = mgn_no_running_jobs();
    let retrying = mock_client!(aws_sdk_mgn, RuleMode::MatchAny, &[&unavailable, &describe, &jobs], |c| c
        .retry_config(
            aws_sdk_mgn::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(std::time::Duration::from_millis(1))
        ));
    let mut app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    app.services.mgn = Mgn::new(retrying);

    let response = invoke(
        &app,
        sqs_event(&[(
            "m-1",
            json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa"]}}),
        )]),
    )
    .await
    .unwrap();

    assert_eq!(*attempts.lock().unwrap(), 1);
    assert_eq!(failures(&response), vec!["m-1"]);
}

/// DescribeJobs takes its dates as `…Z` (the API's pattern); 14 days back.
#[tokio::test]
async fn running_jobs_are_asked_from_fourteen_days_back_in_the_apis_date_format() {
    let asked = log::<Option<String>>();
    let jobs = {
        let asked = asked.clone();
        mock!(aws_sdk_mgn::Client::describe_jobs).then_compute_output(move |req| {
            asked.lock().unwrap().push(req.filters().and_then(|f| f.from_date()).map(str::to_owned));
            DescribeJobsOutput::builder().build()
        })
    };
    let terminate = mgn_terminate_recording(&log());
    let app = Doubles { ws: &[], mgn: &[&jobs, &terminate], sc: &[], sqs: &[] }.app(settings());

    invoke(
        &app,
        json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa"]}}),
    )
    .await
    .unwrap();

    assert_eq!(taken(&asked), vec![Some("2026-11-10T10:00:00Z".to_owned())]);
}

/// An old job that never listed its servers does not hold every termination in the account.
#[tokio::test]
async fn an_old_job_that_lists_no_servers_does_not_hold_terminations() {
    let old = Job::builder()
        .job_id("mgnjob-old")
        .r#type(aws_sdk_mgn::types::JobType::Terminate)
        .status(aws_sdk_mgn::types::JobStatus::Started)
        .creation_date_time("2026-11-24T08:00:00Z")
        .build()
        .unwrap();
    let jobs = mgn_jobs(vec![old]);
    let calls = log();
    let terminate = mgn_terminate_recording(&calls);
    let app = Doubles { ws: &[], mgn: &[&jobs, &terminate], sc: &[], sqs: &[] }.app(settings());

    invoke(
        &app,
        json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa"]}}),
    )
    .await
    .unwrap();

    assert_eq!(taken(&calls), vec![vec!["s-aaaaaaaaaaaaaaaaa".to_owned()]]);
}

/// A whole-call ResourceNotFound is split apart like a refusal: the message whose
/// server went is redelivered alone.
#[tokio::test]
async fn a_shared_call_not_found_as_a_whole_is_split_and_only_its_cause_waits() {
    let (x, gone) = ("s-xxxxxxxxxxxxxxxxx", "s-ggggggggggggggggg");
    let missing = mock!(aws_sdk_mgn::Client::terminate_target_instances)
        .match_requests(move |req| req.source_server_ids().iter().any(|id| id == gone))
        .then_http_response(|| {
            http(404, r#"{"message":"Source server not found","code":"ResourceNotFoundException"}"#)
        });
    let calls = log();
    let accept = mgn_terminate_recording(&calls);
    let app = Doubles { ws: &[], mgn: &[&missing, &accept], sc: &[], sqs: &[] }.app(settings());
    let request = |id: &str| json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": [id]}});

    let response = invoke(&app, sqs_event(&[("m-1", request(x)), ("m-2", request(gone))])).await.unwrap();

    assert_eq!(failures(&response), vec!["m-2"]);
    assert_eq!(taken(&calls), vec![vec![x.to_owned()]]);
}

/// An ARN whose id finds a product with another ARN is a wrong request: rejected
/// with a record, never reported done.
#[tokio::test]
async fn an_arn_that_names_no_product_here_is_rejected_not_reported_gone() {
    let arn = "arn:aws:servicecatalog:eu-west-1:999999999999:stack/sandbox/pp-arnnamed1";
    let sent = log();
    let send = sqs_send_ok(&sent);
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    // The default Describe finds pp-arnnamed1, with no ARN at all.
    let app = Doubles { ws: &[], mgn: &[], sc: &[&terminate], sqs: &[&send] }.app(settings());
    let request = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": arn}});

    let report = invoke(&app, request).await.unwrap();

    assert_eq!(report["requests"][0]["outcome"], "rejected");
    assert!(taken(&seen).is_empty());
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1["error"]["code"], "ArnMismatch");
}

/// A product under change because it is being terminated is `terminated`, naming the
/// record, and sent nothing: a redelivered selection does not cycle on it.
#[tokio::test]
async fn a_product_already_terminating_is_terminated_naming_its_record_without_a_call() {
    let describe = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_output(|| {
        DescribeProvisionedProductOutput::builder()
            .provisioned_product_detail(
                ProvisionedProductDetail::builder()
                    .id("pp-going0001")
                    .status(ProvisionedProductStatus::UnderChange)
                    .last_record_id("rec-terminate1")
                    .last_successful_provisioning_record_id("rec-provision1")
                    .build(),
            )
            .build()
    });
    let records = mock!(aws_sdk_servicecatalog::Client::describe_record).then_compute_output(|req| {
        let detail = match req.id() {
            Some("rec-terminate1") => RecordDetail::builder()
                .record_id("rec-terminate1")
                .record_type("TERMINATE_PROVISIONED_PRODUCT")
                .status(RecordStatus::InProgress),
            _ => RecordDetail::builder().record_id("rec-provision1"),
        };
        DescribeRecordOutput::builder().record_detail(detail.build()).build()
    });
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&describe, &records, &terminate], sqs: &[] }.app(settings());
    let request =
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-going0001"}});

    let response = invoke(&app, sqs_event(&[("m-1", request.clone())])).await.unwrap();
    let report = invoke(&app, request).await.unwrap();

    assert!(failures(&response).is_empty(), "not redelivered until the queue gives up");
    assert!(taken(&seen).is_empty());
    let target = &report["requests"][0]["targets"][0];
    assert_eq!((target["outcome"].as_str(), target["recordId"].as_str()), (Some("terminated"), Some("rec-terminate1")));
}

/// Two messages naming one product make one call, and both read its answer.
#[tokio::test]
async fn two_messages_naming_one_product_make_one_call() {
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&terminate], sqs: &[] }.app(settings());
    let by_id = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-sandbox"}});
    let by_name = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox"}});

    let report = invoke(&app, json!({"requests": [by_id, by_name]})).await.unwrap();

    assert_eq!(taken(&seen).len(), 1);
    assert_eq!(target_outcomes(&report, 0), vec![("pp-sandbox".to_owned(), "terminated".to_owned())]);
    assert_eq!(target_outcomes(&report, 1), vec![("sandbox".to_owned(), "terminated".to_owned())]);
}

/// A name may be another product's id: two requests of a batch that name the same
/// string for two different products each read their own product's answer.
#[tokio::test]
async fn a_name_that_is_another_products_id_never_shares_its_answer() {
    let describe = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_compute_output(|req| {
        // By name, "pp-abc123" is the product pp-zzz00001; by id, it is itself.
        let id = if req.name().is_some() { "pp-zzz00001" } else { "pp-abc123" };
        DescribeProvisionedProductOutput::builder()
            .provisioned_product_detail(
                ProvisionedProductDetail::builder()
                    .id(id)
                    .status(ProvisionedProductStatus::Available)
                    .last_successful_provisioning_record_id("rec-1")
                    .build(),
            )
            .build()
    });
    let search = mock!(aws_sdk_servicecatalog::Client::search_provisioned_products).then_output(|| {
        SearchProvisionedProductsOutput::builder()
            .provisioned_products(product("pp-abc123", "other", ProvisionedProductStatus::Available, &[]))
            .provisioned_products(product("pp-zzz00001", "pp-abc123", ProvisionedProductStatus::Available, &[]))
            .build()
    });
    let refuse = mock!(aws_sdk_servicecatalog::Client::terminate_provisioned_product)
        .match_requests(|req| req.provisioned_product_id() == Some("pp-abc123"))
        .then_http_response(|| http(400, r#"{"__type":"InvalidStateException","Message":"refused"}"#));
    let seen = log();
    let accept = sc_terminate_recording(&seen);
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&describe, &search, &refuse, &accept], sqs: &[&send] }.app(settings());
    let by_name = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "pp-abc123"}});
    let by_id = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-abc123"}});

    let response = invoke(&app, sqs_event(&[("m-1", by_name), ("m-2", by_id)])).await.unwrap();

    assert!(failures(&response).is_empty());
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1, "m-2's refusal is its own, and is not lost");
    assert_eq!(sent[0].1["source"]["messageId"], "m-2");
    assert_eq!(sent[0].3, "rejected");
}

/// A run that was a dry run only by the DRY_RUN setting replays as a dry run: a
/// redriven record never turns a preview into a termination.
#[tokio::test]
async fn the_retry_of_a_dry_run_by_setting_is_a_dry_run() {
    let down = mock!(aws_sdk_workspaces::Client::describe_workspaces)
        .then_http_response(|| http(500, r#"{"__type":"InternalServiceError","message":"down"}"#));
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&down], mgn: &[], sc: &[], sqs: &[&send] }.app(Settings { dry_run: true, ..settings() });

    invoke(&app, json!({"operation": "TerminateWorkspaces", "select": {"tags": {"env": "sandbox"}}})).await.unwrap();
    invoke(&app, ws_request(&ws_ids(1, "d"))).await.unwrap();

    let sent = taken(&sent);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(_, body, _, _)| body["retryRequest"]["dryRun"] == true), "{sent:?}");
}
