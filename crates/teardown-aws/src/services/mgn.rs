//! Application Migration Service: `TerminateTargetInstances`, 200 source servers a
//! call; each call starts one job.

use std::collections::{HashMap, HashSet};

use aws_sdk_mgn::config::retry::RetryConfig;
use futures_util::future::join_all;

use aws_sdk_mgn::types::{
    DescribeJobsRequestFilters, DescribeSourceServersRequestFilters, JobStatus, JobType, LaunchStatus, LifeCycleState,
};

use super::{Gate, LookupError};
use crate::classify::{ServiceError, classify};
use crate::confirm::Status;
use crate::guard::Candidate;
use crate::outcome::{Failure, Outcome, TargetResult};
use crate::request::{Selection, TargetInstancesFilters, TargetInstancesInput};

/// The most source server ids `TerminateTargetInstances` takes in one call.
pub const IDS_PER_CALL: usize = 200;

/// How far back running TERMINATE jobs are looked for: as far as SQS keeps a message
/// (14 days), so no redelivery or replay can outlive the window. A job runs for
/// minutes, so the listing grows with recent work, not the account's whole history.
pub const RUNNING_JOBS_WINDOW: time::Duration = time::Duration::days(14);

/// The key under which a running job that lists no server is kept (no server id is empty).
const UNLISTED: &str = "";
/// How long after its creation a job that lists no server may still be about to.
const UNLISTED_WINDOW: time::Duration = time::Duration::minutes(15);

#[derive(Clone, Debug)]
pub struct Mgn {
    client: aws_sdk_mgn::Client,
    gate: Gate,
}

impl Mgn {
    pub fn new(client: aws_sdk_mgn::Client) -> Self {
        Mgn { client, gate: Gate::default() }
    }

    pub fn with_gate(self, gate: Gate) -> Self {
        Mgn { gate, ..self }
    }

    /// One result per source server, in the order given; each carries its job id.
    pub async fn terminate(&self, input: &TargetInstancesInput) -> Vec<TargetResult> {
        let calls = input.source_server_ids.chunks(IDS_PER_CALL).map(|chunk| async move {
            self.terminate_call(input, chunk).await.unwrap_or_else(|failed| failed.for_each(chunk))
        });
        join_all(calls).await.into_iter().flatten().collect()
    }

    /// One `TerminateTargetInstances` call for at most 200 ids. `Err` when the call
    /// failed as a whole: the service names no server, so the caller decides whom
    /// to charge (a call shared by several messages is retried apart).
    pub async fn terminate_call(
        &self,
        input: &TargetInstancesInput,
        ids: &[String],
    ) -> Result<Vec<TargetResult>, ServiceError> {
        let tags = (!input.tags.is_empty()).then(|| input.tags.clone().into_iter().collect());
        let call = self
            .client
            .terminate_target_instances()
            .set_source_server_ids(Some(ids.to_vec()))
            .set_tags(tags)
            .set_account_id(input.account_id.clone())
            // Sent once: MGN takes no client token, so an attempt retried after a timeout
            // could start a second job. What fails is redelivered, and the next delivery
            // finds an accepted call among the running jobs.
            .customize()
            .config_override(aws_sdk_mgn::config::Config::builder().retry_config(RetryConfig::disabled()))
            .send();
        let job = match self.gate.pass("TerminateTargetInstances", call).await {
            Ok(output) => output.job,
            Err(error) => {
                let ServiceError { outcome, failure } = classify(&error);
                // The call names no server: one that went since the lookup makes the
                // whole call fail, and the others are not gone. The next delivery looks
                // every one up again; only DescribeSourceServers decides not_found.
                let outcome = if failure.code == "ResourceNotFoundException" { Outcome::Transient } else { outcome };
                return Err(ServiceError { outcome, failure });
            }
        };
        let Some(job) = job else {
            return Err(ServiceError::transient("NoJob", "TerminateTargetInstances answered without a job"));
        };

        // A server that does not take part in the job had no launched test or cutover
        // instance left to terminate: already gone, as after a redelivered message.
        // An empty list means the job has not listed them yet; the job covers all.
        let participating: HashSet<&str> = job.participating_servers().iter().map(|s| s.source_server_id()).collect();
        let results = ids
            .iter()
            .map(|id| {
                if participating.is_empty() || participating.contains(id.as_str()) {
                    TargetResult { job_id: Some(job.job_id().to_owned()), ..TargetResult::new(id, Outcome::Terminated) }
                } else {
                    // Only DescribeSourceServers decides that a server is gone; a job that
                    // leaves one out says nothing certain, so the next delivery looks again.
                    let failure = Failure::new(
                        "NotInJob",
                        format!("job {} does not list this server; looked up again on the next delivery", job.job_id()),
                    );
                    TargetResult::failed(id, Outcome::Transient, failure)
                }
            })
            .collect();
        Ok(results)
    }
}

impl Mgn {
    /// The named source servers that exist, with lifecycle, launched instance, tags,
    /// and the running TERMINATE job each already takes part in.
    pub async fn describe(
        &self,
        ids: &[String],
        account_id: Option<&str>,
        now: time::OffsetDateTime,
        known_jobs: &HashSet<String>,
    ) -> Result<Vec<Candidate>, LookupError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let filters =
                DescribeSourceServersRequestFilters::builder().set_source_server_ids(Some(chunk.to_vec())).build();
            found.extend(self.describe_pages(filters, account_id).await?);
        }
        self.with_running_jobs(found, account_id, now, known_jobs).await
    }

    /// Marks each candidate that takes part in a `PENDING` or `STARTED` `TERMINATE`
    /// job, so that a redelivered message never starts a second job. Asked only
    /// when some candidate has an instance that could be terminated.
    async fn with_running_jobs(
        &self,
        mut found: Vec<Candidate>,
        account_id: Option<&str>,
        now: time::OffsetDateTime,
        known_jobs: &HashSet<String>,
    ) -> Result<Vec<Candidate>, LookupError> {
        if !found.iter().any(|c| c.has_launched_instance == Some(true)) {
            return Ok(found);
        }
        let running = self.running_terminations(account_id, now).await?;
        // A job just started may not list its servers yet, and may hold any of them:
        // wait for it to say rather than risk a second job. Only a recent one counts
        // (a job lists its servers within moments), and never one this invocation
        // started itself, whose servers it knows.
        if let Some(job) = running.get(UNLISTED).filter(|job| !known_jobs.contains(*job)) {
            return Err(ServiceError::transient(
                "JobParticipantsUnknown",
                format!("TERMINATE job {job} is running and does not list its source servers yet"),
            ));
        }
        for c in &mut found {
            c.active_job = running.get(&c.id).cloned();
        }
        Ok(found)
    }

    /// Source server id → the running TERMINATE job it takes part in.
    pub async fn running_terminations(
        &self,
        account_id: Option<&str>,
        now: time::OffsetDateTime,
    ) -> Result<HashMap<String, String>, LookupError> {
        let mut running = HashMap::new();
        let filters = created_since(now - RUNNING_JOBS_WINDOW);
        for job in self.jobs(filters, account_id).await? {
            let terminating = job.r#type() == Some(&JobType::Terminate)
                && matches!(job.status(), Some(JobStatus::Pending | JobStatus::Started));
            if !terminating {
                continue;
            }
            let recent = created(&job).is_none_or(|created| now - created < UNLISTED_WINDOW);
            if job.participating_servers().is_empty() && recent {
                running.insert(UNLISTED.to_owned(), job.job_id().to_owned());
            }
            for server in job.participating_servers() {
                running.insert(server.source_server_id().to_owned(), job.job_id().to_owned());
            }
        }
        Ok(running)
    }

    /// Every job `DescribeJobs` lists for `filters`, every page read.
    async fn jobs(
        &self,
        filters: DescribeJobsRequestFilters,
        account_id: Option<&str>,
    ) -> Result<Vec<aws_sdk_mgn::types::Job>, LookupError> {
        let mut pages = self
            .client
            .describe_jobs()
            .filters(filters)
            .set_account_id(account_id.map(str::to_owned))
            .into_paginator()
            .send();
        let mut jobs = Vec::new();
        while let Some(page) = self.gate.pass("DescribeJobs", pages.next()).await {
            jobs.extend(page.map_err(|e| classify(&e))?.items().iter().cloned());
        }
        Ok(jobs)
    }

    /// The source servers a selection could match; the guards check every filter again.
    pub async fn find(
        &self,
        selection: &Selection<TargetInstancesFilters>,
        now: time::OffsetDateTime,
        known_jobs: &HashSet<String>,
    ) -> Result<Vec<Candidate>, LookupError> {
        let TargetInstancesFilters { lifecycle_states, account_id } = &selection.filters;
        let mut filters = DescribeSourceServersRequestFilters::builder();
        if !selection.ids.is_empty() {
            filters = filters.set_source_server_ids(Some(selection.ids.clone()));
        }
        if !lifecycle_states.is_empty() {
            filters = filters.set_life_cycle_states(Some(
                lifecycle_states.iter().map(|s| LifeCycleState::from(s.as_str())).collect(),
            ));
        }
        let found = self.describe_pages(filters.build(), account_id.as_deref()).await?;
        self.with_running_jobs(found, account_id.as_deref(), now, known_jobs).await
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
        while let Some(page) = self.gate.pass("DescribeSourceServers", pages.next()).await {
            for server in page.map_err(|e| classify(&e))?.items() {
                let Some(id) = server.source_server_id() else { continue };
                let mut attributes = std::collections::BTreeMap::new();
                if let Some(arn) = server.arn() {
                    attributes.insert("arn", arn.to_owned());
                }
                found.push(Candidate {
                    id: id.to_owned(),
                    attributes,
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

/// `DescribeJobs` filters for the jobs created since `from` (MGN's `fromDate`, to the second).
fn created_since(from: time::OffsetDateTime) -> DescribeJobsRequestFilters {
    let from = from.replace_nanosecond(0).ok().and_then(|t| {
        t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")).ok()
    });
    DescribeJobsRequestFilters::builder().set_from_date(from).build()
}

/// When a job was created, when it says so readably.
fn created(job: &aws_sdk_mgn::types::Job) -> Option<time::OffsetDateTime> {
    job.creation_date_time()
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
}

impl Mgn {
    /// Sets one tag on one source server (`TagResource` on its ARN): a notice's expiry.
    pub async fn tag(&self, arn: &str, key: &str, value: &str) -> Result<(), ServiceError> {
        let call = self.client.tag_resource().resource_arn(arn).tags(key, value).send();
        self.gate.pass("TagResource", call).await.map(|_| ()).map_err(|e| classify(&e))
    }
}

impl Mgn {
    /// docs/reference.md, "Follow-up, audit events and metrics": where each followed server's job is. A `COMPLETED` job with the
    /// server's `launchStatus` `TERMINATED` is done, anything else in a completed job
    /// failed; a job still `PENDING` or `STARTED`, or not listed yet, is on its way.
    ///
    /// A server followed without its job (the answer of the call that started it never
    /// came) is judged by the latest TERMINATE job that lists it and was created after
    /// `since`: never by an older one, which an earlier termination made.
    pub async fn check(
        &self,
        targets: &[crate::confirm::Followed],
        account_id: Option<&str>,
        since: time::OffsetDateTime,
    ) -> Result<HashMap<String, (Status, Option<String>)>, LookupError> {
        let mut job_ids: Vec<String> = targets.iter().filter_map(|t| t.job_id.clone()).collect();
        job_ids.sort();
        job_ids.dedup();
        let mut jobs = HashMap::new();
        for chunk in job_ids.chunks(1000) {
            let filters = DescribeJobsRequestFilters::builder().set_job_ids(Some(chunk.to_vec())).build();
            for job in self.jobs(filters, account_id).await? {
                jobs.insert(job.job_id().to_owned(), job);
            }
        }
        // A server followed without its job (the answer of the call that started it
        // never came): the latest TERMINATE job that lists it.
        let mut latest: HashMap<String, aws_sdk_mgn::types::Job> = HashMap::new();
        if targets.iter().any(|t| t.job_id.is_none()) {
            let filters = created_since(time::OffsetDateTime::now_utc() - RUNNING_JOBS_WINDOW);
            for job in self.jobs(filters, account_id).await? {
                if job.r#type() != Some(&JobType::Terminate) || created(&job).is_none_or(|created| created < since) {
                    continue;
                }
                for server in job.participating_servers() {
                    let later = latest
                        .get(server.source_server_id())
                        .is_none_or(|known| known.creation_date_time() < job.creation_date_time());
                    if later {
                        latest.insert(server.source_server_id().to_owned(), job.clone());
                    }
                }
            }
        }
        Ok(targets
            .iter()
            .map(|t| {
                let job = match &t.job_id {
                    Some(id) => jobs.get(id),
                    None => latest.get(&t.id),
                };
                let status = match job {
                    None => {
                        Status::Unseen(format!("job {} is not listed yet", t.job_id.as_deref().unwrap_or("(none)")))
                    }
                    Some(job) if job.status() != Some(&JobStatus::Completed) => Status::Pending(format!(
                        "job {} is {}",
                        job.job_id(),
                        job.status().map_or("PENDING", |s| s.as_str())
                    )),
                    Some(job) => {
                        let server = job.participating_servers().iter().find(|s| s.source_server_id() == t.id);
                        match server.and_then(|s| s.launch_status()) {
                            Some(LaunchStatus::Terminated) => Status::Done,
                            other => {
                                let status = other.map_or("not listed", |s| s.as_str());
                                Status::Failed(Failure::new(
                                    format!("LaunchStatus{}", other.map_or("Missing", |s| s.as_str())),
                                    format!("job {} completed with the server's launchStatus {status}", job.job_id()),
                                ))
                            }
                        }
                    }
                };
                // The job followed, found when the check had none.
                (t.id.clone(), (status, job.map(|j| j.job_id().to_owned())))
            })
            .collect())
    }
}
