//! docs/reference.md, "What each request ends as": what an AWS error means for the target it was about. An SDK error
//! becomes `transient` (worth retrying) or `rejected` (the service said no; retrying
//! will not change its mind), from the error's variant, code and HTTP status —
//! never from its message text. Used by every service and by the dead-letter queue.

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::outcome::{Failure, Outcome, TargetResult};

/// An AWS call (or a lookup made of several) that failed, and what that means.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{outcome}: {}: {}", failure.code, failure.message)]
pub struct ServiceError {
    pub outcome: Outcome,
    pub failure: Failure,
}

impl ServiceError {
    pub fn new(outcome: Outcome, code: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError { outcome, failure: Failure::new(code, message) }
    }

    pub fn transient(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Outcome::Transient, code, message)
    }

    /// The same end for every target the call or lookup was for.
    pub fn for_each(&self, ids: &[String]) -> Vec<TargetResult> {
        ids.iter().map(|id| TargetResult::failed(id, self.outcome, self.failure.clone())).collect()
    }
}

pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let context = || DisplayErrorContext(error).to_string();
    match error {
        SdkError::TimeoutError(_) => ServiceError::transient("Timeout", context()),
        SdkError::DispatchFailure(_) => ServiceError::transient("DispatchFailure", context()),
        // A response that could not be read (truncated, malformed) says nothing
        // about whether the service would accept the call: try again.
        SdkError::ResponseError(_) => ServiceError::transient("ResponseError", context()),
        SdkError::ConstructionFailure(_) => ServiceError::new(Outcome::Rejected, "ConstructionFailure", context()),
        SdkError::ServiceError(service) if service.raw().status().is_success() => {
            // The SDK reports a 2xx body it cannot parse as a service error. The
            // service accepted the call; only its answer was lost, so ask again.
            ServiceError::transient("UnreadableResponse", context())
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().map(str::to_owned).unwrap_or_else(|| format!("HTTP{status}"));
            let message = service.err().message().map(str::to_owned).unwrap_or_else(context);
            let transient = THROTTLING_ERRORS.contains(&code.as_str())
                || TRANSIENT_ERRORS.contains(&code.as_str())
                || status == 429
                || status >= 500;
            let outcome = if transient { Outcome::Transient } else { Outcome::Rejected };
            ServiceError::new(outcome, code, message)
        }
        // SdkError is non-exhaustive: a kind this code does not know is retried
        // rather than dropped.
        _ => ServiceError::transient("Unknown", context()),
    }
}
