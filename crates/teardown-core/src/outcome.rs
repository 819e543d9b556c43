//! docs/reference.md, "What each request ends as": what each request, and each target in it, ends as.

use serde::Serialize;

use crate::decode::Origin;
use crate::request::Operation;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Terminated,
    /// docs/reference.md, "Notice": tagged with the date it may go, in place of terminating it.
    Noticed,
    NotFound,
    DryRun,
    Protected,
    Skipped,
    Invalid,
    Rejected,
    Transient,
    /// docs/reference.md, "Follow-up, audit events and metrics": the follow-up found the termination done.
    Confirmed,
    /// docs/reference.md, "Follow-up, audit events and metrics": the service says the termination failed.
    Failed,
    /// docs/reference.md, "Follow-up, audit events and metrics": `CONFIRM_WITHIN` passed without either.
    Unconfirmed,
    /// docs/reference.md, "Accounts, regions and fan-out": a fan-out whose children were all sent.
    FannedOut,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Terminated => "terminated",
            Outcome::Noticed => "noticed",
            Outcome::NotFound => "not_found",
            Outcome::DryRun => "dry_run",
            Outcome::Protected => "protected",
            Outcome::Skipped => "skipped",
            Outcome::Invalid => "invalid",
            Outcome::Rejected => "rejected",
            Outcome::Transient => "transient",
            Outcome::Confirmed => "confirmed",
            Outcome::Failed => "failed",
            Outcome::Unconfirmed => "unconfirmed",
            Outcome::FannedOut => "fanned_out",
        }
    }

    /// Failures that a person must see: they get a dead-letter record.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Invalid | Outcome::Rejected | Outcome::Transient | Outcome::Failed | Outcome::Unconfirmed
        )
    }

    /// A follow-up's final decision (docs/reference.md, "Follow-up").
    pub fn is_final_decision(self) -> bool {
        matches!(self, Outcome::Confirmed | Outcome::Failed | Outcome::Unconfirmed)
    }

    /// The outcome of a request is the weightiest of its targets': one target that
    /// may still succeed on redelivery makes the whole message worth redelivering;
    /// then failures; then what was done; a target left alone by a guard weighs least.
    fn severity(self) -> u8 {
        match self {
            Outcome::FannedOut => 0,
            Outcome::Protected => 0,
            Outcome::Skipped => 1,
            Outcome::NotFound => 2,
            Outcome::Confirmed => 3,
            Outcome::Terminated => 4,
            Outcome::Noticed => 5,
            Outcome::DryRun => 6,
            Outcome::Unconfirmed => 7,
            Outcome::Failed => 8,
            Outcome::Rejected => 9,
            Outcome::Invalid => 10,
            Outcome::Transient => 11,
        }
    }

    pub fn worst(outcomes: impl IntoIterator<Item = Outcome>) -> Option<Outcome> {
        outcomes.into_iter().max_by_key(|o| o.severity())
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as the service (or teardown) named it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure { code: code.into(), message: message.into() }
    }
}

/// What happened to one target.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetResult {
    pub id: String,
    pub outcome: Outcome,
    /// Why: the filters it matched, or the guard that stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// MGN: the termination job that covers this target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Service Catalog: the record of the termination, and its status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_status: Option<String>,
    /// A notice (docs/reference.md, "Notice"): the expiry it set, or in a dry run would set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// WorkSpaces: the user it belongs to, so a notice can reach its owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// A follow-up found it still on its way and will look again: not decided yet,
    /// so not audited again.
    #[serde(skip)]
    pub pending: bool,
    /// Already on its way out because of an earlier call (not accepted now).
    #[serde(skip)]
    pub underway: bool,
    /// When a follow-up's final decision was made (RFC 3339), as its audit event says:
    /// the same decision published again after a crash says the same.
    #[serde(skip)]
    pub decided_at: Option<String>,
}

impl TargetResult {
    pub fn new(id: impl Into<String>, outcome: Outcome) -> Self {
        TargetResult {
            id: id.into(),
            outcome,
            reason: None,
            error: None,
            job_id: None,
            record_id: None,
            record_status: None,
            expires_at: None,
            user_name: None,
            pending: false,
            underway: false,
            decided_at: None,
        }
    }

    pub fn because(id: impl Into<String>, outcome: Outcome, reason: impl Into<String>) -> Self {
        TargetResult { reason: Some(reason.into()), ..TargetResult::new(id, outcome) }
    }

    pub fn failed(id: impl Into<String>, outcome: Outcome, error: Failure) -> Self {
        TargetResult { error: Some(error), ..TargetResult::new(id, outcome) }
    }
}

/// What the follow-up of a request's terminated targets (docs/reference.md, "Follow-up, audit events and metrics") came to.
#[derive(Clone, Debug, PartialEq)]
pub enum FollowUp {
    NotNeeded,
    Sent,
    /// The check could not be sent: the request is redelivered, so it is not lost.
    Failed(String),
}

/// What a dead-letter record, if one was owed, came to.
#[derive(Clone, Debug, PartialEq)]
pub enum DeadLetterStatus {
    NotNeeded,
    Published,
    Failed(String),
}

/// A target's decision written in the state table (its item, the chain and the check
/// message that wrote it), to be marked announced once it is published: until then no
/// new termination of the target starts, so a check that comes back after its
/// invocation died still finds its decision there, to publish it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announced {
    pub item: String,
    pub chain: String,
    pub message: String,
}

/// The end of one request (or of one payload that was not a request).
#[derive(Clone, Debug)]
pub struct RequestResult {
    /// With a state table: the items whose decision this result makes known, marked
    /// announced once its record and audit events are out.
    pub announce: Vec<Announced>,
    pub origin: Origin,
    pub operation: Option<Operation>,
    pub outcome: Outcome,
    pub dry_run: bool,
    pub targets: Vec<TargetResult>,
    pub error: Option<Failure>,
    pub dead_letter: DeadLetterStatus,
    pub follow_up: FollowUp,
    /// A follow-up check rather than a request: not counted as a request.
    pub is_check: bool,
    /// Targets of a check that ended without effect: another chain owns them, or their
    /// end was already decided (a copy of the check).
    pub checks_dropped: usize,
    /// The source audit events name when it is not `origin` (a check names the
    /// request it follows up).
    pub audit_source: Option<serde_json::Value>,
    /// Where the targets are (docs/reference.md, "Accounts, regions and fan-out"), when known.
    pub account: Option<String>,
    pub region: Option<String>,
    /// A fan-out's children, each `{"account": …, "region": …}`.
    pub children: Vec<serde_json::Value>,
    /// The delivery's token seed: the `decisionId` of every decision but a
    /// termination's end depends on it (docs/reference.md, "Follow-up, audit events and metrics").
    pub decision_seed: String,
}

impl RequestResult {
    /// A request's end with nothing settled yet: no targets, no error, no record or
    /// follow-up owed, no place named.
    pub fn new(origin: Origin, operation: Option<Operation>, outcome: Outcome, dry_run: bool) -> Self {
        RequestResult {
            announce: Vec::new(),
            origin,
            operation,
            outcome,
            dry_run,
            targets: Vec::new(),
            error: None,
            dead_letter: DeadLetterStatus::NotNeeded,
            follow_up: FollowUp::NotNeeded,
            is_check: false,
            checks_dropped: 0,
            audit_source: None,
            account: None,
            region: None,
            children: Vec::new(),
            decision_seed: String::new(),
        }
    }

    /// Whether SQS must deliver the message again: it may still succeed, and no
    /// record settled it; or its record could not be published, so it must not be lost.
    pub fn redeliver(&self) -> bool {
        (self.outcome == Outcome::Transient && self.dead_letter == DeadLetterStatus::NotNeeded)
            || matches!(self.dead_letter, DeadLetterStatus::Failed(_))
            || matches!(self.follow_up, FollowUp::Failed(_))
    }
}
