//! What the review of the first version found.

use super::*;

/// The item of `pk`, as attribute → text.
pub(super) async fn item(moto: &Moto, table: &str, pk: &str) -> HashMap<String, String> {
    let got = dynamodb(&moto.endpoint)
        .get_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()))
        .send()
        .await
        .unwrap();
    got.item()
        .map(|i| i.iter().map(|(k, v)| (k.clone(), v.as_s().or(v.as_n()).cloned().unwrap_or_default())).collect())
        .unwrap_or_default()
}

/// A check whose write went in but whose next check could not be sent comes back: the
/// same message, delivered again, redoes its write and sends the check. Its copy (a
/// second message) would not.
#[tokio::test]
pub(super) async fn a_check_that_comes_back_after_its_write_went_in_is_redone_not_dropped() {
    let world = world("redo", &["ws-redo0001"]).await;
    let (fleet, queue, f) = (&world.fleet, &world.queue, &world.f);
    fleet.set("ws-redo0001", WorkspaceState::Terminating);
    let mut body = check("TerminateWorkspaces", &[("ws-redo0001", None, None)], 1, "2026-11-24T09:59:30Z");
    body["confirm"]["chain"] = json!("chain-1");

    at(0);
    queue.fail(true);
    let response = invoke_as(&f.app, delivery("c-1", &body, 1), "req-1").await.unwrap();
    assert_eq!(failures(&response), vec!["c-1"], "the next check was not sent: it comes back");
    queue.fail(false);
    queue.take();

    at(400);
    invoke_as(&f.app, delivery("c-1", &body, 2), "req-2").await.unwrap();
    assert_eq!(queue.take().len(), 1, "the same message, back, goes on");
    invoke_as(&f.app, delivery("c-copy", &body, 1), "req-3").await.unwrap();
    assert!(queue.take().is_empty(), "a copy of it does not");
}

/// Found by the run with crashes: a check that wrote its decision and died before
/// publishing it is delivered again, later, and finds the target changed since (here a
/// WorkSpace in `ERROR`, decided `failed`, since gone). It publishes what it decided
/// then, as it was: the same outcome, the same time, the same record (a second put of
/// the one decision, never a second decision). A copy of it publishes nothing.
#[tokio::test]
pub(super) async fn a_decision_published_again_after_a_crash_is_the_same_decision() {
    let world = world("decided-then", &["ws-then0001"]).await;
    let (fleet, f) = (&world.fleet, &world.f);
    let mut body = check("TerminateWorkspaces", &[("ws-then0001", None, None)], 1, "2026-11-24T09:59:30Z");
    body["confirm"]["chain"] = json!("chain-1");
    let key = key_of(teardown::request::Operation::TerminateWorkspaces, "ws-then0001");
    let of = teardown::state::CheckOf {
        chain: "chain-1",
        attempt: 1,
        accepted_at: "2026-11-24T09:59:30Z",
        message_id: "c-1",
        receive_count: 1,
    };
    // The first delivery, at 10:00:10, decided `failed` and died before publishing.
    let failed = teardown::state::CheckEnd::Decided {
        decision: "failed",
        error: Some("ERROR: the WorkSpace is in ERROR".into()),
        of: None,
    };
    let state = f.app.state.clone();
    assert_eq!(state.check_end(&key, &of, &failed, 1_795_514_410).await.unwrap(), teardown::state::Ended::Won);
    fleet.set("ws-then0001", WorkspaceState::Terminated);

    at(400);
    let response = invoke_as(&f.app, delivery("c-1", &body, 2), "req-2").await.unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    let events: Vec<Value> = taken(&f.events).into_iter().map(|(_, _, detail, _)| detail).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "failed", "what it decided then, not what it would decide now");
    assert_eq!(events[0]["reason"], "ERROR: the WorkSpace is in ERROR");
    assert_eq!(events[0]["at"], "2026-11-24T10:00:10Z", "when it decided");
    let records = taken(&f.records);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].1["outcome"], "failed");
    assert_eq!(records[0].1["failedAt"], "2026-11-24T10:00:10Z");
    assert_eq!(
        records[0].1["failedTargets"],
        json!([{"id": "ws-then0001", "code": "ERROR", "message": "the WorkSpace is in ERROR"}])
    );

    // A copy of the check (another message) publishes nothing.
    f.events.lock().unwrap().clear();
    f.records.lock().unwrap().clear();
    invoke_as(&f.app, delivery("c-copy", &body, 1), "req-3").await.unwrap();
    assert!(taken(&f.events).is_empty() && taken(&f.records).is_empty());
}

/// Found by the run with crashes: SQS handed one check out twice at once, with the same
/// receive count; the copy that decided died before publishing, and the other, finding
/// the decision and taking it for another copy's, settled without effect. SQS deleted
/// the message, and the decision was never published. A copy of the same delivery now
/// comes back instead (its twin, alive, settles the message; dead, it does not), and
/// the next delivery publishes the decision as it was made; on the last delivery, the
/// copy publishes it itself. Never two decisions, and never two events from live twins.
#[tokio::test]
pub(super) async fn a_decision_whose_copy_died_is_published_by_the_other_copy_of_the_same_delivery() {
    let world = world("decided-twin", &["ws-twin0001", "ws-twin0002"]).await;
    let (fleet, f) = (&world.fleet, &world.f);
    let state = f.app.state.clone();
    let confirmed = teardown::state::CheckEnd::Decided { decision: "confirmed", error: None, of: None };
    for (id, message, receive) in [("ws-twin0001", "c-1", 1), ("ws-twin0002", "c-2", 1000)] {
        let key = key_of(teardown::request::Operation::TerminateWorkspaces, id);
        let of = teardown::state::CheckOf {
            chain: "chain-1",
            attempt: 1,
            accepted_at: "2026-11-24T09:59:30Z",
            message_id: message,
            receive_count: receive,
        };
        // One copy of the delivery decided `confirmed` at 10:00:10 and died.
        assert_eq!(state.check_end(&key, &of, &confirmed, 1_795_514_410).await.unwrap(), teardown::state::Ended::Won);
        fleet.set(id, WorkspaceState::Terminated);
    }
    let body = |id: &str| {
        let mut body = check("TerminateWorkspaces", &[(id, None, None)], 1, "2026-11-24T09:59:30Z");
        body["confirm"]["chain"] = json!("chain-1");
        body
    };
    let confirmed_events = || -> Vec<Value> {
        taken(&f.events).into_iter().map(|(_, _, detail, _)| detail).filter(|d| d["outcome"] == "confirmed").collect()
    };

    // The other copy of the same delivery publishes nothing and comes back.
    at(10);
    let twin = invoke_as(&f.app, delivery("c-1", &body("ws-twin0001"), 1), "req-2").await.unwrap();
    assert_eq!(failures(&twin), ["c-1"], "it comes back");
    assert!(confirmed_events().is_empty(), "no event from the copy");
    // Its next delivery publishes the decision, as it was made.
    at(400);
    let next = invoke_as(&f.app, delivery("c-1", &body("ws-twin0001"), 2), "req-3").await.unwrap();
    assert_eq!(failures(&next), Vec::<String>::new());
    let events = confirmed_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["at"], "2026-11-24T10:00:10Z", "the decision the other copy made");

    // On the last delivery (here the 1000th), nothing would come back: the copy publishes it.
    f.events.lock().unwrap().clear();
    let last = invoke_as(&f.app, delivery("c-2", &body("ws-twin0002"), 1000), "req-4").await.unwrap();
    assert_eq!(failures(&last), Vec::<String>::new());
    let events = confirmed_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["id"], "ws-twin0002");
    assert_eq!(events[0]["at"], "2026-11-24T10:00:10Z");
}

/// A copy of a check on its last delivery, when another copy decided: no record, and
/// never `unconfirmed` beside the other's `confirmed`. What the other decided, never
/// published, goes out as it was made (the other may have died).
#[tokio::test]
pub(super) async fn a_copy_that_cannot_ask_on_its_last_delivery_publishes_only_what_another_decided() {
    let moto = Moto::start();
    let state = table(&moto, "copy").await;
    let down = mock!(aws_sdk_workspaces::Client::describe_workspaces)
        .then_http_response(|| http(500, r#"{"__type":"InternalServiceError","message":"down"}"#));
    let queue = queue();
    let (records, events) = (log(), log());
    let (send, put) = (sqs_send_ok(&records), events_put(&events));
    let (refuse, checks) = queue.rules();
    let mut app = Doubles { ws: &[&down], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { max_receives: Some(1), ..settings() })
        .with_request_queue(request_queue(&[&refuse, &checks]))
        .with_audit(audit_bus(&[&put]))
        .with_state(state.clone());
    app.clock = clock;
    let mut body = check("TerminateWorkspaces", &[("ws-done0001", None, None)], 1, "2026-11-24T09:59:30Z");
    body["confirm"]["chain"] = json!("chain-1");
    // Another copy decided it.
    let key = key_of(teardown::request::Operation::TerminateWorkspaces, "ws-done0001");
    let of = teardown::state::CheckOf {
        chain: "chain-1",
        attempt: 1,
        accepted_at: "2026-11-24T09:59:30Z",
        message_id: "c-first",
        receive_count: 1,
    };
    let decided = teardown::state::CheckEnd::Decided { decision: "confirmed", error: None, of: None };
    assert_eq!(state.check_end(&key, &of, &decided, 1_795_514_400).await.unwrap(), teardown::state::Ended::Won);

    at(0);
    invoke_as(&app, delivery("c-copy", &body, 1), "req-1").await.unwrap();

    assert!(taken(&records).is_empty(), "no unconfirmed record for what a copy confirmed");
    let events: Vec<Value> = taken(&events).into_iter().map(|(_, _, detail, _)| detail).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["outcome"].as_str(), events[0]["at"].as_str()),
        (Some("confirmed"), Some("2026-11-24T10:00:00Z")),
        "the other copy's decision, as it was made"
    );
}

/// Found by a run with crashes at 10 %: a watch decided, and every one of its five
/// deliveries was killed before it published; SQS redrove it bare. The chain's next
/// check found the decision and, not its own, ended without effect: the termination
/// was never announced. Another message of the chain now publishes a decision never
/// published, as it was made: at once when the invocation that made it must be over
/// (15 minutes), else on its own last delivery, coming back until then; once.
#[tokio::test]
pub(super) async fn a_decision_whose_maker_never_published_it_is_published_by_another_message_of_its_chain() {
    use teardown::state::{CheckEnd, CheckOf, Ended};
    let ids = ["ws-orph0001", "ws-orph0002", "ws-orph0003", "ws-orph0004"];
    let world = world("unannounced", &ids).await;
    let (fleet, f) = (&world.fleet, &world.f);
    let state = f.app.state.clone();
    let confirmed = CheckEnd::Decided { decision: "confirmed", error: None, of: None };
    let made = [
        ("ws-orph0001", "chain-1", "w-1"),
        ("ws-orph0002", "chain-2", "w-2"),
        ("ws-orph0003", "chain-3", "c-3"),
        ("ws-orph0004", "chain-4", "c-4"),
    ];
    for (id, chain, maker) in made {
        let key = key_of(teardown::request::Operation::TerminateWorkspaces, id);
        let of =
            CheckOf { chain, attempt: 0, accepted_at: "2026-11-24T09:59:30Z", message_id: maker, receive_count: 1 };
        // Decided at 10:00:10, never published.
        assert_eq!(state.check_end(&key, &of, &confirmed, 1_795_514_410).await.unwrap(), Ended::Won);
        fleet.set(id, WorkspaceState::Terminated);
    }
    let body = |id: &str, chain: &str, attempt: u32| {
        let mut body = check("TerminateWorkspaces", &[(id, None, None)], attempt, "2026-11-24T09:59:30Z");
        body["confirm"]["chain"] = json!(chain);
        body
    };
    // What the bus took since last asked.
    let events = || -> Vec<Value> {
        let details = taken(&f.events).into_iter().map(|(_, _, detail, _)| detail).collect();
        f.events.lock().unwrap().clear();
        details
    };
    let announced = |id: &'static str| {
        let state = state.clone();
        async move {
            let key = key_of(teardown::request::Operation::TerminateWorkspaces, id);
            state.get(&key).await.unwrap().and_then(|item| item.get("announcedAt").map(str::to_owned))
        }
    };

    // Ten seconds on, the maker may still be publishing: the chain's check comes back.
    at(20);
    let early = invoke_as(&f.app, delivery("c-1", &body("ws-orph0001", "chain-1", 1), 1), "req-1").await.unwrap();
    assert_eq!(failures(&early), ["c-1"], "it comes back");
    assert!(events().is_empty(), "nothing published beside a maker that may be alive");
    assert_eq!(announced("ws-orph0001").await, None);
    // On its last delivery it publishes the decision, as it was made, and marks it.
    let last = invoke_as(&f.app, delivery("c-1", &body("ws-orph0001", "chain-1", 1), 1000), "req-2").await.unwrap();
    assert_eq!(failures(&last), Vec::<String>::new());
    let published = events();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        (published[0]["id"].as_str(), published[0]["outcome"].as_str(), published[0]["at"].as_str()),
        (Some("ws-orph0001"), Some("confirmed"), Some("2026-11-24T10:00:10Z"))
    );
    assert!(announced("ws-orph0001").await.is_some(), "marked published");
    // Published once: the maker's own delivery come back, or another check, publish nothing.
    invoke_as(&f.app, delivery("w-1", &body("ws-orph0001", "chain-1", 0), 2), "req-3").await.unwrap();
    invoke_as(&f.app, delivery("c-1b", &body("ws-orph0001", "chain-1", 2), 1), "req-4").await.unwrap();
    assert!(events().is_empty(), "{:?}", events());

    // Once the maker's invocation must be over (Lambda's 15 minutes and a minute's
    // margin), the first delivery publishes; a second before, it still comes back.
    at(10 + 959);
    let before = invoke_as(&f.app, delivery("c-2", &body("ws-orph0002", "chain-2", 1), 1), "req-5").await.unwrap();
    assert_eq!(failures(&before), ["c-2"]);
    assert!(events().is_empty());
    at(10 + 960);
    let late = invoke_as(&f.app, delivery("c-2", &body("ws-orph0002", "chain-2", 1), 2), "req-5").await.unwrap();
    assert_eq!(failures(&late), Vec::<String>::new());
    let published = events();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        (published[0]["id"].as_str(), published[0]["at"].as_str()),
        (Some("ws-orph0002"), Some("2026-11-24T10:00:10Z"))
    );

    // The chain's watch, come back after its check decided and died, publishes it too.
    let watch = invoke_as(&f.app, delivery("w-3", &body("ws-orph0003", "chain-3", 0), 1), "req-6").await.unwrap();
    assert_eq!(failures(&watch), Vec::<String>::new());
    let published = events();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        (published[0]["id"].as_str(), published[0]["at"].as_str()),
        (Some("ws-orph0003"), Some("2026-11-24T10:00:10Z"))
    );
    assert!(announced("ws-orph0003").await.is_some());

    // Another chain's check, even on its last delivery, never publishes it: not its chain's.
    let other = invoke_as(&f.app, delivery("c-9", &body("ws-orph0004", "chain-9", 1), 1000), "req-7").await.unwrap();
    assert_eq!(failures(&other), Vec::<String>::new());
    assert!(events().is_empty(), "{:?}", events());
    assert_eq!(announced("ws-orph0004").await, None);
}

/// One item per product and per MGN server, however it is named or reached; a late
/// first write never wipes a decision its own check made; a claim moves the expiry on.
#[tokio::test]
pub(super) async fn items_are_keyed_by_what_a_target_is_and_writes_never_undo_a_decision() {
    let moto = Moto::start();
    let state = table(&moto, "keys").await;
    let (fleet, queue) = (fleet(&[]), queue());
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let mgn_calls = log::<Vec<String>>();
    let mgn_terminate = {
        let calls = mgn_calls.clone();
        mock!(aws_sdk_mgn::Client::terminate_target_instances).then_compute_output(move |req| {
            calls.lock().unwrap().push(req.source_server_ids().to_vec());
            aws_sdk_mgn::operation::terminate_target_instances::TerminateTargetInstancesOutput::builder()
                .job(aws_sdk_mgn::types::Job::builder().job_id("mgnjob-1").build().unwrap())
                .build()
        })
    };
    let f = function(&state, &fleet, &queue, &[], &[&mgn_terminate], &[&terminate]);

    at(0);
    let by_name = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox"}});
    invoke_as(&f.app, delivery("m-1", &by_name, 1), "req-1").await.unwrap();
    let product = item(&moto, "keys", "123456789012#us-east-1#TerminateProvisionedProduct#pp-sandbox").await;
    assert_eq!(product.get("chainState").map(String::as_str), Some("pending"), "kept under the id the name led to");

    let mgn = json!({"operation": "TerminateTargetInstances",
                     "input": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa"], "accountID": "123456789012"}});
    invoke_as(&f.app, delivery("m-2", &mgn, 1), "req-2").await.unwrap();
    let server = item(&moto, "keys", "123456789012#us-east-1#TerminateTargetInstances#s-aaaaaaaaaaaaaaaaa").await;
    assert!(server.contains_key("claimUntil") && server.contains_key("chainId"), "{server:?}");

    // A chain decided by its own check; its first write, late, must not reopen it.
    let key = key_of(teardown::request::Operation::TerminateWorkspaces, "ws-late0001");
    let of = teardown::state::CheckOf {
        chain: "chain-9",
        attempt: 1,
        accepted_at: "t",
        message_id: "c-9",
        receive_count: 1,
    };
    let decided = teardown::state::CheckEnd::Decided { decision: "confirmed", error: None, of: None };
    state.check_end(&key, &of, &decided, 1_795_514_430).await.unwrap();
    let late = teardown::state::ChainStart {
        key: key.clone(),
        chain: "chain-9".into(),
        due_at: 1_795_514_430,
        accepted_at: "t".into(),
        source: "{}".into(),
        job_id: None,
        record_id: None,
        fresh: true,
    };
    assert_eq!(state.start_chain(&late, 1_795_514_431).await.unwrap(), teardown::state::Started::Lost);
    let after = item(&moto, "keys", &key.pk()).await;
    assert_eq!(after.get("decision").map(String::as_str), Some("confirmed"));

    // A claim on an item whose expiry has passed moves it on.
    let claimed = teardown::state::Key {
        target: "s-bbbbbbbbbbbbbbbbb".into(),
        operation: teardown::request::Operation::TerminateTargetInstances,
        ..key
    };
    let intent = |chain| teardown::state::Intent {
        chain,
        at: 1_000,
        accepted_at: "2026-11-24T10:00:00Z",
        source: "{}",
        token: chain,
    };
    state.claim(&claimed, "holder-1", 1_000, &intent("holder-1:0")).await.unwrap();
    state.claim(&claimed, "holder-2", 1_795_514_400, &intent("holder-2:0")).await.unwrap();
    let expires: i64 = item(&moto, "keys", &claimed.pk()).await["expiresAt"].parse().unwrap();
    assert!(expires > 1_795_514_400, "the claim's item lives past its claim");
}

/// A duplicate delivery takes over a chain whose check did go out, then cannot send its
/// own: it gives the target back, so the check on its way still decides it.
#[tokio::test]
pub(super) async fn a_chain_taken_over_by_a_delivery_that_cannot_send_its_check_is_given_back() {
    let world = world("back", &["ws-back0001"]).await;
    let (fleet, queue, f) = (&world.fleet, &world.queue, &world.f);
    let request = ws_request(&["ws-back0001".to_owned()]);

    at(0);
    invoke_as(&f.app, delivery("m-1", &request, 1), "req-1").await.unwrap();
    let first = queue.take();
    assert_eq!(first.len(), 1);
    queue.fail(true);
    let response = invoke_as(&f.app, delivery("m-1", &request, 2), "req-2").await.unwrap();
    assert_eq!(failures(&response), vec!["m-1"]);
    queue.fail(false);
    queue.take();
    fleet.set("ws-back0001", WorkspaceState::Terminated);

    at(30);
    invoke_as(&f.app, delivery("c-1", &first[0], 1), "req-3").await.unwrap();

    assert_eq!(
        f.decisions().get("ws-back0001"),
        Some(&vec!["confirmed".to_owned()]),
        "the first chain's check decides"
    );
}
