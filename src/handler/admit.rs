//! Step 1: what each delivery is, decided once. A delivery is refused (its end is
//! known now: untrusted, not a request, against the rules, not allowed), a request
//! to resolve and terminate, a fan-out to send on, or a follow-up check of the
//! function's own. Each later step takes only its own kind, so none re-checks what
//! this one decided.

use serde_json::Value;

use super::app::{App, Home, Invocation};
use super::settle::{Settled, record};
use super::trust::Vetted;
use crate::confirm::{Check, confirm_member};
use crate::decode::{DecodeError, Delivery};
use crate::outcome::{Failure, Outcome, RequestResult};
use crate::request::{FanOut, Limits, Operation, Request, Scope, Target, ValidationError, validate};
use crate::services::places::Place;

/// What a delivery is.
pub(super) enum Admitted {
    /// Refused before any call: its end, and its record.
    Refused(Settled),
    /// A request to resolve, execute and settle.
    Request(Accepted),
    /// A fan-out: settled by sending its children.
    FanOut(Accepted, FanOut),
    /// A follow-up check the function itself sent, with the request it follows.
    Check(Delivery, Check, Request),
}

/// A request admitted for work: valid, allowed, with its effective dry run and place.
pub(crate) struct Accepted {
    pub(super) delivery: Delivery,
    pub(super) request: Request,
    /// The request's own `dryRun`, or `DRY_RUN`; `ENFORCE_DRY_RUN` outranks both.
    pub(super) dry_run: bool,
    /// Where the targets are: `None` members are the function's own account or region.
    pub(super) place: Place,
}

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

/// Each delivery, in order, as what it is.
pub(super) async fn admit(ctx: &Invocation<'_>, deliveries: Vec<Delivery>) -> Vec<Admitted> {
    super::trust::vet(ctx, deliveries)
        .await
        .into_iter()
        .map(|vetted| match vetted {
            Vetted::Trusted(delivery) => admitted(ctx, delivery),
            Vetted::Refused(end) => Admitted::Refused(end),
        })
        .collect()
}

fn admitted(ctx: &Invocation<'_>, mut delivery: Delivery) -> Admitted {
    let app = ctx.app;
    if let Some(confirm) = delivery.decoded.as_ref().ok().and_then(confirm_member) {
        return match Check::parse(confirm) {
            // The function writes acceptedAt from its own clock before it sends the
            // check, so a time still to come is not its own: honoured, it would re-send
            // itself for ever.
            Ok(check) if check.accepted().is_some_and(|accepted| accepted > ctx.now) => {
                let why = format!("confirm.acceptedAt: {} lies in the future", check.accepted_at);
                Admitted::Refused(refused_check(app, delivery, Failure::new("InvalidCheck", why)))
            }
            // The check asks where the request's targets are: its account and region,
            // held to the same rules as any request's.
            Ok(check) => match validate(&check.request, Limits { max_targets: usize::MAX })
                .map_err(Refused::from)
                .and_then(|r| allowed(app, &ctx.home, r))
            {
                Ok(request) => Admitted::Check(delivery, check, request),
                Err(refused) => Admitted::Refused(refused_check(app, delivery, refused.failure())),
            },
            Err(error) => Admitted::Refused(refused_check(app, delivery, Failure::new(error.code, error.to_string()))),
        };
    }
    let limits = Limits { max_targets: app.settings.max_targets };
    let validated = match &delivery.decoded {
        Ok(value) => validate(value, limits).map_err(Refused::from).and_then(|r| allowed(app, &ctx.home, r)),
        Err(error) => Err(Refused::from(error.clone())),
    };
    let request = match validated {
        Ok(request) => request,
        Err(refused) => {
            let operation = delivery
                .decoded
                .as_ref()
                .ok()
                .and_then(|v| v.get("operation"))
                .and_then(Value::as_str)
                .and_then(Operation::parse);
            // What it asked is unknown: the settings say whether this was a dry run.
            let dry_run = app.settings.dry_run_for(None);
            return Admitted::Refused(super::settle::refused(app, delivery, operation, dry_run, refused.failure()));
        }
    };
    // A fan-out's child derives its tokens from the parent's delivery and its own
    // place, never from the message it came in: sent twice, it terminates once.
    if let Some(origin) = &request.origin {
        delivery.token_seed = format!(
            "origin:{origin}:{}:{}",
            request.account.as_deref().unwrap_or(""),
            request.region.as_deref().unwrap_or("")
        );
    }
    let place = ctx.home.place_of(&request);
    let dry_run = app.settings.dry_run_for(request.dry_run);
    match request.fan_out.clone() {
        Some(fan_out) => Admitted::FanOut(Accepted { delivery, request, dry_run, place }, fan_out),
        None => Admitted::Request(Accepted { delivery, request, dry_run, place }),
    }
}

/// A check teardown cannot read: it is not teardown's own any more. Dead-lettered
/// as invalid, never retried.
fn refused_check(app: &App, delivery: Delivery, failure: Failure) -> Settled {
    let record = record(app, &delivery, None, Outcome::Invalid, failure.clone(), Vec::new(), None);
    let result = RequestResult {
        error: Some(failure),
        is_check: true,
        ..RequestResult::new(delivery.origin, None, Outcome::Invalid, false)
    };
    Settled::new(result, Some(record), Vec::new())
}

/// Accounts and regions: an account not in `ALLOWED_ACCOUNTS` (besides the function's
/// own) is refused before any call; so is a fan-out with nowhere to send its
/// children, or more of them than `MAX_FANOUT`.
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
