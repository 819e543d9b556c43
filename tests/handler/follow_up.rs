//! docs/reference.md, "Follow-up, audit events and metrics" and "Follow-up, audit events and metrics": every accepted termination is followed up until teardown
//! knows how it ended, and every decision is an audit event.

use aws_sdk_mgn::types::{Job, JobStatus, JobType, LaunchStatus, ParticipatingServer};
use aws_sdk_servicecatalog::operation::describe_record::DescribeRecordOutput as ScRecordOutput;
use aws_sdk_servicecatalog::types::RecordError;

use crate::doubles::*;

/// The doubles' clock: 2026-11-24T10:00:00Z.
const NOW: &str = "2026-11-24T10:00:00Z";

fn with_follow_up(app: App, checks: &Rule) -> App {
    app.with_request_queue(request_queue(&[checks]))
}

/// The decisions put on the audit bus, as (target id, outcome).
fn decisions(put: &Log<(String, String, Value, String)>) -> Vec<(String, String)> {
    taken(put)
        .into_iter()
        .map(|(_, _, detail, _)| {
            (detail["id"].as_str().unwrap_or("").to_owned(), detail["outcome"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

#[tokio::test]
async fn every_terminated_target_of_a_request_is_followed_up_in_one_check_after_30_s() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let sent = log();
    let checks = checks_sent(&sent);
    let app = with_follow_up(Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings()), &checks);
    let ids = ws_ids(30, "f");

    let response = invoke(&app, sqs_event(&[("m-1", ws_request(&ids))])).await.unwrap();

    assert!(failures(&response).is_empty());
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1, "30 targets of one request, due together: one check");
    let (body, delay) = &sent[0];
    assert_eq!(*delay, 30);
    let check = &body["confirm"];
    assert_eq!(check["attempt"], 1);
    assert_eq!(check["acceptedAt"], NOW);
    assert_eq!(check["targets"].as_array().unwrap().len(), 30);
    assert_eq!(check["source"]["messageId"], "m-1");
    assert_eq!(check["request"], ws_request(&ids), "the request for exactly the followed targets");
}

#[tokio::test]
async fn dry_runs_and_targets_that_were_not_terminated_are_not_followed_up() {
    let sent = log();
    let checks = checks_sent(&sent);
    let app = with_follow_up(Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[] }.app(settings()), &checks);
    let mut dry = ws_request(&ws_ids(2, "d"));
    dry["dryRun"] = json!(true);

    invoke(&app, dry).await.unwrap();

    assert!(taken(&sent).is_empty());
}

#[tokio::test]
async fn a_check_that_cannot_be_sent_redelivers_the_request_and_fails_a_direct_one() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let down = mock!(aws_sdk_sqs::Client::send_message)
        .then_http_response(|| http(500, r#"{"__type":"InternalError","message":"down"}"#));
    let app = with_follow_up(Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings()), &down);

    let response = invoke(&app, sqs_event(&[("m-1", ws_request(&ws_ids(1, "s")))])).await.unwrap();
    assert_eq!(failures(&response), vec!["m-1"], "never a silent loss: the lookups make a redelivery safe");

    let error = invoke(&app, ws_request(&ws_ids(1, "s"))).await.unwrap_err();
    assert!(error.to_string().contains("follow-up check"), "{error}");
}

/// WorkSpaces as the check finds them.
fn workspaces_in(states: &'static [(&'static str, Option<WorkspaceState>)]) -> Rule {
    mock!(aws_sdk_workspaces::Client::describe_workspaces).then_output(move || {
        let found = states.iter().filter_map(|(id, state)| state.clone().map(|s| workspace(id, s))).collect();
        DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
    })
}

#[tokio::test]
async fn a_check_confirms_what_is_gone_follows_what_is_going_and_dead_letters_what_failed() {
    static STATES: &[(&str, Option<WorkspaceState>)] = &[
        ("ws-gone0001", None),
        ("ws-done0001", Some(WorkspaceState::Terminated)),
        ("ws-going001", Some(WorkspaceState::Terminating)),
        ("ws-error001", Some(WorkspaceState::Error)),
        ("ws-back0001", Some(WorkspaceState::Available)),
    ];
    let describe = workspaces_in(STATES);
    let sent = log();
    let checks = checks_sent(&sent);
    let records = log();
    let send = sqs_send_ok(&records);
    let app = with_follow_up(Doubles { ws: &[&describe], mgn: &[], sc: &[], sqs: &[&send] }.app(settings()), &checks);
    let targets: Vec<(&str, Option<&str>, Option<&str>)> = STATES.iter().map(|(id, _)| (*id, None, None)).collect();
    // The second check: a WorkSpace back in a live state is no longer "not yet".
    let body = check("TerminateWorkspaces", &targets, 2, "2026-11-24T09:59:00Z");

    let response = invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();

    assert!(failures(&response).is_empty(), "the check is settled");
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0["confirm"]["attempt"], 3);
    assert_eq!(sent[0].0["confirm"]["targets"], json!([{"id": "ws-going001"}]));
    assert_eq!(sent[0].1, 120, "30 s, doubling: the third check after 120 s");
    let records = taken(&records);
    assert_eq!(records.len(), 1, "one record for the check's failed targets");
    let (_, body, operation, outcome) = &records[0];
    assert_eq!((operation.as_str(), outcome.as_str()), ("TerminateWorkspaces", "failed"));
    let failed: Vec<&str> =
        body["failedTargets"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(failed, vec!["ws-error001", "ws-back0001"]);
    assert_eq!(body["failedTargets"][0]["code"], "ERROR");
    assert_eq!(body["source"]["messageId"], "m-original", "the record names where the request came from");
    assert_eq!(body["retryRequest"], ws_request(&["ws-error001".to_owned(), "ws-back0001".to_owned()]));
}

#[tokio::test]
async fn a_target_still_going_after_confirm_within_is_unconfirmed_with_a_record() {
    static STATES: &[(&str, Option<WorkspaceState>)] = &[("ws-slow0001", Some(WorkspaceState::Terminating))];
    let describe = workspaces_in(STATES);
    let sent = log();
    let checks = checks_sent(&sent);
    let records = log();
    let send = sqs_send_ok(&records);
    let app = with_follow_up(Doubles { ws: &[&describe], mgn: &[], sc: &[], sqs: &[&send] }.app(settings()), &checks);
    // Accepted 2 h 1 min ago; CONFIRM_WITHIN is 7200 s.
    let body = check("TerminateWorkspaces", &[("ws-slow0001", None, None)], 9, "2026-11-24T07:59:00Z");

    invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();

    assert!(taken(&sent).is_empty(), "no further check");
    let records = taken(&records);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].3, "unconfirmed");
    assert!(records[0].1.get("retryRequest").is_none());
}

#[tokio::test]
async fn a_completed_mgn_job_with_a_failed_server_is_failed_naming_its_launch_status() {
    let jobs = mock!(aws_sdk_mgn::Client::describe_jobs).then_output(|| {
        let server = |id: &str, status: LaunchStatus| {
            ParticipatingServer::builder().source_server_id(id).launch_status(status).build().unwrap()
        };
        let job = Job::builder()
            .job_id("mgnjob-1")
            .r#type(JobType::Terminate)
            .status(JobStatus::Completed)
            .participating_servers(server("s-aaaaaaaaaaaaaaaaa", LaunchStatus::Terminated))
            .participating_servers(server("s-bbbbbbbbbbbbbbbbb", LaunchStatus::Failed))
            .build()
            .unwrap();
        DescribeJobsOutput::builder().items(job).build()
    });
    let records = log();
    let send = sqs_send_ok(&records);
    let put = log();
    let events = events_put(&put);
    let app =
        Doubles { ws: &[], mgn: &[&jobs], sc: &[], sqs: &[&send] }.app(settings()).with_audit(audit_bus(&[&events]));
    let body = check(
        "TerminateTargetInstances",
        &[("s-aaaaaaaaaaaaaaaaa", Some("mgnjob-1"), None), ("s-bbbbbbbbbbbbbbbbb", Some("mgnjob-1"), None)],
        1,
        NOW,
    );

    let response = invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();

    assert!(failures(&response).is_empty());
    assert_eq!(
        decisions(&put),
        vec![("s-aaaaaaaaaaaaaaaaa".into(), "confirmed".into()), ("s-bbbbbbbbbbbbbbbbb".into(), "failed".into())]
    );
    let records = taken(&records);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].1["failedTargets"][0]["code"], "LaunchStatusFAILED");
    assert_eq!(
        records[0].1["retryRequest"],
        json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-bbbbbbbbbbbbbbbbb"]}})
    );
}

fn record_in(status: RecordStatus, errors: &'static [(&'static str, &'static str)]) -> Rule {
    mock!(aws_sdk_servicecatalog::Client::describe_record).then_output(move || {
        let mut detail = RecordDetail::builder().record_id("rec-1").status(status.clone());
        for (code, description) in errors {
            detail = detail.record_errors(RecordError::builder().code(*code).description(*description).build());
        }
        ScRecordOutput::builder().record_detail(detail.build()).build()
    })
}

#[tokio::test]
async fn a_failed_service_catalog_record_is_dead_lettered_with_its_record_errors() {
    let record =
        record_in(RecordStatus::Failed, &[("DeleteStackFailed", "The bucket you tried to delete is not empty")]);
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&record], sqs: &[&send] }.app(settings());

    let body = check("TerminateProvisionedProduct", &[("pp-sandbox1", None, Some("rec-1"))], 1, NOW);
    invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();

    let records = taken(&records);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].3, "failed");
    assert_eq!(records[0].1["error"]["code"], "DeleteStackFailed");
    assert_eq!(records[0].1["error"]["message"], "The bucket you tried to delete is not empty");
}

#[tokio::test]
async fn a_service_catalog_record_in_progress_past_the_deadline_is_unconfirmed() {
    let record = record_in(RecordStatus::InProgress, &[]);
    let records = log();
    let send = sqs_send_ok(&records);
    let put = log();
    let events = events_put(&put);
    let app =
        Doubles { ws: &[], mgn: &[], sc: &[&record], sqs: &[&send] }.app(settings()).with_audit(audit_bus(&[&events]));
    let body = check("TerminateProvisionedProduct", &[("pp-sandbox1", None, Some("rec-1"))], 7, "2026-11-24T07:00:00Z");

    invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();

    assert_eq!(decisions(&put), vec![("pp-sandbox1".into(), "unconfirmed".into())]);
    assert_eq!(taken(&records)[0].3, "unconfirmed");
}

#[tokio::test]
async fn a_check_that_cannot_ask_is_redelivered_and_on_its_last_delivery_ends_unconfirmed() {
    let down = mock!(aws_sdk_workspaces::Client::describe_workspaces)
        .then_http_response(|| http(500, r#"{"__type":"InternalServiceError","message":"down"}"#));
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[&down], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { max_receives: Some(3), ..settings() });
    let body = check("TerminateWorkspaces", &[("ws-aaaaaaaa", None, None)], 1, NOW);
    let delivery = |count: &str| {
        let mut event = sqs_event(&[("c-1", body.clone())]);
        event["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!(count);
        event
    };

    assert_eq!(failures(&invoke(&app, delivery("1")).await.unwrap()), vec!["c-1"]);
    assert!(taken(&records).is_empty());

    assert!(failures(&invoke(&app, delivery("3")).await.unwrap()).is_empty());
    let records = taken(&records);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].3, "unconfirmed");
    assert!(records[0].1.get("retryRequest").is_none(), "a check's last delivery has no retry");
}

#[tokio::test]
async fn the_same_check_delivered_twice_makes_records_a_fifo_dead_letter_queue_keeps_once() {
    static STATES: &[(&str, Option<WorkspaceState>)] = &[("ws-error001", Some(WorkspaceState::Error))];
    let describe = workspaces_in(STATES);
    let sent = log::<Option<String>>();
    let send = {
        let sent = sent.clone();
        mock!(aws_sdk_sqs::Client::send_message).then_compute_output(move |req| {
            sent.lock().unwrap().push(req.message_deduplication_id().map(str::to_owned));
            SendMessageOutput::builder().build()
        })
    };
    let fifo = Settings { dlq_url: Some(format!("{DLQ}.fifo")), ..settings() };
    let mut app = Doubles { ws: &[&describe], mgn: &[], sc: &[], sqs: &[&send] }.app(fifo);
    let body = check("TerminateWorkspaces", &[("ws-error001", None, None)], 2, NOW);

    invoke(&app, sqs_event(&[("c-1", body.clone())])).await.unwrap();
    app.clock = || time::macros::datetime!(2026-11-24 10:03:00 UTC); // redelivered later
    invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();

    let sent = taken(&sent);
    assert_eq!(sent.len(), 2);
    assert!(sent[0].is_some());
    assert_eq!(sent[0], sent[1], "one deduplication id: the dead-letter queue keeps the record once");
}

#[tokio::test]
async fn every_decision_is_an_audit_event_dry_runs_included() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let protected = mock!(aws_sdk_workspaces::Client::describe_tags)
        .match_requests(|req| req.resource_id() == Some("ws-keep0001"))
        .then_output(|| {
            DescribeTagsOutput::builder()
                .tag_list(aws_sdk_workspaces::types::Tag::builder().key("teardown:protect").value("").build().unwrap())
                .build()
        });
    let put = log();
    let events = events_put(&put);
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[&terminate, &protected], mgn: &[], sc: &[], sqs: &[&send] }
        .app(settings())
        .with_audit(audit_bus(&[&events]));
    let mut dry = ws_request(&["ws-dry00001".to_owned()]);
    dry["dryRun"] = json!(true);
    let requests = json!({"requests": [ws_request(&["ws-done0001".to_owned(), "ws-keep0001".to_owned()]), dry, {"operation": "Nope"}]});

    invoke(&app, requests).await.unwrap();

    let put = taken(&put);
    let summary: Vec<(Option<&str>, &str, bool)> = put
        .iter()
        .map(|(_, _, d, _)| (d["id"].as_str(), d["outcome"].as_str().unwrap(), d["dryRun"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some("ws-done0001"), "terminated", false),
            (Some("ws-keep0001"), "protected", false),
            (Some("ws-dry00001"), "dry_run", true),
            (None, "invalid", false),
        ]
    );
    assert!(put.iter().all(|(source, detail_type, _, bus)| source == "teardown"
        && detail_type == "Teardown Target Decision"
        && bus == "teardown-audit"));
    assert_eq!(put[0].2["operation"], "TerminateWorkspaces");
    assert_eq!(put[0].2["at"], NOW);
    assert_eq!(put[0].2["source"]["kind"], "direct");
}

#[tokio::test]
async fn an_audit_event_that_cannot_be_put_changes_no_outcome() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let down = mock!(aws_sdk_eventbridge::Client::put_events)
        .then_http_response(|| http(500, r#"{"__type":"InternalException","message":"down"}"#));
    let app =
        Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings()).with_audit(audit_bus(&[&down]));

    let response = invoke(&app, sqs_event(&[("m-1", ws_request(&ws_ids(1, "a")))])).await.unwrap();

    assert!(failures(&response).is_empty(), "never a redelivery for an audit event");
    assert_eq!(taken(&calls).len(), 1);
    assert_eq!(down.num_calls(), 2, "put once more, then logged and counted");
}

#[tokio::test]
async fn audit_events_go_ten_to_a_call() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let put = log();
    let events = events_put(&put);
    let app =
        Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings()).with_audit(audit_bus(&[&events]));

    invoke(&app, ws_request(&ws_ids(23, "t"))).await.unwrap();

    assert_eq!(taken(&put).len(), 23);
    assert_eq!(events.num_calls(), 3, "⌈23/10⌉ PutEvents calls");
}

// ── What the review of the follow-up found ─────────────────────────────────────

/// A server found already in a running job (an earlier call's) is followed up only
/// on a redelivery, when the earlier attempt may not have sent its check; on a first
/// delivery whoever started the job follows it up, so the checks never fork.
#[tokio::test]
async fn a_target_already_terminating_is_followed_up_only_on_a_redelivery() {
    let jobs = mock!(aws_sdk_mgn::Client::describe_jobs).then_output(|| {
        let job = Job::builder()
            .job_id("mgnjob-earlier")
            .r#type(JobType::Terminate)
            .status(JobStatus::Started)
            .participating_servers(
                ParticipatingServer::builder().source_server_id("s-aaaaaaaaaaaaaaaaa").build().unwrap(),
            )
            .build()
            .unwrap();
        DescribeJobsOutput::builder().items(job).build()
    });
    let sent = log();
    let checks = checks_sent(&sent);
    let app = with_follow_up(Doubles { ws: &[], mgn: &[&jobs], sc: &[], sqs: &[] }.app(settings()), &checks);
    let request =
        json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa"]}});
    let delivery = |count: &str| {
        let mut event = sqs_event(&[("m-1", request.clone())]);
        event["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!(count);
        event
    };

    invoke(&app, delivery("1")).await.unwrap();
    assert!(taken(&sent).is_empty(), "a first delivery: the job's own starter follows it up");

    invoke(&app, delivery("2")).await.unwrap();
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0["confirm"]["targets"], json!([{"id": "s-aaaaaaaaaaaaaaaaa", "jobId": "mgnjob-earlier"}]));
}

#[tokio::test]
async fn a_check_that_cannot_go_on_ends_what_is_pending_unconfirmed_with_a_record() {
    static STATES: &[(&str, Option<WorkspaceState>)] = &[("ws-going001", Some(WorkspaceState::Terminating))];
    // No request queue here: it cannot be checked again.
    let describe = workspaces_in(STATES);
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[&describe], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());
    invoke(&app, sqs_event(&[("c-1", check("TerminateWorkspaces", &[("ws-going001", None, None)], 1, NOW))]))
        .await
        .unwrap();
    assert_eq!(taken(&records).iter().map(|r| r.3.clone()).collect::<Vec<_>>(), vec!["unconfirmed"]);

    // Its own last delivery: SQS would move a re-sent check nowhere but bare to the DLQ.
    let describe = workspaces_in(STATES);
    let sent = log();
    let checks = checks_sent(&sent);
    let records = log();
    let send = sqs_send_ok(&records);
    let app = with_follow_up(
        Doubles { ws: &[&describe], mgn: &[], sc: &[], sqs: &[&send] }
            .app(Settings { max_receives: Some(2), ..settings() }),
        &checks,
    );
    let mut event = sqs_event(&[("c-1", check("TerminateWorkspaces", &[("ws-going001", None, None)], 3, NOW))]);
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!("2");
    invoke(&app, event).await.unwrap();
    assert!(taken(&sent).is_empty());
    assert_eq!(taken(&records).iter().map(|r| r.3.clone()).collect::<Vec<_>>(), vec!["unconfirmed"]);
}

#[tokio::test]
async fn a_pending_target_is_not_audited_again_and_decisions_name_the_original_request() {
    static STATES: &[(&str, Option<WorkspaceState>)] =
        &[("ws-going001", Some(WorkspaceState::Terminating)), ("ws-gone0001", None)];
    let describe = workspaces_in(STATES);
    let sent = log();
    let checks = checks_sent(&sent);
    let put = log();
    let events = events_put(&put);
    let app = with_follow_up(Doubles { ws: &[&describe], mgn: &[], sc: &[], sqs: &[] }.app(settings()), &checks)
        .with_audit(audit_bus(&[&events]));

    invoke(
        &app,
        sqs_event(&[(
            "c-1",
            check("TerminateWorkspaces", &[("ws-going001", None, None), ("ws-gone0001", None, None)], 1, NOW),
        )]),
    )
    .await
    .unwrap();

    let put = taken(&put);
    assert_eq!(put.len(), 1, "only the decided target");
    assert_eq!((put[0].2["id"].as_str(), put[0].2["outcome"].as_str()), (Some("ws-gone0001"), Some("confirmed")));
    assert_eq!(put[0].2["source"]["messageId"], "m-original", "the request it follows up, as its record does");
}

#[tokio::test]
async fn a_workspace_in_error_is_failed_with_its_own_error() {
    let describe = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_output(|| {
        let w = Workspace::builder()
            .workspace_id("ws-error001")
            .state(WorkspaceState::Error)
            .error_code("ResourceLimitExceeded")
            .error_message("The directory has reached its limit")
            .build();
        DescribeWorkspacesOutput::builder().workspaces(w).build()
    });
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[&describe], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());

    invoke(&app, sqs_event(&[("c-1", check("TerminateWorkspaces", &[("ws-error001", None, None)], 1, NOW))]))
        .await
        .unwrap();

    let records = taken(&records);
    assert_eq!(
        records[0].1["error"],
        json!({"code": "ResourceLimitExceeded", "message": "The directory has reached its limit"})
    );
}

#[tokio::test]
async fn an_mgn_check_asks_the_account_the_selection_named() {
    let asked = log::<Option<String>>();
    let jobs = {
        let asked = asked.clone();
        mock!(aws_sdk_mgn::Client::describe_jobs).then_compute_output(move |req| {
            asked.lock().unwrap().push(req.account_id().map(str::to_owned));
            DescribeJobsOutput::builder().build()
        })
    };
    let sent = log();
    let checks = checks_sent(&sent);
    let allowed = Settings { allowed_accounts: vec!["111122223333".into()], ..settings() };
    let app = with_follow_up(Doubles { ws: &[], mgn: &[&jobs], sc: &[], sqs: &[] }.app(allowed), &checks);
    let mut body = check("TerminateTargetInstances", &[("s-aaaaaaaaaaaaaaaaa", Some("mgnjob-1"), None)], 1, NOW);
    body["confirm"]["request"] = json!({"operation": "TerminateTargetInstances", "select": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa"], "accountID": "111122223333"}});

    invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();

    assert_eq!(taken(&asked), vec![Some("111122223333".to_owned())]);
}

#[tokio::test]
async fn past_the_deadline_no_audit_event_is_started_and_nothing_is_redelivered_for_it() {
    let put = log();
    let events = events_put(&put);
    let app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[] }.app(settings()).with_audit(audit_bus(&[&events]));
    let mut context = Context::default();
    let now_ms = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
    context.deadline = now_ms + 100;
    let mut request = ws_request(&ws_ids(1, "p"));
    request["dryRun"] = json!(true);

    let response = handle(&app, LambdaEvent::new(sqs_event(&[("m-1", request)]), context)).await.unwrap();

    assert_eq!(events.num_calls(), 0, "a slow bus cannot time the invocation out");
    assert_eq!(failures(&response), vec!["m-1"], "redelivered for its lookups, not for its audit events");
}

/// A check of thirty WorkSpaces asks `DescribeWorkspaces` twice, side by side. When
/// one of the two calls fails, the other's answer confirms nothing: an id missing
/// from half an answer is not gone. The check is redelivered whole.
#[tokio::test]
async fn a_check_whose_second_describe_call_fails_confirms_nothing_and_is_redelivered() {
    let ids = ws_ids(30, "k");
    let late = ids[27].clone();
    let down = mock!(aws_sdk_workspaces::Client::describe_workspaces)
        .match_requests(move |req| req.workspace_ids().contains(&late))
        .then_http_response(|| http(500, r#"{"__type":"InternalServiceError","message":"down"}"#));
    // The first call answers that none of its ids exist any more.
    let first = mock!(aws_sdk_workspaces::Client::describe_workspaces)
        .then_output(|| DescribeWorkspacesOutput::builder().set_workspaces(Some(vec![])).build());
    let sent = log();
    let checks = checks_sent(&sent);
    let records = log();
    let send = sqs_send_ok(&records);
    let put = log();
    let events = events_put(&put);
    let app =
        with_follow_up(Doubles { ws: &[&down, &first], mgn: &[], sc: &[], sqs: &[&send] }.app(settings()), &checks)
            .with_audit(audit_bus(&[&events]));
    let targets: Vec<(&str, Option<&str>, Option<&str>)> = ids.iter().map(|id| (id.as_str(), None, None)).collect();
    let body = check("TerminateWorkspaces", &targets, 1, NOW);

    let response = invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();

    assert_eq!((down.num_calls(), first.num_calls()), (1, 1), "the two calls were made");
    assert_eq!(failures(&response), vec!["c-1"], "the check is redelivered");
    assert!(taken(&sent).is_empty(), "no next check: nothing was decided");
    assert!(taken(&records).is_empty(), "no record");
    let confirmed: Vec<Value> = taken(&put).into_iter().map(|(_, _, detail, _)| detail).collect();
    assert!(
        !confirmed.iter().any(|d| d.to_string().contains("confirmed")),
        "no WorkSpace is audited as confirmed: {confirmed:?}"
    );
}

/// A WorkSpace answered on two pages in two different states is neither confirmed
/// nor failed: the check is redelivered and asks again.
#[tokio::test]
async fn a_workspace_answered_twice_in_different_states_is_not_confirmed() {
    let pages = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(|req| {
        let id = req.workspace_ids()[0].clone();
        match req.next_token() {
            None => DescribeWorkspacesOutput::builder()
                .workspaces(workspace(&id, WorkspaceState::Available))
                .next_token("page-2")
                .build(),
            Some(_) => {
                DescribeWorkspacesOutput::builder().workspaces(workspace(&id, WorkspaceState::Terminated)).build()
            }
        }
    });
    let sent = log();
    let checks = checks_sent(&sent);
    let records = log();
    let send = sqs_send_ok(&records);
    let put = log();
    let events = events_put(&put);
    let app = with_follow_up(Doubles { ws: &[&pages], mgn: &[], sc: &[], sqs: &[&send] }.app(settings()), &checks)
        .with_audit(audit_bus(&[&events]));
    let body = check("TerminateWorkspaces", &[("ws-twice001", None, None)], 2, NOW);

    let response = invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();

    assert_eq!(pages.num_calls(), 2, "both pages were read");
    assert_eq!(failures(&response), vec!["c-1"], "the check is redelivered");
    assert!(taken(&sent).is_empty() && taken(&records).is_empty(), "nothing decided");
    assert!(taken(&put).is_empty(), "no decision audited: {:?}", taken(&put));
}

/// Found in review: a check without the record (its call's answer never came, or a
/// watch) looks the product's last record up and decides it, but decided it with no
/// record id, so the record could be followed up again by a delivery whose reused token
/// was answered with it. The record found is now what is decided, and named.
#[tokio::test]
async fn a_check_without_its_record_decides_the_record_it_finds_and_names_it() {
    let describe = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_output(|| {
        DescribeProvisionedProductOutput::builder()
            .provisioned_product_detail(
                aws_sdk_servicecatalog::types::ProvisionedProductDetail::builder()
                    .id("pp-nofollow1")
                    .last_record_id("rec-found1")
                    .build(),
            )
            .build()
    });
    let record = mock!(aws_sdk_servicecatalog::Client::describe_record).then_output(|| {
        let detail = aws_sdk_servicecatalog::types::RecordDetail::builder()
            .record_id("rec-found1")
            .record_type("TERMINATE_PROVISIONED_PRODUCT")
            .status(RecordStatus::Failed)
            .record_errors(RecordError::builder().code("DeleteStackFailed").description("not empty").build());
        ScRecordOutput::builder().record_detail(detail.build()).build()
    });
    let (records, put) = (log(), log());
    let (send, events) = (sqs_send_ok(&records), events_put(&put));
    let app = Doubles { ws: &[], mgn: &[], sc: &[&describe, &record], sqs: &[&send] }
        .app(settings())
        .with_audit(audit_bus(&[&events]));

    let body = check("TerminateProvisionedProduct", &[("pp-nofollow1", None, None)], 1, NOW);
    invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();

    let details: Vec<Value> = taken(&put).into_iter().map(|(_, _, d, _)| d).collect();
    assert_eq!(details.len(), 1, "{details:?}");
    assert_eq!((details[0]["outcome"].as_str(), details[0]["recordId"].as_str()), (Some("failed"), Some("rec-found1")));
    assert_eq!(taken(&records)[0].3, "failed");
}
