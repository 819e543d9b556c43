//! What an invocation answers (the SQS batch response, or the report of
//! docs/reference.md, "What each request ends as"), and the dry-run block a person reads.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use serde::Serialize;

use crate::decode::Origin;
use crate::outcome::{DeadLetterStatus, Failure, Outcome, RequestResult, TargetResult};
use crate::request::Operation;

/// `batchItemFailures`: exactly the messages SQS must deliver again.
pub struct BatchResponse;

impl BatchResponse {
    /// Fails when a message that must come back has no id to name it by: only
    /// failing the whole invocation gets it delivered again.
    pub fn of(results: &[RequestResult]) -> Result<SqsBatchResponse, String> {
        let mut response = SqsBatchResponse::default();
        for result in results.iter().filter(|r| r.redeliver()) {
            let Some(id) = result.origin.message_id() else {
                return Err("a record without messageId could not be settled; the whole batch is retried".into());
            };
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.to_owned();
            response.batch_item_failures.push(failure);
        }
        Ok(response)
    }
}

/// The answer to a non-SQS invocation: one entry per request, and the totals.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub requests: Vec<Entry<'a>>,
    pub counts: Counts,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry<'a> {
    pub source: &'a Origin,
    pub operation: Option<Operation>,
    pub outcome: Outcome,
    pub dry_run: bool,
    pub targets: &'a [TargetResult],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub children: &'a [serde_json::Value],
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub requests: BTreeMap<&'static str, usize>,
    pub targets: BTreeMap<&'static str, usize>,
}

impl<'a> Report<'a> {
    pub fn of(results: &'a [RequestResult]) -> Report<'a> {
        let requests = results.iter().map(Entry::of).collect();
        let counts = Counts {
            requests: tally(results.iter().map(|r| r.outcome)),
            targets: tally(results.iter().flat_map(|r| r.targets.iter().map(|t| t.outcome))),
        };
        Report { requests, counts }
    }
}

impl<'a> Entry<'a> {
    fn of(result: &'a RequestResult) -> Entry<'a> {
        Entry {
            source: &result.origin,
            operation: result.operation,
            outcome: result.outcome,
            dry_run: result.dry_run,
            targets: &result.targets,
            error: result.error.as_ref(),
            dead_letter: match &result.dead_letter {
                DeadLetterStatus::NotNeeded => None,
                DeadLetterStatus::Published => Some("published"),
                DeadLetterStatus::Failed(_) => Some("failed"),
            },
            account: result.account.as_deref(),
            region: result.region.as_deref(),
            children: &result.children,
        }
    }
}

pub fn tally(outcomes: impl Iterator<Item = Outcome>) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for outcome in outcomes {
        *counts.entry(outcome.as_str()).or_default() += 1;
    }
    counts
}

/// How a plan names a target's outcome; a dry run with an expiry is a notice's.
pub fn label(outcome: &str, with_expiry: bool) -> &str {
    match outcome {
        "dry_run" if with_expiry => "WOULD TAG",
        "dry_run" => "WOULD TERMINATE",
        "protected" => "PROTECTED",
        "skipped" => "SKIPPED",
        "not_found" => "ALREADY GONE",
        other => other,
    }
}

/// The dry-run report a person reads before turning dry run off: one line per
/// target with what would happen and why, then the totals.
pub fn dry_run_block(result: &RequestResult) -> String {
    let mut out = format!("DRY RUN {}: nothing was changed\n", result.operation.map_or("request", Operation::as_str));
    for t in &result.targets {
        let verdict = label(t.outcome.as_str(), t.expires_at.is_some());
        let why = t.reason.as_deref().or(t.error.as_ref().map(|e| e.message.as_str())).unwrap_or("");
        out.push_str(&format!("  {:<16} {:<22} {why}\n", verdict, t.id));
    }
    let totals: Vec<String> =
        tally(result.targets.iter().map(|t| t.outcome)).iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push_str(&format!("  totals: {}", totals.join(" ")));
    out
}
