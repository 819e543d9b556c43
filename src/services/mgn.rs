//! Application Migration Service: `TerminateTargetInstances`, 200 source servers a
//! call; each call starts one job.

use std::collections::HashSet;

use futures_util::future::join_all;

use super::classify;
use crate::outcome::{Failure, Outcome, TargetResult};
use crate::request::TargetInstancesInput;

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
        let calls = input
            .source_server_ids
            .chunks(IDS_PER_CALL)
            .map(|chunk| self.terminate_chunk(input, chunk));
        join_all(calls).await.into_iter().flatten().collect()
    }

    async fn terminate_chunk(
        &self,
        input: &TargetInstancesInput,
        ids: &[String],
    ) -> Vec<TargetResult> {
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
                let outcome = if failure.code == "ResourceNotFoundException" {
                    Outcome::NotFound
                } else {
                    outcome
                };
                return ids
                    .iter()
                    .map(|id| TargetResult::failed(id, outcome, failure.clone()))
                    .collect();
            }
        };
        let Some(job) = job else {
            let failure = Failure::new("NoJob", "TerminateTargetInstances answered without a job");
            return ids
                .iter()
                .map(|id| TargetResult::failed(id, Outcome::Transient, failure.clone()))
                .collect();
        };

        // A server that does not take part in the job had no launched test or cutover
        // instance left to terminate: already gone, as after a redelivered message.
        // An empty list means the job has not listed them yet; the job covers all.
        let participating: HashSet<&str> = job
            .participating_servers()
            .iter()
            .map(|s| s.source_server_id())
            .collect();
        ids.iter()
            .map(|id| {
                if participating.is_empty() || participating.contains(id.as_str()) {
                    TargetResult {
                        job_id: Some(job.job_id().to_owned()),
                        ..TargetResult::new(id, Outcome::Terminated)
                    }
                } else {
                    TargetResult::new(id, Outcome::NotFound)
                }
            })
            .collect()
    }
}
