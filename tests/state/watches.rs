//! Watches: what no delivery comes back for.

use super::*;

/// The watches sent so far (and the checks, dropped).
pub(super) fn watches_sent(queue: &Queue) -> Vec<Value> {
    queue.take_all().into_iter().filter(is_watch).collect()
}

/// Found by the runs with crashes: an invocation that died after its call was
/// accepted (here: its chain never written, its check never sent) on its message's
/// last delivery left the termination with nothing to follow it up, since no delivery
/// came back. The watch sent before the call comes back 15 minutes later, finds the
/// intent still there and the WorkSpace gone, and decides it, once.
#[tokio::test]
pub(super) async fn a_termination_no_delivery_comes_back_for_is_followed_up_by_its_watch() {
    let moto = Moto::start();
    let state = table_refusing(&moto, "watched", "acceptedAt = :at").await;
    let (fleet, queue) = (fleet(&["ws-watch0001"]), queue());
    let f = function(&state, &fleet, &queue, &[], &[], &[]);
    let request = ws_request(&["ws-watch0001".to_owned()]);

    at(0);
    queue.fail(true);
    let answer = invoke_as(&f.app, delivery("m-watched", &request, 1), "req-1").await.unwrap();
    assert_eq!(failures(&answer), vec!["m-watched"], "neither its chain nor its check went out");
    assert_eq!(taken(&fleet.terminated), vec![vec!["ws-watch0001".to_owned()]]);
    let watches = watches_sent(&queue);
    assert_eq!(watches.len(), 1, "one watch, before the call");
    assert_eq!(watches[0]["confirm"]["targets"], json!([{"id": "ws-watch0001"}]));
    queue.fail(false);

    // The message never comes back (its last delivery); the WorkSpace is gone.
    fleet.set("ws-watch0001", WorkspaceState::Terminated);
    at(900);
    invoke_as(&f.app, delivery("w-1", &watches[0], 1), "req-2").await.unwrap();
    assert_eq!(f.decisions().get("ws-watch0001"), Some(&vec!["confirmed".to_owned()]));
    let first: Vec<Value> =
        taken(&f.events).into_iter().map(|(_, _, d, _)| d).filter(|d| d["outcome"] == "confirmed").collect();
    // Another watch of it, later: the target is decided, nothing more.
    f.events.lock().unwrap().clear();
    at(1800);
    invoke_as(&f.app, delivery("w-copy", &watches[0], 1), "req-3").await.unwrap();
    assert!(f.decisions().is_empty(), "decided once");
    // The same watch delivered again after it was published (its deletion lost) says
    // nothing more: its decision is out.
    invoke_as(&f.app, delivery("w-1", &watches[0], 2), "req-4").await.unwrap();
    assert!(f.decisions().is_empty(), "published once");
    assert_eq!(first.len(), 1);
    assert_eq!(taken(&fleet.terminated).len(), 1, "a watch never calls");
}

/// The usual case: the call was followed up by its own check and decided. Its watch
/// comes back to nothing to do: no event, no record, no check.
#[tokio::test]
pub(super) async fn a_watch_of_a_termination_already_followed_up_ends_without_effect() {
    let world = world("watch-idle", &["ws-idle0001"]).await;
    let (fleet, queue, f) = (&world.fleet, &world.queue, &world.f);
    let request = ws_request(&["ws-idle0001".to_owned()]);
    at(0);
    invoke_as(&f.app, delivery("m-idle", &request, 1), "req-1").await.unwrap();
    let sent = queue.take_all();
    let (watches, checks): (Vec<Value>, Vec<Value>) = sent.into_iter().partition(is_watch);
    assert_eq!((watches.len(), checks.len()), (1, 1));
    fleet.set("ws-idle0001", WorkspaceState::Terminated);
    at(30);
    invoke_as(&f.app, delivery("c-1", &checks[0], 1), "req-2").await.unwrap();
    assert_eq!(f.decisions().get("ws-idle0001"), Some(&vec!["confirmed".to_owned()]));

    f.events.lock().unwrap().clear();
    at(900);
    invoke_as(&f.app, delivery("w-1", &watches[0], 1), "req-3").await.unwrap();
    assert!(taken(&f.events).is_empty() && taken(&f.records).is_empty(), "no effect");
    assert!(queue.take_all().is_empty(), "no further check");
}

/// A call that never went in (the invocation died before it, or it was refused and
/// its release lost) leaves an intent, but the WorkSpace is as it was: its watch
/// decides nothing (no termination was ever accepted) and follows nothing up.
#[tokio::test]
pub(super) async fn a_watch_decides_nothing_for_a_call_that_never_went_in() {
    let world = world("watch-unseen", &["ws-unseen001"]).await;
    let (queue, f) = (&world.queue, &world.f);
    let key = key_of(teardown::request::Operation::TerminateWorkspaces, "ws-unseen001");
    let intent = teardown::state::Intent {
        chain: "req-1:0",
        at: 1_795_514_400,
        accepted_at: "2026-11-24T10:00:00Z",
        source: r#"{"kind":"sqs","messageId":"m-unseen"}"#,
        token: "t-1",
    };
    let state = f.app.state.clone();
    assert_eq!(state.intend(&key, &intent, 1_795_514_400).await.unwrap(), teardown::state::Written::Won);
    let mut watch = check("TerminateWorkspaces", &[("ws-unseen001", None, None)], 0, "2026-11-24T10:00:00Z");
    watch["confirm"]["chain"] = json!("req-1:0");

    at(900);
    invoke_as(&f.app, delivery("w-unseen", &watch, 1), "req-2").await.unwrap();
    assert!(taken(&f.events).is_empty() && taken(&f.records).is_empty(), "nothing decided");
    assert!(queue.take_all().is_empty(), "nothing followed up");
    let item = state.get(&key).await.unwrap().expect("the item");
    assert_eq!(item.get("chainId"), None, "no chain");
}

/// No call is made that its watch could not follow: a watch that cannot be sent keeps
/// the call back, and the message comes back.
#[tokio::test]
pub(super) async fn no_call_is_made_when_its_watch_cannot_be_sent() {
    let world = world("watch-unsent", &["ws-unsent01"]).await;
    let (fleet, queue, f) = (&world.fleet, &world.queue, &world.f);
    let request = ws_request(&["ws-unsent01".to_owned()]);
    at(0);
    queue.fail_watches(true);
    let answer = invoke_as(&f.app, delivery("m-unsent", &request, 1), "req-1").await.unwrap();
    assert_eq!(failures(&answer), vec!["m-unsent"]);
    assert!(taken(&fleet.terminated).is_empty(), "no call");
    queue.fail_watches(false);
    // Its intent went with it: another request is not held back by a call never made.
    let other = invoke_as(&f.app, delivery("m-other", &request, 1), "req-2").await.unwrap();
    assert_eq!(failures(&other), Vec::<String>::new());
    assert_eq!(taken(&fleet.terminated), vec![vec!["ws-unsent01".to_owned()]], "another request calls at once");
}

/// Found by the runs with crashes: a watch that decided and died before publishing came
/// back, found the target decided and ended without effect: the decision was never
/// published. A watch come back after its own write went in redoes it: here the
/// decision it made, published as it was.
#[tokio::test]
pub(super) async fn a_watch_that_died_after_deciding_publishes_its_decision_when_it_comes_back() {
    let world = world("watch-redo", &["ws-redo0002"]).await;
    let (fleet, f) = (&world.fleet, &world.f);
    let key = key_of(teardown::request::Operation::TerminateWorkspaces, "ws-redo0002");
    let intent = teardown::state::Intent {
        chain: "req-1:0",
        at: 1_795_514_400,
        accepted_at: "2026-11-24T10:00:00Z",
        source: r#"{"kind":"sqs","messageId":"m-redo"}"#,
        token: "t-1",
    };
    let state = f.app.state.clone();
    state.intend(&key, &intent, 1_795_514_400).await.unwrap();
    // The watch's first delivery adopted the intent, decided, and died.
    let won = state.watch(&key, "req-1:0", "w-redo", true, 1_795_515_330, 1_795_515_300).await.unwrap();
    assert_eq!(won, teardown::state::Written::Won);
    let of = teardown::state::CheckOf {
        chain: "req-1:0",
        attempt: 0,
        accepted_at: "2026-11-24T10:00:00Z",
        message_id: "w-redo",
        receive_count: 1,
    };
    let confirmed = teardown::state::CheckEnd::Decided { decision: "confirmed", error: None, of: None };
    assert_eq!(state.check_end(&key, &of, &confirmed, 1_795_515_300).await.unwrap(), teardown::state::Ended::Won);
    fleet.set("ws-redo0002", WorkspaceState::Terminated);
    let mut watch = check("TerminateWorkspaces", &[("ws-redo0002", None, None)], 0, "2026-11-24T10:00:00Z");
    watch["confirm"]["chain"] = json!("req-1:0");

    at(1800);
    invoke_as(&f.app, delivery("w-redo", &watch, 2), "req-2").await.unwrap();
    let events: Vec<Value> = taken(&f.events).into_iter().map(|(_, _, detail, _)| detail).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["outcome"].as_str(), events[0]["at"].as_str()),
        (Some("confirmed"), Some("2026-11-24T10:15:00Z"))
    );
    // A copy of the watch (another message) does nothing.
    f.events.lock().unwrap().clear();
    invoke_as(&f.app, delivery("w-other", &watch, 1), "req-3").await.unwrap();
    assert!(taken(&f.events).is_empty());
}

/// Found by the runs with crashes: a redelivery whose reused token was answered with a
/// record decided already started no chain (right), but left its intent behind; its
/// watch then took the intent for a call whose answer never came, found that record
/// through the product's last record, and decided it a second time. An answered call's
/// intent goes when another chain follows it or it was decided; the watch then ends
/// without effect.
#[tokio::test]
pub(super) async fn a_call_answered_with_a_decided_record_leaves_no_intent_for_its_watch() {
    use teardown::state::{CheckEnd, CheckOf, Started, Written};
    let moto = Moto::start();
    let state = table(&moto, "answered").await;
    let first = chain("pp-answer001", "req-1:0", Some("rec-1"), true);
    assert!(matches!(state.start_chain(&first, 1_764_000_000).await.unwrap(), Started::Won { .. }));
    let check =
        CheckOf { chain: "req-1:0", attempt: 1, accepted_at: &first.accepted_at, message_id: "m-1", receive_count: 1 };
    let failed =
        CheckEnd::Decided { decision: "failed", error: Some("StackDeleteFailed: no".into()), of: Some("rec-1".into()) };
    state.check_end(&first.key, &check, &failed, 1_764_000_100).await.unwrap();
    state.announced(&first.key.pk(), "req-1:0", "m-1", 1_764_000_150).await.unwrap();

    // The redelivery notes its intent, calls, and is answered with rec-1 again.
    let intent = teardown::state::Intent {
        chain: "req-2:0",
        at: 1_764_000_200,
        accepted_at: "2026-11-24T10:03:20Z",
        source: r#"{"kind":"sqs","messageId":"m-2"}"#,
        token: "t-1",
    };
    assert_eq!(state.intend(&first.key, &intent, 1_764_000_200).await.unwrap(), Written::Won);
    let again = chain("pp-answer001", "req-2:0", Some("rec-1"), true);
    assert_eq!(state.start_chain(&again, 1_764_000_210).await.unwrap(), Started::Lost);
    assert_eq!(state.answered(&first.key, "req-2:0").await.unwrap(), Written::Won);

    let watched = state.watch(&first.key, "req-2:0", "w-2", true, 1_764_001_130, 1_764_001_100).await.unwrap();
    assert_eq!(watched, Written::Lost, "nothing left for the watch to follow");
    let item = state.get(&first.key).await.unwrap().expect("the item");
    assert_eq!((item.get("decision"), item.get("chainId")), (Some("failed"), Some("req-1:0")), "the decision stands");
}

/// Found by the runs with crashes: a delivery that found a target on its way out
/// started (or took over) its chain and died before the chain's check went out; no
/// delivery came back to take it over again. The delivery's watch covers what it
/// found underway too, and follows the chain up.
#[tokio::test]
pub(super) async fn a_chain_started_for_a_target_found_underway_is_watched_too() {
    let world = world("watch-underway", &["ws-under0001"]).await;
    let (fleet, queue, f) = (&world.fleet, &world.queue, &world.f);
    fleet.set("ws-under0001", WorkspaceState::Terminating);
    let request = ws_request(&["ws-under0001".to_owned()]);
    at(0);
    queue.fail(true);
    let answer = invoke_as(&f.app, delivery("m-under", &request, 1), "req-1").await.unwrap();
    assert_eq!(failures(&answer), vec!["m-under"], "its check did not go out");
    assert!(taken(&fleet.terminated).is_empty(), "nothing called: it was on its way out");
    let watches = watches_sent(queue);
    assert_eq!(watches.len(), 1, "watched all the same");
    queue.fail(false);

    fleet.set("ws-under0001", WorkspaceState::Terminated);
    f.events.lock().unwrap().clear();
    at(900);
    invoke_as(&f.app, delivery("w-under", &watches[0], 1), "req-2").await.unwrap();
    assert_eq!(f.decisions().get("ws-under0001"), Some(&vec!["confirmed".to_owned()]));
}

/// Found by the runs with crashes: a check wrote its decision and died before
/// publishing it; before it came back, another request terminated the target again,
/// and the new chain took the item over: the check, back, found another chain and
/// ended without effect, so its decision was never published. A decision holds new
/// terminations back until it is published (`announcedAt`), so the check finds it
/// there, publishes it, and the next delivery of the new request calls.
#[tokio::test]
pub(super) async fn a_decision_not_yet_published_holds_back_a_new_termination_until_it_is() {
    let world = world("announce", &["ws-announce1"]).await;
    let (fleet, queue, f) = (&world.fleet, &world.queue, &world.f);
    let request = ws_request(&["ws-announce1".to_owned()]);
    at(0);
    invoke_as(&f.app, delivery("m-1", &request, 1), "req-1").await.unwrap();
    let check = queue.take().pop().expect("its check");
    let chain = check["confirm"]["chain"].as_str().expect("a chain").to_owned();
    // The check's first delivery decides `failed` (the WorkSpace in ERROR) and dies.
    let key = key_of(teardown::request::Operation::TerminateWorkspaces, "ws-announce1");
    let of = teardown::state::CheckOf {
        chain: &chain,
        attempt: 1,
        accepted_at: check["confirm"]["acceptedAt"].as_str().unwrap_or_default(),
        message_id: "c-1",
        receive_count: 1,
    };
    let failed =
        teardown::state::CheckEnd::Decided { decision: "failed", error: Some("ERROR: stuck".into()), of: None };
    let state = f.app.state.clone();
    assert_eq!(state.check_end(&key, &of, &failed, 1_795_514_430).await.unwrap(), teardown::state::Ended::Won);
    fleet.set("ws-announce1", WorkspaceState::Available);
    f.events.lock().unwrap().clear();

    at(60);
    let answer = invoke_as(&f.app, delivery("m-2", &request, 1), "req-2").await.unwrap();
    assert_eq!(failures(&answer), vec!["m-2"], "held back: the last decision is not published yet");
    assert_eq!(taken(&fleet.terminated).len(), 1, "no second call yet");

    at(400);
    invoke_as(&f.app, delivery("c-1", &check, 2), "req-3").await.unwrap();
    assert_eq!(f.decisions().get("ws-announce1"), Some(&vec!["failed".to_owned()]), "published when it came back");

    at(460);
    let answer = invoke_as(&f.app, delivery("m-2", &request, 2), "req-4").await.unwrap();
    assert_eq!(failures(&answer), Vec::<String>::new());
    assert_eq!(taken(&fleet.terminated).len(), 2, "then called again");
}

/// Found by the runs under fire: a delivery that found a target on its way out wrote
/// its chain in the same round as its watch went out; killed as the watch was sent, it
/// left a chain that neither a check nor a watch came back for, and whose target no
/// later delivery could look up. A chain is now written (or taken over) only once its
/// request's watch is out: when the watch cannot be sent, no chain is written, no check
/// goes out, and the message comes back for the target.
#[tokio::test]
pub(super) async fn no_chain_is_written_until_its_watch_is_out() {
    let world = world("watch-unsent-chain", &["ws-chain0001"]).await;
    let (fleet, queue, f) = (&world.fleet, &world.queue, &world.f);
    let pk = key_of(teardown::request::Operation::TerminateWorkspaces, "ws-chain0001").pk();
    fleet.set("ws-chain0001", WorkspaceState::Terminating);
    let request = ws_request(&["ws-chain0001".to_owned()]);
    at(0);
    queue.fail_watches(true);
    let answer = invoke_as(&f.app, delivery("m-chain", &request, 1), "req-1").await.unwrap();
    assert_eq!(failures(&answer), vec!["m-chain"], "it comes back for the target");
    assert!(queue.take_all().is_empty(), "no watch, no check");
    assert_eq!(item(&world._moto, "watch-unsent-chain", &pk).await.get("chainId"), None, "no chain written");

    // The next delivery, its watch out, starts the chain and sends its check.
    queue.fail_watches(false);
    at(60);
    let answer = invoke_as(&f.app, delivery("m-chain", &request, 2), "req-2").await.unwrap();
    assert_eq!(failures(&answer), Vec::<String>::new());
    let sent = queue.take_all();
    let (watches, checks): (Vec<&Value>, Vec<&Value>) = sent.iter().partition(|b| is_watch(b));
    assert_eq!(watches.len(), 1, "its watch went out");
    assert_eq!(checks.len(), 1, "and its check");
    assert_eq!(checks[0]["confirm"]["targets"], json!([{"id": "ws-chain0001"}]));
    let chain = item(&world._moto, "watch-unsent-chain", &pk).await.get("chainId").cloned();
    assert_eq!(chain.as_deref(), watches[0]["confirm"]["chain"].as_str(), "the chain its watch follows");
}
