//! Contract §4: the dead-letter record and the queue it goes to. Knows nothing of
//! the services: it is handed a finished record and publishes it.

use aws_sdk_sqs::types::MessageAttributeValue;
use serde::Serialize;
use serde_json::{Value, json};

use crate::outcome::{Failure, Outcome};
use crate::services::classify;

/// SQS refuses messages over 256 KiB, attributes included; keep well inside it.
pub const MAX_BODY_BYTES: usize = 250 * 1024;
/// How much of an oversized request is kept, so a person can still recognise it.
const TRUNCATED_HEAD_CHARS: usize = 4096;

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
    /// Sent as the `operation` message attribute, not in the body.
    #[serde(skip)]
    pub operation: Option<String>,
}

impl DeadLetterRecord {
    /// The message body: the record as JSON, with `request` replaced by a marked,
    /// shortened copy when the whole would not fit in one SQS message.
    pub fn body(&self) -> String {
        let full = serde_json::to_string(self).unwrap_or_default();
        if full.len() <= MAX_BODY_BYTES {
            return full;
        }
        let raw = match &self.request {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut record = self.clone();
        if record.error.message.len() > TRUNCATED_HEAD_CHARS {
            record.error.message = record.error.message.chars().take(TRUNCATED_HEAD_CHARS).collect::<String>() + "…";
        }
        record.request = json!({
            "truncated": true,
            "originalBytes": raw.len(),
            "head": raw.chars().take(TRUNCATED_HEAD_CHARS).collect::<String>(),
        });
        let mut body = serde_json::to_string(&record).unwrap_or_default();
        // Thousands of failed targets can still be too many: keep what fits, say how many went.
        while body.len() > MAX_BODY_BYTES && !record.failed_targets.is_empty() {
            let keep = record.failed_targets.len() / 2;
            record.failed_targets.truncate(keep);
            record.retry_request = None;
            body = serde_json::to_string(&record).unwrap_or_default();
        }
        body
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
        let operation = record.operation.clone().unwrap_or_else(|| "unknown".to_owned());
        let attribute =
            |value: String| MessageAttributeValue::builder().data_type("String").string_value(value).build();
        let (operation, outcome) = match (attribute(operation), attribute(record.outcome.as_str().to_owned())) {
            (Ok(op), Ok(out)) => (op, out),
            (Err(e), _) | (_, Err(e)) => {
                return Err(PublishError { code: "ConstructionFailure".into(), message: e.to_string() });
            }
        };
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_attributes("operation", operation)
            .message_attributes("outcome", outcome)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let (_, failure) = classify(&e);
                PublishError { code: failure.code, message: failure.message }
            })
    }
}
