//! The Lambda function: settings, clients, and the runtime loop. Run anywhere else
//! (no `AWS_LAMBDA_RUNTIME_API`), the same binary is the operator's command line.

use std::sync::Arc;

use tokio::sync::OnceCell;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use teardown::handler::{App, handle};
use teardown::settings::Settings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Under Lambda it is the function and nothing else: Lambda starts it with no
    // arguments and its Runtime API set. Given a command, it is always the command
    // line, wherever it runs: `teardown plan` can never become a live function.
    if std::env::args_os().len() > 1 || std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        std::process::exit(teardown::cli::run(std::env::args_os()).await);
    }
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
    if settings.state_table.is_none() {
        tracing::warn!(
            "STATE_TABLE is not set: follow-ups are at least once (a target found on its way out is followed up only on a redelivery, and a check delivered twice can decide twice)"
        );
    }
    if settings.request_queue_url.is_none() {
        tracing::warn!(
            "REQUEST_QUEUE_URL is not set: accepted terminations will not be followed up to confirm them, and fan-outs are refused"
        );
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
    teardown::wiring::app(settings).await
}
