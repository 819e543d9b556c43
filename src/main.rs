//! The Lambda function: settings, clients, and the runtime loop. Nothing else.

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use tokio::sync::OnceCell;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use teardown::audit::AuditBus;
use teardown::deadletter::DeadLetterQueue;
use teardown::handler::{App, handle};
use teardown::request_queue::RequestQueue;
use teardown::services::Services;
use teardown::services::places::Places;
use teardown::settings::Settings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();

    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            tracing::error!("{e}");
            return Err(e.into());
        }
    };
    if settings.dlq_url.is_none() {
        tracing::warn!("DLQ_URL is not set: failed requests will only be logged, not dead-lettered");
    }
    if settings.request_queue_url.is_none() {
        tracing::warn!("REQUEST_QUEUE_URL is not set: accepted terminations will not be followed up to confirm them");
    }

    // No shutdown hook: it would cost a registration round trip at every cold start
    // (Lambda sends SIGTERM only to runtimes with an extension), and there is nothing
    // for it to do. Every log and metric line is written whole, newline included, to a
    // line-buffered stdout, so a line written is a line out when the process goes.

    // The clients are built on the first invocation, not before the first poll:
    // start-up stays at the runtime's floor, and an invocation that needs no AWS
    // call (an empty batch, a refused request) does not wait for them either way.
    let app: Arc<OnceCell<App>> = Arc::new(OnceCell::new());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (app, settings) = (Arc::clone(&app), settings.clone());
        async move {
            let app = app.get_or_init(|| build(settings)).await;
            handle(app, event).await
        }
    }))
    .await
}

async fn build(settings: Settings) -> App {
    // Adaptive retries: one invocation can send a burst of calls to one service (a
    // selection's tag lookups, a batch's checks); the client then paces itself when
    // the service throttles instead of retrying into the throttle.
    // AWS_RETRY_MODE, when set, still decides, as aws-config honours it.
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts());
    if std::env::var_os("AWS_RETRY_MODE").is_none() {
        let attempts = std::env::var("AWS_MAX_ATTEMPTS").ok().and_then(|n| n.parse().ok()).unwrap_or(3);
        loader = loader.retry_config(aws_config::retry::RetryConfig::adaptive().with_max_attempts(attempts));
    }
    let config = loader.load().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dead_letters = DeadLetterQueue::new(sqs.clone(), settings.dlq_url.clone());
    let requests = RequestQueue::new(sqs, settings.request_queue_url.clone());
    let audit = AuditBus::new(aws_sdk_eventbridge::Client::new(&config), settings.audit_bus.clone());
    let services = Services::from_conf(&config, settings.max_calls_in_flight);
    let places = Places::new(
        config.clone(),
        settings.spoke_role_name.clone(),
        settings.external_id.clone(),
        settings.max_calls_in_flight,
    );
    let mut app =
        App::new(services, dead_letters, settings).with_request_queue(requests).with_audit(audit).with_places(places);
    app.region = config.region().map(|r| r.to_string());
    app
}

/// Bounds on every AWS call. Retries are adaptive (3 attempts, backoff with jitter,
/// and client-side pacing once a service throttles), which `AWS_MAX_ATTEMPTS` and
/// `AWS_RETRY_MODE` can change. A hung attempt is cut at 10 s so that its retry still fits in the invocation;
/// the invocation's own deadline bounds everything else.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(25))
        .build()
}
