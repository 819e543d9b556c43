//! Step 4: each item's outcome, and its dead-letter record when one is owed.

use std::collections::BTreeMap;

use super::execute::Results;
use super::resolve::Resolution;
use super::{App, DeadLetterStatus, ItemResult, Prepared};
use crate::deadletter::{DeadLetterRecord, FailedTarget};
use crate::decode::{Item, Origin};
use crate::guard::Verdict;
use crate::outcome::{Failure, Outcome, TargetResult};
use crate::request::{Operation, Scope, retry_request};

pub(super) fn settle(
    app: &App,
    p: Prepared,
    resolution: Resolution,
    results: &Results,
    index: usize,
) -> (ItemResult, Option<DeadLetterRecord>) {
    let sqs = matches!(p.item.origin, Origin::Sqs { .. });
    let request = match p.request {
        Err(error) => {
            let operation = p
                .item
                .decoded
                .as_ref()
                .ok()
                .and_then(|v| v.get("operation"))
                .and_then(serde_json::Value::as_str)
                .and_then(Operation::parse)
                .map(|o| o.as_str());
            let failure = Failure::new(error.code, error.to_string());
            let result = ItemResult {
                origin: p.item.origin.clone(),
                operation,
                outcome: Outcome::Invalid,
                dry_run: p.dry_run,
                targets: Vec::new(),
                error: Some(failure.clone()),
                dead_letter: DeadLetterStatus::NotNeeded,
            };
            let record = record(app, &p.item, operation, Outcome::Invalid, failure, Vec::new(), None);
            return (result, Some(record));
        }
        Ok(request) => request,
    };
    let operation = Some(request.operation.as_str());
    let named_ids = match &request.scope {
        Scope::Named(targets) => targets.ids(),
        Scope::Select(_) => Vec::new(),
    };

    // What the request as a whole came to, when it is decided before any target is.
    let mut request_failure: Option<(Outcome, Failure)> = None;
    let targets: Vec<TargetResult> = match resolution {
        Resolution::Nothing => Vec::new(),
        Resolution::Failed(outcome, failure) => {
            request_failure = Some((outcome, failure.clone()));
            named_ids.iter().map(|id| TargetResult::failed(id, outcome, failure.clone())).collect()
        }
        Resolution::TooMany(count) => {
            let failure = Failure::new(
                "TooManyTargets",
                format!(
                    "select matched {count} targets, more than MAX_TARGETS ({}): nothing was terminated",
                    app.settings.max_targets
                ),
            );
            request_failure = Some((Outcome::Invalid, failure));
            Vec::new()
        }
        Resolution::Judged(judged) => judged
            .into_iter()
            .map(|(id, verdict)| match verdict {
                Verdict::Stop { outcome, reason } => TargetResult::because(id, outcome, reason),
                Verdict::Terminate { reason, .. } if p.dry_run => {
                    TargetResult::because(id, Outcome::DryRun, format!("would be terminated; {reason}"))
                }
                Verdict::Terminate { reason, .. } => {
                    let done = match request.operation {
                        Operation::TerminateWorkspaces => results.shared.get(&id),
                        _ => results.owned.get(&index).and_then(|m| m.get(&id)),
                    };
                    let mut result = done.cloned().unwrap_or_else(|| {
                        TargetResult::failed(
                            &id,
                            Outcome::Transient,
                            Failure::new("InternalError", "no result was recorded"),
                        )
                    });
                    result.reason = Some(reason);
                    result
                }
                Verdict::Underway { job_id, reason } => {
                    let (outcome, reason) = if p.dry_run {
                        (Outcome::DryRun, format!("{reason}: nothing would be sent"))
                    } else {
                        (Outcome::Terminated, reason)
                    };
                    let result = TargetResult::because(id, outcome, reason);
                    // The work under way is an MGN job or a Service Catalog record.
                    match request.operation {
                        Operation::TerminateProvisionedProduct => TargetResult { record_id: Some(job_id), ..result },
                        _ => TargetResult { job_id: Some(job_id), ..result },
                    }
                }
                Verdict::Unselected => TargetResult::because(id, Outcome::Skipped, "not selected"),
            })
            .collect(),
    };

    let empty_outcome = if p.dry_run { Outcome::DryRun } else { Outcome::NotFound };
    let outcome = match &request_failure {
        Some((outcome, _)) => *outcome,
        None => Outcome::worst(targets.iter().map(|t| t.outcome)).unwrap_or(empty_outcome),
    };
    let failed: Vec<&TargetResult> = targets.iter().filter(|t| t.outcome.is_failure()).collect();
    let error = match &request_failure {
        Some((_, failure)) => Some(failure.clone()),
        None => summarize(&failed, targets.len()),
    };

    // A message SQS will redeliver gets its record when it settles, not now: a record
    // per attempt would fill the dead-letter queue with duplicates. On its last
    // delivery it is settled here, so the dead-letter queue holds a record, not a bare body.
    let last_delivery = match (app.settings.max_receives, p.item.origin.receive_count()) {
        (Some(max), Some(count)) => count >= max,
        _ => false,
    };
    let redelivered = sqs && outcome == Outcome::Transient && p.item.origin.message_id().is_some() && !last_delivery;
    let record = match (&error, outcome.is_failure() && !redelivered) {
        (Some(failure), true) => {
            let failed_targets = failed
                .iter()
                .map(|t| {
                    let e = t
                        .error
                        .clone()
                        .unwrap_or_else(|| Failure::new("Unknown", t.reason.clone().unwrap_or_default()));
                    FailedTarget { id: t.id.clone(), code: e.code, message: e.message }
                })
                .collect();
            let ids: Vec<String> = failed.iter().map(|t| t.id.clone()).collect();
            let retry = match (&request_failure, &request.scope) {
                // The lookup failed before any target was known: the request itself is the retry.
                (Some((Outcome::Transient | Outcome::Rejected, _)), Scope::Select(_)) => Some(p.item.raw.clone()),
                (Some((Outcome::Invalid, _)), _) => None,
                _ => retry_request(&request, &ids),
            };
            Some(record(app, &p.item, operation, outcome, failure.clone(), failed_targets, retry))
        }
        _ => None,
    };
    let result = ItemResult {
        origin: p.item.origin.clone(),
        operation,
        outcome,
        dry_run: p.dry_run,
        targets,
        error,
        dead_letter: DeadLetterStatus::NotNeeded,
    };
    (result, record)
}

/// One error for the whole request: the target's own when one failed, else a count.
fn summarize(failed: &[&TargetResult], total: usize) -> Option<Failure> {
    let first = failed.first()?;
    let first =
        first.error.clone().unwrap_or_else(|| Failure::new("Unknown", first.reason.clone().unwrap_or_default()));
    if failed.len() == 1 {
        return Some(first);
    }
    let codes: BTreeMap<&str, usize> = failed.iter().fold(BTreeMap::new(), |mut m, t| {
        *m.entry(t.error.as_ref().map_or("Unknown", |e| e.code.as_str())).or_default() += 1;
        m
    });
    let code = if codes.len() == 1 { first.code.clone() } else { "MultipleErrors".to_owned() };
    let detail: Vec<String> = codes.iter().map(|(c, n)| format!("{c} ×{n}")).collect();
    Some(Failure::new(code, format!("{} of {total} targets failed: {}", failed.len(), detail.join(", "))))
}

fn record(
    app: &App,
    item: &Item,
    operation: Option<&'static str>,
    outcome: Outcome,
    error: Failure,
    failed_targets: Vec<FailedTarget>,
    retry_request: Option<serde_json::Value>,
) -> DeadLetterRecord {
    let failed_at = (app.clock)()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    DeadLetterRecord {
        version: 1,
        failed_at,
        source: item.origin.to_json(),
        request: item.raw.clone(),
        outcome,
        error,
        failed_targets,
        retry_request,
        truncated: false,
        operation: operation.map(str::to_owned),
        message_group_id: match &item.origin {
            Origin::Sqs { message_group_id, .. } => message_group_id.clone(),
            _ => None,
        },
    }
}
