//! Everything the function talks to, behind one endpoint (`AWS_ENDPOINT_URL`): the
//! SQS, EventBridge, MGN and Service Catalog stand-ins in this process, and moto for
//! WorkSpaces, the Tagging API, STS and DynamoDB. In front of all of them: faults
//! at a set rate (throttling, 5xx, resets before and after the call took effect,
//! timeouts), and the crash points, where the calling function is killed with
//! SIGKILL. What each stand-in accepted is kept here, for the invariants.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{Value, json};

use super::catalog::Catalog;
use super::inventory::{HUB, Service};
use super::mgn::Mgn;
use super::queues::{self, Queues};
use crate::support::rng::Rng;
use crate::support::{RuntimeApi, lambda_command, loopback};

/// The principal moto's STS names for the function's keys (`GetCallerIdentity`):
/// SQS names it as `SenderId` on everything the function sends.
pub const FUNCTION_PRINCIPAL: &str = "AKIAIOSFODNN7EXAMPLE";

/// No termination finishes sooner, in real time: the SDK's own retries of a call
/// whose answer was lost (seconds) meet it still underway, as in AWS, where these
/// take minutes. Queue time is compressed; this floor is not.
pub const UNDERWAY_AT_LEAST: Duration = Duration::from_secs(4);
const TERMINATING_FOR: Duration = UNDERWAY_AT_LEAST;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    Throttle,
    ServerError,
    ResetBefore,
    ResetAfter,
    TimeoutAfter,
    EntryFailed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CrashPoint {
    AfterTerminate,
    BeforeCheck,
    BeforeChildren,
    WhilePublishingRecord,
}

/// A WorkSpaces termination moto accepted.
pub struct Accepted {
    pub service: Service,
    pub account: String,
    pub id: String,
}

#[derive(Default)]
pub struct Seen {
    pub workspaces: Vec<Accepted>,
    /// WorkSpaces that moto removed at once, and when: the stand-in shows them
    /// `TERMINATING` for a while, as AWS would, then gone (or, when doomed, in `ERROR`).
    pub terminated_at: HashMap<(String, String), std::time::Instant>,
    pub events: Vec<(String, Value)>,
    pub faults: BTreeMap<(String, Fault), u64>,
    pub crashes: BTreeMap<CrashPoint, u64>,
    pub calls: BTreeMap<String, u64>,
    /// Every state write, by item: for reading a violation.
    pub state_writes: HashMap<String, Vec<String>>,
}

/// One Lambda execution environment: its own Runtime API and the function process.
pub struct Env {
    pub index: usize,
    pub api: RuntimeApi,
    child: Mutex<Option<Child>>,
    crashed: AtomicBool,
    vars: Vec<(String, String)>,
    bin: std::path::PathBuf,
    not_sent: Arc<Mutex<Vec<Value>>>,
}

impl Env {
    pub async fn start(
        index: usize,
        bin: &std::path::Path,
        vars: Vec<(String, String)>,
        not_sent: Arc<Mutex<Vec<Value>>>,
    ) -> Arc<Env> {
        let api = RuntimeApi::start().await.expect("a loopback port");
        let env = Arc::new(Env {
            index,
            api,
            child: Mutex::new(None),
            crashed: AtomicBool::new(false),
            vars,
            bin: bin.to_owned(),
            not_sent,
        });
        env.spawn();
        env
    }

    fn key(&self) -> String {
        format!("FIREENV{:02}", self.index)
    }

    /// A cold start: a new process, as Lambda makes after a crash.
    pub fn spawn(&self) {
        let mut command = lambda_command(&self.bin, &self.api);
        command
            .env("AWS_ACCESS_KEY_ID", self.key())
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_LAMBDA_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TEARDOWN_E2E_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() });
        for (k, v) in &self.vars {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the teardown binary starts");
        // The audit events that could not be put are written to standard output:
        // decisions too, so they are kept.
        if let Some(stdout) = child.stdout.take() {
            let not_sent = self.not_sent.clone();
            // TEARDOWN_FIRE_LOGS=DIR: every line the function writes, kept per environment.
            let mut kept_lines = std::env::var_os("TEARDOWN_FIRE_LOGS").and_then(|dir| {
                let path = std::path::Path::new(&dir).join(format!("env-{}.log", self.index));
                std::fs::OpenOptions::new().create(true).append(true).open(path).ok()
            });
            std::thread::spawn(move || {
                use std::io::{BufRead, Write};
                for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(file) = kept_lines.as_mut() {
                        let _ = writeln!(file, "{line}");
                    }
                    if line.contains("auditEventNotSent")
                        && let Ok(v) = serde_json::from_str::<Value>(&line)
                        && let Ok(mut kept) = not_sent.lock()
                    {
                        kept.push(v);
                    }
                }
            });
        }
        match self.child.lock() {
            Ok(mut slot) => *slot = Some(child),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.crashed.store(false, Ordering::SeqCst);
    }

    /// SIGKILL, now.
    pub fn kill(&self) {
        if let Ok(mut slot) = self.child.lock()
            && let Some(child) = slot.as_mut()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.crashed.store(true, Ordering::SeqCst);
    }

    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        if let Ok(mut slot) = self.child.lock()
            && let Some(mut child) = slot.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct Rates {
    pub fault: f64,
    pub crash: f64,
    pub timeouts: bool,
    /// Faults after the call took effect (a reset or a timeout on the way back).
    pub after: bool,
}

pub struct World {
    pub queues: Mutex<Queues>,
    pub mgn: Mutex<Mgn>,
    pub catalog: Mutex<Catalog>,
    pub seen: Mutex<Seen>,
    /// Access key → (account, environment): the function's own keys and the ones its
    /// assumed roles got.
    keys: Mutex<HashMap<String, (String, Option<usize>)>>,
    pub envs: Mutex<Vec<Arc<Env>>>,
    rng: Mutex<Rng>,
    rates: Rates,
    next_message: Mutex<u64>,
    doomed_workspaces: HashSet<(String, String)>,
    /// TEARDOWN_FIRE_ITEMS=1: every state write is kept, to read a violation by.
    pub diagnose: bool,
}

type Reply = hyper::Response<Full<Bytes>>;

fn json_reply(status: u16, body: &Value) -> Reply {
    let mut answer = loopback::status(status, body.to_string());
    if let Ok(v) = hyper::header::HeaderValue::from_str("application/x-amz-json-1.1") {
        answer.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    if status >= 400
        && let Some(code) = body["__type"].as_str()
        && let Ok(v) = hyper::header::HeaderValue::from_str(code)
    {
        answer.headers_mut().insert("x-amzn-errortype", v);
    }
    answer
}

impl World {
    pub fn new(
        queues: Queues,
        mgn: Mgn,
        catalog: Catalog,
        rates: Rates,
        seed: u64,
        doomed_workspaces: HashSet<(String, String)>,
    ) -> World {
        World {
            queues: Mutex::new(queues),
            mgn: Mutex::new(mgn),
            catalog: Mutex::new(catalog),
            seen: Mutex::new(Seen::default()),
            keys: Mutex::new(HashMap::new()),
            envs: Mutex::new(Vec::new()),
            rng: Mutex::new(Rng(seed)),
            rates,
            next_message: Mutex::new(0),
            doomed_workspaces,
            diagnose: std::env::var_os("TEARDOWN_FIRE_ITEMS").is_some(),
        }
    }

    pub fn message_id(&self, prefix: &str) -> String {
        let mut n = self.next_message.lock().expect("message ids");
        *n += 1;
        format!("{prefix}-{:08}", *n)
    }

    fn chance(&self, p: f64) -> bool {
        self.rng.lock().map(|mut r| r.chance(p)).unwrap_or(false)
    }

    fn fault(&self, timeouts: bool) -> Option<Fault> {
        let mut rng = self.rng.lock().ok()?;
        if !rng.chance(self.rates.fault) {
            return None;
        }
        Some(match rng.below(100) {
            0..30 => Fault::Throttle,
            30..60 => Fault::ServerError,
            60..78 => Fault::ResetBefore,
            78..96 if self.rates.after => Fault::ResetAfter,
            _ if timeouts && self.rates.after => Fault::TimeoutAfter,
            _ if self.rates.after => Fault::ResetAfter,
            _ => Fault::ResetBefore,
        })
    }

    fn count_fault(&self, service: &str, fault: Fault) {
        if let Ok(mut seen) = self.seen.lock() {
            *seen.faults.entry((service.to_owned(), fault)).or_default() += 1;
        }
    }

    /// The account and environment of a call, by its access key.
    fn caller(&self, key: &str) -> (String, Option<usize>) {
        if let Some(env) = key.strip_prefix("FIREENV").and_then(|n| n.parse().ok()) {
            return (HUB.to_owned(), Some(env));
        }
        self.keys.lock().ok().and_then(|k| k.get(key).cloned()).unwrap_or((HUB.to_owned(), None))
    }

    /// Kills the environment that made this call, at `point`, with the crash rate.
    fn maybe_crash(&self, env: Option<usize>, point: CrashPoint) -> bool {
        let Some(env) = env else { return false };
        if !self.chance(self.rates.crash) {
            return false;
        }
        let target = self.envs.lock().ok().and_then(|e| e.get(env).cloned());
        let Some(target) = target else { return false };
        target.kill();
        if let Ok(mut seen) = self.seen.lock() {
            *seen.crashes.entry(point).or_default() += 1;
        }
        true
    }

    pub async fn serve(self: Arc<World>, moto: String) -> String {
        let client = loopback::upstream();
        // moto does not serialize racing conditional writes; DynamoDB does, per item.
        let dynamodb_turn = Arc::new(tokio::sync::Mutex::new(()));
        loopback::serve(move |req: hyper::Request<hyper::body::Incoming>| {
            let (world, client, moto, turn) = (self.clone(), client.clone(), moto.clone(), dynamodb_turn.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = loopback::body_of(body).await;
                // A call runs to its end, and is logged, even when its caller is killed
                // meanwhile (hyper would drop the answer's future with the connection):
                // the service took it, whoever is left to hear the answer.
                let routed = tokio::spawn(async move { world.route(&client, &moto, &turn, parts, body).await });
                routed.await.unwrap_or_else(|_| loopback::reset())
            }
        })
        .await
    }

    async fn route(
        &self,
        client: &loopback::Upstream,
        moto: &str,
        turn: &tokio::sync::Mutex<()>,
        parts: hyper::http::request::Parts,
        body: Bytes,
    ) -> Reply {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let auth = header("authorization");
        // Credential=KEY/DATE/REGION/SERVICE/aws4_request
        let scope: Vec<&str> =
            auth.split("Credential=").nth(1).and_then(|c| c.split(',').next()).unwrap_or_default().split('/').collect();
        let key = scope.first().copied().unwrap_or_default().to_owned();
        let service = scope.get(3).copied().unwrap_or_default().to_owned();
        let target = header("x-amz-target");
        let operation = target.rsplit('.').next().map(str::to_owned).unwrap_or_default();
        let operation =
            if operation.is_empty() { parts.uri.path().trim_start_matches('/').to_owned() } else { operation };
        let (account, env) = self.caller(&key);
        if let Ok(mut seen) = self.seen.lock() {
            *seen.calls.entry(service.clone()).or_default() += 1;
        }

        let fault = self.fault(self.rates.timeouts);
        if let Some(fault) = fault {
            self.count_fault(&service, fault);
            match fault {
                Fault::Throttle => return throttled(&service),
                Fault::ServerError => {
                    return json_reply(503, &json!({"__type": "ServiceUnavailable", "message": "injected"}));
                }
                Fault::ResetBefore => return loopback::reset(),
                _ => {}
            }
        }
        let json_body = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        let answer = match service.as_str() {
            "sqs" => self.sqs(&operation, &json_body(), env),
            "events" => self.events(&json_body()),
            "mgn" => {
                let path = parts.uri.path().to_owned();
                let (status, answer) = match self.mgn.lock() {
                    Ok(mut mgn) => mgn.answer(&account, &path, &json_body()),
                    Err(_) => (500, Value::Null),
                };
                let reply = json_reply(status, &answer);
                if path == "/TerminateTargetInstances" && status == 202 {
                    self.maybe_crash(env, CrashPoint::AfterTerminate);
                }
                reply
            }
            "servicecatalog" => {
                let (status, answer) = match self.catalog.lock() {
                    Ok(mut catalog) => catalog.answer(&account, &operation, &json_body()),
                    Err(_) => (500, Value::Null),
                };
                if operation == "TerminateProvisionedProduct" && status == 200 {
                    self.maybe_crash(env, CrashPoint::AfterTerminate);
                }
                json_reply(status, &answer)
            }
            "dynamodb" => {
                let request = if self.diagnose {
                    serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)
                } else {
                    Value::Null
                };
                let _turn = turn.lock().await;
                let answer = loopback::forward(client, moto, parts, body).await;
                if self.diagnose
                    && let Some(pk) = request["Key"]["pk"]["S"].as_str()
                    && let Ok(mut seen) = self.seen.lock()
                {
                    let line = format!(
                        "{:?} env{:?} {} {} IF {} -> {}",
                        std::time::Instant::now(),
                        env,
                        operation,
                        request["UpdateExpression"].as_str().unwrap_or("").chars().take(60).collect::<String>(),
                        request["ConditionExpression"].as_str().unwrap_or("").chars().take(50).collect::<String>(),
                        answer.status()
                    );
                    seen.state_writes.entry(pk.to_owned()).or_default().push(line);
                }
                answer
            }
            "sts" => {
                let request = String::from_utf8_lossy(&body).into_owned();
                let answer = loopback::forward(client, moto, parts, body).await;
                self.note_assumed_role(&request, &answer, env);
                answer
            }
            "workspaces" => self.workspaces(client, moto, &operation, &account, env, parts, body).await,
            _ => loopback::forward(client, moto, parts, body).await,
        };
        match fault {
            Some(Fault::ResetAfter) => loopback::reset(),
            Some(Fault::TimeoutAfter) => {
                // Past the function's attempt timeout (10 s): the call took effect, its answer never came.
                tokio::time::sleep(Duration::from_millis(10_500)).await;
                loopback::reset()
            }
            _ => answer,
        }
    }

    /// moto's STS answers in XML; the key it gave acts in the role's account.
    fn note_assumed_role(&self, request: &str, answer: &Reply, env: Option<usize>) {
        if !request.contains("Action=AssumeRole") {
            return;
        }
        let decoded = request.replace("%3A", ":").replace("%2F", "/");
        let account = decoded.split("arn:aws:iam::").nth(1).and_then(|r| r.get(..12)).unwrap_or(HUB).to_owned();
        let body = String::from_utf8_lossy(&body_bytes(answer)).into_owned();
        if let Some(key) = body.split("<AccessKeyId>").nth(1).and_then(|r| r.split("</AccessKeyId>").next())
            && let Ok(mut keys) = self.keys.lock()
        {
            keys.insert(key.to_owned(), (account, env));
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn workspaces(
        &self,
        client: &loopback::Upstream,
        moto: &str,
        operation: &str,
        account: &str,
        env: Option<usize>,
        parts: hyper::http::request::Parts,
        body: Bytes,
    ) -> Reply {
        let request = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        let answer = loopback::forward(client, moto, parts, body).await;
        match operation {
            "TerminateWorkspaces" if answer.status() == 200 => {
                let response = serde_json::from_slice::<Value>(&body_bytes(&answer)).unwrap_or(Value::Null);
                let failed: HashSet<&str> = response["FailedRequests"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|f| f["WorkspaceId"].as_str()).collect())
                    .unwrap_or_default();
                let named: Vec<String> = request["TerminateWorkspaceRequests"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|r| r["WorkspaceId"].as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                if let Ok(mut seen) = self.seen.lock() {
                    for id in named.into_iter().filter(|id| !failed.contains(id.as_str())) {
                        seen.terminated_at
                            .entry((account.to_owned(), id.clone()))
                            .or_insert_with(std::time::Instant::now);
                        seen.workspaces.push(Accepted {
                            service: Service::WorkSpaces,
                            account: account.to_owned(),
                            id,
                        });
                    }
                }
                self.maybe_crash(env, CrashPoint::AfterTerminate);
                answer
            }
            "DescribeWorkspaces" if answer.status() == 200 => {
                // moto removes a WorkSpace at once; AWS shows it TERMINATING first, and a
                // doomed one in ERROR after.
                let asked: Vec<&str> = request["WorkspaceIds"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let shown: Vec<(String, &str)> = match self.seen.lock() {
                    Ok(seen) => asked
                        .iter()
                        .filter_map(|id| {
                            let key = (account.to_owned(), (*id).to_owned());
                            let at = seen.terminated_at.get(&key)?;
                            if at.elapsed() < TERMINATING_FOR {
                                Some(((*id).to_owned(), "TERMINATING"))
                            } else if self.doomed_workspaces.contains(&key) {
                                Some(((*id).to_owned(), "ERROR"))
                            } else {
                                None
                            }
                        })
                        .collect(),
                    Err(_) => Vec::new(),
                };
                if shown.is_empty() {
                    return answer;
                }
                let mut response = serde_json::from_slice::<Value>(&body_bytes(&answer)).unwrap_or(json!({}));
                if let Some(list) = response["Workspaces"].as_array_mut() {
                    for (id, state) in shown {
                        list.push(json!({"WorkspaceId": id, "State": state, "UserName": "fire", "DirectoryId": "d-fire", "BundleId": "wsb-fire"}));
                    }
                }
                json_reply(200, &response)
            }
            _ => answer,
        }
    }

    fn sqs(&self, operation: &str, body: &Value, env: Option<usize>) -> Reply {
        let sender = if env.is_some() { FUNCTION_PRINCIPAL } else { "AIDAUNKNOWNSENDER000" };
        let url = body["QueueUrl"].as_str().unwrap_or_default();
        let Some(queue) = Queues::queue_of(url) else {
            return json_reply(400, &json!({"__type": "AWS.SimpleQueueService.NonExistentQueue", "message": url}));
        };
        let entries: Vec<Value> = match operation {
            "SendMessage" => vec![body.clone()],
            "SendMessageBatch" => body["Entries"].as_array().cloned().unwrap_or_default(),
            _ => return json_reply(400, &json!({"__type": "InvalidAction", "message": operation})),
        };
        // The crash points on the way to the queue: before a check, before the
        // children, while a record is on its way (none of it arrives).
        let point = if queue == queues::DLQ {
            Some(CrashPoint::WhilePublishingRecord)
        } else if entries.iter().any(|e| e["MessageBody"].as_str().is_some_and(|b| b.starts_with("{\"confirm\""))) {
            Some(CrashPoint::BeforeCheck)
        } else if entries.iter().any(|e| e["MessageBody"].as_str().is_some_and(|b| b.contains("\"origin\""))) {
            Some(CrashPoint::BeforeChildren)
        } else {
            None
        };
        if let Some(point) = point
            && self.maybe_crash(env, point)
        {
            return loopback::reset();
        }
        let batch = operation == "SendMessageBatch";
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        let Ok(mut queues) = self.queues.lock() else { return json_reply(500, &Value::Null) };
        for entry in &entries {
            // SendMessageBatch may fail an entry alone.
            if batch && self.chance(self.rates.fault / 2.0) {
                drop(
                    self.seen.lock().map(|mut s| *s.faults.entry(("sqs".into(), Fault::EntryFailed)).or_default() += 1),
                );
                failed.push(
                    json!({"Id": entry["Id"], "SenderFault": false, "Code": "InternalError", "Message": "injected"}),
                );
                continue;
            }
            let id = self.message_id("fn");
            let kind = match (queue, entry["MessageBody"].as_str()) {
                (queues::DLQ, _) => "records",
                (_, Some(b)) if b.starts_with("{\"confirm\"") => "checks",
                _ => "children",
            };
            *queues.stats.sent_by_function.entry(kind).or_default() += 1;
            queues.store(
                queue,
                id.clone(),
                entry["MessageBody"].as_str().unwrap_or_default().to_owned(),
                sender,
                entry["DelaySeconds"].as_u64().unwrap_or(0),
                entry["MessageGroupId"].as_str().map(str::to_owned),
                lambda_attributes(&entry["MessageAttributes"]),
            );
            ok.push(json!({"Id": entry["Id"], "MessageId": id}));
        }
        if batch {
            json_reply(200, &json!({"Successful": ok, "Failed": failed}))
        } else {
            let mut one = ok.pop().unwrap_or(json!({}));
            one.as_object_mut().map(|o| o.remove("Id"));
            json_reply(200, &one)
        }
    }

    fn events(&self, body: &Value) -> Reply {
        let mut results = Vec::new();
        let mut failed = 0;
        for entry in body["Entries"].as_array().cloned().unwrap_or_default() {
            if self.chance(self.rates.fault / 2.0) {
                failed += 1;
                self.count_fault("events", Fault::EntryFailed);
                results.push(json!({"ErrorCode": "InternalFailure", "ErrorMessage": "injected"}));
                continue;
            }
            let detail = entry["Detail"].as_str().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
            let detail_type = entry["DetailType"].as_str().unwrap_or_default().to_owned();
            if let Ok(mut seen) = self.seen.lock() {
                seen.events.push((detail_type, detail));
            }
            results.push(json!({"EventId": self.message_id("event")}));
        }
        json_reply(200, &json!({"FailedEntryCount": failed, "Entries": results}))
    }
}

/// `MessageAttributes` of a send, in the shape Lambda's SQS event gives them.
fn lambda_attributes(attributes: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(map) = attributes.as_object() {
        for (name, v) in map {
            out.insert(
                name.clone(),
                json!({"stringValue": v["StringValue"], "dataType": v["DataType"], "stringListValues": [], "binaryListValues": []}),
            );
        }
    }
    Value::Object(out)
}

fn throttled(service: &str) -> Reply {
    match service {
        "sts" => {
            let xml = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fire</RequestId></ErrorResponse>";
            loopback::status(400, xml)
        }
        "mgn" => json_reply(429, &json!({"__type": "ThrottlingException", "message": "injected"})),
        _ => json_reply(400, &json!({"__type": "ThrottlingException", "message": "injected"})),
    }
}

fn body_bytes(answer: &Reply) -> Bytes {
    use http_body_util::BodyExt;
    // A Full body is ready at once; reading it does not consume the answer.
    let body = answer.body().clone();
    futures_util::FutureExt::now_or_never(body.collect()).and_then(Result::ok).map(|c| c.to_bytes()).unwrap_or_default()
}

impl World {
    pub fn stop(&self) {
        if let Ok(envs) = self.envs.lock() {
            for env in envs.iter() {
                env.stop();
            }
        }
    }
}
