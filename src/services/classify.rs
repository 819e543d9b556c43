//! Turns an SDK error into `transient` (worth retrying) or `rejected` (the service
//! said no; retrying will not change its mind), from the error's variant, code
//! and HTTP status — never from its message text.

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::outcome::{Failure, Outcome};

pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> (Outcome, Failure)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let context = || DisplayErrorContext(error).to_string();
    match error {
        SdkError::TimeoutError(_) => (Outcome::Transient, Failure::new("Timeout", context())),
        SdkError::DispatchFailure(_) => (Outcome::Transient, Failure::new("DispatchFailure", context())),
        // A response that could not be read (truncated, malformed) says nothing
        // about whether the service would accept the call: try again.
        SdkError::ResponseError(_) => (Outcome::Transient, Failure::new("ResponseError", context())),
        SdkError::ConstructionFailure(_) => (Outcome::Rejected, Failure::new("ConstructionFailure", context())),
        SdkError::ServiceError(service) if service.raw().status().is_success() => {
            // The SDK reports a 2xx body it cannot parse as a service error. The
            // service accepted the call; only its answer was lost, so ask again.
            (Outcome::Transient, Failure::new("UnreadableResponse", context()))
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
            (outcome, Failure::new(code, message))
        }
        // SdkError is non-exhaustive: a kind this code does not know is retried
        // rather than dropped.
        _ => (Outcome::Transient, Failure::new("Unknown", context())),
    }
}
