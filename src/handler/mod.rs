//! One invocation, end to end, in four steps over the whole batch:
//!
//! 1. validate each item (pure);
//! 2. [`resolve`]: look each request's targets up and judge them (filters, guards);
//! 3. [`execute`]: terminate what passed, WorkSpaces ids from every message sharing
//!    `TerminateWorkspaces` calls, all calls concurrent and bounded, so a 10-record
//!    batch costs about one round of API latency;
//! 4. [`settle`]: give each item its outcome, and its dead-letter record when one is owed.

mod execute;
mod resolve;
mod settle;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use futures_util::{FutureExt, StreamExt, stream};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use time::OffsetDateTime;

use crate::deadletter::DeadLetterQueue;
use crate::decode::{Decoded, Item, Origin, decode};
use crate::outcome::{Failure, Outcome, TargetResult};
use crate::request::{Limits, Request, ValidationError, validate};
use crate::services::Services;
use crate::settings::Settings;

/// How many API calls (or dead-letter publishes) one invocation has in flight at once.
const CONCURRENCY: usize = 16;

/// Kept back from the invocation's deadline when publishing dead-letter records:
/// enough to write the answer.
const PUBLISH_RESERVE: Duration = Duration::from_millis(250);

/// Everything an invocation needs, built once per container.
pub struct App {
    pub services: Services,
    pub dead_letters: DeadLetterQueue,
    pub settings: Settings,
    /// The wall clock for `failedAt`; tests fix it.
    pub clock: fn() -> OffsetDateTime,
    /// Kept back from the invocation's deadline to publish dead-letter records and
    /// answer: work still running then is abandoned as `transient`, not lost.
    pub deadline_reserve: Duration,
}

impl App {
    pub fn new(services: Services, dead_letters: DeadLetterQueue, settings: Settings) -> Self {
        App {
            services,
            dead_letters,
            settings,
            clock: OffsetDateTime::now_utc,
            deadline_reserve: Duration::from_millis(1500),
        }
    }
}

/// What a dead-letter record, if one was owed, came to.
#[derive(Clone, Debug, PartialEq)]
pub enum DeadLetterStatus {
    NotNeeded,
    Published,
    Failed(String),
}

/// The end of one request (or of one payload that was not a request).
#[derive(Clone, Debug)]
pub struct ItemResult {
    pub origin: Origin,
    pub operation: Option<&'static str>,
    pub outcome: Outcome,
    pub dry_run: bool,
    pub targets: Vec<TargetResult>,
    pub error: Option<Failure>,
    pub dead_letter: DeadLetterStatus,
}

/// The Lambda entry point: picks the answer's shape from the event's.
pub async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    match decode(payload, &context.request_id) {
        Decoded::Sqs(items) => {
            let results = process(app, items, &context).await;
            Ok(serde_json::to_value(batch_response(&results)?)?)
        }
        Decoded::Other(items) => {
            let results = process(app, items, &context).await;
            // Without SQS to redeliver, an unpublished record must fail the invocation so
            // Lambda's own retries and on-failure destination take over.
            if let Some(DeadLetterStatus::Failed(reason)) =
                results.iter().map(|r| &r.dead_letter).find(|d| matches!(d, DeadLetterStatus::Failed(_)))
            {
                return Err(reason.clone().into());
            }
            Ok(crate::report::report(&results))
        }
    }
}

impl ItemResult {
    /// Whether SQS must deliver the message again: it may still succeed, and no
    /// record settled it; or its record could not be published, so it must not be lost.
    pub fn redeliver(&self) -> bool {
        (self.outcome == Outcome::Transient && self.dead_letter == DeadLetterStatus::NotNeeded)
            || matches!(self.dead_letter, DeadLetterStatus::Failed(_))
    }
}

/// `batchItemFailures`: exactly the messages SQS must deliver again.
fn batch_response(results: &[ItemResult]) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let mut response = SqsBatchResponse::default();
    for result in results.iter().filter(|r| r.redeliver()) {
        match result.origin.message_id() {
            Some(id) => {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id.to_owned();
                response.batch_item_failures.push(failure);
            }
            // No id to name: only failing the whole invocation gets it delivered again.
            None => {
                return Err("a record without messageId could not be settled; the whole batch is retried".into());
            }
        }
    }
    Ok(response)
}

/// An item once validated: the request, or why it is not one.
struct Prepared {
    item: Item,
    request: Result<Request, ValidationError>,
    dry_run: bool,
}

/// Works a list of items to their ends; one result per item, in order.
///
/// Records from a FIFO queue are worked in rounds: the first message of every group,
/// then the second, and so on, so each group goes in its order and groups go on side
/// by side. Once a message must be redelivered, the later messages of its group are
/// not worked at all and go back with it (SQS's rule for FIFO partial batch
/// responses). Calls are shared only within a group, except that one MGN server is
/// never sent twice: a later round finds it among the servers this invocation has
/// already sent, as a redelivery finds it among the running jobs.
pub async fn process(app: &App, items: Vec<Item>, context: &Context) -> Vec<ItemResult> {
    let mut sent = SentServers::default();
    if !items.iter().any(|item| item.origin.fifo_group().is_some()) {
        return work(app, items, context, &mut sent).await;
    }
    // Each FIFO group (a record outside any is a group of its own), members in batch order.
    type Group = (Option<String>, std::collections::VecDeque<(usize, Item)>);
    let mut groups: Vec<Group> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let group = item.origin.fifo_group().map(str::to_owned);
        match groups.iter_mut().find(|(g, _)| g.is_some() && *g == group) {
            Some((_, members)) => members.push_back((i, item)),
            None => groups.push((group, std::collections::VecDeque::from([(i, item)]))),
        }
    }
    let mut results: Vec<(usize, ItemResult)> = Vec::new();
    loop {
        let round: Vec<(usize, usize, Item)> = groups
            .iter_mut()
            .enumerate()
            .filter_map(|(g, (_, members))| members.pop_front().map(|(i, item)| (g, i, item)))
            .collect();
        if round.is_empty() {
            break;
        }
        let (places, items): (Vec<(usize, usize)>, Vec<Item>) =
            round.into_iter().map(|(g, i, item)| ((g, i), item)).unzip();
        let worked = work(app, items, context, &mut sent).await;
        for ((g, i), result) in places.into_iter().zip(worked) {
            if result.redeliver() {
                let (group, held) = &mut groups[g];
                for (later, item) in held.drain(..) {
                    results.push((later, not_worked(app, item, group.as_deref(), &context.request_id)));
                }
            }
            results.push((i, result));
        }
    }
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// MGN source servers this invocation has had accepted, with their job.
pub(crate) type SentServers = std::collections::HashMap<String, String>;

/// A FIFO message left for SQS untouched, because an earlier one of its group
/// must be redelivered first. Returned as it is, even on its last delivery.
fn not_worked(app: &App, item: Item, group: Option<&str>, request_id: &str) -> ItemResult {
    let failure = Failure::new(
        "HeldForOrder",
        format!(
            "not worked: an earlier message of FIFO group {} is redelivered first",
            group.map(crate::request::quote).unwrap_or_default()
        ),
    );
    let result = ItemResult {
        origin: item.origin,
        operation: None,
        outcome: Outcome::Transient,
        dry_run: app.settings.dry_run || app.settings.enforce_dry_run,
        targets: Vec::new(),
        error: Some(failure),
        dead_letter: DeadLetterStatus::NotNeeded,
    };
    crate::report::log(&result, request_id);
    result
}

/// The four steps over a list of items that may share calls.
async fn work(app: &App, items: Vec<Item>, context: &Context, sent: &mut SentServers) -> Vec<ItemResult> {
    let limits = Limits { max_targets: app.settings.max_targets };
    let prepared: Vec<Prepared> = items
        .into_iter()
        .map(|item| {
            let request = match &item.decoded {
                Ok(value) => validate(value, limits),
                Err(error) => Err(error.clone()),
            };
            // The kill switch outranks what the request says.
            let dry_run = app.settings.enforce_dry_run
                || match &request {
                    Ok(r) => r.dry_run.unwrap_or(app.settings.dry_run),
                    Err(_) => app.settings.dry_run,
                };
            Prepared { item, request, dry_run }
        })
        .collect();

    let deadline = work_deadline(context, app.deadline_reserve);
    let now = (app.clock)();
    let resolutions: Vec<resolve::Resolution> = stream::iter(&prepared)
        .map(|p| resolve::resolve(app, p.request.as_ref().ok(), now, deadline, sent, p.item.sent_at))
        .buffered(CONCURRENCY)
        .collect()
        .await;

    let jobs = execute::plan(&prepared, &resolutions);
    let results = execute::run(app, jobs, deadline).await;
    for result in results.owned.values().flat_map(|m| m.values()) {
        if let (Outcome::Terminated, Some(job)) = (result.outcome, &result.job_id) {
            sent.insert(result.id.clone(), job.clone());
        }
    }

    let settled: Vec<_> = prepared
        .into_iter()
        .zip(resolutions)
        .enumerate()
        .map(|(i, (p, resolution))| settle::settle(app, p, resolution, &results, i))
        .collect();

    // Publishing is bounded by the invocation's own deadline like every other call,
    // keeping back only what answering takes: a record cut off is reported unpublished,
    // so its message is redelivered (SQS) or the invocation fails (other sources).
    let publish_deadline = work_deadline(context, PUBLISH_RESERVE);
    stream::iter(settled)
        .map(|(mut result, record)| async move {
            if let Some(record) = record {
                let published = guarded(publish_deadline, app.dead_letters.publish(&record)).await;
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
            crate::report::log(&result, &context.request_id);
            result
        })
        .buffered(CONCURRENCY)
        .collect()
        .await
}

fn work_deadline(context: &Context, reserve: Duration) -> Option<tokio::time::Instant> {
    // A zero deadline means none was given (a unit test, or a local runtime).
    if context.deadline == 0 {
        return None;
    }
    let now_ms = u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let remaining = Duration::from_millis(context.deadline.saturating_sub(now_ms));
    // An absurd deadline header must not panic: one beyond the clock's range is none.
    tokio::time::Instant::now().checked_add(remaining.saturating_sub(reserve))
}

/// Runs one piece of service work so that neither the deadline nor a panic can
/// lose track of it: past the deadline nothing new starts (a call begun now could
/// be cut off mid-flight, leaving no one to know whether it happened), work still
/// running at the deadline is abandoned, and a panic is contained. Either way the
/// caller gets a `transient` failure to account for.
async fn guarded<T>(deadline: Option<tokio::time::Instant>, work: impl Future<Output = T>) -> Result<T, Failure> {
    const NEAR: &str = "the invocation's deadline was near; left for redelivery";
    if deadline.is_some_and(|at| tokio::time::Instant::now() >= at) {
        return Err(Failure::new("DeadlineNear", NEAR));
    }
    let work = AssertUnwindSafe(work).catch_unwind();
    let done = match deadline {
        Some(at) => tokio::time::timeout_at(at, work).await.map_err(|_| Failure::new("DeadlineNear", NEAR))?,
        None => work.await,
    };
    done.map_err(|_| {
        tracing::error!("a service call panicked; its targets are left for redelivery");
        Failure::new("InternalError", "teardown failed while calling the service; left for redelivery")
    })
}

fn transient_all(ids: &[String], failure: &Failure) -> Vec<TargetResult> {
    ids.iter().map(|id| TargetResult::failed(id, Outcome::Transient, failure.clone())).collect()
}
