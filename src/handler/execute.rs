//! Step 3: the terminate calls, for the targets that passed every guard.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::{StreamExt, stream};

use super::resolve::Resolution;
use super::{App, CONCURRENCY, Prepared, guarded, transient_all};
use crate::guard::Verdict;
use crate::outcome::{Outcome, TargetResult};
use crate::request::{
    Operation, ProductRef, ProvisionedProductInput, Scope, ServiceFilters, TargetInstancesInput, Targets,
};

/// A unit of API work. WorkSpaces work is shared by every request in the batch;
/// MGN work by every request with the same job tags and account. In a FIFO batch
/// calls are shared only within a message group.
pub(super) enum Job {
    Workspaces(Vec<String>),
    Mgn(MgnCall),
    Catalog(CatalogCall),
}

/// One `TerminateProvisionedProduct` call, with every request that reads its answer
/// and the id each reads it by (a name, an ARN or the id).
pub(super) struct CatalogCall {
    input: ProvisionedProductInput,
    token: String,
    readers: Vec<(usize, String)>,
}

/// The batch's Service Catalog calls, one per product: two messages naming one
/// product would otherwise race two tokens, and the loser would be refused for a
/// product that is in fact being terminated.
#[derive(Default)]
struct CatalogCalls {
    calls: Vec<CatalogCall>,
}

impl CatalogCalls {
    fn add(&mut self, owner: usize, named: String, input: ProvisionedProductInput, token: String) {
        let product = input.product.clone();
        match self.calls.iter_mut().find(|c| c.input.product == product) {
            Some(call) => call.readers.push((owner, named)),
            None => self.calls.push(CatalogCall { input, token, readers: vec![(owner, named)] }),
        }
    }
}

/// One `TerminateTargetInstances` call that several requests may share.
pub(super) struct MgnCall {
    /// The ids of the call, with the job tags and account they share.
    input: TargetInstancesInput,
    /// Each request whose ids the call carries, with those ids, in batch order.
    owners: Vec<(usize, Vec<String>)>,
}

/// What makes calls shareable: the FIFO message group (none outside FIFO queues),
/// and for MGN the job tags and account.
type CallKey = (Option<String>, BTreeMap<String, String>, Option<String>);

/// What the calls answered: WorkSpaces by id (shared), the rest by owning item.
#[derive(Default)]
pub(super) struct Results {
    pub shared: HashMap<String, TargetResult>,
    pub owned: HashMap<usize, HashMap<String, TargetResult>>,
}

pub(super) fn plan(prepared: &[Prepared], resolutions: &[Resolution]) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut workspace_ids: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    let mut seen = HashSet::new();
    // Every MGN id goes into exactly one call, whoever else names it: two calls with
    // one server would start two jobs.
    let mut mgn_calls: BTreeMap<CallKey, Vec<String>> = BTreeMap::new();
    let mut mgn_claimed: HashSet<String> = HashSet::new();
    let mut mgn_owners: Vec<(usize, Vec<String>)> = Vec::new();
    let mut catalog = CatalogCalls::default();
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
        let fifo_group = p.item.origin.fifo_group().map(str::to_owned);
        match (&request.scope, request.operation) {
            (_, Operation::TerminateWorkspaces) => {
                let ids = workspace_ids.entry(fifo_group).or_default();
                ids.extend(go.into_iter().filter(|id| seen.insert(id.clone())));
            }
            (Scope::Named(Targets::TargetInstances(_)), _)
            | (Scope::Select(_), Operation::TerminateTargetInstances) => {
                let (tags, account) = match &request.scope {
                    Scope::Named(Targets::TargetInstances(input)) => (input.tags.clone(), input.account_id.clone()),
                    Scope::Select(selection) => match &selection.filters {
                        ServiceFilters::TargetInstances { account_id, .. } => (BTreeMap::new(), account_id.clone()),
                        _ => (BTreeMap::new(), None),
                    },
                    Scope::Named(_) => (BTreeMap::new(), None),
                };
                let ids = mgn_calls.entry((fifo_group, tags, account)).or_default();
                ids.extend(go.iter().filter(|id| mgn_claimed.insert((*id).clone())).cloned());
                mgn_owners.push((i, go));
            }
            (Scope::Named(Targets::ProvisionedProduct(input)), _) => {
                // The call names the product that was looked up and judged, by its id:
                // by the time of the call, a name may name a product provisioned since.
                let call_id = judged.iter().find_map(|(_, v)| match v {
                    Verdict::Terminate { call_id, .. } => call_id.clone(),
                    _ => None,
                });
                let mut call = input.clone();
                if let Some(id) = call_id {
                    call.product = ProductRef::Id(id);
                }
                catalog.add(i, input.product.id().to_owned(), call, p.item.idempotency_token());
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
                    let named = input.product.id().to_owned();
                    catalog.add(i, named, input, token);
                }
            }
            // A named request's operation always matches its targets.
            (Scope::Named(_), _) => {}
        }
    }
    for ((_, tags, account_id), ids) in mgn_calls {
        for chunk in ids.chunks(crate::services::mgn::IDS_PER_CALL) {
            let in_chunk: HashSet<&String> = chunk.iter().collect();
            // Every request that named one of the chunk's ids reads its answer, even a
            // request whose own tags or group put the id's first claim elsewhere.
            let owners = mgn_owners
                .iter()
                .map(|(owner, ids)| {
                    (*owner, ids.iter().filter(|id| in_chunk.contains(id)).cloned().collect::<Vec<_>>())
                })
                .filter(|(_, ids)| !ids.is_empty())
                .collect();
            let input = TargetInstancesInput {
                source_server_ids: chunk.to_vec(),
                tags: tags.clone(),
                account_id: account_id.clone(),
            };
            jobs.push(Job::Mgn(MgnCall { input, owners }));
        }
    }
    jobs.extend(catalog.calls.into_iter().map(Job::Catalog));
    // One job per 25 ids, so the deadline and concurrency bounds apply per call.
    for ids in workspace_ids.values() {
        for chunk in ids.chunks(crate::services::workspaces::IDS_PER_CALL) {
            jobs.push(Job::Workspaces(chunk.to_vec()));
        }
    }
    jobs
}

pub(super) async fn run(app: &App, jobs: Vec<Job>, deadline: Option<tokio::time::Instant>) -> Results {
    // Owners: none for shared WorkSpaces results; the requests whose ids a call carried otherwise.
    let finished: Vec<(Vec<usize>, Vec<TargetResult>)> = stream::iter(jobs)
        .map(|job| async move {
            let (owners, ids) = match &job {
                Job::Workspaces(ids) => (Vec::new(), ids.clone()),
                Job::Mgn(call) => (call.owners.iter().map(|(o, _)| *o).collect(), call.input.source_server_ids.clone()),
                Job::Catalog(call) => (
                    call.readers.iter().map(|(owner, _)| *owner).collect(),
                    call.readers.iter().map(|(_, named)| named.clone()).collect(),
                ),
            };
            let work = async {
                match &job {
                    Job::Workspaces(ids) => app.services.workspaces.terminate(ids).await,
                    Job::Mgn(call) => mgn_shared(app, call).await,
                    Job::Catalog(call) => {
                        let result = app.services.catalog.terminate(&call.input, &call.token).await;
                        // Each reader reads the one answer by the id it named.
                        call.readers
                            .iter()
                            .map(|(_, named)| TargetResult { id: named.clone(), ..result.clone() })
                            .collect()
                    }
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
/// The apart calls run one after another, and an id an earlier one terminated is
/// not sent again, so no server is ever in two accepted calls. A transient failure
/// is not split: the messages are redelivered either way.
async fn mgn_shared(app: &App, call: &MgnCall) -> Vec<TargetResult> {
    let mgn = &app.services.mgn;
    let all = &call.input.source_server_ids;
    let failed = match mgn.terminate_call(&call.input, all).await {
        Ok(results) => return results,
        Err(failed) => failed,
    };
    // A whole-call not-found is transient (no server is named gone) but one message's
    // server causes it as surely as a refusal does: it is split apart too.
    let splittable = failed.outcome != Outcome::Transient || failed.failure.code == "ResourceNotFoundException";
    if !splittable || call.owners.len() < 2 {
        return failed.for_each(all);
    }
    tracing::warn!(
        code = %failed.failure.code,
        requests = call.owners.len(),
        "a shared TerminateTargetInstances call was refused; its requests are tried apart"
    );
    let mut results: HashMap<String, TargetResult> = HashMap::new();
    for (_, ids) in &call.owners {
        // Never sent again: what was accepted, and what may have been (a transient end
        // says nothing of whether the service took the call).
        let done = |id: &String| {
            results.get(id).is_some_and(|r| matches!(r.outcome, Outcome::Terminated | Outcome::Transient))
        };
        let send: Vec<String> = ids.iter().filter(|id| !done(id)).cloned().collect();
        if send.is_empty() {
            continue;
        }
        let answered = mgn.terminate_call(&call.input, &send).await.unwrap_or_else(|failed| failed.for_each(&send));
        results.extend(answered.into_iter().map(|r| (r.id.clone(), r)));
    }
    all.iter()
        .map(|id| {
            results.remove(id).unwrap_or_else(|| TargetResult::failed(id, failed.outcome, failed.failure.clone()))
        })
        .collect()
}
