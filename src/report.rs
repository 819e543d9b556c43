//! The answer to a non-SQS invocation, and the one log line per request.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::handler::{DeadLetterStatus, ItemResult};
use crate::outcome::Outcome;

/// One entry per request with its outcome and its targets', plus totals.
pub fn report(results: &[ItemResult]) -> Value {
    let requests: Vec<Value> = results.iter().map(entry).collect();
    let request_counts = tally(results.iter().map(|r| r.outcome));
    let target_counts = tally(results.iter().flat_map(|r| r.targets.iter().map(|t| t.outcome)));
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
    let error = result.error.as_ref().map(|e| format!("{}: {}", e.code, e.message));
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
                protected = count(Outcome::Protected),
                skipped = count(Outcome::Skipped),
                rejected = count(Outcome::Rejected),
                transient = count(Outcome::Transient),
                error,
                "request settled"
            )
        };
    }
    if result.dry_run && !result.targets.is_empty() {
        tracing::info!(request_id, message_id, "{}", dry_run_block(result));
    }
    match result.outcome {
        Outcome::Terminated | Outcome::NotFound | Outcome::DryRun | Outcome::Protected | Outcome::Skipped => {
            line!(info)
        }
        Outcome::Transient => line!(warn),
        Outcome::Invalid | Outcome::Rejected => line!(error),
    }
}

/// The dry-run report a person reads before turning dry run off: one line per
/// target with what would happen and why, then the totals.
pub fn dry_run_block(result: &ItemResult) -> String {
    let mut out = format!("DRY RUN {}: nothing was changed\n", result.operation.unwrap_or("request"));
    for t in &result.targets {
        let verdict = match t.outcome {
            Outcome::DryRun => "WOULD TERMINATE",
            Outcome::Protected => "PROTECTED",
            Outcome::Skipped => "SKIPPED",
            Outcome::NotFound => "ALREADY GONE",
            _ => t.outcome.as_str(),
        };
        let why = t.reason.as_deref().or(t.error.as_ref().map(|e| e.message.as_str())).unwrap_or("");
        out.push_str(&format!("  {:<16} {:<22} {why}\n", verdict, t.id));
    }
    let totals: Vec<String> =
        tally(result.targets.iter().map(|t| t.outcome)).iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push_str(&format!("  totals: {}", totals.join(" ")));
    out
}
