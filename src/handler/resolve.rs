//! Step 2: find each request's targets and judge them before anything is called.
//! Named targets are looked up too, so that naming an id cannot bypass a guard.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::{StreamExt, stream};
use time::OffsetDateTime;

use super::admit::Accepted;
use super::app::{App, CONCURRENCY, Invocation, bounded};
use crate::classify::ServiceError;
use crate::guard::{Candidate, Verdict, judge};
use crate::outcome::Outcome;
use crate::request::{ProductRef, Request, Scope, Target};
use crate::services::Services;
use crate::services::places::Place;

/// What a request's lookup came to.
#[derive(Debug)]
pub(super) enum Resolution {
    /// Each target, in order, with its verdict (targets a selection did not match are left out).
    Judged(Vec<(String, Verdict)>),
    /// The lookup failed; every named target takes this end.
    Failed(ServiceError),
    /// A selection matched more targets than MAX_TARGETS: nothing is terminated.
    TooMany(usize),
}

/// A request whose targets were looked up and judged.
pub(crate) struct Resolved {
    pub(super) accepted: Accepted,
    pub(super) resolution: Resolution,
    /// The provisioned product a name led to, when the lookup found one: what a
    /// replay names (docs/reference.md, "The dead-letter record").
    pub(super) found_product: Option<String>,
    /// With a state table: the follow-up chain of this request's accepted targets.
    pub(super) chain: Option<String>,
    /// With a state table: the targets found on their way out (or gone, with a chain
    /// never sent) whose chain this request started, each with the chain it took over:
    /// they are followed up.
    pub(super) chains_won: HashMap<String, Option<String>>,
    /// With a state table: named targets found gone whose unsent chain this request
    /// took over, as their check follows them (the job or record the item kept).
    pub(super) recovered: HashMap<String, crate::confirm::Followed>,
}

/// MGN source servers this invocation has had accepted, with their job.
pub(super) type SentServers = HashMap<String, String>;

/// What the lookups of one request need to know besides the request.
pub(super) struct Lookup<'a> {
    pub now: OffsetDateTime,
    pub deadline: Option<tokio::time::Instant>,
    /// MGN servers this invocation has already had accepted (an earlier FIFO round).
    pub sent: &'a SentServers,
    /// When the request was sent, if known.
    pub sent_at: Option<OffsetDateTime>,
    /// The named WorkSpaces of the whole batch in this place, looked up together.
    pub workspaces: Option<&'a Result<Vec<Candidate>, ServiceError>>,
    /// A dry run writes nothing, not even a first-seen date.
    pub dry_run: bool,
}

/// Step 2 over a batch: every request's targets looked up and judged, side by side.
/// The named WorkSpaces of the whole batch are looked up together, per place:
/// ⌈n/25⌉ DescribeWorkspaces for the batch, not one round per request.
pub(super) async fn resolve_all(ctx: &Invocation<'_>, requests: Vec<Accepted>, sent: &SentServers) -> Vec<Resolved> {
    let mut named_workspaces: BTreeMap<Place, Vec<String>> = BTreeMap::new();
    for accepted in &requests {
        if let Target::Workspaces(Scope::Named(w)) = &accepted.request.target {
            let ids = named_workspaces.entry(accepted.place.clone()).or_default();
            ids.extend(w.workspace_ids.iter().filter(|id| !ids.contains(id)).cloned().collect::<Vec<_>>());
        }
    }
    let prefetched: BTreeMap<Place, Result<Vec<Candidate>, ServiceError>> = stream::iter(named_workspaces)
        .map(|(place, ids)| async move {
            // Reaching the place (AssumeRole) is bounded by the deadline like any call.
            let found = ctx
                .bounded(async {
                    let services = ctx.app.services_for(&place, &ctx.home, ctx.request_id).await?;
                    services.workspaces.describe(&ids).await
                })
                .await;
            (place, found)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let resolutions: Vec<(Resolution, Option<String>)> = stream::iter(&requests)
        .map(|accepted| async {
            let services = match ctx.services(&accepted.place).await {
                Ok(services) => services,
                Err(error) => return (Resolution::Failed(error), None),
            };
            let at = Lookup {
                now: ctx.now,
                deadline: ctx.deadline,
                sent,
                sent_at: accepted.delivery.sent_at,
                workspaces: prefetched.get(&accepted.place),
                dry_run: accepted.dry_run,
            };
            resolve(ctx.app, &services, &accepted.request, &at).await
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    requests
        .into_iter()
        .zip(resolutions)
        .map(|(accepted, (resolution, found_product))| Resolved {
            accepted,
            resolution,
            found_product,
            chain: None,
            chains_won: HashMap::new(),
            recovered: HashMap::new(),
        })
        .collect()
}

/// The request's resolution, and the id of the provisioned product a name led to
/// (a replay names that id, never the name: docs/reference.md, "The dead-letter record").
pub(super) async fn resolve(
    app: &App,
    services: &Services,
    request: &Request,
    at: &Lookup<'_>,
) -> (Resolution, Option<String>) {
    let known_jobs: HashSet<String> = at.sent.values().cloned().collect();
    let found = std::sync::OnceLock::new();
    let looked_up = bounded(at.deadline, look_up(app, services, request, at, &known_jobs, &found)).await;
    let resolution = match looked_up {
        Ok(Resolution::Judged(judged)) if matches!(request.target, Target::TargetInstances(_)) => {
            Resolution::Judged(judged.into_iter().map(|(id, verdict)| already_sent(id, verdict, at.sent)).collect())
        }
        Ok(resolution) => resolution,
        Err(error) => Resolution::Failed(error),
    };
    (resolution, found.into_inner())
}

/// A server this invocation already had accepted (an earlier FIFO round) is on its
/// way out, as one in a running job is.
fn already_sent(id: String, verdict: Verdict, sent: &SentServers) -> (String, Verdict) {
    match (verdict, sent.get(&id)) {
        (Verdict::Terminate { .. }, Some(job_id)) => {
            let reason = format!("already terminating: job {job_id}, started by this invocation");
            (id, Verdict::Underway { job_id: Some(job_id.clone()), reason })
        }
        (verdict, _) => (id, verdict),
    }
}

async fn look_up(
    app: &App,
    services: &Services,
    request: &Request,
    at: &Lookup<'_>,
    known_jobs: &HashSet<String>,
    found_product: &std::sync::OnceLock<String>,
) -> Result<Resolution, ServiceError> {
    let target = &request.target;
    let found = match target {
        Target::Workspaces(Scope::Named(w)) => {
            // Looked up once for every named WorkSpace of the batch in this place.
            let found = match at.workspaces {
                Some(Ok(found)) => found.clone(),
                Some(Err(error)) => return Err(error.clone()),
                None => services.workspaces.describe(&w.workspace_ids).await?,
            };
            return Ok(named(app, target, &w.workspace_ids, found, "DescribeWorkspaces", at));
        }
        Target::TargetInstances(Scope::Named(t)) => {
            let found =
                services.mgn.describe(&t.source_server_ids, t.account_id.as_deref(), at.now, known_jobs).await?;
            return Ok(named(app, target, &t.source_server_ids, found, "DescribeSourceServers", at));
        }
        Target::ProvisionedProduct(Scope::Named(p)) => {
            let id = p.product.as_given().to_owned();
            let described = services.catalog.describe(&p.product).await?;
            if let Some(found) = described.as_ref().and_then(|c| c.call_id.clone()) {
                let _ = found_product.set(found);
            }
            let verdict = match described {
                None => Verdict::Stop {
                    outcome: Outcome::NotFound,
                    reason: "DescribeProvisionedProduct does not return it: already gone".to_owned(),
                },
                // A name that now names a product created after the request was sent (the
                // one it meant was terminated, and a new one took its name) is not the
                // product the request asked for.
                Some(c) if matches!(p.product, ProductRef::Name(_)) && created_after(&c, at.sent_at) => Verdict::Stop {
                    outcome: Outcome::NotFound,
                    reason: "the name now names a product created after the request was sent: the one it named is gone"
                        .to_owned(),
                },
                Some(c) => judge(target, &c, app.settings.protect_tag.as_str(), at.now),
            };
            return Ok(Resolution::Judged(vec![(id, verdict)]));
        }
        Target::Workspaces(Scope::Select(s)) => services.workspaces.find(s).await?,
        Target::TargetInstances(Scope::Select(s)) => services.mgn.find(s, at.now, known_jobs).await?,
        Target::ProvisionedProduct(Scope::Select(s)) => services.catalog.find(s).await?,
    };
    let protect = app.settings.protect_tag.as_str();
    let mut unselected = Vec::new();
    let mut judged: Vec<(Candidate, Verdict)> = Vec::new();
    for c in found {
        match judge(target, &c, protect, at.now) {
            Verdict::Unselected => unselected.push(c),
            verdict => judged.push((c, verdict)),
        }
    }
    // The blast-radius guard counts everything the selection matched, guarded or not:
    // a rule that suddenly matches too much is wrong as a whole, and writes nothing.
    if judged.len() > app.settings.max_targets {
        return Ok(Resolution::TooMany(judged.len()));
    }
    if !at.dry_run {
        first_seen(services, target, &unselected, protect, at.now).await;
    }
    Ok(Resolution::Judged(match target {
        Target::ProvisionedProduct(Scope::Select(_)) => confirm_products(app, services, target, judged, at.now).await,
        Target::Workspaces(_) | Target::TargetInstances(_) | Target::ProvisionedProduct(Scope::Named(_)) => {
            judged.into_iter().map(|(c, v)| (c.id, v)).collect()
        }
    }))
}

fn created_after(candidate: &Candidate, sent_at: Option<OffsetDateTime>) -> bool {
    matches!((candidate.created, sent_at), (Some(created), Some(sent)) if created > sent)
}

/// Each named id, in request order, judged on what the lookup found; an id it did
/// not return is gone.
fn named(
    app: &App,
    target: &Target,
    ids: &[String],
    found: Vec<Candidate>,
    looked_up_by: &str,
    at: &Lookup<'_>,
) -> Resolution {
    let protect = app.settings.protect_tag.as_str();
    let judged = ids
        .iter()
        .map(|id| {
            let verdict = match found.iter().find(|c| &c.id == id) {
                Some(candidate) => judge(target, candidate, protect, at.now),
                None => Verdict::Stop {
                    outcome: Outcome::NotFound,
                    reason: format!("{looked_up_by} does not return it: already gone"),
                },
            };
            (id.clone(), verdict)
        })
        .collect();
    Resolution::Judged(judged)
}

/// A Service Catalog selection is found through the search index, which lags: every
/// product it would terminate is looked up again where the service is authoritative
/// (status, and the tags of its last provisioning record) and judged again on that.
/// A product gone since the listing is dropped; one that no longer matches is
/// dropped; one whose lookup fails is left for a later attempt, alone. The calls
/// grow with the matches, never with the catalog.
async fn confirm_products(
    app: &App,
    services: &Services,
    target: &Target,
    judged: Vec<(Candidate, Verdict)>,
    now: OffsetDateTime,
) -> Vec<(String, Verdict)> {
    let protect = app.settings.protect_tag.as_str();
    let confirmed: Vec<Option<(String, Verdict)>> = stream::iter(judged)
        .map(|(indexed, verdict)| async move {
            if !matches!(verdict, Verdict::Terminate { .. }) {
                return Some((indexed.id, verdict));
            }
            match services.catalog.confirm(&indexed).await {
                Ok(Some(authoritative)) => match judge(target, &authoritative, protect, now) {
                    Verdict::Unselected => None,
                    verdict => Some((indexed.id, verdict)),
                },
                Ok(None) => None,
                Err(ServiceError { outcome, failure }) => {
                    let reason = format!("looked up again before terminating: {}: {}", failure.code, failure.message);
                    Some((indexed.id, Verdict::Stop { outcome, reason }))
                }
            }
        })
        .buffered(services.catalog.calls_in_flight())
        .collect()
        .await;
    confirmed.into_iter().flatten().collect()
}

/// docs/reference.md, "Never-connected WorkSpaces": a WorkSpace no user ever connected
/// to has no date to be idle since, so a real run of a selection with `idleDays`
/// dates it (today, UTC) the first time it lists it. The date decides nothing today:
/// the WorkSpace is idle from it on. A write that fails is tried again by the next
/// run, and is no target's outcome (none of these is selected yet).
async fn first_seen(services: &Services, target: &Target, found: &[Candidate], protect: &str, now: OffsetDateTime) {
    let due: Vec<&Candidate> = found.iter().filter(|c| crate::guard::first_seen_due(target, c, protect, now)).collect();
    if due.is_empty() {
        return;
    }
    let today = crate::guard::first_seen_date(now);
    let workspaces = &services.workspaces;
    stream::iter(due)
        .for_each_concurrent(workspaces.calls_in_flight(), |c| {
            let today = today.as_str();
            async move {
                match workspaces.tag(&c.id, crate::guard::FIRST_SEEN_TAG, today).await {
                    Ok(()) => tracing::info!(workspace_id = %c.id, first_seen = today, "never connected: dated, idle from today"),
                    Err(error) => tracing::warn!(workspace_id = %c.id, %error, "never connected, and its first-seen date could not be written: tried again next run"),
                }
            }
        })
        .await;
}
