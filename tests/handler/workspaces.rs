//! WorkSpaces: the exact calls, ids shared across messages, the selection and guards, what an answer means for each id.

use crate::doubles::*;
use crate::shared::*;
use aws_sdk_workspaces::operation::describe_workspaces_connection_status::DescribeWorkspacesConnectionStatusOutput;
use aws_sdk_workspaces::types::{FailedWorkspaceChangeRequest, Tag as WsTag, WorkspaceConnectionStatus};

#[tokio::test]
async fn twenty_six_workspaces_are_terminated_in_calls_of_25_and_1() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    let ids = ws_ids(26, "a");

    let report = invoke(&app, ws_request(&ids)).await.unwrap();

    let mut sizes: Vec<usize> = taken(&calls).iter().map(Vec::len).collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 25]);
    let mut called: Vec<String> = taken(&calls).concat();
    called.sort();
    assert_eq!(called, ids, "every id exactly once");
    assert_eq!(report["requests"][0]["outcome"], "terminated");
    assert_eq!(report["counts"]["targets"]["terminated"], 26);
}

#[tokio::test]
async fn ids_from_different_messages_share_calls_and_each_message_gets_its_own_outcomes() {
    let calls = log();
    let ids = ws_ids(30, "b");
    let (first, second) = ids.split_at(15);
    // One id of the second message is refused: it went between the lookup and the call.
    let gone = second[0].clone();
    let describe = {
        let gone = gone.clone();
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            let asked = req.workspace_ids();
            let after_call = asked == [gone.clone()];
            let found = if after_call {
                Vec::new()
            } else {
                asked.iter().map(|id| workspace(id, WorkspaceState::Available)).collect()
            };
            DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
        })
    };
    let refusing = {
        let calls = calls.clone();
        let gone = gone.clone();
        mock!(aws_sdk_workspaces::Client::terminate_workspaces).then_compute_output(move |req| {
            let ids: Vec<String> =
                req.terminate_workspace_requests().iter().map(|r| r.workspace_id().to_owned()).collect();
            calls.lock().unwrap().push(ids.clone());
            let mut out = TerminateWorkspacesOutput::builder();
            if ids.contains(&gone) {
                out = out.failed_requests(
                    FailedWorkspaceChangeRequest::builder()
                        .workspace_id(&gone)
                        .error_code("400")
                        .error_message("could not be found")
                        .build(),
                );
            }
            out.build()
        })
    };
    let app = Doubles { ws: &[&refusing, &describe], mgn: &[], sc: &[], sqs: &[] }.app(settings());

    let response = invoke(&app, sqs_event(&[("m-1", ws_request(first)), ("m-2", ws_request(second))])).await.unwrap();

    assert_eq!(taken(&calls).len(), 2, "30 distinct ids from two messages: ⌈30/25⌉ calls");
    assert!(failures(&response).is_empty());
    // The attribution is visible in the per-request report of a direct invocation too.
    calls.lock().unwrap().clear();
    let report = invoke(&app, json!({"requests": [ws_request(first), ws_request(second)]})).await.unwrap();
    assert_eq!(taken(&calls).len(), 2);
    let first_outcomes = target_outcomes(&report, 0);
    let second_outcomes = target_outcomes(&report, 1);
    assert_eq!(
        first_outcomes.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        first.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(first_outcomes.iter().all(|(_, o)| o == "terminated"));
    assert_eq!(second_outcomes[0], (gone.clone(), "not_found".to_owned()));
    assert!(second_outcomes[1..].iter().all(|(_, o)| o == "terminated"));
    assert_eq!(second_outcomes.len(), 15);
}

#[tokio::test]
async fn failed_requests_map_per_id_and_only_the_refused_ones_are_dead_lettered() {
    let [a, b, c]: [String; 3] = ["ws-aaaaaaaa", "ws-bbbbbbbb", "ws-cccccccc"].map(String::from);
    let terminate = {
        let (b, c) = (b.clone(), c.clone());
        mock!(aws_sdk_workspaces::Client::terminate_workspaces).then_output(move || {
            TerminateWorkspacesOutput::builder()
                .failed_requests(
                    FailedWorkspaceChangeRequest::builder()
                        .workspace_id(&b)
                        .error_code("ResourceNotFound.WorkSpace")
                        .error_message("gone")
                        .build(),
                )
                .failed_requests(
                    FailedWorkspaceChangeRequest::builder()
                        .workspace_id(&c)
                        .error_code("InvalidResourceState")
                        .error_message("The WorkSpace is SUSPENDED")
                        .build(),
                )
                .build()
        })
    };
    let described = log::<Vec<String>>();
    let describe = {
        let (c, described) = (c.clone(), described.clone());
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            let asked = req.workspace_ids().to_vec();
            let first = described.lock().unwrap().is_empty();
            described.lock().unwrap().push(asked.clone());
            // Before the call all three exist; after it, only c does.
            let found = if first {
                asked.iter().map(|id| workspace(id, WorkspaceState::Available)).collect()
            } else {
                vec![workspace(&c, WorkspaceState::Available)]
            };
            DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
        })
    };
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&terminate, &describe], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());

    let response = invoke(&app, sqs_event(&[("m-1", ws_request(&[a.clone(), b.clone(), c.clone()]))])).await.unwrap();

    assert!(failures(&response).is_empty(), "a refusal is final: not redelivered");
    assert_eq!(
        taken(&described),
        vec![vec![a.clone(), b.clone(), c.clone()], vec![b.clone(), c.clone()]],
        "looked up before the call; after it, only the failed ids"
    );
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    let (url, body, operation, outcome) = &sent[0];
    assert_eq!((url.as_str(), operation.as_str(), outcome.as_str()), (DLQ, "TerminateWorkspaces", "rejected"));
    assert_eq!(
        body["failedTargets"],
        json!([{"id": c, "code": "InvalidResourceState", "message": "The WorkSpace is SUSPENDED"}])
    );
    assert_eq!(body["retryRequest"], ws_request(std::slice::from_ref(&c)));
    assert_eq!(body["error"], json!({"code": "InvalidResourceState", "message": "The WorkSpace is SUSPENDED"}));
}

#[tokio::test]
async fn idle_workspaces_are_found_across_pages_and_a_suspended_one_is_skipped() {
    // Three pages: idle 40 days, busy 10 days ago, never connected, suspended and idle.
    let pages = [
        vec![workspace("ws-idle0040", WorkspaceState::Available)],
        vec![workspace("ws-busy0010", WorkspaceState::Available), workspace("ws-never000", WorkspaceState::Available)],
        vec![workspace("ws-susp0100", WorkspaceState::Suspended)],
    ];
    let asked_directory = log();
    let describe = {
        let asked_directory = asked_directory.clone();
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            asked_directory.lock().unwrap().push(req.directory_id().map(str::to_owned));
            let page = page_of(req.next_token());
            DescribeWorkspacesOutput::builder()
                .set_workspaces(Some(pages[page].clone()))
                .set_next_token(next_token(page))
                .build()
        })
    };
    let connections = mock!(aws_sdk_workspaces::Client::describe_workspaces_connection_status).then_output(|| {
        let status = |id: &str, days: i64| {
            WorkspaceConnectionStatus::builder()
                .workspace_id(id)
                .last_known_user_connection_timestamp(days_ago(days))
                .build()
        };
        DescribeWorkspacesConnectionStatusOutput::builder()
            .workspaces_connection_status(status("ws-idle0040", 40))
            .workspaces_connection_status(status("ws-busy0010", 10))
            .workspaces_connection_status(status("ws-susp0100", 100))
            // Never connected: a status, and no timestamp.
            .workspaces_connection_status(WorkspaceConnectionStatus::builder().workspace_id("ws-never000").build())
            .build()
    });
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let dated = log();
    let create_tags = {
        let dated = dated.clone();
        mock!(aws_sdk_workspaces::Client::create_tags).then_compute_output(move |req| {
            let tags: Vec<(String, String)> =
                req.tags().iter().map(|t| (t.key().to_owned(), t.value().unwrap_or("").to_owned())).collect();
            dated.lock().unwrap().push((req.resource_id().unwrap_or("").to_owned(), tags));
            aws_sdk_workspaces::operation::create_tags::CreateTagsOutput::builder().build()
        })
    };
    let app = Doubles { ws: &[&describe, &connections, &terminate, &create_tags], mgn: &[], sc: &[], sqs: &[] }
        .app(settings());

    let report = invoke(
        &app,
        json!({"operation": "TerminateWorkspaces", "select": {"directoryId": "d-1234567890", "idleDays": 30}}),
    )
    .await
    .unwrap();

    assert_eq!(
        taken(&dated),
        vec![("ws-never000".to_owned(), vec![("teardown:first-seen".to_owned(), "2026-11-24".to_owned())])],
        "the never-connected WorkSpace is dated, idle from today; the suspended one is not touched"
    );

    assert_eq!(taken(&asked_directory).len(), 3, "every page is read");
    assert!(taken(&asked_directory).iter().all(|d| d.as_deref() == Some("d-1234567890")), "narrowed on the server");
    assert_eq!(
        taken(&calls),
        vec![vec!["ws-idle0040".to_owned()]],
        "only the idle, terminable WorkSpace is terminated"
    );
    let targets = report["requests"][0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "the busy and the never-connected are not selected: {targets:?}");
    assert_eq!(targets[0]["id"], "ws-idle0040");
    assert_eq!(targets[0]["outcome"], "terminated");
    assert_eq!(targets[0]["reason"], "matched: directoryId d-1234567890, idle 40 days (≥ 30)");
    assert_eq!(targets[1]["id"], "ws-susp0100");
    assert_eq!(targets[1]["outcome"], "skipped");
    assert_eq!(report["requests"][0]["outcome"], "terminated");
}

#[tokio::test]
async fn a_named_target_that_is_protected_or_suspended_gets_no_call() {
    let describe = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(|req| {
        let found = req
            .workspace_ids()
            .iter()
            .map(|id| {
                workspace(id, if id == "ws-susp0001" { WorkspaceState::Suspended } else { WorkspaceState::Available })
            })
            .collect();
        DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
    });
    let tags = mock!(aws_sdk_workspaces::Client::describe_tags)
        .match_requests(|req| req.resource_id() == Some("ws-prot0001"))
        .then_output(|| {
            DescribeTagsOutput::builder()
                .tag_list(WsTag::builder().key("teardown:protect").value("legal hold").build().unwrap())
                .build()
        });
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&describe, &tags, &terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());

    let report = invoke(&app, ws_request(&["ws-prot0001".into(), "ws-susp0001".into()])).await.unwrap();

    assert!(taken(&calls).is_empty(), "no terminate call at all");
    assert_eq!(report["requests"][0]["targets"][0]["outcome"], "protected");
    assert_eq!(report["requests"][0]["targets"][0]["reason"], "tag teardown:protect=\"legal hold\": never terminated");
    assert_eq!(report["requests"][0]["targets"][1]["outcome"], "skipped");
    assert_eq!(report["requests"][0]["outcome"], "skipped");
}

#[tokio::test]
async fn a_workspace_whose_tags_cannot_be_read_is_not_terminated() {
    let tags = mock!(aws_sdk_workspaces::Client::describe_tags)
        .then_http_response(|| http(400, r#"{"__type":"AccessDeniedException","message":"not allowed"}"#));
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&tags, &terminate], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());

    let report = invoke(&app, ws_request(&["ws-tags0001".into()])).await.unwrap();

    assert!(taken(&calls).is_empty(), "without its tags, protection cannot be checked: no call");
    assert_eq!(taken(&sent)[0].1["failedTargets"][0]["code"], "AccessDeniedException");
    assert_eq!(report["requests"][0]["outcome"], "rejected");
    assert_eq!(report["requests"][0]["targets"][0]["error"]["code"], "AccessDeniedException");
}

/// Rule 5: a WorkSpace that went between a selection's listing and its tag lookup
/// is dropped from the selection, not a failure of the whole scheduled cleanup.
#[tokio::test]
async fn a_workspace_gone_before_its_tag_lookup_is_dropped_and_the_rest_are_terminated() {
    let listed = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_output(|| {
        DescribeWorkspacesOutput::builder()
            .workspaces(workspace("ws-stays0001", WorkspaceState::Available))
            .workspaces(workspace("ws-gone00001", WorkspaceState::Available))
            .build()
    });
    let tags_gone = mock!(aws_sdk_workspaces::Client::describe_tags)
        .match_requests(|req| req.resource_id() == Some("ws-gone00001"))
        .then_http_response(|| http(400, r#"{"__type":"ResourceNotFoundException","message":"not found"}"#));
    let tags = mock!(aws_sdk_workspaces::Client::describe_tags).then_output(|| {
        DescribeTagsOutput::builder().tag_list(WsTag::builder().key("env").value("sandbox").build().unwrap()).build()
    });
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&listed, &tags_gone, &tags, &terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());

    let report = invoke(&app, json!({"operation": "TerminateWorkspaces", "select": {"tags": {"env": "sandbox"}}}))
        .await
        .unwrap();

    assert_eq!(taken(&calls), vec![vec!["ws-stays0001".to_owned()]]);
    assert_eq!(target_outcomes(&report, 0), vec![("ws-stays0001".to_owned(), "terminated".to_owned())]);
    assert_eq!(report["requests"][0]["outcome"], "terminated");
}
