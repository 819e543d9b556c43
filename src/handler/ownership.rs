//! With a state table (docs/reference.md, "State across messages"): who owns each
//! target before any call is made. An MGN server is claimed before
//! `TerminateTargetInstances`, which takes no client token: two invocations never
//! both call for it. A target found already on its way out gets a follow-up chain
//! when no other chain owns it, whatever the source and whichever the delivery. The
//! writes of a batch go out together, in one round.

use futures_util::{StreamExt, stream};

use super::app::{CONCURRENCY, Invocation};
use super::resolve::{Resolution, Resolved};
use super::settle::timestamp;
use crate::classify::ServiceError;
use crate::confirm::Followed;
use crate::guard::Verdict;
use crate::outcome::{Failure, Outcome};
use crate::request::{Operation, Request, Target};
use crate::state::{ChainStart, Key, Written};

/// The item key of `target` where `request` looks for it.
pub(super) fn key(ctx: &Invocation<'_>, request: &Request, target: &str) -> Key {
    Key {
        account: request.account.clone().or_else(|| ctx.home.account.clone()).unwrap_or_default(),
        region: request.region.clone().or_else(|| ctx.home.region.clone()).unwrap_or_default(),
        operation: request.operation(),
        target: target.to_owned(),
    }
}

/// The chain a request's follow-up belongs to: unique to this run and request.
pub(super) fn chain_id(ctx: &Invocation<'_>, position: usize) -> String {
    format!("{}:{position}", ctx.holder)
}

/// A chain for `target` of `request`, accepted now, first checked after 30 s.
pub(super) fn chain_start(
    ctx: &Invocation<'_>,
    request: &Request,
    source: &serde_json::Value,
    chain: &str,
    target: Followed,
    fresh: bool,
) -> ChainStart {
    let Followed { id, job_id, record_id } = target;
    ChainStart {
        key: key(ctx, request, &id),
        chain: chain.to_owned(),
        due_at: ctx.now.unix_timestamp() + i64::try_from(crate::confirm::delay(1)).unwrap_or(30),
        accepted_at: timestamp(ctx.app),
        source: source.to_string(),
        job_id,
        record_id,
        fresh,
    }
}

/// What one write before the calls is for.
enum Write {
    Claim { id: String, key: Key },
    Chain { at: usize, id: String, start: ChainStart },
}

/// Claims the MGN servers about to be called and starts the chains of targets found
/// on their way out, for every request of the batch that is not a dry run. A server
/// another invocation holds, or a write that fails, leaves its target `transient`:
/// not called now, looked up again on the next delivery.
pub(super) async fn before_calls(ctx: &Invocation<'_>, batch: &mut [Resolved]) {
    let state = &ctx.app.state;
    if !state.is_set() {
        return;
    }
    let mut writes: Vec<Write> = Vec::new();
    let mut claimed: std::collections::HashSet<Key> = std::collections::HashSet::new();
    for (at, resolved) in batch.iter_mut().enumerate() {
        if resolved.accepted.dry_run {
            continue;
        }
        let chain = chain_id(ctx, at);
        resolved.chain = Some(chain.clone());
        let Resolution::Judged(judged) = &resolved.resolution else { continue };
        let request = &resolved.accepted.request;
        let source = resolved.accepted.delivery.origin.to_json();
        for (id, verdict) in judged {
            match (verdict, &request.target) {
                (Verdict::Terminate { .. }, Target::TargetInstances(_)) => {
                    let key = key(ctx, request, id);
                    if claimed.insert(key.clone()) {
                        writes.push(Write::Claim { id: id.clone(), key });
                    }
                }
                (Verdict::Underway { job_id, .. }, target) => {
                    let (job, record) = match target {
                        Target::ProvisionedProduct(_) => (None, job_id.clone()),
                        Target::Workspaces(_) | Target::TargetInstances(_) => (job_id.clone(), None),
                    };
                    let target = Followed { id: id.clone(), job_id: job, record_id: record };
                    let start = chain_start(ctx, request, &source, &chain, target, false);
                    writes.push(Write::Chain { at, id: id.clone(), start });
                }
                _ => {}
            }
        }
    }
    if writes.is_empty() {
        return;
    }
    let now = ctx.now.unix_timestamp();
    let done: Vec<(Write, Result<Written, ServiceError>)> = stream::iter(writes)
        .map(|write| async move {
            let written = match &write {
                Write::Claim { key, .. } => ctx.bounded(state.claim(key, &ctx.holder, now)).await,
                Write::Chain { start, .. } => ctx.bounded(state.start_chain(start, now)).await,
            };
            (write, written)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (write, written) in done {
        match (write, written) {
            (Write::Chain { at, id, .. }, Ok(Written::Won)) => {
                batch[at].chains_won.insert(id);
            }
            // Another chain owns it: that chain follows it up.
            (Write::Chain { .. }, Ok(Written::Lost)) => {}
            (Write::Claim { .. }, Ok(Written::Won)) => {}
            (Write::Claim { id, key, .. }, Ok(Written::Lost)) => {
                let failure = Failure::new(
                    "ClaimHeld",
                    "another invocation is terminating this server now; its job is looked up again on the next delivery",
                );
                // Every request of the batch that would call for this server waits.
                for resolved in
                    batch.iter_mut().filter(|r| r.accepted.request.operation() == Operation::TerminateTargetInstances)
                {
                    if key_matches(ctx, &resolved.accepted.request, &id, &key) {
                        hold(resolved, &id, Outcome::Transient, failure.clone());
                    }
                }
            }
            (Write::Claim { id, key, .. }, Err(error)) => {
                for resolved in
                    batch.iter_mut().filter(|r| r.accepted.request.operation() == Operation::TerminateTargetInstances)
                {
                    if key_matches(ctx, &resolved.accepted.request, &id, &key) {
                        hold(resolved, &id, Outcome::Transient, error.failure.clone());
                    }
                }
            }
            (Write::Chain { at, id, .. }, Err(error)) => hold(&mut batch[at], &id, Outcome::Transient, error.failure),
        }
    }
}

fn key_matches(ctx: &Invocation<'_>, request: &Request, id: &str, wanted: &Key) -> bool {
    &key(ctx, request, id) == wanted
}

/// `id` of `resolved` is not called, nor followed up, now: it ends with `failure`.
fn hold(resolved: &mut Resolved, id: &str, outcome: Outcome, failure: Failure) {
    if let Resolution::Judged(judged) = &mut resolved.resolution {
        for (_, verdict) in judged.iter_mut().filter(|(target, _)| target == id) {
            *verdict = Verdict::Unreadable { outcome, failure: failure.clone() };
        }
    }
}
