//! One lifecycle per target (docs/reference.md, "State across messages"): the phases an
//! item of the state table goes through, the events that move it, the effects it asks
//! for, and one pure transition function, [`step`]. Every rule about ordering and
//! ownership across messages is a transition here; the adapter only stores an [`Item`]
//! with a compare-and-set on its version, and the handler only loads, steps, writes and
//! acts. The model checker (`crates/teardown-model`) drives this very function through
//! crashes, duplicates and lost messages.
//!
//! ```text
//! Idle ──Request──▶ Calling{by, since, before} ──Answer: accepted──▶ Following{epoch, attempt}
//!  ▲                  │ refused; or over and no sign it went in         │ Check: still going → next attempt
//!  └──────────────────┘                                                 │ Check: done / failed / too late
//!  Decided{published} ◀──Published── Decided{epoch, decision} ◀─────────┘
//! ```
//!
//! A duplicate is never told apart by a rule of its own: the copy that loses the
//! compare-and-set steps again against what won, and either finds its work done or
//! does what is left.

mod step;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use step::step;

/// Epoch seconds: the clock every event is stepped at.
pub type Seconds = i64;

/// Who asked: a request, named by its idempotency token (the same for every delivery
/// and every copy of one message), and where it came from (the record's `source`, as
/// JSON, kept for reports and `status`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    pub token: String,
    #[serde(default)]
    pub source: String,
}

impl Requester {
    pub fn new(token: impl Into<String>, source: impl Into<String>) -> Self {
        Requester { token: token.into(), source: source.into() }
    }

    fn same(&self, other: &Requester) -> bool {
        self.token == other.token
    }
}

/// How the service treats a second call for the same target by the same request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Calls {
    /// WorkSpaces (by id) and Service Catalog (by `TerminateToken`): the same request
    /// may call again.
    Idempotent,
    /// MGN's `TerminateTargetInstances` takes no token: a server is never in two calls.
    Once,
}

/// How long each kind of holder can still act, from the settings (never constants:
/// `Bounds::from_settings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// An invocation about to call, or calling: the function's timeout and a margin
    /// for clocks. Past it, a `Calling` item is resolved by looking.
    pub call: Seconds,
    /// A chain's next check: past its due time by this much it is taken for lost
    /// (handed back `MAX_RECEIVES` times, each after `VISIBILITY_TIMEOUT`).
    pub check: Seconds,
    /// `CONFIRM_WITHIN`: past it since acceptance, a check decides `unconfirmed`.
    pub confirm_within: Seconds,
}

/// Lambda's longest timeout: no invocation outlives it.
pub const LONGEST_INVOCATION: Seconds = 900;
/// What the clocks of two machines may differ by, added to every bound.
pub const CLOCK_MARGIN: Seconds = 60;

impl Bounds {
    /// The bounds of a deployment: its function timeout, its queue's visibility timeout
    /// and receive count, and `CONFIRM_WITHIN`.
    pub fn from_settings(
        function_timeout: Seconds,
        visibility: Seconds,
        max_receives: Seconds,
        confirm_within: Seconds,
    ) -> Self {
        Bounds {
            call: function_timeout.clamp(1, LONGEST_INVOCATION) + CLOCK_MARGIN,
            check: visibility.max(1) * max_receives.max(1) + crate::confirm::LONGEST_DELAY as Seconds + CLOCK_MARGIN,
            confirm_within,
        }
    }
}

/// The rules one target is stepped under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rules {
    pub calls: Calls,
    pub bounds: Bounds,
}

/// What a look at the target found (a request's lookup, a watch's, a check's).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "is")]
pub enum Seen {
    /// There, and not being terminated. `failed` names the latest termination the
    /// service shows as ended in failure (an MGN job, a Service Catalog record; for a
    /// WorkSpace, being in `ERROR`): a look after a call compares it with the look
    /// before, so a failure that was already there is never taken for a new one.
    Standing { failed: Option<Mark> },
    /// Being terminated (a WorkSpace `TERMINATING`, an MGN server in a running
    /// `TERMINATE` job, a product whose terminate record is in progress), by the job
    /// or record named when the service has one.
    Leaving { job: Option<String> },
    /// Gone (or `TERMINATED`).
    Gone,
}

/// A termination that ended in failure, as the service shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mark {
    /// Its MGN job or Service Catalog record; none for a WorkSpace in `ERROR`.
    pub job: Option<String>,
}

impl Seen {
    /// What shows that a termination went in since `before` was seen, and by which job:
    /// on its way out, gone, or a failure that was not there before.
    pub fn went_in_since(&self, before: &Seen) -> Option<Option<String>> {
        match (self, before) {
            (Seen::Leaving { job }, _) => Some(job.clone()),
            (Seen::Gone, _) => Some(None),
            (Seen::Standing { failed: Some(mark) }, Seen::Standing { failed }) if failed.as_ref() != Some(mark) => {
                Some(mark.job.clone())
            }
            (Seen::Standing { .. }, _) => None,
        }
    }
}

/// One target's item. `epoch` counts the accepted terminations (from 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub epoch: u32,
    pub phase: Phase,
    /// Every job and record ever decided: none is followed again.
    #[serde(default)]
    pub decided_jobs: Vec<String>,
    /// When it was last written (the writer's clock). A look older than that may not
    /// see what the write was about, so nothing is judged on it.
    #[serde(default)]
    pub changed_at: Option<Seconds>,
}

impl Default for Item {
    fn default() -> Self {
        Item { epoch: 0, phase: Phase::Idle, decided_jobs: Vec::new(), changed_at: None }
    }
}

impl Item {
    /// Whether a look that began at `now` is newer than the item's last write.
    pub fn older_than(&self, now: Seconds) -> bool {
        self.changed_at.is_none_or(|at| at < now)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "phase")]
pub enum Phase {
    /// Nothing under way (no item yet, or a call refused or never made).
    Idle,
    /// A terminate call is about to be made, or was made and its answer is not known.
    Calling(Calling),
    /// Accepted: epoch `epoch`'s checks are under way.
    Following(Following),
    /// Epoch `epoch` is decided; `published` once its audit event and record are out.
    Decided(Decided),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Calling {
    pub by: Requester,
    /// The invocation making it: the answer of another (a copy's) is not this call's.
    pub call: String,
    pub since: Seconds,
    /// The look before the call: what a later look is compared with.
    pub before: Seen,
    /// The caller still acts on it; false once it let go with its answer unknown.
    pub open: bool,
    /// A call of the same request came before this one and may have gone in: a refusal
    /// now (the target already going, or gone) proves nothing.
    #[serde(default)]
    pub renewed: bool,
}

impl Calling {
    /// Whether its caller may still be calling: nobody else may call, or decide what it did.
    pub fn held(&self, now: Seconds, rules: &Rules) -> bool {
        self.open && now < self.since + rules.bounds.call
    }

    /// Whether `asker` must wait for it. A caller that let go (no answer) frees the target
    /// at once only for its own request where the service takes a second call; anyone
    /// else, and an MGN server (whose jobs may show a moment late), waits out the bound,
    /// so that no look taken before the call went in can judge it.
    pub fn holds(&self, asker: &Requester, now: Seconds, rules: &Rules) -> bool {
        let own_retry = !self.open && self.by.same(asker) && rules.calls == Calls::Idempotent;
        !own_retry && now < self.since + rules.bounds.call
    }
}

/// The last check that went on: its attempt and its SQS message. Another message of
/// the same attempt is a copy, and ends without effect; the same message come back
/// (its invocation died after writing) sends the next check again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Acted {
    pub attempt: u32,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Following {
    pub epoch: u32,
    pub by: Requester,
    pub job: Option<String>,
    pub accepted_at: Seconds,
    pub last: Acted,
    /// When the next check should go on: past it by `Bounds::check`, the chain is lost.
    pub due: Seconds,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decided {
    pub epoch: u32,
    pub by: Requester,
    pub accepted_at: Seconds,
    pub decision: Decision,
    /// The message that decided: its own return publishes at once.
    pub maker: String,
    pub published: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    Confirmed,
    Failed,
    Unconfirmed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Failed => "failed",
            Verdict::Unconfirmed => "unconfirmed",
        }
    }
}

/// A decision, as every publication of it says it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: String,
    /// For `failed`: the service's error code.
    pub code: Option<String>,
    /// The job or record decided.
    pub job: Option<String>,
    pub at: Seconds,
}

/// What a check found when it asked the service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Terminated, or gone. The job or record, when the check found it.
    Done { job: Option<String> },
    /// The termination failed: the service's code and message.
    Failed { job: Option<String>, code: String, message: String },
    /// Still on its way (or no sign yet), and why it is thought so.
    Pending { why: String },
    /// The service could not be asked (throttled, unreachable).
    Unasked { why: String },
}

/// A check as it arrived: which epoch and attempt, in which SQS message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Arrived {
    pub epoch: u32,
    pub attempt: u32,
    pub message: String,
    pub by: Requester,
    pub job: Option<String>,
    pub accepted_at: Seconds,
    /// The message's last delivery (`MAX_RECEIVES`): nothing can wait for a next one.
    pub last_delivery: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    Accepted {
        job: Option<String>,
    },
    /// The service refused: nothing went in.
    Refused,
    /// No answer (a timeout, a 5xx): whether it went in is resolved by looking.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A request's lookup found the target (and its guards passed): it wants it gone.
    /// `call` names the invocation (its Lambda request id), so that two copies of one
    /// message are two calls.
    Request { by: Requester, call: String, seen: Seen, dry_run: bool },
    /// The answer to the call invocation `call` made after its `Calling` was written.
    Answer { by: Requester, call: String, answer: Answer },
    /// A check of an epoch arrived and asked the service.
    Check { check: Arrived, status: Status },
    /// A request's watch arrived (after every invocation of the request could have
    /// ended) and looked at the target.
    Watch { by: Requester, seen: Seen, last_delivery: bool },
    /// A decision's audit event and record are out.
    Published { epoch: u32 },
}

/// Why a target waits for a later delivery (`transient`, with this code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hold {
    /// Another request's call is in flight (WorkSpaces, Service Catalog).
    ChainDeciding,
    /// An MGN server is in another invocation's call.
    ClaimHeld,
    /// The last epoch is decided but not yet published by the message that decided it.
    DecisionUnpublished,
    /// A check that could not ask the service.
    CheckUnasked,
    /// This delivery's call got no answer: the next delivery looks before anything else.
    AnswerUnknown,
}

impl Hold {
    pub fn code(self) -> &'static str {
        match self {
            Hold::ChainDeciding => "ChainDeciding",
            Hold::ClaimHeld => "ClaimHeld",
            Hold::DecisionUnpublished => "DecisionUnpublished",
            Hold::CheckUnasked => "CheckUnasked",
            Hold::AnswerUnknown => "CallUnanswered",
        }
    }
}

/// A check to send: the epoch it follows, its attempt, after how long.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Next {
    pub epoch: u32,
    pub attempt: u32,
    pub delay: Seconds,
    pub by: Requester,
    pub job: Option<String>,
    pub accepted_at: Seconds,
    /// It may go out beside the write (an epoch's first check): a copy sent by a step
    /// whose write lost is absorbed when the first of them goes on. A check's next one
    /// waits for the write, or two concurrent copies of a check would each send one.
    pub beside: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Make the terminate call. Only once the write that put `Calling` went in, and the
    /// request's watch is out.
    Call,
    /// A dry run: the call that would be made.
    WouldCall,
    /// `transient`: the message comes back.
    Hold(Hold),
    /// Already being terminated by epoch `epoch` (by this same request when `mine`).
    Underway { epoch: u32, by: Requester, since: Seconds, mine: bool },
    /// Gone, with nothing of teardown's under way: `not_found`.
    Gone,
    /// Send this check: beside the write, or after it (`Next::beside`).
    Send(Next),
    /// Publish this decision (its audit event, and its record when it is not
    /// `confirmed`): only once the write that holds it went in; then step `Published`.
    Publish(Decided),
    /// A check of an epoch that is not the item's: ends without effect, and is counted.
    Dropped,
}

impl Effect {
    /// Whether it may only be done once the step's write went in. A check may go out
    /// beside the write: when the write loses, the copy ends without effect.
    pub fn waits_for_write(&self) -> bool {
        matches!(self, Effect::Call | Effect::Publish(_)) || matches!(self, Effect::Send(next) if !next.beside)
    }
}

/// What a step came to: the item to write (when it changed), and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Step {
    pub item: Item,
    pub effects: Vec<Effect>,
}

/// The `decisionId` of epoch `epoch` of the target `key` (`account#region#operation#id`):
/// the same for every publication of the decision, whoever publishes it.
pub fn decision_id(key: &str, epoch: u32) -> String {
    decision_id_of(&format!("{key}#{epoch}"))
}

/// A `decisionId` from what names a decision: 32 hex digits of its SHA-256.
pub fn decision_id_of(names: &str) -> String {
    let digest = Sha256::digest(names.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}
