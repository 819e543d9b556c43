//! docs/reference.md, "Where requests come from": tells the event kinds apart by shape and unwraps each into the
//! requests it carries. Pure: no SDK, no I/O.
//!
//! Each SQS record is decoded on its own, so one bad body fails only itself —
//! decoding the whole batch as one typed event would lose the partial-batch contract.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sns::SnsMessage;
use aws_lambda_events::event::sqs::SqsMessage;
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::request::json::{cut_field, kind, quote, shorten};

/// Where a request came from: reported, and written to the dead-letter record as
/// its `source` (docs/reference.md, "The dead-letter record").
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    #[serde(rename_all = "camelCase")]
    Sqs {
        message_id: Option<String>,
        event_source_arn: Option<String>,
        receive_count: Option<u64>,
        /// FIFO queues only: messages of one group are worked in order.
        #[serde(skip_serializing_if = "Option::is_none")]
        message_group_id: Option<String>,
    },
    #[serde(rename = "eventbridge", rename_all = "camelCase")]
    EventBridge { id: Option<String>, detail_type: String, source: String },
    #[serde(rename_all = "camelCase")]
    Direct { request_id: String },
}

impl Origin {
    /// The `source` member of the dead-letter record (docs/reference.md, "The dead-letter record").
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn message_id(&self) -> Option<&str> {
        match self {
            Origin::Sqs { message_id, .. } => message_id.as_deref(),
            _ => None,
        }
    }

    /// The message group of a record from a FIFO queue (one whose ARN ends `.fifo`).
    pub fn fifo_group(&self) -> Option<&str> {
        match self {
            Origin::Sqs { event_source_arn: Some(arn), message_group_id, .. } if arn.ends_with(".fifo") => {
                Some(message_group_id.as_deref().unwrap_or(""))
            }
            _ => None,
        }
    }

    /// How many times SQS has delivered this message, this time included.
    pub fn receive_count(&self) -> Option<u64> {
        match self {
            Origin::Sqs { receive_count, .. } => *receive_count,
            _ => None,
        }
    }
}

/// Why a payload is not a request at all: the field of the event that is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DecodeError {
    pub field: String,
    pub message: String,
}

impl DecodeError {
    /// The code of its dead-letter record.
    pub const CODE: &'static str = "BadInput";

    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        DecodeError { field: cut_field(field.into()), message: shorten(message.into(), 2000) }
    }
}

/// One delivery of one request: the request as received (not yet validated), or
/// the reason it could not even be read as one.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub origin: Origin,
    /// The request as received, or the rawest form we have when it is not one.
    pub raw: Value,
    /// `Ok` holds the JSON to validate; `Err` says why the payload is not a request.
    pub decoded: Result<Value, DecodeError>,
    /// A stable seed for idempotency tokens: the same delivery decodes to the same seed.
    pub token_seed: String,
    /// When the request was sent (SQS `SentTimestamp`, EventBridge `time`), when known:
    /// a product created after it is not the one a name in the request meant.
    pub sent_at: Option<OffsetDateTime>,
    /// SQS only: the principal that sent the message (`attributes.SenderId`), which
    /// decides whether a check or a fan-out child is the function's own (docs/reference.md, "Who may send what").
    pub sender_id: Option<String>,
    /// SQS only: what the body arrived wrapped in (`an SNS notification`, `an
    /// EventBridge event`): then `sender_id` names the service that delivered it, not
    /// who wrote the body.
    pub wrapped_in: Option<&'static str>,
}

impl Delivery {
    fn failed(origin: Origin, raw: Value, error: DecodeError) -> Delivery {
        let token_seed = format!("content:{}", canonical(&raw));
        Delivery { origin, raw, decoded: Err(error), token_seed, sent_at: None, sender_id: None, wrapped_in: None }
    }

    /// 64 hex characters of SHA-256 of the seed: the `origin` of a fan-out's children.
    pub fn idempotency_token(&self) -> String {
        hex_sha256(&self.token_seed)
    }

    /// A Service Catalog `TerminateToken` for one target of this delivery, which fits
    /// the API's `^[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$`.
    pub fn idempotency_token_for(&self, target: &str) -> String {
        hex_sha256(&format!("{}#{target}", self.token_seed))
    }
}

fn hex_sha256(seed: &str) -> String {
    Sha256::digest(seed.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What an invocation payload turned out to be.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// An SQS event: answered with a partial batch response.
    Sqs(Vec<Delivery>),
    /// EventBridge, direct invocation or a bad payload: answered with a report.
    Other(Vec<Delivery>),
}

pub fn decode(payload: Value, request_id: &str) -> Decoded {
    let direct = || Origin::Direct { request_id: request_id.to_owned() };
    let Some(map) = payload.as_object() else {
        let error = DecodeError::new(
            "payload",
            format!("must be a JSON object (an SQS or EventBridge event, or a request), not {}", kind(&payload)),
        );
        return Decoded::Other(vec![Delivery::failed(direct(), payload, error)]);
    };

    if let Some(records) = map.get("Records") {
        return match sqs_records(records) {
            Ok(items) => Decoded::Sqs(items),
            Err(error) => Decoded::Other(vec![Delivery::failed(direct(), payload, error)]),
        };
    }

    if map.contains_key("detail-type") {
        return match serde_json::from_value::<EventBridgeEvent<Value>>(payload.clone()) {
            Ok(event) => {
                let origin = Origin::EventBridge {
                    id: event.id.clone(),
                    detail_type: event.detail_type.clone(),
                    source: event.source.clone(),
                };
                let seed = match &event.id {
                    Some(id) => format!("eventbridge:{id}"),
                    None => format!("content:{}", canonical(&event.detail)),
                };
                let sent_at = event_time(&payload);
                let mut items = requests(event.detail, "detail", origin, &seed);
                items.iter_mut().for_each(|item| item.sent_at = sent_at);
                Decoded::Other(items)
            }
            Err(e) => Decoded::Other(vec![Delivery::failed(
                direct(),
                payload,
                DecodeError::new("payload", format!("is not a valid EventBridge event: {e}")),
            )]),
        };
    }

    // A direct invocation, or a rule's constant `Input`, has no delivery id: the Lambda
    // request id is the one Lambda keeps across its own retries of the invocation, and
    // a new schedule run gets a new one (docs/reference.md, "A request"). Content would not do: every
    // run of one schedule carries the same content.
    let seed = format!("direct:{request_id}");
    Decoded::Other(requests(payload, "payload", direct(), &seed))
}

/// `{"requests": [...]}` or one request. Each request in a list gets its own seed,
/// so two different requests in one event never share a token.
fn requests(value: Value, path: &str, origin: Origin, seed: &str) -> Vec<Delivery> {
    let list = match value {
        Value::Object(mut map) if map.len() == 1 && map.contains_key("requests") => map.remove("requests"),
        other => {
            return vec![Delivery {
                origin,
                raw: other.clone(),
                decoded: Ok(other),
                token_seed: seed.to_owned(),
                sent_at: None,
                sender_id: None,
                wrapped_in: None,
            }];
        }
    };
    let field = format!("{path}.requests");
    match list {
        Some(Value::Array(list)) if !list.is_empty() => list
            .into_iter()
            .enumerate()
            .map(|(i, request)| Delivery {
                origin: origin.clone(),
                raw: request.clone(),
                decoded: Ok(request),
                token_seed: format!("{seed}#{i}"),
                sent_at: None,
                sender_id: None,
                wrapped_in: None,
            })
            .collect(),
        Some(Value::Array(list)) => {
            vec![Delivery::failed(origin, json!({"requests": list}), DecodeError::new(field, "is empty"))]
        }
        Some(other) => {
            let message = format!("must be a list of requests, not {}", kind(&other));
            vec![Delivery::failed(origin, json!({"requests": other}), DecodeError::new(field, message))]
        }
        None => Vec::new(),
    }
}

fn sqs_records(records: &Value) -> Result<Vec<Delivery>, DecodeError> {
    let list = records
        .as_array()
        .ok_or_else(|| DecodeError::new("Records", format!("must be a list, not {}", kind(records))))?;
    // Records from another service (S3, DynamoDB…) share the `Records` shape;
    // they are not requests, and treating them as SQS would hide the mistake.
    for (i, record) in list.iter().enumerate() {
        let source = record.get("eventSource").and_then(Value::as_str);
        if source != Some("aws:sqs") {
            let shown = source.map(quote).unwrap_or_else(|| "missing".to_owned());
            return Err(DecodeError::new(
                format!("Records[{i}].eventSource"),
                format!("is {shown}, not \"aws:sqs\": only SQS events are accepted"),
            ));
        }
    }
    Ok(list.iter().enumerate().map(|(i, record)| sqs_record(i, record)).collect())
}

fn sqs_record(index: usize, record: &Value) -> Delivery {
    let message_id = record.get("messageId").and_then(Value::as_str).map(str::to_owned);
    // A record is named by its message id when it has one: the same message delivered
    // again, at another place in another batch, gets the same error, so the same
    // dead-letter record (and deduplication id).
    let path = match &message_id {
        Some(id) => format!("Records[messageId={id}]"),
        None => format!("Records[{index}]"),
    };
    let message = match serde_json::from_value::<SqsMessage>(record.clone()) {
        Ok(message) => message,
        Err(e) => {
            // What can still be read is kept: a FIFO record must stay in its group's order.
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
            let origin = Origin::Sqs {
                message_id,
                event_source_arn: text(record.get("eventSourceARN")),
                receive_count: None,
                message_group_id: text(record.get("attributes").and_then(|a| a.get("MessageGroupId"))),
            };
            let error = DecodeError::new(path, format!("is not a valid SQS record: {e}"));
            return Delivery::failed(origin, record.clone(), error);
        }
    };
    let origin = Origin::Sqs {
        message_id: message.message_id.clone(),
        event_source_arn: message.event_source_arn.clone(),
        receive_count: message.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()),
        message_group_id: message.attributes.get("MessageGroupId").cloned(),
    };
    let Some(body) = message.body else {
        return Delivery::failed(origin, record.clone(), DecodeError::new(format!("{path}.body"), "is missing"));
    };
    let seed = match &message.message_id {
        Some(id) => format!("sqs:{id}"),
        None => format!("content:{body}"),
    };
    let parsed: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            let error = DecodeError::new(format!("{path}.body"), format!("is not valid JSON: {e}"));
            return Delivery::failed(origin, Value::String(body), error);
        }
    };
    let sent_at = message
        .attributes
        .get("SentTimestamp")
        .and_then(|ms| ms.parse::<i128>().ok())
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok());
    let mut item = unwrap_body(parsed, format!("{path}.body"), origin, seed, true);
    item.sender_id = message.attributes.get("SenderId").cloned();
    // An event the message wraps was sent earlier than the message: the earlier counts.
    item.sent_at = match (item.sent_at, sent_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    item
}

/// An SQS body is a request, an EventBridge event whose `detail` is one, or an SNS
/// notification whose `Message` is either of those.
fn unwrap_body(body: Value, path: String, origin: Origin, seed: String, sns_allowed: bool) -> Delivery {
    let bad = |origin: Origin, raw: Value, field: String, message: String| {
        Delivery::failed(origin, raw, DecodeError::new(field, message))
    };
    if sns_allowed && body.get("Type").and_then(Value::as_str) == Some("Notification") {
        return match serde_json::from_value::<SnsMessage>(body.clone()) {
            Ok(sns) => match serde_json::from_str::<Value>(&sns.message) {
                Ok(inner) => Delivery {
                    wrapped_in: Some("an SNS notification"),
                    ..unwrap_body(inner, format!("{path}.Message"), origin, seed, false)
                },
                Err(e) => bad(
                    origin,
                    Value::String(sns.message),
                    format!("{path}.Message"),
                    format!("is not valid JSON: {e}"),
                ),
            },
            Err(e) => bad(origin, body, path, format!("is not a valid SNS notification: {e}")),
        };
    }
    if body.get("detail-type").is_some() {
        return match serde_json::from_value::<EventBridgeEvent<Value>>(body.clone()) {
            Ok(event) => {
                let seed = event.id.as_ref().map(|id| format!("eventbridge:{id}")).unwrap_or(seed);
                let detail = event.detail;
                let sent_at = event_time(&body);
                Delivery {
                    origin,
                    raw: detail.clone(),
                    decoded: Ok(detail),
                    token_seed: seed,
                    sent_at,
                    sender_id: None,
                    wrapped_in: Some("an EventBridge event"),
                }
            }
            Err(e) => bad(origin, body, path, format!("is not a valid EventBridge event: {e}")),
        };
    }
    Delivery {
        origin,
        raw: body.clone(),
        decoded: Ok(body),
        token_seed: seed,
        sent_at: None,
        sender_id: None,
        wrapped_in: None,
    }
}

/// An EventBridge event's `time`.
fn event_time(event: &Value) -> Option<OffsetDateTime> {
    let time = event.get("time")?.as_str()?;
    OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).ok()
}

/// JSON with object keys sorted at every depth, so equal content hashes equally
/// whatever order its keys arrived in.
pub fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect::<Map<_, _>>())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
