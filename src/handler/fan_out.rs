//! docs/reference.md, "Accounts, regions and fan-out": a request for many (account, region) pairs becomes one child request
//! per pair, sent to the request queue; SQS and Lambda then work them in parallel,
//! each account throttled on its own. The parent ends `fanned_out`.

use serde_json::{Value, json};

use super::admit::Accepted;
use super::app::{App, Invocation, within_deadline};
use super::settle::{Settled, record};
use crate::decode::Delivery;
use crate::outcome::{Failure, Outcome, RequestResult};
use crate::request::{FanOut, Operation};

/// The children of a fan-out: the request as received, but for `account`, `region`
/// and `origin`; the origin (from the parent's delivery) is what a child's tokens
/// derive from, with its own place, so a fan-out sent twice terminates once. A parent
/// that is a dry run, by its own word or by the settings, has children that say so
/// (docs/reference.md, "Accounts, regions and fan-out"): a child waiting on the queue when the kill switch is lifted
/// must not terminate what its parent only reported.
pub(super) fn children(
    delivery: &Delivery,
    fan_out: &FanOut,
    dry_run: bool,
) -> Vec<(Option<String>, Option<String>, Value)> {
    let origin = delivery.idempotency_token();
    let accounts: Vec<Option<&String>> =
        if fan_out.accounts.is_empty() { vec![None] } else { fan_out.accounts.iter().map(Some).collect() };
    let regions: Vec<Option<&String>> =
        if fan_out.regions.is_empty() { vec![None] } else { fan_out.regions.iter().map(Some).collect() };
    let mut out = Vec::new();
    for account in &accounts {
        for region in &regions {
            let mut child = delivery.raw.clone();
            if let Value::Object(map) = &mut child {
                map.remove("accounts");
                map.remove("regions");
                if let Some(account) = account {
                    map.insert("account".into(), json!(account));
                }
                if let Some(region) = region {
                    map.insert("region".into(), json!(region));
                }
                map.insert("origin".into(), json!(origin));
                if dry_run {
                    map.insert("dryRun".into(), json!(true));
                }
            }
            out.push((account.cloned(), region.cloned(), child));
        }
    }
    out
}

pub(super) async fn settle(ctx: &Invocation<'_>, accepted: Accepted, fan_out: FanOut) -> Settled {
    let (app, home) = (ctx.app, &ctx.home);
    let Accepted { delivery, request, dry_run, .. } = accepted;
    let operation = Some(request.operation());
    let children = children(&delivery, &fan_out, dry_run);
    let bodies: Vec<String> = children.iter().map(|(_, _, child)| child.to_string()).collect();
    let listed: Vec<Value> = children
        .iter()
        .map(|(account, region, _)| {
            let (account, region) = home.or_own(account.clone(), region.clone());
            json!({"account": account, "region": region})
        })
        .collect();
    match within_deadline(ctx.deadline, app.request_queue.send_all(&bodies)).await {
        Ok(Ok(_)) => {
            let result = RequestResult {
                children: listed,
                ..RequestResult::new(delivery.origin, operation, Outcome::FannedOut, dry_run)
            };
            Settled::new(result, None, Vec::new())
        }
        // Children already sent are harmless to send again: their tokens derive from
        // this delivery, and their targets are looked up again.
        Ok(Err(e)) => failed(app, delivery, operation, dry_run, Failure::new(e.code, e.message)),
        Err(failure) => failed(app, delivery, operation, dry_run, failure),
    }
}

/// Some children could not be sent: the parent is `transient` — redelivered (SQS),
/// or dead-lettered with itself as the retry (other sources).
fn failed(app: &App, delivery: Delivery, operation: Option<Operation>, dry_run: bool, failure: Failure) -> Settled {
    let sqs = matches!(delivery.origin, crate::decode::Origin::Sqs { .. });
    // On its last delivery SQS would move the bare body on: it is settled with a record.
    let last = app.last_delivery(&delivery.origin);
    let record = (!sqs || last).then(|| {
        let retry = super::settle::effective_dry_run(delivery.raw.clone(), dry_run);
        record(app, &delivery, operation, Outcome::Transient, failure.clone(), Vec::new(), Some(retry))
    });
    let result = RequestResult {
        error: Some(failure),
        ..RequestResult::new(delivery.origin, operation, Outcome::Transient, dry_run)
    };
    Settled::new(result, record, Vec::new())
}
