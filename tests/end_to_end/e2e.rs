//! End to end: the built binary under a Lambda Runtime API, moto for SQS and
//! WorkSpaces, wiremock for MGN and Service Catalog (which moto does not emulate).

use std::time::Duration;

use crate::support::{Function, Moto, RuntimeApi, dead_endpoint, sorted_outcomes as outcomes, sqs_event};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TIMEOUT: Duration = Duration::from_secs(60);
const SC_TERMINATE: &str = "AWS242ServiceCatalogService.TerminateProvisionedProduct";

/// MGN's DescribeSourceServers, answering that `server` has a launched instance,
/// and DescribeJobs, answering that no job is running.
async fn mgn_knows(fake: &MockServer, server: &str) {
    Mock::given(method("POST"))
        .and(path("/DescribeJobs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .mount(fake)
        .await;
    Mock::given(method("POST"))
        .and(path("/DescribeSourceServers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [{
            "sourceServerID": server, "lifeCycle": {"state": "READY_FOR_CUTOVER"},
            "launchedInstance": {"ec2InstanceID": "i-0abc1234def567890"}, "tags": {"wave": "3"}
        }]})))
        .mount(fake)
        .await;
}

/// Service Catalog's DescribeProvisionedProduct, DescribeRecord and
/// SearchProvisionedProducts, answering with one AVAILABLE product.
async fn catalog_knows(fake: &MockServer, id: &str, name: &str) {
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AWS242ServiceCatalogService.DescribeRecord"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"RecordDetail": {
            "RecordId": "rec-prov1", "RecordTags": [{"Key": "env", "Value": "sandbox"}]
        }})))
        .mount(fake)
        .await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AWS242ServiceCatalogService.DescribeProvisionedProduct"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ProvisionedProductDetail": {
            "Id": id, "Name": name, "Status": "AVAILABLE", "LastSuccessfulProvisioningRecordId": "rec-prov1"
        }})))
        .mount(fake)
        .await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AWS242ServiceCatalogService.SearchProvisionedProducts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ProvisionedProducts": [{
            "Id": id, "Name": name, "Status": "AVAILABLE", "Tags": [{"Key": "env", "Value": "sandbox"}]
        }]})))
        .mount(fake)
        .await;
}

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_teardown"))
}

fn ws_request(ids: &[String]) -> Value {
    json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": ids.iter().map(|i| json!({"WorkspaceId": i})).collect::<Vec<_>>()}})
}

fn failures(response: &Value) -> Vec<String> {
    let list = response["batchItemFailures"].as_array().unwrap_or_else(|| panic!("not a batch response: {response}"));
    list.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned)).collect()
}

async fn still_present(moto: &Moto, ids: &[String]) -> Vec<String> {
    let described =
        moto.workspaces_client().describe_workspaces().set_workspace_ids(Some(ids.to_vec())).send().await.unwrap();
    described
        .workspaces()
        .iter()
        .filter(|w| {
            !matches!(
                w.state(),
                Some(
                    aws_sdk_workspaces::types::WorkspaceState::Terminated
                        | aws_sdk_workspaces::types::WorkspaceState::Terminating
                )
            )
        })
        .filter_map(|w| w.workspace_id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_sqs_batch_of_workspaces_requests_terminates_them_in_moto() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let ids = moto.workspaces(4);
    let api = RuntimeApi::start().await.unwrap();
    let _function = Function::start(bin(), &api, &[("AWS_ENDPOINT_URL", &moto.endpoint), ("DLQ_URL", &dlq)]);
    assert_eq!(still_present(&moto, &ids).await.len(), 4);

    let event = sqs_event(&[("m-1", &ws_request(&ids[..3])), ("m-2", &ws_request(&ids[3..]))]);
    let response = api.invoke(event, TIMEOUT).await.unwrap();

    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(still_present(&moto, &ids).await, Vec::<String>::new(), "every WorkSpace is gone");
    assert!(moto.drain(&dlq).await.is_empty());
}

#[tokio::test]
async fn a_mixed_batch_leaves_exactly_the_expected_records_in_the_dead_letter_queue() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let ids = moto.workspaces(1);
    let api = RuntimeApi::start().await.unwrap();
    let _function = Function::start(bin(), &api, &[("AWS_ENDPOINT_URL", &moto.endpoint), ("DLQ_URL", &dlq)]);
    let typo =
        json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceID": ids[0]}]}});

    let event = sqs_event(&[
        ("valid", &ws_request(&ids)),
        ("bad-json", &json!("{\"operation\": ")),
        ("unknown-op", &json!({"operation": "TerminateInstances", "input": {}})),
        ("typo", &typo),
    ]);
    let response = api.invoke(event, TIMEOUT).await.unwrap();

    assert_eq!(failures(&response), Vec::<String>::new());
    assert!(still_present(&moto, &ids).await.is_empty());
    let mut records = moto.drain(&dlq).await;
    records.sort_by_key(|(body, _, _)| body["source"]["messageId"].as_str().unwrap_or_default().to_owned());
    let summary: Vec<(&str, &str, &str, &str)> = records
        .iter()
        .map(|(body, operation, outcome)| {
            (
                body["source"]["messageId"].as_str().unwrap(),
                operation.as_str(),
                outcome.as_str(),
                body["error"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("bad-json", "unknown", "invalid", "BadInput"),
            ("typo", "TerminateWorkspaces", "invalid", "InvalidRequest"),
            ("unknown-op", "unknown", "invalid", "InvalidRequest"),
        ]
    );
    let typo_record = &records[1].0;
    assert_eq!(typo_record["request"], typo);
    assert_eq!(
        typo_record["error"]["message"],
        "input.TerminateWorkspaceRequests[0].WorkspaceID: is not a known member (expected one of: WorkspaceId)"
    );
    assert_eq!(records[0].0["request"], json!("{\"operation\": "), "the raw body is kept");
}

#[tokio::test]
async fn when_the_dead_letter_queue_is_unreachable_the_failed_messages_are_redelivered() {
    let moto = Moto::start();
    let ids = moto.workspaces(1);
    let api = RuntimeApi::start().await.unwrap();
    let dead = dead_endpoint();
    let _function = Function::start(
        bin(),
        &api,
        &[
            ("AWS_ENDPOINT_URL", &moto.endpoint),
            ("AWS_ENDPOINT_URL_SQS", &dead),
            ("DLQ_URL", "http://127.0.0.1:9/123456789012/teardown-dlq"),
        ],
    );

    let event =
        sqs_event(&[("valid", &ws_request(&ids)), ("bad-1", &json!("nope")), ("bad-2", &json!({"operation": 1}))]);
    let response = api.invoke(event, TIMEOUT).await.unwrap();

    assert_eq!(failures(&response), vec!["bad-1", "bad-2"], "none lost; the valid one is done");
    assert!(still_present(&moto, &ids).await.is_empty());
}

#[tokio::test]
async fn when_workspaces_is_unreachable_the_message_is_redelivered_without_a_record() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let api = RuntimeApi::start().await.unwrap();
    let dead = dead_endpoint();
    let _function = Function::start(
        bin(),
        &api,
        &[("AWS_ENDPOINT_URL", &moto.endpoint), ("AWS_ENDPOINT_URL_WORKSPACES", &dead), ("DLQ_URL", &dlq)],
    );

    let event = sqs_event(&[("m-1", &ws_request(&["ws-abcd1234".to_owned()]))]);
    let response = api.invoke(event, TIMEOUT).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1"]);
    assert!(moto.drain(&dlq).await.is_empty(), "a transient failure is redelivered, not dead-lettered");
}

#[tokio::test]
async fn eventbridge_and_direct_payloads_reach_mgn_and_service_catalog_with_the_exact_wire_requests() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let fake = MockServer::start().await;
    let server = "s-0123456789abcdefA";
    Mock::given(method("POST"))
        .and(path("/TerminateTargetInstances"))
        .and(body_json(json!({"sourceServerIDs": [server], "tags": {"ticket": "CHG-42"}, "accountID": "123456789012"})))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({
            "job": {"jobID": "mgnjob-1a2b3c", "type": "TERMINATE", "status": "PENDING", "participatingServers": [{"sourceServerID": server, "launchStatus": "PENDING"}]}
        })))
        .expect(1)
        .mount(&fake)
        .await;
    mgn_knows(&fake, server).await;
    catalog_knows(&fake, "pp-sandbox42", "sandbox42").await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("x-amz-target", SC_TERMINATE))
        .and(header("content-type", "application/x-amz-json-1.1"))
        .and(body_json(json!({"ProvisionedProductId": "pp-sandbox42", "TerminateToken": "given-token-1", "RetainPhysicalResources": false})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "RecordDetail": {"RecordId": "rec-9z8y7x", "Status": "CREATED", "ProvisionedProductId": "pp-sandbox42"}
        })))
        .expect(1)
        .mount(&fake)
        .await;
    let api = RuntimeApi::start().await.unwrap();
    let _function = Function::start(
        bin(),
        &api,
        &[
            ("AWS_ENDPOINT_URL", &moto.endpoint),
            ("AWS_ENDPOINT_URL_MGN", &fake.uri()),
            ("AWS_ENDPOINT_URL_SERVICE_CATALOG", &fake.uri()),
            ("DLQ_URL", &dlq),
        ],
    );

    let eventbridge = json!({
        "version": "0", "id": "eb-5e1f", "detail-type": "Teardown Request", "source": "teardown.requests",
        "account": "123456789012", "time": "2026-11-24T10:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": [server], "tags": {"ticket": "CHG-42"}, "accountID": "123456789012"}}
    });
    let report = api.invoke(eventbridge, TIMEOUT).await.unwrap();
    assert_eq!(report["requests"][0]["outcome"], "terminated");
    assert_eq!(report["requests"][0]["targets"][0]["jobId"], "mgnjob-1a2b3c");
    assert_eq!(report["requests"][0]["source"]["kind"], "eventbridge");

    let direct = json!({"requests": [{"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-sandbox42", "TerminateToken": "given-token-1", "RetainPhysicalResources": false}}]});
    let report = api.invoke(direct, TIMEOUT).await.unwrap();
    assert_eq!(report["requests"][0]["outcome"], "terminated");
    assert_eq!(report["requests"][0]["targets"][0]["recordId"], "rec-9z8y7x");
    assert_eq!(report["requests"][0]["targets"][0]["recordStatus"], "CREATED");
    assert_eq!(report["requests"][0]["source"]["kind"], "direct");

    fake.verify().await;
    assert!(moto.drain(&dlq).await.is_empty());
}

#[tokio::test]
async fn a_message_delivered_twice_reuses_its_token_and_leaves_no_record() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let ids = moto.workspaces(1);
    let fake = MockServer::start().await;
    catalog_knows(&fake, "pp-alice0001", "sandbox-alice").await;
    let target = || Mock::given(method("POST")).and(header("x-amz-target", SC_TERMINATE));
    // The first call terminates; after that Service Catalog answers ResourceNotFound.
    target()
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"RecordDetail": {"RecordId": "rec-1", "Status": "CREATED"}})),
        )
        .up_to_n_times(1)
        .mount(&fake)
        .await;
    target()
        .respond_with(
            ResponseTemplate::new(400).set_body_json(
                json!({"__type": "ResourceNotFoundException", "Message": "Provisioned product not found"}),
            ),
        )
        .mount(&fake)
        .await;
    let api = RuntimeApi::start().await.unwrap();
    let _function = Function::start(
        bin(),
        &api,
        &[("AWS_ENDPOINT_URL", &moto.endpoint), ("AWS_ENDPOINT_URL_SERVICE_CATALOG", &fake.uri()), ("DLQ_URL", &dlq)],
    );
    let product =
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox-alice"}});
    let event = sqs_event(&[("m-1", &product), ("m-2", &ws_request(&ids))]);

    let first = api.invoke(event.clone(), TIMEOUT).await.unwrap();
    let second = api.invoke(event, TIMEOUT).await.unwrap();

    assert_eq!(failures(&first), Vec::<String>::new());
    assert_eq!(failures(&second), Vec::<String>::new());
    let records = moto.drain(&dlq).await;
    assert!(records.is_empty(), "the second delivery finds its targets gone: no record, got {records:?}");
    let received = fake.received_requests().await.unwrap();
    let terminates = received.iter().filter(|r| r.headers.get("x-amz-target").is_some_and(|v| v == SC_TERMINATE));
    let tokens: Vec<Value> =
        terminates.map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["TerminateToken"].clone()).collect();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1], "the same message id gives the same TerminateToken");
    assert_eq!(tokens[0].as_str().map(str::len), Some(64));
}

#[tokio::test]
async fn an_invalid_setting_stops_the_function_at_start_naming_the_variable() {
    let api = RuntimeApi::start().await.unwrap();
    // Lambda reports a runtime that exits during init as Runtime.ExitError, with
    // what it logged: the log line is what a person reads.
    let out = crate::support::lambda_command(bin(), &api).env("MAX_TARGETS", "lots").output().unwrap();
    assert!(!out.status.success());
    let logged = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(logged.contains(r#"setting MAX_TARGETS="lots" is invalid"#), "{logged}");
}

fn expect(ids: &[String], outcome: &str) -> Vec<(String, String)> {
    ids.iter().map(|id| (id.clone(), outcome.to_owned())).collect()
}

#[tokio::test]
async fn a_selection_terminates_exactly_what_it_matches_and_never_what_is_protected() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let (directory, sandbox) = moto.tagged_workspaces(3, "sbx", &[("env", "sandbox")]);
    let (_, protected) = moto.tagged_workspaces(1, "keep", &[("env", "sandbox"), ("teardown:protect", "yes")]);
    let (_, prod) = moto.tagged_workspaces(2, "prod", &[("env", "prod")]);
    let all: Vec<String> = [sandbox.clone(), protected.clone(), prod.clone()].concat();
    let api = RuntimeApi::start().await.unwrap();
    let _function = Function::start(bin(), &api, &[("AWS_ENDPOINT_URL", &moto.endpoint), ("DLQ_URL", &dlq)]);
    let select =
        json!({"operation": "TerminateWorkspaces", "select": {"directoryId": directory, "tags": {"env": "sandbox"}}});

    // First the dry run a person reads: what would happen, and why, with nothing touched.
    let mut dry = select.clone();
    dry["dryRun"] = json!(true);
    let report = api.invoke(dry, TIMEOUT).await.unwrap();
    let mut want = [expect(&sandbox, "dry_run"), expect(&protected, "protected")].concat();
    want.sort();
    assert_eq!(outcomes(&report), want);
    let targets = report["requests"][0]["targets"].as_array().unwrap();
    let reason_of = |id: &str| targets.iter().find(|t| t["id"] == id).unwrap()["reason"].as_str().unwrap().to_owned();
    assert!(reason_of(&sandbox[0]).starts_with("would be terminated; matched: tag env=sandbox, directoryId d-"));
    assert_eq!(reason_of(&protected[0]), "tag teardown:protect=\"yes\": never terminated");
    assert_eq!(still_present(&moto, &all).await.len(), 6, "a dry run changes nothing");

    let report = api.invoke(select, TIMEOUT).await.unwrap();
    let mut want = [expect(&sandbox, "terminated"), expect(&protected, "protected")].concat();
    want.sort();
    assert_eq!(outcomes(&report), want);
    assert_eq!(report["counts"]["targets"], json!({"protected": 1, "terminated": 3}));
    let mut left = still_present(&moto, &all).await;
    left.sort();
    let mut want_left = [protected.clone(), prod.clone()].concat();
    want_left.sort();
    assert_eq!(left, want_left, "the protected and the unmatched are untouched");
    assert!(moto.drain(&dlq).await.is_empty());

    // By user, within the directory: exactly that user's WorkSpace.
    let by_user =
        json!({"operation": "TerminateWorkspaces", "select": {"directoryId": directory, "userName": "prod1"}});
    let report = api.invoke(by_user, TIMEOUT).await.unwrap();
    assert_eq!(report["requests"][0]["targets"].as_array().unwrap().len(), 1);
    assert_eq!(report["requests"][0]["targets"][0]["outcome"], "terminated");
    let mut left = still_present(&moto, &all).await;
    left.sort();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&protected[0]));
}

#[tokio::test]
async fn naming_a_protected_workspace_does_not_bypass_the_guard() {
    let moto = Moto::start();
    let (_, protected) = moto.tagged_workspaces(1, "keep", &[("teardown:protect", "")]);
    let ordinary = moto.workspaces(1);
    let api = RuntimeApi::start().await.unwrap();
    let _function = Function::start(bin(), &api, &[("AWS_ENDPOINT_URL", &moto.endpoint)]);

    let report = api.invoke(ws_request(&[protected[0].clone(), ordinary[0].clone()]), TIMEOUT).await.unwrap();

    let mut want = [expect(&protected, "protected"), expect(&ordinary, "terminated")].concat();
    want.sort();
    assert_eq!(outcomes(&report), want);
    assert_eq!(still_present(&moto, &[protected[0].clone(), ordinary[0].clone()]).await, protected);
}

/// What the function wrote is out when it is stopped between invocations: every line
/// is written whole to a line-buffered stdout, so no shutdown hook (and no extension
/// registration at cold start) is needed to flush it.
#[tokio::test]
async fn every_line_is_out_when_the_function_is_stopped_between_invocations() {
    let api = RuntimeApi::start().await.unwrap();
    let (mut function, stdout) = Function::start_capturing(bin(), &api, &[("AWS_ENDPOINT_URL", &dead_endpoint())]);
    let report = api.invoke(json!({"operation": "Nope"}), TIMEOUT).await.unwrap();
    assert_eq!(report["requests"][0]["outcome"], "invalid");

    function.terminate();
    std::thread::sleep(Duration::from_millis(200));

    let written = stdout.lock().unwrap().clone();
    assert!(written.contains("request settled"), "the request's log line is out: {written}");
    assert!(
        written.lines().any(|l| l.contains("\"_aws\"") && l.contains("\"outcome\":\"invalid\"")),
        "the metric line is out"
    );
}

/// The function is linked at a fixed address (build.rs): the dynamic loader has no
/// relocations to apply before the first poll of a cold start. ELF `e_type` 2 is a
/// fixed-address executable; 3 would be position-independent.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_function_is_linked_at_a_fixed_address() {
    use std::io::Read;
    let mut header = [0u8; 18];
    std::fs::File::open(env!("CARGO_BIN_EXE_teardown"))
        .and_then(|mut f| f.read_exact(&mut header))
        .expect("the built binary's ELF header");
    assert_eq!(&header[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([header[16], header[17]]), 2, "ET_EXEC, not ET_DYN (PIE)");
}
