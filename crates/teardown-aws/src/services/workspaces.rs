//! WorkSpaces: `TerminateWorkspaces`, 25 ids a call, answered per id.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_workspaces::types::{ConnectionState, TerminateRequest, Workspace, WorkspaceState};
use futures_util::future::join_all;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{Gate, LookupError, to_time};
use crate::classify::{ServiceError, classify};
use crate::confirm::Status;
use crate::guard::Candidate;
use crate::outcome::{Failure, Outcome, TargetResult};
use crate::request::{Selection, WorkspacesFilters};

/// The most ids `TerminateWorkspaces` and `DescribeWorkspaces` take in one call.
pub const IDS_PER_CALL: usize = 25;

#[derive(Clone, Debug)]
pub struct Workspaces {
    client: aws_sdk_workspaces::Client,
    gate: Gate,
    /// The Resource Groups Tagging API: finds the WorkSpaces that carry a selection's
    /// tags without reading every WorkSpace's tags.
    tagging: Option<aws_sdk_resourcegroupstagging::Client>,
}

impl Workspaces {
    pub fn new(client: aws_sdk_workspaces::Client) -> Self {
        Workspaces { client, gate: Gate::default(), tagging: None }
    }

    pub fn with_tagging(self, tagging: aws_sdk_resourcegroupstagging::Client) -> Self {
        Workspaces { tagging: Some(tagging), ..self }
    }

    pub fn with_gate(self, gate: Gate) -> Self {
        Workspaces { gate, ..self }
    }

    pub fn calls_in_flight(&self) -> usize {
        self.gate.capacity()
    }

    /// Terminates `ids` (distinct) in calls of at most 25, run concurrently, and
    /// returns one result per id, in the order given.
    pub async fn terminate(&self, ids: &[String]) -> Vec<TargetResult> {
        let chunks = join_all(ids.chunks(IDS_PER_CALL).map(|chunk| self.terminate_chunk(chunk))).await;
        chunks.into_iter().flatten().collect()
    }

    async fn terminate_chunk(&self, ids: &[String]) -> Vec<TargetResult> {
        let requests: Result<Vec<TerminateRequest>, _> =
            ids.iter().map(|id| TerminateRequest::builder().workspace_id(id).build()).collect();
        let requests = match requests {
            Ok(requests) => requests,
            Err(e) => {
                let failure = Failure::new("ConstructionFailure", e.to_string());
                return ids.iter().map(|id| TargetResult::failed(id, Outcome::Rejected, failure.clone())).collect();
            }
        };
        let call = self.client.terminate_workspaces().set_terminate_workspace_requests(Some(requests)).send();
        let output = match self.gate.pass("TerminateWorkspaces", call).await {
            Ok(output) => output,
            Err(error) => return classify(&error).for_each(ids),
        };

        let failed: HashMap<&str, Failure> = output
            .failed_requests()
            .iter()
            .filter_map(|f| {
                let id = f.workspace_id()?;
                let failure = Failure::new(
                    f.error_code().unwrap_or("Unknown"),
                    f.error_message().unwrap_or("TerminateWorkspaces refused this WorkSpace"),
                );
                Some((id, failure))
            })
            .collect();
        if failed.is_empty() {
            return ids.iter().map(|id| TargetResult::new(id, Outcome::Terminated)).collect();
        }

        // Error codes in FailedRequests differ between AWS and emulators; whether the
        // WorkSpace still exists is the documented way to tell "already gone" apart.
        let failed_ids: Vec<String> = ids.iter().filter(|id| failed.contains_key(id.as_str())).cloned().collect();
        let still_there = self.still_present(&failed_ids).await;

        ids.iter()
            .map(|id| match failed.get(id.as_str()) {
                None => TargetResult::new(id, Outcome::Terminated),
                Some(failure) => match &still_there {
                    Ok(present) => match present.get(id.as_str()) {
                        None => TargetResult::new(id, Outcome::NotFound),
                        // On its way out (docs/reference.md, "What each request ends as"). This very call may have started it
                        // (an attempt the SDK retried after a timeout was accepted), so it is
                        // followed up like any it terminated: a chain forked is better than
                        // a termination no one follows up.
                        Some(true) => TargetResult::because(id, Outcome::Terminated, "already TERMINATING"),
                        Some(false) => TargetResult::failed(id, Outcome::Rejected, failure.clone()),
                    },
                    Err(ServiceError { outcome, failure: describe_failure }) => {
                        let message = format!(
                            "{}; and DescribeWorkspaces, asked whether it still exists, failed: {}",
                            failure.message, describe_failure.message
                        );
                        TargetResult::failed(id, *outcome, Failure::new(failure.code.clone(), message))
                    }
                },
            })
            .collect()
    }

    /// The ids among `ids` that still exist (not `TERMINATED`), each with whether it
    /// is `TERMINATING`.
    async fn still_present(&self, ids: &[String]) -> Result<HashMap<String, bool>, ServiceError> {
        // A describe that is refused leaves the terminate failure unexplained: it
        // stays rejected unless the describe itself may succeed later.
        let mut present = HashMap::new();
        for workspace in self.described(ids).await? {
            let terminating = match workspace.state() {
                Some(WorkspaceState::Terminated) => continue,
                state => matches!(state, Some(WorkspaceState::Terminating)),
            };
            if let Some(id) = workspace.workspace_id() {
                present.insert(id.to_owned(), terminating);
            }
        }
        Ok(present)
    }
}

impl Workspaces {
    /// The named WorkSpaces that still exist, with state and tags. An id it does
    /// not return is gone.
    ///
    /// The ids are known, so states and tags are asked for at once: one round of
    /// latency before the terminate call, not two.
    pub async fn describe(&self, ids: &[String]) -> Result<Vec<Candidate>, LookupError> {
        let (found, mut tags) = futures_util::join!(self.describe_ids(ids), self.tags_of(ids));
        let mut found = found?;
        for c in &mut found {
            // Tags of an id that no longer exists (or is going) do not matter; some
            // services answer them with errors.
            if matches!(c.state.as_deref(), Some("TERMINATING" | "TERMINATED")) {
                continue;
            }
            // Protection hangs on the tags: a live WorkSpace whose tags could not be
            // read is not judged at all. That is its own end, no other target's.
            match tags.remove(&c.id) {
                Some(Ok(Some(tags))) => c.tags = tags,
                Some(Err(error)) => c.unreadable = Some((error.outcome, error.failure)),
                Some(Ok(None)) | None => {
                    let failure =
                        crate::outcome::Failure::new("TagsUnknown", format!("DescribeTags does not know {}", c.id));
                    c.unreadable = Some((Outcome::Transient, failure));
                }
            }
        }
        Ok(found)
    }

    /// Each id's tags, or why they could not be read; `None` for an id DescribeTags does not know.
    async fn tags_of(&self, ids: &[String]) -> HashMap<String, Result<Option<BTreeMap<String, String>>, LookupError>> {
        stream::iter(ids)
            .map(|id| async move {
                let tags =
                    match self.gate.pass("DescribeTags", self.client.describe_tags().resource_id(id).send()).await {
                        Ok(out) => Ok(Some(tag_map(out.tag_list()))),
                        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(None),
                        Err(e) => Err(classify(&e)),
                    };
                (id.clone(), tags)
            })
            .buffer_unordered(self.gate.capacity())
            .collect()
            .await
    }

    /// The WorkSpaces a selection could match. The server narrows by directory,
    /// user or bundle where the API allows; every filter is checked again by the guards.
    pub async fn find(&self, selection: &Selection<WorkspacesFilters>) -> Result<Vec<Candidate>, LookupError> {
        let WorkspacesFilters { directory_id, bundle_id, user_name, idle_days, .. } = &selection.filters;
        let found = if !selection.ids.is_empty() {
            self.describe_ids(&selection.ids).await?
        } else if let (false, Some(tagging)) = (selection.tags.is_empty(), &self.tagging) {
            // Only the WorkSpaces that carry every tag asked for, from the tag index:
            // the calls grow with the matches, not with the fleet. The index decides
            // nothing on its own: each match is described, and its tags read from
            // DescribeTags, before it is judged.
            let ids = self.tagged(tagging, &selection.tags).await?;
            self.describe_ids(&ids).await?
        } else {
            let mut call = self.client.describe_workspaces();
            // The API takes a directory (with an optional user) or a bundle, not both.
            if let Some(directory) = directory_id {
                call = call.directory_id(directory).set_user_name(user_name.clone());
            } else if let Some(bundle) = bundle_id {
                call = call.bundle_id(bundle);
            }
            let mut pages = call.into_paginator().send();
            let mut found = Vec::new();
            while let Some(page) = self.gate.pass("DescribeWorkspaces", pages.next()).await {
                found.extend(page.map_err(|e| classify(&e))?.workspaces().iter().filter_map(candidate));
            }
            found
        };
        // Filters that need no tags go first, so tags are read only for what may match.
        let found: Vec<Candidate> = found.into_iter().filter(|c| may_match(c, &selection.filters)).collect();
        let mut found = self.with_tags(found).await;
        if idle_days.is_some() {
            self.with_connections(&mut found).await?;
        }
        Ok(found)
    }

    /// The ids of the WorkSpaces whose tags include every one of `tags`, following
    /// every `PaginationToken` (an index that pages must be read to its end).
    async fn tagged(
        &self,
        tagging: &aws_sdk_resourcegroupstagging::Client,
        tags: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<String>, LookupError> {
        use aws_sdk_resourcegroupstagging::types::TagFilter;
        // A key's values are ORed by the index, keys ANDed: as the selection means them.
        let filters: Vec<TagFilter> =
            tags.iter().map(|(k, v)| TagFilter::builder().key(k).set_values(Some(v.clone())).build()).collect();
        let mut pages = tagging
            .get_resources()
            .set_tag_filters(Some(filters))
            .resource_type_filters("workspaces:workspace")
            .into_paginator()
            .send();
        let mut ids = Vec::new();
        while let Some(page) = self.gate.pass("GetResources", pages.next()).await {
            for mapping in page.map_err(|e| classify(&e))?.resource_tag_mapping_list() {
                // arn:aws:workspaces:us-east-1:123456789012:workspace/ws-abc12345
                if let Some(id) = mapping.resource_arn().and_then(|arn| arn.rsplit('/').next()) {
                    ids.push(id.to_owned());
                }
            }
        }
        Ok(ids)
    }

    async fn describe_ids(&self, ids: &[String]) -> Result<Vec<Candidate>, LookupError> {
        Ok(self.described(ids).await?.iter().filter_map(candidate).collect())
    }

    /// `DescribeWorkspaces` for `ids`, 25 a call, the calls side by side through the
    /// gate: 500 ids are one round of latency, not twenty. Any failed call fails the
    /// whole lookup: an id missing from the answer means "gone", so a partial answer
    /// must never be read as one.
    ///
    /// A WorkSpace answered twice (on two pages) counts once; answered in two
    /// different states, neither answer can be trusted and the lookup fails.
    async fn described(&self, ids: &[String]) -> Result<Vec<Workspace>, LookupError> {
        let answered = self.in_calls_of_25(ids, |chunk| self.described_chunk(chunk)).await?;
        let mut at: HashMap<String, usize> = HashMap::new();
        let mut once: Vec<Workspace> = Vec::with_capacity(answered.len());
        for w in answered {
            let Some(id) = w.workspace_id().map(str::to_owned) else { continue };
            match at.get(&id) {
                None => {
                    at.insert(id, once.len());
                    once.push(w);
                }
                Some(&i) if once[i].state() == w.state() => {}
                Some(_) => {
                    let message = format!("DescribeWorkspaces answered {id} twice, in two different states");
                    return Err(LookupError {
                        outcome: Outcome::Transient,
                        failure: Failure::new("AnswersDisagree", message),
                    });
                }
            }
        }
        Ok(once)
    }

    /// Runs `call` for every 25 of `ids`, the calls side by side up to the gate's
    /// capacity, and joins their answers in order. The first failure fails them all.
    async fn in_calls_of_25<'a, T, Fut>(
        &self,
        ids: &'a [String],
        call: impl FnMut(&'a [String]) -> Fut,
    ) -> Result<Vec<T>, LookupError>
    where
        Fut: std::future::Future<Output = Result<Vec<T>, LookupError>>,
    {
        stream::iter(ids.chunks(IDS_PER_CALL)).map(call).buffered(self.gate.capacity()).try_concat().await
    }

    /// One call's worth of ids, following `NextToken` should the service page even
    /// an id list: the ids on a page not read would otherwise count as gone.
    async fn described_chunk(&self, chunk: &[String]) -> Result<Vec<Workspace>, LookupError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        // Every page but the last holds at least one of the chunk's ids.
        for _ in 0..=chunk.len() {
            let call =
                self.client.describe_workspaces().set_workspace_ids(Some(chunk.to_vec())).set_next_token(token).send();
            let out = self.gate.pass("DescribeWorkspaces", call).await.map_err(|e| classify(&e))?;
            found.extend_from_slice(out.workspaces());
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(found),
            }
        }
        Err(LookupError {
            outcome: Outcome::Transient,
            failure: Failure::new("PagingDidNotEnd", "DescribeWorkspaces kept answering with a NextToken"),
        })
    }

    /// `DescribeTags` takes one WorkSpace a call: run them concurrently, bounded.
    /// A WorkSpace that went between the listing and its tag lookup is gone: it is
    /// dropped from the selection; one whose tags cannot be read is left alone with
    /// that error. Neither is a failure of every other target in the selection.
    async fn with_tags(&self, candidates: Vec<Candidate>) -> Vec<Candidate> {
        let tagged: Vec<Option<Candidate>> = stream::iter(candidates)
            .map(|mut c| async move {
                match self.gate.pass("DescribeTags", self.client.describe_tags().resource_id(&c.id).send()).await {
                    Ok(out) => {
                        c.tags = tag_map(out.tag_list());
                        Some(c)
                    }
                    Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                        tracing::info!(workspace_id = %c.id, "gone between the listing and its tag lookup: dropped from the selection");
                        None
                    }
                    Err(e) => {
                        let error = classify(&e);
                        c.unreadable = Some((error.outcome, error.failure));
                        Some(c)
                    }
                }
            })
            .buffered(self.gate.capacity())
            .collect()
            .await;
        tagged.into_iter().flatten().collect()
    }

    async fn with_connections(&self, candidates: &mut [Candidate]) -> Result<(), LookupError> {
        let ids: Vec<String> = candidates.iter().map(|c| c.id.clone()).collect();
        let statuses = self
            .in_calls_of_25(&ids, |chunk| async move {
                let call =
                    self.client.describe_workspaces_connection_status().set_workspace_ids(Some(chunk.to_vec())).send();
                let out = self.gate.pass("DescribeWorkspacesConnectionStatus", call).await.map_err(|e| classify(&e))?;
                Ok(out.workspaces_connection_status().to_vec())
            })
            .await?;
        let mut last: HashMap<String, time::OffsetDateTime> = HashMap::new();
        let mut connected: HashSet<String> = HashSet::new();
        let mut never: HashSet<String> = HashSet::new();
        for status in statuses {
            let Some(id) = status.workspace_id() else { continue };
            match status.last_known_user_connection_timestamp().and_then(to_time) {
                Some(at) => {
                    last.insert(id.to_owned(), at);
                }
                None => {
                    never.insert(id.to_owned());
                }
            }
            if status.connection_state() == Some(&ConnectionState::Connected) {
                connected.insert(id.to_owned());
            }
        }
        for c in candidates {
            c.last_connected = last.get(&c.id).copied();
            c.connected = connected.contains(&c.id);
            c.never_connected = never.contains(&c.id);
        }
        Ok(())
    }

    /// Sets one tag on one WorkSpace (`CreateTags` overwrites a tag of the same key):
    /// a notice's expiry, or the date a never-connected WorkSpace was first seen.
    pub async fn tag(&self, id: &str, key: &str, value: &str) -> Result<(), ServiceError> {
        let tag = aws_sdk_workspaces::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(|e| ServiceError::new(Outcome::Rejected, "ConstructionFailure", e.to_string()))?;
        let call = self.client.create_tags().resource_id(id).tags(tag).send();
        self.gate.pass("CreateTags", call).await.map(|_| ()).map_err(|e| classify(&e))
    }
}

fn tag_map(tags: &[aws_sdk_workspaces::types::Tag]) -> BTreeMap<String, String> {
    tags.iter().map(|t| (t.key().to_owned(), t.value().unwrap_or("").to_owned())).collect()
}

fn candidate(w: &aws_sdk_workspaces::types::Workspace) -> Option<Candidate> {
    let mut attributes = BTreeMap::new();
    for (name, value) in [("directoryId", w.directory_id()), ("bundleId", w.bundle_id()), ("userName", w.user_name())] {
        if let Some(v) = value {
            attributes.insert(name, v.to_owned());
        }
    }
    if let Some(mode) = w.workspace_properties().and_then(|p| p.running_mode()) {
        attributes.insert("runningMode", mode.as_str().to_owned());
    }
    Some(Candidate {
        id: w.workspace_id()?.to_owned(),
        state: w.state().map(|s| s.as_str().to_owned()),
        attributes,
        ..Candidate::default()
    })
}

impl Workspaces {
    /// docs/reference.md, "Follow-up, audit events and metrics": where each followed WorkSpace is. Gone or `TERMINATED` is done;
    /// `ERROR` failed; `TERMINATING` on its way; any other state is on its way only
    /// at the first check (the service may not show the termination yet), failed after.
    pub async fn check(&self, ids: &[String], attempt: u32) -> Result<HashMap<String, Status>, LookupError> {
        let mut states: HashMap<String, (String, Option<Failure>)> = HashMap::new();
        for w in self.described(ids).await? {
            if let (Some(id), Some(state)) = (w.workspace_id(), w.state()) {
                // The WorkSpace's own error, when it says one.
                let error = w.error_code().map(|code| Failure::new(code, w.error_message().unwrap_or(code)));
                states.insert(id.to_owned(), (state.as_str().to_owned(), error));
            }
        }
        Ok(ids
            .iter()
            .map(|id| {
                let (state, error) = match states.get(id) {
                    Some((state, error)) => (Some(state.as_str()), error.clone()),
                    None => (None, None),
                };
                let status = match state {
                    None | Some("TERMINATED") => Status::Done,
                    Some("TERMINATING") => Status::Pending("TERMINATING".into()),
                    Some("ERROR") => Status::Failed(error.unwrap_or_else(|| {
                        Failure::new("ERROR", "the WorkSpace went to ERROR instead of terminating")
                    })),
                    Some(state) if attempt <= 1 => Status::Unseen(format!("still {state}")),
                    Some(state) => Status::Failed(Failure::new(
                        state,
                        format!("the WorkSpace is {state}, not TERMINATING, after its termination was accepted"),
                    )),
                };
                (id.clone(), status)
            })
            .collect())
    }
}

/// Whether a WorkSpace can still match `filters` on what the listing says (directory,
/// bundle, user, state); the guards check every filter again.
fn may_match(c: &Candidate, filters: &WorkspacesFilters) -> bool {
    let same = |name: &str, wanted: &Option<String>| wanted.as_ref().is_none_or(|w| c.attributes.get(name) == Some(w));
    same("directoryId", &filters.directory_id)
        && same("bundleId", &filters.bundle_id)
        && same("userName", &filters.user_name)
        && (filters.states.is_empty() || c.state.as_ref().is_some_and(|s| filters.states.contains(s)))
        && (filters.running_modes.is_empty()
            || c.attributes.get("runningMode").is_some_and(|m| filters.running_modes.contains(m)))
}
