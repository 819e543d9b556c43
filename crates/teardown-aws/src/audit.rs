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
    /// The same for every publication of one decision (contract section 8): a termination's
    /// end by its target and when it was decided, every other decision by its delivery's
    /// token seed, its target and its outcome.
    pub decision_id: String,
}

/// The decisions of one request: every target that ended (a `transient` one is not
/// decided yet), or one event with no id for a request refused before it had targets.
pub fn decisions(result: &RequestResult, at: &str, region: Option<&str>) -> Vec<Decision> {
    let base = |id: Option<String>, outcome: Outcome, reason: Option<String>| Decision {
        operation: result.operation,
        decision_id: decision_id(result, id.as_deref(), outcome, None),
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
                decision_id: decision_id(result, Some(&t.id), t.outcome, t.decided_at.as_deref()),
                ..base(Some(t.id.clone()), t.outcome, reason)
            }
        })
        .collect()
}

/// A decision's `decisionId`. A termination's end (`confirmed`, `failed`, `unconfirmed`)
/// is named by its target and the moment it was decided, which every publication of it
/// repeats, whoever publishes it; any other decision by the delivery that made it.
fn decision_id(result: &RequestResult, id: Option<&str>, outcome: Outcome, decided_at: Option<&str>) -> String {
    let target = format!(
        "{}#{}#{}#{}",
        result.account.as_deref().unwrap_or(""),
        result.region.as_deref().unwrap_or(""),
        result.operation.map_or("unknown", |o| o.as_str()),
        id.unwrap_or(""),
    );
    match decided_at {
        Some(at) if outcome.is_final_decision() => teardown_core::lifecycle::decision_id_of(&format!("{target}#{at}")),
        _ => {
            teardown_core::lifecycle::decision_id_of(&format!("{}#{target}#{}", result.decision_seed, outcome.as_str()))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Origin;
    use crate::outcome::TargetResult;
    use crate::request::Operation;

    fn result(seed: &str, targets: Vec<TargetResult>) -> RequestResult {
        let origin = Origin::Direct { request_id: seed.into() };
        let mut result = RequestResult::new(origin, Some(Operation::TerminateWorkspaces), Outcome::Confirmed, false);
        (result.account, result.region) = (Some("123456789012".into()), Some("us-east-1".into()));
        result.decision_seed = seed.into();
        result.targets = targets;
        result
    }

    fn decided(id: &str, outcome: Outcome, at: &str) -> TargetResult {
        TargetResult { decided_at: Some(at.into()), ..TargetResult::because(id, outcome, "the termination is done") }
    }

    fn ids(result: &RequestResult) -> Vec<String> {
        decisions(result, "2026-12-08T10:00:00Z", None).into_iter().map(|d| d.decision_id).collect()
    }

    #[test]
    fn every_publication_of_a_terminations_end_carries_the_same_decision_id_whoever_publishes_it() {
        // The check that decided, and another message of its chain publishing it later.
        let maker = result("check-1", vec![decided("ws-1", Outcome::Confirmed, "2026-12-08T10:00:10Z")]);
        let other = result("watch-7", vec![decided("ws-1", Outcome::Confirmed, "2026-12-08T10:00:10Z")]);
        assert_eq!(ids(&maker), ids(&other));
        assert_eq!(ids(&maker)[0].len(), 32);
        // The next termination of the same target is another decision.
        let next = result("check-9", vec![decided("ws-1", Outcome::Confirmed, "2026-12-09T08:00:00Z")]);
        assert_ne!(ids(&maker), ids(&next));
        // As does the same moment for another target.
        let beside = result("check-1", vec![decided("ws-2", Outcome::Confirmed, "2026-12-08T10:00:10Z")]);
        assert_ne!(ids(&maker), ids(&beside));
    }

    #[test]
    fn any_other_decision_is_named_by_its_delivery_target_and_outcome() {
        let skipped = |seed: &str, outcome| result(seed, vec![TargetResult::because("ws-1", outcome, "why")]);
        let first = skipped("msg-1", Outcome::Skipped);
        assert_eq!(ids(&first), ids(&skipped("msg-1", Outcome::Skipped)), "the same delivery again");
        assert_ne!(ids(&first), ids(&skipped("msg-2", Outcome::Skipped)), "another delivery");
        assert_ne!(ids(&first), ids(&skipped("msg-1", Outcome::DryRun)), "another outcome");
        let event = serde_json::to_value(&decisions(&first, "2026-12-08T10:00:00Z", None)[0]).unwrap_or_default();
        assert_eq!(event["decisionId"].as_str().map(str::len), Some(32), "{event}");
    }

    #[test]
    fn a_request_refused_before_it_had_targets_has_a_decision_id_too() {
        let mut refused = result("msg-3", Vec::new());
        refused.outcome = Outcome::Invalid;
        refused.error = Some(crate::outcome::Failure::new("InvalidRequest", "bad"));
        let events = decisions(&refused, "2026-12-08T10:00:00Z", None);
        assert_eq!((events.len(), events[0].id.clone()), (1, None));
        assert_eq!(events[0].decision_id.len(), 32);
    }
}
