//! The invocation with every AWS client replaced by an `aws-smithy-mocks` double:
//! the four clients, lookups that find every named target, and recorders of the
//! calls made. Shared by the handler and corpus tests.
#![allow(dead_code)]

pub use std::sync::{Arc, Mutex};

pub use aws_sdk_mgn::operation::describe_jobs::DescribeJobsOutput;
pub use aws_sdk_mgn::operation::describe_source_servers::DescribeSourceServersOutput;
pub use aws_sdk_mgn::types::{LaunchedInstance, LifeCycle, LifeCycleState, SourceServer};
pub use aws_sdk_servicecatalog::operation::describe_provisioned_product::DescribeProvisionedProductOutput;
pub use aws_sdk_servicecatalog::operation::describe_record::DescribeRecordOutput;
pub use aws_sdk_servicecatalog::operation::search_provisioned_products::SearchProvisionedProductsOutput;
pub use aws_sdk_servicecatalog::operation::terminate_provisioned_product::TerminateProvisionedProductOutput;
pub use aws_sdk_servicecatalog::types::{
    ProvisionedProductAttribute, ProvisionedProductDetail, ProvisionedProductStatus, RecordDetail, RecordStatus,
    RecordTag, Tag as ScTag,
};
pub use aws_sdk_sqs::operation::send_message::SendMessageOutput;
pub use aws_sdk_workspaces::operation::describe_tags::DescribeTagsOutput;
pub use aws_sdk_workspaces::operation::describe_workspaces::DescribeWorkspacesOutput;
pub use aws_sdk_workspaces::operation::terminate_workspaces::TerminateWorkspacesOutput;
pub use aws_sdk_workspaces::types::{Workspace, WorkspaceState};
pub use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
pub use aws_smithy_runtime_api::http::{Response, StatusCode};
pub use aws_smithy_types::body::SdkBody;
pub use lambda_runtime::{Context, LambdaEvent};
pub use serde_json::{Value, json};
pub use teardown::deadletter::DeadLetterQueue;
pub use teardown::handler::{App, handle};
pub use teardown::services::{Catalog, Mgn, Services, Workspaces};
pub use teardown::settings::Settings;

pub const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/teardown-dlq";

pub type Log<T> = Arc<Mutex<Vec<T>>>;

pub fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

pub fn taken<T: Clone>(log: &Log<T>) -> Vec<T> {
    log.lock().unwrap().clone()
}

/// An HTTP answer as the service would send it, so the SDK's own deserializer
/// produces the error (code, status) that teardown then classifies.
pub fn http(status: u16, body: &str) -> Response<SdkBody> {
    Response::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body.to_owned()))
}

/// The four clients, each a double holding the given rules.
pub struct Doubles<'a> {
    pub ws: &'a [&'a Rule],
    pub mgn: &'a [&'a Rule],
    pub sc: &'a [&'a Rule],
    pub sqs: &'a [&'a Rule],
}

impl Doubles<'_> {
    /// Retries are off: the SDK's retry policy is exercised end to end against the
    /// real binary; here each rule answers once per call.
    /// The test's rules come first; after them, lookups that find every named
    /// target in a state that may be terminated, untagged.
    pub fn app(&self, settings: Settings) -> App {
        let (ws_describe, ws_tags, mgn_describe, mgn_jobs, sc_search, sc_describe, sc_record) = (
            ws_describe_available(),
            ws_untagged(),
            mgn_describe_launched(),
            mgn_no_running_jobs(),
            sc_search_available(),
            sc_describe_available(),
            sc_record_untagged(),
        );
        let ws: Vec<&Rule> = self.ws.iter().copied().chain([&ws_describe, &ws_tags]).collect();
        let mgn: Vec<&Rule> = self.mgn.iter().copied().chain([&mgn_describe, &mgn_jobs]).collect();
        let sc: Vec<&Rule> = self.sc.iter().copied().chain([&sc_search, &sc_describe, &sc_record]).collect();
        let services = Services {
            workspaces: Workspaces::new(mock_client!(aws_sdk_workspaces, RuleMode::MatchAny, &ws, |c| c
                .retry_config(aws_sdk_workspaces::config::retry::RetryConfig::disabled()))),
            mgn: Mgn::new(mock_client!(aws_sdk_mgn, RuleMode::MatchAny, &mgn, |c| c
                .retry_config(aws_sdk_mgn::config::retry::RetryConfig::disabled()))),
            catalog: Catalog::new(mock_client!(aws_sdk_servicecatalog, RuleMode::MatchAny, &sc, |c| c
                .retry_config(aws_sdk_servicecatalog::config::retry::RetryConfig::disabled()))),
        };
        let dlq = DeadLetterQueue::new(
            mock_client!(aws_sdk_sqs, RuleMode::MatchAny, self.sqs, |c| c
                .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())),
            settings.dlq_url.clone(),
        );
        let caller = sts_caller(FUNCTION_USER_ID, &log());
        let mut app = App::new(services, dlq, settings).with_identity(identity(&[&caller]));
        app.clock = || time::macros::datetime!(2026-11-24 10:00:00.250 UTC);
        app
    }
}

/// The function's own principal, as `GetCallerIdentity` answers it (a role session),
/// and as SQS names it when the function sends a message (another session, same role).
pub const FUNCTION_USER_ID: &str = "AROAFUNCTIONROLE000:teardown-session-1";
pub const FUNCTION_SENDER_ID: &str = "AROAFUNCTIONROLE000:teardown-session-2";
/// Someone else in the same account: a power user allowed sqs:SendMessage on "*".
pub const OTHER_SENDER_ID: &str = "AROAPOWERUSERROLE00:mallory";

/// The function's identity, over an STS double holding `rules`.
pub fn identity(rules: &[&Rule]) -> teardown::identity::Identity {
    let client = mock_client!(aws_sdk_sts, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled()));
    teardown::identity::Identity::new(client)
}

/// `GetCallerIdentity` answering `user_id`, each call recorded.
pub fn sts_caller(user_id: &'static str, calls: &Log<()>) -> Rule {
    let calls = calls.clone();
    mock!(aws_sdk_sts::Client::get_caller_identity).then_compute_output(move |_| {
        calls.lock().unwrap().push(());
        aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput::builder()
            .user_id(user_id)
            .account("123456789012")
            .arn("arn:aws:sts::123456789012:assumed-role/teardown-function/teardown-session-1")
            .build()
    })
}

pub fn workspace(id: &str, state: WorkspaceState) -> Workspace {
    Workspace::builder().workspace_id(id).state(state).directory_id("d-1234567890").user_name("alice").build()
}

pub fn ws_describe_available() -> Rule {
    mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(|req| {
        let found = req.workspace_ids().iter().map(|id| workspace(id, WorkspaceState::Available)).collect();
        DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
    })
}

pub fn ws_untagged() -> Rule {
    mock!(aws_sdk_workspaces::Client::describe_tags).then_output(|| DescribeTagsOutput::builder().build())
}

pub fn source_server(id: &str, state: LifeCycleState, launched: bool, tags: &[(&str, &str)]) -> SourceServer {
    let mut server = SourceServer::builder()
        .source_server_id(id)
        .arn(format!("arn:aws:mgn:us-east-1:123456789012:source-server/{id}"))
        .life_cycle(LifeCycle::builder().state(state).build())
        .set_tags(Some(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()));
    if launched {
        server =
            server.launched_instance(LaunchedInstance::builder().ec2_instance_id(format!("i-{}", &id[2..])).build());
    }
    server.build()
}

pub fn mgn_describe_launched() -> Rule {
    mock!(aws_sdk_mgn::Client::describe_source_servers).then_compute_output(|req| {
        let ids = req.filters().map(|f| f.source_server_ids().to_vec()).unwrap_or_default();
        let found = ids.iter().map(|id| source_server(id, LifeCycleState::ReadyForCutover, true, &[])).collect();
        DescribeSourceServersOutput::builder().set_items(Some(found)).build()
    })
}

pub fn mgn_no_running_jobs() -> Rule {
    mock!(aws_sdk_mgn::Client::describe_jobs).then_output(|| DescribeJobsOutput::builder().build())
}

/// DescribeProvisionedProduct finds every product it is asked for, AVAILABLE: an id
/// `x` as itself (named `name-x`), a name `n` as `pp-n`, as `sc_search_available` does.
pub fn sc_describe_available() -> Rule {
    mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_compute_output(|req| {
        let (id, name) = match (req.id(), req.name()) {
            (Some(id), _) => (id.to_owned(), format!("name-{id}")),
            (None, Some(name)) => (format!("pp-{name}"), name.to_owned()),
            (None, None) => (String::new(), String::new()),
        };
        DescribeProvisionedProductOutput::builder()
            .provisioned_product_detail(
                ProvisionedProductDetail::builder()
                    .last_successful_provisioning_record_id(format!("rec-of-{id}"))
                    .id(id)
                    .name(name)
                    .status(ProvisionedProductStatus::Available)
                    .build(),
            )
            .build()
    })
}

/// DescribeRecord: a provisioning record without tags.
pub fn sc_record_untagged() -> Rule {
    mock!(aws_sdk_servicecatalog::Client::describe_record).then_compute_output(|req| {
        let id = req.id().unwrap_or_default().to_owned();
        DescribeRecordOutput::builder().record_detail(RecordDetail::builder().record_id(id).build()).build()
    })
}

/// The authoritative lookups of a catalog whose products are `products`: Describe
/// gives each one's status and creation time, DescribeRecord its tags.
pub fn sc_authoritative(products: Vec<ProvisionedProductAttribute>) -> (Rule, Rule) {
    fn find(products: &[ProvisionedProductAttribute], id: &str) -> ProvisionedProductAttribute {
        products.iter().find(|p| p.id() == Some(id)).cloned().unwrap_or_else(|| panic!("no product {id}"))
    }
    let all = products.clone();
    let describe =
        mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_compute_output(move |req| {
            let p = find(&all, req.id().unwrap_or_default());
            DescribeProvisionedProductOutput::builder()
                .provisioned_product_detail(
                    ProvisionedProductDetail::builder()
                        .id(p.id().unwrap_or_default())
                        .name(p.name().unwrap_or_default())
                        .set_status(p.status().cloned())
                        .set_created_time(p.created_time().cloned())
                        .set_product_id(p.product_id().map(str::to_owned))
                        .last_successful_provisioning_record_id(format!("rec-of-{}", p.id().unwrap_or_default()))
                        .build(),
                )
                .build()
        });
    let record = mock!(aws_sdk_servicecatalog::Client::describe_record).then_compute_output(move |req| {
        let p = find(&products, req.id().unwrap_or_default().trim_start_matches("rec-of-"));
        let tags = p.tags().iter().map(|t| RecordTag::builder().key(t.key()).value(t.value()).build()).collect();
        let detail = RecordDetail::builder().record_id(req.id().unwrap_or_default()).set_record_tags(Some(tags));
        DescribeRecordOutput::builder().record_detail(detail.build()).build()
    });
    (describe, record)
}

pub fn product(
    id: &str,
    name: &str,
    status: ProvisionedProductStatus,
    tags: &[(&str, &str)],
) -> ProvisionedProductAttribute {
    ProvisionedProductAttribute::builder()
        .id(id)
        .name(name)
        .status(status)
        .product_id("prod-sandbox")
        .set_tags(Some(tags.iter().map(|(k, v)| ScTag::builder().key(*k).value(*v).build().unwrap()).collect()))
        .build()
}

/// Finds the product a `SearchQuery` of `id:…` or `name:…` asks for, AVAILABLE.
pub fn sc_search_available() -> Rule {
    mock!(aws_sdk_servicecatalog::Client::search_provisioned_products).then_compute_output(|req| {
        let query = req.filters().and_then(|f| f.values().next()).and_then(|v| v.first()).cloned().unwrap_or_default();
        let found = match query.split_once(':') {
            Some(("id", id)) => vec![product(id, &format!("name-{id}"), ProvisionedProductStatus::Available, &[])],
            Some(("name", name)) => {
                vec![product(&format!("pp-{name}"), name, ProvisionedProductStatus::Available, &[])]
            }
            _ => Vec::new(),
        };
        SearchProvisionedProductsOutput::builder().set_provisioned_products(Some(found)).build()
    })
}

pub fn settings() -> Settings {
    Settings { dlq_url: Some(DLQ.to_owned()), ..Settings::default() }
}

pub async fn invoke(app: &App, payload: Value) -> Result<Value, lambda_runtime::Error> {
    let mut context = Context::default();
    context.request_id = "req-1".to_owned();
    handle(app, LambdaEvent::new(payload, context)).await
}

/// An SQS event as Lambda delivers it, each message sent by the function itself.
pub fn sqs_event<S: AsRef<str>>(records: &[(S, Value)]) -> Value {
    sqs_event_from(FUNCTION_SENDER_ID, records)
}

/// An SQS event whose messages `sender` sent (`attributes.SenderId`).
pub fn sqs_event_from<S: AsRef<str>>(sender: &str, records: &[(S, Value)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id.as_ref(),
                "receiptHandle": "handle",
                "body": match body { Value::String(s) => s.clone(), other => other.to_string() },
                "attributes": {"ApproximateReceiveCount": "1", "SenderId": sender},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:teardown-requests",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

pub fn ws_request(ids: &[String]) -> Value {
    json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": ids.iter().map(|i| json!({"WorkspaceId": i})).collect::<Vec<_>>()}})
}

pub fn ws_ids(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("ws-{prefix}{i:07}")).collect()
}

pub fn source_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("s-{i:017}")).collect()
}

/// A WorkSpaces double that records the ids of every TerminateWorkspaces call and
/// accepts them all.
pub fn ws_terminate_ok(calls: &Log<Vec<String>>) -> Rule {
    let calls = calls.clone();
    mock!(aws_sdk_workspaces::Client::terminate_workspaces).then_compute_output(move |req| {
        let ids = req.terminate_workspace_requests().iter().map(|r| r.workspace_id().to_owned()).collect();
        calls.lock().unwrap().push(ids);
        TerminateWorkspacesOutput::builder().build()
    })
}

/// Records each dead-letter message: (queue url, body as JSON, operation, outcome).
pub fn sqs_send_ok(sent: &Log<(String, Value, String, String)>) -> Rule {
    let sent = sent.clone();
    mock!(aws_sdk_sqs::Client::send_message).then_compute_output(move |req| {
        let attr = |name: &str| {
            req.message_attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.string_value())
                .unwrap_or_default()
                .to_owned()
        };
        let body = serde_json::from_str(req.message_body().unwrap_or_default()).unwrap_or(Value::Null);
        sent.lock().unwrap().push((
            req.queue_url().unwrap_or_default().to_owned(),
            body,
            attr("operation"),
            attr("outcome"),
        ));
        SendMessageOutput::builder().message_id("dlq-1").build()
    })
}

pub fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

pub fn target_outcomes(report: &Value, request: usize) -> Vec<(String, String)> {
    report["requests"][request]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_owned(), t["outcome"].as_str().unwrap().to_owned()))
        .collect()
}

pub fn sc_terminate_recording(tokens: &Log<(Option<String>, Option<String>, Option<String>)>) -> Rule {
    let tokens = tokens.clone();
    mock!(aws_sdk_servicecatalog::Client::terminate_provisioned_product).then_compute_output(move |req| {
        tokens.lock().unwrap().push((
            req.provisioned_product_id().map(str::to_owned),
            req.provisioned_product_name().map(str::to_owned),
            req.terminate_token().map(str::to_owned),
        ));
        TerminateProvisionedProductOutput::builder()
            .record_detail(RecordDetail::builder().record_id("rec-1").status(RecordStatus::Created).build())
            .build()
    })
}

pub const REQUESTS: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/teardown-requests";

/// The request queue, over an SQS double holding `rules`.
pub fn request_queue(rules: &[&Rule]) -> teardown::request_queue::RequestQueue {
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled()));
    teardown::request_queue::RequestQueue::new(client, Some(REQUESTS.to_owned()))
}

/// Records each follow-up check sent: (body, delay).
pub fn checks_sent(sent: &Log<(Value, i32)>) -> Rule {
    let sent = sent.clone();
    mock!(aws_sdk_sqs::Client::send_message).then_compute_output(move |req| {
        let body = serde_json::from_str(req.message_body().unwrap_or_default()).unwrap_or(Value::Null);
        sent.lock().unwrap().push((body, req.delay_seconds().unwrap_or(0)));
        SendMessageOutput::builder().message_id("check-1").build()
    })
}

/// The audit bus, over an EventBridge double holding `rules`.
pub fn audit_bus(rules: &[&Rule]) -> teardown::audit::AuditBus {
    let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_eventbridge::config::retry::RetryConfig::disabled()));
    teardown::audit::AuditBus::new(client, Some("teardown-audit".to_owned()))
}

/// Records each audit event put: (source, detail type, detail, bus); answers every entry accepted.
pub fn events_put(put: &Log<(String, String, Value, String)>) -> Rule {
    let put = put.clone();
    mock!(aws_sdk_eventbridge::Client::put_events).then_compute_output(move |req| {
        let mut out = aws_sdk_eventbridge::operation::put_events::PutEventsOutput::builder();
        for e in req.entries() {
            put.lock().unwrap().push((
                e.source().unwrap_or_default().to_owned(),
                e.detail_type().unwrap_or_default().to_owned(),
                serde_json::from_str(e.detail().unwrap_or_default()).unwrap_or(Value::Null),
                e.event_bus_name().unwrap_or_default().to_owned(),
            ));
            out = out.entries(aws_sdk_eventbridge::types::PutEventsResultEntry::builder().event_id("ev").build());
        }
        out.build()
    })
}

/// A check as teardown writes it, for `targets` (id, job id, record id).
pub fn check(
    operation: &str,
    targets: &[(&str, Option<&str>, Option<&str>)],
    attempt: u32,
    accepted_at: &str,
) -> Value {
    let targets: Vec<Value> = targets
        .iter()
        .map(|(id, job, record)| {
            let mut t = json!({"id": id});
            if let Some(job) = job {
                t["jobId"] = json!(job);
            }
            if let Some(record) = record {
                t["recordId"] = json!(record);
            }
            t
        })
        .collect();
    let ids: Vec<&str> = targets.iter().filter_map(|t| t["id"].as_str()).collect();
    let request = match operation {
        "TerminateWorkspaces" => ws_request(&ids.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        "TerminateTargetInstances" => json!({"operation": operation, "input": {"sourceServerIDs": ids}}),
        _ => json!({"operation": operation, "input": {"ProvisionedProductId": ids[0]}}),
    };
    json!({"confirm": {
        "operation": operation, "targets": targets, "acceptedAt": accepted_at, "attempt": attempt,
        "source": {"kind": "sqs", "messageId": "m-original", "eventSourceArn": "arn:aws:sqs:us-east-1:123456789012:teardown-requests", "receiveCount": 1},
        "request": request
    }})
}
