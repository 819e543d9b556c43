//! Contract §9 with doubles: which accounts a request may name, and fan-outs.

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
