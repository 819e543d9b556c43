//! The operator's side: the release binary, run from a laptop with the usual AWS
//! credentials, profile and region, is a command line. Under Lambda
//! (`AWS_LAMBDA_RUNTIME_API` set) it never gets here.
//!
//! Exit codes scripts can use: 0 done, 1 some items failed, 2 usage.

use std::ffi::OsString;
use std::io::Read;

use clap::{Parser, Subcommand};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

use crate::handler::handle;
use crate::request::{Limits, validate};
use crate::settings::Settings;

pub const DONE: i32 = 0;
pub const SOME_FAILED: i32 = 1;
pub const USAGE: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "teardown",
    version,
    about = "Terminates WorkSpaces, MGN target instances and Service Catalog provisioned products, safely.",
    long_about = "Run under AWS Lambda it is the function. Run anywhere else it is the operator's tool: \
                  plan a request, send one, redrive dead-letter records. It uses the usual AWS credentials, \
                  profile and region, and the function's settings (DRY_RUN, MAX_TARGETS, PROTECT_TAG, …)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a request as a dry run where the credentials point: the same lookups,
    /// guards and report as the function. It never terminates anything.
    Plan {
        /// The request (JSON), or - for standard input.
        file: String,
        /// Print the report itself, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate a request here (the function's own rules) and send it to the queue.
    Send {
        /// The request (JSON), or - for standard input.
        file: String,
        /// The request queue's URL.
        #[arg(long)]
        queue: String,
    },
    /// Send the retry requests of dead-letter records back to the request queue,
    /// deleting each record only once its retry was sent.
    Redrive {
        /// The dead-letter queue's URL.
        #[arg(long)]
        dlq: String,
        /// The request queue's URL.
        #[arg(long)]
        queue: String,
        /// Only records with these outcomes (comma-separated: rejected,transient,…).
        #[arg(long, value_delimiter = ',')]
        outcome: Vec<String>,
        /// List what would be sent; send and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Where each target's termination stands, from the state table: when it was
    /// accepted and by which request, its follow-up chain, and its final decision.
    /// Exits 1 when one is failed or unconfirmed.
    Status {
        /// Target ids: ws-…, s-…, or a provisioned product's id (or the name it was named by).
        #[arg(required = true)]
        ids: Vec<String>,
        /// The state table (default: STATE_TABLE).
        #[arg(long)]
        table: Option<String>,
        /// The targets' account (default: the credentials' own).
        #[arg(long)]
        account: Option<String>,
        /// The targets' region (default: the configured region).
        #[arg(long)]
        region: Option<String>,
        /// The operation, when an id's shape does not say (ws- and s- do).
        #[arg(long)]
        operation: Option<String>,
        /// Print JSON, one object per target.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line; returns the exit code.
pub async fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { USAGE } else { DONE };
            let _ = e.print();
            return code;
        }
    };
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("teardown: {e}");
            return USAGE;
        }
    };
    match cli.command {
        Command::Plan { file, json } => plan(settings, &file, json).await,
        Command::Send { file, queue } => send(settings, &file, &queue).await,
        Command::Redrive { dlq, queue, outcome, dry_run } => redrive(&dlq, &queue, &outcome, dry_run).await,
        Command::Status { ids, table, account, region, operation, json } => {
            let Some(table) = table.or(settings.state_table.clone()) else {
                eprintln!("teardown status: no table: give --table or set STATE_TABLE");
                return USAGE;
            };
            status(&settings, &table, &ids, account, region, operation.as_deref(), json).await
        }
    }
}

fn read_request(file: &str) -> Result<Value, String> {
    let text = if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("standard input: {e}"))?;
        text
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?
    };
    serde_json::from_str(&text).map_err(|e| format!("{file}: not JSON: {e}"))
}

async fn plan(settings: Settings, file: &str, json: bool) -> i32 {
    let request = match read_request(file) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("teardown plan: {e}");
            return USAGE;
        }
    };
    // A plan can never terminate anything: the kill switch is on, nothing is sent to
    // a queue (a fan-out is refused), no record or audit event is published.
    let settings =
        Settings { enforce_dry_run: true, dlq_url: None, request_queue_url: None, audit_bus: None, ..settings };
    if request.get("Records").is_some() || request.get("detail-type").is_some() {
        eprintln!("teardown plan: give it a request (or {{\"requests\": [...]}}), not an event");
        return USAGE;
    }
    let mut app = crate::wiring::app(settings).await;
    // The report is the output here; metrics are the function's.
    app.metrics = false;
    let mut context = Context::default();
    context.request_id = "plan".to_owned();
    // Where the credentials point is "home", as the function's own account is to it.
    let config = crate::wiring::aws_config().await;
    if let Ok(me) = aws_sdk_sts::Client::new(&config).get_caller_identity().send().await {
        let partition = me.arn().and_then(|a| a.split(':').nth(1)).unwrap_or("aws");
        let region = config.region().map_or("us-east-1".to_owned(), |r| r.to_string());
        context.invoked_function_arn =
            format!("arn:{partition}:lambda:{region}:{}:function:teardown-plan", me.account().unwrap_or(""));
    }
    let report = match handle(&app, LambdaEvent::new(request, context)).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("teardown plan: {e}");
            return SOME_FAILED;
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", table(&report));
    }
    let failed = report["requests"].as_array().into_iter().flatten().any(|r| {
        matches!(r["outcome"].as_str(), Some("invalid" | "rejected" | "transient" | "failed" | "unconfirmed"))
    });
    if failed { SOME_FAILED } else { DONE }
}

/// The report as a person reads it: one line per target, what would happen and why.
pub fn table(report: &Value) -> String {
    let mut out = String::new();
    for request in report["requests"].as_array().into_iter().flatten() {
        let place = [request["account"].as_str(), request["region"].as_str()].into_iter().flatten().collect::<Vec<_>>();
        out.push_str(&format!(
            "{} {}{}\n",
            request["operation"].as_str().unwrap_or("(no operation)"),
            request["outcome"].as_str().unwrap_or("?"),
            if place.is_empty() { String::new() } else { format!(" in {}", place.join(" ")) }
        ));
        if let Some(error) = request["error"].as_object() {
            out.push_str(&format!(
                "  {}: {}\n",
                error.get("code").and_then(Value::as_str).unwrap_or(""),
                error.get("message").and_then(Value::as_str).unwrap_or("")
            ));
        }
        for t in request["targets"].as_array().into_iter().flatten() {
            let verdict = crate::report::label(t["outcome"].as_str().unwrap_or("?"), t["expiresAt"].is_string());
            let why = t["reason"].as_str().or(t["error"]["message"].as_str()).unwrap_or("");
            out.push_str(&format!("  {:<16} {:<24} {why}\n", verdict, t["id"].as_str().unwrap_or("?")));
        }
    }
    let totals = &report["counts"]["targets"];
    if let Some(totals) = totals.as_object().filter(|t| !t.is_empty()) {
        let parts: Vec<String> = totals.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("totals: {}\n", parts.join(" ")));
    }
    out
}

async fn send(settings: Settings, file: &str, queue: &str) -> i32 {
    let request = match read_request(file) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("teardown send: {e}");
            return USAGE;
        }
    };
    // The function's own rules: a request refused here is never sent.
    if let Err(e) = sendable(&request, settings.max_targets) {
        eprintln!("teardown send: invalid request, not sent: {e}");
        return SOME_FAILED;
    }
    let sqs = aws_sdk_sqs::Client::new(&crate::wiring::aws_config().await);
    match sqs.send_message().queue_url(queue).message_body(request.to_string()).send().await {
        Ok(out) => {
            println!("{}", out.message_id().unwrap_or(""));
            DONE
        }
        Err(e) => {
            eprintln!("teardown send: not sent: {}", crate::classify::classify(&e));
            SOME_FAILED
        }
    }
}

/// Whether the function would take `request` from the operator: a valid request, and
/// neither a follow-up check nor a fan-out child, which the function honours only
/// when it sent them itself (docs/reference.md, "Who may send what").
pub fn sendable(request: &Value, max_targets: usize) -> Result<(), String> {
    if crate::confirm::confirm_member(request).is_some() {
        return Err("confirm: a follow-up check is the function's own message; only the function sends it".into());
    }
    if request.get("origin").is_some() {
        return Err("origin: only the function sets it, on the children of a fan-out it sent".into());
    }
    validate(request, Limits { max_targets }).map(|_| ()).map_err(|e| e.to_string())
}

/// What became of one dead-letter record.
enum Fate {
    Sent,
    WouldSend,
    Left(String),
    Skipped,
}

async fn redrive(dlq: &str, queue: &str, outcomes: &[String], dry_run: bool) -> i32 {
    if dlq == queue {
        eprintln!("teardown redrive: --dlq and --queue are the same queue");
        return USAGE;
    }
    const OUTCOMES: [&str; 6] = ["invalid", "rejected", "transient", "failed", "unconfirmed", "not_found"];
    if let Some(unknown) = outcomes.iter().find(|o| !OUTCOMES.contains(&o.as_str())) {
        eprintln!("teardown redrive: --outcome {unknown} is not one of {}", OUTCOMES.join(", "));
        return USAGE;
    }
    let sqs = aws_sdk_sqs::Client::new(&crate::wiring::aws_config().await);
    let (mut sent, mut left, mut seen) = (0usize, Vec::<(String, String)>::new(), 0usize);
    let mut kept: Vec<String> = Vec::new();
    // Every record is handled once: one that comes back into view during a long drain
    // is neither listed nor sent again, and when only such records come back, the
    // drain is over.
    let mut handled: std::collections::HashSet<String> = std::collections::HashSet::new();
    let code = loop {
        // Records looked at stay invisible while the drain goes on (so none is seen
        // twice); those left in place are made visible again at the end.
        let got = sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .wait_time_seconds(1)
            .send()
            .await;
        let messages = match got {
            Ok(got) => got.messages().to_vec(),
            Err(e) => {
                eprintln!("teardown redrive: cannot read {dlq}: {}", crate::classify::classify(&e));
                break SOME_FAILED;
            }
        };
        let fresh: Vec<_> = messages.iter().filter(|m| !handled.contains(m.message_id().unwrap_or(""))).collect();
        if fresh.is_empty() {
            kept.extend(messages.iter().filter_map(|m| m.receipt_handle().map(str::to_owned)));
            break DONE;
        }
        for m in messages.iter().filter(|m| handled.contains(m.message_id().unwrap_or(""))) {
            kept.extend(m.receipt_handle().map(str::to_owned));
        }
        for m in fresh {
            seen += 1;
            let handle = m.receipt_handle().unwrap_or_default().to_owned();
            let id = m.message_id().unwrap_or("?").to_owned();
            handled.insert(id.clone());
            let record: Value = serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null);
            let fate = fate(&sqs, queue, &record, outcomes, dry_run).await;
            match fate {
                Fate::Sent => {
                    // Deleted only once its retry is on the queue.
                    match sqs.delete_message().queue_url(dlq).receipt_handle(&handle).send().await {
                        Ok(_) => sent += 1,
                        Err(e) => {
                            left.push((id.clone(), format!("sent, but not deleted: {}", crate::classify::classify(&e))))
                        }
                    }
                    println!("sent     {id}");
                }
                Fate::WouldSend => {
                    println!("would send {id}: {}", record["retryRequest"]);
                    kept.push(handle);
                }
                Fate::Left(why) => {
                    println!("left     {id}: {why}");
                    left.push((id, why));
                    kept.push(handle);
                }
                Fate::Skipped => kept.push(handle),
            }
            if seen % 100 == 0 {
                eprintln!("… {seen} records read, {sent} sent, {} left", left.len());
            }
        }
    };
    for handle in kept {
        let _ =
            sqs.change_message_visibility().queue_url(dlq).receipt_handle(handle).visibility_timeout(0).send().await;
    }
    println!("{seen} records read, {sent} sent, {} left in place", left.len());
    if code != DONE || !left.is_empty() { SOME_FAILED } else { DONE }
}

async fn fate(sqs: &aws_sdk_sqs::Client, queue: &str, record: &Value, outcomes: &[String], dry_run: bool) -> Fate {
    let outcome = record["outcome"].as_str().unwrap_or("");
    if !outcomes.is_empty() && !outcomes.iter().any(|o| o == outcome) {
        return Fate::Skipped;
    }
    let Some(retry) = record.get("retryRequest") else {
        return Fate::Left(format!("no retryRequest (outcome {outcome})"));
    };
    // Only a request the function would take from this sender goes back.
    if let Err(e) = sendable(retry, usize::MAX) {
        return Fate::Left(format!("its retryRequest is invalid: {e}"));
    }
    if dry_run {
        return Fate::WouldSend;
    }
    let mut send = sqs.send_message().queue_url(queue).message_body(retry.to_string());
    // A FIFO request queue takes the record's source group, and a deduplication id of
    // the retry itself: the same retry sent twice is kept once.
    if queue.ends_with(".fifo") {
        let group = record["source"]["messageGroupId"].as_str().unwrap_or("teardown");
        let dedup = crate::deadletter::DeadLetterRecord::deduplication_id(&retry.to_string());
        send = send.message_group_id(group).message_deduplication_id(dedup);
    }
    match send.send().await {
        Ok(_) => Fate::Sent,
        Err(e) => Fate::Left(format!("not sent: {}", crate::classify::classify(&e))),
    }
}

/// `teardown status`: one line (or JSON object) per target, read from the state table.
async fn status(
    settings: &Settings,
    table: &str,
    ids: &[String],
    account: Option<String>,
    region: Option<String>,
    operation: Option<&str>,
    json: bool,
) -> i32 {
    let forced = match operation.map(|name| crate::request::Operation::parse(name).ok_or(name)) {
        None => None,
        Some(Ok(operation)) => Some(operation),
        Some(Err(name)) => {
            eprintln!("teardown status: --operation {name} is not a teardown operation");
            return USAGE;
        }
    };
    let config = crate::wiring::aws_config().await;
    let account = match account {
        Some(account) => account,
        None => match aws_sdk_sts::Client::new(&config).get_caller_identity().send().await {
            Ok(me) => me.account().unwrap_or_default().to_owned(),
            Err(e) => {
                eprintln!(
                    "teardown status: cannot learn the account (give --account): {}",
                    crate::classify::classify(&e)
                );
                return SOME_FAILED;
            }
        },
    };
    let region = region.or_else(|| config.region().map(|r| r.to_string())).unwrap_or_default();
    let state = crate::state::StateTable::new(
        aws_sdk_dynamodb::Client::new(&config),
        Some(table.to_owned()),
        settings.confirm_within,
    );
    let (mut code, mut lines) = (DONE, Vec::new());
    for id in ids {
        let operation = forced.unwrap_or(if id.starts_with("ws-") {
            crate::request::Operation::TerminateWorkspaces
        } else if id.starts_with("s-") {
            crate::request::Operation::TerminateTargetInstances
        } else {
            crate::request::Operation::TerminateProvisionedProduct
        });
        let key = crate::state::Key { account: account.clone(), region: region.clone(), operation, target: id.clone() };
        let item = match state.get(&key).await {
            Ok(item) => item,
            Err(e) => {
                eprintln!("teardown status: {id}: cannot read the table: {e}");
                return SOME_FAILED;
            }
        };
        let field = |name: &str| item.as_ref().and_then(|i| i.get(name)).unwrap_or("").to_owned();
        let decision = field("decision");
        if matches!(decision.as_str(), "failed" | "unconfirmed") {
            code = SOME_FAILED;
        }
        let chain = match (item.is_some(), field("chainState").as_str(), decision.is_empty()) {
            (false, _, _) => "no termination kept".to_owned(),
            (true, _, false) => "ended".to_owned(),
            (true, "", true) => "no check yet".to_owned(),
            (true, state, true) => format!("{state}, next check due {}", epoch(&field("dueAt"))),
        };
        lines.push(serde_json::json!({
            "id": id, "operation": operation.as_str(), "account": account, "region": region,
            "found": item.is_some(),
            "acceptedAt": field("acceptedAt"),
            "source": serde_json::from_str::<Value>(&field("acceptedFrom")).unwrap_or(Value::Null),
            "chain": field("chainId"), "chainState": chain,
            "decision": decision, "decidedAt": epoch(&field("decidedAt")), "error": field("decisionError"),
            "jobId": field("jobId"), "recordId": field("recordId"),
        }));
    }
    if json {
        for line in &lines {
            println!("{line}");
        }
    } else {
        println!("{:<22} {:<22} {:<13} {:<32} SOURCE", "TARGET", "ACCEPTED", "DECISION", "CHAIN");
        for l in &lines {
            let source = &l["source"];
            let from = match source["kind"].as_str() {
                Some("sqs") => format!("sqs {}", source["messageId"].as_str().unwrap_or("")),
                Some("eventbridge") => format!("eventbridge {}", source["id"].as_str().unwrap_or("")),
                Some("direct") => format!("direct {}", source["requestId"].as_str().unwrap_or("")),
                _ => String::new(),
            };
            let decision = l["decision"].as_str().filter(|d| !d.is_empty()).unwrap_or("-");
            println!(
                "{:<22} {:<22} {:<13} {:<32} {from}",
                l["id"].as_str().unwrap_or(""),
                l["acceptedAt"].as_str().filter(|a| !a.is_empty()).unwrap_or("-"),
                decision,
                l["chainState"].as_str().unwrap_or(""),
            );
        }
    }
    code
}

/// Epoch seconds as RFC 3339, or as they are when they are not a number.
fn epoch(seconds: &str) -> String {
    seconds
        .parse::<i64>()
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| seconds.to_owned())
}
