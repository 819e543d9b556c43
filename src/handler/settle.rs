//! Step 4: each request's outcome, and its dead-letter record when one is owed.
//! It reads the answers by target id and knows nothing of how calls were shared.

use std::collections::BTreeMap;

use super::admit::Accepted;
use super::app::{App, Invocation};
use super::execute::CallResults;
use super::ownership;
use super::resolve::{Resolution, Resolved};
use crate::classify::ServiceError;
use crate::confirm::{Check, Followed};
use crate::deadletter::{DeadLetterRecord, FailedTarget};
use crate::decode::{Delivery, Origin};
use crate::guard::Verdict;
use crate::outcome::{Failure, Outcome, RequestResult, TargetResult};
use crate::request::{Operation, Request, Target, retry_request};
use crate::state::{ChainStart, Key};

/// A request (or a check) at its end, before its record is published and its
/// follow-up sent.
pub(super) struct Settled {
    pub result: RequestResult,
    pub record: Option<DeadLetterRecord>,
    /// The checks to send (one, unless it would not fit a message), and their delay.
    pub follow_up: Vec<(Check, u64)>,
    /// With a state table: the chains of the targets this request's own calls got
    /// accepted, written as their check is sent.
    pub chains: Vec<ChainStart>,
    /// With a state table: the MGN servers claimed for calls that were refused, free again.
    pub releases: Vec<(Key, String)>,
    /// With a state table: chains this request took over before its calls, as (key,
    /// its own chain, the one it took over), given back if its check is not sent.
    pub reverts: Vec<(Key, String, String)>,
}

impl Settled {
    pub fn new(result: RequestResult, record: Option<DeadLetterRecord>, follow_up: Vec<(Check, u64)>) -> Self {
        Settled { result, record, follow_up, chains: Vec::new(), releases: Vec::new(), reverts: Vec::new() }
    }
}

/// A request refused before any call: `invalid`, with its record.
pub(super) fn refused(
    app: &App,
    delivery: Delivery,
    operation: Option<Operation>,
    dry_run: bool,
    failure: Failure,
) -> Settled {
    let result = RequestResult {
        error: Some(failure.clone()),
        ..RequestResult::new(delivery.origin.clone(), operation, Outcome::Invalid, dry_run)
    };
    let record = record(app, &delivery, operation, Outcome::Invalid, failure, Vec::new(), None);
    Settled::new(result, Some(record), Vec::new())
}

pub(super) fn settle(ctx: &Invocation<'_>, resolved: Resolved, results: &CallResults) -> Settled {
    let (app, home) = (ctx.app, &ctx.home);
    let Resolved {
        accepted: Accepted { delivery, request, dry_run, .. },
        resolution,
        found_product,
        chain,
        chains_won,
        recovered,
    } = resolved;
    let operation = Some(request.operation());
    // The targets this request's calls were to be made for: their intents (and MGN
    // claims) go when the call was refused.
    let called: Vec<String> = match &resolution {
        Resolution::Judged(judged) => {
            judged.iter().filter(|(_, v)| matches!(v, Verdict::Terminate { .. })).map(|(id, _)| id.clone()).collect()
        }
        _ => Vec::new(),
    };
    // What a retry or a check names: never a product's name, which a product created
    // later could take.
    let replayable = request.replayable(found_product.as_deref());

    // What the request as a whole came to, when it is decided before any target is.
    let mut request_failure: Option<ServiceError> = None;
    let targets: Vec<TargetResult> = match resolution {
        Resolution::Failed(error) => {
            let targets = error.for_each(&request.named_ids().unwrap_or_default());
            request_failure = Some(error);
            targets
        }
        Resolution::TooMany(count) => {
            let message = format!(
                "select matched {count} targets, more than MAX_TARGETS ({}): nothing was terminated",
                app.settings.max_targets
            );
            request_failure = Some(ServiceError::new(Outcome::Invalid, "TooManyTargets", message));
            Vec::new()
        }
        Resolution::Judged(judged) => {
            judged.into_iter().map(|(id, verdict)| target_result(&request, dry_run, id, verdict, results)).collect()
        }
    };

    let empty_outcome = if dry_run { Outcome::DryRun } else { Outcome::NotFound };
    let outcome = match &request_failure {
        Some(error) => error.outcome,
        None => Outcome::worst(targets.iter().map(|t| t.outcome)).unwrap_or(empty_outcome),
    };
    let failed: Vec<&TargetResult> = targets.iter().filter(|t| t.outcome.is_failure()).collect();
    let error = match &request_failure {
        Some(error) => Some(error.failure.clone()),
        None => summarize(&failed, targets.len()),
    };

    // A message SQS will redeliver gets its record when it settles, not now: a record
    // per attempt would fill the dead-letter queue with duplicates. On its last
    // delivery it is settled here, so the dead-letter queue holds a record, not a bare body.
    let last_delivery = app.last_delivery(&delivery.origin);
    let sqs = matches!(delivery.origin, Origin::Sqs { .. });
    let redelivered = sqs && outcome == Outcome::Transient && delivery.origin.message_id().is_some() && !last_delivery;
    let record = match (&error, outcome.is_failure() && !redelivered) {
        (Some(failure), true) => {
            let failed_targets = failed_targets(&failed);
            let ids: Vec<String> = failed.iter().map(|t| t.id.clone()).collect();
            let retry = match (&request_failure, request.named_ids()) {
                (Some(error), _) if error.outcome == Outcome::Invalid => None,
                // A selection's lookup failed before any target was known: the request
                // itself is the retry.
                // Without its `origin`: a replay derives fresh tokens.
                (Some(_), None) => Some(without_origin(&delivery.raw)),
                _ => replayable.as_ref().and_then(|replay| retry_request(replay, &ids)),
            };
            let retry = retry.map(|retry| effective_dry_run(retry, dry_run));
            let mut failure = failure.clone();
            if retry.is_none() && replayable.is_none() && outcome != Outcome::Invalid {
                // The person reading the record must know why it cannot simply be sent back.
                failure.message.push_str(
                    "; no retryRequest: the product was named by name and no lookup found its id, and a replay by name could reach a product created under that name since",
                );
            }
            let mut record = record(app, &delivery, operation, outcome, failure, failed_targets, retry);
            // The record names the place only when the request named another one.
            record.account = request.account.clone();
            record.region = request.region.clone();
            Some(record)
        }
        _ => None,
    };
    let follow_up = match (&replayable, dry_run) {
        (Some(replayable), false) => {
            follow_up(app, replayable, &delivery, &targets, chain.as_deref(), &chains_won, &recovered)
        }
        // A product accepted for termination was found, so it has an id; without one
        // there is nothing the check could name.
        (None, _) | (_, true) => Vec::new(),
    };
    let (account, region) = home.or_own(request.account.clone(), request.region.clone());
    let mut settled_chains = Vec::new();
    let mut releases = Vec::new();
    if let (Some(chain), Some(replayable)) = (&chain, &replayable)
        && !follow_up.is_empty()
    {
        let source = delivery.origin.to_json();
        for t in targets.iter().filter(|t| t.outcome == Outcome::Terminated && !t.underway) {
            let start = ownership::chain_start(ctx, replayable, &source, chain, followed(t), true);
            settled_chains.push(start);
        }
    }
    // Chains taken over before the calls: given back should their check not go out.
    let mut reverts = Vec::new();
    if let (Some(chain), Some(replayable)) = (&chain, &replayable) {
        for (id, previous) in &chains_won {
            if let Some(previous) = previous {
                reverts.push((ownership::key(ctx, replayable, id), chain.clone(), previous.clone()));
            }
        }
    }
    if let Some(chain) = &chain {
        for t in targets.iter().filter(|t| called.contains(&t.id)) {
            // A transient call may have been accepted all the same: its intent stays.
            if !matches!(t.outcome, Outcome::Terminated | Outcome::Transient) {
                // Under the key the intent was written with: a product by its id.
                let keyed = replayable.as_ref().unwrap_or(&request);
                releases.push((ownership::key(ctx, keyed, &t.id), chain.clone()));
            }
        }
    }
    let result = RequestResult {
        targets,
        error,
        account,
        region,
        ..RequestResult::new(delivery.origin, operation, outcome, dry_run)
    };
    Settled { chains: settled_chains, releases, reverts, ..Settled::new(result, record, follow_up) }
}

/// docs/reference.md, "Follow-up, audit events and metrics": every `terminated` target is followed up, in one check per request
/// (targets accepted together are due together). Dry runs are not. A target found
/// already on its way out (an earlier call's) is followed up, with a state table,
/// when this request started its chain (no other chain owned it); without one, only
/// when this is a redelivery: the earlier attempt may not have sent its check; on a
/// first delivery the call that started it is followed up by whoever made it.
fn follow_up(
    app: &App,
    request: &Request,
    delivery: &Delivery,
    targets: &[TargetResult],
    chain: Option<&str>,
    chains_won: &std::collections::HashMap<String, Option<String>>,
    recovered: &std::collections::HashMap<String, Followed>,
) -> Vec<(Check, u64)> {
    if !app.request_queue.is_set() {
        return Vec::new();
    }
    let redelivery = delivery.origin.receive_count().is_some_and(|n| n > 1);
    let ours = |t: &TargetResult| match chain {
        Some(_) => !t.underway || chains_won.contains_key(&t.id),
        None => !t.underway || redelivery,
    };
    let mut followed: Vec<Followed> = targets
        .iter()
        .filter_map(|t| match t.outcome {
            Outcome::Terminated if ours(t) => Some(followed(t)),
            _ => None,
        })
        .collect();
    // Gone (or finished, or no longer listed), but its chain was never sent, or the
    // answer of the call that was to start one never came: checked, it is decided.
    let mut recovered: Vec<&Followed> = recovered.values().filter(|r| !followed.iter().any(|f| f.id == r.id)).collect();
    recovered.sort_by(|a, b| a.id.cmp(&b.id));
    followed.extend(recovered.into_iter().cloned());
    if followed.is_empty() {
        return Vec::new();
    }
    let checks = checks_of(app, request, delivery.origin.to_json(), chain, followed, 1);
    checks.into_iter().map(|c| (c, crate::confirm::delay(1))).collect()
}

/// The checks (`attempt` 1) or watch (`attempt` 0) of `targets` of `request`, accepted
/// now: each message with the request for exactly its own targets.
pub(super) fn checks_of(
    app: &App,
    request: &Request,
    source: serde_json::Value,
    chain: Option<&str>,
    targets: Vec<Followed>,
    attempt: u32,
) -> Vec<Check> {
    let check = Check {
        operation: request.operation().as_str().to_owned(),
        targets,
        accepted_at: timestamp(app),
        attempt,
        source,
        request: serde_json::Value::Null,
        chain: chain.map(str::to_owned),
    };
    crate::confirm::split(check, |ids| retry_request(request, ids).unwrap_or_default())
}

/// A target as its check follows it.
fn followed(t: &TargetResult) -> Followed {
    Followed { id: t.id.clone(), job_id: t.job_id.clone(), record_id: t.record_id.clone() }
}

/// The failed targets of a record, each with its own code and message.
pub(super) fn failed_targets(failed: &[&TargetResult]) -> Vec<FailedTarget> {
    failed
        .iter()
        .map(|t| {
            let e = t.error.clone().unwrap_or_else(|| Failure::new("Unknown", t.reason.clone().unwrap_or_default()));
            FailedTarget { id: t.id.clone(), code: e.code, message: e.message }
        })
        .collect()
}

/// Now, to the second, as RFC 3339.
pub(super) fn timestamp(app: &App) -> String {
    (app.clock)()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// One target's end: its verdict, or what its call answered.
fn target_result(
    request: &Request,
    dry_run: bool,
    id: String,
    verdict: Verdict,
    results: &CallResults,
) -> TargetResult {
    match verdict {
        Verdict::Stop { outcome, reason } => TargetResult::because(id, outcome, reason),
        Verdict::Terminate { reason, .. } if dry_run => {
            TargetResult::because(id, Outcome::DryRun, format!("would be terminated; {reason}"))
        }
        Verdict::Terminate { reason, call_id } => {
            // A Service Catalog answer is read by the product the call named.
            let called = match &request.target {
                Target::ProvisionedProduct(_) => Some(call_id.as_deref().unwrap_or(&id)),
                Target::Workspaces(_) | Target::TargetInstances(_) => None,
            };
            let mut result = results.get(request.operation(), &id, called).cloned().unwrap_or_else(|| unrecorded(&id));
            result.reason = Some(reason);
            result
        }
        Verdict::Notice { expires_at, reason, user_name, .. } => {
            let result = if dry_run {
                let why = format!("would be tagged {}={expires_at}; {reason}", crate::guard::EXPIRES_TAG);
                TargetResult::because(&id, Outcome::DryRun, why)
            } else {
                let mut result = results.notice(request.operation(), &id).cloned().unwrap_or_else(|| unrecorded(&id));
                if result.outcome == Outcome::Noticed {
                    result.reason = Some(format!("{}; {reason}", result.reason.unwrap_or_default()));
                }
                result
            };
            // The date the tag holds: another request of the batch may have written it first.
            let expires_at = result.expires_at.clone().or(Some(expires_at));
            TargetResult { expires_at, user_name, ..result }
        }
        Verdict::Underway { job_id, reason } => {
            let (outcome, reason) = if dry_run {
                (Outcome::DryRun, format!("{reason}: nothing would be sent"))
            } else {
                (Outcome::Terminated, reason)
            };
            let result = TargetResult { underway: true, ..TargetResult::because(id, outcome, reason) };
            // The work under way is an MGN job, or a Service Catalog record.
            match request.target {
                Target::ProvisionedProduct(_) => TargetResult { record_id: job_id, ..result },
                Target::TargetInstances(_) => TargetResult { job_id, ..result },
                Target::Workspaces(_) => result,
            }
        }
        Verdict::Unreadable { outcome, failure } => TargetResult::failed(id, outcome, failure),
        Verdict::Unselected => TargetResult::because(id, Outcome::Skipped, "not selected"),
    }
}

/// A call whose answer was never filed: left for another attempt, never lost.
fn unrecorded(id: &str) -> TargetResult {
    TargetResult::failed(id, Outcome::Transient, Failure::new("InternalError", "no result was recorded"))
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

pub(super) fn record(
    app: &App,
    delivery: &Delivery,
    operation: Option<Operation>,
    outcome: Outcome,
    error: Failure,
    failed_targets: Vec<FailedTarget>,
    retry_request: Option<serde_json::Value>,
) -> DeadLetterRecord {
    DeadLetterRecord {
        version: 1,
        failed_at: timestamp(app),
        source: delivery.origin.to_json(),
        request: delivery.raw.clone(),
        outcome,
        error,
        failed_targets,
        retry_request,
        account: None,
        region: None,
        truncated: false,
        operation: operation.map(|o| o.as_str().to_owned()),
        message_group_id: match &delivery.origin {
            Origin::Sqs { message_group_id, .. } => message_group_id.clone(),
            Origin::EventBridge { .. } | Origin::Direct { .. } => None,
        },
    }
}

/// docs/reference.md, "The dead-letter record": what a dry run leaves behind says `"dryRun": true`, whether the
/// request said so or the settings made it one (`DRY_RUN`, `ENFORCE_DRY_RUN`, which
/// outranks a request's `"dryRun": false`). A replay is never more than what happened.
pub(super) fn effective_dry_run(mut request: serde_json::Value, dry_run: bool) -> serde_json::Value {
    if dry_run && let serde_json::Value::Object(map) = &mut request {
        map.insert("dryRun".into(), serde_json::Value::Bool(true));
    }
    request
}

pub(super) fn without_origin(raw: &serde_json::Value) -> serde_json::Value {
    let mut raw = raw.clone();
    if let serde_json::Value::Object(map) = &mut raw {
        map.remove("origin");
    }
    raw
}
