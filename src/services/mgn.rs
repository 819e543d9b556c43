//! Application Migration Service: `TerminateTargetInstances`, 200 source servers a
//! call; each call starts one job.

use std::collections::HashSet;

use futures_util::future::join_all;

use aws_sdk_mgn::types::{DescribeSourceServersRequestFilters, LifeCycleState};

use super::{LookupError, classify};
use crate::guard::Candidate;
use crate::outcome::{Failure, Outcome, TargetResult};
use crate::request::{Selection, ServiceFilters, TargetInstancesInput};

/// The most source server ids `TerminateTargetInstances` takes in one call.
pub const IDS_PER_CALL: usize = 200;

#[derive(Clone, Debug)]
pub struct Mgn {
    client: aws_sdk_mgn::Client,
}

impl Mgn {
    pub fn new(client: aws_sdk_mgn::Client) -> Self {
        Mgn { client }
    }

    /// One result per source server, in the order given; each carries its job id.
    pub async fn terminate(&self, input: &TargetInstancesInput) -> Vec<TargetResult> {
        let calls = input.source_server_ids.chunks(IDS_PER_CALL).map(|chunk| self.terminate_chunk(input, chunk));
        join_all(calls).await.into_iter().flatten().collect()
    }

    async fn terminate_chunk(&self, input: &TargetInstancesInput, ids: &[String]) -> Vec<TargetResult> {
        let tags = (!input.tags.is_empty()).then(|| input.tags.clone().into_iter().collect());
        let sent = self
            .client
            .terminate_target_instances()
            .set_source_server_ids(Some(ids.to_vec()))
            .set_tags(tags)
            .set_account_id(input.account_id.clone())
            .send()
            .await;
        let job = match sent {
            Ok(output) => output.job,
            Err(error) => {
                let (outcome, failure) = classify(&error);
                let outcome = if failure.code == "ResourceNotFoundException" { Outcome::NotFound } else { outcome };
                return ids.iter().map(|id| TargetResult::failed(id, outcome, failure.clone())).collect();
            }
        };
        let Some(job) = job else {
            let failure = Failure::new("NoJob", "TerminateTargetInstances answered without a job");
            return ids.iter().map(|id| TargetResult::failed(id, Outcome::Transient, failure.clone())).collect();
        };

        // A server that does not take part in the job had no launched test or cutover
        // instance left to terminate: already gone, as after a redelivered message.
        // An empty list means the job has not listed them yet; the job covers all.
        let participating: HashSet<&str> = job.participating_servers().iter().map(|s| s.source_server_id()).collect();
        ids.iter()
            .map(|id| {
                if participating.is_empty() || participating.contains(id.as_str()) {
                    TargetResult { job_id: Some(job.job_id().to_owned()), ..TargetResult::new(id, Outcome::Terminated) }
                } else {
                    TargetResult::new(id, Outcome::NotFound)
                }
            })
            .collect()
    }
}

impl Mgn {
    /// The named source servers that exist, with lifecycle, launched instance and tags.
    pub async fn describe(&self, ids: &[String], account_id: Option<&str>) -> Result<Vec<Candidate>, LookupError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let filters =
                DescribeSourceServersRequestFilters::builder().set_source_server_ids(Some(chunk.to_vec())).build();
            found.extend(self.describe_pages(filters, account_id).await?);
        }
        Ok(found)
    }

    /// The source servers a selection could match; the guards check every filter again.
    pub async fn find(&self, selection: &Selection) -> Result<Vec<Candidate>, LookupError> {
        let ServiceFilters::TargetInstances { lifecycle_states, account_id } = &selection.filters else {
            return Ok(Vec::new());
        };
        let mut filters = DescribeSourceServersRequestFilters::builder();
        if !selection.ids.is_empty() {
            filters = filters.set_source_server_ids(Some(selection.ids.clone()));
        }
        if !lifecycle_states.is_empty() {
            filters = filters.set_life_cycle_states(Some(
                lifecycle_states.iter().map(|s| LifeCycleState::from(s.as_str())).collect(),
            ));
        }
        self.describe_pages(filters.build(), account_id.as_deref()).await
    }

    async fn describe_pages(
        &self,
        filters: DescribeSourceServersRequestFilters,
        account_id: Option<&str>,
    ) -> Result<Vec<Candidate>, LookupError> {
        let mut pages = self
            .client
            .describe_source_servers()
            .filters(filters)
            .set_account_id(account_id.map(str::to_owned))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            for server in page.map_err(|e| classify(&e))?.items() {
                let Some(id) = server.source_server_id() else { continue };
                found.push(Candidate {
                    id: id.to_owned(),
                    state: server.life_cycle().and_then(|l| l.state()).map(|s| s.as_str().to_owned()),
                    tags: server.tags().map(|t| t.clone().into_iter().collect()).unwrap_or_default(),
                    has_launched_instance: Some(
                        server.launched_instance().and_then(|i| i.ec2_instance_id()).is_some_and(|i| !i.is_empty()),
                    ),
                    ..Candidate::default()
                });
            }
        }
        Ok(found)
    }
}
