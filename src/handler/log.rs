//! The one log line per settled request, with the ids a person searches logs by.

use teardown_core::outcome::{Outcome, RequestResult};
use teardown_core::report::{dry_run_block, tally};

/// One line per request outcome, with the ids a person searches logs by.
pub(super) fn settled(result: &RequestResult, request_id: &str) {
    let counts = tally(result.targets.iter().map(|t| t.outcome));
    let count = |o: Outcome| counts.get(o.as_str()).copied().unwrap_or(0);
    let message_id = result.origin.message_id();
    let error = result.error.as_ref().map(|e| format!("{}: {}", e.code, e.message));
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                request_id,
                message_id,
                operation = result.operation.map(|o| o.as_str()),
                outcome = result.outcome.as_str(),
                dry_run = result.dry_run,
                targets = result.targets.len(),
                terminated = count(Outcome::Terminated),
                not_found = count(Outcome::NotFound),
                protected = count(Outcome::Protected),
                skipped = count(Outcome::Skipped),
                rejected = count(Outcome::Rejected),
                transient = count(Outcome::Transient),
                error,
                "request settled"
            )
        };
    }
    if result.dry_run && !result.targets.is_empty() {
        tracing::info!(request_id, message_id, "{}", dry_run_block(result));
    }
    match result.outcome {
        Outcome::Terminated
        | Outcome::Noticed
        | Outcome::FannedOut
        | Outcome::Confirmed
        | Outcome::NotFound
        | Outcome::DryRun
        | Outcome::Protected
        | Outcome::Skipped => line!(info),
        Outcome::Transient => line!(warn),
        Outcome::Invalid | Outcome::Rejected | Outcome::Failed | Outcome::Unconfirmed => line!(error),
    }
}
