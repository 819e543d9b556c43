//! One invocation, end to end: decode → validate → terminate → account for every
//! request and target → dead-letter the failures → answer.
//!
//! Records of a batch are worked on together: WorkSpaces ids from every message
//! share `TerminateWorkspaces` calls (25 ids a call), and all calls run concurrently,
//! bounded, so a 10-record batch costs about one round of API latency.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use futures_util::{FutureExt, StreamExt, stream};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use time::OffsetDateTime;

use crate::deadletter::{DeadLetterQueue, DeadLetterRecord, FailedTarget};
use crate::decode::{Decoded, Item, Origin, decode};
use crate::outcome::{Failure, Outcome, TargetResult};
use crate::request::{Limits, Request, Targets, ValidationError, retry_request, validate};
use crate::services::Services;
use crate::settings::Settings;

/// How many API calls (or dead-letter publishes) one invocation has in flight at once.
const CONCURRENCY: usize = 16;

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
            if let Some(DeadLetterStatus::Failed(reason)) = results
                .iter()
                .map(|r| &r.dead_letter)
                .find(|d| matches!(d, DeadLetterStatus::Failed(_)))
            {
                return Err(reason.clone().into());
            }
            Ok(crate::report::report(&results))
        }
    }
}

/// `batchItemFailures`: exactly the messages SQS must deliver again.
fn batch_response(results: &[ItemResult]) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let mut response = SqsBatchResponse::default();
    for result in results {
        let redeliver = (result.outcome == Outcome::Transient
            && result.dead_letter == DeadLetterStatus::NotNeeded)
            || matches!(result.dead_letter, DeadLetterStatus::Failed(_));
        if !redeliver {
            continue;
        }
        match result.origin.message_id() {
            Some(id) => {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id.to_owned();
                response.batch_item_failures.push(failure);
            }
            // No id to name: only failing the whole invocation gets it delivered again.
            None => {
                return Err(
                    "a record without messageId could not be settled; the whole batch is retried"
                        .into(),
                );
            }
        }
    }
    Ok(response)
}

/// A validated (or refused) item, ready to be worked on.
struct Prepared {
    item: Item,
    request: Result<Request, ValidationError>,
    dry_run: bool,
}

/// A unit of API work. WorkSpaces work is shared by every request in the batch.
enum Job<'a> {
    Workspaces(Vec<String>),
    Mgn(usize, &'a crate::request::TargetInstancesInput),
    Catalog(usize, &'a crate::request::ProvisionedProductInput, String),
}

impl Job<'_> {
    fn ids(&self) -> Vec<String> {
        match self {
            Job::Workspaces(ids) => ids.clone(),
            Job::Mgn(_, input) => input.source_server_ids.clone(),
            Job::Catalog(_, input, _) => vec![input.product.id().to_owned()],
        }
    }

    fn owner(&self) -> Option<usize> {
        match self {
            Job::Workspaces(_) => None,
            Job::Mgn(i, _) | Job::Catalog(i, _, _) => Some(*i),
        }
    }
}

/// Works a list of items to their ends; one result per item, in order.
pub async fn process(app: &App, items: Vec<Item>, context: &Context) -> Vec<ItemResult> {
    let limits = Limits {
        max_targets: app.settings.max_targets,
    };
    let prepared: Vec<Prepared> = items
        .into_iter()
        .map(|item| {
            let request = match &item.decoded {
                Ok(value) => validate(value, limits),
                Err(error) => Err(error.clone()),
            };
            let dry_run = match &request {
                Ok(r) => r.dry_run.unwrap_or(app.settings.dry_run),
                Err(_) => app.settings.dry_run,
            };
            Prepared {
                item,
                request,
                dry_run,
            }
        })
        .collect();

    let jobs = plan(&prepared);
    let deadline = work_deadline(context, app.deadline_reserve);
    let finished: Vec<(Option<usize>, Vec<TargetResult>)> = stream::iter(jobs)
        .map(|job| run_job(app, job, deadline))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    let mut shared: HashMap<String, TargetResult> = HashMap::new();
    let mut owned: HashMap<usize, Vec<TargetResult>> = HashMap::new();
    for (owner, targets) in finished {
        match owner {
            None => shared.extend(targets.into_iter().map(|t| (t.id.clone(), t))),
            Some(i) => owned.entry(i).or_default().extend(targets),
        }
    }

    let settled: Vec<(ItemResult, Option<DeadLetterRecord>)> = prepared
        .into_iter()
        .enumerate()
        .map(|(i, p)| settle(app, p, owned.remove(&i).unwrap_or_default(), &shared))
        .collect();

    stream::iter(settled)
        .map(|(mut result, record)| async move {
            if let Some(record) = record {
                result.dead_letter = match app.dead_letters.publish(&record).await {
                    Ok(()) => DeadLetterStatus::Published,
                    Err(e) => {
                        tracing::error!(error = %e, message_id = result.origin.message_id(), "dead-letter record not published; the request will be redelivered");
                        DeadLetterStatus::Failed(e.to_string())
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

fn plan(prepared: &[Prepared]) -> Vec<Job<'_>> {
    let mut jobs = Vec::new();
    let mut workspace_ids = Vec::new();
    let mut seen = HashSet::new();
    for (i, p) in prepared.iter().enumerate() {
        let Ok(request) = &p.request else { continue };
        if p.dry_run {
            continue;
        }
        match &request.targets {
            Targets::Workspaces(w) => {
                workspace_ids.extend(
                    w.workspace_ids
                        .iter()
                        .filter(|id| seen.insert(id.as_str()))
                        .cloned(),
                );
            }
            Targets::TargetInstances(input) => jobs.push(Job::Mgn(i, input)),
            Targets::ProvisionedProduct(input) => {
                jobs.push(Job::Catalog(i, input, p.item.idempotency_token()))
            }
        }
    }
    if !workspace_ids.is_empty() {
        // One job per 25 ids, so the deadline and concurrency bounds apply per call.
        for chunk in workspace_ids.chunks(crate::services::workspaces::IDS_PER_CALL) {
            jobs.push(Job::Workspaces(chunk.to_vec()));
        }
    }
    jobs
}

fn work_deadline(context: &Context, reserve: Duration) -> Option<tokio::time::Instant> {
    // A zero deadline means none was given (a unit test, or a local runtime).
    if context.deadline == 0 {
        return None;
    }
    let now_ms =
        u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let remaining = Duration::from_millis(context.deadline.saturating_sub(now_ms));
    Some(tokio::time::Instant::now() + remaining.saturating_sub(reserve))
}

async fn run_job(
    app: &App,
    job: Job<'_>,
    deadline: Option<tokio::time::Instant>,
) -> (Option<usize>, Vec<TargetResult>) {
    let owner = job.owner();
    let ids = job.ids();
    let abandoned = |code: &str, message: &str| {
        let failure = Failure::new(code, message);
        ids.iter()
            .map(|id| TargetResult::failed(id, Outcome::Transient, failure.clone()))
            .collect::<Vec<_>>()
    };
    const NEAR: &str = "the invocation's deadline was near; left for redelivery";
    // Past the deadline nothing new is started: a call begun now could be cut off
    // mid-flight, leaving no one to know whether it happened.
    if deadline.is_some_and(|at| tokio::time::Instant::now() >= at) {
        return (owner, abandoned("DeadlineNear", NEAR));
    }
    let work = async {
        match &job {
            Job::Workspaces(ids) => app.services.workspaces.terminate(ids).await,
            Job::Mgn(_, input) => app.services.mgn.terminate(input).await,
            Job::Catalog(_, input, token) => {
                vec![app.services.catalog.terminate(input, token).await]
            }
        }
    };
    let guarded = AssertUnwindSafe(work).catch_unwind();
    let result = match deadline {
        Some(at) => match tokio::time::timeout_at(at, guarded).await {
            Ok(done) => done,
            Err(_) => {
                let failure = Failure::new(
                    "DeadlineNear",
                    "the invocation's deadline was near; left for redelivery",
                );
                return (
                    owner,
                    ids.iter()
                        .map(|id| TargetResult::failed(id, Outcome::Transient, failure.clone()))
                        .collect(),
                );
            }
        },
        None => guarded.await,
    };
    match result {
        Ok(targets) => (owner, targets),
        Err(_) => {
            tracing::error!(
                ?ids,
                "a service call panicked; its targets are left for redelivery"
            );
            let failure = Failure::new(
                "InternalError",
                "teardown failed while calling the service; left for redelivery",
            );
            (
                owner,
                ids.iter()
                    .map(|id| TargetResult::failed(id, Outcome::Transient, failure.clone()))
                    .collect(),
            )
        }
    }
}

/// Decides the item's outcome and, when one is owed, its dead-letter record.
fn settle(
    app: &App,
    p: Prepared,
    owned: Vec<TargetResult>,
    shared: &HashMap<String, TargetResult>,
) -> (ItemResult, Option<DeadLetterRecord>) {
    let sqs = matches!(p.item.origin, Origin::Sqs { .. });
    let request = match p.request {
        Err(error) => {
            let operation = p
                .item
                .decoded
                .as_ref()
                .ok()
                .and_then(|v| v.get("operation"))
                .and_then(Value::as_str)
                .and_then(crate::request::Operation::parse)
                .map(|o| o.as_str());
            let failure = Failure::new(error.code, error.to_string());
            let result = ItemResult {
                origin: p.item.origin.clone(),
                operation,
                outcome: Outcome::Invalid,
                dry_run: p.dry_run,
                targets: Vec::new(),
                error: Some(failure.clone()),
                dead_letter: DeadLetterStatus::NotNeeded,
            };
            let record = record(
                app,
                &p.item,
                operation,
                Outcome::Invalid,
                failure,
                Vec::new(),
                None,
            );
            return (result, Some(record));
        }
        Ok(request) => request,
    };
    let operation = Some(request.operation().as_str());

    let targets: Vec<TargetResult> = if p.dry_run {
        request
            .targets
            .ids()
            .into_iter()
            .map(|id| TargetResult::new(id, Outcome::DryRun))
            .collect()
    } else if let Targets::Workspaces(w) = &request.targets {
        w.workspace_ids
            .iter()
            .map(|id| {
                shared.get(id).cloned().unwrap_or_else(|| {
                    TargetResult::failed(
                        id,
                        Outcome::Transient,
                        Failure::new("InternalError", "no result was recorded"),
                    )
                })
            })
            .collect()
    } else {
        owned
    };

    let outcome = Outcome::worst(targets.iter().map(|t| t.outcome)).unwrap_or(Outcome::Invalid);
    let failed: Vec<&TargetResult> = targets.iter().filter(|t| t.outcome.is_failure()).collect();
    let error = summarize(&failed, targets.len());

    // A message SQS will redeliver gets its record when it settles, not now: a record
    // per attempt would fill the dead-letter queue with duplicates.
    let owes_record = outcome.is_failure()
        && !(sqs && outcome == Outcome::Transient && p.item.origin.message_id().is_some());
    let record = match (&error, owes_record) {
        (Some(failure), true) => {
            let failed_targets = failed
                .iter()
                .map(|t| {
                    let e = t
                        .error
                        .clone()
                        .unwrap_or_else(|| Failure::new("Unknown", ""));
                    FailedTarget {
                        id: t.id.clone(),
                        code: e.code,
                        message: e.message,
                    }
                })
                .collect();
            let ids: Vec<String> = failed.iter().map(|t| t.id.clone()).collect();
            Some(record(
                app,
                &p.item,
                operation,
                outcome,
                failure.clone(),
                failed_targets,
                retry_request(&request, &ids),
            ))
        }
        _ => None,
    };
    let result = ItemResult {
        origin: p.item.origin.clone(),
        operation,
        outcome,
        dry_run: p.dry_run,
        targets,
        error,
        dead_letter: DeadLetterStatus::NotNeeded,
    };
    (result, record)
}

/// One error for the whole request: the target's own when one failed, else a count.
fn summarize(failed: &[&TargetResult], total: usize) -> Option<Failure> {
    let first = failed
        .first()?
        .error
        .clone()
        .unwrap_or_else(|| Failure::new("Unknown", ""));
    if failed.len() == 1 {
        return Some(first);
    }
    let codes: BTreeMap<&str, usize> = failed.iter().fold(BTreeMap::new(), |mut m, t| {
        *m.entry(t.error.as_ref().map_or("Unknown", |e| e.code.as_str()))
            .or_default() += 1;
        m
    });
    let code = if codes.len() == 1 {
        first.code.clone()
    } else {
        "MultipleErrors".to_owned()
    };
    let detail: Vec<String> = codes.iter().map(|(c, n)| format!("{c} ×{n}")).collect();
    Some(Failure::new(
        code,
        format!(
            "{} of {total} targets failed: {}",
            failed.len(),
            detail.join(", ")
        ),
    ))
}

fn record(
    app: &App,
    item: &Item,
    operation: Option<&'static str>,
    outcome: Outcome,
    error: Failure,
    failed_targets: Vec<FailedTarget>,
    retry_request: Option<Value>,
) -> DeadLetterRecord {
    let failed_at = (app.clock)()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    DeadLetterRecord {
        version: 1,
        failed_at,
        source: item.origin.to_json(),
        request: item.raw.clone(),
        outcome,
        error,
        failed_targets,
        retry_request,
        operation: operation.map(str::to_owned),
    }
}
