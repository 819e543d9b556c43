//! The four failures of at-least-once, each now impossible.

use super::*;

/// Lost: accepted, then the check could not be sent. A direct invocation has no
/// receive count; Lambda's retry finds the WorkSpace on its way out and, its first
/// chain never sent, starts one.
#[tokio::test]
pub(super) async fn a_termination_whose_check_was_not_sent_is_followed_up_by_the_retry_of_a_direct_invocation() {
    let world = world("lost", &["ws-lost0001"]).await;
    let (fleet, queue, f) = (&world.fleet, &world.queue, &world.f);
    let request = ws_request(&["ws-lost0001".to_owned()]);

    at(0);
    queue.fail(true);
    assert!(invoke_as(&f.app, request.clone(), "req-1").await.is_err(), "the check was not sent: the invocation fails");
    assert_eq!(taken(&fleet.terminated).len(), 1);

    // Lambda retries the invocation a minute later, same request id.
    at(90);
    queue.fail(false);
    invoke_as(&f.app, request, "req-1").await.unwrap();

    assert_eq!(taken(&fleet.terminated).len(), 1, "never sent again");
    let checks = queue.take();
    assert_eq!(checks.len(), 1, "the retry follows it up: {checks:?}");
    assert_eq!(checks[0]["confirm"]["targets"], json!([{"id": "ws-lost0001"}]));
    assert!(checks[0]["confirm"]["chain"].is_string());
}

/// Forked: a message redelivered after its check went out (another target was
/// transient) finds its WorkSpace on its way out: the live chain keeps it, no second.
#[tokio::test]
pub(super) async fn a_redelivery_never_starts_a_second_chain_for_a_target_a_live_chain_follows() {
    let moto = Moto::start();
    let state = table(&moto, "forked").await;
    let fleet = fleet(&["ws-fork0001", "ws-slow0001"]);
    let queue = queue();
    // ws-slow0001's tags cannot be read on the first delivery: the message comes back.
    let throttled = mock!(aws_sdk_workspaces::Client::describe_tags)
        .match_requests(|req| req.resource_id() == Some("ws-slow0001"))
        .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"slow down"}"#));
    let f = function(&state, &fleet, &queue, &[&throttled], &[], &[]);
    let request = ws_request(&["ws-fork0001".to_owned(), "ws-slow0001".to_owned()]);

    at(0);
    let response = invoke_as(&f.app, delivery("m-1", &request, 1), "req-1").await.unwrap();
    assert_eq!(failures(&response), vec!["m-1"]);
    let first = queue.take();
    assert_eq!(first.len(), 1);

    // Its check comes back after 30 s: still TERMINATING, the chain goes on.
    at(30);
    invoke_as(&f.app, delivery("c-1", &first[0], 1), "req-2").await.unwrap();
    assert_eq!(queue.take().len(), 1, "checked again");

    // The request comes back after its visibility timeout.
    at(360);
    invoke_as(&f.app, delivery("m-1", &request, 2), "req-3").await.unwrap();
    let after = queue.take();
    assert!(
        after.iter().all(|c| c["confirm"]["targets"].as_array().unwrap().iter().all(|t| t["id"] != "ws-fork0001")),
        "no second chain for ws-fork0001: {after:?}"
    );
}

/// Twice: two copies of one MGN fan-out child run at once; both see no running job.
/// Only the one that claims the server calls TerminateTargetInstances.
#[tokio::test]
pub(super) async fn two_copies_of_one_child_racing_on_one_mgn_server_make_one_call() {
    let moto = Moto::start();
    let state = table(&moto, "twice").await;
    let calls = log::<Vec<String>>();
    let terminate = {
        let calls = calls.clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances).then_compute_output(move |req| {
            calls.lock().unwrap().push(req.source_server_ids().to_vec());
            aws_sdk_mgn::operation::terminate_target_instances::TerminateTargetInstancesOutput::builder()
                .job(aws_sdk_mgn::types::Job::builder().job_id("mgnjob-1").build().unwrap())
                .build()
        })
    };
    let (fleet, queue) = (fleet(&[]), queue());
    let f = function(&state, &fleet, &queue, &[], &[&terminate], &[]);
    let child = json!({"operation": "TerminateTargetInstances", "origin": "a1b2c3",
                       "input": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa"]}});

    at(0);
    let (a, b) = tokio::join!(
        invoke_as(&f.app, delivery("copy-1", &child, 1), "req-a"),
        invoke_as(&f.app, delivery("copy-2", &child, 1), "req-b"),
    );

    assert_eq!(taken(&calls).len(), 1, "one call for the server");
    let redelivered = [failures(&a.unwrap()), failures(&b.unwrap())].concat();
    assert_eq!(redelivered.len(), 1, "the copy that did not hold the claim waits for the next delivery");
    assert!(taken(&f.records).is_empty(), "no false rejection");
}

/// A claim held on an MGN server keeps back the calls that would terminate it, not a
/// notice of the same batch, which makes no terminate call: its tag goes on.
#[tokio::test]
pub(super) async fn a_held_claim_keeps_back_a_termination_but_not_a_notice_of_the_same_server() {
    let moto = Moto::start();
    let state = table(&moto, "claims").await;
    let (terminated, tagged) = (log::<Vec<String>>(), log::<String>());
    let terminate = {
        let terminated = terminated.clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances).then_compute_response(move |req| {
            terminated.lock().unwrap().push(req.source_server_ids().to_vec());
            aws_smithy_mocks::MockResponse::Http(http(503, "{}"))
        })
    };
    let tag = {
        let tagged = tagged.clone();
        mock!(aws_sdk_mgn::Client::tag_resource).then_compute_output(move |req| {
            tagged.lock().unwrap().push(req.resource_arn().unwrap_or("").to_owned());
            aws_sdk_mgn::operation::tag_resource::TagResourceOutput::builder().build()
        })
    };
    let (fleet, queue) = (fleet(&[]), queue());
    let f = function(&state, &fleet, &queue, &[], &[&terminate, &tag], &[]);
    let server = "s-aaaaaaaaaaaaaaaaa";
    let named = json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": [server]}});
    let notice = json!({"operation": "TerminateTargetInstances", "notice": {"days": 7},
                        "select": {"sourceServerIDs": [server]}});

    // The first delivery claims the server; its call fails transiently, so the claim holds.
    at(0);
    let first = invoke_as(&f.app, delivery("m-1", &named, 1), "req-a").await.unwrap();
    assert_eq!(failures(&first), vec!["m-1".to_owned()]);
    assert_eq!(taken(&terminated).len(), 1);

    at(10);
    let batch = sqs_event(&[("m-2", named.clone()), ("m-3", notice.clone())]);
    let report = invoke_as(&f.app, batch, "req-b").await.unwrap();

    assert_eq!(taken(&terminated).len(), 1, "the held claim keeps the second termination back");
    assert_eq!(failures(&report), vec!["m-2".to_owned()], "only the termination waits");
    assert_eq!(taken(&tagged), vec![format!("arn:aws:mgn:us-east-1:123456789012:source-server/{server}")]);
}

/// Decided twice: the same check delivered twice, at once: one decision, one event,
/// one record.
#[tokio::test]
pub(super) async fn a_check_delivered_twice_at_once_decides_once() {
    let moto = Moto::start();
    let state = table(&moto, "decided").await;
    let failed = mock!(aws_sdk_servicecatalog::Client::describe_record).then_output(|| {
        DescribeRecordOutput::builder()
            .record_detail(
                RecordDetail::builder()
                    .record_id("rec-1")
                    .status(RecordStatus::Failed)
                    .record_errors(
                        aws_sdk_servicecatalog::types::RecordError::builder()
                            .code("DeleteStackFailed")
                            .description("bucket not empty")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let (fleet, queue) = (fleet(&[]), queue());
    let f = function(&state, &fleet, &queue, &[], &[], &[&failed]);
    let mut body =
        check("TerminateProvisionedProduct", &[("pp-sandbox1", None, Some("rec-1"))], 1, "2026-11-24T09:59:00Z");
    body["confirm"]["chain"] = json!("chain-1");

    at(0);
    // SQS delivers the message twice at once, and the check was also sent twice
    // (a SendMessage retried after a slow answer): three deliveries racing.
    let (a, b, c) = tokio::join!(
        invoke_as(&f.app, delivery("c-1", &body, 1), "req-a"),
        invoke_as(&f.app, delivery("c-1", &body, 1), "req-b"),
        invoke_as(&f.app, delivery("c-2", &body, 1), "req-c"),
    );
    // The one whose write went in settles; the others come back (a copy of the same
    // delivery, or another message of the chain, while the decider may be publishing),
    // unless the decision was published by the time they looked.
    let back: Vec<String> = [a, b, c].into_iter().flat_map(|r| failures(&r.unwrap())).collect();
    assert!(back.len() <= 2, "{back:?}");

    assert_eq!(f.decisions().get("pp-sandbox1"), Some(&vec!["failed".to_owned()]), "one event");
    let records = taken(&f.records);
    assert_eq!(records.len(), 1, "one record");
    assert_eq!(records[0].3, "failed");

    // Come back, they find the decision published: nothing more.
    at(400);
    for (n, id) in back.iter().enumerate() {
        let again = invoke_as(&f.app, delivery(id, &body, 2), &format!("req-{n}")).await.unwrap();
        assert!(failures(&again).is_empty());
    }
    assert_eq!(f.decisions().get("pp-sandbox1"), Some(&vec!["failed".to_owned()]), "still one event");
    assert_eq!(taken(&f.records).len(), 1, "still one record");
}

/// A decision published by another message than its maker's names the record its maker
/// decided (`decidedOf`), or none when its maker named none, never the one the
/// publisher was following: the event is the maker's, whoever puts it.
#[tokio::test]
pub(super) async fn a_decision_published_by_another_message_names_the_record_its_maker_decided() {
    use teardown::state::{CheckEnd, CheckOf, Ended};
    let moto = Moto::start();
    let state = table(&moto, "decided-of").await;
    let failed = mock!(aws_sdk_servicecatalog::Client::describe_record).then_output(|| {
        DescribeRecordOutput::builder()
            .record_detail(RecordDetail::builder().record_id("rec-1").status(RecordStatus::Failed).build())
            .build()
    });
    let (fleet, queue) = (fleet(&[]), queue());
    let f = function(&state, &fleet, &queue, &[], &[], &[&failed]);
    // The watch decided record rec-7 `confirmed` and never published it.
    let key = key_of(teardown::request::Operation::TerminateProvisionedProduct, "pp-sandbox7");
    let of = CheckOf {
        chain: "chain-7",
        attempt: 0,
        accepted_at: "2026-11-24T09:59:00Z",
        message_id: "w-7",
        receive_count: 1,
    };
    let confirmed = CheckEnd::Decided { decision: "confirmed", error: None, of: Some("rec-7".into()) };
    assert_eq!(state.check_end(&key, &of, &confirmed, 1_795_514_400).await.unwrap(), Ended::Won);
    let mut body =
        check("TerminateProvisionedProduct", &[("pp-sandbox7", None, Some("rec-1"))], 1, "2026-11-24T09:59:00Z");
    body["confirm"]["chain"] = json!("chain-7");

    at(10);
    let last = invoke_as(&f.app, delivery("c-7", &body, 1000), "req-1").await.unwrap();
    assert!(failures(&last).is_empty());
    let events: Vec<Value> = taken(&f.events).into_iter().map(|(_, _, detail, _)| detail).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["outcome"].as_str(), events[0]["recordId"].as_str()),
        (Some("confirmed"), Some("rec-7")),
        "the maker's decision of the maker's record, not this check's `failed` of rec-1"
    );
    assert!(taken(&f.records).is_empty(), "no record: the decision is `confirmed`");

    // A maker that knew no record (a watch that found none) named none: nor does the event.
    f.events.lock().unwrap().clear();
    let key = key_of(teardown::request::Operation::TerminateProvisionedProduct, "pp-sandbox8");
    let of = CheckOf { chain: "chain-8", message_id: "w-8", ..of };
    let unnamed = CheckEnd::Decided { decision: "confirmed", error: None, of: None };
    assert_eq!(state.check_end(&key, &of, &unnamed, 1_795_514_400).await.unwrap(), Ended::Won);
    let mut body =
        check("TerminateProvisionedProduct", &[("pp-sandbox8", None, Some("rec-1"))], 1, "2026-11-24T09:59:00Z");
    body["confirm"]["chain"] = json!("chain-8");
    let last = invoke_as(&f.app, delivery("c-8", &body, 1000), "req-2").await.unwrap();
    assert!(failures(&last).is_empty());
    let events: Vec<Value> = taken(&f.events).into_iter().map(|(_, _, detail, _)| detail).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0]["outcome"].as_str(), events[0].get("recordId")), (Some("confirmed"), None), "{events:?}");
}

/// A check whose chain no longer owns its target (another chain took it over) ends
/// without effect.
#[tokio::test]
pub(super) async fn a_check_of_a_chain_taken_over_ends_without_effect() {
    let world = world("taken", &["ws-over0001"]).await;
    let (fleet, queue, f) = (&world.fleet, &world.queue, &world.f);
    fleet.set("ws-over0001", WorkspaceState::Terminating);
    let mut stale = check("TerminateWorkspaces", &[("ws-over0001", None, None)], 1, "2026-11-24T09:59:00Z");
    stale["confirm"]["chain"] = json!("chain-old");
    // The current chain.
    let mut current = stale.clone();
    current["confirm"]["chain"] = json!("chain-new");

    at(0);
    invoke_as(&f.app, delivery("c-new", &current, 1), "req-1").await.unwrap();
    assert_eq!(queue.take().len(), 1, "the owning chain goes on");
    fleet.set("ws-over0001", WorkspaceState::Terminated);
    invoke_as(&f.app, delivery("c-old", &stale, 1), "req-2").await.unwrap();

    assert!(queue.take().is_empty());
    assert!(f.decisions().is_empty(), "no decision from a chain that does not own the target");
}

/// The table cannot be reached: nothing is called that needs a claim, and what was
/// accepted comes back; nothing is duplicated, nothing lost.
#[tokio::test]
pub(super) async fn when_the_table_is_unreachable_the_message_is_transient() {
    let calls = log::<Vec<String>>();
    let terminate = {
        let calls = calls.clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances).then_compute_output(move |req| {
            calls.lock().unwrap().push(req.source_server_ids().to_vec());
            aws_sdk_mgn::operation::terminate_target_instances::TerminateTargetInstancesOutput::builder().build()
        })
    };
    let dead = StateTable::new(dynamodb(&support::dead_endpoint()), Some("teardown-state".into()), 7200);
    let fleet = fleet(&["ws-dead0001"]);
    let queue = queue();
    let f = function(&dead, &fleet, &queue, &[], &[&terminate], &[]);
    let mgn = json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa"]}});
    let ws = ws_request(&["ws-dead0001".to_owned()]);

    at(0);
    let response = invoke_as(&f.app, sqs_event(&[("m-mgn", mgn), ("m-ws", ws)]), "req-1").await.unwrap();

    let mut back = failures(&response);
    back.sort();
    assert_eq!(back, vec!["m-mgn", "m-ws"], "both come back");
    assert!(taken(&calls).is_empty(), "no MGN call without its claim");
    assert!(taken(&f.records).is_empty(), "transient: no record yet");
}
