//! WorkSpaces: `TerminateWorkspaces`, 25 ids a call, answered per id.

use std::collections::{HashMap, HashSet};

use aws_sdk_workspaces::types::{TerminateRequest, WorkspaceState};
use futures_util::future::join_all;

use super::classify;
use crate::outcome::{Failure, Outcome, TargetResult};

/// The most ids `TerminateWorkspaces` and `DescribeWorkspaces` take in one call.
pub const IDS_PER_CALL: usize = 25;

#[derive(Clone, Debug)]
pub struct Workspaces {
    client: aws_sdk_workspaces::Client,
}

impl Workspaces {
    pub fn new(client: aws_sdk_workspaces::Client) -> Self {
        Workspaces { client }
    }

    /// Terminates `ids` (distinct) in calls of at most 25, run concurrently, and
    /// returns one result per id, in the order given.
    pub async fn terminate(&self, ids: &[String]) -> Vec<TargetResult> {
        let chunks = join_all(
            ids.chunks(IDS_PER_CALL)
                .map(|chunk| self.terminate_chunk(chunk)),
        )
        .await;
        chunks.into_iter().flatten().collect()
    }

    async fn terminate_chunk(&self, ids: &[String]) -> Vec<TargetResult> {
        let requests: Result<Vec<TerminateRequest>, _> = ids
            .iter()
            .map(|id| TerminateRequest::builder().workspace_id(id).build())
            .collect();
        let requests = match requests {
            Ok(requests) => requests,
            Err(e) => {
                let failure = Failure::new("ConstructionFailure", e.to_string());
                return ids
                    .iter()
                    .map(|id| TargetResult::failed(id, Outcome::Rejected, failure.clone()))
                    .collect();
            }
        };
        let output = match self
            .client
            .terminate_workspaces()
            .set_terminate_workspace_requests(Some(requests))
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                let (outcome, failure) = classify(&error);
                return ids
                    .iter()
                    .map(|id| TargetResult::failed(id, outcome, failure.clone()))
                    .collect();
            }
        };

        let failed: HashMap<&str, Failure> = output
            .failed_requests()
            .iter()
            .filter_map(|f| {
                let id = f.workspace_id()?;
                let failure = Failure::new(
                    f.error_code().unwrap_or("Unknown"),
                    f.error_message()
                        .unwrap_or("TerminateWorkspaces refused this WorkSpace"),
                );
                Some((id, failure))
            })
            .collect();
        if failed.is_empty() {
            return ids
                .iter()
                .map(|id| TargetResult::new(id, Outcome::Terminated))
                .collect();
        }

        // Error codes in FailedRequests differ between AWS and emulators; whether the
        // WorkSpace still exists is the documented way to tell "already gone" apart.
        let failed_ids: Vec<String> = ids
            .iter()
            .filter(|id| failed.contains_key(id.as_str()))
            .cloned()
            .collect();
        let still_there = self.still_present(&failed_ids).await;

        ids.iter()
            .map(|id| match failed.get(id.as_str()) {
                None => TargetResult::new(id, Outcome::Terminated),
                Some(failure) => match &still_there {
                    Ok(present) if !present.contains(id.as_str()) => {
                        TargetResult::new(id, Outcome::NotFound)
                    }
                    Ok(_) => TargetResult::failed(id, Outcome::Rejected, failure.clone()),
                    Err((outcome, describe_failure)) => {
                        let message = format!(
                            "{}; and DescribeWorkspaces, asked whether it still exists, failed: {}",
                            failure.message, describe_failure.message
                        );
                        TargetResult::failed(
                            id,
                            *outcome,
                            Failure::new(failure.code.clone(), message),
                        )
                    }
                },
            })
            .collect()
    }

    /// The ids among `ids` that still exist and are not on their way out.
    async fn still_present(&self, ids: &[String]) -> Result<HashSet<String>, (Outcome, Failure)> {
        let mut present = HashSet::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let output = self
                .client
                .describe_workspaces()
                .set_workspace_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| {
                    let (outcome, failure) = classify(&e);
                    // A describe that is refused leaves the terminate failure unexplained:
                    // keep it rejected unless the describe itself may succeed later.
                    (
                        if outcome == Outcome::Transient {
                            Outcome::Transient
                        } else {
                            Outcome::Rejected
                        },
                        failure,
                    )
                })?;
            for workspace in output.workspaces() {
                let gone = matches!(
                    workspace.state(),
                    Some(WorkspaceState::Terminating | WorkspaceState::Terminated)
                );
                if let (Some(id), false) = (workspace.workspace_id(), gone) {
                    present.insert(id.to_owned());
                }
            }
        }
        Ok(present)
    }
}
