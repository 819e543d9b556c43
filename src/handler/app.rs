//! What every step of an invocation shares: the clients and settings, built once
//! per container, and the bound on time that every call runs within.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use lambda_runtime::Context;
use time::OffsetDateTime;

use crate::audit::AuditBus;
use crate::classify::ServiceError;
use crate::deadletter::DeadLetterQueue;
use crate::outcome::Failure;
use crate::request_queue::RequestQueue;
use crate::services::Services;
use crate::services::places::Place;
use crate::settings::Settings;

/// Where the function itself runs: its own account, region and partition.
#[derive(Clone, Debug, Default)]
pub struct Home {
    pub account: Option<String>,
    pub region: Option<String>,
    pub partition: String,
}

impl Home {
    /// An account and region as reports, records and events name them: the function's
    /// own where none was given.
    pub fn or_own(&self, account: Option<String>, region: Option<String>) -> (Option<String>, Option<String>) {
        (account.or_else(|| self.account.clone()), region.or_else(|| self.region.clone()))
    }

    /// Where `request`'s targets are, as the services are reached: `None` members are
    /// the function's own account or region, reached with its own credentials.
    pub fn place_of(&self, request: &crate::request::Request) -> Place {
        Place {
            account: request.account.clone().filter(|a| self.account.as_deref() != Some(a.as_str())),
            region: request.region.clone().filter(|r| self.region.as_deref() != Some(r.as_str())),
        }
    }

    /// From the invoked function's ARN (`arn:aws:lambda:us-east-1:123456789012:function:…`)
    /// and the function's region: no call needed.
    pub fn of(context: &Context, region: Option<&str>) -> Home {
        let parts: Vec<&str> = context.invoked_function_arn.split(':').collect();
        let field = |i: usize| parts.get(i).filter(|p| !p.is_empty()).map(|p| (*p).to_owned());
        Home {
            account: field(4).filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())),
            region: region.map(str::to_owned).or_else(|| field(3)),
            partition: field(1).unwrap_or_else(|| "aws".to_owned()),
        }
    }
}

/// How many API calls (or dead-letter publishes) one invocation has in flight at once.
pub(super) const CONCURRENCY: usize = 16;

/// Kept back from the invocation's deadline when publishing dead-letter records:
/// enough to write the answer.
pub(super) const PUBLISH_RESERVE: Duration = Duration::from_millis(250);

/// Everything an invocation needs, built once per container.
pub struct App {
    pub services: Services,
    pub dead_letters: DeadLetterQueue,
    pub settings: Settings,
    /// The wall clock for `failedAt`; tests fix it.
    pub clock: fn() -> OffsetDateTime,
    /// Kept back from the invocation's deadline to publish dead-letter records and
    /// answer: work still running then is abandoned as `transient`, not lost.
    pub deadline_reserve: Duration,
    /// Where follow-up checks go (docs/reference.md, "Follow-up, audit events and metrics"); none by default.
    pub request_queue: RequestQueue,
    /// Where audit events go (docs/reference.md, "Follow-up, audit events and metrics"); none by default.
    pub audit: AuditBus,
    /// The function's own region, named in audit events.
    pub region: Option<String>,
    /// The services of other accounts and regions; none: only the function's own.
    pub places: Option<crate::services::places::Places>,
    /// Whether to write EMF metric lines (the function does; the command line does not).
    pub metrics: bool,
    /// The state table (docs/reference.md, "State across messages"); none by default.
    pub state: crate::state::StateTable,
    /// The function's own principal: the only sender of checks and fan-out children
    /// it honours (docs/reference.md, "Who may send what"). None by default: then it honours none.
    pub identity: crate::identity::Identity,
    /// Set by the first invocation of the container (the `ColdStart` metric).
    pub(super) warm: std::sync::atomic::AtomicBool,
}

impl App {
    pub fn new(services: Services, dead_letters: DeadLetterQueue, settings: Settings) -> Self {
        App {
            services,
            dead_letters,
            settings,
            clock: OffsetDateTime::now_utc,
            deadline_reserve: Duration::from_millis(1500),
            request_queue: RequestQueue::none(),
            audit: AuditBus::none(),
            region: None,
            places: None,
            metrics: true,
            identity: crate::identity::Identity::none(),
            state: crate::state::StateTable::none(),
            warm: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Follow-ups go to `queue`.
    pub fn with_request_queue(self, queue: RequestQueue) -> Self {
        App { request_queue: queue, ..self }
    }

    /// Whether SQS delivers this message for the last time (`MAX_RECEIVES`): then it
    /// is settled with a record, since SQS would move the bare body on.
    pub fn last_delivery(&self, origin: &crate::decode::Origin) -> bool {
        match (self.settings.max_receives, origin.receive_count()) {
            (Some(max), Some(count)) => count >= max,
            _ => false,
        }
    }

    /// Other accounts and regions are reached through `places`.
    pub fn with_places(self, places: crate::services::places::Places) -> Self {
        App { places: Some(places), ..self }
    }

    /// The services of `place`: the function's own, or another account's or region's.
    pub async fn services_for(
        &self,
        place: &crate::services::places::Place,
        home: &Home,
        request_id: &str,
    ) -> Result<Services, crate::classify::ServiceError> {
        if place.account.is_none() && place.region.is_none() {
            return Ok(self.services.clone());
        }
        let Some(places) = &self.places else {
            return Err(crate::classify::ServiceError::new(
                crate::outcome::Outcome::Rejected,
                "NoSpokeAccess",
                "this function reaches no other account or region",
            ));
        };
        let region = place.region.as_deref().or(home.region.as_deref()).unwrap_or("us-east-1");
        let services = places.services(place.account.as_deref(), region, &home.partition, request_id).await?;
        Ok((*services).clone())
    }

    /// Terminations are kept across messages in `state`.
    pub fn with_state(self, state: crate::state::StateTable) -> Self {
        App { state, ..self }
    }

    /// Checks and fan-out children are honoured when `identity`'s principal sent them.
    pub fn with_identity(self, identity: crate::identity::Identity) -> Self {
        App { identity, ..self }
    }

    /// Audit events go to `bus`.
    pub fn with_audit(self, bus: AuditBus) -> Self {
        App { audit: bus, ..self }
    }
}

/// One invocation's bounds, built once when it starts: where the function runs, the
/// request id (the spoke role's session name), the clock, and the two deadlines (for
/// the work, and for publishing what the work left behind).
pub(super) struct Invocation<'a> {
    pub app: &'a App,
    pub home: Home,
    pub request_id: &'a str,
    /// This run of the invocation, unique even across Lambda's retries of one request
    /// id: what holds an MGN claim and names a follow-up chain.
    pub holder: String,
    pub now: OffsetDateTime,
    pub deadline: Option<tokio::time::Instant>,
    pub publish_deadline: Option<tokio::time::Instant>,
}

impl<'a> Invocation<'a> {
    pub fn new(app: &'a App, context: &'a Context) -> Self {
        Invocation {
            app,
            home: Home::of(context, app.region.as_deref()),
            request_id: &context.request_id,
            holder: format!("{}:{}", context.request_id, run_nonce()),
            now: (app.clock)(),
            deadline: work_deadline(context, app.deadline_reserve),
            publish_deadline: work_deadline(context, PUBLISH_RESERVE),
        }
    }

    /// Service work within the invocation's deadline: past it, or on a panic, the
    /// work ends `transient` like a throttled call (see [`within_deadline`]).
    pub async fn bounded<T>(&self, work: impl Future<Output = Result<T, ServiceError>>) -> Result<T, ServiceError> {
        bounded(self.deadline, work).await
    }

    /// The services of `place`, reached (for another account, AssumeRole) within the deadline.
    pub async fn services(&self, place: &Place) -> Result<Services, ServiceError> {
        self.bounded(self.app.services_for(place, &self.home, self.request_id)).await
    }
}

/// Unique to this run within the container's life, and across containers (a clock
/// reading at nanoseconds, and a counter).
fn run_nonce() -> String {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!("{:x}{run:x}", nanos % (1i128 << 64))
}

pub(super) fn work_deadline(context: &Context, reserve: Duration) -> Option<tokio::time::Instant> {
    // A zero deadline means none was given (a unit test, or a local runtime).
    if context.deadline == 0 {
        return None;
    }
    let now_ms = u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let remaining = Duration::from_millis(context.deadline.saturating_sub(now_ms));
    // An absurd deadline header must not panic: one beyond the clock's range is none.
    tokio::time::Instant::now().checked_add(remaining.saturating_sub(reserve))
}

/// [`within_deadline`] for work that fails as a service does: the deadline's or a
/// panic's failure is a `transient` [`ServiceError`] like a throttled call's.
pub(super) async fn bounded<T>(
    deadline: Option<tokio::time::Instant>,
    work: impl Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    within_deadline(deadline, work)
        .await
        .unwrap_or_else(|failure| Err(ServiceError { outcome: crate::outcome::Outcome::Transient, failure }))
}

/// Runs one piece of service work within the invocation's deadline, so that neither
/// the deadline nor a panic can lose track of it: past the deadline nothing new starts (a call begun now could
/// be cut off mid-flight, leaving no one to know whether it happened), work still
/// running at the deadline is abandoned, and a panic is contained. Either way the
/// caller gets a `transient` failure to account for.
pub(super) async fn within_deadline<T>(
    deadline: Option<tokio::time::Instant>,
    work: impl Future<Output = T>,
) -> Result<T, Failure> {
    const NEAR: &str = "the invocation's deadline was near; left for redelivery";
    if deadline.is_some_and(|at| tokio::time::Instant::now() >= at) {
        return Err(Failure::new("DeadlineNear", NEAR));
    }
    let work = AssertUnwindSafe(work).catch_unwind();
    let done = match deadline {
        Some(at) => tokio::time::timeout_at(at, work).await.map_err(|_| Failure::new("DeadlineNear", NEAR))?,
        None => work.await,
    };
    done.map_err(|_| {
        tracing::error!("a service call panicked; its targets are left for redelivery");
        Failure::new("InternalError", "teardown failed while calling the service; left for redelivery")
    })
}
