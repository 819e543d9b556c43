//! An MGN stand-in (restJson, as the SDK speaks it): source servers with tags,
//! lifecycle and launched instances; `TerminateTargetInstances` starts a job that is
//! `PENDING`, then `STARTED`, then `COMPLETED` in compressed time, and fails a doomed
//! server (`launchStatus` `FAILED`). Every job it ever started is in `jobs`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::inventory::{Inventory, Service};

pub struct Server {
    pub account: String,
    pub id: String,
    pub tags: BTreeMap<String, String>,
    pub state: &'static str,
    pub launched: bool,
    pub doomed: bool,
    pub stuck: bool,
}

pub struct Job {
    pub account: String,
    pub id: String,
    pub servers: Vec<String>,
    pub created: Instant,
    pub created_iso: String,
    /// None: never completes.
    pub completes: Option<Instant>,
    pub failed: HashSet<String>,
    pub finished: bool,
}

pub struct Mgn {
    pub servers: Vec<Server>,
    pub jobs: Vec<Job>,
    ms_per_second: f64,
}

pub type Answer = (u16, Value);

fn error(status: u16, code: &str, message: &str) -> Answer {
    (status, json!({"__type": code, "message": message}))
}

impl Mgn {
    pub fn new(inventory: &Inventory, compress: f64) -> Mgn {
        let servers = inventory
            .resources
            .iter()
            .filter(|r| r.service == Service::Mgn)
            .map(|r| Server {
                account: r.account.clone(),
                id: r.id.clone(),
                tags: r.tags(),
                // One in ten is in a state the guard refuses: TESTING, or no launched instance.
                state: if r.refused_state && r.id.ends_with(['1', '3', '5', '7', '9']) {
                    "TESTING"
                } else {
                    "READY_FOR_TEST"
                },
                launched: !r.refused_state || r.id.ends_with(['1', '3', '5', '7', '9']),
                doomed: r.doomed,
                stuck: r.stuck,
            })
            .collect();
        Mgn { servers, jobs: Vec::new(), ms_per_second: 1000.0 / compress }
    }

    fn arn(account: &str, id: &str) -> String {
        format!("arn:aws:mgn:us-east-1:{account}:source-server/{id}")
    }

    /// Jobs whose time has come complete: launched instances of terminated servers go.
    fn advance(&mut self) {
        let now = Instant::now();
        for job in &mut self.jobs {
            if job.finished || job.completes.is_none_or(|t| t > now) {
                continue;
            }
            job.finished = true;
            for s in self.servers.iter_mut().filter(|s| s.account == job.account && job.servers.contains(&s.id)) {
                if !job.failed.contains(&s.id) {
                    s.launched = false;
                }
            }
        }
    }

    fn job_json(&self, job: &Job) -> Value {
        let now = Instant::now();
        let status = if job.finished {
            "COMPLETED"
        } else if now.duration_since(job.created) < Duration::from_millis((5.0 * self.ms_per_second) as u64) {
            "PENDING"
        } else {
            "STARTED"
        };
        let servers: Vec<Value> = job
            .servers
            .iter()
            .map(|id| {
                let launch = match (job.finished, job.failed.contains(id)) {
                    (false, _) => "IN_PROGRESS",
                    (true, true) => "FAILED",
                    (true, false) => "TERMINATED",
                };
                json!({"sourceServerID": id, "launchStatus": launch})
            })
            .collect();
        json!({
            "jobID": job.id, "arn": format!("arn:aws:mgn:us-east-1:{}:job/{}", job.account, job.id),
            "type": "TERMINATE", "initiatedBy": "TERMINATE", "creationDateTime": job.created_iso,
            "status": status, "participatingServers": servers
        })
    }

    pub fn answer(&mut self, account: &str, path: &str, body: &Value) -> Answer {
        self.advance();
        match path {
            "/DescribeSourceServers" => {
                let filters = &body["filters"];
                let ids: Option<Vec<&str>> =
                    filters["sourceServerIDs"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect());
                let states: Option<Vec<&str>> =
                    filters["lifeCycleStates"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect());
                let matching: Vec<Value> = self
                    .servers
                    .iter()
                    .filter(|s| s.account == account)
                    .filter(|s| ids.as_ref().is_none_or(|ids| ids.is_empty() || ids.contains(&s.id.as_str())))
                    .filter(|s| states.as_ref().is_none_or(|st| st.is_empty() || st.contains(&s.state)))
                    .map(|s| {
                        let mut server = json!({
                            "sourceServerID": s.id, "arn": Mgn::arn(&s.account, &s.id), "tags": s.tags,
                            "lifeCycle": {"state": s.state}, "isArchived": false
                        });
                        if s.launched {
                            server["launchedInstance"] = json!({"ec2InstanceID": format!("i-{}", &s.id[2..])});
                        }
                        server
                    })
                    .collect();
                (200, page(matching, body))
            }
            "/DescribeJobs" => {
                let ids: Option<Vec<&str>> =
                    body["filters"]["jobIDs"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect());
                let jobs: Vec<Value> = self
                    .jobs
                    .iter()
                    .filter(|j| j.account == account)
                    .filter(|j| ids.as_ref().is_none_or(|ids| ids.is_empty() || ids.contains(&j.id.as_str())))
                    .map(|j| self.job_json(j))
                    .collect();
                (200, page(jobs, body))
            }
            "/TerminateTargetInstances" => {
                let ids: Vec<String> = body["sourceServerIDs"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                if ids.is_empty() {
                    return error(400, "ValidationException", "sourceServerIDs is empty");
                }
                let known: Vec<&Server> =
                    self.servers.iter().filter(|s| s.account == account && ids.contains(&s.id)).collect();
                if known.len() != ids.len() {
                    return error(404, "ResourceNotFoundException", "a source server was not found");
                }
                let failed = known.iter().filter(|s| s.doomed).map(|s| s.id.clone()).collect();
                let stuck = known.iter().any(|s| s.stuck);
                let n = self.jobs.len() + 1;
                let now = Instant::now();
                // A job runs 30 to 90 s of queue time.
                let runs = Duration::from_millis(((30 + (n as u64 * 7919) % 60) as f64 * self.ms_per_second) as u64)
                    .max(super::world::UNDERWAY_AT_LEAST);
                let job = Job {
                    account: account.to_owned(),
                    id: format!("mgnjob-{n:08}"),
                    servers: ids,
                    created: now,
                    created_iso: time::OffsetDateTime::now_utc()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    completes: (!stuck).then_some(now + runs),
                    failed,
                    finished: false,
                };
                let answer = json!({"job": self.job_json(&job)});
                self.jobs.push(job);
                (202, answer)
            }
            p if p.starts_with("/tags/") => (200, json!({})),
            _ => error(404, "UnknownOperationException", path),
        }
    }
}

/// One page of `items` by `maxResults` and the offset in `nextToken`.
pub fn page(items: Vec<Value>, body: &Value) -> Value {
    let size = body["maxResults"].as_u64().unwrap_or(50).clamp(1, 50) as usize;
    let from: usize = body["nextToken"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
    let mut answer = json!({"items": items.iter().skip(from).take(size).collect::<Vec<_>>()});
    if from + size < items.len() {
        answer["nextToken"] = json!((from + size).to_string());
    }
    answer
}
