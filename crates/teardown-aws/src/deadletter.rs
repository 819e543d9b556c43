//! docs/reference.md, "The dead-letter record": the dead-letter record and the queue it goes to. Knows nothing of
//! the services: it is handed a finished record and publishes it.

use aws_sdk_sqs::types::MessageAttributeValue;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::classify::classify;
use crate::outcome::{Failure, Outcome};

/// SQS refuses messages over 256 KiB, attributes included; keep well inside it.
pub const MAX_BODY_BYTES: usize = 250 * 1024;
/// How much of an oversized request or error message is kept, so a person can still recognise it.
const TRUNCATED_HEAD_CHARS: usize = 4096;
/// Source fields, ids and codes come from outside: cut each to this many characters.
const SHORT_FIELD_CHARS: usize = 256;
/// Each failed target's message, once the record must be cut.
const TARGET_MESSAGE_CHARS: usize = 1024;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedTarget {
    pub id: String,
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterRecord {
    pub version: u32,
    pub failed_at: String,
    pub source: Value,
    pub request: Value,
    pub outcome: Outcome,
    pub error: Failure,
    pub failed_targets: Vec<FailedTarget>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_request: Option<Value>,
    /// Where the targets are, when the request named another account or region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Set when a member had to be cut to fit one SQS message.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Sent as the `operation` message attribute, not in the body.
    #[serde(skip)]
    pub operation: Option<String>,
    /// The source message's FIFO group: the record keeps it on a FIFO dead-letter queue.
    #[serde(skip)]
    pub message_group_id: Option<String>,
}

impl DeadLetterRecord {
    /// The message body: the record as JSON, always within one SQS message. When the
    /// whole does not fit, every member built from the input is cut, in the order
    /// that loses least: long strings first (the request becomes a marked head), then
    /// half of the failed targets at a time (the error says how many failed), then
    /// the retry request, and at last everything but what says what happened.
    pub fn body(&self) -> String {
        let full = to_json(self);
        if full.len() <= MAX_BODY_BYTES {
            return full;
        }
        let mut record = self.clone();
        record.truncated = true;
        cut_strings(&mut record.source, SHORT_FIELD_CHARS);
        record.error.code = cut(&record.error.code, SHORT_FIELD_CHARS);
        record.error.message = cut(&record.error.message, TRUNCATED_HEAD_CHARS);
        for target in &mut record.failed_targets {
            target.id = cut(&target.id, SHORT_FIELD_CHARS);
            target.code = cut(&target.code, SHORT_FIELD_CHARS);
            target.message = cut(&target.message, TARGET_MESSAGE_CHARS);
        }
        let raw = match &record.request {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        record.request = json!({
            "truncated": true,
            "originalBytes": raw.len(),
            "head": cut(&raw, TRUNCATED_HEAD_CHARS),
        });
        let mut body = to_json(&record);
        while body.len() > MAX_BODY_BYTES && !record.failed_targets.is_empty() {
            let keep = record.failed_targets.len() / 2;
            record.failed_targets.truncate(keep);
            body = to_json(&record);
        }
        if body.len() > MAX_BODY_BYTES {
            record.retry_request = None;
            body = to_json(&record);
        }
        if body.len() > MAX_BODY_BYTES {
            record.request = json!({"truncated": true, "originalBytes": raw.len()});
            body = to_json(&record);
        }
        body
    }

    /// A FIFO queue's `MessageDeduplicationId`: SHA-256 of the body without
    /// `failedAt`, so the same record sent twice is kept once and two different
    /// records never collide.
    pub fn deduplication_id(body: &str) -> String {
        let mut value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.remove("failedAt");
        }
        sha256(&value)
    }

    /// What makes this record the same record whichever delivery of its message wrote
    /// it: SHA-256 of the body without `failedAt` and `source.receiveCount`.
    pub fn identity(&self) -> String {
        let mut value: Value = serde_json::from_str(&self.body()).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.remove("failedAt");
            if let Some(Value::Object(source)) = map.get_mut("source") {
                source.remove("receiveCount");
            }
        }
        sha256(&value)
    }
}

fn sha256(value: &Value) -> String {
    let digest = Sha256::digest(crate::decode::canonical(value).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn to_json(record: &DeadLetterRecord) -> String {
    // Serialising a struct of strings and JSON values cannot fail; were it to, an
    // empty body is refused by SQS and the message is redelivered, never lost.
    serde_json::to_string(record).unwrap_or_default()
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { s.chars().take(max).collect::<String>() + "…" }
}

fn cut_strings(value: &mut Value, max: usize) {
    match value {
        Value::String(s) => *s = cut(s, max),
        Value::Array(items) => items.iter_mut().for_each(|v| cut_strings(v, max)),
        Value::Object(map) => map.values_mut().for_each(|v| cut_strings(v, max)),
        _ => {}
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not publish the dead-letter record ({code}): {message}")]
pub struct PublishError {
    pub code: String,
    pub message: String,
}

/// Where dead-letter records go. Without a URL, records are only logged.
#[derive(Clone, Debug)]
pub struct DeadLetterQueue {
    client: aws_sdk_sqs::Client,
    url: Option<String>,
}

impl DeadLetterQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: Option<String>) -> Self {
        DeadLetterQueue { client, url }
    }

    /// Sends the record. The SDK retries throttling and network failures with
    /// backoff; what still fails is returned so the caller can have it redelivered.
    pub async fn publish(&self, record: &DeadLetterRecord) -> Result<(), PublishError> {
        let body = record.body();
        let Some(url) = &self.url else {
            tracing::error!(dead_letter = %body, "DLQ_URL is not set: the dead-letter record is only logged");
            return Ok(());
        };
        let attribute = |value: &str| MessageAttributeValue::builder().data_type("String").string_value(value).build();
        let mut send = self.client.send_message().queue_url(url);
        // A payload that named no operation is filed under `unknown`, as in the metrics.
        // SQS refuses an empty attribute value, so an empty one is left out.
        let operation = record.operation.as_deref().unwrap_or("unknown");
        for (name, value) in [("operation", Some(operation)), ("outcome", Some(record.outcome.as_str()))] {
            let Some(value) = value.filter(|v| !v.is_empty()) else { continue };
            match attribute(value) {
                Ok(attribute) => send = send.message_attributes(name, attribute),
                Err(e) => return Err(PublishError { code: "ConstructionFailure".into(), message: e.to_string() }),
            }
        }
        // A FIFO queue refuses a message without a group; the record stays in its
        // source message's group, so records of one group keep their order.
        if url.ends_with(".fifo") {
            let group = record.message_group_id.as_deref().filter(|g| !g.is_empty()).unwrap_or("teardown");
            send = send.message_group_id(group).message_deduplication_id(DeadLetterRecord::deduplication_id(&body));
        }
        send.message_body(body).send().await.map(|_| ()).map_err(|e| {
            let failure = classify(&e).failure;
            PublishError { code: failure.code, message: failure.message }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DeadLetterRecord {
        DeadLetterRecord {
            version: 1,
            failed_at: "2026-11-24T10:00:00Z".into(),
            source: json!({"kind": "sqs", "messageId": "m-1"}),
            request: json!({"operation": "TerminateWorkspaces"}),
            outcome: Outcome::Rejected,
            error: Failure::new("X", "y"),
            failed_targets: Vec::new(),
            retry_request: None,
            account: None,
            region: None,
            truncated: false,
            operation: Some("TerminateWorkspaces".into()),
            message_group_id: None,
        }
    }

    /// docs/reference.md, "The dead-letter record": every member built from the input is cut as needed, and the
    /// record says so. Each case here is far over 256 KiB in a different member.
    #[test]
    fn a_record_always_fits_one_sqs_message_whatever_member_is_large() {
        let big = "x".repeat(300 * 1024);
        let many_targets: Vec<FailedTarget> = (0..20_000)
            .map(|i| FailedTarget {
                id: format!("ws-{i:08}"),
                code: "InvalidResourceState".into(),
                message: "m".repeat(40),
            })
            .collect();
        let ids: Vec<String> = (0..10_000).map(|i| format!("ws-{i:060}")).collect();
        let cases: Vec<(&str, DeadLetterRecord)> = vec![
            (
                "source fields",
                DeadLetterRecord {
                    source: json!({"kind": "eventbridge", "detailType": big, "source": big}),
                    ..record()
                },
            ),
            ("request", DeadLetterRecord { request: json!({"operation": big}), ..record() }),
            ("error message", DeadLetterRecord { error: Failure::new(big.clone(), big.clone()), ..record() }),
            ("failed targets", DeadLetterRecord { failed_targets: many_targets.clone(), ..record() }),
            (
                "retry request",
                DeadLetterRecord {
                    retry_request: Some(json!({"operation": "TerminateWorkspaces", "select": {"ids": ids}})),
                    failed_targets: many_targets,
                    ..record()
                },
            ),
            (
                "selection in the request",
                DeadLetterRecord { request: json!({"select": {"tags": {"k": big}}}), ..record() },
            ),
        ];
        for (what, record) in cases {
            let body = record.body();
            assert!(body.len() <= MAX_BODY_BYTES, "{what}: {} bytes", body.len());
            let parsed: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(parsed["truncated"], true, "{what}");
            assert_eq!(parsed["outcome"], "rejected", "{what}");
            assert_eq!(parsed["version"], 1, "{what}");
        }
        // A record that fits is sent whole and unmarked.
        let body: Value = serde_json::from_str(&record().body()).unwrap();
        assert!(body.get("truncated").is_none());
        assert_eq!(body["request"], json!({"operation": "TerminateWorkspaces"}));
    }

    #[test]
    fn a_cut_record_keeps_the_retry_request_whole_when_it_fits() {
        let many_targets: Vec<FailedTarget> = (0..5_000)
            .map(|i| FailedTarget { id: format!("ws-{i:08}"), code: "C".into(), message: "m".repeat(200) })
            .collect();
        let retry = json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-00000001"}]}});
        let record = DeadLetterRecord { failed_targets: many_targets, retry_request: Some(retry.clone()), ..record() };
        let parsed: Value = serde_json::from_str(&record.body()).unwrap();
        assert_eq!(parsed["retryRequest"], retry);
        assert_eq!(parsed["truncated"], true);
    }

    #[test]
    fn the_deduplication_id_ignores_failed_at_and_differs_for_different_records() {
        let a = record();
        let later = DeadLetterRecord { failed_at: "2026-11-24T11:00:00Z".into(), ..record() };
        let other = DeadLetterRecord { error: Failure::new("X", "z"), ..record() };
        let id = |r: &DeadLetterRecord| DeadLetterRecord::deduplication_id(&r.body());
        assert_eq!(id(&a), id(&later));
        assert_ne!(id(&a), id(&other));
        assert_eq!(id(&a).len(), 64);
    }
}
