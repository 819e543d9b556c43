//! Throttled is not frozen (docs/evidence.md): the release binary, cold, under a
//! WorkSpaces that throttles as AWS does, by a rate per operation: a token bucket
//! per operation (10 calls a second, bursts of 20), answering `ThrottlingException`
//! past it. Each retry policy runs the same two loads side by side:
//!
//! - a fleet-size selection: 1,000 WorkSpaces, 200 of them tagged env=sandbox,
//!   selected by that tag (a dry run: the tag index, then DescribeWorkspaces and
//!   one DescribeTags per match);
//! - a batch of 100 messages, each naming one of the 200 (a dry run).
//!
//! Printed per policy and load: wall time, calls made and refused, targets judged
//! (and left transient), and the function's CPU time against the wall time.
//! Run it with `scripts/bench-throttle`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Function, Moto, RuntimeApi, loopback};

const RATE: f64 = 10.0;
const BURST: f64 = 20.0;

#[derive(Default)]
struct Limits {
    /// Operation → (tokens, last refill).
    buckets: HashMap<String, (f64, Instant)>,
    made: u64,
    refused: u64,
}

#[tokio::main]
async fn main() {
    let bin = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/release/teardown".into()));
    let moto = Moto::start();
    eprintln!("creating 1,000 WorkSpaces in moto …");
    let (_, sandbox) = moto.tagged_workspaces(200, "sbx", &[("env", "sandbox")]);
    let _ = moto.tagged_workspaces(800, "other", &[("env", "prod")]);
    let limits = Arc::new(Mutex::new(Limits::default()));
    let proxy = limited(moto.endpoint.clone(), limits.clone()).await;

    let selection = json!({"operation": "TerminateWorkspaces", "dryRun": true, "select": {"tags": {"env": "sandbox"}}});
    let records: Vec<Value> = sandbox[..100]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let body = json!({"operation": "TerminateWorkspaces", "dryRun": true,
                "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": id}]}});
            json!({"messageId": format!("m-{i:03}"), "receiptHandle": "h", "body": body.to_string(),
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:teardown-requests", "awsRegion": "us-east-1"})
        })
        .collect();
    let batch = json!({"Records": records});

    println!("rate limit: {RATE} calls a second per operation, bursts of {BURST:.0}; 1,000 WorkSpaces, 200 match");
    println!(
        "{:<22} {:<18} {:>8} {:>6} {:>8} {:>9} {:>10} {:>9}",
        "policy", "load", "wall s", "made", "refused", "judged", "transient", "busy %"
    );
    for (policy, env) in [("standard", Some("standard")), ("adaptive", Some("adaptive")), ("paced (default)", None)] {
        for (load, payload) in [("selection of 200", &selection), ("batch of 100", &batch)] {
            // A fresh container each time, and a rested service.
            *limits.lock().unwrap() = Limits::default();
            let api = RuntimeApi::start().await.expect("a loopback port");
            let mut vars = vec![("AWS_ENDPOINT_URL", proxy.as_str()), ("MAX_TARGETS", "1000")];
            if let Some(mode) = env {
                vars.push(("AWS_RETRY_MODE", mode));
            }
            let function = Function::start(&bin, &api, &vars);
            let cpu_before = cpu_seconds(function.pid());
            let started = Instant::now();
            let answer = api.invoke(payload.clone(), Duration::from_secs(300)).await.unwrap_or(Value::Null);
            let wall = started.elapsed().as_secs_f64();
            let cpu = cpu_seconds(function.pid()) - cpu_before;
            let (judged, transient) = outcomes(&answer);
            let limits = limits.lock().unwrap();
            println!(
                "{:<22} {:<18} {:>8.1} {:>6} {:>8} {:>9} {:>10} {:>8.1}%",
                policy,
                load,
                wall,
                limits.made,
                limits.refused,
                judged,
                transient,
                100.0 * cpu / wall
            );
        }
    }
}

/// Targets judged, and of them how many ended transient (refused too often).
fn outcomes(answer: &Value) -> (usize, usize) {
    let targets: Vec<&Value> = match answer["requests"].as_array() {
        Some(requests) => requests.iter().flat_map(|r| r["targets"].as_array().into_iter().flatten()).collect(),
        None => Vec::new(),
    };
    let transient = targets.iter().filter(|t| t["outcome"] == "transient").count();
    // A batch answers only its failures: count the messages it returned.
    let returned = answer["batchItemFailures"].as_array().map_or(0, Vec::len);
    if answer.get("batchItemFailures").is_some() { (100, returned) } else { (targets.len(), transient) }
}

/// User and system CPU seconds the process has used (Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Forwards to `to` what each operation's bucket allows; answers the rest
/// `ThrottlingException`.
async fn limited(to: String, limits: Arc<Mutex<Limits>>) -> String {
    let client = loopback::upstream();
    loopback::serve(move |req: hyper::Request<hyper::body::Incoming>| {
        let (client, to, limits) = (client.clone(), to.clone(), limits.clone());
        async move {
            let operation = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let allowed = {
                let mut l = limits.lock().unwrap();
                let now = Instant::now();
                let (tokens, at) = l.buckets.entry(operation).or_insert((BURST, now));
                *tokens = (*tokens + (now - *at).as_secs_f64() * RATE).min(BURST);
                *at = now;
                let ok = *tokens >= 1.0;
                if ok {
                    *tokens -= 1.0;
                    l.made += 1;
                } else {
                    l.refused += 1;
                }
                ok
            };
            if !allowed {
                return loopback::status(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#);
            }
            let (parts, body) = req.into_parts();
            let body = loopback::body_of(body).await;
            loopback::forward(&client, &to, parts, body).await
        }
    })
    .await
}
