//! The answer to a non-SQS invocation, and the one log line per request.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::handler::{DeadLetterStatus, ItemResult};
use crate::outcome::Outcome;

/// One entry per request with its outcome and its targets', plus totals.
pub fn report(results: &[ItemResult]) -> Value {
    let requests: Vec<Value> = results.iter().map(entry).collect();
    let request_counts = tally(results.iter().map(|r| r.outcome));
    let target_counts = tally(
        results
            .iter()
            .flat_map(|r| r.targets.iter().map(|t| t.outcome)),
    );
    json!({ "requests": requests, "counts": { "requests": request_counts, "targets": target_counts } })
}

fn entry(result: &ItemResult) -> Value {
    let mut entry = json!({
        "source": result.origin.to_json(),
        "operation": result.operation,
        "outcome": result.outcome,
        "dryRun": result.dry_run,
        "targets": result.targets,
    });
    if let Some(error) = &result.error {
        entry["error"] = json!(error);
    }
    let dead_letter = match &result.dead_letter {
        DeadLetterStatus::NotNeeded => None,
        DeadLetterStatus::Published => Some("published"),
        DeadLetterStatus::Failed(_) => Some("failed"),
    };
    if let Some(status) = dead_letter {
        entry["deadLetter"] = json!(status);
    }
    entry
}

fn tally(outcomes: impl Iterator<Item = Outcome>) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for outcome in outcomes {
        *counts.entry(outcome.as_str()).or_default() += 1;
    }
    counts
}

/// One line per request outcome, with the ids a person searches logs by.
pub fn log(result: &ItemResult, request_id: &str) {
    let counts = tally(result.targets.iter().map(|t| t.outcome));
    let count = |o: Outcome| counts.get(o.as_str()).copied().unwrap_or(0);
    let message_id = result.origin.message_id();
    let error = result
        .error
        .as_ref()
        .map(|e| format!("{}: {}", e.code, e.message));
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                request_id,
                message_id,
                operation = result.operation,
                outcome = result.outcome.as_str(),
                dry_run = result.dry_run,
                targets = result.targets.len(),
                terminated = count(Outcome::Terminated),
                not_found = count(Outcome::NotFound),
                rejected = count(Outcome::Rejected),
                transient = count(Outcome::Transient),
                error,
                "request settled"
            )
        };
    }
    match result.outcome {
        Outcome::Terminated | Outcome::NotFound | Outcome::DryRun => line!(info),
        Outcome::Transient => line!(warn),
        Outcome::Invalid | Outcome::Rejected => line!(error),
    }
}
