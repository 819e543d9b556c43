//! One delivery on its way through the steps, and what the steps decide about it.

use serde_json::Value;

use super::app::App;
use crate::classify::ServiceError;
use crate::decode::{DecodeError, Delivery};
use crate::guard::Verdict;
use crate::outcome::Failure;
use crate::request::{Limits, Operation, Request, ValidationError, validate};

/// Why a delivery is not a request that can be worked.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl Refused {
    /// The error of its dead-letter record.
    pub fn failure(&self) -> Failure {
        match self {
            Refused::Decode(e) => Failure::new(DecodeError::CODE, e.to_string()),
            Refused::Invalid(e) => Failure::new(e.code, e.to_string()),
        }
    }
}

/// One delivery on its way through the steps: what each step needs, and what the
/// steps before it decided.
pub(crate) struct Work {
    pub(super) delivery: Delivery,
    /// The operation the payload named, when it named a known one (valid or not).
    pub(super) operation: Option<Operation>,
    pub(super) request: Result<Request, Refused>,
    pub(super) dry_run: bool,
    pub(super) resolution: Resolution,
}

impl Work {
    /// Step 1: the request, or why it is refused. Pure.
    pub(super) fn validated(app: &App, delivery: Delivery) -> Work {
        let limits = Limits { max_targets: app.settings.max_targets };
        let request = match &delivery.decoded {
            Ok(value) => validate(value, limits).map_err(Refused::from),
            Err(error) => Err(Refused::from(error.clone())),
        };
        let operation = match (&request, &delivery.decoded) {
            (Ok(request), _) => Some(request.operation()),
            (Err(_), Ok(value)) => value.get("operation").and_then(Value::as_str).and_then(Operation::parse),
            (Err(_), Err(_)) => None,
        };
        // The kill switch outranks what the request says.
        let dry_run = app.settings.enforce_dry_run
            || request.as_ref().ok().and_then(|r| r.dry_run).unwrap_or(app.settings.dry_run);
        Work { delivery, operation, request, dry_run, resolution: Resolution::Nothing }
    }
}

/// What a request's lookup came to.
#[derive(Debug)]
pub(super) enum Resolution {
    /// Nothing to resolve: the request was refused.
    Nothing,
    /// Each target, in order, with its verdict (targets a selection did not match are left out).
    Judged(Vec<(String, Verdict)>),
    /// The lookup failed; every named target takes this end.
    Failed(ServiceError),
    /// A selection matched more targets than MAX_TARGETS: nothing is terminated.
    TooMany(usize),
}

/// MGN source servers this invocation has had accepted, with their job.
pub(super) type SentServers = std::collections::HashMap<String, String>;
