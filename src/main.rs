//! The Lambda function: settings, clients, and the runtime loop. Nothing else.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use teardown::deadletter::DeadLetterQueue;
use teardown::handler::{App, handle};
use teardown::services::Services;
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

    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dead_letters = DeadLetterQueue::new(aws_sdk_sqs::Client::new(&config), settings.dlq_url.clone());
    let app = Arc::new(App::new(Services::from_conf(&config), dead_letters, settings));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = Arc::clone(&app);
        async move { handle(&app, event).await }
    }))
    .await
}
