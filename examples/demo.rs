//! The local demo: the release binary under a local Lambda Runtime API, against
//! moto (SQS, WorkSpaces) and a stand-in for MGN and Service Catalog, fed the
//! samples in `events/`. Run it with `scripts/demo`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Function, Moto, RuntimeApi};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EVENTS: &[&str] = &[
    "sqs-terminate-workspaces.json",
    "sqs-terminate-target-instances.json",
    "sqs-terminate-provisioned-product.json",
    "sqs-mixed-batch.json",
    "sqs-sns-wrapped.json",
    "sqs-eventbridge-wrapped.json",
    "eventbridge-custom.json",
    "schedule-constant-input.json",
    "direct-requests.json",
];

#[tokio::main]
async fn main() {
    let bin = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/release/teardown"));
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));

    println!("Starting moto (SQS, WorkSpaces) and a stand-in for MGN and Service Catalog …");
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let ids = moto.workspaces(5);
    let stand_in = MockServer::start().await;
    // The stand-in knows every source server as launched and every product as AVAILABLE.
    Mock::given(method("POST"))
        .and(path("/DescribeSourceServers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [
            {"sourceServerID": "s-0123456789abcdefA", "lifeCycle": {"state": "READY_FOR_CUTOVER"}, "launchedInstance": {"ec2InstanceID": "i-0demo0000000000a"}, "tags": {}},
            {"sourceServerID": "s-0123456789abcdefB", "lifeCycle": {"state": "READY_FOR_CUTOVER"}, "launchedInstance": {"ec2InstanceID": "i-0demo0000000000b"}, "tags": {}}
        ]})))
        .mount(&stand_in)
        .await;
    Mock::given(method("POST"))
        .and(path("/DescribeJobs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .mount(&stand_in)
        .await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AWS242ServiceCatalogService.DescribeRecord"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"RecordDetail": {"RecordId": "rec-prov1", "RecordTags": []}})),
        )
        .mount(&stand_in)
        .await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AWS242ServiceCatalogService.DescribeProvisionedProduct"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ProvisionedProductDetail":
            {"Id": "pp-sandbox42", "Name": "sandbox42", "Status": "AVAILABLE", "LastSuccessfulProvisioningRecordId": "rec-prov1"}
        })))
        .mount(&stand_in)
        .await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AWS242ServiceCatalogService.SearchProvisionedProducts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ProvisionedProducts": [
            {"Id": "pp-sandbox42", "Name": "sandbox42", "Status": "AVAILABLE", "Tags": []}
        ]})))
        .mount(&stand_in)
        .await;
    Mock::given(method("POST"))
        .and(path("/TerminateTargetInstances"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"job": {"jobID": "mgnjob-demo1", "type": "TERMINATE", "status": "PENDING", "participatingServers": []}})))
        .mount(&stand_in)
        .await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AWS242ServiceCatalogService.TerminateProvisionedProduct"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"RecordDetail": {"RecordId": "rec-demo1", "Status": "CREATED"}})),
        )
        .mount(&stand_in)
        .await;

    // What the follow-up checks find: the job completed, the record succeeded.
    Mock::given(method("POST"))
        .and(path("/DescribeJobs"))
        .and(body_string_contains("jobIDs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [{"jobID": "mgnjob-demo1", "type": "TERMINATE", "status": "COMPLETED", "participatingServers": [
            {"sourceServerID": "s-0123456789abcdefA", "launchStatus": "TERMINATED"},
            {"sourceServerID": "s-0123456789abcdefB", "launchStatus": "TERMINATED"}
        ]}]})))
        .with_priority(1)
        .mount(&stand_in)
        .await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AWS242ServiceCatalogService.DescribeRecord"))
        .and(body_string_contains("rec-demo1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"RecordDetail": {"RecordId": "rec-demo1", "Status": "SUCCEEDED", "RecordType": "TERMINATE_PROVISIONED_PRODUCT"}})))
        .with_priority(1)
        .mount(&stand_in)
        .await;
    let requests = moto.queue("teardown-requests");
    let audit = moto.audit_bus("teardown-audit", "teardown-audit-events");
    // As a deployment does: every accepted termination kept in a table.
    let table = moto.table("teardown-state");

    let api = RuntimeApi::start().await.expect("a loopback port for the Runtime API");
    let (_function, stdout) = Function::start_capturing(
        &bin,
        &api,
        &[
            ("AWS_ENDPOINT_URL", &moto.endpoint),
            ("AWS_ENDPOINT_URL_MGN", &stand_in.uri()),
            ("AWS_ENDPOINT_URL_SERVICE_CATALOG", &stand_in.uri()),
            ("DLQ_URL", &dlq),
            ("REQUEST_QUEUE_URL", &requests),
            ("AUDIT_BUS", "teardown-audit"),
            ("STATE_TABLE", &table),
        ],
    );
    println!("WorkSpaces in moto: {}", ids.join(", "));
    println!("Samples name ws-demo0001…ws-demo0005; the demo swaps in these ids.\n");

    for name in EVENTS {
        let mut text = std::fs::read_to_string(repo.join("events").join(name)).expect("the sample exists");
        for (i, id) in ids.iter().enumerate() {
            text = text.replace(&format!("ws-demo000{}", i + 1), id);
        }
        let event: Value = serde_json::from_str(&text).expect("the sample is JSON");
        let before = live(&moto, &ids).await;
        let answer = api.invoke(event, Duration::from_secs(60)).await;
        let after = live(&moto, &ids).await;
        println!("── {name}");
        match answer {
            Ok(response) if response.get("batchItemFailures").is_some() => {
                let failed: Vec<&str> = response["batchItemFailures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["itemIdentifier"].as_str())
                    .collect();
                println!(
                    "   SQS batch: redeliver {}",
                    if failed.is_empty() { "nothing".to_owned() } else { failed.join(", ") }
                );
            }
            Ok(report) => {
                for request in report["requests"].as_array().into_iter().flatten() {
                    let targets: Vec<String> = request["targets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|t| {
                            let extra = t["jobId"]
                                .as_str()
                                .or(t["recordId"].as_str())
                                .map(|x| format!(" ({x})"))
                                .unwrap_or_default();
                            format!(
                                "{} {}{extra}",
                                t["id"].as_str().unwrap_or("?"),
                                t["outcome"].as_str().unwrap_or("?")
                            )
                        })
                        .collect();
                    println!(
                        "   {:<28} {:<10} {}",
                        request["operation"].as_str().unwrap_or("-"),
                        request["outcome"].as_str().unwrap_or("?"),
                        if targets.is_empty() {
                            request["error"]["message"].as_str().unwrap_or("").to_owned()
                        } else {
                            targets.join(", ")
                        }
                    );
                }
            }
            Err(error) => println!("   invocation failed: {error}"),
        }
        let gone: Vec<&String> = before.iter().filter(|id| !after.contains(id)).collect();
        if !gone.is_empty() {
            println!("   terminated in moto: {}", gone.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "));
        }
    }

    println!("\n── scheduled cleanup: sandbox WorkSpaces (docs/reference.md, Selection: scheduled cleanup)");
    let (directory, sandbox) = moto.tagged_workspaces(2, "sbx", &[("env", "sandbox")]);
    let (_, kept) = moto.tagged_workspaces(1, "legal", &[("env", "sandbox"), ("teardown:protect", "legal hold")]);
    let (_, prod) = moto.tagged_workspaces(1, "prod", &[("env", "prod")]);
    println!("   made: sandbox {}, protected sandbox {}, prod {}", sandbox.join(" "), kept.join(" "), prod.join(" "));
    let select =
        json!({"operation": "TerminateWorkspaces", "select": {"directoryId": directory, "tags": {"env": "sandbox"}}});
    let mut dry = select.clone();
    dry["dryRun"] = json!(true);
    for (title, request) in [("dry run", dry), ("real run", select)] {
        println!("   {title}: {request}");
        match api.invoke(request, Duration::from_secs(60)).await {
            Ok(report) => print_targets(&report),
            Err(error) => println!("   invocation failed: {error}"),
        }
    }

    follow_up(&moto, &api, &requests).await;

    println!("\n── the state table: each termination, its follow-up chain, its decision");
    let item = moto.item(&table, &format!("123456789012#us-east-1#TerminateWorkspaces#{}", ids[0])).await;
    println!("   the item of {}: {item}", ids[0]);
    println!("   teardown status {} s-0123456789abcdefA pp-sandbox42 --table {table}", ids[..2].join(" "));
    let status = std::process::Command::new(&bin)
        .args(["status", &ids[0], &ids[1], "s-0123456789abcdefA", "pp-sandbox42", "--table", &table])
        .env_clear()
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output();
    match status {
        Ok(out) => {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                println!("   {line}");
            }
            println!("   (exit code {})", out.status.code().unwrap_or(-1));
        }
        Err(e) => println!("   could not run it: {e}"),
    }

    println!("\n── audit events on the bus (a rule delivers them to a queue here)");
    let mut events = moto.drain(&audit).await;
    events.sort_by_key(|(e, _, _)| e["detail"]["at"].as_str().unwrap_or("").to_owned());
    for (event, _, _) in &events {
        let d = &event["detail"];
        println!(
            "   {:<28} {:<22} {:<12} dryRun={:<5} {}",
            d["operation"].as_str().unwrap_or("-"),
            d["id"].as_str().unwrap_or("(request)"),
            d["outcome"].as_str().unwrap_or("?"),
            d["dryRun"],
            d["jobId"].as_str().or(d["recordId"].as_str()).unwrap_or("")
        );
    }
    println!(
        "   {} events, source {:?}, detail-type {:?}",
        events.len(),
        events.first().map(|(e, _, _)| e["source"].clone()),
        events.first().map(|(e, _, _)| e["detail-type"].clone())
    );

    println!("\n── metrics (EMF lines the function wrote to standard output; two of them)");
    let written = stdout.lock().map(|s| s.clone()).unwrap_or_default();
    let emf: Vec<&str> = written.lines().filter(|l| l.starts_with('{') && l.contains("\"_aws\"")).collect();
    for line in emf.iter().take(2) {
        println!("   {line}");
    }
    println!("   … {} lines in all", emf.len());

    println!("\n── dead-letter queue");
    for (record, operation, outcome) in moto.drain(&dlq).await {
        println!(
            "   {:<22} {:<20} {:<9} {}: {}",
            record["source"]["messageId"].as_str().or(record["source"]["requestId"].as_str()).unwrap_or("-"),
            operation,
            outcome,
            record["error"]["code"].as_str().unwrap_or(""),
            record["error"]["message"].as_str().unwrap_or("")
        );
    }
    println!("\n── WorkSpaces still running in moto: {}", live(&moto, &ids).await.join(", "));
}

/// docs/reference.md, "Follow-up, audit events and metrics": the checks the function sent itself come back after their delay; the
/// demo hands them back as SQS would, until none is left, and prints how each target ended.
async fn follow_up(moto: &Moto, api: &RuntimeApi, queue: &str) {
    println!("\n── follow-up: the checks come back after 30 s (the demo waits for them)");
    let sqs = moto.sqs();
    let sender = moto.function_sender().await;
    let mut quiet_since = std::time::Instant::now();
    let mut round = 0;
    while quiet_since.elapsed() < Duration::from_secs(35) {
        let got = sqs.receive_message().queue_url(queue).max_number_of_messages(10).wait_time_seconds(5).send().await;
        let messages = got.map(|g| g.messages().to_vec()).unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        quiet_since = std::time::Instant::now();
        round += 1;
        let bodies: Vec<(String, Value)> = messages
            .iter()
            .map(|m| {
                (
                    m.message_id().unwrap_or("check").to_owned(),
                    serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or(Value::Null),
                )
            })
            .collect();
        for m in &messages {
            if let Some(handle) = m.receipt_handle() {
                let _ = sqs.delete_message().queue_url(queue).receipt_handle(handle).send().await;
            }
        }
        let refs: Vec<(&str, &Value)> = bodies.iter().map(|(id, b)| (id.as_str(), b)).collect();
        for (_, body) in &refs {
            let check = &body["confirm"];
            println!(
                "   check {round}: {} attempt {} for {} target(s): {}",
                check["operation"].as_str().unwrap_or("?"),
                check["attempt"],
                check["targets"].as_array().map_or(0, Vec::len),
                check["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["id"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        // As SQS delivers them: a check is honoured only when the function itself sent
        // it (docs/reference.md, "Who may send what"), which SQS says in SenderId. How each target ended is in
        // the audit events below.
        let event = support::sqs_event_from(&sender, &refs);
        match api.invoke(event, Duration::from_secs(60)).await {
            Ok(response) => println!("     handed back; redelivered: {}", response["batchItemFailures"]),
            Err(error) => println!("     invocation failed: {error}"),
        }
    }
}

/// One line per target, with what happened and why: the dry-run report a person reads.
fn print_targets(report: &Value) {
    for request in report["requests"].as_array().into_iter().flatten() {
        for t in request["targets"].as_array().into_iter().flatten() {
            println!(
                "     {:<11} {:<14} {}",
                t["outcome"].as_str().unwrap_or("?"),
                t["id"].as_str().unwrap_or("?"),
                t["reason"].as_str().unwrap_or("")
            );
        }
    }
    println!("     totals: {}", report["counts"]["targets"]);
}

async fn live(moto: &Moto, ids: &[String]) -> Vec<String> {
    use aws_sdk_workspaces::types::WorkspaceState::{Terminated, Terminating};
    let Ok(found) = moto.workspaces_client().describe_workspaces().set_workspace_ids(Some(ids.to_vec())).send().await
    else {
        return Vec::new();
    };
    found
        .workspaces()
        .iter()
        .filter(|w| !matches!(w.state(), Some(Terminated | Terminating)))
        .filter_map(|w| w.workspace_id().map(str::to_owned))
        .collect()
}
