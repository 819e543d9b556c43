//! docs/reference.md, "Accounts, regions and fan-out" with doubles: which accounts a request may name, and fan-outs.

use crate::doubles::*;

fn fanning_app(settings: Settings, batch: &Rule) -> App {
    Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[] }.app(settings).with_request_queue(request_queue(&[batch]))
}

/// Records each SendMessageBatch: the bodies of its entries; answers all sent.
fn batches_sent(sent: &Log<Vec<Value>>) -> Rule {
    let sent = sent.clone();
    mock!(aws_sdk_sqs::Client::send_message_batch).then_compute_output(move |req| {
        let bodies =
            req.entries().iter().map(|e| serde_json::from_str(e.message_body()).unwrap_or(Value::Null)).collect();
        sent.lock().unwrap().push(bodies);
        aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput::builder()
            .set_successful(Some(Vec::new()))
            .set_failed(Some(Vec::new()))
            .build()
            .unwrap()
    })
}

#[tokio::test]
async fn an_account_not_allowed_is_refused_before_any_call() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let describes = log::<Vec<String>>();
    let describe = {
        let describes = describes.clone();
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            describes.lock().unwrap().push(req.workspace_ids().to_vec());
            DescribeWorkspacesOutput::builder().build()
        })
    };
    let sent = log();
    let send = sqs_send_ok(&sent);
    let settings = Settings { allowed_accounts: vec!["111122223333".into()], ..settings() };
    let app = Doubles { ws: &[&describe, &terminate], mgn: &[], sc: &[], sqs: &[&send] }.app(settings);
    let mut request = ws_request(&ws_ids(1, "a"));
    request["account"] = json!("999988887777");

    let report = invoke(&app, request).await.unwrap();

    assert_eq!(report["requests"][0]["outcome"], "invalid");
    assert!(taken(&calls).is_empty() && taken(&describes).is_empty(), "nothing is called");
    let sent = taken(&sent);
    assert_eq!(sent[0].1["error"]["code"], "AccountNotAllowed");
}

#[tokio::test]
async fn a_fan_out_sends_one_child_per_pair_ten_to_a_call_and_ends_fanned_out() {
    let sent = log();
    let batch = batches_sent(&sent);
    let accounts: Vec<String> = (0..6).map(|i| format!("11112222{i:04}")).collect();
    let settings =
        Settings { allowed_accounts: accounts.clone(), request_queue_url: Some(REQUESTS.into()), ..settings() };
    let app = fanning_app(settings, &batch);
    let mut request = ws_request(&ws_ids(1, "f"));
    request["accounts"] = json!(accounts);
    request["regions"] = json!(["eu-west-1", "us-east-2"]);
    request["dryRun"] = json!(true);

    let report = invoke(&app, sqs_event(&[("m-1", request.clone())])).await;
    assert!(failures(&report.unwrap()).is_empty());
    let report = invoke(&app, request).await.unwrap();

    let sent = taken(&sent);
    let mut sizes: Vec<usize> = sent.iter().map(Vec::len).collect();
    sizes.sort();
    assert_eq!(sizes, vec![2, 2, 10, 10], "12 children, ⌈12/10⌉ calls, twice");
    let children: Vec<&Value> = sent.iter().flatten().collect();
    let child = children
        .iter()
        .find(|c| c["account"] == "111122220000" && c["region"] == "eu-west-1")
        .expect("the child of the first pair");
    assert_eq!((child["account"].as_str(), child["region"].as_str()), (Some("111122220000"), Some("eu-west-1")));
    assert_eq!(child["dryRun"], true, "a dry-run fan-out sends dry-run children");
    assert!(child.get("accounts").is_none() && child.get("regions").is_none());
    assert_eq!(child["origin"].as_str().map(str::len), Some(64));
    assert_eq!(report["requests"][0]["outcome"], "fanned_out");
    assert_eq!(report["requests"][0]["children"].as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn a_child_sent_twice_derives_the_same_tokens() {
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&terminate], sqs: &[] }.app(settings());
    let child = json!({"operation": "TerminateProvisionedProduct", "origin": "a1b2c3", "input": {"ProvisionedProductId": "pp-child001"}});

    // The same child, sent twice (a redelivered fan-out), arrives as two messages.
    invoke(&app, sqs_event(&[("child-copy-1", child.clone())])).await.unwrap();
    invoke(&app, sqs_event(&[("child-copy-2", child)])).await.unwrap();

    let tokens: Vec<Option<String>> = taken(&seen).into_iter().map(|(_, _, token)| token).collect();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1], "the token derives from the origin and the place, not the message");
}

#[tokio::test]
async fn a_fan_out_is_invalid_over_max_fanout_without_a_request_queue_or_with_an_account_not_allowed() {
    let sent = log();
    let batch = batches_sent(&sent);
    let records = log();
    let send = sqs_send_ok(&records);
    let allowed = vec!["111122223333".to_owned(), "444455556666".to_owned()];
    let app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { allowed_accounts: allowed.clone(), max_fanout: 3, ..settings() })
        .with_request_queue(request_queue(&[&batch]));
    let fan_out = |accounts: Value, regions: Value| {
        let mut r = ws_request(&ws_ids(1, "x"));
        r["accounts"] = accounts;
        r["regions"] = regions;
        r
    };

    let report = invoke(
        &app,
        json!({"requests": [
            fan_out(json!(allowed), json!(["eu-west-1", "us-east-2"])),
            fan_out(json!(["111122223333", "999988887777"]), json!(["eu-west-1"]))
        ]}),
    )
    .await
    .unwrap();

    assert!(taken(&sent).is_empty(), "nothing is sent");
    let codes: Vec<String> =
        taken(&records).iter().map(|r| r.1["error"]["code"].as_str().unwrap().to_owned()).collect();
    assert_eq!(codes, vec!["TooManyChildren", "AccountNotAllowed"]);
    assert_eq!(report["requests"][0]["outcome"], "invalid");

    let app =
        Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[&send] }.app(Settings { allowed_accounts: allowed, ..settings() });
    invoke(&app, fan_out(json!(["111122223333"]), json!(["eu-west-1"]))).await.unwrap();
    assert_eq!(taken(&records).last().unwrap().1["error"]["code"], "NoRequestQueue");
}

#[tokio::test]
async fn children_that_cannot_be_sent_leave_the_fan_out_to_be_redelivered() {
    let failing = mock!(aws_sdk_sqs::Client::send_message_batch)
        .then_http_response(|| http(500, r#"{"__type":"InternalError","message":"down"}"#));
    let app = fanning_app(Settings { allowed_accounts: vec!["111122223333".into()], ..settings() }, &failing);
    let mut request = ws_request(&ws_ids(1, "y"));
    request["accounts"] = json!(["111122223333"]);

    let response = invoke(&app, sqs_event(&[("m-1", request)])).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1"]);
    assert_eq!(failing.num_calls(), 2, "sent once more, then left for the redelivery");
}

#[tokio::test]
async fn without_spoke_access_another_account_is_rejected_with_a_record() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { allowed_accounts: vec!["111122223333".into()], ..settings() });
    let mut request = ws_request(&ws_ids(1, "z"));
    request["account"] = json!("111122223333");

    let report = invoke(&app, request).await.unwrap();

    assert_eq!(report["requests"][0]["outcome"], "rejected");
    assert_eq!(report["requests"][0]["account"], "111122223333");
    assert!(taken(&calls).is_empty());
    let records = taken(&records);
    assert_eq!(records[0].1["account"], "111122223333", "the record names the account");
}

// ── What the review of accounts and regions found ─────────────────────────────

#[tokio::test]
async fn mgns_own_account_id_is_held_to_allowed_accounts_too() {
    let calls = log();
    let terminate = mock!(aws_sdk_mgn::Client::terminate_target_instances).then_compute_output({
        let calls = calls.clone();
        move |req| {
            calls.lock().unwrap().push(req.source_server_ids().to_vec());
            aws_sdk_mgn::operation::terminate_target_instances::TerminateTargetInstancesOutput::builder().build()
        }
    });
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[], mgn: &[&terminate], sc: &[], sqs: &[&send] }.app(settings());
    let request = json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-aaaaaaaaaaaaaaaaa"], "accountID": "999988887777"}});

    let report = invoke(&app, request).await.unwrap();

    assert_eq!(report["requests"][0]["outcome"], "invalid");
    assert!(taken(&calls).is_empty());
    assert_eq!(taken(&records)[0].1["error"]["code"], "AccountNotAllowed");
}

#[tokio::test]
async fn a_check_naming_an_account_not_allowed_is_refused_without_a_call() {
    let describes = log::<Vec<String>>();
    let describe = {
        let describes = describes.clone();
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            describes.lock().unwrap().push(req.workspace_ids().to_vec());
            DescribeWorkspacesOutput::builder().build()
        })
    };
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[&describe], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());
    let mut body = check("TerminateWorkspaces", &[("ws-aaaaaaaa", None, None)], 1, "2026-11-24T10:00:00Z");
    body["confirm"]["request"]["account"] = json!("999988887777");

    invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();

    assert!(taken(&describes).is_empty());
    assert_eq!(taken(&records)[0].3, "invalid");
}

#[tokio::test]
async fn a_workspace_whose_tags_cannot_be_read_but_that_the_selection_leaves_out_decides_nothing() {
    let listed = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_output(|| {
        DescribeWorkspacesOutput::builder()
            .workspaces(workspace("ws-indir001", WorkspaceState::Available))
            .workspaces(
                Workspace::builder()
                    .workspace_id("ws-elsewhere")
                    .state(WorkspaceState::Available)
                    .directory_id("d-9999999999")
                    .build(),
            )
            .build()
    });
    let throttled = mock!(aws_sdk_workspaces::Client::describe_tags)
        .match_requests(|req| req.resource_id() == Some("ws-elsewhere"))
        .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
    let tags = mock!(aws_sdk_workspaces::Client::describe_tags).then_output(|| {
        DescribeTagsOutput::builder()
            .tag_list(aws_sdk_workspaces::types::Tag::builder().key("env").value("sandbox").build().unwrap())
            .build()
    });
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&listed, &throttled, &tags, &terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    // Both are listed (no server-side filter here); only ws-indir001 is in the directory.
    let select = json!({"operation": "TerminateWorkspaces", "select": {"tags": {"env": "sandbox"}, "states": ["AVAILABLE"], "userName": "alice"}});

    let report = invoke(&app, sqs_event(&[("m-1", select)])).await.unwrap();

    assert!(failures(&report).is_empty(), "a WorkSpace the selection leaves out cannot make it transient");
    assert_eq!(taken(&calls), vec![vec!["ws-indir001".to_owned()]]);
}

#[tokio::test]
async fn a_failed_selection_lookup_of_a_child_is_retried_without_its_origin() {
    let down = mock!(aws_sdk_workspaces::Client::describe_workspaces)
        .then_http_response(|| http(500, r#"{"__type":"InternalServiceError","message":"down"}"#));
    let records = log();
    let send = sqs_send_ok(&records);
    // Its last delivery, so it is settled with a record rather than redelivered.
    let app = Doubles { ws: &[&down], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { max_receives: Some(1), ..settings() });
    let child = json!({"operation": "TerminateWorkspaces", "origin": "abc123", "select": {"tags": {"env": "sandbox"}}});

    invoke(&app, sqs_event(&[("child-1", child)])).await.unwrap();

    let retry = &taken(&records)[0].1["retryRequest"];
    assert_eq!(retry["select"]["tags"]["env"], "sandbox");
    assert!(retry.get("origin").is_none(), "a replay derives fresh tokens");
}
