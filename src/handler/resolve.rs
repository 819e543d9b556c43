//! Step 2: find each request's targets and judge them before anything is called.
//! Named targets are looked up too, so that naming an id cannot bypass a guard.

use time::OffsetDateTime;

use super::{App, guarded};
use crate::guard::{Candidate, Verdict, judge};
use crate::outcome::{Failure, Outcome};
use crate::request::{Operation, Request, Scope, Targets};

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
) -> Resolution {
    let Some(request) = request else { return Resolution::Nothing };
    match guarded(deadline, lookup(app, request, now)).await {
        Ok(Ok(resolution)) => resolution,
        Ok(Err((outcome, failure))) => Resolution::Failed(outcome, failure),
        Err(failure) => Resolution::Failed(Outcome::Transient, failure),
    }
}

async fn lookup(app: &App, request: &Request, now: OffsetDateTime) -> Result<Resolution, crate::services::LookupError> {
    let protect = app.settings.protect_tag.as_str();
    let services = &app.services;
    let operation = request.operation;
    match &request.scope {
        Scope::Named(targets) => {
            let (found, looked_up_by) = match targets {
                Targets::Workspaces(w) => (services.workspaces.describe(&w.workspace_ids).await?, "DescribeWorkspaces"),
                Targets::TargetInstances(t) => (
                    services.mgn.describe(&t.source_server_ids, t.account_id.as_deref(), now).await?,
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
                Operation::TerminateTargetInstances => services.mgn.find(selection, now).await?,
                Operation::TerminateProvisionedProduct => services.catalog.find(selection).await?,
            };
            let judged: Vec<(String, Verdict)> = found
                .into_iter()
                .map(|c| {
                    let verdict = judge(operation, &c, Some(selection), protect, now);
                    (c.id, verdict)
                })
                .filter(|(_, v)| *v != Verdict::Unselected)
                .collect();
            // The blast-radius guard counts everything the selection matched, guarded
            // or not: a rule that suddenly matches too much is wrong as a whole.
            if judged.len() > app.settings.max_targets {
                return Ok(Resolution::TooMany(judged.len()));
            }
            Ok(Resolution::Judged(judged))
        }
    }
}
