//! One invocation, end to end. Each delivery becomes one [`Work`] value that
//! travels through four steps over the whole batch:
//!
//! 1. validate (pure): the request, or why it is refused;
//! 2. [`resolve`]: look its targets up and judge them (filters, guards);
//! 3. [`execute`]: terminate what passed, ids from many requests sharing calls, all
//!    calls concurrent and bounded, so a 10-record batch costs about one round of
//!    API latency; the answers are filed by target;
//! 4. [`settle`]: read back its own targets' answers, give it its outcome, and its
//!    dead-letter record when one is owed; then the record is published.

mod app;
mod check;
mod execute;
mod fan_out;
mod log;
mod resolve;
mod settle;
mod trust;
mod work;

use futures_util::{StreamExt, stream};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

use crate::decode::{Decoded, Delivery, decode};
use crate::outcome::{DeadLetterStatus, Failure, FollowUp, Outcome, RequestResult};
use crate::report::{BatchResponse, Report};
use crate::request::{Request, Scope, Target};
use crate::services::places::Place;
pub use app::App;
use app::{CONCURRENCY, Home, PUBLISH_RESERVE, within_deadline, work_deadline};
pub use work::Refused;
use work::{Resolution, SentServers, Work};

/// The Lambda entry point: picks the answer's shape from the event's.
pub async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    let (sqs, deliveries) = match decode(payload, &context.request_id) {
        Decoded::Sqs(deliveries) => (true, deliveries),
        Decoded::Other(deliveries) => (false, deliveries),
    };
    // Boxed: the invocation's future is deep (every step, every service), and a box
    // here keeps its type within the compiler's limits at no measurable cost.
    let results = Box::pin(process(app, deliveries, &context)).await;
    account(app, &results, &context).await;
    if sqs {
        return Ok(serde_json::to_value(BatchResponse::of(&results)?)?);
    }
    // Without SQS to redeliver, an unpublished record or an unsent follow-up must fail
    // the invocation so Lambda's own retries and on-failure destination take over.
    for result in &results {
        if let (DeadLetterStatus::Failed(reason), _) | (_, FollowUp::Failed(reason)) =
            (&result.dead_letter, &result.follow_up)
        {
            return Err(reason.clone().into());
        }
    }
    Ok(serde_json::to_value(Report::of(&results))?)
}

/// docs/reference.md, "Follow-up, audit events and metrics": every decision as an audit event, and the invocation's metrics as
/// EMF lines on standard output. Neither changes an outcome.
async fn account(app: &App, results: &[RequestResult], context: &Context) {
    let at = settle::timestamp(app);
    let decisions: Vec<crate::audit::Decision> =
        results.iter().flat_map(|r| crate::audit::decisions(r, &at, app.region.as_deref())).collect();
    // Bounded like every call: a slow bus must not time the invocation out, which
    // would redeliver a whole batch for the sake of its audit events.
    let not_sent = match within_deadline(work_deadline(context, PUBLISH_RESERVE), app.audit.put(&decisions)).await {
        Ok(not_sent) => not_sent,
        Err(_) => crate::audit::not_sent(&decisions),
    };
    let cold_start = !app.warm.swap(true, std::sync::atomic::Ordering::Relaxed);
    let now_ms = i64::try_from((app.clock)().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    if !app.metrics {
        return;
    }
    for line in crate::metrics::lines(&app.settings.metrics_namespace, results, cold_start, not_sent, now_ms) {
        // Raw lines, not through the log formatter: CloudWatch reads them as they are.
        println!("{line}");
    }
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
pub async fn process(app: &App, deliveries: Vec<Delivery>, context: &Context) -> Vec<RequestResult> {
    let mut sent = SentServers::default();
    if !deliveries.iter().any(|d| d.origin.fifo_group().is_some()) {
        return work(app, deliveries, context, &mut sent).await;
    }
    // Each FIFO group (a record outside any is a group of its own), members in batch order.
    type Group = (Option<String>, std::collections::VecDeque<(usize, Delivery)>);
    let mut groups: Vec<Group> = Vec::new();
    for (i, item) in deliveries.into_iter().enumerate() {
        let group = item.origin.fifo_group().map(str::to_owned);
        match groups.iter_mut().find(|(g, _)| g.is_some() && *g == group) {
            Some((_, members)) => members.push_back((i, item)),
            None => groups.push((group, std::collections::VecDeque::from([(i, item)]))),
        }
    }
    let mut results: Vec<(usize, RequestResult)> = Vec::new();
    loop {
        let round: Vec<(usize, usize, Delivery)> = groups
            .iter_mut()
            .enumerate()
            .filter_map(|(g, (_, members))| members.pop_front().map(|(i, item)| (g, i, item)))
            .collect();
        if round.is_empty() {
            break;
        }
        let (places, items): (Vec<(usize, usize)>, Vec<Delivery>) =
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

/// A FIFO message left for SQS untouched, because an earlier one of its group
/// must be redelivered first. Returned as it is, even on its last delivery.
fn not_worked(app: &App, item: Delivery, group: Option<&str>, request_id: &str) -> RequestResult {
    let failure = Failure::new(
        "HeldForOrder",
        format!(
            "not worked: an earlier message of FIFO group {} is redelivered first",
            group.map(crate::request::json::quote).unwrap_or_default()
        ),
    );
    let result = RequestResult {
        error: Some(failure),
        ..RequestResult::new(
            item.origin,
            None,
            Outcome::Transient,
            app.settings.dry_run || app.settings.enforce_dry_run,
        )
    };
    log::settled(&result, request_id);
    result
}

/// The four steps over a list of deliveries that may share calls.
async fn work(app: &App, deliveries: Vec<Delivery>, context: &Context, sent: &mut SentServers) -> Vec<RequestResult> {
    let deadline = work_deadline(context, app.deadline_reserve);
    let now = (app.clock)();
    // Checks and fan-out children are honoured only as the function sent them ("Who may send what").
    let mut untrusted: Vec<(usize, settle::Settled)> = Vec::new();
    let mut trusted: Vec<(usize, Delivery)> = Vec::new();
    for (i, vetted) in trust::vet(app, deliveries, deadline).await.into_iter().enumerate() {
        match vetted {
            Ok(delivery) => trusted.push((i, delivery)),
            Err(refused) => untrusted.push((i, refused)),
        }
    }
    // Follow-up checks (docs/reference.md, "Follow-up, audit events and metrics") go their own way; requests take the four steps.
    type Placed = Vec<(usize, Delivery)>;
    let (checks, requests): (Placed, Placed) = trusted
        .into_iter()
        .partition(|(_, d)| d.decoded.as_ref().ok().and_then(crate::confirm::confirm_member).is_some());
    let (check_places, checks): (Vec<usize>, Vec<Delivery>) = checks.into_iter().unzip();
    let (request_places, requests): (Vec<usize>, Vec<Delivery>) = requests.into_iter().unzip();

    let home = Home::of(context, app.region.as_deref());
    let works: Vec<Work> = requests.into_iter().map(|d| Work::validated(app, d, &home)).collect();
    // A fan-out is settled by sending its children (docs/reference.md, "Accounts, regions and fan-out"); the rest take the steps.
    type PlacedWork = Vec<(usize, Work)>;
    let (fan_outs, mut works): (PlacedWork, PlacedWork) =
        request_places.into_iter().zip(works).partition(|(_, w)| w.request.as_ref().is_ok_and(|r| r.fan_out.is_some()));
    // The named WorkSpaces of the whole batch are looked up together, per place:
    // ⌈n/25⌉ DescribeWorkspaces for the batch, not one round per request.
    let mut named_workspaces: std::collections::BTreeMap<Place, Vec<String>> = Default::default();
    for (_, work) in &works {
        if let Ok(Request { target: Target::Workspaces(Scope::Named(w)), .. }) = &work.request {
            let ids = named_workspaces.entry(work.place.clone()).or_default();
            ids.extend(w.workspace_ids.iter().filter(|id| !ids.contains(id)).cloned().collect::<Vec<_>>());
        }
    }
    let prefetched: std::collections::BTreeMap<
        Place,
        Result<Vec<crate::guard::Candidate>, crate::classify::ServiceError>,
    > = stream::iter(named_workspaces)
        .map(|(place, ids)| {
            let home = &home;
            async move {
                // Reaching the place (AssumeRole) is bounded by the deadline like any call.
                let found = within_deadline(deadline, async {
                    let services = app.services_for(&place, home, &context.request_id).await?;
                    services.workspaces.describe(&ids).await
                })
                .await
                .unwrap_or_else(|failure| Err(crate::classify::ServiceError { outcome: Outcome::Transient, failure }));
                (place, found)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let resolutions: Vec<(Resolution, Option<String>)> = stream::iter(&works)
        .map(|(_, work)| async {
            let Ok(request) = &work.request else { return (Resolution::Nothing, None) };
            let reached = within_deadline(deadline, app.services_for(&work.place, &home, &context.request_id)).await;
            let services = match reached {
                Ok(Ok(services)) => services,
                Ok(Err(error)) => return (Resolution::Failed(error), None),
                Err(failure) => {
                    let error = crate::classify::ServiceError { outcome: Outcome::Transient, failure };
                    return (Resolution::Failed(error), None);
                }
            };
            let at = resolve::Lookup {
                now,
                deadline,
                sent,
                sent_at: work.delivery.sent_at,
                workspaces: prefetched.get(&work.place),
            };
            resolve::resolve(app, &services, request, &at).await
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for ((_, work), (resolution, found_product)) in works.iter_mut().zip(resolutions) {
        work.resolution = resolution;
        work.found_product = found_product;
    }
    let (request_places, works): (Vec<usize>, Vec<Work>) = works.into_iter().unzip();
    let results = execute::run(app, execute::plan(&works), deadline, &home, &context.request_id).await;
    for (id, job) in results.accepted_servers() {
        sent.insert(id.to_owned(), job.to_owned());
    }
    let mut settled: Vec<(usize, settle::Settled)> = request_places
        .into_iter()
        .zip(works.into_iter().map(|work| settle::settle(app, work, &results, &home)))
        .collect();
    for (place, work) in fan_outs {
        settled.push((place, fan_out::settle(app, work, &home, deadline).await));
    }
    let checked = check::settle_checks(app, checks, now, deadline, &home, &context.request_id).await;
    settled.extend(check_places.into_iter().zip(checked));
    settled.extend(untrusted);
    settled.sort_by_key(|(place, _)| *place);

    // Publishing and follow-ups are bounded by the invocation's own deadline like every
    // other call, keeping back only what answering takes: a record or a check cut off
    // is reported unsent, so its message is redelivered (SQS) or the invocation fails.
    let publish_deadline = work_deadline(context, PUBLISH_RESERVE);
    stream::iter(settled)
        .map(|(_, settled)| async move {
            let settle::Settled { mut result, record, follow_up } = settled;
            if let Some(record) = record {
                let published = within_deadline(publish_deadline, app.dead_letters.publish(&record)).await;
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
                let sent = within_deadline(publish_deadline, app.request_queue.send(&check, delay)).await;
                result.follow_up = match sent {
                    Ok(Ok(())) if !matches!(result.follow_up, FollowUp::Failed(_)) => FollowUp::Sent,
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => {
                        // The lookups make a redelivery safe: what was accepted is found
                        // on its way out and followed up then.
                        tracing::error!(error = %e, message_id = result.origin.message_id(), "follow-up check not sent; the request will be redelivered");
                        FollowUp::Failed(e.to_string())
                    }
                    Err(failure) => FollowUp::Failed(failure.message),
                };
            }
            log::settled(&result, &context.request_id);
            result
        })
        .buffered(CONCURRENCY)
        .collect()
        .await
}
