//! Lookups that grow with what is terminated, not with the fleet (issue 13).

use aws_sdk_resourcegroupstagging::operation::get_resources::GetResourcesOutput;
use aws_sdk_resourcegroupstagging::types::ResourceTagMapping;
use aws_sdk_workspaces::types::Tag as WsTag;

use crate::doubles::*;

/// Counts each call of one operation.
fn counter() -> Arc<Mutex<usize>> {
    Arc::new(Mutex::new(0))
}

#[tokio::test]
async fn the_named_workspaces_of_a_batch_are_looked_up_together() {
    let asked = log::<Vec<String>>();
    let describe = {
        let asked = asked.clone();
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            asked.lock().unwrap().push(req.workspace_ids().to_vec());
            let found = req.workspace_ids().iter().map(|id| workspace(id, WorkspaceState::Available)).collect();
            DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
        })
    };
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&describe, &terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    let records: Vec<(String, Value)> =
        (0..10).map(|i| (format!("m-{i}"), ws_request(&ws_ids(3, &format!("{i}"))))).collect();

    invoke(&app, sqs_event(&records)).await.unwrap();

    let asked = taken(&asked);
    assert_eq!(asked.len(), 2, "30 WorkSpaces of 10 messages: ⌈30/25⌉ DescribeWorkspaces, not 10");
    assert_eq!(asked.iter().map(Vec::len).sum::<usize>(), 30);
    assert_eq!(taken(&calls).len(), 2, "and ⌈30/25⌉ TerminateWorkspaces");
}

/// A selection by tags over 1,000 WorkSpaces of which 20 match: the tag index finds
/// the 20, and only they are described and have their tags read (authoritatively)
/// before they are terminated.
#[tokio::test]
async fn a_selection_over_a_thousand_workspaces_makes_calls_for_the_twenty_that_match() {
    let fleet: Vec<String> = ws_ids(1000, "s");
    let matching: Vec<String> = fleet.iter().step_by(50).cloned().collect();
    assert_eq!(matching.len(), 20);
    let (get_resources, describes, tag_reads) = (counter(), counter(), counter());
    let tagging = {
        let (count, matching) = (get_resources.clone(), matching.clone());
        mock!(aws_sdk_resourcegroupstagging::Client::get_resources).then_compute_output(move |req| {
            *count.lock().unwrap() += 1;
            // Ten to a page, as the index pages: every page must be read.
            let page: usize = req.pagination_token().and_then(|t| t.parse().ok()).unwrap_or(0);
            let mut out = GetResourcesOutput::builder();
            for id in matching.iter().skip(page * 10).take(10) {
                out = out.resource_tag_mapping_list(
                    ResourceTagMapping::builder()
                        .resource_arn(format!("arn:aws:workspaces:us-east-1:123456789012:workspace/{id}"))
                        .build(),
                );
            }
            if (page + 1) * 10 < matching.len() {
                out = out.pagination_token((page + 1).to_string());
            }
            out.build()
        })
    };
    let describe = {
        let count = describes.clone();
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            *count.lock().unwrap() += 1;
            let found = req.workspace_ids().iter().map(|id| workspace(id, WorkspaceState::Available)).collect();
            DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
        })
    };
    let tags = {
        let count = tag_reads.clone();
        mock!(aws_sdk_workspaces::Client::describe_tags).then_compute_output(move |_| {
            *count.lock().unwrap() += 1;
            DescribeTagsOutput::builder()
                .tag_list(WsTag::builder().key("env").value("sandbox").build().unwrap())
                .build()
        })
    };
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let mut app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    let ws_client = mock_client!(aws_sdk_workspaces, RuleMode::MatchAny, &[&describe, &tags, &terminate], |c| c
        .retry_config(aws_sdk_workspaces::config::retry::RetryConfig::disabled()));
    let tag_client = mock_client!(aws_sdk_resourcegroupstagging, RuleMode::MatchAny, &[&tagging], |c| c
        .retry_config(aws_sdk_resourcegroupstagging::config::retry::RetryConfig::disabled()));
    app.services.workspaces = Workspaces::new(ws_client).with_tagging(tag_client);

    let report = invoke(&app, json!({"operation": "TerminateWorkspaces", "select": {"tags": {"env": "sandbox"}}}))
        .await
        .unwrap();

    assert_eq!(report["counts"]["targets"]["terminated"], 20);
    let mut terminated: Vec<String> = taken(&calls).concat();
    terminated.sort();
    assert_eq!(terminated, matching);
    let counts =
        (*get_resources.lock().unwrap(), *describes.lock().unwrap(), *tag_reads.lock().unwrap(), taken(&calls).len());
    assert_eq!(
        counts,
        (2, 1, 20, 1),
        "GetResources (every page), DescribeWorkspaces, DescribeTags, TerminateWorkspaces"
    );
}

/// An in-process WorkSpaces that holds every answer for a moment and counts the
/// calls side by side: the bound on calls in flight is read where it matters, at
/// the service. With `release_at`, answers are held until that many calls are in
/// flight together (or 5 s have passed): calls made one after another can never
/// reach it, however fast or slow the machine.
#[derive(Clone, Debug, Default)]
struct HeldWorkspaces {
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
    calls: Log<String>,
    release_at: usize,
    released: Arc<std::sync::atomic::AtomicBool>,
}

impl aws_smithy_runtime_api::client::http::HttpConnector for HeldWorkspaces {
    fn call(
        &self,
        request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        use std::sync::atomic::Ordering::SeqCst;
        let me = self.clone();
        let operation = request.headers().get("x-amz-target").unwrap_or_default().to_owned();
        let body: Value = request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::new(async move {
            let now = me.in_flight.fetch_add(1, SeqCst) + 1;
            me.most.fetch_max(now, SeqCst);
            me.calls.lock().unwrap().push(operation.clone());
            let waited = std::time::Instant::now();
            while me.release_at > 0 && !me.released.load(SeqCst) && waited.elapsed().as_secs() < 5 {
                if me.in_flight.load(SeqCst) >= me.release_at {
                    me.released.store(true, SeqCst);
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            me.in_flight.fetch_sub(1, SeqCst);
            let answer = match operation.as_str() {
                "WorkspacesService.DescribeWorkspaces" => {
                    let ids = body["WorkspaceIds"].as_array().cloned().unwrap_or_default();
                    let found: Vec<Value> =
                        ids.iter().map(|id| json!({"WorkspaceId": id, "State": "AVAILABLE"})).collect();
                    json!({ "Workspaces": found })
                }
                "WorkspacesService.DescribeTags" => json!({"TagList": []}),
                "WorkspacesService.TerminateWorkspaces" => json!({"FailedRequests": []}),
                _ => json!({}),
            };
            Ok(http(200, &answer.to_string()))
        })
    }
}

fn held_config(held: &HeldWorkspaces) -> aws_config::SdkConfig {
    use aws_smithy_runtime_api::client::http::{SharedHttpConnector, http_client_fn};
    let held = held.clone();
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new("AKID", "SECRET", None, None, "test"),
        ))
        .http_client(http_client_fn(move |_, _| SharedHttpConnector::new(held.clone())))
        .build()
}

/// `MAX_CALLS_IN_FLIGHT` is one bound per service for the whole invocation: ten
/// requests naming five WorkSpaces each need 54 calls, and however many requests
/// and lookups run side by side, no more than the setting are in flight at once.
#[tokio::test]
async fn calls_in_flight_to_one_service_never_pass_the_setting() {
    let held = HeldWorkspaces::default();
    let bound = 6;
    let mut app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    app.services.workspaces = Services::from_conf(&held_config(&held), bound).workspaces;
    let records: Vec<(String, Value)> =
        (0..10).map(|i| (format!("m-{i}"), ws_request(&ws_ids(5, &format!("b{i}"))))).collect();

    let response = invoke(&app, sqs_event(&records)).await.unwrap();

    assert_eq!(failures(&response), Vec::<String>::new(), "every record settled");
    let calls = taken(&held.calls);
    let count = |op: &str| calls.iter().filter(|c| c.as_str() == format!("WorkspacesService.{op}")).count();
    assert_eq!(
        (count("DescribeWorkspaces"), count("DescribeTags"), count("TerminateWorkspaces")),
        (2, 50, 2),
        "every lookup and terminate call was made"
    );
    let most = held.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(most <= bound, "{most} calls were in flight to WorkSpaces at once; the bound is {bound}");
    assert!(most > 1, "calls run side by side up to the bound, not one at a time");
}

/// Sixty named WorkSpaces need 63 lookups (3 `DescribeWorkspaces`, 60 `DescribeTags`):
/// with the default bound they are all asked at once, one round of latency before
/// the terminate calls, not one round per 25 ids.
#[tokio::test]
async fn the_lookups_of_sixty_named_workspaces_are_all_in_flight_at_once() {
    let held = HeldWorkspaces { release_at: 63, ..HeldWorkspaces::default() };
    let mut app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    app.services.workspaces =
        Services::from_conf(&held_config(&held), teardown::services::DEFAULT_CALLS_IN_FLIGHT).workspaces;

    let report = invoke(&app, ws_request(&ws_ids(60, "w"))).await.unwrap();

    assert_eq!(report["counts"]["targets"]["terminated"], 60);
    let most = held.most.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(most, 63, "every lookup was in flight together");
}

/// The named WorkSpaces of a batch are described 25 to a call, side by side: when
/// one of those calls is throttled, no WorkSpace of the batch is judged on the
/// answers of the others. Every request is retried whole (transient), nothing is
/// terminated and nothing is reported gone.
#[tokio::test]
async fn one_throttled_describe_call_of_many_terminates_nothing_and_calls_nothing_gone() {
    let ids = ws_ids(60, "t");
    let throttled_id = ids[30].clone();
    let throttled = mock!(aws_sdk_workspaces::Client::describe_workspaces)
        .match_requests(move |req| req.workspace_ids().contains(&throttled_id))
        .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&throttled, &terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    let records: Vec<(String, Value)> =
        ids.chunks(20).enumerate().map(|(i, chunk)| (format!("m-{i}"), ws_request(chunk))).collect();

    let response = invoke(&app, sqs_event(&records)).await.unwrap();

    assert_eq!(throttled.num_calls(), 1, "the second of three DescribeWorkspaces calls was throttled");
    assert_eq!(failures(&response), vec!["m-0", "m-1", "m-2"], "every message is redelivered");
    assert!(taken(&calls).is_empty(), "no TerminateWorkspaces call on a partial lookup");
}

/// A page of `DescribeWorkspaces` that leaves ids out is not an answer that they are
/// gone: the `NextToken` is followed, and every named WorkSpace is terminated.
#[tokio::test]
async fn a_paged_describe_answer_is_read_to_its_end_before_anything_is_called_gone() {
    let ids = ws_ids(20, "p");
    let pages = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(|req| {
        let (page, next) = match req.next_token() {
            None => (&req.workspace_ids()[..10], Some("page-2")),
            Some(_) => (&req.workspace_ids()[10..], None),
        };
        let found = page.iter().map(|id| workspace(id, WorkspaceState::Available)).collect();
        DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).set_next_token(next.map(str::to_owned)).build()
    });
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&pages, &terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());

    let report = invoke(&app, ws_request(&ids)).await.unwrap();

    assert_eq!(pages.num_calls(), 2, "both pages were read");
    assert_eq!(report["counts"]["targets"]["terminated"], 20, "{report}");
    let mut terminated = taken(&calls).concat();
    terminated.sort();
    assert_eq!(terminated, ids);
}

/// A `DescribeWorkspaces` that keeps paging without an end is not an answer: after
/// one page more than the ids asked for, the lookup fails `transient` and nothing is
/// terminated or called gone.
#[tokio::test]
async fn a_describe_that_never_stops_paging_terminates_nothing() {
    let endless = mock!(aws_sdk_workspaces::Client::describe_workspaces)
        .then_output(|| DescribeWorkspacesOutput::builder().set_workspaces(Some(vec![])).next_token("more").build());
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&endless, &terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());

    let response = invoke(&app, sqs_event(&[("m-1", ws_request(&ws_ids(3, "e")))])).await.unwrap();

    assert_eq!(endless.num_calls(), 4, "three ids: at most four pages");
    assert_eq!(failures(&response), vec!["m-1"], "redelivered");
    assert!(taken(&calls).is_empty(), "no TerminateWorkspaces call");
}
