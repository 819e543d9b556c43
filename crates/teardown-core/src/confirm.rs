//! docs/reference.md, "Follow-up, audit events and metrics": the follow-up of an accepted termination. Pure: the message a
//! check travels in, when it is due again, and how a service's answer ends a target.
//!
//! All three terminate APIs are asynchronous, so `terminated` only means accepted.
//! The check is a message on the request queue, `{"confirm": {...}}`, sent with a
//! delay; when it comes back, teardown asks the service once and either decides
//! each target (`confirmed`, `failed`) or sends the check again, later, until
//! `CONFIRM_WITHIN` has passed (`unconfirmed`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::outcome::Failure;
use crate::request::{Operation, ValidationError};

/// The first check comes 30 s after acceptance; each later one waits twice as long,
/// up to SQS's longest delay.
pub const FIRST_DELAY: u64 = 30;
pub const LONGEST_DELAY: u64 = 900;
/// A watch's attempt: before the first check.
pub const WATCH_ATTEMPT: u32 = 0;

/// One check: the targets of one request that were accepted together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Check {
    pub operation: String,
    pub targets: Vec<Followed>,
    /// When the service accepted the termination (RFC 3339).
    pub accepted_at: String,
    /// 1 for the first check; 0 for a watch (`Check::is_watch`).
    pub attempt: u32,
    /// Where the request came from, for the records and audit events.
    pub source: Value,
    /// The request for exactly these targets, in the contract's spelling: the
    /// `retryRequest` of a failed target is cut from it.
    pub request: Value,
    /// With a state table: the chain this check belongs to. A check whose chain no
    /// longer owns its target ends without effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

/// A target being followed, with what the service gave to follow it by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Followed {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
}

/// What the service says of a followed target.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Terminated (or gone).
    Done,
    /// The termination failed: the service's own error.
    Failed(Failure),
    /// Still on its way, and why it is thought so.
    Pending(String),
    /// No sign yet that a termination was ever accepted: a WorkSpace still as it was,
    /// no terminate job lists the server, the product's last record is no termination.
    /// A check waits on it as on `Pending`; a watch (`Check::is_watch`) takes it for a
    /// call that never went in.
    Unseen(String),
}

/// How a check ends a target.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Confirmed,
    Failed(Failure),
    Unconfirmed(String),
    /// Checked again after this many seconds.
    Again {
        delay: u64,
        why: String,
    },
}

impl Check {
    /// `{"confirm": {...}}`: the message body.
    pub fn message(&self) -> Value {
        serde_json::json!({ "confirm": self })
    }

    /// Reads a check from the member `confirm` of a message body.
    pub fn parse(confirm: &Value) -> Result<Check, ValidationError> {
        let check: Check = serde_json::from_value(confirm.clone())
            .map_err(|e| ValidationError::with_code("InvalidCheck", "confirm", e.to_string()))?;
        if Operation::parse(&check.operation).is_none() {
            return Err(ValidationError::with_code("InvalidCheck", "confirm.operation", "is not a teardown operation"));
        }
        if check.targets.is_empty() {
            return Err(ValidationError::with_code("InvalidCheck", "confirm.targets", "is empty"));
        }
        if check.accepted().is_none() {
            return Err(ValidationError::with_code("InvalidCheck", "confirm.acceptedAt", "is not an RFC 3339 time"));
        }
        Ok(check)
    }

    pub fn operation(&self) -> Option<Operation> {
        Operation::parse(&self.operation)
    }

    pub fn accepted(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.accepted_at, &Rfc3339).ok()
    }

    /// A watch: sent before the calls, with the longest delay, for the targets a request
    /// was about to call for. When it comes back, each target whose intent is still there
    /// (the invocation died, or the call's answer never came) and that shows a sign of a
    /// termination, or whose chain was written but never checked, is followed up by it;
    /// anything else is left alone, without effect.
    pub fn is_watch(&self) -> bool {
        self.attempt == WATCH_ATTEMPT
    }

    /// The same check, for `targets`, one attempt later.
    pub fn next(&self, targets: Vec<Followed>) -> Check {
        Check { targets, attempt: self.attempt + 1, ..self.clone() }
    }
}

/// Keeps each check message well inside SQS's 256 KiB.
pub const MAX_MESSAGE_BYTES: usize = 200 * 1024;

/// Cuts `check` into checks that each fit one message, each with the request for
/// exactly its own targets (`request_for`).
pub fn split(check: Check, request_for: impl Fn(&[String]) -> Value) -> Vec<Check> {
    let mut out = Vec::new();
    let mut part: Vec<Followed> = Vec::new();
    let mut bytes = 0;
    // Each target travels twice (in `targets`, and in the request); a generous
    // estimate per target keeps every part under the limit.
    let overhead = serde_json::to_string(&Check { targets: Vec::new(), request: Value::Null, ..check.clone() })
        .map_or(0, |s| s.len());
    for target in check.targets.iter().cloned() {
        let size = 2 * serde_json::to_string(&target).map_or(0, |s| s.len()) + 64;
        if !part.is_empty() && overhead + bytes + size > MAX_MESSAGE_BYTES {
            out.push(std::mem::take(&mut part));
            bytes = 0;
        }
        bytes += size;
        part.push(target);
    }
    if !part.is_empty() {
        out.push(part);
    }
    out.into_iter()
        .map(|targets| {
            let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
            Check { request: request_for(&ids), targets, ..check.clone() }
        })
        .collect()
}

/// Whether `value` is a check rather than a request: an object whose single member is `confirm`.
pub fn confirm_member(value: &Value) -> Option<&Value> {
    let map = value.as_object()?;
    (map.len() == 1).then(|| map.get("confirm")).flatten()
}

/// The delay before attempt `attempt` (1-based): 30 s, doubling, at most 900 s.
pub fn delay(attempt: u32) -> u64 {
    let doublings = attempt.saturating_sub(1).min(10);
    (FIRST_DELAY << doublings).min(LONGEST_DELAY)
}

/// The delay before attempt `attempt` when `left` seconds remain before the deadline:
/// never past it, so the last check comes when it is due.
pub fn delay_within(attempt: u32, left: i64) -> u64 {
    delay(attempt).min(u64::try_from(left).unwrap_or(0)).max(1)
}

/// Why a termination is `unconfirmed` once `CONFIRM_WITHIN` has passed.
pub fn not_confirmed_within(confirm_within: u64, why: &str) -> String {
    format!("not confirmed within {confirm_within} s of acceptance: {why}")
}

/// How a check ends one target, given what the service said.
pub fn decide(status: Status, check: &Check, now: OffsetDateTime, confirm_within: u64) -> Decision {
    match status {
        Status::Done => Decision::Confirmed,
        Status::Failed(failure) => Decision::Failed(failure),
        Status::Pending(why) | Status::Unseen(why) => {
            let deadline = check.accepted().map(|at| at + time::Duration::seconds(confirm_within as i64));
            let left = deadline.map_or(0, |d| (d - now).whole_seconds());
            if left <= 0 {
                return Decision::Unconfirmed(not_confirmed_within(confirm_within, &why));
            }
            let delay = delay_within(check.attempt + 1, left);
            Decision::Again { delay, why }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn check(attempt: u32) -> Check {
        Check {
            operation: "TerminateWorkspaces".into(),
            targets: vec![Followed { id: "ws-aaaaaaaa".into(), job_id: None, record_id: None }],
            accepted_at: "2026-11-24T10:00:00Z".into(),
            attempt,
            source: json!({"kind": "sqs", "messageId": "m-1"}),
            request: json!({"operation": "TerminateWorkspaces"}),
            chain: None,
        }
    }

    #[test]
    fn delays_start_at_30_seconds_double_and_stop_at_900() {
        let delays: Vec<u64> = (1..=8).map(delay).collect();
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 900, 900, 900]);
        assert_eq!(delay(u32::MAX), 900);
    }

    #[test]
    fn a_pending_target_is_checked_again_never_past_the_deadline_then_unconfirmed() {
        let pending = || Status::Pending("TERMINATING".into());
        let at = |s: OffsetDateTime| decide(pending(), &check(1), s, 300);
        assert_eq!(at(datetime!(2026-11-24 10:00:30 UTC)), Decision::Again { delay: 60, why: "TERMINATING".into() });
        assert_eq!(at(datetime!(2026-11-24 10:04:50 UTC)), Decision::Again { delay: 10, why: "TERMINATING".into() });
        assert!(matches!(at(datetime!(2026-11-24 10:05:00 UTC)), Decision::Unconfirmed(_)));
        assert_eq!(decide(Status::Done, &check(9), datetime!(2026-11-25 0:00 UTC), 300), Decision::Confirmed);
    }

    #[test]
    fn a_check_reads_back_what_it_wrote_and_refuses_anything_else() {
        let written = check(2).message();
        let read = Check::parse(confirm_member(&written).unwrap()).unwrap();
        assert_eq!(read, check(2));
        assert_eq!(read.next(read.targets.clone()).attempt, 3);
        for bad in [
            json!({}),
            json!({"operation": "Nope", "targets": [], "acceptedAt": "x", "attempt": 1, "source": {}, "request": {}}),
        ] {
            assert!(Check::parse(&bad).is_err(), "{bad}");
        }
        assert!(confirm_member(&json!({"confirm": {}, "operation": "x"})).is_none());
    }

    #[test]
    fn a_check_too_large_for_one_message_is_cut_into_messages_that_fit() {
        let targets: Vec<Followed> = (0..10_000)
            .map(|i| Followed { id: format!("s-{i:017}"), job_id: Some(format!("mgnjob-{i:017}")), record_id: None })
            .collect();
        let big = Check { targets, ..check(1) };
        let request_for =
            |ids: &[String]| json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ids}});
        let parts = split(big, request_for);
        assert!(parts.len() > 1);
        let mut all = 0;
        for part in &parts {
            assert!(part.message().to_string().len() <= 256 * 1024, "{} bytes", part.message().to_string().len());
            assert_eq!(part.request["input"]["sourceServerIDs"].as_array().unwrap().len(), part.targets.len());
            all += part.targets.len();
        }
        assert_eq!(all, 10_000, "every target in exactly one part");
        assert_eq!(split(check(1), request_for).len(), 1);
    }
}
