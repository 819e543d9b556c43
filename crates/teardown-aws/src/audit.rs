//! docs/reference.md, "Follow-up, audit events and metrics": one EventBridge event per decided target, dry runs included, so the
//! people who run teardown can watch every decision, and a rule before enabling it.
//! An event that cannot be put never changes an outcome and never causes a
//! redelivery: it is logged whole and counted.

use serde::Serialize;
use serde_json::Value;

use crate::outcome::{Outcome, RequestResult};

pub const SOURCE: &str = "teardown";
pub const DETAIL_TYPE: &str = "Teardown Target Decision";
/// docs/reference.md, "Notice": a target tagged with the date it may go, so a rule
/// can route these alone to its owner.
pub const NOTICE_DETAIL_TYPE: &str = "Teardown Target Notice";
/// PutEvents takes at most 10 entries and 256 KiB a call.
const ENTRIES_PER_CALL: usize = 10;
const BYTES_PER_CALL: usize = 256 * 1024;

/// The `Detail` of one audit event.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub operation: Option<crate::request::Operation>,
    /// `None` for a request refused before it had targets.
    pub id: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// A notice: when the target may go (in a dry run, the date it would be given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// A WorkSpace's user, whom a notice is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    pub source: Value,
    pub at: String,
}

/// The decisions of one request: every target that ended (a `transient` one is not
/// decided yet), or one event with no id for a request refused before it had targets.
pub fn decisions(result: &RequestResult, at: &str, region: Option<&str>) -> Vec<Decision> {
    let base = |id: Option<String>, outcome: Outcome, reason: Option<String>| Decision {
        operation: result.operation,
        id,
        outcome,
        reason,
        dry_run: result.dry_run,
        account: result.account.clone(),
        region: result.region.clone().or_else(|| region.map(str::to_owned)),
        job_id: None,
        record_id: None,
        expires_at: None,
        user_name: None,
        source: result.audit_source.clone().unwrap_or_else(|| result.origin.to_json()),
        at: at.to_owned(),
    };
    if result.targets.is_empty() && result.outcome != Outcome::Transient && result.outcome.is_failure() {
        let reason = result.error.as_ref().map(|e| format!("{}: {}", e.code, e.message));
        return vec![base(None, result.outcome, reason)];
    }
    result
        .targets
        .iter()
        // A target that will be retried, or checked again, is not decided yet.
        .filter(|t| t.outcome != Outcome::Transient && !t.pending)
        .map(|t| {
            let reason = t.reason.clone().or_else(|| t.error.as_ref().map(|e| format!("{}: {}", e.code, e.message)));
            Decision {
                job_id: t.job_id.clone(),
                record_id: t.record_id.clone(),
                expires_at: t.expires_at.clone(),
                user_name: t.user_name.clone(),
                at: t.decided_at.clone().unwrap_or_else(|| at.to_owned()),
                ..base(Some(t.id.clone()), t.outcome, reason)
            }
        })
        .collect()
}

/// The bus audit events go to. Without one, none are sent.
#[derive(Clone, Debug)]
pub struct AuditBus {
    client: Option<aws_sdk_eventbridge::Client>,
    bus: Option<String>,
}

impl AuditBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: Option<String>) -> Self {
        AuditBus { client: Some(client), bus }
    }

    pub fn none() -> Self {
        AuditBus { client: None, bus: None }
    }

    /// Puts every decision, 10 (and at most 256 KiB) a call; entries PutEvents
    /// reports failed are put once more. Returns how many could not be put: each is
    /// logged as one JSON line with the whole event and `"auditEventNotSent": true`.
    pub async fn put(&self, decisions: &[Decision]) -> usize {
        let (Some(client), Some(bus)) = (&self.client, &self.bus) else { return 0 };
        let mut not_sent = 0;
        for batch in batches(decisions) {
            let failed = put_batch(client, bus, &batch).await;
            let failed = if failed.is_empty() { failed } else { put_batch(client, bus, &failed).await };
            not_sent += not_sent_lines(&failed);
        }
        not_sent
    }
}

/// Writes each event that could not be put to the log, whole, as one JSON line;
/// returns how many.
pub fn not_sent(decisions: &[Decision]) -> usize {
    not_sent_lines(decisions)
}

fn not_sent_lines(decisions: &[Decision]) -> usize {
    for event in decisions {
        let mut line = serde_json::to_value(event).unwrap_or(Value::Null);
        line["auditEventNotSent"] = Value::Bool(true);
        println!("{line}");
    }
    decisions.len()
}

impl Decision {
    pub fn detail_type(&self) -> &'static str {
        if self.outcome == Outcome::Noticed { NOTICE_DETAIL_TYPE } else { DETAIL_TYPE }
    }
}

/// Entries cut by count and by size.
fn batches(decisions: &[Decision]) -> Vec<Vec<Decision>> {
    let size = |d: &Decision| serde_json::to_string(d).map_or(0, |s| s.len()) + SOURCE.len() + d.detail_type().len();
    crate::batches::cut(decisions.iter().cloned(), size, ENTRIES_PER_CALL, BYTES_PER_CALL)
}

/// Puts one batch; returns the decisions that were not put.
async fn put_batch(client: &aws_sdk_eventbridge::Client, bus: &str, batch: &[Decision]) -> Vec<Decision> {
    use aws_sdk_eventbridge::types::PutEventsRequestEntry;
    let entries: Vec<PutEventsRequestEntry> = batch
        .iter()
        .map(|d| {
            PutEventsRequestEntry::builder()
                .source(SOURCE)
                .detail_type(d.detail_type())
                .detail(serde_json::to_string(d).unwrap_or_default())
                .event_bus_name(bus)
                .build()
        })
        .collect();
    match client.put_events().set_entries(Some(entries)).send().await {
        // Results come in the order of the entries; one with an error code failed.
        Ok(out) => batch
            .iter()
            .zip(out.entries().iter().map(Some).chain(std::iter::repeat(None)))
            .filter(|(_, r)| r.is_none_or(|r| r.error_code().is_some()))
            .map(|(d, _)| d.clone())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %crate::classify::classify(&e), "PutEvents failed; the audit events of this batch are put once more");
            batch.to_vec()
        }
    }
}
