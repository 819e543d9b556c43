//! Deliveries: what is redelivered (transient, the deadline), mixed batches, FIFO groups.

use crate::doubles::*;
use crate::shared::*;

#[tokio::test]
async fn throttling_and_server_errors_are_transient_and_redelivered_without_a_record() {
    let throttled = mock!(aws_sdk_workspaces::Client::terminate_workspaces)
        .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
    let unavailable = mock!(aws_sdk_mgn::Client::terminate_target_instances)
        .then_http_response(|| http(503, r#"{"message":"Service Unavailable"}"#));
    let send = mock!(aws_sdk_sqs::Client::send_message).then_output(|| SendMessageOutput::builder().build());
    let app = Doubles { ws: &[&throttled], mgn: &[&unavailable], sc: &[], sqs: &[&send] }.app(settings());

    let response = invoke(
        &app,
        sqs_event(&[
            ("m-1", ws_request(&ws_ids(1, "c"))),
            ("m-2", json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": source_ids(1)}})),
        ]),
    )
    .await
    .unwrap();

    assert_eq!(failures(&response), vec!["m-1", "m-2"]);
    assert_eq!(send.num_calls(), 0, "redelivery, not a dead-letter record, for a transient failure");
}

#[tokio::test]
async fn near_the_deadline_nothing_new_starts_and_the_message_is_redelivered() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    let mut context = Context::default();
    let now_ms = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
    context.deadline = now_ms + 500; // less than the reserve kept for answering

    let response =
        handle(&app, LambdaEvent::new(sqs_event(&[("m-1", ws_request(&ws_ids(1, "h")))]), context)).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1"]);
    assert!(taken(&calls).is_empty(), "no call is started that could be cut off");
}

#[tokio::test]
async fn a_mixed_batch_redelivers_exactly_the_transient_and_dead_letters_exactly_the_rest() {
    let ws_calls = log();
    let ws = ws_terminate_ok(&ws_calls);
    let mgn = mock!(aws_sdk_mgn::Client::terminate_target_instances)
        .then_http_response(|| http(429, r#"{"message":"Too many requests"}"#));
    let sc = mock!(aws_sdk_servicecatalog::Client::terminate_provisioned_product).then_http_response(|| {
        http(400, r#"{"__type":"InvalidParametersException","Message":"Product is UNDER_CHANGE"}"#)
    });
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&ws], mgn: &[&mgn], sc: &[&sc], sqs: &[&send] }.app(settings());

    let response = invoke(
        &app,
        sqs_event(&[
            ("valid", ws_request(&ws_ids(2, "i"))),
            ("bad-json", Value::String("{\"operation\":".into())),
            ("unknown-op", json!({"operation": "TerminateInstances", "input": {}})),
            (
                "transient",
                json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": source_ids(1)}}),
            ),
            (
                "rejected",
                json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-1"}}),
            ),
        ]),
    )
    .await
    .unwrap();

    assert_eq!(failures(&response), vec!["transient"]);
    assert_eq!(taken(&ws_calls).concat(), ws_ids(2, "i"));
    let mut records: Vec<(String, String, String)> = taken(&sent)
        .iter()
        .map(|(_, body, _, outcome)| {
            (
                body["source"]["messageId"].as_str().unwrap().to_owned(),
                outcome.clone(),
                body["error"]["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    records.sort();
    assert_eq!(
        records,
        vec![
            ("bad-json".into(), "invalid".into(), "BadInput".into()),
            ("rejected".into(), "rejected".into(), "InvalidParametersException".into()),
            ("unknown-op".into(), "invalid".into(), "InvalidRequest".into()),
        ]
    );
    let rejected = taken(&sent).into_iter().find(|(_, b, _, _)| b["source"]["messageId"] == "rejected").unwrap().1;
    assert_eq!(
        rejected["retryRequest"],
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-1"}})
    );
    assert_eq!(
        rejected["failedTargets"],
        json!([{"id": "pp-1", "code": "InvalidParametersException", "message": "Product is UNDER_CHANGE"}])
    );
}

/// Rule 7: a FIFO group is worked in order; once a message must be redelivered, the
/// later messages of its group are not worked and go back too. Other groups go on,
/// and no call is shared across groups.
#[tokio::test]
async fn a_fifo_group_stops_at_its_first_redelivered_message_and_other_groups_go_on() {
    let calls = log::<Vec<String>>();
    let terminate = {
        let calls = calls.clone();
        mock!(aws_sdk_workspaces::Client::terminate_workspaces)
            .match_requests(move |req| {
                let ids: Vec<String> =
                    req.terminate_workspace_requests().iter().map(|r| r.workspace_id().to_owned()).collect();
                calls.lock().unwrap().push(ids.clone());
                ids.contains(&"ws-throttl01".to_owned())
            })
            .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#))
    };
    let accept = mock!(aws_sdk_workspaces::Client::terminate_workspaces)
        .then_output(|| TerminateWorkspacesOutput::builder().build());
    let app = Doubles { ws: &[&terminate, &accept], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    let fifo = "arn:aws:sqs:us-east-1:123456789012:teardown-requests.fifo";
    let one = |id: &str| ws_request(&[id.to_owned()]);
    let event = sqs_event_with(
        fifo,
        &[
            ("m-1", one("ws-throttl01"), &[("MessageGroupId", "g1")]),
            ("m-2", one("ws-later0001"), &[("MessageGroupId", "g1")]),
            ("m-3", one("ws-other0001"), &[("MessageGroupId", "g2")]),
            ("m-4", one("ws-other0002"), &[("MessageGroupId", "g2")]),
        ],
    );

    let response = invoke(&app, event).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1", "m-2"]);
    let calls = taken(&calls);
    assert!(calls.iter().all(|c| c.len() == 1), "no call shared across messages of a FIFO queue: {calls:?}");
    let sent: Vec<&str> = calls.iter().map(|c| c[0].as_str()).collect();
    assert!(!sent.contains(&"ws-later0001"), "m-2 waits for m-1: {sent:?}");
    let g2: Vec<&&str> = sent.iter().filter(|id| id.starts_with("ws-other")).collect();
    assert_eq!(g2, vec![&"ws-other0001", &"ws-other0002"], "g2 goes on, in its order");
}

/// Rule 8: a FIFO message not worked is returned as it is, even on its last delivery.
#[tokio::test]
async fn a_fifo_message_not_worked_is_returned_without_a_record_even_on_its_last_delivery() {
    let throttled = mock!(aws_sdk_workspaces::Client::terminate_workspaces)
        .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[&throttled], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { max_receives: Some(2), ..settings() });
    let event = sqs_event_with(
        "arn:aws:sqs:us-east-1:123456789012:teardown-requests.fifo",
        &[
            ("m-1", ws_request(&ws_ids(1, "f")), &[("MessageGroupId", "g"), ("ApproximateReceiveCount", "1")]),
            ("m-2", ws_request(&ws_ids(1, "g")), &[("MessageGroupId", "g"), ("ApproximateReceiveCount", "2")]),
        ],
    );

    let response = invoke(&app, event).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1", "m-2"]);
    assert!(taken(&sent).is_empty(), "m-2 was not worked: nothing to record");
}

/// An absurd deadline header must not panic the handler.
#[tokio::test]
async fn an_absurd_deadline_does_not_panic() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings());
    let mut context = Context::default();
    context.deadline = u64::MAX;
    let report = handle(&app, LambdaEvent::new(ws_request(&ws_ids(1, "z")), context)).await.unwrap();
    assert_eq!(report["requests"][0]["outcome"], "terminated");
}
