//! Fault injection at the HTTP level, for every dependency: the built binary under
//! the local Runtime API, each service answered by wiremock with one fault on the
//! call that matters (the terminate, or the dead-letter SendMessage). Whatever the
//! fault, the message is redelivered and nothing is dead-lettered twice or lost.

use std::time::Duration;

use crate::support::{Function, RuntimeApi, dead_endpoint, sqs_event};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_teardown"))
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Throttled,
    TooManyRequests,
    InternalError,
    Unavailable,
    Slow,
    Malformed,
    Refused,
}

const FAULTS: [Fault; 7] = [
    Fault::Throttled,
    Fault::TooManyRequests,
    Fault::InternalError,
    Fault::Unavailable,
    Fault::Slow,
    Fault::Malformed,
    Fault::Refused,
];

fn faulty(fault: Fault) -> ResponseTemplate {
    // A refused connection has no response: the endpoint points where nothing listens.

    match fault {
        Fault::Throttled => ResponseTemplate::new(400).set_body_raw(
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            "application/x-amz-json-1.1",
        ),
        Fault::TooManyRequests => {
            ResponseTemplate::new(429).set_body_raw(r#"{"message":"Too Many Requests"}"#, "application/json")
        }
        Fault::InternalError => {
            ResponseTemplate::new(500).set_body_raw(r#"{"message":"Internal"}"#, "application/json")
        }
        Fault::Unavailable => ResponseTemplate::new(503).set_body_string("Service Unavailable"),
        // Longer than the binary's 10 s attempt timeout.
        Fault::Slow => {
            ResponseTemplate::new(200).set_body_raw("{}", "application/json").set_delay(Duration::from_secs(12))
        }
        Fault::Malformed => ResponseTemplate::new(200).set_body_raw("<html>not json", "application/json"),
        Fault::Refused => ResponseTemplate::new(599),
    }
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/x-amz-json-1.1")
}

/// Lookups that succeed, for all three services, and a dead-letter queue that
/// records what it is sent.
async fn healthy(server: &MockServer) {
    let target = |t: &str| Mock::given(method("POST")).and(header("x-amz-target", t));
    target("WorkspacesService.DescribeWorkspaces")
        .respond_with(ok(json!({"Workspaces": [{"WorkspaceId": "ws-fault001", "State": "AVAILABLE"}]})))
        .mount(server)
        .await;
    target("WorkspacesService.DescribeTags").respond_with(ok(json!({"TagList": []}))).mount(server).await;
    Mock::given(method("POST"))
        .and(path("/DescribeSourceServers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [{
            "sourceServerID": "s-0123456789abcdefA", "lifeCycle": {"state": "READY_FOR_CUTOVER"},
            "launchedInstance": {"ec2InstanceID": "i-0abc"}, "tags": {}
        }]})))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/DescribeJobs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .mount(server)
        .await;
    target("AWS242ServiceCatalogService.SearchProvisionedProducts")
        .respond_with(ok(json!({"ProvisionedProducts": [{"Id": "pp-fault001", "Name": "f", "Status": "AVAILABLE"}]})))
        .mount(server)
        .await;
    target("AWS242ServiceCatalogService.DescribeRecord")
        .respond_with(ok(json!({"RecordDetail": {"RecordId": "rec-prov1", "RecordTags": []}})))
        .mount(server)
        .await;
    target("AWS242ServiceCatalogService.DescribeProvisionedProduct")
        .respond_with(ok(
            json!({"ProvisionedProductDetail": {"Id": "pp-fault001", "Name": "f", "Status": "AVAILABLE", "LastSuccessfulProvisioningRecordId": "rec-prov1"}}),
        ))
        .mount(server)
        .await;
}

fn sends(received: &[wiremock::Request]) -> usize {
    received.iter().filter(|r| r.headers.get("x-amz-target").is_some_and(|v| v == "AmazonSQS.SendMessage")).count()
}

/// Runs one SQS message through the binary with `fault` on the call `faulted` selects.
async fn run(request: Value, fault: Fault, faulted: Mock, dlq_fault: bool) -> (Value, usize) {
    let server = MockServer::start().await;
    if !matches!(fault, Fault::Refused) {
        faulted.mount(&server).await;
    }
    healthy(&server).await;
    if !dlq_fault {
        Mock::given(method("POST"))
            .and(header("x-amz-target", "AmazonSQS.SendMessage"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"MessageId": "dlq-1"})))
            .mount(&server)
            .await;
    }
    let dead = dead_endpoint();
    let uri = server.uri();
    let refused_service = if matches!(fault, Fault::Refused) { dead.as_str() } else { uri.as_str() };
    let (ws, mgn, sc, sqs) = match (request["operation"].as_str(), dlq_fault) {
        (_, true) => (uri.as_str(), uri.as_str(), uri.as_str(), refused_service),
        (Some("TerminateWorkspaces"), _) => (refused_service, uri.as_str(), uri.as_str(), uri.as_str()),
        (Some("TerminateTargetInstances"), _) => (uri.as_str(), refused_service, uri.as_str(), uri.as_str()),
        _ => (uri.as_str(), uri.as_str(), refused_service, uri.as_str()),
    };
    // A refused connection fails the lookups too; for the others only the faulted call fails.
    let attempts = if matches!(fault, Fault::Slow) { "1" } else { "2" };
    let api = RuntimeApi::start().await.unwrap();
    let _function = Function::start(
        bin(),
        &api,
        &[
            ("AWS_ENDPOINT_URL_WORKSPACES", ws),
            ("AWS_ENDPOINT_URL_MGN", mgn),
            ("AWS_ENDPOINT_URL_SERVICE_CATALOG", sc),
            ("AWS_ENDPOINT_URL_SQS", sqs),
            ("AWS_MAX_ATTEMPTS", attempts),
            // Standard retries: the faults are about where a message ends, not pacing.
            ("AWS_RETRY_MODE", "standard"),
            ("DLQ_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/teardown-dlq"),
        ],
    );
    let response = api.invoke(sqs_event(&[("m-1", &request)]), Duration::from_secs(90)).await.unwrap();
    let received = server.received_requests().await.unwrap_or_default();
    (response, sends(&received))
}

fn redelivered(response: &Value) -> bool {
    response["batchItemFailures"] == json!([{"itemIdentifier": "m-1"}])
}

async fn every_fault_on(request: Value, call: impl Fn() -> wiremock::MockBuilder) {
    for fault in FAULTS {
        let (response, records) = run(request.clone(), fault, call().respond_with(faulty(fault)), false).await;
        assert!(redelivered(&response), "{fault:?} on {}: {response}", request["operation"]);
        assert_eq!(records, 0, "{fault:?}: a transient failure is redelivered, not dead-lettered");
    }
}

#[tokio::test]
async fn workspaces_faults_are_transient() {
    let request = json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-fault001"}]}});
    every_fault_on(request, || {
        Mock::given(method("POST")).and(header("x-amz-target", "WorkspacesService.TerminateWorkspaces"))
    })
    .await;
}

#[tokio::test]
async fn mgn_faults_are_transient() {
    let request =
        json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-0123456789abcdefA"]}});
    every_fault_on(request, || Mock::given(method("POST")).and(path("/TerminateTargetInstances"))).await;
}

#[tokio::test]
async fn service_catalog_faults_are_transient() {
    let request = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-fault001"}});
    every_fault_on(request, || {
        Mock::given(method("POST"))
            .and(header("x-amz-target", "AWS242ServiceCatalogService.TerminateProvisionedProduct"))
    })
    .await;
}

#[tokio::test]
async fn dead_letter_queue_faults_redeliver_the_message() {
    let invalid = json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceID": "ws-fault001"}]}});
    for fault in FAULTS {
        let call = Mock::given(method("POST"))
            .and(header("x-amz-target", "AmazonSQS.SendMessage"))
            .respond_with(faulty(fault));
        let (response, _) = run(invalid.clone(), fault, call, true).await;
        assert!(redelivered(&response), "{fault:?} on the dead-letter queue: {response}");
    }
}
