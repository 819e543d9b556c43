//! Step 2: find each request's targets and judge them before anything is called.
//! Named targets are looked up too, so that naming an id cannot bypass a guard.

use time::OffsetDateTime;

use super::{App, SentServers, guarded};
use crate::guard::{Candidate, Verdict, judge};
use crate::outcome::{Failure, Outcome};
use futures_util::{StreamExt, stream};

use crate::request::{Operation, ProductRef, Request, Scope, Targets};

/// What a request's lookup came to.
pub(super) enum Resolution {
    /// Nothing to resolve: the request was invalid.
    Nothing,
    /// Each target, in order, with its verdict (targets a selection did not match are left out).
    Judged(Vec<(String, Verdict)>),
    /// The lookup failed; every target takes this outcome.
    Failed(Outcome, Failure),
    /// A selection matched more targets than MAX_TARGETS: nothing is terminated.
    TooMany(usize),
}

pub(super) async fn resolve(
    app: &App,
    request: Option<&Request>,
    now: OffsetDateTime,
    deadline: Option<tokio::time::Instant>,
    sent: &SentServers,
    sent_at: Option<OffsetDateTime>,
) -> Resolution {
    let Some(request) = request else { return Resolution::Nothing };
    let known_jobs: std::collections::HashSet<String> = sent.values().cloned().collect();
    match guarded(deadline, lookup(app, request, now, sent_at, &known_jobs)).await {
        // A server this invocation already had accepted (an earlier FIFO round) is on
        // its way out, as one in a running job is.
        Ok(Ok(Resolution::Judged(judged))) if request.operation == Operation::TerminateTargetInstances => {
            Resolution::Judged(
                judged
                    .into_iter()
                    .map(|(id, verdict)| match (verdict, sent.get(&id)) {
                        (Verdict::Terminate { .. }, Some(job_id)) => {
                            let reason = format!("already terminating: job {job_id}, started by this invocation");
                            (id, Verdict::Underway { job_id: job_id.clone(), reason })
                        }
                        (verdict, _) => (id, verdict),
                    })
                    .collect(),
            )
        }
        Ok(Ok(resolution)) => resolution,
        Ok(Err((outcome, failure))) => Resolution::Failed(outcome, failure),
        Err(failure) => Resolution::Failed(Outcome::Transient, failure),
    }
}

async fn lookup(
    app: &App,
    request: &Request,
    now: OffsetDateTime,
    sent_at: Option<OffsetDateTime>,
    known_jobs: &std::collections::HashSet<String>,
) -> Result<Resolution, crate::services::LookupError> {
    let protect = app.settings.protect_tag.as_str();
    let services = &app.services;
    let operation = request.operation;
    match &request.scope {
        Scope::Named(targets) => {
            let (found, looked_up_by) = match targets {
                Targets::Workspaces(w) => (services.workspaces.describe(&w.workspace_ids).await?, "DescribeWorkspaces"),
                Targets::TargetInstances(t) => (
                    services.mgn.describe(&t.source_server_ids, t.account_id.as_deref(), now, known_jobs).await?,
                    "DescribeSourceServers",
                ),
                Targets::ProvisionedProduct(p) => {
                    (services.catalog.describe(&p.product).await?.into_iter().collect(), "DescribeProvisionedProduct")
                }
            };
            let judged = targets
                .ids()
                .into_iter()
                .map(|id| {
                    let verdict = match found.iter().find(|c| c.id == id) {
                        // A name that now names a product created after the request was
                        // sent (the one it meant was terminated, and a new one took its
                        // name) is not the product the request asked for.
                        Some(candidate) if renamed_since(targets, candidate, sent_at) => Verdict::Stop {
                            outcome: Outcome::NotFound,
                            reason: "the name now names a product created after the request was sent: the one it named is gone".to_owned(),
                        },
                        Some(candidate) => judge(operation, candidate, None, protect, now),
                        None => Verdict::Stop {
                            outcome: Outcome::NotFound,
                            reason: format!("{looked_up_by} does not return it: already gone"),
                        },
                    };
                    (id, verdict)
                })
                .collect();
            Ok(Resolution::Judged(judged))
        }
        Scope::Select(selection) => {
            let found: Vec<Candidate> = match operation {
                Operation::TerminateWorkspaces => services.workspaces.find(selection).await?,
                Operation::TerminateTargetInstances => services.mgn.find(selection, now, known_jobs).await?,
                Operation::TerminateProvisionedProduct => services.catalog.find(selection).await?,
            };
            let judged: Vec<(Candidate, Verdict)> = found
                .into_iter()
                .map(|c| {
                    let verdict = judge(operation, &c, Some(selection), protect, now);
                    (c, verdict)
                })
                .filter(|(_, v)| *v != Verdict::Unselected)
                .collect();
            // The blast-radius guard counts everything the selection matched, guarded
            // or not: a rule that suddenly matches too much is wrong as a whole.
            if judged.len() > app.settings.max_targets {
                return Ok(Resolution::TooMany(judged.len()));
            }
            if operation == Operation::TerminateProvisionedProduct {
                return Ok(Resolution::Judged(confirm_products(app, judged, selection, now).await));
            }
            Ok(Resolution::Judged(judged.into_iter().map(|(c, v)| (c.id, v)).collect()))
        }
    }
}

/// Whether a product named by name was created after the request was sent.
fn renamed_since(targets: &Targets, candidate: &Candidate, sent_at: Option<OffsetDateTime>) -> bool {
    let by_name = matches!(targets, Targets::ProvisionedProduct(p) if matches!(p.product, ProductRef::Name(_)));
    by_name && matches!((candidate.created, sent_at), (Some(created), Some(sent)) if created > sent)
}

/// A Service Catalog selection is found through the search index, which lags: every
/// product it would terminate is looked up again where the service is authoritative
/// (status, and the tags of its last provisioning record) and judged again on that.
/// A product gone since the listing is dropped; one that no longer matches is
/// dropped; one whose lookup fails is left for a later attempt, alone. The calls
/// grow with the matches, never with the catalog.
async fn confirm_products(
    app: &App,
    judged: Vec<(Candidate, Verdict)>,
    selection: &crate::request::Selection,
    now: OffsetDateTime,
) -> Vec<(String, Verdict)> {
    let protect = app.settings.protect_tag.as_str();
    let operation = Operation::TerminateProvisionedProduct;
    let confirmed: Vec<Option<(String, Verdict)>> = stream::iter(judged)
        .map(|(indexed, verdict)| async move {
            if !matches!(verdict, Verdict::Terminate { .. }) {
                return Some((indexed.id, verdict));
            }
            match app.services.catalog.confirm(&indexed).await {
                Ok(Some(authoritative)) => match judge(operation, &authoritative, Some(selection), protect, now) {
                    Verdict::Unselected => None,
                    verdict => Some((indexed.id, verdict)),
                },
                Ok(None) => None,
                Err((outcome, failure)) => {
                    let reason = format!("looked up again before terminating: {}: {}", failure.code, failure.message);
                    Some((indexed.id, Verdict::Stop { outcome, reason }))
                }
            }
        })
        .buffered(crate::services::LOOKUP_CONCURRENCY)
        .collect()
        .await;
    confirmed.into_iter().flatten().collect()
}
