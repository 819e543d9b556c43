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
    let refs: Vec<(&str, Value)> = records.iter().map(|(id, v)| (id.as_str(), v.clone())).collect();

    invoke(&app, sqs_event(&refs)).await.unwrap();

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
