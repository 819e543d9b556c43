//! One delivery on its way through the steps, and what the steps decide about it.

use serde_json::Value;

use super::app::{App, Home};
use crate::classify::ServiceError;
use crate::decode::{DecodeError, Delivery};
use crate::guard::Verdict;
use crate::outcome::Failure;
use crate::request::{Limits, Operation, Request, Scope, Target, ValidationError, validate};
use crate::services::places::Place;

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
    /// Where the targets are: `None` members are the function's own account or region.
    pub(super) place: Place,
    pub(super) resolution: Resolution,
    /// The provisioned product a name led to, when the lookup found one: what a
    /// replay names (docs/reference.md, "The dead-letter record").
    pub(super) found_product: Option<String>,
}

impl Work {
    /// Step 1: the request, or why it is refused. Pure.
    pub(super) fn validated(app: &App, mut delivery: Delivery, home: &Home) -> Work {
        let limits = Limits { max_targets: app.settings.max_targets };
        let request = match &delivery.decoded {
            Ok(value) => validate(value, limits).map_err(Refused::from).and_then(|r| allowed(app, home, r)),
            Err(error) => Err(Refused::from(error.clone())),
        };
        // A fan-out's child derives its tokens from the parent's delivery and its own
        // place, never from the message it came in: sent twice, it terminates once.
        if let Ok(Request { origin: Some(origin), account, region, .. }) = &request {
            delivery.token_seed =
                format!("origin:{origin}:{}:{}", account.as_deref().unwrap_or(""), region.as_deref().unwrap_or(""));
        }
        let place = match &request {
            Ok(r) => Place {
                // The function's own account is reached with its own credentials.
                account: r.account.clone().filter(|a| home.account.as_deref() != Some(a.as_str())),
                region: r.region.clone().filter(|g| home.region.as_deref() != Some(g.as_str())),
            },
            Err(_) => Place { account: None, region: None },
        };
        let operation = match (&request, &delivery.decoded) {
            (Ok(request), _) => Some(request.operation()),
            (Err(_), Ok(value)) => value.get("operation").and_then(Value::as_str).and_then(Operation::parse),
            (Err(_), Err(_)) => None,
        };
        // The kill switch outranks what the request says.
        let dry_run = app.settings.enforce_dry_run
            || request.as_ref().ok().and_then(|r| r.dry_run).unwrap_or(app.settings.dry_run);
        Work { delivery, operation, request, dry_run, place, resolution: Resolution::Nothing, found_product: None }
    }
}

/// docs/reference.md, "Accounts, regions and fan-out": an account not in `ALLOWED_ACCOUNTS` (besides the function's own) is
/// refused before any call; so is a fan-out with nowhere to send its children, or
/// more of them than `MAX_FANOUT`.
pub(super) fn allowed(app: &App, home: &Home, request: Request) -> Result<Request, Refused> {
    let settings = &app.settings;
    let ok = |account: &str| {
        home.account.as_deref() == Some(account) || settings.allowed_accounts.iter().any(|a| a == account)
    };
    let refuse = |field: String, message: String| {
        Err(Refused::from(ValidationError::with_code("AccountNotAllowed", field, message)))
    };
    if let Some(account) = &request.account
        && !ok(account)
    {
        return refuse(
            "account".into(),
            format!("{account} is not the function's own account nor in ALLOWED_ACCOUNTS"),
        );
    }
    // MGN's own `accountID` reaches another account too (an MGN multi-account
    // administrator terminates there): it is held to the same list.
    let mgn_account = match &request.target {
        Target::TargetInstances(Scope::Named(input)) => input.account_id.as_deref().map(|a| ("input.accountID", a)),
        Target::TargetInstances(Scope::Select(s)) => s.filters.account_id.as_deref().map(|a| ("select.accountID", a)),
        Target::Workspaces(_) | Target::ProvisionedProduct(_) => None,
    };
    if let Some((field, account)) = mgn_account
        && !ok(account)
    {
        return refuse(field.into(), format!("{account} is not the function's own account nor in ALLOWED_ACCOUNTS"));
    }
    if let Some(fan_out) = &request.fan_out {
        if let Some((i, account)) = fan_out.accounts.iter().enumerate().find(|(_, a)| !ok(a)) {
            return refuse(
                format!("accounts[{i}]"),
                format!("{account} is not the function's own account nor in ALLOWED_ACCOUNTS"),
            );
        }
        let pairs = fan_out.accounts.len().max(1) * fan_out.regions.len().max(1);
        if pairs > settings.max_fanout {
            return Err(Refused::from(ValidationError::with_code(
                "TooManyChildren",
                "accounts",
                format!("expands to {pairs} (account, region) pairs, more than MAX_FANOUT ({})", settings.max_fanout),
            )));
        }
        if !app.request_queue.is_set() {
            return Err(Refused::from(ValidationError::with_code(
                "NoRequestQueue",
                "accounts",
                "a fan-out sends its children to REQUEST_QUEUE_URL, which is not set",
            )));
        }
    }
    Ok(request)
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
