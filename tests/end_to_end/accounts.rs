//! docs/reference.md, "Accounts, regions and fan-out" end to end: one deployment, many accounts. moto keeps each account's
//! WorkSpaces apart by the assumed role's account; the binary fans a request out to
//! two member accounts, assumes its spoke role in each, and leaves the hub alone.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Function, Moto, RuntimeApi, sqs_event, sqs_event_from};

const TIMEOUT: Duration = Duration::from_secs(60);
const MEMBER_A: &str = "111111111111";
const MEMBER_B: &str = "222222222222";

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_teardown"))
}

fn ws_request(ids: &[String]) -> Value {
    json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": ids.iter().map(|i| json!({"WorkspaceId": i})).collect::<Vec<_>>()}})
}

#[tokio::test]
async fn one_fan_out_terminates_workspaces_in_two_member_accounts_and_leaves_the_hub_alone() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let requests = moto.queue("teardown-requests");
    let hub = moto.workspaces(1);
    let in_a = moto.workspaces_in(MEMBER_A, 1);
    let in_b = moto.workspaces_in(MEMBER_B, 1);
    let api = RuntimeApi::start().await.unwrap();
    let allowed = format!("{MEMBER_A},{MEMBER_B}");
    let _function = Function::start(
        bin(),
        &api,
        &[
            ("AWS_ENDPOINT_URL", &moto.endpoint),
            ("DLQ_URL", &dlq),
            ("REQUEST_QUEUE_URL", &requests),
            ("ALLOWED_ACCOUNTS", &allowed),
        ],
    );
    // One request names the WorkSpaces of both members: each child finds its own.
    let mut fan_out = ws_request(&[in_a.clone(), in_b.clone()].concat());
    fan_out["accounts"] = json!([MEMBER_A, MEMBER_B]);

    let report = api.invoke(fan_out, TIMEOUT).await.unwrap();
    assert_eq!(report["requests"][0]["outcome"], "fanned_out");
    assert_eq!(report["requests"][0]["children"].as_array().unwrap().len(), 2);

    // SQS hands the children to the function; here, the test does.
    let children: Vec<Value> = moto.drain(&requests).await.into_iter().map(|(body, _, _)| body).collect();
    assert_eq!(children.len(), 2);
    let records: Vec<(String, &Value)> = children.iter().enumerate().map(|(i, c)| (format!("child-{i}"), c)).collect();
    let records: Vec<(&str, &Value)> = records.iter().map(|(id, c)| (id.as_str(), *c)).collect();

    // The same children put on the queue by anyone but the function reach no account.
    let forged = api.invoke(sqs_event(&records), TIMEOUT).await.unwrap();
    assert_eq!(forged["batchItemFailures"], json!([]));
    let refused = moto.drain(&dlq).await;
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(|(r, _, outcome)| outcome == "invalid" && r["error"]["code"] == "UntrustedSender"));
    assert_eq!(moto.still_live_in(MEMBER_A, &in_a), in_a, "a forged child terminates nothing");

    let event = sqs_event_from(&moto.function_sender().await, &records);
    let response = api.invoke(event, TIMEOUT).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));

    assert!(moto.still_live_in(MEMBER_A, &in_a).is_empty(), "member A's WorkSpace is terminated");
    assert!(moto.still_live_in(MEMBER_B, &in_b).is_empty(), "member B's WorkSpace is terminated");
    assert_eq!(moto.still_live_in("123456789012", &hub), hub, "the hub is untouched");
    // Each child found the other member's WorkSpace absent from its own account.
    assert!(moto.drain(&dlq).await.is_empty());
}

#[tokio::test]
async fn an_account_outside_allowed_accounts_is_refused_before_any_call() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let in_a = moto.workspaces_in(MEMBER_A, 1);
    let api = RuntimeApi::start().await.unwrap();
    let _function = Function::start(
        bin(),
        &api,
        &[("AWS_ENDPOINT_URL", &moto.endpoint), ("DLQ_URL", &dlq), ("ALLOWED_ACCOUNTS", MEMBER_B)],
    );
    let mut request = ws_request(&in_a);
    request["account"] = json!(MEMBER_A);

    let report = api.invoke(request, TIMEOUT).await.unwrap();

    assert_eq!(report["requests"][0]["outcome"], "invalid");
    assert_eq!(moto.still_live_in(MEMBER_A, &in_a), in_a);
    let records = moto.drain(&dlq).await;
    assert_eq!(records[0].0["error"]["code"], "AccountNotAllowed");
}

#[tokio::test]
async fn a_role_that_cannot_be_assumed_is_rejected_with_a_record_naming_the_account() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_string(
            r#"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error></ErrorResponse>"#,
        ))
        .mount(&sts)
        .await;
    let api = RuntimeApi::start().await.unwrap();
    let _function = Function::start(
        bin(),
        &api,
        &[
            ("AWS_ENDPOINT_URL", &moto.endpoint),
            ("AWS_ENDPOINT_URL_STS", &sts.uri()),
            ("DLQ_URL", &dlq),
            ("ALLOWED_ACCOUNTS", MEMBER_A),
        ],
    );
    let mut request = ws_request(&["ws-abcd1234".to_owned()]);
    request["account"] = json!(MEMBER_A);

    let report = api.invoke(request, TIMEOUT).await.unwrap();

    assert_eq!(report["requests"][0]["outcome"], "rejected");
    let records = moto.drain(&dlq).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0["account"], MEMBER_A);
    assert_eq!(records[0].0["error"]["code"], "AccessDenied");
    let received = sts.received_requests().await.unwrap();
    let body = String::from_utf8_lossy(&received[0].body).into_owned();
    assert!(body.contains("RoleSessionName=teardown-"), "{body}");
    assert!(body.contains(&format!("arn%3Aaws%3Aiam%3A%3A{MEMBER_A}%3Arole%2Fteardown-spoke")), "{body}");
}

/// The tag index pages (moto at 50): a selection by tags reads every page, so all 60
/// tagged WorkSpaces are found, and the untagged ones are never touched.
#[tokio::test]
async fn a_selection_by_tags_follows_every_page_of_the_tag_index() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let (_, sandbox) = moto.tagged_workspaces(60, "sbx", &[("env", "sandbox")]);
    let (_, prod) = moto.tagged_workspaces(5, "prod", &[("env", "prod")]);
    let api = RuntimeApi::start().await.unwrap();
    let _function = Function::start(bin(), &api, &[("AWS_ENDPOINT_URL", &moto.endpoint), ("DLQ_URL", &dlq)]);

    let report = api
        .invoke(json!({"operation": "TerminateWorkspaces", "select": {"tags": {"env": "sandbox"}}}), TIMEOUT)
        .await
        .unwrap();

    assert_eq!(report["counts"]["targets"]["terminated"], 60, "{}", report["counts"]);
    assert!(moto.still_live_in("123456789012", &sandbox).is_empty());
    assert_eq!(moto.still_live_in("123456789012", &prod), prod);
}

/// MGN and Service Catalog in a member account (moto emulates neither: an HTTP
/// stand-in answers them): each call reaches the stand-in signed with the spoke
/// role's credentials that moto's STS gave, never with the hub's own.
#[tokio::test]
async fn mgn_and_service_catalog_in_a_member_account_are_called_with_the_spoke_roles_credentials() {
    use wiremock::matchers::{header, path};
    let moto = Moto::start();
    let fake = MockServer::start().await;
    let ok = |body: Value| ResponseTemplate::new(200).set_body_json(body);
    Mock::given(method("POST")).and(path("/DescribeJobs")).respond_with(ok(json!({"items": []}))).mount(&fake).await;
    Mock::given(method("POST"))
        .and(path("/DescribeSourceServers"))
        .respond_with(ok(
            json!({"items": [{"sourceServerID": "s-0123456789abcdefA", "lifeCycle": {"state": "READY_FOR_TEST"},
            "launchedInstance": {"ec2InstanceID": "i-0abc"}, "tags": {}}]}),
        ))
        .mount(&fake)
        .await;
    Mock::given(method("POST"))
        .and(path("/TerminateTargetInstances"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"job": {"jobID": "mgnjob-member", "participatingServers": []}})),
        )
        .mount(&fake)
        .await;
    let target = |t: &str| Mock::given(method("POST")).and(header("x-amz-target", t));
    target("AWS242ServiceCatalogService.DescribeProvisionedProduct")
        .respond_with(ok(json!({"ProvisionedProductDetail": {"Id": "pp-member01", "Status": "AVAILABLE", "LastSuccessfulProvisioningRecordId": "rec-p"}})))
        .mount(&fake)
        .await;
    target("AWS242ServiceCatalogService.SearchProvisionedProducts")
        .respond_with(ok(json!({"ProvisionedProducts": [{"Id": "pp-member01", "Name": "m", "Status": "AVAILABLE"}]})))
        .mount(&fake)
        .await;
    target("AWS242ServiceCatalogService.DescribeRecord")
        .respond_with(ok(json!({"RecordDetail": {"RecordId": "rec-p", "RecordTags": []}})))
        .mount(&fake)
        .await;
    target("AWS242ServiceCatalogService.TerminateProvisionedProduct")
        .respond_with(ok(json!({"RecordDetail": {"RecordId": "rec-t", "Status": "CREATED"}})))
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
            ("ALLOWED_ACCOUNTS", MEMBER_A),
        ],
    );
    let requests = json!({"requests": [
        {"operation": "TerminateTargetInstances", "account": MEMBER_A, "input": {"sourceServerIDs": ["s-0123456789abcdefA"]}},
        {"operation": "TerminateProvisionedProduct", "account": MEMBER_A, "input": {"ProvisionedProductId": "pp-member01"}}
    ]});

    let report = api.invoke(requests, TIMEOUT).await.unwrap();

    assert_eq!(report["requests"][0]["outcome"], "terminated", "{report}");
    assert_eq!(report["requests"][1]["outcome"], "terminated", "{report}");
    assert_eq!(report["requests"][0]["account"], MEMBER_A);
    let received = fake.received_requests().await.unwrap();
    assert!(received.len() >= 6);
    for request in &received {
        let auth = request.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(!auth.contains("Credential=testing/"), "signed with the hub's credentials: {auth}");
        assert!(auth.contains("Credential="), "{auth}");
    }
}
