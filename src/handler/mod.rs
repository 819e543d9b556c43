//! One invocation, end to end. The deliveries of a batch travel through five
//! steps, each taking and returning its own type:
//!
//! 1. [`admit`]: what each delivery is, decided once: refused (with its record),
//!    a request ([`admit::Accepted`]), a fan-out, or a follow-up check of the
//!    function's own ([`trust`] decides whose checks and children count);
//! 2. [`resolve`]: every request's targets looked up and judged (filters, guards):
//!    [`resolve::Resolved`];
//! 3. [`execute`]: terminate what passed, ids from many requests sharing calls, all
//!    calls concurrent and bounded, so a 10-record batch costs about one round of
//!    API latency; the answers are filed by target;
//! 4. [`settle`] (requests), [`fan_out`] and [`check`]: each reads back its own
//!    targets' answers and gets its outcome, its record and its follow-up;
//! 5. [`publish`]: the records and checks go out, within the deadline.

mod admit;
mod app;
mod check;
mod execute;
mod fan_out;
mod log;
mod ownership;
mod publish;
mod resolve;
mod settle;
mod trust;

use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

use crate::decode::{Decoded, Delivery, decode};
use crate::outcome::{DeadLetterStatus, Failure, FollowUp, Outcome, RequestResult};
use crate::report::{BatchResponse, Report};
use admit::Admitted;
pub use admit::Refused;
pub use app::App;
use app::{Invocation, PUBLISH_RESERVE, within_deadline, work_deadline};
use resolve::SentServers;
use settle::Settled;

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
    announce(app, &results, &context).await;
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

/// With a state table: each decision written, now that its record and audit event are
/// out, is marked announced, and a new termination of its target may start. One that
/// cannot be marked holds new terminations back for an hour at most.
async fn announce(app: &App, results: &[RequestResult], context: &Context) {
    use futures_util::{StreamExt, stream};
    let now = (app.clock)().unix_timestamp();
    let marks = results
        .iter()
        .filter(|r| !matches!(r.dead_letter, DeadLetterStatus::Failed(_)))
        .flat_map(|r| r.announce.iter());
    let marked: Vec<_> = stream::iter(marks)
        .map(|a| {
            within_deadline(
                work_deadline(context, PUBLISH_RESERVE),
                app.state.announced(&a.item, &a.chain, &a.message, now),
            )
        })
        .buffer_unordered(app::CONCURRENCY)
        .collect()
        .await;
    let failed = marked.iter().filter(|m| !matches!(m, Ok(Ok(_)))).count();
    if failed > 0 {
        tracing::warn!(
            failed,
            "decisions published but not marked announced; their targets wait an hour for a new termination"
        );
    }
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
    let seeds: Vec<String> = deliveries.iter().map(|d| d.token_seed.clone()).collect();
    let mut results = in_order(app, deliveries, context).await;
    for (result, seed) in results.iter_mut().zip(seeds) {
        result.decision_seed = seed;
    }
    results
}

async fn in_order(app: &App, deliveries: Vec<Delivery>, context: &Context) -> Vec<RequestResult> {
    let mut sent = SentServers::default();
    if !deliveries.iter().any(|d| d.origin.fifo_group().is_some()) {
        return round(app, deliveries, context, &mut sent).await;
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
        let heads: Vec<(usize, usize, Delivery)> = groups
            .iter_mut()
            .enumerate()
            .filter_map(|(g, (_, members))| members.pop_front().map(|(i, item)| (g, i, item)))
            .collect();
        if heads.is_empty() {
            break;
        }
        let (positions, items): (Vec<(usize, usize)>, Vec<Delivery>) =
            heads.into_iter().map(|(g, i, item)| ((g, i), item)).unzip();
        let worked = round(app, items, context, &mut sent).await;
        for ((g, i), result) in positions.into_iter().zip(worked) {
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
        ..RequestResult::new(item.origin, None, Outcome::Transient, app.settings.dry_run_for(None))
    };
    log::settled(&result, request_id);
    result
}

/// The steps over a list of deliveries that may share calls.
async fn round(app: &App, deliveries: Vec<Delivery>, context: &Context, sent: &mut SentServers) -> Vec<RequestResult> {
    let ctx = Invocation::new(app, context);
    // Each delivery's end, by its position in the list.
    let mut ends: Vec<(usize, Settled)> = Vec::new();
    let (mut requests, mut fan_outs, mut checks) = (Vec::new(), Vec::new(), Vec::new());
    for (at, admitted) in admit::admit(&ctx, deliveries).await.into_iter().enumerate() {
        match admitted {
            Admitted::Refused(end) => ends.push((at, end)),
            Admitted::Request(accepted) => requests.push((at, accepted)),
            Admitted::FanOut(accepted, fan_out) => fan_outs.push((at, accepted, fan_out)),
            Admitted::Check(delivery, check, request) => checks.push((at, (delivery, check, request))),
        }
    }

    let (positions, requests): (Vec<usize>, Vec<_>) = requests.into_iter().unzip();
    let mut resolved = resolve::resolve_all(&ctx, requests, sent).await;
    let recoveries = ownership::recover_intents(&ctx, &mut resolved).await;
    ownership::before_calls(&ctx, &mut resolved, recoveries).await;
    let results = execute::run(&ctx, execute::plan(&resolved)).await;
    for (id, job) in results.accepted_servers() {
        sent.insert(id.to_owned(), job.to_owned());
    }
    ends.extend(positions.into_iter().zip(resolved.into_iter().map(|r| settle::settle(&ctx, r, &results))));
    for (at, accepted, fan_out) in fan_outs {
        ends.push((at, fan_out::settle(&ctx, accepted, fan_out).await));
    }
    let (positions, checks): (Vec<usize>, Vec<_>) = checks.into_iter().unzip();
    ends.extend(positions.into_iter().zip(check::settle_checks(&ctx, checks).await));

    ends.sort_by_key(|(at, _)| *at);
    publish::publish(&ctx, ends.into_iter().map(|(_, end)| end).collect()).await
}
