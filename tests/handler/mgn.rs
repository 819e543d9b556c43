//! MGN: calls of 200, shared calls and their attribution, running jobs, lifecycle guards, and one call per server.

use crate::doubles::*;
use crate::shared::*;
use aws_sdk_mgn::operation::terminate_target_instances::TerminateTargetInstancesOutput;
use aws_sdk_mgn::types::{Job, ParticipatingServer};

fn mgn_jobs(jobs: Vec<Job>) -> Rule {
    mock!(aws_sdk_mgn::Client::describe_jobs)
        .then_output(move || DescribeJobsOutput::builder().set_items(Some(jobs.clone())).build())
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

// or to lose a failure.

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
    let event = sqs_event_with(
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
