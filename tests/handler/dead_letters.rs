//! Dead-letter records: their exact shape, cut to fit, published or redelivered, the last delivery, replays.

use crate::doubles::*;
use crate::shared::*;
use aws_sdk_workspaces::operation::describe_workspaces_connection_status::DescribeWorkspacesConnectionStatusOutput;
use aws_sdk_workspaces::types::{FailedWorkspaceChangeRequest, Tag as WsTag, WorkspaceConnectionStatus};

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
    let event = sqs_event_with(
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
        |count: &str| sqs_event_with(arn, &[("m-1", ws_request(&ids), &[("ApproximateReceiveCount", count)])]);

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
