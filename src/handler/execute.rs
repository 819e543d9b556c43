//! Step 3: the terminate calls, for the targets that passed every guard.
//!
//! Coalescing lives here and nowhere else. Ids from many requests share calls:
//! WorkSpaces by 25 across the batch, MGN by 200 among requests with the same job
//! tags and account, one Service Catalog call per product. In a FIFO batch calls
//! are shared only within a message group, except that one MGN server or one
//! product is never in two calls. Every answer is filed by service and target id,
//! so each request reads back exactly its own targets without knowing how its
//! calls were shared.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::{StreamExt, stream};

use super::app::{CONCURRENCY, Invocation, within_deadline};
use super::resolve::{Resolution, Resolved};
use crate::guard::Verdict;
use crate::outcome::{Outcome, TargetResult};
use crate::request::{Operation, ProductRef, ProvisionedProductInput, Scope, Target, TargetInstancesInput};
use crate::services::places::Place;

/// A unit of API work: one terminate call, or one notice's tag write.
#[derive(Debug, PartialEq)]
pub(super) enum Call {
    Workspaces(Vec<String>),
    Mgn(MgnCall),
    Catalog(CatalogCall),
    Notice(NoticeCall),
}

/// docs/reference.md, "Notice": one target's `teardown:expires-at` tag, written
/// alone, so that a write that fails is that target's end and no other's.
#[derive(Debug, PartialEq)]
pub(super) struct NoticeCall {
    pub operation: Operation,
    pub id: String,
    /// MGN tags by the source server's ARN.
    pub arn: Option<String>,
    pub expires_at: String,
}

/// One `TerminateTargetInstances` call that several requests may share.
#[derive(Debug, PartialEq)]
pub(super) struct MgnCall {
    /// The ids of the call, with the job tags and account they share.
    pub input: TargetInstancesInput,
    /// The ids each request that shares the call passes on, in batch order: the
    /// calls made instead when the shared one is refused as a whole.
    pub requests: Vec<Vec<String>>,
}

/// One `TerminateProvisionedProduct` call, with the id each request that reads its
/// answer named the product by (a name, an ARN or the id).
#[derive(Debug, PartialEq)]
pub(super) struct CatalogCall {
    pub input: ProvisionedProductInput,
    pub token: String,
    pub named: Vec<String>,
}

/// What makes MGN calls shareable: the FIFO message group (none outside FIFO
/// queues), the job tags and the account.
type MgnKey = (Option<String>, BTreeMap<String, String>, Option<String>);

/// Every answer of an invocation's calls, by service, the target's id as the
/// request named it, and (Service Catalog) the product the call named: a name may
/// be another product's id, and two products must never share an answer.
#[derive(Debug, Default)]
pub(super) struct CallResults {
    by_target: HashMap<(Operation, String, Option<String>), TargetResult>,
    /// The notices' tag writes, apart: one batch may notice a target that another
    /// of its requests terminates.
    notices: HashMap<(Operation, String), TargetResult>,
}

impl CallResults {
    pub fn get(&self, operation: Operation, id: &str, called: Option<&str>) -> Option<&TargetResult> {
        self.by_target.get(&(operation, id.to_owned(), called.map(str::to_owned)))
    }

    pub fn notice(&self, operation: Operation, id: &str) -> Option<&TargetResult> {
        self.notices.get(&(operation, id.to_owned()))
    }

    /// MGN servers whose termination was accepted, with their job.
    pub fn accepted_servers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_target.iter().filter_map(|((operation, id, _), result)| {
            match (operation, result.outcome, &result.job_id) {
                (Operation::TerminateTargetInstances, Outcome::Terminated, Some(job)) => {
                    Some((id.as_str(), job.as_str()))
                }
                _ => None,
            }
        })
    }

    fn file(&mut self, operation: Operation, called: Option<&str>, results: Vec<TargetResult>) {
        for result in results {
            self.by_target.insert((operation, result.id.clone(), called.map(str::to_owned)), result);
        }
    }
}

/// The calls a batch makes: the targets of each request that is not a dry run
/// and whose verdict is to terminate, each call in one place (account and region):
/// calls are never shared across places.
pub(super) fn plan(batch: &[Resolved]) -> Vec<(Place, Call)> {
    let mut places: BTreeMap<Place, Vec<&Resolved>> = BTreeMap::new();
    for resolved in batch {
        places.entry(resolved.accepted.place.clone()).or_default().push(resolved);
    }
    places.into_iter().flat_map(|(place, batch)| plan_in(&batch).into_iter().map(move |c| (place.clone(), c))).collect()
}

fn plan_in(batch: &[&Resolved]) -> Vec<Call> {
    let mut workspaces: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    let mut workspaces_seen = HashSet::new();
    // Every MGN id goes into exactly one call, whoever else names it: two calls with
    // one server would start two jobs.
    let mut mgn: BTreeMap<MgnKey, Vec<String>> = BTreeMap::new();
    let mut mgn_claimed = HashSet::new();
    let mut mgn_requests: Vec<Vec<String>> = Vec::new();
    let mut catalog: Vec<CatalogCall> = Vec::new();
    let mut notices: BTreeMap<(Operation, String), NoticeCall> = BTreeMap::new();

    for resolved in batch {
        let accepted = &resolved.accepted;
        let (request, Resolution::Judged(judged), false) = (&accepted.request, &resolved.resolution, accepted.dry_run)
        else {
            continue;
        };
        let operation = request.operation();
        for (id, verdict) in judged {
            if let Verdict::Notice { expires_at, arn, .. } = verdict {
                // Two requests noticing one target write one tag.
                notices.entry((operation, id.clone())).or_insert_with(|| NoticeCall {
                    operation,
                    id: id.clone(),
                    arn: arn.clone(),
                    expires_at: expires_at.clone(),
                });
            }
        }
        let go: Vec<(&String, &Option<String>)> = judged
            .iter()
            .filter_map(|(id, v)| match v {
                Verdict::Terminate { call_id, .. } => Some((id, call_id)),
                _ => None,
            })
            .collect();
        if go.is_empty() {
            continue;
        }
        let group = accepted.delivery.origin.fifo_group().map(str::to_owned);
        match &request.target {
            Target::Workspaces(_) => {
                let ids = workspaces.entry(group).or_default();
                ids.extend(go.into_iter().map(|(id, _)| id.clone()).filter(|id| workspaces_seen.insert(id.clone())));
            }
            Target::TargetInstances(scope) => {
                let (tags, account) = match scope {
                    Scope::Named(input) => (input.tags.clone(), input.account_id.clone()),
                    Scope::Select(selection) => (BTreeMap::new(), selection.filters.account_id.clone()),
                };
                let ids: Vec<String> = go.into_iter().map(|(id, _)| id.clone()).collect();
                let call = mgn.entry((group, tags, account)).or_default();
                call.extend(ids.iter().filter(|id| mgn_claimed.insert((*id).clone())).cloned());
                mgn_requests.push(ids);
            }
            Target::ProvisionedProduct(Scope::Named(input)) => {
                // The call names the product that was looked up and judged, by its id:
                // by the time of the call, a name may name a product provisioned since.
                let mut call = input.clone();
                if let Some((_, Some(id))) = go.first() {
                    call.product = ProductRef::Id(id.clone());
                }
                let named = input.product.as_given().to_owned();
                // The token is the delivery's and the product's (docs/reference.md, "A request").
                let token = accepted.delivery.idempotency_token_for(call.product.as_given());
                add_catalog(&mut catalog, named, call, token);
            }
            Target::ProvisionedProduct(Scope::Select(selection)) => {
                let options = &selection.filters;
                for (id, _) in go {
                    let input = ProvisionedProductInput {
                        product: ProductRef::Id(id.clone()),
                        terminate_token: None,
                        ignore_errors: options.ignore_errors,
                        retain_physical_resources: options.retain_physical_resources,
                        accept_language: options.accept_language.clone(),
                    };
                    // One token per product: a selection terminates several under one delivery.
                    add_catalog(&mut catalog, id.clone(), input, accepted.delivery.idempotency_token_for(id));
                }
            }
        }
    }

    let mut calls: Vec<Call> = Vec::new();
    for ((_, tags, account_id), ids) in mgn {
        for chunk in ids.chunks(crate::services::mgn::IDS_PER_CALL) {
            let in_chunk: HashSet<&String> = chunk.iter().collect();
            // Every request that named one of the chunk's ids reads its answer and
            // takes part in the calls apart, even one whose own tags or group put the
            // id's first claim here.
            let requests = mgn_requests
                .iter()
                .map(|ids| ids.iter().filter(|id| in_chunk.contains(id)).cloned().collect::<Vec<_>>())
                .filter(|ids| !ids.is_empty())
                .collect();
            let input = TargetInstancesInput {
                source_server_ids: chunk.to_vec(),
                tags: tags.clone(),
                account_id: account_id.clone(),
            };
            calls.push(Call::Mgn(MgnCall { input, requests }));
        }
    }
    calls.extend(catalog.into_iter().map(Call::Catalog));
    calls.extend(notices.into_values().map(Call::Notice));
    // One call per 25 ids, so the deadline and concurrency bounds apply per call.
    for ids in workspaces.values() {
        calls.extend(
            ids.chunks(crate::services::workspaces::IDS_PER_CALL).map(|chunk| Call::Workspaces(chunk.to_vec())),
        );
    }
    calls
}

/// Two requests naming one product make one call: with two tokens they would race,
/// and the loser would be refused for a product that is in fact being terminated.
fn add_catalog(calls: &mut Vec<CatalogCall>, named: String, input: ProvisionedProductInput, token: String) {
    match calls.iter_mut().find(|c| c.input.product == input.product) {
        Some(call) => call.named.push(named),
        None => calls.push(CatalogCall { input, token, named: vec![named] }),
    }
}

pub(super) async fn run(ctx: &Invocation<'_>, calls: Vec<(Place, Call)>) -> CallResults {
    let (app, deadline, home, request_id) = (ctx.app, ctx.deadline, &ctx.home, ctx.request_id);
    let finished: Vec<(Operation, Option<String>, bool, Vec<TargetResult>)> = stream::iter(calls)
        .map(|(place, call)| async move {
            let (operation, called, ids) = match &call {
                Call::Workspaces(ids) => (Operation::TerminateWorkspaces, None, ids.clone()),
                Call::Mgn(call) => (Operation::TerminateTargetInstances, None, call.input.source_server_ids.clone()),
                Call::Catalog(call) => {
                    let called = call.input.product.as_given().to_owned();
                    (Operation::TerminateProvisionedProduct, Some(called), call.named.clone())
                }
                Call::Notice(call) => (call.operation, None, vec![call.id.clone()]),
            };
            let is_notice = matches!(call, Call::Notice(_));
            let call_made = async {
                // The place's services were reached when its targets were looked up.
                let services = match app.services_for(&place, home, request_id).await {
                    Ok(services) => services,
                    Err(error) => return error.for_each(&ids),
                };
                match &call {
                    Call::Workspaces(ids) => services.workspaces.terminate(ids).await,
                    Call::Mgn(call) => mgn_shared(&services, call).await,
                    Call::Catalog(call) => {
                        let result = services.catalog.terminate(&call.input, &call.token).await;
                        // Each request reads the one answer by the id it named.
                        call.named.iter().map(|named| TargetResult { id: named.clone(), ..result.clone() }).collect()
                    }
                    Call::Notice(call) => vec![notice(&services, call).await],
                }
            };
            let targets = within_deadline(deadline, call_made).await.unwrap_or_else(|failure| {
                ids.iter().map(|id| TargetResult::failed(id, Outcome::Transient, failure.clone())).collect()
            });
            (operation, called, is_notice, targets)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut results = CallResults::default();
    for (operation, called, is_notice, targets) in finished {
        if is_notice {
            results.notices.extend(targets.into_iter().map(|t| ((operation, t.id.clone()), t)));
        } else {
            results.file(operation, called.as_deref(), targets);
        }
    }
    results
}

/// Writes one notice's expiry tag: `noticed`, or the write's own failure.
async fn notice(services: &crate::services::Services, call: &NoticeCall) -> TargetResult {
    use crate::guard::EXPIRES_TAG;
    let written = match call.operation {
        Operation::TerminateWorkspaces => services.workspaces.tag(&call.id, EXPIRES_TAG, &call.expires_at).await,
        Operation::TerminateTargetInstances => match &call.arn {
            Some(arn) => services.mgn.tag(arn, EXPIRES_TAG, &call.expires_at).await,
            None => Err(crate::classify::ServiceError::transient(
                "ArnUnknown",
                "DescribeSourceServers gave no ARN for this source server, and TagResource needs one",
            )),
        },
        // Refused when the request was validated: Service Catalog tags only through its stack.
        Operation::TerminateProvisionedProduct => Err(crate::classify::ServiceError::new(
            Outcome::Invalid,
            "InvalidRequest",
            "Service Catalog cannot tag a provisioned product without updating its stack",
        )),
    };
    match written {
        Ok(()) => TargetResult {
            expires_at: Some(call.expires_at.clone()),
            ..TargetResult::because(&call.id, Outcome::Noticed, format!("tagged {EXPIRES_TAG}={}", call.expires_at))
        },
        Err(error) => TargetResult {
            expires_at: Some(call.expires_at.clone()),
            ..TargetResult::failed(&call.id, error.outcome, error.failure)
        },
    }
}

/// A shared MGN call. The service refuses a whole call for one bad server without
/// naming it; when that refusal could be final, the requests that shared the call
/// are tried apart, so one message's bad server is charged to that message alone.
/// The apart calls run one after another, and an id an earlier one terminated (or
/// may have: a transient end says nothing of whether the service took the call) is
/// not sent again, so no server is ever in two accepted calls. A transient failure
/// is not split: the messages are redelivered either way.
async fn mgn_shared(services: &crate::services::Services, call: &MgnCall) -> Vec<TargetResult> {
    let mgn = &services.mgn;
    let all = &call.input.source_server_ids;
    let failed = match mgn.terminate_call(&call.input, all).await {
        Ok(results) => return results,
        Err(failed) => failed,
    };
    // A whole-call not-found is transient (no server is named gone) but one message's
    // server causes it as surely as a refusal does: it is split apart too.
    let splittable = failed.outcome != Outcome::Transient || failed.failure.code == "ResourceNotFoundException";
    if !splittable || call.requests.len() < 2 {
        return failed.for_each(all);
    }
    tracing::warn!(
        code = %failed.failure.code,
        requests = call.requests.len(),
        "a shared TerminateTargetInstances call was refused; its requests are tried apart"
    );
    let mut results: HashMap<String, TargetResult> = HashMap::new();
    for ids in &call.requests {
        let taken = |id: &String| {
            results.get(id).is_some_and(|r| matches!(r.outcome, Outcome::Terminated | Outcome::Transient))
        };
        let send: Vec<String> = ids.iter().filter(|id| !taken(id)).cloned().collect();
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

#[cfg(test)]
#[path = "execute_tests.rs"]
mod tests;
