//! docs/reference.md, "Who may send what": who may start a chain. A follow-up check (`{"confirm": …}`) or a
//! fan-out child (a request carrying `origin`) speaks for an earlier decision of the
//! function itself: a check turns ids into `confirmed` events and re-sends itself; a
//! child has the function assume a spoke role. So each is honoured only as the
//! function sent it: from SQS, sent by the function's own principal. Anything else
//! claiming to be one is `invalid` (`UntrustedSender`), with a record and no call.

use serde_json::Value;

use super::app::{App, Invocation};
use super::check::cannot_check;
use super::settle::{Settled, effective_dry_run, record, without_origin};
use crate::classify::ServiceError;
use crate::confirm::{Check, confirm_member};
use crate::decode::{Delivery, Origin};
use crate::identity::same_principal;
use crate::outcome::{Failure, Outcome, RequestResult};
use crate::request::Operation;

pub(super) const UNTRUSTED: &str = "UntrustedSender";

/// What a delivery claims to be besides a plain request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    Check,
    Child,
}

impl Link {
    fn of(value: &Value) -> Option<Link> {
        if confirm_member(value).is_some() {
            return Some(Link::Check);
        }
        value.as_object().filter(|map| map.contains_key("origin")).map(|_| Link::Child)
    }

    fn field(self) -> &'static str {
        match self {
            Link::Check => "confirm",
            Link::Child => "origin",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Link::Check => "a follow-up check",
            Link::Child => "a fan-out child",
        }
    }
}

/// A delivery that may go on, or its end.
// One per delivery, moved once: boxing either variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Vetted {
    Trusted(Delivery),
    /// Refused (`UntrustedSender`), or left for redelivery when whose it is cannot be
    /// learnt now.
    Refused(Settled),
}

/// Each delivery, or its end when it claims a link of a chain it cannot prove.
/// The function's own principal is asked for only when an SQS record claims one.
pub(super) async fn vet(ctx: &Invocation<'_>, deliveries: Vec<Delivery>) -> Vec<Vetted> {
    let app = ctx.app;
    let claim = |d: &Delivery| d.decoded.as_ref().ok().and_then(Link::of);
    let must_ask = deliveries.iter().any(|d| {
        claim(d).is_some() && matches!(d.origin, Origin::Sqs { .. }) && d.sender_id.is_some() && d.wrapped_in.is_none()
    });
    // Bounded like every call: a slow STS must not time the whole batch out.
    let own = match must_ask {
        true => Some(ctx.bounded(app.identity.user_id()).await),
        false => None,
    };
    deliveries
        .into_iter()
        .map(|delivery| {
            let Some(link) = claim(&delivery) else { return Vetted::Trusted(delivery) };
            let sender = match (&delivery.origin, delivery.sender_id.as_deref(), delivery.wrapped_in) {
                // The function never wraps its own messages; the SenderId of a wrapped
                // body names the service that delivered it, not who wrote it.
                (Origin::Sqs { .. }, _, Some(wrapper)) => {
                    let why = format!(
                        "{}: {} is honoured only as the function sends it, never inside {wrapper}",
                        link.field(),
                        link.what()
                    );
                    return Vetted::Refused(refused(app, delivery, link, why));
                }
                (Origin::Sqs { .. }, Some(sender), None) => sender,
                (Origin::Sqs { .. }, None, None) => {
                    let why = format!("{}: {} is honoured only from the function itself, and this SQS record names no sender (attributes.SenderId)", link.field(), link.what());
                    return Vetted::Refused(refused(app, delivery, link, why));
                }
                (Origin::EventBridge { .. } | Origin::Direct { .. }, _, _) => {
                    let why = format!(
                        "{}: only teardown sets it, on its own request queue; an EventBridge event or a direct invocation cannot carry {}",
                        link.field(),
                        link.what()
                    );
                    return Vetted::Refused(refused(app, delivery, link, why));
                }
            };
            match &own {
                Some(Ok(Some(user_id))) if same_principal(sender, user_id) => Vetted::Trusted(delivery),
                Some(Ok(Some(_))) => {
                    let why = format!(
                        "{}: {} is honoured only when the function itself sent it; attributes.SenderId {sender:?} is another principal",
                        link.field(),
                        link.what()
                    );
                    Vetted::Refused(refused(app, delivery, link, why))
                }
                Some(Ok(None)) | None => {
                    let why = format!(
                        "{}: {} is honoured only when the function itself sent it, and this function cannot learn its own principal",
                        link.field(),
                        link.what()
                    );
                    Vetted::Refused(refused(app, delivery, link, why))
                }
                Some(Err(error)) => Vetted::Refused(unknown(app, delivery, link, error.clone())),
            }
        })
        .collect()
}

fn operation(value: &Value, link: Link) -> Option<Operation> {
    let named = match link {
        Link::Check => value.pointer("/confirm/operation"),
        Link::Child => value.get("operation"),
    };
    named.and_then(Value::as_str).and_then(Operation::parse)
}

/// Refused: `invalid`, its record, and no call.
fn refused(app: &App, delivery: Delivery, link: Link, why: String) -> Settled {
    let failure = Failure::new(UNTRUSTED, why);
    let operation = delivery.decoded.as_ref().ok().and_then(|v| operation(v, link));
    let record = record(app, &delivery, operation, Outcome::Invalid, failure.clone(), Vec::new(), None);
    let result = RequestResult {
        error: Some(failure),
        is_check: link == Link::Check,
        ..RequestResult::new(delivery.origin, operation, Outcome::Invalid, false)
    };
    Settled::new(result, Some(record), Vec::new())
}

/// The function's own principal could not be learnt (STS throttled or unreachable):
/// the message is neither trusted nor refused, but redelivered. On its last delivery
/// it is settled as a message that could not be worked: a check's targets end
/// `unconfirmed`, each with its decision; a child gets a record whose retry is the
/// request without its `origin`, as the dry run it was if it was one.
fn unknown(app: &App, delivery: Delivery, link: Link, error: ServiceError) -> Settled {
    let check = match (link, delivery.decoded.as_ref().ok().and_then(confirm_member).map(Check::parse)) {
        (Link::Check, Some(Ok(check))) => Some(check),
        _ => None,
    };
    if let Some(check) = check {
        return cannot_check(app, delivery, &check, error);
    }
    let failure = error.failure;
    let operation = delivery.decoded.as_ref().ok().and_then(|v| operation(v, link));
    let asked = delivery.decoded.as_ref().ok().and_then(|v| v.get("dryRun")).and_then(Value::as_bool);
    let dry_run = app.settings.dry_run_for(asked);
    let last = app.last_delivery(&delivery.origin);
    let outcome = if link == Link::Check && last { Outcome::Unconfirmed } else { Outcome::Transient };
    let record = last.then(|| {
        let retry = (link == Link::Child).then(|| effective_dry_run(without_origin(&delivery.raw), dry_run));
        record(app, &delivery, operation, outcome, failure.clone(), Vec::new(), retry)
    });
    let result = RequestResult {
        error: Some(failure),
        is_check: link == Link::Check,
        ..RequestResult::new(delivery.origin, operation, outcome, dry_run)
    };
    Settled::new(result, record, Vec::new())
}
