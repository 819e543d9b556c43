//! docs/reference.md, "Follow-up, audit events and metrics" and "Follow-up, audit events and metrics" end to end: the built binary against moto (SQS, WorkSpaces,
//! EventBridge delivering to a queue). A termination is followed up through the
//! request queue until confirmed, every decision is an audit event on the bus, and
//! the EMF lines the binary writes count exactly the outcomes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Function, Moto, RuntimeApi, sqs_event, sqs_event_from};

const TIMEOUT: Duration = Duration::from_secs(60);

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_teardown"))
}

fn ws_request(ids: &[String]) -> Value {
    json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": ids.iter().map(|i| json!({"WorkspaceId": i})).collect::<Vec<_>>()}})
}

/// The next message of `queue`, waiting out its delay (moto honours DelaySeconds).
async fn next_message(moto: &Moto, queue: &str, within: Duration) -> Option<Value> {
    let sqs = moto.sqs();
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        let got = sqs.receive_message().queue_url(queue).wait_time_seconds(5).send().await.expect("ReceiveMessage");
        if let Some(m) = got.messages().first() {
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message().queue_url(queue).receipt_handle(handle).send().await.expect("DeleteMessage");
            }
            return serde_json::from_str(m.body().unwrap_or_default()).ok();
        }
    }
    None
}

/// The EMF lines among what the binary wrote, summed by (metric, operation, outcome).
fn metrics(stdout: &str) -> Vec<(String, String, String, u64)> {
    let mut out = Vec::new();
    for line in stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|l| l.get("_aws").is_some())
    {
        for name in ["Targets", "Requests", "ColdStart", "AuditEventsNotSent"] {
            if let Some(n) = line[name].as_u64() {
                let dim = |d: &str| line[d].as_str().unwrap_or("").to_owned();
                out.push((name.to_owned(), dim("operation"), dim("outcome"), n));
            }
        }
    }
    out
}

fn sum(metrics: &[(String, String, String, u64)], name: &str, operation: &str, outcome: &str) -> u64 {
    metrics.iter().filter(|(n, op, out, _)| n == name && op == operation && out == outcome).map(|(.., v)| v).sum()
}

#[tokio::test]
async fn a_termination_is_followed_up_until_confirmed_audited_and_counted() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let requests = moto.queue("teardown-requests");
    let audit = moto.audit_bus("teardown-audit", "teardown-audit-events");
    let table = moto.table("teardown-state");
    let ids = moto.workspaces(2);
    let api = RuntimeApi::start().await.unwrap();
    let (_function, stdout) = Function::start_capturing(
        bin(),
        &api,
        &[
            ("AWS_ENDPOINT_URL", &moto.endpoint),
            ("DLQ_URL", &dlq),
            ("REQUEST_QUEUE_URL", &requests),
            ("AUDIT_BUS", "teardown-audit"),
            ("STATE_TABLE", &table),
        ],
    );

    let response = api.invoke(sqs_event(&[("m-1", &ws_request(&ids))]), TIMEOUT).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));

    // The check comes back after its delay, as SQS would hand it to the function.
    let check = next_message(&moto, &requests, Duration::from_secs(50)).await.expect("a follow-up check after 30 s");
    assert_eq!(check["confirm"]["attempt"], 1);
    assert!(check["confirm"]["chain"].is_string(), "with a state table, a check names its chain");
    // Accepted and kept: the item names the chain the check belongs to.
    let item = moto.item(&table, &format!("123456789012#us-east-1#TerminateWorkspaces#{}", ids[0])).await;
    assert_eq!(item["chainId"], check["confirm"]["chain"]);
    assert_eq!(item["chainState"], "pending");
    let mut followed: Vec<String> =
        check["confirm"]["targets"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
    followed.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(followed, want);
    // The same check from anyone but the function is refused: no confirmed event for it.
    let response = api.invoke(sqs_event(&[("c-forged", &check)]), TIMEOUT).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));
    let refused = moto.drain(&dlq).await;
    assert_eq!(refused.len(), 1);
    assert_eq!((refused[0].0["error"]["code"].as_str(), refused[0].2.as_str()), (Some("UntrustedSender"), "invalid"));

    let event = sqs_event_from(&moto.function_sender().await, &[("c-1", &check)]);
    let response = api.invoke(event, TIMEOUT).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));

    assert!(moto.drain(&requests).await.is_empty(), "confirmed: no further check");
    assert!(moto.drain(&dlq).await.is_empty(), "nothing failed");
    let mut decisions: Vec<(String, String)> = moto
        .drain(&audit)
        .await
        .into_iter()
        .map(|(event, _, _)| {
            assert_eq!(
                (event["source"].as_str(), event["detail-type"].as_str()),
                (Some("teardown"), Some("Teardown Target Decision"))
            );
            let decision_id = event["detail"]["decisionId"].as_str().unwrap_or("");
            assert!(decision_id.len() == 32 && decision_id.bytes().all(|b| b.is_ascii_hexdigit()), "{event}");
            (
                event["detail"]["id"].as_str().unwrap_or("").to_owned(),
                event["detail"]["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    decisions.sort();
    let mut expected: Vec<(String, String)> = ids
        .iter()
        .flat_map(|id| [(id.clone(), "confirmed".to_owned()), (id.clone(), "terminated".to_owned())])
        .chain([(String::new(), "invalid".to_owned())])
        .collect();
    expected.sort();
    assert_eq!(decisions, expected, "every decision, on the bus, and the refusal of the forged check");

    // The operator asks where each stands.
    let status = std::process::Command::new(bin())
        .args(["status", "--json", "--table", &table])
        .args(&ids)
        .env_clear()
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("teardown status runs");
    assert_eq!(status.status.code(), Some(0), "{}", String::from_utf8_lossy(&status.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&status.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!((line["decision"].as_str(), line["source"]["messageId"].as_str()), (Some("confirmed"), Some("m-1")));
    }

    let written = stdout.lock().unwrap().clone();
    let metrics = metrics(&written);
    assert_eq!(sum(&metrics, "Targets", "TerminateWorkspaces", "terminated"), 2);
    assert_eq!(sum(&metrics, "Requests", "TerminateWorkspaces", "terminated"), 1);
    assert_eq!(sum(&metrics, "Targets", "TerminateWorkspaces", "confirmed"), 2);
    assert_eq!(sum(&metrics, "ColdStart", "", ""), 1, "only the first invocation is a cold start");
    assert_eq!(sum(&metrics, "AuditEventsNotSent", "", ""), 0);
}
