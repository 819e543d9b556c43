//! Calls and wall time that grow with what is terminated, not with the fleet:
//! a WorkSpaces selection by tags over 1,000 and 10,000 WorkSpaces of which 1%
//! match, before (list every WorkSpace, read every one's tags) and after (ask the
//! tag index, read tags of the matches only); and a fan-out to 1,000 (account,
//! region) pairs. Every call is answered by an HTTP stand-in after 50 ms, as the
//! other benchmarks do. Run it with `scripts/bench-scale`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use teardown::deadletter::DeadLetterQueue;
use teardown::handler::{App, handle};
use teardown::request_queue::RequestQueue;
use teardown::services::{Services, Workspaces};
use teardown::settings::Settings;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const LATENCY: Duration = Duration::from_millis(50);

/// A fleet of `size` WorkSpaces; every 100th is tagged env=sandbox.
struct Fleet {
    size: usize,
    calls: Arc<Mutex<BTreeMap<String, usize>>>,
}

fn id(i: usize) -> String {
    format!("ws-{i:08}")
}

impl Respond for Fleet {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let target = request.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let operation = target.rsplit('.').next().unwrap_or("").to_owned();
        *self.calls.lock().unwrap().entry(operation.clone()).or_default() += 1;
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let ok = |v: Value| {
            ResponseTemplate::new(200).set_body_raw(v.to_string(), "application/x-amz-json-1.1").set_delay(LATENCY)
        };
        let workspace = |i: usize| json!({"WorkspaceId": id(i), "State": "AVAILABLE", "DirectoryId": "d-1234567890"});
        match operation.as_str() {
            "DescribeWorkspaces" => match body["WorkspaceIds"].as_array() {
                Some(ids) => {
                    let found: Vec<Value> = ids
                        .iter()
                        .filter_map(|v| v.as_str()?.trim_start_matches("ws-").parse().ok())
                        .map(workspace)
                        .collect();
                    ok(json!({"Workspaces": found}))
                }
                None => {
                    // The service pages its listing 25 at a time.
                    let from: usize = body["NextToken"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                    let page: Vec<Value> = (from..(from + 25).min(self.size)).map(workspace).collect();
                    let mut out = json!({"Workspaces": page});
                    if from + 25 < self.size {
                        out["NextToken"] = json!((from + 25).to_string());
                    }
                    ok(out)
                }
            },
            "DescribeTags" => {
                let i: usize =
                    body["ResourceId"].as_str().and_then(|s| s.trim_start_matches("ws-").parse().ok()).unwrap_or(1);
                let env = if i.is_multiple_of(100) { "sandbox" } else { "prod" };
                ok(json!({"TagList": [{"Key": "env", "Value": env}]}))
            }
            "GetResources" => {
                let matching: Vec<usize> = (0..self.size).step_by(100).collect();
                let from: usize = body["PaginationToken"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                let page: Vec<Value> = matching
                    .iter()
                    .skip(from)
                    .take(100)
                    .map(|i| json!({"ResourceARN": format!("arn:aws:workspaces:us-east-1:123456789012:workspace/{}", id(*i))}))
                    .collect();
                let next = if from + 100 < matching.len() { (from + 100).to_string() } else { String::new() };
                ok(json!({"ResourceTagMappingList": page, "PaginationToken": next}))
            }
            "TerminateWorkspaces" => ok(json!({"FailedRequests": []})),
            "SendMessageBatch" => {
                let ids: Vec<Value> = body["Entries"]
                    .as_array()
                    .map(|e| {
                        e.iter().map(|e| json!({"Id": e["Id"], "MessageId": "m", "MD5OfMessageBody": "x"})).collect()
                    })
                    .unwrap_or_default();
                ResponseTemplate::new(200)
                    .set_body_raw(json!({"Successful": ids, "Failed": []}).to_string(), "application/x-amz-json-1.0")
                    .set_delay(LATENCY)
            }
            other => ResponseTemplate::new(400)
                .set_body_string(format!("{{\"__type\":\"Unknown\",\"message\":\"{other}\"}}")),
        }
    }
}

async fn config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await
}

async fn selection(size: usize, tag_index: bool) -> (BTreeMap<String, usize>, Duration, Value) {
    let server = MockServer::start().await;
    let calls = Arc::new(Mutex::new(BTreeMap::new()));
    Mock::given(wiremock::matchers::any()).respond_with(Fleet { size, calls: calls.clone() }).mount(&server).await;
    let config = config(&server.uri()).await;
    let mut services = Services::from_conf(&config, 8);
    if !tag_index {
        services.workspaces = Workspaces::new(aws_sdk_workspaces::Client::new(&config));
    }
    let settings = Settings { max_targets: 10_000, ..Settings::default() };
    let app = App::new(services, DeadLetterQueue::new(aws_sdk_sqs::Client::new(&config), None), settings);
    let request = json!({"operation": "TerminateWorkspaces", "select": {"tags": {"env": "sandbox"}}});
    let started = Instant::now();
    let report = handle(&app, LambdaEvent::new(request, Context::default())).await.expect("the invocation");
    let wall = started.elapsed();
    let calls = calls.lock().unwrap().clone();
    (calls, wall, report["counts"]["targets"].clone())
}

async fn fan_out(pairs: usize) -> (usize, Duration) {
    let server = MockServer::start().await;
    let calls = Arc::new(Mutex::new(BTreeMap::new()));
    Mock::given(wiremock::matchers::any()).respond_with(Fleet { size: 0, calls: calls.clone() }).mount(&server).await;
    let config = config(&server.uri()).await;
    let queue =
        RequestQueue::new(aws_sdk_sqs::Client::new(&config), Some(format!("{}/123456789012/requests", server.uri())));
    let bodies: Vec<String> = (0..pairs)
        .map(|i| json!({"operation": "TerminateWorkspaces", "account": format!("{:012}", 100_000_000_000u64 + i as u64 / 4), "select": {"expired": true}}).to_string())
        .collect();
    let started = Instant::now();
    let made = queue.send_all(&bodies).await.expect("every child sent");
    (made, started.elapsed())
}

#[tokio::main]
async fn main() {
    println!("selection by tags, 1% matching, every call answered after {} ms", LATENCY.as_millis());
    println!("    fleet path         calls in all GetResources DescribeTags  Terminate      wall  targets");
    for size in [1_000, 10_000] {
        for index in [false, true] {
            let (calls, wall, targets) = selection(size, index).await;
            let total: usize = calls.values().sum();
            println!(
                "  {:>7} {:<11} {:>13} {:>12} {:>12} {:>10} {:>7.1} s  {}",
                size,
                if index { "tag index" } else { "list all" },
                total,
                calls.get("GetResources").copied().unwrap_or(0),
                calls.get("DescribeTags").copied().unwrap_or(0),
                calls.get("TerminateWorkspaces").copied().unwrap_or(0),
                wall.as_secs_f64(),
                targets
            );
        }
    }
    let (calls, wall) = fan_out(1_000).await;
    println!(
        "\nfan-out to 1,000 (account, region) pairs: {calls} SendMessageBatch calls (ideal 100), {:.2} s",
        wall.as_secs_f64()
    );
}
