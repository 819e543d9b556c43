//! The real parts the end-to-end tests run: a moto server, a Lambda Runtime API,
//! and the built `teardown` binary between them. Every process is stopped on drop.
#![allow(dead_code)]

pub mod loopback;
pub mod one_at_a_time;
pub mod rng;
pub mod runtime_api;
pub mod workspaces_front;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

pub use runtime_api::RuntimeApi;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python venv that holds moto (made by `scripts/setup-python`).
fn venv() -> PathBuf {
    std::env::var_os("TEARDOWN_EMULATOR_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv/emulator"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// A loopback address where nothing listens: an unreachable endpoint.
pub fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = venv().join("bin/moto_server");
        assert!(bin.exists(), "{} is missing: run `scripts/test`, which installs the pinned moto first", bin.display());
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto did not start within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Runs `scripts/moto_seed.py` against this server and returns what it printed.
    pub fn seed(&self, args: &[&str]) -> Value {
        let out = Command::new(venv().join("bin/python"))
            .arg(repo().join("scripts/moto_seed.py"))
            .args(["--endpoint", &self.endpoint])
            .args(args)
            .output()
            .expect("the seed script runs");
        assert!(out.status.success(), "seeding failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("the seed script prints JSON")
    }

    /// Runs the seed script with `input` on its standard input.
    pub fn seed_with(&self, args: &[&str], input: &str) -> Value {
        use std::io::Write;
        let mut child = Command::new(venv().join("bin/python"))
            .arg(repo().join("scripts/moto_seed.py"))
            .args(["--endpoint", &self.endpoint])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the seed script runs");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).expect("the seed script reads its plan");
        }
        let out = child.wait_with_output().expect("the seed script ends");
        assert!(out.status.success(), "seeding failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("the seed script prints JSON")
    }

    /// `count` WorkSpaces made in `account`, through an assumed role.
    pub fn workspaces_in(&self, account: &str, count: usize) -> Vec<String> {
        let made = self.seed(&["workspaces", &count.to_string(), "--account", account]);
        made["workspaceIds"].as_array().expect("ids").iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
    }

    /// Which of `ids` in `account` are neither terminating nor terminated.
    pub fn still_live_in(&self, account: &str, ids: &[String]) -> Vec<String> {
        let mut args = vec!["still-live", "--account", account];
        args.extend(ids.iter().map(String::as_str));
        let answer = self.seed(&args);
        answer["live"].as_array().expect("ids").iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
    }

    /// An EventBridge bus with a rule that delivers teardown's events to a new queue.
    pub fn audit_bus(&self, bus: &str, queue: &str) -> String {
        self.seed(&["audit-bus", bus, queue])["queueUrl"].as_str().expect("a queue URL").to_owned()
    }

    /// The state table, as the template makes it.
    pub fn table(&self, name: &str) -> String {
        self.seed(&["table", name])["tableName"].as_str().expect("a table name").to_owned()
    }

    pub fn queue(&self, name: &str) -> String {
        self.seed(&["queue", name])["queueUrl"].as_str().expect("a queue url").to_owned()
    }

    pub fn workspaces(&self, count: usize) -> Vec<String> {
        self.tagged_workspaces(count, "user", &[]).1
    }

    /// `count` WorkSpaces for users `{user_prefix}0…`, each with `tags`; returns
    /// the directory id and the WorkSpace ids.
    pub fn tagged_workspaces(&self, count: usize, user_prefix: &str, tags: &[(&str, &str)]) -> (String, Vec<String>) {
        let count = count.to_string();
        let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["workspaces", count.as_str(), "--user-prefix", user_prefix];
        for tag in &tags {
            args.extend(["--tag", tag.as_str()]);
        }
        let made = self.seed(&args);
        let ids = made["workspaceIds"]
            .as_array()
            .expect("ids")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        (made["directoryId"].as_str().unwrap_or_default().to_owned(), ids)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// The principal the function runs as here, as SQS would name it in `SenderId`
    /// on a message the function sent (moto names every sender alike, so a test that
    /// hands the function's own messages back sets it, as Lambda's event would carry it).
    pub async fn function_sender(&self) -> String {
        let config = aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_sts::config::Credentials::new("testing", "testing", None, None, "tests"))
            .build();
        let me = aws_sdk_sts::Client::from_conf(config).get_caller_identity().send().await.expect("GetCallerIdentity");
        me.user_id().expect("a UserId").to_owned()
    }

    pub fn workspaces_client(&self) -> aws_sdk_workspaces::Client {
        let config = aws_sdk_workspaces::Config::builder()
            .behavior_version(aws_sdk_workspaces::config::BehaviorVersion::latest())
            .region(aws_sdk_workspaces::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_workspaces::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .build();
        aws_sdk_workspaces::Client::from_conf(config)
    }

    /// The item `pk` of the state table `table`, as JSON (attribute → value), or null.
    pub async fn item(&self, table: &str, pk: &str) -> Value {
        let got = dynamodb_at(&self.endpoint)
            .get_item()
            .table_name(table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()))
            .send()
            .await
            .expect("GetItem against moto");
        let Some(item) = got.item() else { return Value::Null };
        let mut out: Vec<(&String, String)> = item
            .iter()
            .map(|(k, v)| (k, v.as_s().or(v.as_n()).map(String::to_owned).unwrap_or_else(|_| format!("{v:?}"))))
            .collect();
        out.sort();
        Value::Object(out.into_iter().map(|(k, v)| (k.clone(), Value::String(v))).collect())
    }

    /// Every message in the queue, bodies parsed, with their `outcome` attribute.
    pub async fn drain(&self, queue_url: &str) -> Vec<(Value, String, String)> {
        let sqs = self.sqs();
        let mut all = Vec::new();
        loop {
            let got = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .expect("ReceiveMessage against moto");
            let messages = got.messages();
            if messages.is_empty() {
                return all;
            }
            for m in messages {
                let attr = |name: &str| {
                    m.message_attributes()
                        .and_then(|a| a.get(name))
                        .and_then(|v| v.string_value())
                        .unwrap_or_default()
                        .to_owned()
                };
                let body = serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null);
                all.push((body, attr("operation"), attr("outcome")));
                if let Some(handle) = m.receipt_handle() {
                    let _ = sqs.delete_message().queue_url(queue_url).receipt_handle(handle).send().await;
                }
            }
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bin` with only the environment Lambda gives a custom runtime.
/// A DynamoDB client for the emulator at `endpoint`, with the test credentials and no retries.
pub fn dynamodb_at(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "tests"))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

pub fn lambda_command(bin: &std::path::Path, api: &RuntimeApi) -> Command {
    let mut command = Command::new(bin);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.endpoint())
        .env("AWS_LAMBDA_FUNCTION_NAME", "teardown")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1");
    command
}

/// The built binary, running as Lambda runs it: a custom runtime polling `api`.
pub struct Function {
    child: Child,
}

impl Function {
    pub fn start(bin: &std::path::Path, api: &RuntimeApi, env: &[(&str, &str)]) -> Function {
        let mut command = lambda_command(bin, api);
        command
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_LAMBDA_LOG_LEVEL", "info")
            // TEARDOWN_E2E_LOGS=1 shows the function's own log lines.
            .stdout(if std::env::var_os("TEARDOWN_E2E_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() })
            .stderr(if std::env::var_os("TEARDOWN_E2E_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() });
        for (k, v) in env {
            command.env(k, v);
        }
        Function { child: command.spawn().expect("the teardown binary starts") }
    }
}

impl Function {
    /// The process id, to read what it used.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Like `start`, with everything the function writes to standard output kept
    /// (the EMF metric lines among it).
    pub fn start_capturing(
        bin: &std::path::Path,
        api: &RuntimeApi,
        env: &[(&str, &str)],
    ) -> (Function, std::sync::Arc<std::sync::Mutex<String>>) {
        let mut command = lambda_command(bin, api);
        command
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_LAMBDA_LOG_LEVEL", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the teardown binary starts");
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut stdout) = child.stdout.take() {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut o) = out.lock() {
                        o.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            });
        }
        (Function { child }, out)
    }

    /// Sends SIGTERM, as Lambda does when it shuts an environment down, and waits.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("the function exits")
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SQS event as Lambda delivers it, sent by a user of the account.
/// Each target of a report's first request, as (id, outcome), sorted.
pub fn sorted_outcomes(report: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = report["requests"][0]["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("no targets: {report}"))
        .iter()
        .map(|t| (t["id"].as_str().unwrap_or("").to_owned(), t["outcome"].as_str().unwrap_or("").to_owned()))
        .collect();
    out.sort();
    out
}

pub fn sqs_event(records: &[(&str, &Value)]) -> Value {
    sqs_event_from("AIDAEXAMPLEOPERATOR0", records)
}

/// An SQS event whose messages `sender` sent (`attributes.SenderId`).
pub fn sqs_event_from(sender: &str, records: &[(&str, &Value)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": "AQEB-handle",
                "body": match body { Value::String(s) => s.clone(), other => other.to_string() },
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000", "SenderId": sender, "ApproximateFirstReceiveTimestamp": "1764000000001"},
                "messageAttributes": {},
                "md5OfBody": "0",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:teardown-requests",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}
