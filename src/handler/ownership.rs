//! With a state table (docs/reference.md, "State across messages"): who owns each
//! target before any call is made. An MGN server is claimed before
//! `TerminateTargetInstances`, which takes no client token: two invocations never
//! both call for it. A target found already on its way out gets a follow-up chain
//! when no other chain owns it, whatever the source and whichever the delivery. The
//! writes of a batch go out together, in one round; a chain is written or taken over
//! only in a second round, once the request's watch is out, so that no chain is ever
//! left that neither its check nor a watch comes back for.

use futures_util::{StreamExt, stream};

use super::app::{CONCURRENCY, Invocation};
use super::resolve::{Resolution, Resolved};
use super::settle::timestamp;
use crate::classify::ServiceError;
use crate::confirm::Followed;
use crate::guard::Verdict;
use crate::outcome::{Failure, Outcome};
use crate::request::{Operation, ProductRef, Request, Scope, Target};
use crate::state::{ChainStart, Item, Key, Started, Written};

/// The item key of `target` where `request` looks for it: the account MGN's own
/// `accountID` names (one server has one item however it is reached), and for a
/// provisioned product the id the request names (a replay names it by its id), never
/// the name it was first named by.
pub(super) fn key(ctx: &Invocation<'_>, request: &Request, target: &str) -> Key {
    let mgn_account = match &request.target {
        Target::TargetInstances(Scope::Named(input)) => input.account_id.clone(),
        Target::TargetInstances(Scope::Select(s)) => s.filters.account_id.clone(),
        Target::Workspaces(_) | Target::ProvisionedProduct(_) => None,
    };
    let target = match &request.target {
        Target::ProvisionedProduct(Scope::Named(input)) => match &input.product {
            ProductRef::Id(id) => id.clone(),
            ProductRef::Name(_) => target.to_owned(),
        },
        _ => target.to_owned(),
    };
    Key {
        account: mgn_account
            .or_else(|| request.account.clone())
            .or_else(|| ctx.home.account.clone())
            .unwrap_or_default(),
        region: request.region.clone().or_else(|| ctx.home.region.clone()).unwrap_or_default(),
        operation: request.operation(),
        target,
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
        due_at: first_check_due(ctx),
        accepted_at: timestamp(ctx.app),
        source: source.to_string(),
        job_id,
        record_id,
        fresh,
    }
}

/// When the first check of a chain started now is due (epoch seconds).
fn first_check_due(ctx: &Invocation<'_>) -> i64 {
    ctx.now.unix_timestamp() + i64::try_from(crate::confirm::delay(1)).unwrap_or(30)
}

/// What one write before the calls is for.
enum Write {
    Claim {
        at: usize,
        id: String,
        key: Key,
    },
    /// A WorkSpace or product about to be called for: its intent.
    Intend {
        at: usize,
        id: String,
        key: Key,
    },
    /// The targets a request is about to call for, by its token.
    Index {
        at: usize,
        token: String,
        ids: Vec<String>,
    },
    Chain {
        at: usize,
        id: String,
        start: ChainStart,
    },
    /// The watch of the targets a request is about to call for (`Check::is_watch`).
    Watch {
        at: usize,
        ids: Vec<String>,
        check: crate::confirm::Check,
    },
    /// A named target found gone, whose item may name a chain never sent; or a
    /// target whose last termination is still to be decided (`ChainDeciding`).
    Recover {
        at: usize,
        id: String,
        key: Key,
        chain: String,
        due_at: i64,
    },
    /// A target an earlier attempt was about to call for, found done with
    /// (`recover_intents`).
    RecoverIntent(Recovery),
    /// The intent (and claim) of a call held back because its watch did not go out.
    Release {
        at: usize,
        key: Key,
    },
}

/// A target an earlier delivery of the same request was about to call for, and that
/// this one finds done with: its intent (or the chain written after it) is taken over
/// once this delivery's watch is out.
pub(super) struct Recovery {
    at: usize,
    id: String,
    key: Key,
    chain: String,
}

/// What it came to.
enum Done {
    Claim(Result<Written, ServiceError>),
    Written(Result<Written, ServiceError>),
    Chain(Result<Started, ServiceError>),
    Recover(Result<Option<Item>, ServiceError>),
    Recovered(Result<Option<(Option<String>, Followed)>, ServiceError>),
}

/// Claims the MGN servers about to be called and starts the chains of targets found
/// on their way out, for every request of the batch that is not a dry run; and takes
/// over the unsent chain of a named target found gone. A server another invocation
/// holds, or a write that fails, leaves its target `transient`: not called now,
/// looked up again on the next delivery.
pub(super) async fn before_calls(ctx: &Invocation<'_>, batch: &mut [Resolved], recoveries: Vec<Recovery>) {
    let state = &ctx.app.state;
    if !state.is_set() {
        return;
    }
    // Without a request queue nothing is followed up: no intents, no chains (a chain
    // never checked would hold its target for an hour); MGN claims still hold.
    let follows = ctx.app.request_queue.is_set();
    let mut writes: Vec<Write> = Vec::new();
    // Written in the second round, once the request's watch is out.
    let mut later: Vec<Write> = Vec::new();
    let mut claimed: std::collections::HashSet<Key> = std::collections::HashSet::new();
    for (at, resolved) in batch.iter_mut().enumerate() {
        if resolved.accepted.dry_run {
            continue;
        }
        let chain = chain_id(ctx, at);
        resolved.chain = Some(chain.clone());
        let Resolution::Judged(judged) = &resolved.resolution else { continue };
        // A product named by name is kept under the id its lookup found.
        let Some(request) = resolved.accepted.request.replayable(resolved.found_product.as_deref()) else { continue };
        let request = &request;
        let named = request.named_ids().is_some();
        let source = resolved.accepted.delivery.origin.to_json();
        let mut intended = Vec::new();
        for (id, verdict) in judged {
            match (verdict, &request.target) {
                (Verdict::Terminate { .. }, Target::TargetInstances(_)) => {
                    let key = key(ctx, request, id);
                    intended.push(id.clone());
                    if claimed.insert(key.clone()) {
                        writes.push(Write::Claim { at, id: id.clone(), key });
                    }
                }
                (Verdict::Terminate { .. }, _) if follows => {
                    intended.push(id.clone());
                    writes.push(Write::Intend { at, id: id.clone(), key: key(ctx, request, id) });
                }
                (Verdict::Underway { job_id, .. }, target) if follows => {
                    // Noted too: a delivery that comes back after this one died finds
                    // the chain it started, even when the target is done by then.
                    intended.push(id.clone());
                    let (job, record) = match target {
                        Target::ProvisionedProduct(_) => (None, job_id.clone()),
                        Target::Workspaces(_) | Target::TargetInstances(_) => (job_id.clone(), None),
                    };
                    let target = Followed { id: id.clone(), job_id: job, record_id: record };
                    let start = chain_start(ctx, request, &source, &chain, target, false);
                    later.push(Write::Chain { at, id: id.clone(), start });
                }
                (Verdict::Stop { outcome: Outcome::NotFound, .. }, _) if named && follows => {
                    let due_at = first_check_due(ctx);
                    later.push(Write::Recover {
                        at,
                        id: id.clone(),
                        key: key(ctx, request, id),
                        chain: chain.clone(),
                        due_at,
                    });
                }
                _ => {}
            }
        }
        if follows && !intended.is_empty() {
            let token = resolved.accepted.delivery.idempotency_token();
            writes.push(Write::Index { at, token, ids: intended });
        }
        // Watched: every target this request may write its chain for (a call, a
        // chain started or taken over, an intent recovered), lest it die before the
        // chain's check is sent and no delivery come back to take it over again.
        let mut watched: Vec<String> = judged
            .iter()
            .filter(|(_, verdict)| match verdict {
                Verdict::Terminate { .. } | Verdict::Underway { .. } => true,
                Verdict::Stop { outcome: Outcome::NotFound, .. } => named,
                _ => false,
            })
            .map(|(id, _)| id.clone())
            .collect();
        let recovering = recoveries.iter().filter(|r| r.at == at).map(|r| r.id.clone());
        watched.extend(recovering.filter(|id| !watched.contains(id)).collect::<Vec<_>>());
        if follows && !watched.is_empty() {
            for check in watches(ctx, request, &source, &chain, &watched) {
                writes.push(Write::Watch { at, ids: watched.clone(), check });
            }
        }
    }
    later.extend(recoveries.into_iter().map(Write::RecoverIntent));
    if writes.is_empty() && later.is_empty() {
        return;
    }
    let now = ctx.now.unix_timestamp();
    let accepted_at = timestamp(ctx.app);
    let chains: Vec<Option<String>> = batch.iter().map(|r| r.chain.clone()).collect();
    let sources: Vec<String> = batch.iter().map(|r| r.accepted.delivery.origin.to_json().to_string()).collect();
    let tokens: Vec<String> = batch.iter().map(|r| r.accepted.delivery.idempotency_token()).collect();
    let intent = |at: usize| crate::state::Intent {
        chain: chains[at].as_deref().unwrap_or_default(),
        at: now,
        accepted_at: &accepted_at,
        source: &sources[at],
        token: &tokens[at],
    };
    let run = |writes: Vec<Write>| {
        stream::iter(writes)
            .map(move |write| async move {
                let done = match &write {
                    Write::Claim { key, at, .. } => {
                        Done::Claim(ctx.bounded(state.claim(key, &ctx.holder, now, &intent(*at))).await)
                    }
                    Write::Intend { key, at, .. } => {
                        Done::Written(ctx.bounded(state.intend(key, &intent(*at), now)).await)
                    }
                    Write::Index { token, ids, .. } => {
                        Done::Written(ctx.bounded(state.note_intents(token, ids, now)).await)
                    }
                    Write::Chain { start, .. } => Done::Chain(ctx.bounded(state.start_chain(start, now)).await),
                    Write::Recover { key, chain, due_at, .. } => {
                        Done::Recover(ctx.bounded(state.recover(key, chain, *due_at)).await)
                    }
                    Write::RecoverIntent(r) => Done::Recovered(recover_one(ctx, &r.key, &r.chain, now).await),
                    Write::Release { at, key } => {
                        Done::Written(ctx.bounded(state.release(key, &ctx.holder, intent(*at).chain)).await)
                    }
                    Write::Watch { check, .. } => {
                        let sent = ctx.app.request_queue.send(check, crate::confirm::LONGEST_DELAY);
                        let sent = async { sent.await.map_err(|e| ServiceError::transient(e.code, e.message)) };
                        Done::Written(ctx.bounded(sent).await.map(|()| Written::Won))
                    }
                };
                (write, done)
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<(Write, Done)>>()
    };
    let done = run(writes).await;
    let mut deciding = Vec::new();
    // The requests whose watch did not go out, and why.
    let mut unwatched: std::collections::HashMap<usize, Failure> = std::collections::HashMap::new();
    // The intents (and claims) written, by request: released where its watch did not go out.
    let mut noted: Vec<(usize, Key)> = Vec::new();
    for (write, done) in done {
        match (write, done) {
            (Write::Claim { at, key, .. }, Done::Claim(Ok(Written::Won))) => noted.push((at, key)),
            (Write::Intend { at, key, .. }, Done::Written(Ok(Written::Won))) => noted.push((at, key)),
            (Write::Intend { at, id, key }, Done::Written(Ok(Written::Lost))) => {
                let failure = Failure::new(
                    "ChainDeciding",
                    "a follow-up chain has yet to decide this target's last termination, or another request's call for it has yet to be answered; it is called again once that is settled",
                );
                hold_call(&mut batch[at], &id, failure);
                deciding.push((at, id, key));
            }
            (Write::Index { .. } | Write::Watch { .. }, Done::Written(Ok(_))) => {}
            // No call is made that a later delivery could not follow up.
            (Write::Intend { at, id, .. }, Done::Written(Err(error))) => hold_call(&mut batch[at], &id, error.failure),
            // Nothing is called, and no chain written, that no watch follows.
            (Write::Watch { at, ids, .. }, Done::Written(Err(error))) => {
                for id in ids {
                    hold_call(&mut batch[at], &id, error.failure.clone());
                }
                unwatched.insert(at, error.failure);
            }
            // A later delivery could not find these calls' intents: none is made, and
            // what was noted for them goes, as for a watch not sent.
            (Write::Index { at, ids, .. }, Done::Written(Err(error))) => {
                for id in ids {
                    hold_call(&mut batch[at], &id, error.failure.clone());
                }
                unwatched.insert(at, error.failure);
            }
            (Write::Claim { at, id, key: claimed_key }, Done::Claim(claimed)) => {
                if matches!(claimed, Ok(Written::Lost)) {
                    deciding.push((at, id.clone(), claimed_key.clone()));
                }
                let failure = match claimed {
                    Err(error) => error.failure,
                    Ok(_) => Failure::new(
                        "ClaimHeld",
                        "another invocation is terminating this server now, or a follow-up chain has yet to decide its last termination; looked up again on the next delivery",
                    ),
                };
                // Every request of the batch that would call for this server waits; a
                // notice, which makes no terminate call, goes on.
                hold_every_call(ctx, batch, &claimed_key, &failure);
            }
            // Each write has its own kind of answer.
            (_, _) => {}
        }
    }
    // A chain that has yet to decide may be one whose check was never sent (its
    // invocation died): it is taken over and checked now, so that the next delivery
    // finds it decided and calls again.
    let due_at = first_check_due(ctx);
    for (at, id, key) in deciding.into_iter().filter(|_| follows) {
        if let Some(chain) = batch[at].chain.clone() {
            later.push(Write::Recover { at, id, key, chain, due_at });
        }
    }
    // The second round: a chain is written or taken over only once its request's watch
    // is out. Were the invocation to die between the two, the watch finds the chain
    // and follows it up; the other way round, nothing would come back for it.
    let mut second = Vec::new();
    for (at, key) in noted {
        let Some(failure) = unwatched.get(&at) else { continue };
        // A call (and an MGN claim) is shared by every request of the batch that calls
        // its target: none of them calls once its intent is released.
        hold_every_call(ctx, batch, &key, failure);
        second.push(Write::Release { at, key });
    }
    for write in later {
        match (unwatched.get(&write.at()), write) {
            (None, write) => second.push(write),
            // Found on its way out, or to be recovered: the message comes back for it.
            (Some(failure), Write::Chain { at, id, .. } | Write::RecoverIntent(Recovery { at, id, .. })) => {
                hold(&mut batch[at], &id, Outcome::Transient, failure.clone());
            }
            // Gone, its item naming a chain perhaps never sent: it comes back for it.
            (Some(failure), Write::Recover { at, id, .. }) if !called(&batch[at], &id) => {
                hold(&mut batch[at], &id, Outcome::Transient, failure.clone());
            }
            // Held already (its call waits): nothing more to hold.
            (Some(_), _) => {}
        }
    }
    if second.is_empty() {
        return;
    }
    for (write, done) in run(second).await {
        match (write, done) {
            (Write::Chain { at, id, .. }, Done::Chain(Ok(Started::Won { previous }))) => {
                batch[at].chains_won.insert(id, previous);
            }
            // A live chain owns it: that chain follows it up.
            (Write::Chain { .. }, Done::Chain(Ok(Started::Lost))) => {}
            (
                Write::Chain { at, id, .. } | Write::RecoverIntent(Recovery { at, id, .. }),
                Done::Chain(Err(error)) | Done::Recovered(Err(error)),
            ) => hold(&mut batch[at], &id, Outcome::Transient, error.failure),
            (Write::Recover { at, id, key, .. }, Done::Recover(Ok(Some(old)))) => {
                // The check names what the item is kept under: a product's id, never its name.
                let (previous, followed) = taken_over(key.target.clone(), &old);
                batch[at].chains_won.insert(id.clone(), previous);
                batch[at].recovered.insert(id, followed);
            }
            // Nothing was left unsent, or nothing to recover: it is simply gone.
            (Write::Recover { .. }, Done::Recover(Ok(None) | Err(_))) => {}
            (Write::RecoverIntent(Recovery { at, id, .. }), Done::Recovered(Ok(Some((previous, followed))))) => {
                batch[at].chains_won.insert(id.clone(), previous);
                batch[at].recovered.insert(id, followed);
            }
            (Write::RecoverIntent(_), Done::Recovered(Ok(None))) => {}
            (Write::Release { .. }, Done::Written(Err(error))) => {
                tracing::warn!(error = %error, "the intent of a call held back was not released; its target waits an hour");
            }
            // Each write has its own kind of answer.
            (_, _) => {}
        }
    }
}

impl Write {
    /// The position in the batch of the request it is for.
    fn at(&self) -> usize {
        match self {
            Write::Claim { at, .. }
            | Write::Intend { at, .. }
            | Write::Index { at, .. }
            | Write::Chain { at, .. }
            | Write::Watch { at, .. }
            | Write::Recover { at, .. }
            | Write::RecoverIntent(Recovery { at, .. })
            | Write::Release { at, .. } => *at,
        }
    }
}

/// Takes over the intent at `key` for `chain`, or else the chain written after it whose
/// check never went out: the target as the new check follows it, and the chain taken
/// over (none for an intent).
async fn recover_one(
    ctx: &Invocation<'_>,
    key: &Key,
    chain: &str,
    now: i64,
) -> Result<Option<(Option<String>, Followed)>, ServiceError> {
    let (state, due_at) = (&ctx.app.state, first_check_due(ctx));
    // The check names what the item is kept under: a product's id, never its name.
    let target = key.target.clone();
    match ctx.bounded(state.recover_intent(key, chain, due_at, now)).await? {
        Some(_) => Ok(Some((None, Followed { id: target, job_id: None, record_id: None }))),
        None => Ok(ctx.bounded(state.recover(key, chain, due_at)).await?.map(|old| taken_over(target, &old))),
    }
}

/// The watch of `ids`, which `request` is about to call for (`Check::is_watch`): sent
/// with the longest delay, past the end of any invocation, so that a call accepted by an
/// invocation that died, or whose answer never came, is followed up even when no
/// delivery of the request comes back (its last, a copy whose twin settled, a direct
/// invocation Lambda does not retry).
fn watches(
    ctx: &Invocation<'_>,
    request: &Request,
    source: &serde_json::Value,
    chain: &str,
    ids: &[String],
) -> Vec<crate::confirm::Check> {
    // Named as its item is kept: a product by its id, never its name.
    let targets = ids.iter().map(|id| Followed { id: key(ctx, request, id).target, job_id: None, record_id: None });
    let (source, attempt) = (source.clone(), crate::confirm::WATCH_ATTEMPT);
    super::settle::checks_of(ctx.app, request, source, Some(chain), targets.collect(), attempt)
}

/// A pending chain taken over: the chain it was (given back should this one's check
/// not go out) and the target as the new check follows it, with the job or record
/// the item kept.
fn taken_over(id: String, old: &Item) -> (Option<String>, Followed) {
    let followed =
        Followed { id, job_id: old.get("jobId").map(str::to_owned), record_id: old.get("recordId").map(str::to_owned) };
    (old.get("chainId").map(str::to_owned), followed)
}

/// Holds back, with `failure`, the call every request of the batch (not a dry run) is
/// about to make for the target kept under `key`: they share it.
fn hold_every_call(ctx: &Invocation<'_>, batch: &mut [Resolved], key: &Key, failure: &Failure) {
    for resolved in batch.iter_mut().filter(|r| !r.accepted.dry_run) {
        let Resolution::Judged(judged) = &resolved.resolution else { continue };
        let request = &resolved.accepted.request;
        let called: Vec<String> =
            judged.iter().filter(|(id, _)| &self::key(ctx, request, id) == key).map(|(id, _)| id.clone()).collect();
        for id in called {
            hold_call(resolved, &id, failure.clone());
        }
    }
}

/// Whether `resolved` was to call for `id` (a call since held back included).
fn called(resolved: &Resolved, id: &str) -> bool {
    match &resolved.resolution {
        Resolution::Judged(judged) => judged.iter().any(|(t, v)| t == id && !matches!(v, Verdict::Stop { .. })),
        _ => false,
    }
}

/// `id` of `resolved`, where it was to be terminated, is not called now: it ends `transient`.
fn hold_call(resolved: &mut Resolved, id: &str, failure: Failure) {
    if let Resolution::Judged(judged) = &mut resolved.resolution {
        let called =
            |(target, verdict): &&mut (String, Verdict)| target == id && matches!(verdict, Verdict::Terminate { .. });
        for (_, verdict) in judged.iter_mut().filter(called) {
            *verdict = Verdict::Unreadable { outcome: Outcome::Transient, failure: failure.clone() };
        }
    }
}

/// `id` of `resolved` is not called, nor followed up, now: it ends with `failure`.
fn hold(resolved: &mut Resolved, id: &str, outcome: Outcome, failure: Failure) {
    if let Resolution::Judged(judged) = &mut resolved.resolution {
        for (_, verdict) in judged.iter_mut().filter(|(target, _)| target == id) {
            *verdict = Verdict::Unreadable { outcome, failure: failure.clone() };
        }
    }
}

/// Whether a target an earlier attempt was about to call for looks done with: found
/// gone (`not_found`), or an MGN server with no launched instance left. Only
/// then is its intent taken for an accepted call: one found still there (protected
/// since, no longer matching) may well never have been accepted, and a check would
/// decide a termination that never was.
fn done_with(verdict: Option<&Verdict>, mgn: bool) -> bool {
    match verdict {
        // Not listed: a selection leaves out what is gone and what no longer matches
        // alike, so it is not taken for gone.
        None => false,
        Some(Verdict::Stop { outcome: Outcome::NotFound, .. }) => true,
        Some(Verdict::Stop { outcome: Outcome::Skipped, reason }) => mgn && reason.starts_with("no launched"),
        Some(_) => false,
    }
}

/// A delivery that may follow an attempt whose calls never answered (an SQS receive
/// after the first, or a source Lambda itself retries): each target that attempt was
/// about to call for (`StateTable::note_intents`), and that this one neither calls
/// for nor finds underway (it is gone, finished, or no longer listed), is to get this
/// request's chain when its intent is still there and no chain came after it
/// (`before_calls` writes it, once the watch is out). Its check then finds what became
/// of it. One added round, on such deliveries only: the read.
pub(super) async fn recover_intents(ctx: &Invocation<'_>, batch: &mut [Resolved]) -> Vec<Recovery> {
    let state = &ctx.app.state;
    if !state.is_set() || !ctx.app.request_queue.is_set() {
        return Vec::new();
    }
    let now = ctx.now.unix_timestamp();
    // Before the claims and intents: a request whose intents cannot be read is
    // redelivered, and nothing is written for it now.
    let asked: Vec<(usize, String)> = batch
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.accepted.dry_run && matches!(r.resolution, Resolution::Judged(_)))
        .filter(|(_, r)| r.accepted.delivery.origin.receive_count().is_none_or(|n| n > 1))
        .map(|(at, r)| (at, r.accepted.delivery.idempotency_token()))
        .collect();
    if asked.is_empty() {
        return Vec::new();
    }
    let found: Vec<(usize, Result<Vec<String>, ServiceError>)> = stream::iter(asked)
        .map(|(at, token)| async move { (at, ctx.bounded(state.intents_of(&token, now)).await) })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut recoveries = Vec::new();
    for (at, intended) in found {
        let intended = match intended {
            Ok(intended) => intended,
            // Unknown: the message comes back, and its intents are read again.
            Err(error) => {
                batch[at].resolution = Resolution::Failed(error);
                continue;
            }
        };
        let resolved = &batch[at];
        let chain = chain_id(ctx, at);
        let Resolution::Judged(judged) = &resolved.resolution else { continue };
        let Some(request) = resolved.accepted.request.replayable(resolved.found_product.as_deref()) else { continue };
        let mgn = request.operation() == Operation::TerminateTargetInstances;
        for id in intended {
            let verdict = judged.iter().find(|(target, _)| *target == id).map(|(_, v)| v);
            if done_with(verdict, mgn) {
                recoveries.push(Recovery { at, key: key(ctx, &request, &id), id, chain: chain.clone() });
            }
        }
    }
    recoveries
}
