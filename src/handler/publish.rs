//! Step 5: what the settled requests leave behind goes out: each dead-letter record
//! to its queue, each follow-up check to the request queue. Both are bounded by the
//! invocation's own deadline, keeping back only what answering takes: a record or a
//! check cut off is reported unsent, so its message is redelivered (SQS) or the
//! invocation fails (other sources). Nothing is dropped.

use futures_util::{StreamExt, stream};

use super::app::{CONCURRENCY, Invocation, within_deadline};
use super::settle::Settled;
use crate::outcome::{DeadLetterStatus, FollowUp, RequestResult};

pub(super) async fn publish(ctx: &Invocation<'_>, settled: Vec<Settled>) -> Vec<RequestResult> {
    stream::iter(settled).map(|settled| publish_one(ctx, settled)).buffered(CONCURRENCY).collect().await
}

async fn publish_one(ctx: &Invocation<'_>, settled: Settled) -> RequestResult {
    let (app, deadline) = (ctx.app, ctx.publish_deadline);
    let Settled { mut result, record, follow_up } = settled;
    if let Some(record) = record {
        let published = within_deadline(deadline, app.dead_letters.publish(&record)).await;
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
    for (check, delay) in follow_up {
        let sent = within_deadline(deadline, app.request_queue.send(&check, delay)).await;
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
    super::log::settled(&result, ctx.request_id);
    result
}
