//! Every error code teardown itself writes into a dead-letter record, a report or an
//! audit event, with what it means. Operators filter records by code, so this list is
//! the one place a code is explained: the table in docs/reference.md ("Error codes")
//! is checked against it, and a test fails when the code uses a code missing here.
//!
//! Besides these, a record carries the service's own code when the service refused
//! (`AccessDeniedException`, `ValidationException`, `ResourceInUseException`, …, or
//! `HTTP<status>` when it named none), and in a `failed` follow-up the service's own
//! error: a WorkSpace's `ErrorCode`, a Service Catalog record's `RecordErrors` code.

use crate::outcome::Outcome;

/// One code: its name, the outcome it comes with, and what a person should read into it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Code {
    pub code: &'static str,
    /// The outcome it comes with; `None`: whichever the targets' worst is.
    pub outcome: Option<Outcome>,
    pub meaning: &'static str,
}

const fn code(code: &'static str, outcome: Outcome, meaning: &'static str) -> Code {
    Code { code, outcome: Some(outcome), meaning }
}

use Outcome::{Failed, Invalid, Rejected, Transient, Unconfirmed};

/// The table of docs/reference.md, "Error codes", as it must read.
pub fn markdown_table() -> String {
    let mut out = String::from("| code | outcome | meaning |\n|---|---|---|\n");
    for c in CODES {
        let outcome = c.outcome.map_or("the worst of its targets'", |o| o.as_str());
        out.push_str(&format!("| `{}` | {} | {} |\n", c.code, outcome, c.meaning));
    }
    out
}

/// Every code, grouped by outcome.
pub const CODES: &[Code] = &[
    // Refused before any call: fix the request (or the setting), then send it again.
    code(
        "BadInput",
        Invalid,
        "the payload is not a request at all (not JSON, not an object, not a known event shape); the message names the field",
    ),
    code(
        "InvalidRequest",
        Invalid,
        "the request breaks a rule of the reference: a member unknown, missing or malformed; the message names the field",
    ),
    code(
        "TooManyTargets",
        Invalid,
        "the request names, or its selection matched, more than MAX_TARGETS targets: nothing was terminated",
    ),
    code(
        "AccountNotAllowed",
        Invalid,
        "account, accounts or MGN's accountID names an account that is neither the function's own nor in ALLOWED_ACCOUNTS",
    ),
    code("TooManyChildren", Invalid, "a fan-out expands to more (account, region) pairs than MAX_FANOUT"),
    code(
        "NoRequestQueue",
        Invalid,
        "a fan-out, but REQUEST_QUEUE_URL is not set: there is nowhere to send its children",
    ),
    code(
        "InvalidCheck",
        Invalid,
        "a follow-up check teardown cannot read as its own (its shape, or an acceptedAt that is not a time or lies in the future)",
    ),
    code(
        "UntrustedSender",
        Invalid,
        "a follow-up check or a fan-out child that the function itself did not send over SQS: refused, nothing called",
    ),
    // The service, or AWS, said no: retrying will not change its mind.
    code("NoSpokeAccess", Rejected, "the request names another account or region, and this function reaches none"),
    code("ArnMismatch", Rejected, "the ARN given as ProvisionedProductName names no provisioned product here"),
    code("ConstructionFailure", Rejected, "the call could not be built: a value the service's model refuses"),
    // Not decided yet: retried (SQS redelivers; elsewhere the record carries a retryRequest).
    code("Timeout", Transient, "a call timed out"),
    code("DispatchFailure", Transient, "a call could not be sent (connection refused or reset, DNS)"),
    code("ResponseError", Transient, "an answer could not be read (cut short, malformed)"),
    code(
        "UnreadableResponse",
        Transient,
        "the service accepted the call but its answer could not be parsed: asked again",
    ),
    code("Unknown", Transient, "an SDK failure of a kind teardown does not know: retried rather than dropped"),
    code(
        "DeadlineNear",
        Transient,
        "the invocation's deadline was near: the work was not started, or was abandoned, and left for redelivery",
    ),
    code(
        "InternalError",
        Transient,
        "teardown failed while calling the service (a contained panic): left for redelivery",
    ),
    code(
        "HeldForOrder",
        Transient,
        "a FIFO message not worked because an earlier message of its group is redelivered first",
    ),
    code(
        "TagsUnknown",
        Transient,
        "a target's tags, and so its protection, could not be read (a search index that lags, DescribeTags that does not know it)",
    ),
    code("AnswersDisagree", Transient, "DescribeWorkspaces answered one WorkSpace twice, in different states"),
    code("PagingDidNotEnd", Transient, "a paged answer kept paging past what was asked for"),
    code("NoJob", Transient, "TerminateTargetInstances answered without a job"),
    code("NotInJob", Transient, "the MGN job does not list this server: looked up again on the next delivery"),
    code("JobParticipantsUnknown", Transient, "a TERMINATE job is running and does not list its source servers yet"),
    code("ArnUnknown", Transient, "a notice's MGN source server came without an ARN, which TagResource names"),
    code("NoCredentials", Transient, "AssumeRole of the spoke role answered without credentials"),
    code(
        "ClaimHeld",
        Transient,
        "another invocation is terminating this MGN server now (its claim in the state table holds), or a follow-up chain has yet to decide its last termination: not called now",
    ),
    code(
        "ChainDeciding",
        Transient,
        "a follow-up chain has yet to decide the target's last termination (it failed, or finished, and its check is on its way), or another request's call for it has yet to be answered: not called until that is settled",
    ),
    code(
        "DeliveredTwice",
        Transient,
        "a check handed out twice at once by SQS (the same receive count) whose other copy decided or went on first: this copy comes back, unless the other settles the message",
    ),
    code(
        "DecisionUnpublished",
        Transient,
        "another message of the check's chain decided and has not published it yet: this one comes back, and publishes it as it was made on its last delivery or once that invocation must be over (16 minutes: Lambda's longest timeout and a margin)",
    ),
    code("NoUserId", Transient, "GetCallerIdentity answered without a UserId: whose checks to honour is unknown"),
    // A follow-up's end.
    code(
        "Unconfirmed",
        Unconfirmed,
        "not confirmed within CONFIRM_WITHIN seconds of acceptance, or the check could not go on",
    ),
    code("ERROR", Failed, "the WorkSpace went to ERROR instead of terminating, and named no error of its own"),
    code(
        "LaunchStatus<status>",
        Failed,
        "the MGN job completed and the server's launchStatus is not TERMINATED (LaunchStatusFAILED, …)",
    ),
    code("RecordFailed", Failed, "the Service Catalog record FAILED and named no error of its own"),
    code(
        "<WorkSpace state>",
        Failed,
        "the WorkSpace is in this state (AVAILABLE, STOPPED, …), not TERMINATING, after its termination was accepted",
    ),
    code("Failed", Failed, "the termination failed, and no target named its own error"),
    // A request whose targets failed in different ways.
    Code {
        code: "MultipleErrors",
        outcome: None,
        meaning: "targets of one request failed with different codes: each is in failedTargets with its own",
    },
];

/// The entry for `name`, when teardown writes it.
pub fn find(name: &str) -> Option<&'static Code> {
    CODES.iter().find(|c| c.code == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_with_a_meaning() {
        for (i, c) in CODES.iter().enumerate() {
            assert!(!c.meaning.is_empty(), "{}", c.code);
            assert!(CODES[..i].iter().all(|other| other.code != c.code), "{} twice", c.code);
        }
        assert_eq!(find("UntrustedSender").and_then(|c| c.outcome), Some(Outcome::Invalid));
    }
}
