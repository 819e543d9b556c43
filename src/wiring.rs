//! Builds the function's clients and adapters from the environment: shared by the
//! Lambda runtime loop and the operator's command line, so both see AWS the same way.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

use crate::audit::AuditBus;
use crate::deadletter::DeadLetterQueue;
use crate::handler::App;
use crate::identity::Identity;
use crate::request_queue::RequestQueue;
use crate::services::Services;
use crate::services::places::Places;
use crate::settings::Settings;
use crate::state::StateTable;

/// Whether teardown paces each throttled operation itself (docs/evidence.md,
/// "Throttled is not frozen"): unless `AWS_RETRY_MODE` chooses the SDK's own mode.
pub fn pacing() -> bool {
    std::env::var_os("AWS_RETRY_MODE").is_none()
}

/// The AWS configuration: the SDK's standard retries, with teardown's own pace per
/// throttled operation (`pacing`), unless `AWS_RETRY_MODE` says otherwise
/// (`adaptive`: the SDK's client-side rate limiter instead).
pub async fn aws_config() -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts());
    if pacing() {
        let attempts = std::env::var("AWS_MAX_ATTEMPTS").ok().and_then(|n| n.parse().ok()).unwrap_or(3);
        loader = loader.retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(attempts));
    }
    loader.load().await
}

/// Everything an invocation needs, from `settings` and the environment.
pub async fn app(settings: Settings) -> App {
    let config = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dead_letters = DeadLetterQueue::new(sqs.clone(), settings.dlq_url.clone());
    let requests = RequestQueue::new(sqs, settings.request_queue_url.clone());
    let audit = AuditBus::new(aws_sdk_eventbridge::Client::new(&config), settings.audit_bus.clone());
    let pacing = pacing();
    let services = Services::in_partition(&config, settings.max_calls_in_flight, None, pacing);
    let places = Places::new(
        config.clone(),
        settings.spoke_role_name.clone(),
        settings.external_id.clone(),
        settings.max_calls_in_flight,
    )
    .with_pacing(pacing);
    let identity = Identity::new(aws_sdk_sts::Client::new(&config));
    let state =
        StateTable::new(aws_sdk_dynamodb::Client::new(&config), settings.state_table.clone(), settings.confirm_within);
    let mut app = App::new(services, dead_letters, settings)
        .with_request_queue(requests)
        .with_audit(audit)
        .with_places(places)
        .with_identity(identity)
        .with_state(state);
    app.region = config.region().map(|r| r.to_string());
    app
}

/// Bounds on every AWS call. A hung attempt is cut at 10 s so that its retry still
/// fits in the invocation; the invocation's own deadline bounds everything else.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(25))
        .build()
}
