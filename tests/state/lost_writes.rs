//! Writes whose answers were lost, and later terminations.

use super::*;

/// A table reached through a proxy that lets every `UpdateItem` in but loses the
/// answer of the first `lose` of them (the connection reset on the way back), and a
/// client that retries as the function's does.
pub(super) async fn table_losing_answers(moto: &Moto, name: &str, lose: usize) -> StateTable {
    table(moto, name).await;
    let lost = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (client, to) = (support::loopback::upstream(), moto.endpoint.clone());
    let proxy = support::loopback::serve(move |req: hyper::Request<hyper::body::Incoming>| {
        let (client, to, lost) = (client.clone(), to.clone(), lost.clone());
        async move {
            let update = req.headers().get("x-amz-target").is_some_and(|t| t == "DynamoDB_20120810.UpdateItem");
            let (parts, body) = req.into_parts();
            let body = support::loopback::body_of(body).await;
            let answer = support::loopback::forward(&client, &to, parts, body).await;
            if update && lost.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < lose {
                return support::loopback::reset();
            }
            answer
        }
    })
    .await;
    table_via(&proxy, name)
}

/// The table `name`, whose writes that contain `needle` never go in (their
/// connection is reset): as if the invocation making them had died first.
pub(super) async fn table_refusing(moto: &Moto, name: &str, needle: &'static str) -> StateTable {
    table(moto, name).await;
    let (client, to) = (support::loopback::upstream(), moto.endpoint.clone());
    let proxy = support::loopback::serve(move |req: hyper::Request<hyper::body::Incoming>| {
        let (client, to) = (client.clone(), to.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = support::loopback::body_of(body).await;
            if String::from_utf8_lossy(&body).contains(needle) {
                return support::loopback::reset();
            }
            support::loopback::forward(&client, &to, parts, body).await
        }
    })
    .await;
    table_via(&proxy, name)
}

/// The table `name`, reached through `proxy` by a client that retries as the function's does.
pub(super) fn table_via(proxy: &str, name: &str) -> StateTable {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(proxy)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "tests"))
        .retry_config(
            aws_sdk_dynamodb::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(std::time::Duration::from_millis(1)),
        )
        .build();
    StateTable::new(aws_sdk_dynamodb::Client::from_conf(config), Some(name.to_owned()), 7200)
}

/// Found by the run under fire: a chain's write slower than its check's delay let
/// the check arrive first, find the item under the pending chain it was about to take
/// over, and be dropped; the write then went in and dropped that chain's check in
/// turn. No chain was left to decide the termination. A check now goes out only once
/// its chain is written: here the chain's write takes 300 ms, and no check is sent
/// before it is answered.
#[tokio::test]
pub(super) async fn a_check_goes_out_only_once_its_chain_is_written() {
    let moto = Moto::start();
    table(&moto, "chain-first").await;
    let (fleet, queue) = (fleet(&["ws-first0001"]), queue());
    // How many checks had gone out when each chain's write was answered.
    let seen: Log<usize> = log();
    let (client, to, sent, noted) =
        (support::loopback::upstream(), moto.endpoint.clone(), queue.sent.clone(), seen.clone());
    let proxy = support::loopback::serve(move |req: hyper::Request<hyper::body::Incoming>| {
        let (client, to, sent, noted) = (client.clone(), to.clone(), sent.clone(), noted.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = support::loopback::body_of(body).await;
            let chain = String::from_utf8_lossy(&body).contains("acceptedAt = :at");
            if chain {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            let answer = support::loopback::forward(&client, &to, parts, body).await;
            if chain {
                let checks = sent.lock().unwrap().iter().filter(|(body, _)| !is_watch(body)).count();
                noted.lock().unwrap().push(checks);
            }
            answer
        }
    })
    .await;
    let state = table_via(&proxy, "chain-first");
    let f = function(&state, &fleet, &queue, &[], &[], &[]);
    let request = ws_request(&["ws-first0001".to_owned()]);
    at(0);
    let answer = invoke_as(&f.app, delivery("m-first", &request, 1), "req-1").await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    assert_eq!(taken(&fleet.terminated), vec![vec!["ws-first0001".to_owned()]]);
    assert_eq!(taken(&seen), vec![0], "no check went out before its chain was written");
    assert_eq!(queue.take().len(), 1, "and then its check did");
}

/// The item key of `target` in the function's own account and region.
pub(super) fn key_of(operation: teardown::request::Operation, target: &str) -> teardown::state::Key {
    teardown::state::Key {
        account: "123456789012".into(),
        region: "us-east-1".into(),
        operation,
        target: target.into(),
    }
}

pub(super) fn chain(target: &str, chain: &str, record: Option<&str>, fresh: bool) -> teardown::state::ChainStart {
    teardown::state::ChainStart {
        key: key_of(teardown::request::Operation::TerminateProvisionedProduct, target),
        chain: chain.into(),
        due_at: 1_800_000_000,
        accepted_at: "2026-11-24T10:00:00Z".into(),
        source: "{}".into(),
        job_id: None,
        record_id: record.map(str::to_owned),
        fresh,
    }
}

#[tokio::test]
pub(super) async fn a_write_whose_answer_was_lost_is_known_as_its_own_when_the_sdk_sends_it_again() {
    use teardown::state::{CheckEnd, CheckOf, Started};
    let moto = Moto::start();
    // Each of the two writes goes in, its answer is lost, and the SDK sends it again.
    let state = table_losing_answers(&moto, "lost-answers", 2).await;
    let start = chain("pp-lost0001", "req-1:0", Some("rec-1"), true);

    let started = state.start_chain(&start, 1_764_000_000).await.expect("the table answers the second attempt");
    assert!(matches!(started, Started::Won { .. }), "its own chain, not another's: {started:?}");

    let check =
        CheckOf { chain: "req-1:0", attempt: 1, accepted_at: &start.accepted_at, message_id: "m-1", receive_count: 1 };
    let decided = CheckEnd::Decided { decision: "confirmed", error: None, of: None };
    let written = state.check_end(&start.key, &check, &decided, 1_764_000_100).await.expect("answered");
    assert_eq!(written, teardown::state::Ended::Won, "the decision it wrote is its own: it is published, not dropped");

    // Another check of the same chain, from another message, still finds it decided by
    // m-1 (and not yet published): it decides nothing anew.
    let copy = CheckOf { message_id: "m-2", ..check };
    let found = state.check_end(&start.key, &copy, &decided, 1_764_000_200).await.expect("answered");
    let teardown::state::Ended::Unannounced(item) = found else { panic!("{found:?}") };
    assert_eq!((item.get("decidedMsg"), item.get("decidedAt")), (Some("m-1"), Some("1764000100")));
}

#[tokio::test]
pub(super) async fn a_later_termination_found_underway_after_a_decided_one_gets_its_own_chain() {
    use teardown::state::{CheckEnd, CheckOf, Started};
    let moto = Moto::start();
    let state = table(&moto, "later-termination").await;
    let first = chain("pp-again0001", "req-1:0", Some("rec-1"), true);
    assert!(matches!(state.start_chain(&first, 1_764_000_000).await.unwrap(), Started::Won { .. }));
    let check =
        CheckOf { chain: "req-1:0", attempt: 1, accepted_at: &first.accepted_at, message_id: "m-1", receive_count: 1 };
    let failed = CheckEnd::Decided { decision: "failed", error: Some("StackDeleteFailed".into()), of: None };
    state.check_end(&first.key, &check, &failed, 1_764_000_100).await.unwrap();
    state.announced(&first.key.pk(), "req-1:0", "m-1", 1_764_000_110).await.unwrap();

    // The same record found again on its way out was decided already.
    let same = chain("pp-again0001", "req-2:0", Some("rec-1"), false);
    assert_eq!(state.start_chain(&same, 1_764_000_200).await.unwrap(), Started::Lost);
    // A new terminate record (another request terminated it again, and this delivery
    // lost the answer) is a new termination: followed up and decided on its own.
    let later = chain("pp-again0001", "req-3:0", Some("rec-2"), false);
    assert!(matches!(state.start_chain(&later, 1_764_000_300).await.unwrap(), Started::Won { .. }));
    let item = item(&moto, "later-termination", &later.key.pk()).await;
    assert_eq!(item.get("recordId").map(String::as_str), Some("rec-2"));
    assert_eq!(item.get("decision"), None, "the earlier decision is not this termination's");
}

#[tokio::test]
pub(super) async fn a_decision_a_check_made_without_knowing_the_record_is_not_taken_for_another_records() {
    use teardown::state::{CheckEnd, CheckOf, Started};
    let moto = Moto::start();
    let state = table(&moto, "adopted-decision").await;
    // Its chain's write failed, its check went out anyway, adopted the target and
    // decided: the item names no record.
    let key = chain("pp-adopt0001", "req-1:0", None, true).key;
    let check = CheckOf {
        chain: "req-1:0",
        attempt: 1,
        accepted_at: "2026-11-24T10:00:00Z",
        message_id: "m-1",
        receive_count: 1,
    };
    let decided = CheckEnd::Decided { decision: "unconfirmed", error: None, of: None };
    state.check_end(&key, &check, &decided, 1_764_000_100).await.unwrap();

    // The record it followed, found still running later, may be the one it decided.
    let found = chain("pp-adopt0001", "req-2:0", Some("rec-1"), false);
    assert_eq!(
        state.start_chain(&found, 1_764_000_200).await.unwrap(),
        Started::Lost,
        "no second chain, no second decision"
    );
    assert_eq!(
        item(&moto, "adopted-decision", &key.pk()).await.get("decision").map(String::as_str),
        Some("unconfirmed")
    );
}

/// Twice recorded: a batch whose invocation died after its records went out comes
/// back whole; an invalid message in it is judged again, and the same record (but for
/// its receive count) would go out again. With the table it goes out once; a new
/// message with the same body gets its own.
#[tokio::test]
pub(super) async fn a_record_published_before_the_invocation_died_is_not_published_again_by_the_next_delivery() {
    let world = world("records-once", &["ws-recs0001"]).await;
    let f = &world.f;
    let bad = json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceID": "ws-recs0001"}]}});

    invoke_as(&f.app, delivery("m-bad-1", &bad, 1), "req-1").await.unwrap();
    invoke_as(&f.app, delivery("m-bad-1", &bad, 2), "req-2").await.unwrap();
    invoke_as(&f.app, delivery("m-bad-2", &bad, 1), "req-3").await.unwrap();

    let records: Vec<String> = taken(&f.records)
        .into_iter()
        .map(|(_, body, _, _)| body["source"]["messageId"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(records, ["m-bad-1", "m-bad-2"], "one record per message");
    assert!(taken(&world.fleet.terminated).is_empty());
}

/// Found by the runs with crashes: a record sent by a delivery that died before
/// marking it sent went out again with the next delivery's receive count and time: two
/// different records for one failure (even a FIFO dead-letter queue keeps both). Sent
/// again, it is now the record the first delivery built, byte for byte but the send.
#[tokio::test]
pub(super) async fn a_record_sent_again_because_its_mark_was_lost_is_the_same_record() {
    let moto = Moto::start();
    // Every write that marks a record sent fails, as if its invocation had died first.
    let state = table_refusing(&moto, "records-again", "publishedAt = :now").await;
    let (fleet, queue) = (fleet(&[]), queue());
    let f = function(&state, &fleet, &queue, &[], &[], &[]);
    let bad = json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceID": "ws-again0001"}]}});

    at(0);
    invoke_as(&f.app, delivery("m-again", &bad, 1), "req-1").await.unwrap();
    at(400);
    invoke_as(&f.app, delivery("m-again", &bad, 2), "req-2").await.unwrap();

    let records: Vec<Value> = taken(&f.records).into_iter().map(|(_, body, _, _)| body).collect();
    assert_eq!(records.len(), 2, "not marked, it went out again (at least once)");
    assert_eq!(records[0]["source"]["receiveCount"], 1);
    assert_eq!(records[0]["failedAt"], "2026-11-24T10:00:00Z");
    assert_eq!(records[1], records[0], "the same record, as the first delivery built it");
}

#[tokio::test]
pub(super) async fn a_claim_another_invocation_holds_is_not_taken_while_its_chain_is_pending() {
    use teardown::state::{Intent, Started, Written};
    let moto = Moto::start();
    let state = table(&moto, "claims-held").await;
    let key = key_of(teardown::request::Operation::TerminateTargetInstances, "s-cccccccccccccccccc");
    let intent =
        |chain| Intent { chain, at: 1_764_000_000, accepted_at: "2026-11-24T10:00:00Z", source: "{}", token: chain };
    assert_eq!(state.claim(&key, "holder-1", 1_764_000_000, &intent("holder-1:0")).await.unwrap(), Written::Won);
    // Its call accepted, its chain written, its first check not yet arrived (pending).
    let start =
        teardown::state::ChainStart { key: key.clone(), ..chain("s-cccccccccccccccccc", "holder-1:0", None, true) };
    let start = teardown::state::ChainStart { job_id: Some("mgnjob-1".into()), record_id: None, ..start };
    assert!(matches!(state.start_chain(&start, 1_764_000_001).await.unwrap(), Started::Won { .. }));

    // Seconds later another invocation would call for the same server: held.
    let second = state.claim(&key, "holder-2", 1_764_000_006, &intent("holder-2:0")).await.unwrap();
    assert_eq!(second, Written::Lost, "one MGN call per server while the claim holds");
}

/// Lost answer: the terminate call went through but its answer never came (a reset, or
/// the invocation died), so no chain was written. By the next delivery the WorkSpace is
/// gone: found `not_found`, it is still followed up, from the intent noted before the
/// call, and its check confirms it.
#[tokio::test]
pub(super) async fn a_termination_whose_answer_never_came_is_followed_up_by_the_next_delivery_though_it_is_gone() {
    let moto = Moto::start();
    let state = table(&moto, "intents").await;
    let (fleet, queue) = (fleet(&["ws-intent001"]), queue());
    // It goes through: the WorkSpace starts terminating.
    let lost = fleet.answer_lost(WorkspaceState::Terminating, usize::MAX);
    let f = function(&state, &fleet, &queue, &[&lost], &[], &[]);
    let request = ws_request(&["ws-intent001".to_owned()]);

    at(0);
    let first = invoke_as(&f.app, delivery("m-lost-1", &request, 1), "req-1").await.unwrap();
    assert_eq!(failures(&first), ["m-lost-1"], "transient: redelivered");
    assert!(queue.take().is_empty(), "no check: the function never heard it was accepted");

    fleet.set("ws-intent001", WorkspaceState::Terminated);
    at(400);
    invoke_as(&f.app, delivery("m-lost-1", &request, 2), "req-2").await.unwrap();
    let checks = queue.take();
    assert_eq!(checks.len(), 1, "the intent is followed up: {checks:?}");
    assert_eq!(checks[0]["confirm"]["targets"], json!([{"id": "ws-intent001"}]));

    at(430);
    invoke_as(&f.app, delivery("c-1", &checks[0], 1), "req-3").await.unwrap();
    assert_eq!(f.decisions().get("ws-intent001"), Some(&vec!["confirmed".to_owned()]));
}

/// Found by the runs with crashes: a request's call was accepted and its answer lost;
/// the termination failed at once, and another request, finding the target there
/// again, wrote its own intent over the first and called. The first intent was gone, so
/// its watch found nothing to follow: a termination accepted and never decided. An
/// intent now holds other requests' calls back until it is resolved (here by its
/// watch, which decides the first termination); then the other request calls.
#[tokio::test]
pub(super) async fn another_requests_call_waits_until_an_unanswered_call_is_resolved() {
    let moto = Moto::start();
    let state = table(&moto, "other-intent").await;
    let (fleet, queue) = (fleet(&["ws-other0001"]), queue());
    // The first call goes through (and fails later); its answer is lost.
    let lost = fleet.answer_lost(WorkspaceState::Error, 1);
    let f = function(&state, &fleet, &queue, &[&lost], &[], &[]);
    let request = ws_request(&["ws-other0001".to_owned()]);

    at(0);
    let first = invoke_as(&f.app, delivery("m-first", &request, 1), "req-1").await.unwrap();
    assert_eq!(failures(&first), ["m-first"], "transient: its answer was lost");
    let watches = watches_sent(&queue);
    assert_eq!(watches.len(), 1);

    // Another request finds the WorkSpace in ERROR, terminable: it waits.
    at(60);
    let other = invoke_as(&f.app, delivery("m-other", &request, 1), "req-2").await.unwrap();
    assert_eq!(failures(&other), ["m-other"], "held back: the first call is still to be answered");
    assert!(taken(&fleet.terminated).is_empty(), "no second call over an unanswered one");

    // The first request's message never comes back; its watch does, and decides it.
    at(900);
    invoke_as(&f.app, delivery("w-first", &watches[0], 1), "req-3").await.unwrap();
    assert_eq!(f.decisions().get("ws-other0001"), Some(&vec!["failed".to_owned()]), "the first termination decided");

    // Then the other request calls.
    at(960);
    let again = invoke_as(&f.app, delivery("m-other", &request, 2), "req-4").await.unwrap();
    assert_eq!(failures(&again), Vec::<String>::new());
    assert_eq!(taken(&fleet.terminated), vec![vec!["ws-other0001".to_owned()]], "called once the first is decided");
}

/// Found in review: two requests of one batch that name the same WorkSpace share one
/// call; the second's intent, refused by the first's, held it back on every run. The
/// intents of one invocation's requests are one call's: neither waits.
#[tokio::test]
pub(super) async fn two_requests_of_one_batch_for_one_target_share_its_call_and_neither_waits() {
    let world = world("one-batch", &["ws-batch0001"]).await;
    let (fleet, f) = (&world.fleet, &world.f);
    let request = ws_request(&["ws-batch0001".to_owned()]);
    let event = sqs_event(&[("m-one", request.clone()), ("m-two", request)]);
    at(0);
    let answer = invoke_as(&f.app, event, "req-1").await.unwrap();
    assert_eq!(failures(&answer), Vec::<String>::new(), "neither is held back");
    assert_eq!(taken(&fleet.terminated), vec![vec!["ws-batch0001".to_owned()]], "one call for both");
}

/// The other half: a watch whose call left no sign (it was never accepted) removes
/// that call's intent, so that it holds no other request back.
#[tokio::test]
pub(super) async fn a_watch_that_finds_no_sign_of_its_call_frees_the_target_for_other_requests() {
    let world = world("no-sign", &["ws-nosign001"]).await;
    let (fleet, queue, f) = (&world.fleet, &world.queue, &world.f);
    let key = key_of(teardown::request::Operation::TerminateWorkspaces, "ws-nosign001");
    let intent = teardown::state::Intent {
        chain: "req-1:0",
        at: 1_795_514_400,
        accepted_at: "2026-11-24T10:00:00Z",
        source: r#"{"kind":"sqs","messageId":"m-died"}"#,
        token: "t-died",
    };
    let state = f.app.state.clone();
    assert_eq!(state.intend(&key, &intent, 1_795_514_400).await.unwrap(), teardown::state::Written::Won);
    let request = ws_request(&["ws-nosign001".to_owned()]);
    at(60);
    let held = invoke_as(&f.app, delivery("m-next", &request, 1), "req-2").await.unwrap();
    assert_eq!(failures(&held), ["m-next"], "held back by the intent");
    assert!(taken(&fleet.terminated).is_empty());
    queue.take_all();

    let mut watch = check("TerminateWorkspaces", &[("ws-nosign001", None, None)], 0, "2026-11-24T10:00:00Z");
    watch["confirm"]["chain"] = json!("req-1:0");
    at(900);
    invoke_as(&f.app, delivery("w-died", &watch, 1), "req-3").await.unwrap();
    assert!(f.decisions().is_empty(), "nothing to decide: the call never went in");

    at(960);
    let next = invoke_as(&f.app, delivery("m-next", &request, 2), "req-4").await.unwrap();
    assert_eq!(failures(&next), Vec::<String>::new());
    assert_eq!(taken(&fleet.terminated), vec![vec!["ws-nosign001".to_owned()]], "called once the intent is gone");
}

/// Decided before terminated again: a WorkSpace whose termination failed (ERROR) before
/// its chain's first check came is not called again by the next request until that
/// termination is decided; the request checks it itself, then calls on its redelivery.
#[tokio::test]
pub(super) async fn a_target_is_not_terminated_again_until_its_last_termination_is_decided() {
    let world = world("deciding", &["ws-again0001"]).await;
    let (fleet, queue, f) = (&world.fleet, &world.queue, &world.f);
    let request = ws_request(&["ws-again0001".to_owned()]);

    at(0);
    invoke_as(&f.app, delivery("m-a", &request, 1), "req-1").await.unwrap();
    assert_eq!(taken(&fleet.terminated).len(), 1);
    let first_check = queue.take();
    assert_eq!(first_check.len(), 1);

    // Its termination fails before that check arrives; another request names it.
    fleet.set("ws-again0001", WorkspaceState::Error);
    at(10);
    let held = invoke_as(&f.app, delivery("m-b", &request, 1), "req-2").await.unwrap();
    assert_eq!(failures(&held), ["m-b"], "held: redelivered once the last termination is decided");
    assert_eq!(taken(&fleet.terminated).len(), 1, "not called again yet");
    let own_check = queue.take();
    assert_eq!(own_check.len(), 1, "it checks the last termination itself");

    at(40);
    invoke_as(&f.app, delivery("c-a", &first_check[0], 1), "req-3").await.unwrap();
    invoke_as(&f.app, delivery("c-b", &own_check[0], 1), "req-4").await.unwrap();
    assert_eq!(f.decisions().get("ws-again0001"), Some(&vec!["failed".to_owned()]), "decided once");

    at(400);
    invoke_as(&f.app, delivery("m-b", &request, 2), "req-5").await.unwrap();
    assert_eq!(taken(&fleet.terminated).len(), 2, "decided, it is terminated again");
}

/// Not taken for accepted: a call whose answer never came, whose WorkSpace the next
/// delivery finds still there (here suspended since, so skipped), was perhaps never
/// accepted: no chain, no check, no decision about a termination that may never have been.
#[tokio::test]
pub(super) async fn an_intent_whose_target_is_still_there_is_not_taken_for_an_accepted_termination() {
    let moto = Moto::start();
    let state = table(&moto, "intents-kept").await;
    let (fleet, queue) = (fleet(&["ws-notacc001"]), queue());
    let refused = mock!(aws_sdk_workspaces::Client::terminate_workspaces).then_http_response(|| {
        http(503, r#"{"__type":"ServiceUnavailableException","message":"the answer was lost"}"#)
    });
    let f = function(&state, &fleet, &queue, &[&refused], &[], &[]);
    let request = ws_request(&["ws-notacc001".to_owned()]);

    at(0);
    let first = invoke_as(&f.app, delivery("m-kept-1", &request, 1), "req-1").await.unwrap();
    assert_eq!(failures(&first), ["m-kept-1"]);

    fleet.set("ws-notacc001", WorkspaceState::Suspended);
    at(400);
    invoke_as(&f.app, delivery("m-kept-1", &request, 2), "req-2").await.unwrap();
    assert!(queue.take().is_empty(), "no check for a termination that may never have been accepted");
    assert!(f.decisions().is_empty());
}

/// Without a request queue nothing is followed up, so nothing is kept for it: no
/// intent and no chain (a chain nobody checks would hold its target for an hour).
#[tokio::test]
pub(super) async fn without_a_request_queue_a_termination_leaves_no_intent_and_no_chain() {
    let moto = Moto::start();
    let state = table(&moto, "no-queue").await;
    let fleet = fleet(&["ws-noqueue01"]);
    let (records, (describe, terminate)) = (log(), (fleet.describe(), fleet.terminate()));
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[&describe, &terminate], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { max_receives: Some(1000), ..settings() })
        .with_state(state.clone());
    let request = ws_request(&["ws-noqueue01".to_owned()]);

    invoke_as(&app, delivery("m-nq-1", &request, 1), "req-1").await.unwrap();
    assert_eq!(taken(&fleet.terminated).len(), 1, "terminated all the same");
    let pk = "123456789012#us-east-1#TerminateWorkspaces#ws-noqueue01";
    assert!(item(&moto, "no-queue", pk).await.is_empty(), "nothing kept for a follow-up that cannot be");

    // Found underway by another request: still nothing, and nothing held.
    invoke_as(&app, delivery("m-nq-2", &request, 1), "req-2").await.unwrap();
    assert!(item(&moto, "no-queue", pk).await.is_empty());
}

/// A delivery that cannot read its request's intents does not settle without them:
/// the message comes back, so a termination whose answer was lost is still followed.
#[tokio::test]
pub(super) async fn a_delivery_that_cannot_read_its_intents_comes_back() {
    let moto = Moto::start();
    table(&moto, "intents-unread").await;
    let (client, to) = (support::loopback::upstream(), moto.endpoint.clone());
    let proxy = support::loopback::serve(move |req: hyper::Request<hyper::body::Incoming>| {
        let (client, to) = (client.clone(), to.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = support::loopback::body_of(body).await;
            if String::from_utf8_lossy(&body).contains("askedAt") {
                return support::loopback::status(500, r#"{"__type":"InternalServerError","message":"down"}"#);
            }
            support::loopback::forward(&client, &to, parts, body).await
        }
    })
    .await;
    let state = StateTable::new(dynamodb(&proxy), Some("intents-unread".to_owned()), 7200);
    let (fleet, queue) = (fleet(&["ws-unread001"]), queue());
    let lost = mock!(aws_sdk_workspaces::Client::terminate_workspaces).then_http_response(|| {
        http(503, r#"{"__type":"ServiceUnavailableException","message":"the answer was lost"}"#)
    });
    let f = function(&state, &fleet, &queue, &[&lost], &[], &[]);
    let request = ws_request(&["ws-unread001".to_owned()]);

    at(0);
    invoke_as(&f.app, delivery("m-unread", &request, 1), "req-1").await.unwrap();
    fleet.set("ws-unread001", WorkspaceState::Terminated);
    at(400);
    let second = invoke_as(&f.app, delivery("m-unread", &request, 2), "req-2").await.unwrap();
    assert_eq!(failures(&second), ["m-unread"], "its intents unread, it comes back");
}

/// A Service Catalog token reused by a redelivery answers the record it started, even
/// once that record FAILED and was decided: it is not a new termination, and gets no
/// second chain (no second decision). A new record is one.
#[tokio::test]
pub(super) async fn the_same_record_answered_again_is_not_a_new_termination() {
    use teardown::state::{CheckEnd, CheckOf, Started};
    let moto = Moto::start();
    let state = table(&moto, "same-record").await;
    let first = chain("pp-same00001", "req-1:0", Some("rec-1"), true);
    assert!(matches!(state.start_chain(&first, 1_764_000_000).await.unwrap(), Started::Won { .. }));
    let check =
        CheckOf { chain: "req-1:0", attempt: 1, accepted_at: &first.accepted_at, message_id: "m-1", receive_count: 1 };
    let failed = CheckEnd::Decided { decision: "failed", error: Some("StackDeleteFailed".into()), of: None };
    state.check_end(&first.key, &check, &failed, 1_764_000_100).await.unwrap();

    let again = chain("pp-same00001", "req-2:0", Some("rec-1"), true);
    assert_eq!(state.start_chain(&again, 1_764_000_200).await.unwrap(), Started::Lost, "rec-1 is decided already");
    let new = chain("pp-same00001", "req-3:0", Some("rec-2"), true);
    assert!(matches!(state.start_chain(&new, 1_764_000_300).await.unwrap(), Started::Won { .. }), "a new record is");
}

/// Found by the run under fire: a product's termination (rec-1) failed and was decided;
/// another request terminated it again (rec-2), whose chain was still pending when a
/// redelivery of the first request, its token reused, was answered with rec-1 once
/// more. It took the target over for rec-1: rec-2's check was then dropped and rec-2
/// never decided, and rec-1 was decided twice. A job or record decided once is never
/// followed up again, whatever came after it; rec-2's own check decides rec-2.
/// Found by a small run with crashes (likely cause): a later delivery's chain, started
/// without a record (an intent it adopted), found the product's last record, decided by
/// an earlier chain, and decided it again: two decisions of one termination. A check
/// never decides a job or record decided before.
#[tokio::test]
pub(super) async fn a_record_decided_by_one_chain_is_not_decided_again_by_another() {
    use teardown::state::{CheckEnd, CheckOf, Started};
    let moto = Moto::start();
    let state = table(&moto, "decided-by-one").await;
    let first = chain("pp-decided01", "req-1:0", Some("rec-1"), true);
    assert!(matches!(state.start_chain(&first, 1_764_000_000).await.unwrap(), Started::Won { .. }));
    let check =
        CheckOf { chain: "req-1:0", attempt: 1, accepted_at: &first.accepted_at, message_id: "m-1", receive_count: 1 };
    let failed =
        || CheckEnd::Decided { decision: "failed", error: Some("StackDeleteFailed".into()), of: Some("rec-1".into()) };
    assert_eq!(
        state.check_end(&first.key, &check, &failed(), 1_764_000_100).await.unwrap(),
        teardown::state::Ended::Won
    );
    // A later chain of the target, with no record of its own (announced first, so it may start).
    state.announced(&first.key.pk(), "req-1:0", "m-1", 1_764_000_110).await.unwrap();
    let later = chain("pp-decided01", "req-2:0", None, true);
    assert!(matches!(state.start_chain(&later, 1_764_000_200).await.unwrap(), Started::Won { .. }));
    let check2 =
        CheckOf { chain: "req-2:0", attempt: 1, accepted_at: &later.accepted_at, message_id: "m-2", receive_count: 1 };
    assert_eq!(
        state.check_end(&later.key, &check2, &failed(), 1_764_000_300).await.unwrap(),
        teardown::state::Ended::Lost,
        "rec-1 is decided already: no second decision"
    );
}

#[tokio::test]
pub(super) async fn a_record_decided_two_terminations_ago_does_not_take_over_the_later_one() {
    use teardown::state::{CheckEnd, CheckOf, Started};
    let moto = Moto::start();
    let state = table(&moto, "decided-long-ago").await;
    let first = chain("pp-twice0001", "req-1:0", Some("rec-1"), true);
    assert!(matches!(state.start_chain(&first, 1_764_000_000).await.unwrap(), Started::Won { .. }));
    let check =
        CheckOf { chain: "req-1:0", attempt: 1, accepted_at: &first.accepted_at, message_id: "m-1", receive_count: 1 };
    let failed =
        CheckEnd::Decided { decision: "failed", error: Some("StackDeleteFailed".into()), of: Some("rec-1".into()) };
    assert_eq!(state.check_end(&first.key, &check, &failed, 1_764_000_100).await.unwrap(), teardown::state::Ended::Won);

    let second = chain("pp-twice0001", "req-2:0", Some("rec-2"), true);
    assert!(matches!(state.start_chain(&second, 1_764_000_200).await.unwrap(), Started::Won { .. }));
    // rec-2's check is on its way (its chain pending) when rec-1 is answered again.
    for fresh in [true, false] {
        let replay = chain("pp-twice0001", "req-3:0", Some("rec-1"), fresh);
        assert_eq!(
            state.start_chain(&replay, 1_764_000_250).await.unwrap(),
            Started::Lost,
            "rec-1 was decided (answered to {})",
            if fresh { "a call" } else { "a lookup" }
        );
    }
    let item = state.get(&first.key).await.unwrap().expect("the item");
    assert_eq!(item.get("chainId"), Some("req-2:0"), "rec-2's chain still owns the target");
    let check2 =
        CheckOf { chain: "req-2:0", attempt: 1, accepted_at: &second.accepted_at, message_id: "m-2", receive_count: 1 };
    let confirmed = CheckEnd::Decided { decision: "confirmed", error: None, of: Some("rec-2".into()) };
    assert_eq!(
        state.check_end(&second.key, &check2, &confirmed, 1_764_000_300).await.unwrap(),
        teardown::state::Ended::Won
    );
    // And once rec-2 is decided too, neither is followed up again.
    for record in ["rec-1", "rec-2"] {
        let replay = chain("pp-twice0001", "req-4:0", Some(record), true);
        assert_eq!(state.start_chain(&replay, 1_764_000_400).await.unwrap(), Started::Lost, "{record} was decided");
    }
}
