//! What the model's world holds at one moment: the item (a compare-and-set register),
//! the target as its service sees it, the queue, the invocations running, and the
//! ledger the properties read.

use teardown_core::lifecycle::{Decision, Event, Item, Mark, Requester, Seconds, Seen, Status, Step};

/// Requests are named by their index: `A`, `B`, `C`, …
pub fn requester(index: u8) -> Requester {
    Requester::new(((b'A' + index) as char).to_string(), "")
}

pub fn job_name(index: u8) -> String {
    format!("job-{index}")
}

fn job_index(name: &str) -> Option<u8> {
    name.strip_prefix("job-")?.parse().ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// One termination the service started: by which request's token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Job {
    pub token: Option<u8>,
    pub state: JobState,
    pub started: Seconds,
    /// Started on a WorkSpace already in `ERROR`: failing, it ends as it began.
    pub from_error: bool,
}

/// The target as its service sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub view: View,
    /// The latest termination that ended in failure.
    pub failed_job: Option<u8>,
    /// WorkSpaces show no job: a failure is the state `ERROR`, a termination `TERMINATING`.
    pub has_jobs: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    Standing,
    Leaving(u8),
    Gone,
}

impl Target {
    /// What a request's lookup or a watch sees.
    pub fn seen(&self) -> Seen {
        let job = |j: u8| self.has_jobs.then(|| job_name(j));
        match self.view {
            View::Standing => Seen::Standing { failed: self.failed_job.map(|j| Mark { job: job(j) }) },
            View::Leaving(j) => Seen::Leaving { job: job(j) },
            View::Gone => Seen::Gone,
        }
    }

    /// What a check asking about `job` (or the latest job) finds.
    pub fn status(&self, jobs: &[Job], job: &Option<String>) -> Status {
        let pending = Status::Pending { why: "still on its way".into() };
        if self.view == View::Gone {
            return Status::Done { job: None };
        }
        if !self.has_jobs {
            return match (self.view, self.failed_job) {
                (View::Standing, Some(_)) => {
                    Status::Failed { job: None, code: "ERROR".into(), message: "went to ERROR".into() }
                }
                _ => pending,
            };
        }
        let index = job.as_deref().and_then(job_index).or_else(|| jobs.len().checked_sub(1).map(|i| i as u8));
        match index.and_then(|i| jobs.get(i as usize).map(|j| (i, j.state))) {
            Some((i, JobState::Succeeded)) => Status::Done { job: Some(job_name(i)) },
            Some((i, JobState::Failed)) => {
                Status::Failed { job: Some(job_name(i)), code: "FAILED".into(), message: "the job failed".into() }
            }
            _ => pending,
        }
    }
}

/// A message's body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// Request `n` (a dry run when `dry`).
    Request {
        n: u8,
        dry: bool,
    },
    /// Request `n`'s watch.
    Watch {
        n: u8,
    },
    Check {
        epoch: u32,
        attempt: u32,
        by: u8,
        job: Option<String>,
        accepted_at: Seconds,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Msg {
    pub id: u8,
    pub body: Body,
    pub receives: u8,
    pub visible_at: Seconds,
    /// Invocations holding it now (more than one: SQS handed it out twice).
    pub in_flight: u8,
}

/// Where an invocation stands in load → step → write → act.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pc {
    /// Load the item and look at the target.
    Look,
    /// Send what goes beside the write (the watch before a call, the checks).
    Beside { event: Event, step: Step },
    /// The conditional write on the version it loaded.
    Write { event: Event, step: Step },
    /// Send the checks that wait for the write.
    After(Step),
    /// The terminate call.
    Call,
    /// Publish the decision.
    Publish(Box<teardown_core::lifecycle::Decided>),
    /// Delete the message, or let it come back.
    Finish,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Run {
    pub msg: u8,
    /// This invocation's own id (its Lambda request id).
    pub call: String,
    pub body: Body,
    pub receives: u8,
    pub pc: Pc,
    /// The item as this invocation last read or wrote it, with its version.
    pub known: (u32, Item),
    /// A step said `Hold`: the message comes back.
    pub back: bool,
    /// When its look began: every step of a look-based event uses it.
    pub now: Seconds,
    /// When it was handed its message: it never outlives a tick past it.
    pub started: Seconds,
}

/// What the properties read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ledger {
    /// Every decision written on the item, by epoch (a second, different one is a violation).
    pub written: Vec<(u32, Decision)>,
    /// Every distinct publication of a decision.
    pub published: Vec<(u32, Decision)>,
    /// When each published epoch was accepted.
    pub accepted: Vec<Seconds>,
    /// Calls made when the item did not say `Calling` by the caller.
    pub unwritten_calls: u8,
    /// MGN calls made while another call or termination of the server was under way.
    pub second_calls: u8,
    /// Calls made by a dry run.
    pub dry_calls: u8,
    /// Messages dead-lettered after their last delivery.
    pub dead: u8,
}

/// Which faults a path may meet (each costs one of the model's `faults`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kinds {
    /// An invocation killed between two of its actions.
    pub crash: bool,
    /// A message handed out again while an invocation holds it.
    pub duplicate: bool,
    /// A send that reports an error.
    pub lost_send: bool,
    /// A visible message held back while time passes.
    pub delay: bool,
    /// Time passing while invocations run (each outlives at most one tick).
    pub slow: bool,
    /// A check that cannot ask the service (throttled, unreachable).
    pub unasked: bool,
}

impl Kinds {
    pub const ALL: Kinds =
        Kinds { crash: true, duplicate: true, lost_send: true, delay: true, slow: true, unasked: true };
    pub const NONE: Kinds =
        Kinds { crash: false, duplicate: false, lost_send: false, delay: false, slow: false, unasked: false };
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    pub now: Seconds,
    pub version: u32,
    pub item: Item,
    pub target: Target,
    pub jobs: Vec<Job>,
    pub queue: Vec<Msg>,
    pub running: Vec<Run>,
    pub ledger: Ledger,
    /// Faults this path may still meet.
    pub faults: u8,
    pub next_id: u8,
}

impl World {
    /// A publication: one identical to an earlier one adds nothing.
    pub fn publish(&mut self, epoch: u32, decision: &Decision, accepted_at: Seconds) {
        if !self.ledger.accepted.contains(&accepted_at) {
            self.ledger.accepted.push(accepted_at);
        }
        let publication = (epoch, decision.clone());
        if !self.ledger.published.contains(&publication) {
            self.ledger.published.push(publication);
        }
    }

    /// Terminations the service started (each must end as one decided, published epoch).
    pub fn terminations(&self) -> usize {
        self.jobs.iter().filter(|j| j.token.is_some()).count()
    }

    /// Terminations no published decision speaks for. With jobs, each is its own epoch;
    /// a WorkSpace shows none, so a decision accepted at or after a termination began
    /// speaks for the WorkSpace's state, that termination included.
    pub fn unaccounted(&self, has_jobs: bool) -> usize {
        if has_jobs {
            return self.terminations().saturating_sub(distinct_epochs(&self.ledger.published));
        }
        // A termination of a WorkSpace already in ERROR that fails leaves it as it was: no
        // look can tell it happened (the reference says so), so none is owed a decision.
        let covered = |job: &Job| {
            self.ledger.accepted.iter().any(|at| *at >= job.started)
                || (job.from_error && job.state == JobState::Failed)
        };
        self.jobs.iter().filter(|j| j.token.is_some() && !covered(j)).count()
    }

    /// Nothing runs and nothing is queued: every path from here is over.
    pub fn quiet(&self) -> bool {
        self.running.is_empty() && self.queue.is_empty()
    }

    pub fn send(&mut self, body: Body, delay: Seconds) {
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push(Msg { id, body, receives: 0, visible_at: self.now + delay, in_flight: 0 });
    }
}

/// How many epochs a list of (epoch, decision) names.
pub fn distinct_epochs(decisions: &[(u32, Decision)]) -> usize {
    let mut epochs: Vec<u32> = decisions.iter().map(|(e, _)| *e).collect();
    epochs.sort();
    epochs.dedup();
    epochs.len()
}
