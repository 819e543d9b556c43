//! One module per AWS service, each a thin struct over its SDK client: the seam
//! tests fill (with `aws-smithy-mocks`, or an HTTP fake via endpoint settings).
//! Nothing here knows where a request came from or where failures go.

pub mod catalog;
pub mod mgn;
pub mod pacing;
pub mod places;
pub mod workspaces;

pub use catalog::Catalog;
pub use mgn::Mgn;
pub use workspaces::Workspaces;

/// The three service handlers, built once per container.
#[derive(Clone, Debug)]
pub struct Services {
    pub workspaces: Workspaces,
    pub mgn: Mgn,
    pub catalog: Catalog,
}

impl Services {
    pub fn from_conf(config: &aws_config::SdkConfig, calls_in_flight: usize) -> Self {
        Services::in_partition(config, calls_in_flight, None, false)
    }

    /// Clients whose retry budget and client-side rate limit are their own
    /// (`partition`), not shared with other accounts' clients of the same service and
    /// region: one account's throttling must not slow another's work. With `pacing`,
    /// each client paces each of its operations once AWS throttles it (`pacing`).
    pub fn in_partition(
        config: &aws_config::SdkConfig,
        calls_in_flight: usize,
        partition: Option<&str>,
        pacing: bool,
    ) -> Self {
        use aws_smithy_runtime::client::retries::RetryPartition;
        use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
        let part = |service: &str| partition.map(|p| RetryPartition::new(format!("{service}-{p}")));
        let (ws_pace, mgn_pace, sc_pace) = (Pacer::default(), Pacer::default(), Pacer::default());
        let observe = |pacer: &Pacer| pacing.then(|| SharedInterceptor::new(pacer.observer()));
        let workspaces = {
            let mut b = aws_sdk_workspaces::config::Builder::from(config);
            b.set_retry_partition(part("workspaces"));
            b.set_interceptors(observe(&ws_pace));
            b.build()
        };
        let tagging = {
            let mut b = aws_sdk_resourcegroupstagging::config::Builder::from(config);
            b.set_retry_partition(part("tagging"));
            b.set_interceptors(observe(&ws_pace));
            b.build()
        };
        let mgn = {
            let mut b = aws_sdk_mgn::config::Builder::from(config);
            b.set_retry_partition(part("mgn"));
            b.set_interceptors(observe(&mgn_pace));
            b.build()
        };
        let catalog = {
            let mut b = aws_sdk_servicecatalog::config::Builder::from(config);
            b.set_retry_partition(part("servicecatalog"));
            b.set_interceptors(observe(&sc_pace));
            b.build()
        };
        Services {
            workspaces: Workspaces::new(aws_sdk_workspaces::Client::from_conf(workspaces))
                .with_tagging(aws_sdk_resourcegroupstagging::Client::from_conf(tagging))
                .with_gate(Gate::new(calls_in_flight).with_pacer(ws_pace)),
            mgn: Mgn::new(aws_sdk_mgn::Client::from_conf(mgn))
                .with_gate(Gate::new(calls_in_flight).with_pacer(mgn_pace)),
            catalog: Catalog::new(aws_sdk_servicecatalog::Client::from_conf(catalog))
                .with_gate(Gate::new(calls_in_flight).with_pacer(sc_pace)),
        }
    }
}

pub use pacing::Pacer;

/// A lookup that failed, classified, so the targets it was for can be retried or
/// reported like a failed terminate call.
pub use crate::classify::ServiceError as LookupError;

pub(crate) fn to_time(t: &aws_smithy_types::DateTime) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t.secs()).ok()
}

/// The most calls in flight to one service unless the `MAX_CALLS_IN_FLIGHT` setting says.
/// A batch of 10 requests naming 5 WorkSpaces each needs 52 lookups (50 `DescribeTags`,
/// one WorkSpace a call, and 2 `DescribeWorkspaces`): at 64 they are one round of
/// latency, not four. It caps the burst; the rate an account sustains is found per
/// operation once the service throttles (`pacing`).
pub const DEFAULT_CALLS_IN_FLIGHT: usize = 64;

/// Bounds the calls in flight to one service in one place (account and region)
/// across a whole invocation (a container serves one invocation at a time).
/// Requests are resolved concurrently and each may fan out into many lookups:
/// without one bound shared by all of them, the calls in flight would be
/// requests × lookups, with no limit but the batch.
#[derive(Clone, Debug)]
pub struct Gate {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    capacity: usize,
    /// The pace of each operation once it was throttled (never, unless the client's
    /// attempts are observed: `Services::in_partition` with pacing).
    pacer: Pacer,
}

impl Gate {
    pub fn new(calls_in_flight: usize) -> Self {
        let capacity = calls_in_flight.max(1);
        Gate { slots: std::sync::Arc::new(tokio::sync::Semaphore::new(capacity)), capacity, pacer: Pacer::default() }
    }

    pub fn with_pacer(self, pacer: Pacer) -> Self {
        Gate { pacer, ..self }
    }

    /// How many calls may be in flight at once: lookups ask for no more than this
    /// side by side, so no lower bound of their own hides the gate's.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Runs one call of `operation` once its pace allows and a slot is free. The pace
    /// is waited for first, so a paced operation never holds slots another needs.
    pub async fn pass<T>(&self, operation: &str, call: impl std::future::Future<Output = T>) -> T {
        self.pacer.wait(operation).await;
        // The semaphore is never closed, so acquiring cannot fail; were it to, the
        // call runs unbounded rather than not at all.
        let _permit = self.slots.acquire().await.ok();
        call.await
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new(DEFAULT_CALLS_IN_FLIGHT)
    }
}
