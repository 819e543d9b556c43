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

// ── The tests, by what they are about ───────────────────────────────────────

mod at_least_once;
mod interleaving;
mod lost_writes;
mod review;
mod watches;

#[allow(unused_imports)]
use {at_least_once::*, interleaving::*, lost_writes::*, review::*, watches::*};
