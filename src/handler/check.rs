//! docs/reference.md, "Follow-up, audit events and metrics": a follow-up check that came back. It asks the service once where
//! each target is, and ends it (`confirmed`, `failed`, `unconfirmed`) or sends the
//! check again, later, for the targets still on their way.

use futures_util::{StreamExt, stream};

use super::app::{App, CONCURRENCY, Invocation};
use super::ownership;
use super::settle::{Settled, failed_targets, record};
use crate::classify::ServiceError;
use crate::confirm::{Check, Decision, Followed, Status};
use crate::decode::Delivery;
use crate::outcome::{Failure, Outcome, RequestResult, TargetResult};
use crate::request::{Limits, Operation, Request, retry_request, validate};
use crate::state::{CheckEnd, CheckOf, Ended, Item, Written};

/// Works the checks of a batch, each on its own.
pub(super) async fn settle_checks(ctx: &Invocation<'_>, checks: Vec<(Delivery, Check, Request)>) -> Vec<Settled> {
    stream::iter(checks)
        .map(|(delivery, check, request)| settle_check(ctx, delivery, check, request))
        .buffered(CONCURRENCY)
        .collect()
        .await
}

async fn settle_check(ctx: &Invocation<'_>, delivery: Delivery, mut check: Check, request: Request) -> Settled {
    let (app, home, now) = (ctx.app, &ctx.home, ctx.now);
    let operation = check.operation();
    let last_delivery = app.last_delivery(&delivery.origin);
    let place = home.place_of(&request);
    let (account, region) = home.or_own(request.account.clone(), request.region.clone());
    let asked = ctx
        .bounded(async {
            let services = app.services_for(&place, home, ctx.request_id).await?;
            ask(&services, &check).await
        })
        .await;
    let statuses = match asked {
        Ok(statuses) => statuses,
        // A watch that cannot ask decides nothing: it comes back, and on its last
        // delivery it ends without effect (it may watch calls that never went in).
        Err(error) if check.is_watch() && !last_delivery => return cannot_check(app, delivery, &check, error),
        Err(error) if check.is_watch() => {
            tracing::warn!(error = %error, chain = check.chain.as_deref(), "a watch could not ask on its last delivery");
            return without_effect(delivery, operation, 0);
        }
        // On its last delivery, a check of a chain that cannot ask ends its targets
        // `unconfirmed` through the same writes as any end: decided once, by whichever
        // copy writes first, and what this very check decided before its invocation
        // died is published as it was, never a second decision.
        Err(error) if last_delivery && check.chain.is_some() && app.state.is_set() => {
            let pending = Status::Pending(format!("the service could not be asked: {error}"));
            check.targets.iter().map(|t| (t.id.clone(), (pending.clone(), None))).collect()
        }
        Err(error) => return cannot_check(app, delivery, &check, error),
    };

    // A watch follows up only what was left without a follow-up (`StateTable::watch`);
    // the rest, by far the most, it leaves alone, without effect.
    if check.is_watch() {
        let watched = match (&check.chain, app.state.is_set()) {
            (Some(chain), true) => watched(ctx, &delivery, chain, &check, &request, &statuses).await,
            _ => Ok(std::collections::HashSet::new()),
        };
        match watched {
            Ok(watched) => check.targets.retain(|t| watched.contains(&t.id)),
            Err(error) if !last_delivery => return cannot_check(app, delivery, &check, error),
            Err(_) => check.targets.clear(),
        }
        if check.targets.is_empty() {
            return without_effect(delivery, operation, 0);
        }
        tracing::warn!(chain = check.chain.as_deref(), targets = ?check.targets, "a watch follows up terminations left without a follow-up");
    }

    let mut targets: Vec<TargetResult> = Vec::new();
    let mut again: Vec<(Followed, u64)> = Vec::new();
    for followed in &check.targets {
        let (status, found) = statuses
            .iter()
            .find(|(id, _)| id == &followed.id)
            .map(|(_, (s, found))| (s.clone(), found.clone()))
            .unwrap_or_else(|| (Status::Pending("the service did not answer for it".into()), None));
        // The job or record a check without one found: it is what is decided, and what
        // the next check follows.
        let followed = &Followed {
            id: followed.id.clone(),
            job_id: followed
                .job_id
                .clone()
                .or_else(|| found.clone().filter(|_| operation == Some(Operation::TerminateTargetInstances))),
            record_id: followed
                .record_id
                .clone()
                .or_else(|| found.filter(|_| operation == Some(Operation::TerminateProvisionedProduct))),
        };
        let mut decision = crate::confirm::decide(status, &check, now, app.settings.confirm_within);
        // A check that cannot go on (no request queue here, or its own last delivery:
        // SQS would move it bare to the dead-letter queue) ends what is pending now.
        if let Decision::Again { why, .. } = &decision {
            if !app.request_queue.is_set() {
                decision = Decision::Unconfirmed(format!(
                    "{why}; REQUEST_QUEUE_URL is not set, so it cannot be checked again"
                ));
            } else if last_delivery {
                decision = Decision::Unconfirmed(format!("{why}; the check's last delivery"));
            }
        }
        let mut result = match decision {
            Decision::Confirmed => TargetResult::because(&followed.id, Outcome::Confirmed, "the termination is done"),
            Decision::Failed(failure) => TargetResult::failed(&followed.id, Outcome::Failed, failure),
            Decision::Unconfirmed(why) => TargetResult {
                reason: Some(why.clone()),
                ..TargetResult::failed(&followed.id, Outcome::Unconfirmed, Failure::new("Unconfirmed", why))
            },
            Decision::Again { delay, why } => {
                again.push((followed.clone(), delay));
                TargetResult {
                    pending: true,
                    ..TargetResult::because(
                        &followed.id,
                        Outcome::Terminated,
                        format!("{why}: checked again in {delay} s"),
                    )
                }
            }
        };
        result.job_id = followed.job_id.clone();
        result.record_id = followed.record_id.clone();
        targets.push(result);
    }

    // With a state table, each end goes in only where this check's chain still owns the
    // target and nothing was decided: a copy of this check, or a chain taken over, ends
    // without effect (no event, no record, no further check).
    let mut checks_dropped = 0;
    let mut announce = Vec::new();
    if let (Some(_), true) = (&check.chain, app.state.is_set()) {
        let now_s = now.unix_timestamp();
        let ends: Vec<(String, CheckEnd)> = targets
            .iter()
            .map(|t| {
                let of = t.job_id.clone().or_else(|| t.record_id.clone());
                let end = match t.outcome {
                    Outcome::Confirmed => CheckEnd::Decided { decision: "confirmed", error: None, of },
                    Outcome::Failed => CheckEnd::Decided {
                        decision: "failed",
                        error: t.error.as_ref().map(|e| format!("{}: {}", e.code, e.message)),
                        of,
                    },
                    Outcome::Unconfirmed => CheckEnd::Decided { decision: "unconfirmed", error: t.reason.clone(), of },
                    _ => {
                        let delay =
                            again.iter().find(|(f, _)| f.id == t.id).map_or(crate::confirm::FIRST_DELAY, |(_, d)| *d);
                        CheckEnd::Again { due_at: now_s + i64::try_from(delay).unwrap_or(900) }
                    }
                };
                (t.id.clone(), end)
            })
            .collect();
        let (kept, dropped, redone) = match owned_ends(ctx, &delivery, &check, &request, &ends).await {
            Ok(owned) => owned,
            Err(error) => return cannot_check(app, delivery, &check, error),
        };
        // Decided now, or before (by this very check before its invocation died, or by
        // another message of its chain that never published it): then what was decided
        // is published as it was (the same event, the same record).
        let decided_now = rfc3339(now_s);
        let message = delivery.origin.message_id().unwrap_or_default();
        for t in targets.iter_mut() {
            match redone.get(&t.id) {
                Some(old) => *t = decided_before(t, old, operation, message),
                None if t.outcome.is_final_decision() => t.decided_at = Some(decided_now.clone()),
                None => {}
            }
        }
        again.retain(|(f, _)| !redone.contains_key(&f.id));
        if dropped > 0 {
            tracing::warn!(
                dropped,
                chain = check.chain.as_deref(),
                "a check ended without effect for targets another chain owns or that were decided"
            );
        }
        checks_dropped = dropped;
        targets.retain(|t| kept.contains(&t.id));
        again.retain(|(f, _)| kept.contains(&f.id));
        // Marked published under the message that decided it, which may be another.
        let decided = targets.iter().filter(|t| t.outcome.is_final_decision()).map(|t| {
            let by = redone.get(&t.id).and_then(|old| old.get("decidedMsg")).unwrap_or(message);
            (t.id.as_str(), by)
        });
        announce = announced(ctx, &check, &request, decided);
    }

    // Targets still on their way travel on together, due at the earliest of their delays.
    let follow_up: Vec<(Check, u64)> = if again.is_empty() {
        Vec::new()
    } else {
        let delay = again.iter().map(|(_, d)| *d).min().unwrap_or(crate::confirm::FIRST_DELAY);
        let pending: Vec<Followed> = again.into_iter().map(|(f, _)| f).collect();
        narrowed(&check, pending).into_iter().map(|c| (c, delay)).collect()
    };
    let outcome = Outcome::worst(targets.iter().map(|t| t.outcome)).unwrap_or(Outcome::Confirmed);
    let failed: Vec<&TargetResult> = targets.iter().filter(|t| t.outcome.is_failure()).collect();
    let record = (!failed.is_empty()).then(|| {
        let ids: Vec<String> = failed.iter().filter(|t| t.outcome == Outcome::Failed).map(|t| t.id.clone()).collect();
        // A failed termination can be sent again once its cause is fixed; the request
        // is looked up and judged again, so a replay is never broader than it.
        let retry = validate(&check.request, Limits { max_targets: usize::MAX })
            .ok()
            .and_then(|request| retry_request(&request, &ids));
        // The record's error is the service's own, from a failed target when there is one.
        let first = failed.iter().find(|t| t.outcome == Outcome::Failed).unwrap_or(&failed[0]);
        let error = first.error.clone().unwrap_or_else(|| Failure::new("Failed", "the termination failed"));
        let mut record = record(app, &delivery, operation, outcome, error, failed_targets(&failed), retry);
        // The same decision published again says when it was made, as its event does.
        if let Some(at) = &first.decided_at {
            record.failed_at = at.clone();
        }
        record.source = check.source.clone();
        record.request = check.request.clone();
        record.account = request.account.clone();
        record.region = request.region.clone();
        record
    });
    let error = record.as_ref().map(|r| r.error.clone());
    let result = RequestResult {
        error,
        targets,
        checks_dropped,
        announce,
        is_check: true,
        audit_source: Some(check.source.clone()),
        account,
        region,
        ..RequestResult::new(delivery.origin, operation, outcome, false)
    };
    Settled::new(result, record, follow_up)
}

/// The items of the targets this check publishes a decision of, to mark announced once
/// published: each by its id and the message that decided it.
fn announced<'a>(
    ctx: &Invocation<'_>,
    check: &Check,
    request: &Request,
    decided: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<crate::outcome::Announced> {
    let chain = check.chain.clone().unwrap_or_default();
    decided
        .map(|(id, message)| crate::outcome::Announced {
            item: ownership::key(ctx, request, id).pk(),
            chain: chain.clone(),
            message: message.to_owned(),
        })
        .collect()
}

/// A check that ends without effect: no decision, no record, no further check.
fn without_effect(delivery: Delivery, operation: Option<Operation>, dropped: usize) -> Settled {
    let result = RequestResult {
        checks_dropped: dropped,
        is_check: true,
        ..RequestResult::new(delivery.origin, operation, Outcome::Confirmed, false)
    };
    Settled::new(result, None, Vec::new())
}

/// The targets of a watch of `chain` that are its to follow: an intent still there
/// whose target shows a sign of the termination, or `chain` written and never checked.
async fn watched(
    ctx: &Invocation<'_>,
    delivery: &Delivery,
    chain: &str,
    check: &Check,
    request: &Request,
    statuses: &[(String, (Status, Option<String>))],
) -> Result<std::collections::HashSet<String>, ServiceError> {
    let now = ctx.now.unix_timestamp();
    let due = now + i64::try_from(crate::confirm::FIRST_DELAY).unwrap_or(30);
    let message = delivery.origin.message_id().unwrap_or_default();
    let written: Vec<(String, Result<Written, ServiceError>)> = stream::iter(&check.targets)
        .map(|t| async move {
            let seen = statuses.iter().any(|(id, (s, _))| id == &t.id && !matches!(s, Status::Unseen(_)));
            let key = ownership::key(ctx, request, &t.id);
            (t.id.clone(), ctx.bounded(ctx.app.state.watch(&key, chain, message, seen, due, now)).await)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut won = std::collections::HashSet::new();
    for (id, written) in written {
        if written? == Written::Won {
            won.insert(id);
        }
    }
    Ok(won)
}

/// A target's decision as it was made before (by this very check before its invocation
/// died, or by another message of its chain that never published it).
fn decided_before(now: &TargetResult, old: &Item, operation: Option<Operation>, message: &str) -> TargetResult {
    let error = old.get("decisionError").map(str::to_owned);
    let mut then = match old.get("decision") {
        Some("confirmed") => TargetResult::because(&now.id, Outcome::Confirmed, "the termination is done"),
        Some("failed") => {
            let error = error.unwrap_or_default();
            let (code, message) = error.split_once(": ").unwrap_or(("Failed", error.as_str()));
            TargetResult::failed(&now.id, Outcome::Failed, Failure::new(code, message))
        }
        _ => {
            let why = error.unwrap_or_else(|| "unconfirmed".to_owned());
            TargetResult {
                reason: Some(why.clone()),
                ..TargetResult::failed(&now.id, Outcome::Unconfirmed, Failure::new("Unconfirmed", why))
            }
        }
    };
    // The job or record the decision was about, as its maker named it (none when it
    // named none): the event is then the same whoever publishes it. A decision of this
    // very message written before `decidedOf` was kept names what this message follows.
    let (job, record) = match (old.get("decidedOf"), operation) {
        (Some(job), Some(Operation::TerminateTargetInstances)) => (Some(job.to_owned()), None),
        (Some(record), Some(Operation::TerminateProvisionedProduct)) => (None, Some(record.to_owned())),
        (None, _) if old.get("decidedMsg") == Some(message) => (now.job_id.clone(), now.record_id.clone()),
        _ => (None, None),
    };
    (then.job_id, then.record_id) = (job, record);
    then.decided_at = old.get("decidedAt").and_then(|at| at.parse::<i64>().ok()).map(rfc3339);
    then
}

/// Epoch seconds as RFC 3339, as audit events say when.
fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Lambda's longest timeout (900 s), and a minute for `decidedAt`'s whole seconds and
/// clocks apart: a decision written longer ago than this was written by an invocation
/// that is over, published or not.
const DECIDER_OVER_SECONDS: i64 = 960;

/// What this check's ends came to: the ids whose end went in (or that this very
/// check, or another message of its chain that never published it, decided before),
/// how many ended without effect, and what was decided before.
type Owned = (std::collections::HashSet<String>, usize, std::collections::HashMap<String, Item>);

/// Writes each target's end where `check`'s chain still owns it. A write that fails
/// fails them all (`transient`).
async fn owned_ends(
    ctx: &Invocation<'_>,
    delivery: &Delivery,
    check: &Check,
    request: &Request,
    ends: &[(String, CheckEnd)],
) -> Result<Owned, ServiceError> {
    let of = CheckOf {
        chain: check.chain.as_deref().unwrap_or_default(),
        attempt: check.attempt,
        accepted_at: &check.accepted_at,
        message_id: delivery.origin.message_id().unwrap_or_default(),
        receive_count: delivery.origin.receive_count().unwrap_or(1),
    };
    let now = ctx.now.unix_timestamp();
    let of = &of;
    let written: Vec<(String, Result<Ended, ServiceError>)> = stream::iter(ends)
        .map(|(id, end)| async move {
            let key = ownership::key(ctx, request, id);
            (id.clone(), ctx.bounded(ctx.app.state.check_end(&key, of, end, now)).await)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let last_delivery = ctx.app.last_delivery(&delivery.origin);
    let (mut kept, mut dropped, mut redone) = (std::collections::HashSet::new(), 0, std::collections::HashMap::new());
    for (id, written) in written {
        match written? {
            Ended::Won => {
                kept.insert(id);
            }
            Ended::Decided(old) => {
                kept.insert(id.clone());
                redone.insert(id, old);
            }
            // Its twin may have died after its write: on the last delivery (SQS deletes
            // the message whichever copy settles) what it wrote is published here, as
            // it was; before, this copy comes back, and the next delivery (a higher
            // receive count) finds it, unless the twin settled the message first.
            Ended::Twin(old) if last_delivery => {
                kept.insert(id.clone());
                redone.insert(id, old);
            }
            Ended::Twin(_) => {
                return Err(ServiceError::transient(
                    "DeliveredTwice",
                    "a copy of this very delivery decided or went on first; the message comes back unless it settles",
                ));
            }
            // Another message of the chain decided and has not published it. Its
            // invocation may still be at it: this one comes back rather than publish the
            // same event beside it. But once that invocation must be over, or on this
            // message's last delivery, nothing else may ever publish it (every delivery
            // of the decider may have been killed): this one does, as it was made.
            Ended::Unannounced(old) => {
                let decided_at = old.get("decidedAt").and_then(|at| at.parse::<i64>().ok()).unwrap_or(0);
                if !last_delivery && now - decided_at < DECIDER_OVER_SECONDS {
                    return Err(ServiceError::transient(
                        "DecisionUnpublished",
                        "another message of this chain decided and has not published it yet; this one comes back and publishes it if that one never does",
                    ));
                }
                kept.insert(id.clone());
                redone.insert(id, old);
            }
            Ended::Lost => dropped += 1,
        }
    }
    Ok((kept, dropped, redone))
}

/// Where each target of `check` is, by its id, with the job or record followed.
async fn ask(
    services: &crate::services::Services,
    check: &Check,
) -> Result<Vec<(String, (Status, Option<String>))>, ServiceError> {
    let ids: Vec<String> = check.targets.iter().map(|t| t.id.clone()).collect();
    let statuses = match check.operation() {
        Some(Operation::TerminateWorkspaces) => {
            services.workspaces.check(&ids, check.attempt).await?.into_iter().map(|(id, s)| (id, (s, None))).collect()
        }
        Some(Operation::TerminateTargetInstances) => {
            let account = ["/input/accountID", "/select/accountID"]
                .iter()
                .find_map(|path| check.request.pointer(path).and_then(|v| v.as_str()));
            // A chain recovered from an intent is written by a later delivery, as much
            // as five visibility timeouts of the longest function timeout (7.5 h) after
            // the call: its job is looked for that far back, never further.
            let accepted =
                time::OffsetDateTime::parse(&check.accepted_at, &time::format_description::well_known::Rfc3339)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            // A watch was sent just before the call: a job is its sign only if it came
            // after (a minute's leeway for clocks).
            let since = if check.is_watch() {
                accepted - time::Duration::minutes(1)
            } else {
                accepted - time::Duration::hours(8)
            };
            services.mgn.check(&check.targets, account, since).await?
        }
        Some(Operation::TerminateProvisionedProduct) => {
            let since = check.is_watch().then(|| check.accepted().map(|at| at.unix_timestamp() - 60)).flatten();
            services.catalog.check(&check.targets, since).await?
        }
        None => return Err(ServiceError::new(Outcome::Invalid, "InvalidCheck", "confirm.operation is unknown")),
    };
    Ok(statuses.into_iter().collect())
}

/// The service could not be asked. The check is redelivered like any message;
/// on its last delivery its targets end `unconfirmed`, with a record and no retry.
pub(super) fn cannot_check(app: &App, delivery: Delivery, check: &Check, error: ServiceError) -> Settled {
    let last_delivery = app.last_delivery(&delivery.origin);
    // Checks are honoured only from SQS ("Who may send what"); were one worked elsewhere, nothing
    // would redeliver it, so it is settled with a record. Never with the check as its
    // retry: a check is the function's own message, which no one else may send.
    let sqs = matches!(delivery.origin, crate::decode::Origin::Sqs { .. });
    let operation = check.operation();
    let outcome = if last_delivery { Outcome::Unconfirmed } else { Outcome::Transient };
    let failure = error.failure;
    let targets: Vec<TargetResult> = check
        .targets
        .iter()
        .map(|t| TargetResult {
            job_id: t.job_id.clone(),
            record_id: t.record_id.clone(),
            ..TargetResult::failed(&t.id, outcome, failure.clone())
        })
        .collect();
    let record = (last_delivery || !sqs).then(|| {
        let failed: Vec<&TargetResult> = targets.iter().collect();
        let mut record = record(app, &delivery, operation, outcome, failure.clone(), failed_targets(&failed), None);
        record.source = check.source.clone();
        record.request = check.request.clone();
        record
    });
    let result = RequestResult {
        targets,
        error: Some(failure),
        is_check: true,
        audit_source: Some(check.source.clone()),
        ..RequestResult::new(delivery.origin, operation, outcome, false)
    };
    Settled::new(result, record, Vec::new())
}

/// The next check for `pending`, its request narrowed to them, cut into as many
/// messages as one SQS message cannot hold.
fn narrowed(check: &Check, pending: Vec<Followed>) -> Vec<Check> {
    let request = validate(&check.request, Limits { max_targets: usize::MAX }).ok();
    crate::confirm::split(check.next(pending), |ids| {
        request.as_ref().and_then(|r| retry_request(r, ids)).unwrap_or_else(|| check.request.clone())
    })
}
