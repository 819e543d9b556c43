//! The state table against moto's DynamoDB (conditional writes): every accepted
//! termination followed up once and decided once across messages, whatever the
//! deliveries (docs/reference.md, "State across messages"). The services are doubles;
//! the table is real.

#[path = "../doubles/mod.rs"]
mod doubles;
#[path = "../support/mod.rs"]
mod support;

use std::cell::Cell;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use doubles::*;
use support::Moto;
use teardown::state::StateTable;
use time::OffsetDateTime;

// ── Time, per test thread ────────────────────────────────────────────────────

thread_local! {
    /// Seconds after 2026-11-24T10:00:00Z that the function's clock reads.
    static SECONDS: Cell<i64> = const { Cell::new(0) };
}

fn clock() -> OffsetDateTime {
    time::macros::datetime!(2026-11-24 10:00:00 UTC) + time::Duration::seconds(SECONDS.with(Cell::get))
}

fn at(seconds: i64) {
    SECONDS.with(|s| s.set(seconds));
}

// ── The table ────────────────────────────────────────────────────────────────

fn dynamodb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    support::dynamodb_at(endpoint)
}

/// A new table `name` in moto, as the template makes it (key `pk`, on demand),
/// reached one request at a time, as DynamoDB orders the writes of an item
/// (`support::one_at_a_time`).
async fn table(moto: &Moto, name: &str) -> StateTable {
    let client = dynamodb(&support::one_at_a_time::start(&moto.endpoint).await);
    client
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable in moto");
    StateTable::new(client, Some(name.to_owned()), 7200)
}

// ── A small world of WorkSpaces that change state as a service would ─────────

type States = Arc<Mutex<HashMap<String, WorkspaceState>>>;

/// WorkSpaces `ids`, AVAILABLE. Terminated, one goes TERMINATING; each check after
/// that reads it TERMINATING `slow` more times, then `end`.
struct Fleet {
    states: States,
    terminated: Log<Vec<String>>,
}

fn fleet(ids: &[&str]) -> Fleet {
    let states = ids.iter().map(|id| (id.to_string(), WorkspaceState::Available)).collect();
    Fleet { states: Arc::new(Mutex::new(states)), terminated: log() }
}

impl Fleet {
    fn describe(&self) -> Rule {
        let states = self.states.clone();
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            let states = states.lock().unwrap();
            let found = req
                .workspace_ids()
                .iter()
                .filter_map(|id| states.get(id).map(|s| workspace(id, s.clone())))
                .filter(|w| w.state() != Some(&WorkspaceState::Terminated))
                .collect();
            DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
        })
    }

    fn terminate(&self) -> Rule {
        let (states, calls) = (self.states.clone(), self.terminated.clone());
        mock!(aws_sdk_workspaces::Client::terminate_workspaces).then_compute_output(move |req| {
            let ids: Vec<String> =
                req.terminate_workspace_requests().iter().map(|r| r.workspace_id().to_owned()).collect();
            let mut states = states.lock().unwrap();
            for id in &ids {
                states.insert(id.clone(), WorkspaceState::Terminating);
            }
            calls.lock().unwrap().push(ids);
            TerminateWorkspacesOutput::builder().build()
        })
    }

    fn set(&self, id: &str, state: WorkspaceState) {
        self.states.lock().unwrap().insert(id.to_owned(), state);
    }

    /// `TerminateWorkspaces` whose first `calls` calls go through (their WorkSpaces move
    /// to `then`) and whose answers are lost (a 503): the function never hears of them.
    fn answer_lost(&self, then: WorkspaceState, calls: usize) -> Rule {
        let (states, made) = (self.states.clone(), Arc::new(std::sync::atomic::AtomicUsize::new(0)));
        mock!(aws_sdk_workspaces::Client::terminate_workspaces)
            .match_requests(move |req| {
                if made.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= calls {
                    return false;
                }
                for r in req.terminate_workspace_requests() {
                    states.lock().unwrap().insert(r.workspace_id().to_owned(), then.clone());
                }
                true
            })
            .then_http_response(|| {
                http(503, r#"{"__type":"ServiceUnavailableException","message":"the answer was lost"}"#)
            })
    }
}

/// The request queue: records every check and watch sent; while `failing` is set,
/// refuses checks, and while `failing_watches` is set, watches (`attempt` 0).
struct Queue {
    sent: Log<(Value, i32)>,
    failing: Arc<std::sync::atomic::AtomicBool>,
    failing_watches: Arc<std::sync::atomic::AtomicBool>,
}

fn queue() -> Queue {
    Queue {
        sent: log(),
        failing: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        failing_watches: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    }
}

/// A message body that is a watch.
fn is_watch(body: &Value) -> bool {
    body["confirm"]["attempt"] == 0
}

impl Queue {
    fn rules(&self) -> (Rule, Rule) {
        let (failing, failing_watches) = (self.failing.clone(), self.failing_watches.clone());
        let refuse = mock!(aws_sdk_sqs::Client::send_message)
            .match_requests(move |req| {
                let body = serde_json::from_str(req.message_body().unwrap_or_default()).unwrap_or(Value::Null);
                let failing = if is_watch(&body) { &failing_watches } else { &failing };
                failing.load(std::sync::atomic::Ordering::SeqCst)
            })
            .then_http_response(|| http(500, r#"{"__type":"InternalError","message":"down"}"#));
        (refuse, checks_sent(&self.sent))
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    fn fail_watches(&self, failing: bool) {
        self.failing_watches.store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// The checks sent so far (not the watches), taken off the queue.
    fn take(&self) -> Vec<Value> {
        self.take_all().into_iter().filter(|body| !is_watch(body)).collect()
    }

    /// Every check and watch sent so far, taken off the queue.
    fn take_all(&self) -> Vec<Value> {
        std::mem::take(&mut *self.sent.lock().unwrap()).into_iter().map(|(body, _)| body).collect()
    }
}

/// A test's world: moto with the table `name`, the fleet `ids`, the queue, the function.
struct World {
    _moto: Moto,
    fleet: Fleet,
    queue: Queue,
    f: Function,
}

async fn world(name: &str, ids: &[&str]) -> World {
    let moto = Moto::start();
    let state = table(&moto, name).await;
    let (fleet, queue) = (fleet(ids), queue());
    let f = function(&state, &fleet, &queue, &[], &[], &[]);
    World { _moto: moto, fleet, queue, f }
}

/// The function, with the table, the fleet, the queue, a dead-letter queue and an
/// audit bus whose records and events are kept.
struct Function {
    app: App,
    records: Log<(String, Value, String, String)>,
    events: Log<(String, String, Value, String)>,
}

fn function(
    state: &StateTable,
    fleet: &Fleet,
    queue: &Queue,
    extra_ws: &[&Rule],
    mgn: &[&Rule],
    sc: &[&Rule],
) -> Function {
    let (records, events) = (log(), log());
    let (describe, terminate) = (fleet.describe(), fleet.terminate());
    let (refuse, checks) = queue.rules();
    let send = sqs_send_ok(&records);
    let put = events_put(&events);
    let ws: Vec<&Rule> = extra_ws.iter().copied().chain([&describe, &terminate]).collect();
    let mut app = Doubles { ws: &ws, mgn, sc, sqs: &[&send] }
        .app(Settings { max_receives: Some(1000), ..settings() })
        .with_request_queue(request_queue(&[&refuse, &checks]))
        .with_audit(audit_bus(&[&put]))
        .with_state(state.clone());
    app.clock = clock;
    Function { app, records, events }
}

impl Function {
    /// The final decisions put on the bus, per target.
    fn decisions(&self) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (_, _, detail, _) in taken(&self.events) {
            let outcome = detail["outcome"].as_str().unwrap_or("").to_owned();
            if matches!(outcome.as_str(), "confirmed" | "failed" | "unconfirmed") {
                out.entry(detail["id"].as_str().unwrap_or("").to_owned()).or_default().push(outcome);
            }
        }
        out
    }
}

async fn invoke_as(app: &App, payload: Value, request_id: &str) -> Result<Value, lambda_runtime::Error> {
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    context.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:teardown".to_owned();
    handle(app, LambdaEvent::new(payload, context)).await
}

/// An SQS delivery of `body` as message `id`, the `count`th time.
fn delivery(id: &str, body: &Value, count: u32) -> Value {
    let mut event = sqs_event(&[(id, body.clone())]);
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!(count.to_string());
    event
}

// ── The four failures of at-least-once, each now impossible ──────────────────

/// Lost: accepted, then the check could not be sent. A direct invocation has no
/// receive count; Lambda's retry finds the WorkSpace on its way out and, its first
/// chain never sent, starts one.
#[tokio::test]
async fn a_termination_whose_check_was_not_sent_is_followed_up_by_the_retry_of_a_direct_invocation() {
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
async fn a_redelivery_never_starts_a_second_chain_for_a_target_a_live_chain_follows() {
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
async fn two_copies_of_one_child_racing_on_one_mgn_server_make_one_call() {
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
async fn a_held_claim_keeps_back_a_termination_but_not_a_notice_of_the_same_server() {
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
async fn a_check_delivered_twice_at_once_decides_once() {
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
async fn a_decision_published_by_another_message_names_the_record_its_maker_decided() {
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
async fn a_check_of_a_chain_taken_over_ends_without_effect() {
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
async fn when_the_table_is_unreachable_the_message_is_transient() {
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

// ── What the review of the first version found ────────────────────────────────

/// The item of `pk`, as attribute → text.
async fn item(moto: &Moto, table: &str, pk: &str) -> HashMap<String, String> {
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
async fn a_check_that_comes_back_after_its_write_went_in_is_redone_not_dropped() {
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
async fn a_decision_published_again_after_a_crash_is_the_same_decision() {
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
async fn a_decision_whose_copy_died_is_published_by_the_other_copy_of_the_same_delivery() {
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
async fn a_copy_that_cannot_ask_on_its_last_delivery_publishes_only_what_another_decided() {
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
async fn a_decision_whose_maker_never_published_it_is_published_by_another_message_of_its_chain() {
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
async fn items_are_keyed_by_what_a_target_is_and_writes_never_undo_a_decision() {
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
async fn a_chain_taken_over_by_a_delivery_that_cannot_send_its_check_is_given_back() {
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

// ── Any interleaving: exactly one decision per accepted target ───────────────

#[derive(Clone, Debug)]
enum Step {
    /// The request delivered (again, or a duplicate).
    Request,
    /// Every check waiting is delivered; `twice`: each one twice.
    Checks {
        twice: bool,
    },
    /// The sends to the request queue fail, until `Heal`.
    Break,
    Heal,
    /// Time passes.
    Wait(i64),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        3 => Just(Step::Request),
        4 => any::<bool>().prop_map(|twice| Step::Checks { twice }),
        1 => Just(Step::Break),
        2 => Just(Step::Heal),
        3 => (1i64..600).prop_map(Step::Wait),
    ]
}

/// The simulated event source: the request, and the checks waiting on the queue,
/// each an SQS message with its own id and receive count. A message a delivery hands
/// back (or whose invocation fails) comes back later, its receive count one higher.
struct Source<'a> {
    f: &'a Function,
    queue: &'a Queue,
    request: Value,
    receives: u32,
    request_back: bool,
    /// (message id, receives so far, body)
    waiting: Vec<(String, u32, Value)>,
    n: usize,
}

impl Source<'_> {
    fn enqueue_sent(&mut self) {
        for body in self.queue.take() {
            self.n += 1;
            self.waiting.push((format!("c-{}", self.n), 0, body));
        }
    }

    async fn deliver_request(&mut self) {
        self.receives += 1;
        self.n += 1;
        let answer =
            invoke_as(&self.f.app, delivery("m-1", &self.request, self.receives), &format!("req-{}", self.n)).await;
        self.request_back = answer.map_or(true, |r| !failures(&r).is_empty());
        self.enqueue_sent();
    }

    /// Every waiting check delivered; `copies` 2: SQS delivers each twice at once.
    async fn deliver_checks(&mut self, copies: u32) {
        for (id, receives, body) in std::mem::take(&mut self.waiting) {
            let mut back = false;
            for _ in 0..copies {
                self.n += 1;
                let answer =
                    invoke_as(&self.f.app, delivery(&id, &body, receives + 1), &format!("req-{}", self.n)).await;
                back |= answer.map_or(true, |r| !failures(&r).is_empty());
            }
            if back {
                self.waiting.push((id, receives + 1, body));
            }
        }
        self.enqueue_sent();
    }
}

/// Deliveries of one request and its checks in any order, duplicated, redelivered,
/// with sends lost: each WorkSpace the request terminated gets exactly one final
/// decision.
#[test]
fn any_interleaving_of_deliveries_decides_each_accepted_target_exactly_once() {
    use proptest::prelude::*;
    let moto = Moto::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cases = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(steps in proptest::collection::vec(step(), 1..14), slow in 0usize..4)| {
        let case = cases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        runtime.block_on(async {
            let state = table(&moto, &format!("prop-{case}")).await;
            let ids = [format!("ws-a{case:07}"), format!("ws-b{case:07}")];
            let fleet = fleet(&[ids[0].as_str(), ids[1].as_str()]);
            let queue = queue();
            let f = function(&state, &fleet, &queue, &[], &[], &[]);
            let mut source = Source { f: &f, queue: &queue, request: ws_request(&ids), receives: 0, request_back: false, waiting: Vec::new(), n: 0 };
            let mut now = 0i64;
            at(now);
            source.deliver_request().await;
            for (i, step) in steps.iter().enumerate() {
                // The WorkSpaces finish terminating after `slow` steps.
                if i == slow {
                    for id in &ids {
                        fleet.set(id, WorkspaceState::Terminated);
                    }
                }
                match step {
                    Step::Request => source.deliver_request().await,
                    Step::Checks { twice } => source.deliver_checks(if *twice { 2 } else { 1 }).await,
                    Step::Break => queue.fail(true),
                    Step::Heal => queue.fail(false),
                    Step::Wait(seconds) => {
                        now += seconds;
                        at(now);
                    }
                }
            }
            // Left alone, the system settles: the queue heals, the WorkSpaces are gone,
            // what was handed back comes back, every check comes back, until none is left.
            queue.fail(false);
            for id in &ids {
                fleet.set(id, WorkspaceState::Terminated);
            }
            for _ in 0..20 {
                if !source.request_back && source.waiting.is_empty() {
                    break;
                }
                now += 400;
                at(now);
                if source.request_back {
                    source.deliver_request().await;
                }
                source.deliver_checks(1).await;
            }
            prop_assert!(!source.request_back && source.waiting.is_empty(), "the system did not settle: {:?}", steps);
            let decisions = f.decisions();
            for id in &ids {
                let got = decisions.get(id).cloned().unwrap_or_default();
                prop_assert_eq!(got.len(), 1, "{} decided {:?} after {:?} (slow {})", id, got, steps, slow);
            }
            Ok(())
        })?;
    });
}

// ── Writes whose answers were lost, and later terminations ───────────────────

/// A table reached through a proxy that lets every `UpdateItem` in but loses the
/// answer of the first `lose` of them (the connection reset on the way back), and a
/// client that retries as the function's does.
async fn table_losing_answers(moto: &Moto, name: &str, lose: usize) -> StateTable {
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
async fn table_refusing(moto: &Moto, name: &str, needle: &'static str) -> StateTable {
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
fn table_via(proxy: &str, name: &str) -> StateTable {
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
async fn a_check_goes_out_only_once_its_chain_is_written() {
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
fn key_of(operation: teardown::request::Operation, target: &str) -> teardown::state::Key {
    teardown::state::Key {
        account: "123456789012".into(),
        region: "us-east-1".into(),
        operation,
        target: target.into(),
    }
}

fn chain(target: &str, chain: &str, record: Option<&str>, fresh: bool) -> teardown::state::ChainStart {
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
async fn a_write_whose_answer_was_lost_is_known_as_its_own_when_the_sdk_sends_it_again() {
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
async fn a_later_termination_found_underway_after_a_decided_one_gets_its_own_chain() {
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
async fn a_decision_a_check_made_without_knowing_the_record_is_not_taken_for_another_records() {
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
async fn a_record_published_before_the_invocation_died_is_not_published_again_by_the_next_delivery() {
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
async fn a_record_sent_again_because_its_mark_was_lost_is_the_same_record() {
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
async fn a_claim_another_invocation_holds_is_not_taken_while_its_chain_is_pending() {
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
async fn a_termination_whose_answer_never_came_is_followed_up_by_the_next_delivery_though_it_is_gone() {
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
async fn another_requests_call_waits_until_an_unanswered_call_is_resolved() {
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
async fn two_requests_of_one_batch_for_one_target_share_its_call_and_neither_waits() {
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
async fn a_watch_that_finds_no_sign_of_its_call_frees_the_target_for_other_requests() {
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
async fn a_target_is_not_terminated_again_until_its_last_termination_is_decided() {
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
async fn an_intent_whose_target_is_still_there_is_not_taken_for_an_accepted_termination() {
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
async fn without_a_request_queue_a_termination_leaves_no_intent_and_no_chain() {
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
async fn a_delivery_that_cannot_read_its_intents_comes_back() {
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
async fn the_same_record_answered_again_is_not_a_new_termination() {
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
async fn a_record_decided_by_one_chain_is_not_decided_again_by_another() {
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
async fn a_record_decided_two_terminations_ago_does_not_take_over_the_later_one() {
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

// ── Watches: what no delivery comes back for ─────────────────────────────────

/// The watches sent so far (and the checks, dropped).
fn watches_sent(queue: &Queue) -> Vec<Value> {
    queue.take_all().into_iter().filter(is_watch).collect()
}

/// Found by the runs with crashes: an invocation that died after its call was
/// accepted (here: its chain never written, its check never sent) on its message's
/// last delivery left the termination with nothing to follow it up, since no delivery
/// came back. The watch sent before the call comes back 15 minutes later, finds the
/// intent still there and the WorkSpace gone, and decides it, once.
#[tokio::test]
async fn a_termination_no_delivery_comes_back_for_is_followed_up_by_its_watch() {
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
async fn a_watch_of_a_termination_already_followed_up_ends_without_effect() {
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
async fn a_watch_decides_nothing_for_a_call_that_never_went_in() {
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
async fn no_call_is_made_when_its_watch_cannot_be_sent() {
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
async fn a_watch_that_died_after_deciding_publishes_its_decision_when_it_comes_back() {
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
async fn a_call_answered_with_a_decided_record_leaves_no_intent_for_its_watch() {
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
async fn a_chain_started_for_a_target_found_underway_is_watched_too() {
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
async fn a_decision_not_yet_published_holds_back_a_new_termination_until_it_is() {
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
async fn no_chain_is_written_until_its_watch_is_out() {
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
