//! The 10 000-message run: the release binary under the local Runtime API, moto
//! for SQS and WorkSpaces behind a proxy that injects faults at a set rate, and an
//! in-process stand-in for an SQS event source (batches of 10, redelivery of batch
//! item failures, redrive after 5 receives). It drives every message to a final
//! state, prints the ledger, and fails if any message is unaccounted for or
//! dead-lettered twice. Run it with `scripts/ledger [messages] [fault-rate]`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::rng::Rng;
use support::{Function, Moto, RuntimeApi, loopback};

const MAX_RECEIVES: u32 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Valid,
    Invalid,
}

struct Message {
    id: String,
    body: String,
    kind: Kind,
    receives: u32,
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = PathBuf::from(args.next().unwrap_or_else(|| "target/release/teardown".into()));
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let fault_rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.05);

    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let pool_size = (total / 5).max(10);
    eprintln!("creating {pool_size} WorkSpaces in moto …");
    let pool = moto.workspaces(pool_size);
    let injected = Arc::new(AtomicU64::new(0));
    let proxy = proxy(moto.endpoint.clone(), fault_rate, injected.clone()).await;

    let api = RuntimeApi::start().await.expect("a loopback port");
    // AWS_RETRY_MODE, when set here, is the function's: the policies compared side by side.
    let mode = std::env::var("AWS_RETRY_MODE").ok();
    let mut vars = vec![
        ("AWS_ENDPOINT_URL", proxy.as_str()),
        ("AWS_MAX_ATTEMPTS", "1"),
        ("DLQ_URL", dlq.as_str()),
        ("MAX_TARGETS", "100"),
    ];
    if let Some(mode) = &mode {
        vars.push(("AWS_RETRY_MODE", mode.as_str()));
    }
    let _function = Function::start(&bin, &api, &vars);

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut queue: VecDeque<Message> = (0..total)
        .map(|i| {
            let (body, kind) = if rng.chance(0.1) {
                let body = if rng.chance(0.5) {
                    "{\"operation\": \"TerminateWorkspaces\", ".to_owned()
                } else {
                    json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceID": pool[0]}]}}).to_string()
                };
                (body, Kind::Invalid)
            } else {
                let ids: Vec<Value> = (0..1 + rng.below(3))
                    .map(|_| json!({"WorkspaceId": pool[rng.below(pool.len() as u64) as usize]}))
                    .collect();
                (json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": ids}}).to_string(), Kind::Valid)
            };
            Message { id: format!("msg-{i:05}"), body, kind, receives: 0 }
        })
        .collect();
    let kinds: HashMap<String, Kind> = queue.iter().map(|m| (m.id.clone(), m.kind)).collect();

    let started = Instant::now();
    let (mut settled, mut redriven, mut redeliveries, mut invocations) = (Vec::new(), Vec::new(), 0u64, 0u64);
    while !queue.is_empty() {
        let batch: Vec<Message> = (0..10).filter_map(|_| queue.pop_front()).collect();
        let records: Vec<Value> = batch
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.id, "receiptHandle": "h", "body": m.body,
                    "attributes": {"ApproximateReceiveCount": (m.receives + 1).to_string()},
                    "messageAttributes": {}, "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:teardown-requests", "awsRegion": "us-east-1"
                })
            })
            .collect();
        invocations += 1;
        let answer = api.invoke(json!({"Records": records}), Duration::from_secs(60)).await;
        // A failed invocation redelivers the whole batch, as SQS would.
        let failed: Vec<String> = match &answer {
            Ok(response) => response["batchItemFailures"]
                .as_array()
                .map(|f| f.iter().filter_map(|x| x["itemIdentifier"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            Err(_) => batch.iter().map(|m| m.id.clone()).collect(),
        };
        for mut m in batch {
            m.receives += 1;
            if !failed.contains(&m.id) {
                settled.push(m.id);
            } else if m.receives >= MAX_RECEIVES {
                redriven.push(m.id);
            } else {
                redeliveries += 1;
                queue.push_back(m);
            }
        }
    }
    let elapsed = started.elapsed();

    let records = moto.drain(&dlq).await;
    let mut per_message: BTreeMap<String, usize> = BTreeMap::new();
    for (body, _, _) in &records {
        *per_message.entry(body["source"]["messageId"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
    }
    let duplicated: Vec<&String> = per_message.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    let invalid_settled = settled.iter().filter(|id| kinds.get(*id) == Some(&Kind::Invalid)).count();
    let invalid_recorded = per_message.keys().filter(|id| kinds.get(*id) == Some(&Kind::Invalid)).count();
    let valid_recorded = per_message.keys().filter(|id| kinds.get(*id) == Some(&Kind::Valid)).count();
    let gone = pool.len() - {
        let client = moto.workspaces_client();
        let mut live = 0;
        for chunk in pool.chunks(25) {
            if let Ok(out) = client.describe_workspaces().set_workspace_ids(Some(chunk.to_vec())).send().await {
                live += out.workspaces().len();
            }
        }
        live
    };

    println!(
        "ledger: {total} messages, fault rate {fault_rate} on every WorkSpaces and SQS call, retries {}",
        mode.as_deref().unwrap_or("paced (default)")
    );
    println!("  invocations                      {invocations}");
    println!("  redeliveries                     {redeliveries}");
    println!("  settled                          {}", settled.len());
    println!("    valid, done                    {}", settled.len() - invalid_settled);
    println!("    invalid, dead-lettered         {invalid_recorded}");
    println!("  redriven after {MAX_RECEIVES} receives        {}", redriven.len());
    println!("  dead-letter records              {} ({} duplicated)", records.len(), duplicated.len());
    println!("  valid messages dead-lettered     {valid_recorded}");
    println!("  faults injected                  {}", injected.load(Ordering::SeqCst));
    println!("  WorkSpaces terminated            {gone} of {}", pool.len());
    println!("  wall time                        {:.1} s", elapsed.as_secs_f64());

    let accounted = settled.len() + redriven.len();
    let mut problems = Vec::new();
    if accounted != total {
        problems.push(format!("{accounted} of {total} messages reached a final state"));
    }
    if !duplicated.is_empty() {
        problems.push(format!("{} messages dead-lettered more than once", duplicated.len()));
    }
    if invalid_settled != invalid_recorded {
        problems.push(format!("{invalid_settled} invalid messages settled but {invalid_recorded} have a record"));
    }
    if valid_recorded != 0 {
        problems.push(format!("{valid_recorded} valid messages were dead-lettered"));
    }
    if problems.is_empty() {
        println!("every message accounted for, none dead-lettered twice");
    } else {
        for p in &problems {
            println!("FAIL: {p}");
        }
        std::process::exit(1);
    }
}

/// Forwards to `to`, answering a `rate` share of calls with a throttling error or
/// a 503 instead.
async fn proxy(to: String, rate: f64, injected: Arc<AtomicU64>) -> String {
    let client = loopback::upstream();
    let rng = Arc::new(std::sync::Mutex::new(Rng(0xfa17_0000_0000_0001)));
    loopback::serve(move |req: hyper::Request<hyper::body::Incoming>| {
        let (client, to, rng, injected) = (client.clone(), to.clone(), rng.clone(), injected.clone());
        async move {
            let fault = rng.lock().map(|mut r| if r.chance(rate) { Some(r.below(2)) } else { None }).unwrap_or(None);
            if let Some(kind) = fault {
                injected.fetch_add(1, Ordering::SeqCst);
                return match kind {
                    0 => loopback::status(400, r#"{"__type":"ThrottlingException","message":"injected"}"#),
                    _ => loopback::status(503, r#"{"message":"injected"}"#),
                };
            }
            let (parts, body) = req.into_parts();
            let body = loopback::body_of(body).await;
            loopback::forward(&client, &to, parts, body).await
        }
    })
    .await
}
