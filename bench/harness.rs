//! The benchmark: teardown beside a hello-world `lambda_runtime` binary (the floor)
//! and the same job as a Python boto3 handler, all under the same local Runtime
//! API. Prints medians over repeated runs. Run it with `scripts/bench`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::RuntimeApi;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const RUNS: usize = 15;
const LATENCY: Duration = Duration::from_millis(50);

struct Candidate {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
}

fn spawn(c: &Candidate, api: &RuntimeApi, endpoint: &str) -> Child {
    spawn_with(c, api, endpoint, &[])
}

fn spawn_with(c: &Candidate, api: &RuntimeApi, endpoint: &str, settings: &[(&str, String)]) -> Child {
    Command::new(&c.program)
        .args(&c.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.endpoint())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_LAMBDA_LOG_LEVEL", "error")
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the candidate starts")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A fresh process's first answer to a 10-record batch (5 WorkSpaces each): the
/// wall time from its start and the CPU it used, in milliseconds; none unless every
/// record settled (a batch that failed fast is no measure).
async fn fresh_batch(c: &Candidate, endpoint: &str, settings: &[(&str, String)]) -> Option<(f64, f64)> {
    let api = RuntimeApi::start().await.expect("a port");
    let (event, _) = batch(10, 5);
    let started = Instant::now();
    let mut child = spawn_with(c, &api, endpoint, settings);
    let answer = api.invoke(event, Duration::from_secs(60)).await;
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    let settled = answer.is_ok_and(|a| a["batchItemFailures"].as_array().is_some_and(Vec::is_empty));
    let measured = settled.then(|| (wall, cpu_ms(child.id())));
    let _ = child.kill();
    let _ = child.wait();
    measured
}

/// CPU time the process has used so far, every thread's, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e6
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn batch(records: usize, ids_per_record: usize) -> (Value, usize) {
    let records: Vec<Value> = (0..records)
        .map(|r| {
            let ids: Vec<Value> =
                (0..ids_per_record).map(|i| json!({"WorkspaceId": format!("ws-b{r:04}{i:04}")})).collect();
            json!({
                "messageId": format!("m-{r}"), "receiptHandle": "h",
                "body": json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": ids}}).to_string(),
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"
            })
        })
        .collect();
    (json!({"Records": records}), records.len() * ids_per_record)
}

/// WorkSpaces that answers every call after 50 ms: every WorkSpace exists, untagged,
/// and every termination is accepted.
async fn slow_workspaces() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(|req: &Request| {
            let target = req.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let answer = match target.as_str() {
                "WorkspacesService.DescribeWorkspaces" => {
                    let found: Vec<Value> = body["WorkspaceIds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|id| json!({"WorkspaceId": id, "State": "AVAILABLE"}))
                        .collect();
                    json!({"Workspaces": found})
                }
                "WorkspacesService.DescribeTags" => json!({"TagList": []}),
                "WorkspacesService.TerminateWorkspaces" => json!({"FailedRequests": []}),
                // The request queue (follow-up checks) and the state table: accepted.
                "AmazonSQS.SendMessage" => json!({"MessageId": "check"}),
                _ => json!({}),
            };
            ResponseTemplate::new(200).set_body_raw(answer.to_string(), "application/x-amz-json-1.1").set_delay(LATENCY)
        })
        .mount(&server)
        .await;
    server
}

fn calls(received: &[Request], target: &str) -> usize {
    received.iter().filter(|r| r.headers.get("x-amz-target").is_some_and(|v| v == target)).count()
}

#[tokio::main]
async fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join(".venv/emulator/bin/python");
    let candidates = [
        Candidate { name: "teardown", program: repo.join("target/release/teardown"), args: vec![] },
        Candidate { name: "hello-world floor", program: repo.join("target/release/examples/hello"), args: vec![] },
        Candidate {
            name: "python + boto3",
            program: python,
            args: vec![repo.join("bench/boto3_handler.py").to_string_lossy().into_owned()],
        },
    ];
    let dead = format!("http://127.0.0.1:{}", support::free_port());

    println!("cold start (median of {RUNS}; process start → first poll of the Runtime API → first response)");
    println!("  {:<20} {:>12} {:>16}", "", "first poll", "first response");
    let (mut floors, mut first_responses) = (Vec::new(), Vec::new());
    for c in &candidates {
        let (mut polls, mut responses) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let api = RuntimeApi::start().await.expect("a port");
            let started = Instant::now();
            let mut child = spawn(c, &api, &dead);
            let answer = api.invoke(json!({"Records": []}), Duration::from_secs(30)).await;
            let responded = started.elapsed();
            if let (Ok(_), Some(polled)) = (answer, api.first_poll()) {
                polls.push((polled - started).as_secs_f64() * 1000.0);
                responses.push(responded.as_secs_f64() * 1000.0);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let (poll, response) = (median(polls), median(responses));
        floors.push(poll);
        first_responses.push(response);
        println!("  {:<20} {:>9.1} ms {:>13.1} ms", c.name, poll, response);
    }
    if let [teardown, hello, python] = floors[..] {
        println!("  teardown / floor = {:.2}×; python / teardown = {:.0}×", teardown / hello, python / teardown);
    }

    // The first answer of a fresh process to a real batch: against the ideal of the
    // floor's first response plus two rounds of latency (lookup, then terminate).
    println!(
        "\nfirst answer of a fresh process to a 10-record batch (5 WorkSpaces each, calls answered after 50 ms; median of {RUNS})"
    );
    let (mut answers, mut cpus) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let server = slow_workspaces().await;
        if let Some((wall, cpu)) = fresh_batch(&candidates[0], &server.uri(), &[]).await {
            answers.push(wall);
            cpus.push(cpu);
        }
    }
    let ideal = first_responses.get(1).copied().unwrap_or(f64::NAN) + 2.0 * LATENCY.as_secs_f64() * 1000.0;
    let answer = median(answers);
    println!(
        "  teardown {answer:.1} ms (CPU {:.1} ms); ideal (floor's first response + 2 rounds) {ideal:.1} ms; {:.2}× ideal",
        median(cpus),
        answer / ideal
    );

    println!("\npeak RSS on a 10-record batch (5 WorkSpaces each, every call answered after 50 ms)");
    let server = slow_workspaces().await;
    for c in &candidates {
        let api = RuntimeApi::start().await.expect("a port");
        let mut child = spawn(c, &api, &server.uri());
        let (event, _) = batch(10, 5);
        let _ = api.invoke(event, Duration::from_secs(60)).await;
        println!("  {:<20} {:>8.1} MiB", c.name, peak_rss_kib(child.id()) as f64 / 1024.0);
        let _ = child.kill();
        let _ = child.wait();
    }

    let binary = repo.join("target/release/teardown");
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    let zip = Command::new(repo.join(".venv/emulator/bin/python"))
        .args(["-c", "import io,sys,zipfile;b=io.BytesIO();z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED);z.write(sys.argv[1],'bootstrap');z.close();print(len(b.getvalue()))"])
        .arg(&binary)
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().ok())
        .unwrap_or(0);
    println!(
        "\nbinary (stripped) {:.1} MiB; deployment zip {:.1} MiB",
        size as f64 / 1048576.0,
        zip as f64 / 1048576.0
    );

    println!("\nbatches against WorkSpaces answering after 50 ms (median of 5)");
    println!(
        "  {:<20} {:>8} {:>6} {:>10} {:>7} {:>8} {:>10}",
        "", "records", "ids", "Terminate", "ideal", "calls", "wall"
    );
    for c in [&candidates[0], &candidates[2]] {
        for (records, per) in [(10, 5), (100, 5)] {
            let (mut walls, mut terminates, mut total) = (Vec::new(), 0, 0);
            for _ in 0..5 {
                let server = slow_workspaces().await;
                let api = RuntimeApi::start().await.expect("a port");
                let mut child = spawn(c, &api, &server.uri());
                // A first, empty invocation, so only the batch itself is timed.
                let _ = api.invoke(json!({"Records": []}), Duration::from_secs(30)).await;
                let (event, ids) = batch(records, per);
                let started = Instant::now();
                let _ = api.invoke(event, Duration::from_secs(120)).await;
                walls.push(started.elapsed().as_secs_f64() * 1000.0);
                let received = server.received_requests().await.unwrap_or_default();
                terminates = calls(&received, "WorkspacesService.TerminateWorkspaces");
                total = received.len();
                let _ = child.kill();
                let _ = child.wait();
                let _ = ids;
            }
            let ids = records * per;
            println!(
                "  {:<20} {:>8} {:>6} {:>10} {:>7} {:>8} {:>7.0} ms",
                c.name,
                records,
                ids,
                terminates,
                ids.div_ceil(25),
                total,
                median(walls)
            );
        }
    }
    println!("  (one round of latency is 50 ms)");

    // What the state table costs a batch: the chain writes go out beside the checks,
    // so a warm batch of fresh terminations pays no added round.
    println!(
        "\nthe state table: a warm 10-record batch (50 ids) with follow-ups, every call answered after 50 ms (median of 5)"
    );
    println!("  {:<28} {:>9} {:>10} {:>8}", "", "calls", "UpdateItem", "wall");
    for (name, table) in [("follow-ups, no table", false), ("follow-ups, STATE_TABLE", true)] {
        let (mut walls, mut total, mut writes) = (Vec::new(), 0, 0);
        for _ in 0..5 {
            let server = slow_workspaces().await;
            let api = RuntimeApi::start().await.expect("a port");
            let mut settings = vec![("REQUEST_QUEUE_URL", format!("{}/123456789012/teardown-requests", server.uri()))];
            if table {
                settings.push(("STATE_TABLE", "teardown-state".to_owned()));
            }
            let mut child = spawn_with(&candidates[0], &api, &server.uri(), &settings);
            let _ = api.invoke(json!({"Records": []}), Duration::from_secs(30)).await;
            let (event, _) = batch(10, 5);
            let started = Instant::now();
            let _ = api.invoke(event, Duration::from_secs(120)).await;
            walls.push(started.elapsed().as_secs_f64() * 1000.0);
            let received = server.received_requests().await.unwrap_or_default();
            total = received.len();
            writes = calls(&received, "DynamoDB_20120810.UpdateItem");
            let _ = child.kill();
            let _ = child.wait();
        }
        println!("  {:<28} {:>9} {:>10} {:>5.0} ms", name, total, writes, median(walls));
    }

    // Over TLS, as in Lambda: every connection a cold start opens is a handshake.
    // The CPU it takes is what a small memory size (a small share of a CPU) slows.
    println!("\na cold 10-record batch over TLS (50 ms a call; median of 5): CPU used by the function");
    let dir = std::env::temp_dir().join(format!("teardown-bench-tls-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let port = support::free_port();
    let standin = Command::new(repo.join(".venv/emulator/bin/python"))
        .arg(repo.join("bench/tls_standin.py"))
        .arg(port.to_string())
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut standin) = standin {
        let ready = standin.stdout.take().map(|out| {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
            line.starts_with("ready")
        });
        if ready == Some(true) {
            for bound in [16usize, 64] {
                let (mut walls, mut cpus) = (Vec::new(), Vec::new());
                let settings = [
                    ("MAX_CALLS_IN_FLIGHT", bound.to_string()),
                    ("SSL_CERT_FILE", dir.join("ca.pem").to_string_lossy().into_owned()),
                ];
                let endpoint = format!("https://localhost:{port}");
                for _ in 0..5 {
                    if let Some((wall, cpu)) = fresh_batch(&candidates[0], &endpoint, &settings).await {
                        walls.push(wall);
                        cpus.push(cpu);
                    }
                }
                println!(
                    "  MAX_CALLS_IN_FLIGHT {bound:>3}: first answer {:>6.1} ms, CPU {:>5.1} ms",
                    median(walls),
                    median(cpus)
                );
            }
        } else {
            println!("  (the TLS stand-in did not start)");
        }
        let _ = standin.kill();
        let _ = standin.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);

    // What the SDK itself costs a call (serialising, signing, parsing), with no
    // network: what a round of 52 calls costs on top of the wire and the stand-in.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new("bench", "bench", None, None, "bench"))
        .http_client(aws_smithy_runtime_api::client::http::http_client_fn(|_, _| {
            aws_smithy_runtime_api::client::http::SharedHttpConnector::new(Answered)
        }))
        .load()
        .await;
    let client = aws_sdk_workspaces::Client::new(&config);
    let mut rounds = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let calls = (0..52).map(|i| client.describe_tags().resource_id(format!("ws-{i:08}")).send());
        let answers = futures_util::future::join_all(calls).await;
        if answers.iter().all(Result::is_ok) {
            rounds.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    println!(
        "\nthe SDK's own work for 52 DescribeTags calls answered in-process (median of {RUNS}): {:.1} ms",
        median(rounds)
    );
}

/// An HTTP connector that answers every call at once, in-process: no socket, no stand-in.
#[derive(Debug)]
struct Answered;

impl aws_smithy_runtime_api::client::http::HttpConnector for Answered {
    fn call(
        &self,
        _: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        let status = aws_smithy_runtime_api::http::StatusCode::try_from(200).expect("a status");
        let body = aws_smithy_types::body::SdkBody::from(r#"{"TagList":[]}"#);
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::ready(Ok(
            aws_smithy_runtime_api::http::Response::new(status, body),
        ))
    }
}
