//! Step 5: what the settled requests leave behind goes out: each dead-letter record
//! to its queue, each follow-up check to the request queue. Both are bounded by the
//! invocation's own deadline, keeping back only what answering takes: a record or a
//! check cut off is reported unsent, so its message is redelivered (SQS) or the
//! invocation fails (other sources). Nothing is dropped.

use futures_util::{StreamExt, stream};

use super::app::{CONCURRENCY, Invocation, bounded, within_deadline};
use super::settle::Settled;
use crate::classify::ServiceError;
use crate::outcome::{DeadLetterStatus, FollowUp, RequestResult};
use crate::state::{ChainStart, Key, Started};

pub(super) async fn publish(ctx: &Invocation<'_>, settled: Vec<Settled>) -> Vec<RequestResult> {
    stream::iter(settled).map(|settled| publish_one(ctx, settled)).buffered(CONCURRENCY).collect().await
}

async fn publish_one(ctx: &Invocation<'_>, settled: Settled) -> RequestResult {
    let Settled { mut result, record, follow_up, chains, releases, mut reverts } = settled;
    // The state goes out beside the record, and the checks only once their chains are
    // written: a check that arrived before its own chain (a write slower than the
    // check's delay) would be dropped by the chain it was about to take over, and
    // that chain's check by it, leaving the termination with no chain to decide it.
    // A chain written but never sent is taken over by the next delivery that finds its
    // target on its way out; a check sent for a chain that could not be written adopts
    // the target, or is dropped when another chain owns it.
    let (state, ()) = futures_util::join!(owned(ctx, &chains, &releases), publish_record(ctx, &mut result, record));
    publish_checks(ctx, &mut result, follow_up).await;
    match state {
        Ok(taken_over) => reverts.extend(taken_over),
        Err(e) => {
            tracing::error!(error = %e, message_id = result.origin.message_id(), "the state of an accepted termination was not written; the request will be redelivered");
            result.follow_up = FollowUp::Failed(e.to_string());
        }
    }
    // A check that did not go out leaves the targets its chain took over to the chains
    // it took them from: theirs may well have gone out.
    if matches!(result.follow_up, FollowUp::Failed(_)) && !reverts.is_empty() {
        let state = &ctx.app.state;
        let given_back = stream::iter(&reverts)
            .map(|(key, mine, previous)| bounded(ctx.publish_deadline, state.revert(key, mine, previous)))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for failed in given_back.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %failed, "a chain taken over was not given back; the next delivery takes it over");
        }
    }
    super::log::settled(&result, ctx.request_id);
    result
}

/// The chains of what this request's calls got accepted, and the claims of refused
/// calls freed. A chain another owns is left to it; a write that fails is the
/// request's failure (its message comes back), a release that fails only waits out
/// its claim. The chains taken over, as (key, own chain, the chain taken over).
async fn owned(
    ctx: &Invocation<'_>,
    chains: &[ChainStart],
    releases: &[(Key, String)],
) -> Result<Vec<(Key, String, String)>, ServiceError> {
    let state = &ctx.app.state;
    let now = ctx.now.unix_timestamp();
    let writes = stream::iter(chains)
        .map(|start| bounded(ctx.publish_deadline, state.start_chain(start, now)))
        .buffered(CONCURRENCY)
        .collect::<Vec<_>>();
    let frees = stream::iter(releases)
        .map(|(key, chain)| bounded(ctx.publish_deadline, state.release(key, &ctx.holder, chain)))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>();
    let (written, freed) = futures_util::join!(writes, frees);
    for failed in freed.into_iter().filter_map(Result::err) {
        tracing::warn!(error = %failed, "a refused call's intent (or claim) was not released; a claim lapses in 15 minutes");
    }
    let mut taken_over = Vec::new();
    let mut answered = Vec::new();
    for (start, written) in chains.iter().zip(written) {
        match written? {
            Started::Won { previous: Some(previous) } => {
                taken_over.push((start.key.clone(), start.chain.clone(), previous))
            }
            Started::Won { previous: None } => {}
            // Followed by another chain, or decided already (a reused token answered
            // with a record decided before): the call was answered, so its intent goes,
            // lest a watch take it for a call whose answer never came.
            Started::Lost => answered.push(start),
        }
    }
    let freed = stream::iter(answered)
        .map(|start| bounded(ctx.publish_deadline, state.answered(&start.key, &start.chain)))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for failed in freed.into_iter().filter_map(Result::err) {
        tracing::warn!(error = %failed, "an answered call's intent was not removed; its watch may follow it up too");
    }
    Ok(taken_over)
}

/// A record goes out once per message: with a state table, one that an earlier
/// delivery of the same message already published is not published again. When the
/// table cannot say, the record goes out (a copy rather than a loss).
async fn publish_once(
    ctx: &Invocation<'_>,
    record: &crate::deadletter::DeadLetterRecord,
) -> Result<(), crate::deadletter::PublishError> {
    let (state, now) = (&ctx.app.state, ctx.now.unix_timestamp());
    if !state.is_set() {
        return ctx.app.dead_letters.publish(record).await;
    }
    let identity = record.identity();
    let receive = record.source.get("receiveCount").and_then(serde_json::Value::as_u64);
    let mut record = record.clone();
    match state.record_unpublished(&identity, &record.failed_at, receive, now).await {
        Ok(None) => {
            tracing::info!(record = %identity, "this dead-letter record was published by an earlier delivery of the message");
            return Ok(());
        }
        // Perhaps sent already by a delivery that died before marking it: the same
        // record again, as that delivery built it, never another.
        Ok(Some(first)) => {
            if let (Some(at), Some(source)) = (first.get("firstFailedAt"), record.source.as_object_mut()) {
                if let Some(first) = first.get("firstReceive").and_then(|r| r.parse::<u64>().ok()) {
                    source.insert("receiveCount".into(), first.into());
                }
                record.failed_at = at.to_owned();
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "the state table cannot say whether this record went out; it is published")
        }
    }
    ctx.app.dead_letters.publish(&record).await?;
    if let Err(e) = state.record_published(&identity, now).await {
        tracing::warn!(error = %e, record = %identity, "a published record was not marked; a later delivery may publish it again");
    }
    Ok(())
}

async fn publish_record(
    ctx: &Invocation<'_>,
    result: &mut RequestResult,
    record: Option<crate::deadletter::DeadLetterRecord>,
) {
    if let Some(record) = record {
        let published = within_deadline(ctx.publish_deadline, publish_once(ctx, &record)).await;
        result.dead_letter = match published {
            Ok(Ok(())) => DeadLetterStatus::Published,
            Ok(Err(e)) => {
                tracing::error!(error = %e, message_id = result.origin.message_id(), "dead-letter record not published; the request will be redelivered");
                DeadLetterStatus::Failed(e.to_string())
            }
            Err(failure) => {
                tracing::error!(error = %failure.message, message_id = result.origin.message_id(), "dead-letter record not published before the deadline; the request will be redelivered");
                DeadLetterStatus::Failed(failure.message)
            }
        };
    }
}

async fn publish_checks(
    ctx: &Invocation<'_>,
    result: &mut RequestResult,
    follow_up: Vec<(crate::confirm::Check, u64)>,
) {
    for (check, delay) in follow_up {
        let sent = within_deadline(ctx.publish_deadline, ctx.app.request_queue.send(&check, delay)).await;
        result.follow_up = match sent {
            Ok(Ok(())) if !matches!(result.follow_up, FollowUp::Failed(_)) => FollowUp::Sent,
            Ok(Ok(())) => continue,
            Ok(Err(e)) => {
                // The lookups make a redelivery safe: what was accepted is found on its
                // way out and followed up then.
                tracing::error!(error = %e, message_id = result.origin.message_id(), "follow-up check not sent; the request will be redelivered");
                FollowUp::Failed(e.to_string())
            }
            Err(failure) => FollowUp::Failed(failure.message),
        };
    }
}
