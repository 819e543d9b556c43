//! Step 3: the terminate calls, for the targets that passed every guard.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::future::join_all;
use futures_util::{StreamExt, stream};

use super::resolve::Resolution;
use super::{App, CONCURRENCY, Prepared, guarded, transient_all};
use crate::guard::Verdict;
use crate::outcome::{Outcome, TargetResult};
use crate::request::{
    Operation, ProductRef, ProvisionedProductInput, Scope, ServiceFilters, TargetInstancesInput, Targets,
};

/// A unit of API work. WorkSpaces work is shared by every request in the batch;
/// MGN work by every request with the same job tags and account.
pub(super) enum Job {
    Workspaces(Vec<String>),
    Mgn(MgnCall),
    Catalog(usize, ProvisionedProductInput, String),
}

/// One `TerminateTargetInstances` call that several requests may share.
pub(super) struct MgnCall {
    /// The ids of the call, with the job tags and account they share.
    input: TargetInstancesInput,
    /// The requests whose ids the call carries.
    owners: Vec<usize>,
    /// The call's ids split by the request that first named each: the calls made
    /// instead when the shared call fails as a whole for a reason one of them may
    /// have caused. Each id is in exactly one part, so no id is ever sent twice.
    parts: Vec<Vec<String>>,
}

/// MGN requests whose calls can be shared: same job tags, same account.
type MgnGroup = (BTreeMap<String, String>, Option<String>);

/// The requests of one MGN group, each with the ids it passes on.
#[derive(Default)]
struct MgnMembers {
    owners: Vec<(usize, Vec<String>)>,
}

/// What the calls answered: WorkSpaces by id (shared), the rest by owning item.
#[derive(Default)]
pub(super) struct Results {
    pub shared: HashMap<String, TargetResult>,
    pub owned: HashMap<usize, HashMap<String, TargetResult>>,
}

pub(super) fn plan(prepared: &[Prepared], resolutions: &[Resolution]) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut workspace_ids = Vec::new();
    let mut seen = HashSet::new();
    let mut mgn: BTreeMap<MgnGroup, MgnMembers> = BTreeMap::new();
    for (i, (p, resolution)) in prepared.iter().zip(resolutions).enumerate() {
        let (Ok(request), Resolution::Judged(judged)) = (&p.request, resolution) else { continue };
        if p.dry_run {
            continue;
        }
        let go: Vec<String> =
            judged.iter().filter(|(_, v)| matches!(v, Verdict::Terminate { .. })).map(|(id, _)| id.clone()).collect();
        if go.is_empty() {
            continue;
        }
        match (&request.scope, request.operation) {
            (_, Operation::TerminateWorkspaces) => {
                workspace_ids.extend(go.into_iter().filter(|id| seen.insert(id.clone())));
            }
            (Scope::Named(Targets::TargetInstances(_)), _)
            | (Scope::Select(_), Operation::TerminateTargetInstances) => {
                let group = match &request.scope {
                    Scope::Named(Targets::TargetInstances(input)) => (input.tags.clone(), input.account_id.clone()),
                    Scope::Select(selection) => match &selection.filters {
                        ServiceFilters::TargetInstances { account_id, .. } => (BTreeMap::new(), account_id.clone()),
                        _ => (BTreeMap::new(), None),
                    },
                    Scope::Named(_) => (BTreeMap::new(), None),
                };
                mgn.entry(group).or_default().owners.push((i, go));
            }
            (Scope::Named(Targets::ProvisionedProduct(input)), _) => {
                jobs.push(Job::Catalog(i, input.clone(), p.item.idempotency_token()));
            }
            (Scope::Select(selection), Operation::TerminateProvisionedProduct) => {
                let (ignore_errors, retain_physical_resources, accept_language) = match &selection.filters {
                    ServiceFilters::ProvisionedProduct {
                        ignore_errors,
                        retain_physical_resources,
                        accept_language,
                        ..
                    } => (*ignore_errors, *retain_physical_resources, accept_language.clone()),
                    _ => (None, None, None),
                };
                for id in go {
                    // One token per product: a selection terminates several under one delivery.
                    let token = p.item.idempotency_token_for(&id);
                    let input = ProvisionedProductInput {
                        product: ProductRef::Id(id),
                        terminate_token: None,
                        ignore_errors,
                        retain_physical_resources,
                        accept_language: accept_language.clone(),
                    };
                    jobs.push(Job::Catalog(i, input, token));
                }
            }
            // A named request's operation always matches its targets.
            (Scope::Named(_), _) => {}
        }
    }
    for ((tags, account_id), members) in mgn {
        jobs.extend(mgn_calls(tags, account_id, members));
    }
    // One job per 25 ids, so the deadline and concurrency bounds apply per call.
    for chunk in workspace_ids.chunks(crate::services::workspaces::IDS_PER_CALL) {
        jobs.push(Job::Workspaces(chunk.to_vec()));
    }
    jobs
}

/// The group's distinct ids in first-seen order, in calls of at most 200, each
/// knowing which request first named each of its ids.
fn mgn_calls(tags: BTreeMap<String, String>, account_id: Option<String>, members: MgnMembers) -> Vec<Job> {
    let mut first_owner: HashMap<String, usize> = HashMap::new();
    let mut ids = Vec::new();
    for (owner, owned) in &members.owners {
        for id in owned {
            if !first_owner.contains_key(id) {
                first_owner.insert(id.clone(), *owner);
                ids.push(id.clone());
            }
        }
    }
    ids.chunks(crate::services::mgn::IDS_PER_CALL)
        .map(|chunk| {
            let in_chunk: HashSet<&String> = chunk.iter().collect();
            let owners: Vec<usize> = members
                .owners
                .iter()
                .filter(|(_, owned)| owned.iter().any(|id| in_chunk.contains(id)))
                .map(|(owner, _)| *owner)
                .collect();
            let mut parts: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for id in chunk {
                parts.entry(first_owner[id]).or_default().push(id.clone());
            }
            let input = TargetInstancesInput {
                source_server_ids: chunk.to_vec(),
                tags: tags.clone(),
                account_id: account_id.clone(),
            };
            Job::Mgn(MgnCall { input, owners, parts: parts.into_values().collect() })
        })
        .collect()
}

pub(super) async fn run(app: &App, jobs: Vec<Job>, deadline: Option<tokio::time::Instant>) -> Results {
    // Owners: none for shared WorkSpaces results; the requests whose ids a call carried otherwise.
    let finished: Vec<(Vec<usize>, Vec<TargetResult>)> = stream::iter(jobs)
        .map(|job| async move {
            let (owners, ids) = match &job {
                Job::Workspaces(ids) => (Vec::new(), ids.clone()),
                Job::Mgn(call) => (call.owners.clone(), call.input.source_server_ids.clone()),
                Job::Catalog(i, input, _) => (vec![*i], vec![input.product.id().to_owned()]),
            };
            let work = async {
                match &job {
                    Job::Workspaces(ids) => app.services.workspaces.terminate(ids).await,
                    Job::Mgn(call) => mgn_shared(app, call).await,
                    Job::Catalog(_, input, token) => vec![app.services.catalog.terminate(input, token).await],
                }
            };
            let targets = guarded(deadline, work).await.unwrap_or_else(|failure| transient_all(&ids, &failure));
            (owners, targets)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    let mut results = Results::default();
    for (owners, targets) in finished {
        if owners.is_empty() {
            results.shared.extend(targets.into_iter().map(|t| (t.id.clone(), t)));
            continue;
        }
        // Each owner reads only its own ids back out of a shared call's answer.
        for owner in owners {
            results.owned.entry(owner).or_default().extend(targets.iter().map(|t| (t.id.clone(), t.clone())));
        }
    }
    results
}

/// A shared MGN call. The service refuses a whole call for one bad server without
/// naming it; when that refusal could be final, the requests that shared the call
/// are tried apart, so one message's bad server is charged to that message alone.
/// A transient failure is not split: the messages are redelivered either way.
async fn mgn_shared(app: &App, call: &MgnCall) -> Vec<TargetResult> {
    let mgn = &app.services.mgn;
    let failed = match mgn.terminate_call(&call.input, &call.input.source_server_ids).await {
        Ok(results) => return results,
        Err(failed) => failed,
    };
    if failed.outcome == Outcome::Transient || call.parts.len() < 2 {
        return failed.for_each(&call.input.source_server_ids);
    }
    tracing::warn!(
        code = %failed.failure.code,
        requests = call.parts.len(),
        "a shared TerminateTargetInstances call was refused; its requests are tried apart"
    );
    let apart = call.parts.iter().map(|ids| async move {
        mgn.terminate_call(&call.input, ids).await.unwrap_or_else(|failed| failed.for_each(ids))
    });
    join_all(apart).await.into_iter().flatten().collect()
}
