//! The operator's command line (issue 14): the release binary run outside Lambda,
//! against moto. Its output is checked as a person reads it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Function, Moto, RuntimeApi};

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_teardown"))
}

/// The binary as an operator runs it: credentials and region, no Runtime API.
fn teardown(moto: &Moto, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .env_clear()
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("the binary ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn plan_prints_what_a_dry_run_invocation_reports_and_terminates_nothing() {
    let moto = Moto::start();
    let (directory, sandbox) = moto.tagged_workspaces(2, "sbx", &[("env", "sandbox")]);
    let (_, kept) = moto.tagged_workspaces(1, "keep", &[("env", "sandbox"), ("teardown:protect", "hold")]);
    let select =
        json!({"operation": "TerminateWorkspaces", "select": {"directoryId": directory, "tags": {"env": "sandbox"}}});

    let (code, table, _) = teardown(&moto, &["plan", "-"], Some(&select.to_string()));
    let (json_code, report, _) = teardown(&moto, &["plan", "--json", "-"], Some(&select.to_string()));

    assert_eq!((code, json_code), (0, 0));
    for id in &sandbox {
        assert!(table.lines().any(|l| l.contains("WOULD TERMINATE") && l.contains(id.as_str())), "{table}");
    }
    assert!(table.lines().any(|l| l.contains("PROTECTED") && l.contains(kept[0].as_str())), "{table}");
    assert!(table.contains("totals: dry_run=2 protected=1"), "{table}");
    let planned: Value = serde_json::from_str(&report).expect("--json prints the report");

    // The function, asked the same as a dry run, reports the same.
    let api = RuntimeApi::start().await.unwrap();
    let _function = Function::start(bin(), &api, &[("AWS_ENDPOINT_URL", &moto.endpoint)]);
    let mut dry = select.clone();
    dry["dryRun"] = json!(true);
    let invoked = api.invoke(dry, Duration::from_secs(60)).await.unwrap();
    assert_eq!(planned["requests"][0]["targets"], invoked["requests"][0]["targets"]);
    assert_eq!(moto.still_live_in("123456789012", &sandbox).len(), 2, "a plan terminates nothing");
}

#[tokio::test]
async fn send_puts_exactly_the_validated_request_on_the_queue_and_refuses_a_bad_one() {
    let moto = Moto::start();
    let queue = moto.queue("teardown-requests");
    let request = json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-abcd1234"}]}});
    let bad = json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceID": "ws-abcd1234"}]}});

    let (code, message_id, _) = teardown(&moto, &["send", "--queue", &queue, "-"], Some(&request.to_string()));
    let (bad_code, _, error) = teardown(&moto, &["send", "--queue", &queue, "-"], Some(&bad.to_string()));

    assert_eq!(code, 0);
    assert!(!message_id.trim().is_empty(), "prints the message id");
    assert_eq!(bad_code, 1);
    assert!(error.contains("input.TerminateWorkspaceRequests[0].WorkspaceID"), "names the field: {error}");
    let sent: Vec<Value> = moto.drain(&queue).await.into_iter().map(|(body, _, _)| body).collect();
    assert_eq!(sent, vec![request], "exactly the valid one, as it was");
}

fn record(outcome: &str, retry: Option<Value>) -> String {
    let mut record = json!({"version": 1, "failedAt": "2026-11-24T10:00:00Z", "source": {"kind": "direct", "requestId": "r"},
        "request": {}, "outcome": outcome, "error": {"code": "X", "message": "y"}, "failedTargets": []});
    if let Some(retry) = retry {
        record["retryRequest"] = retry;
    }
    record.to_string()
}

#[tokio::test]
async fn redrive_sends_the_retries_back_leaves_what_has_none_and_deletes_nothing_it_did_not_send() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let queue = moto.queue("teardown-requests");
    let sqs = moto.sqs();
    let retries: Vec<Value> = (1..=3)
        .map(|i| json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": format!("ws-retry00{i}")}]}}))
        .collect();
    for retry in &retries {
        sqs.send_message().queue_url(&dlq).message_body(record("transient", Some(retry.clone()))).send().await.unwrap();
    }
    sqs.send_message().queue_url(&dlq).message_body(record("invalid", None)).send().await.unwrap();

    // A send that fails: nothing is deleted.
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint);
    let (code, out, _) = teardown(&moto, &["redrive", "--dlq", &dlq, "--queue", &missing], None);
    assert_eq!(code, 1);
    assert!(out.contains("4 records read, 0 sent, 4 left in place"), "{out}");
    // A dry run lists and deletes nothing.
    let (code, out, _) = teardown(&moto, &["redrive", "--dlq", &dlq, "--queue", &queue, "--dry-run"], None);
    assert_eq!(code, 1, "the record without a retry is still left");
    assert_eq!(out.lines().filter(|l| l.starts_with("would send")).count(), 3, "{out}");

    let (code, out, _) = teardown(&moto, &["redrive", "--dlq", &dlq, "--queue", &queue], None);

    assert_eq!(code, 1, "one record is left: exit 1");
    assert!(out.contains("4 records read, 3 sent, 1 left in place"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("left") && l.contains("no retryRequest")), "{out}");
    let mut moved: Vec<Value> = moto.drain(&queue).await.into_iter().map(|(body, _, _)| body).collect();
    moved.sort_by_key(|v| v.to_string());
    assert_eq!(moved, retries, "exactly the three retry requests");
    let remaining = moto.drain(&dlq).await;
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].0["outcome"], "invalid");
}

/// docs/reference.md, "Who may send what": the operator's tools never send what only the function may: a
/// follow-up check, or a request carrying a fan-out child's `origin`.
#[tokio::test]
async fn send_and_redrive_never_send_a_check_or_a_fan_out_child() {
    let moto = Moto::start();
    let dlq = moto.queue("teardown-dlq");
    let queue = moto.queue("teardown-requests");
    let sqs = moto.sqs();
    let check = json!({"confirm": {"operation": "TerminateWorkspaces", "targets": [{"id": "ws-aaaaaaaa"}],
        "acceptedAt": "2026-11-24T10:00:00Z", "attempt": 1, "source": {}, "request": {}}});
    let child = json!({"operation": "TerminateWorkspaces", "origin": "a1b2c3",
        "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-aaaaaaaa"}]}});
    for body in [&check, &child] {
        sqs.send_message().queue_url(&dlq).message_body(record("transient", Some(body.clone()))).send().await.unwrap();
    }

    let (code, out, _) = teardown(&moto, &["redrive", "--dlq", &dlq, "--queue", &queue], None);

    assert_eq!(code, 1, "{out}");
    assert!(out.contains("2 records read, 0 sent, 2 left in place"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("left") && l.contains("confirm:")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("left") && l.contains("origin:")), "{out}");
    for body in [&check, &child] {
        let (code, _, error) = teardown(&moto, &["send", "-", "--queue", &queue], Some(&body.to_string()));
        assert_eq!(code, 1, "{error}");
        assert!(error.contains("not sent"), "{error}");
    }
    assert!(moto.drain(&queue).await.is_empty(), "nothing reached the request queue");
    assert_eq!(moto.drain(&dlq).await.len(), 2, "both records stay");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let run = |args: &[&str]| Command::new(bin()).args(args).env_clear().output().expect("runs");
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["send", "request.json"]).status.code(), Some(2), "--queue is required");
    let same = run(&["redrive", "--dlq", "https://q/1/a", "--queue", "https://q/1/a"]);
    assert_eq!(same.status.code(), Some(2), "redriving a queue into itself is refused");
    let typo = run(&["redrive", "--dlq", "https://q/1/a", "--queue", "https://q/1/b", "--outcome", "rejectd"]);
    assert_eq!(typo.status.code(), Some(2), "an outcome that does not exist is refused, not matched by nothing");
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("plan") && text.contains("send") && text.contains("redrive"), "{text}");
    // With a command it is the command line even where a Runtime API is set.
    let planned = Command::new(bin())
        .args(["plan", "-"])
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(planned.status.code(), Some(2), "an empty request is a usage error, not a function start");
}

#[tokio::test]
async fn plan_shows_what_a_notice_run_would_tag_and_writes_nothing() {
    let moto = Moto::start();
    let (directory, sandbox) = moto.tagged_workspaces(2, "sbx", &[("env", "sandbox")]);
    let (_, noticed) =
        moto.tagged_workspaces(1, "late", &[("env", "sandbox"), ("teardown:expires-at", "2026-12-24T00:00:00Z")]);
    let notice = json!({"operation": "TerminateWorkspaces", "notice": {"days": 7},
        "select": {"directoryId": directory, "tags": {"env": "sandbox"}}});

    let (code, table, _) = teardown(&moto, &["plan", "-"], Some(&notice.to_string()));

    assert_eq!(code, 0);
    for id in &sandbox {
        let line = table.lines().find(|l| l.contains(id.as_str())).unwrap_or_else(|| panic!("{table}"));
        assert!(line.contains("WOULD TAG") && line.contains("would be tagged teardown:expires-at=20"), "{line}");
    }
    let line = table.lines().find(|l| l.contains(noticed[0].as_str())).unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains("SKIPPED") && line.contains("already noticed until 2026-12-24T00:00:00Z"), "{line}");
    let tags = moto.workspaces_client().describe_tags().resource_id(&sandbox[0]).send().await.unwrap();
    assert!(tags.tag_list().iter().all(|t| t.key() != "teardown:expires-at"), "a plan writes no tag");
}

#[tokio::test]
async fn plan_takes_a_request_not_an_event() {
    let moto = Moto::start();
    let (code, _, error) = teardown(&moto, &["plan", "-"], Some(r#"{"Records": []}"#));
    assert_eq!(code, 2);
    assert!(error.contains("not an event"), "{error}");
}

/// `teardown status` reads the state table: a target decided `unconfirmed` makes it
/// exit 1; one the table does not know is said to be so.
#[tokio::test]
async fn status_prints_each_targets_termination_and_exits_1_on_unconfirmed() {
    let moto = Moto::start();
    let table = moto.table("teardown-state");
    let dynamodb = crate::support::dynamodb_at(&moto.endpoint);
    let state = teardown::state::StateTable::new(dynamodb, Some(table.clone()), 7200);
    let key = teardown::state::Key {
        account: "123456789012".into(),
        region: "us-east-1".into(),
        operation: teardown::request::Operation::TerminateWorkspaces,
        target: "ws-stuck0001".into(),
    };
    let start = teardown::state::ChainStart {
        key: key.clone(),
        chain: "chain-1".into(),
        due_at: 1_795_514_430,
        accepted_at: "2026-11-24T10:00:00Z".into(),
        source: r#"{"kind":"sqs","messageId":"m-7"}"#.into(),
        job_id: None,
        record_id: None,
        fresh: true,
    };
    assert_eq!(
        state.start_chain(&start, 1_795_514_400).await.unwrap(),
        teardown::state::Started::Won { previous: None }
    );
    let end = teardown::state::CheckEnd::Decided {
        decision: "unconfirmed",
        error: Some("still TERMINATING".into()),
        of: None,
    };
    let of = teardown::state::CheckOf {
        chain: "chain-1",
        attempt: 9,
        accepted_at: "2026-11-24T10:00:00Z",
        message_id: "c-9",
        receive_count: 1,
    };
    state.check_end(&key, &of, &end, 1_795_521_600).await.unwrap();

    let (code, out, error) = teardown(&moto, &["status", "ws-stuck0001", "ws-never0001", "--table", &table], None);

    assert_eq!(code, 1, "{out}{error}");
    let stuck = out.lines().find(|l| l.starts_with("ws-stuck0001")).expect(&out);
    assert!(
        stuck.contains("2026-11-24T10:00:00Z") && stuck.contains("unconfirmed") && stuck.contains("sqs m-7"),
        "{out}"
    );
    let never = out.lines().find(|l| l.starts_with("ws-never0001")).expect(&out);
    assert!(never.contains("no termination kept"), "{out}");
}
