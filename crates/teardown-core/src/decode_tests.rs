//! Every event kind of docs/reference.md, "Where requests come from", in the shapes AWS sends.

use serde_json::{Value, json};

use super::*;

const WS_REQUEST: &str =
    r#"{"operation":"TerminateWorkspaces","input":{"TerminateWorkspaceRequests":[{"WorkspaceId":"ws-abcd1234"}]}}"#;

/// A record as `sam local generate-event sqs receive-message` prints it.
fn sqs_record(message_id: &str, body: &str) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": "MessageReceiptHandle",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "2",
            "SentTimestamp": "1523232000000",
            "SenderId": "123456789012",
            "ApproximateFirstReceiveTimestamp": "1523232000001"
        },
        "messageAttributes": {},
        "md5OfBody": "7b270e59b47ff90a553787216d55d91d",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:teardown-requests",
        "awsRegion": "us-east-1"
    })
}

fn sqs(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

fn sns_notification(message: &str) -> String {
    json!({
        "Type": "Notification",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:teardown",
        "Subject": null,
        "Message": message,
        "Timestamp": "2026-11-24T10:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    })
    .to_string()
}

fn eventbridge(id: &str, detail: Value) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": "Teardown Request",
        "source": "teardown.requests",
        "account": "123456789012",
        "time": "2026-11-24T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail
    })
}

fn request() -> Value {
    serde_json::from_str(WS_REQUEST).unwrap()
}

fn sqs_items(payload: Value) -> Vec<Delivery> {
    match decode(payload, "req-1") {
        Decoded::Sqs(items) => items,
        other => panic!("not decoded as SQS: {other:?}"),
    }
}

fn other_items(payload: Value) -> Vec<Delivery> {
    other_items_with(payload, "req-1")
}

fn error_of(item: &Delivery) -> &DecodeError {
    item.decoded.as_ref().err().unwrap_or_else(|| panic!("decoded: {item:?}"))
}

#[test]
fn an_sqs_body_is_one_request_and_the_record_names_its_origin() {
    let items = sqs_items(sqs(vec![sqs_record("m-1", WS_REQUEST)]));
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].decoded, Ok(request()));
    assert_eq!(
        items[0].origin,
        Origin::Sqs {
            message_id: Some("m-1".into()),
            event_source_arn: Some("arn:aws:sqs:us-east-1:123456789012:teardown-requests".into()),
            receive_count: Some(2),
            message_group_id: None,
        }
    );
    assert_eq!(items[0].origin.to_json()["kind"], "sqs");
}

#[test]
fn one_bad_body_fails_only_its_own_record() {
    let items = sqs_items(sqs(vec![
        sqs_record("m-1", WS_REQUEST),
        sqs_record("m-2", "{not json"),
        sqs_record("m-3", WS_REQUEST),
    ]));
    assert_eq!(items.len(), 3);
    assert!(items[0].decoded.is_ok() && items[2].decoded.is_ok());
    let e = error_of(&items[1]);
    assert_eq!(e.field, "Records[messageId=m-2].body");
    assert!(e.message.starts_with("is not valid JSON"), "{e}");
    assert_eq!(items[1].raw, json!("{not json"), "the raw body is kept for the dead-letter record");
    assert_eq!(items[1].origin.message_id(), Some("m-2"));
}

#[test]
fn one_message_delivered_again_elsewhere_in_another_batch_gets_the_same_error() {
    // SQS delivers at least once: the copy's dead-letter record (and so its FIFO
    // deduplication id) must not depend on where the batch put it.
    let first = sqs_items(sqs(vec![sqs_record("m-2", "{not json")]));
    let again = sqs_items(sqs(vec![
        sqs_record("m-1", WS_REQUEST),
        sqs_record("m-9", WS_REQUEST),
        sqs_record("m-2", "{not json"),
    ]));
    assert_eq!(error_of(&first[0]).to_string(), error_of(&again[2]).to_string());
    assert_eq!(error_of(&first[0]).field, "Records[messageId=m-2].body");
}

#[test]
fn a_record_without_body_or_with_a_wrong_type_is_a_bad_input_naming_the_record() {
    let mut no_body = sqs_record("m-1", "");
    no_body.as_object_mut().unwrap().remove("body");
    let mut numeric_body = sqs_record("m-2", "");
    numeric_body["body"] = json!(42);
    let items = sqs_items(sqs(vec![no_body, numeric_body]));
    assert_eq!(error_of(&items[0]).field, "Records[messageId=m-1].body");
    assert_eq!(error_of(&items[0]).message, "is missing");
    assert_eq!(error_of(&items[1]).field, "Records[messageId=m-2]");
    assert!(error_of(&items[1]).message.contains("not a valid SQS record"));
    assert_eq!(items[1].origin.message_id(), Some("m-2"), "the id is kept so the record can be named");
}

#[test]
fn sns_and_eventbridge_wrapped_bodies_are_unwrapped() {
    let in_sns = sns_notification(WS_REQUEST);
    let eb = eventbridge("eb-7", request()).to_string();
    let eb_in_sns = sns_notification(&eb);
    let items = sqs_items(sqs(vec![sqs_record("m-1", &in_sns), sqs_record("m-2", &eb), sqs_record("m-3", &eb_in_sns)]));
    for item in &items {
        assert_eq!(item.decoded, Ok(request()), "{item:?}");
    }
    assert_eq!(items[0].token_seed, "sqs:m-1");
    assert_eq!(items[1].token_seed, "eventbridge:eb-7", "the event id survives redelivery through a new message");
    assert_eq!(items[2].token_seed, "eventbridge:eb-7");
}

#[test]
fn broken_wrappers_name_the_broken_part() {
    let bad_message = sns_notification("not json");
    let mut partial_sns: Value = serde_json::from_str(&sns_notification(WS_REQUEST)).unwrap();
    partial_sns.as_object_mut().unwrap().remove("Message");
    let bad_eb = json!({"detail-type": 3, "source": "x", "detail": {}}).to_string();
    let items = sqs_items(sqs(vec![
        sqs_record("m-1", &bad_message),
        sqs_record("m-2", &partial_sns.to_string()),
        sqs_record("m-3", &bad_eb),
    ]));
    assert_eq!(error_of(&items[0]).field, "Records[messageId=m-1].body.Message");
    assert_eq!(error_of(&items[1]).field, "Records[messageId=m-2].body");
    assert!(error_of(&items[1]).message.contains("not a valid SNS notification"));
    assert!(error_of(&items[2]).message.contains("not a valid EventBridge event"));
}

#[test]
fn an_eventbridge_event_carries_one_request_or_a_list() {
    let items = other_items(eventbridge("eb-1", request()));
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].decoded, Ok(request()));
    assert_eq!(
        items[0].origin,
        Origin::EventBridge {
            id: Some("eb-1".into()),
            detail_type: "Teardown Request".into(),
            source: "teardown.requests".into()
        }
    );

    let items = other_items(eventbridge("eb-2", json!({"requests": [request(), request()]})));
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0].token_seed.as_str(), items[1].token_seed.as_str()),
        ("eventbridge:eb-2#0", "eventbridge:eb-2#1")
    );

    let items = other_items(eventbridge("eb-3", json!({"requests": []})));
    assert_eq!(error_of(&items[0]).to_string(), "detail.requests: is empty");
    let items = other_items(eventbridge("eb-4", json!({"requests": "all"})));
    assert_eq!(error_of(&items[0]).field, "detail.requests");
}

#[test]
fn a_scheduled_event_is_an_eventbridge_event() {
    // As `sam local generate-event cloudwatch scheduled-event` prints it.
    let scheduled = json!({
        "id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "1970-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/ExampleRule"],
        "detail": {}
    });
    let items = other_items(scheduled);
    assert_eq!(items[0].decoded, Ok(json!({})), "an empty detail is decoded, then refused by validation");
    assert!(matches!(&items[0].origin, Origin::EventBridge { detail_type, .. } if detail_type == "Scheduled Event"));
}

#[test]
fn a_direct_payload_is_one_request_or_a_list() {
    let items = other_items(request());
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].origin, Origin::Direct { request_id: "req-1".into() });
    assert_eq!(items[0].origin.to_json(), json!({"kind": "direct", "requestId": "req-1"}));

    let items = other_items(json!({"requests": [request(), {"operation": "x"}]}));
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].decoded, Ok(json!({"operation": "x"})));
}

#[test]
fn anything_else_is_a_bad_input_that_keeps_the_raw_payload() {
    for payload in [json!([1, 2]), json!("ws-abcd1234"), json!(null), json!(7)] {
        let items = other_items(payload.clone());
        assert_eq!(items.len(), 1);
        let e = error_of(&items[0]);
        assert_eq!((DecodeError::CODE, e.field.as_str()), ("BadInput", "payload"));
        assert_eq!(items[0].raw, payload);
    }
    let items = other_items(json!({"Records": "none"}));
    assert_eq!(error_of(&items[0]).field, "Records");
    let s3 = json!({"Records": [{"eventSource": "aws:s3", "s3": {}}]});
    let items = other_items(s3.clone());
    assert_eq!(error_of(&items[0]).field, "Records[0].eventSource");
    assert_eq!(items[0].raw, s3);
}

#[test]
fn tokens_follow_the_delivery_not_the_attempt() {
    let token = |payload: Value| sqs_items(payload)[0].idempotency_token();
    let a = token(sqs(vec![sqs_record("m-1", WS_REQUEST)]));
    assert_eq!(a, token(sqs(vec![sqs_record("m-1", WS_REQUEST)])), "a redelivery reuses the token");
    assert_ne!(a, token(sqs(vec![sqs_record("m-2", WS_REQUEST)])), "another message gets another token");
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
}

/// docs/reference.md, "A request": a direct payload (or a rule's constant `Input`) has no delivery id.
/// Its tokens follow the Lambda request id, which Lambda keeps across its own retries:
/// two runs of one schedule, same content, never share one.
#[test]
fn direct_tokens_follow_the_lambda_request_id_not_the_content() {
    let direct = |payload: Value, request_id: &str| match decode(payload, request_id) {
        Decoded::Other(items) => items.iter().map(|i| i.idempotency_token_for("pp-one")).collect::<Vec<_>>(),
        other => panic!("decoded as SQS: {other:?}"),
    };
    let schedule = request();
    let first_run = direct(schedule.clone(), "run-1");
    assert_eq!(first_run, direct(schedule.clone(), "run-1"), "Lambda's retry of one invocation reuses its tokens");
    assert_ne!(first_run, direct(schedule.clone(), "run-2"), "the next run of the same schedule gets new ones");
    let listed = direct(json!({"requests": [schedule.clone(), schedule]}), "run-1");
    assert_ne!(listed[0], listed[1], "two requests of one list never share a token");
    let seed = |request_id: &str| other_items_with(request(), request_id)[0].token_seed.clone();
    assert_eq!(seed("run-7"), "direct:run-7");
}

#[test]
fn an_sqs_record_names_its_sender_and_other_sources_name_none() {
    assert_eq!(sqs_items(sqs(vec![sqs_record("m-1", WS_REQUEST)]))[0].sender_id.as_deref(), Some("123456789012"));
    assert_eq!(other_items(request())[0].sender_id, None, "a direct payload has no sender to trust");
}

fn other_items_with(payload: Value, request_id: &str) -> Vec<Delivery> {
    match decode(payload, request_id) {
        Decoded::Other(items) => items,
        other => panic!("decoded as SQS: {other:?}"),
    }
}

/// Every sample in `events/` decodes, and validates, to the requests it is meant to carry.
#[test]
fn every_sample_event_decodes_to_its_requests() {
    use crate::request::{Limits, validate};
    // file → (is it an SQS event, each item's operation or the field its error names)
    let expected: &[(&str, bool, &[&str])] = &[
        ("direct-requests.json", false, &["TerminateWorkspaces", "TerminateProvisionedProduct"]),
        ("eventbridge-custom.json", false, &["TerminateTargetInstances", "TerminateWorkspaces"]),
        ("schedule-constant-input.json", false, &["TerminateWorkspaces"]),
        ("sqs-eventbridge-wrapped.json", true, &["TerminateProvisionedProduct"]),
        (
            "sqs-mixed-batch.json",
            true,
            &[
                "TerminateWorkspaces",
                "error:Records[messageId=mixed-badjson-0002].body",
                "error:operation",
                "error:input.TerminateWorkspaceRequests[0].WorkspaceID",
            ],
        ),
        ("sqs-sns-wrapped.json", true, &["TerminateWorkspaces"]),
        ("sqs-terminate-provisioned-product.json", true, &["TerminateProvisionedProduct"]),
        ("sqs-terminate-target-instances.json", true, &["TerminateTargetInstances"]),
        ("sqs-terminate-workspaces.json", true, &["TerminateWorkspaces", "TerminateWorkspaces"]),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    files.sort();
    assert_eq!(files, expected.iter().map(|(f, _, _)| f.to_string()).collect::<Vec<_>>(), "every sample is checked");

    for (file, is_sqs, wanted) in expected {
        let payload: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        let (items, sqs) = match decode(payload, "req-1") {
            Decoded::Sqs(items) => (items, true),
            Decoded::Other(items) => (items, false),
        };
        assert_eq!(sqs, *is_sqs, "{file}");
        let got: Vec<String> = items
            .iter()
            .map(|item| match &item.decoded {
                Err(e) => format!("error:{}", e.field),
                Ok(v) => match validate(v, Limits::default()) {
                    Ok(request) => request.operation().to_string(),
                    Err(e) => format!("error:{}", e.field),
                },
            })
            .collect();
        assert_eq!(got, *wanted, "{file}");
    }
}
