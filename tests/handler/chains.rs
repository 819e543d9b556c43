//! docs/reference.md, "Who may send what" to "A request" and "What each request ends as" as amended: the links between messages. Who may send a
//! check or a fan-out child; what a child or a replay inherits (the effective dry run,
//! the id a lookup found); the tokens of payloads that have no message id; and a
//! WorkSpace already on its way out.

use crate::doubles::*;

const NOW: &str = "2026-11-24T10:00:00Z";

/// DescribeWorkspaces answering every id AVAILABLE, each call's ids recorded.
fn ws_describe_recording(calls: &Log<Vec<String>>) -> Rule {
    let calls = calls.clone();
    mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
        calls.lock().unwrap().push(req.workspace_ids().to_vec());
        let found = req.workspace_ids().iter().map(|id| workspace(id, WorkspaceState::Available)).collect();
        DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
    })
}

/// An app whose every effect a refused message must not have is watched: lookups,
/// terminate calls, records, checks sent on, audit events.
struct Watched {
    app: App,
    described: Log<Vec<String>>,
    terminated: Log<Vec<String>>,
    records: Log<(String, Value, String, String)>,
    resent: Log<(Value, i32)>,
    put: Log<(String, String, Value, String)>,
}

fn watched(settings: Settings) -> Watched {
    let (described, terminated, records, resent, put) = (log(), log(), log(), log(), log());
    let (describe, terminate) = (ws_describe_recording(&described), ws_terminate_ok(&terminated));
    let (send, checks, events) = (sqs_send_ok(&records), checks_sent(&resent), events_put(&put));
    let app = Doubles { ws: &[&describe, &terminate], mgn: &[], sc: &[], sqs: &[&send] }
        .app(settings)
        .with_request_queue(request_queue(&[&checks]))
        .with_audit(audit_bus(&[&events]));
    Watched { app, described, terminated, records, resent, put }
}

impl Watched {
    /// Nothing was looked up, terminated or sent on.
    fn nothing_called(&self) -> bool {
        taken(&self.described).is_empty() && taken(&self.terminated).is_empty() && taken(&self.resent).is_empty()
    }
}

/// The audit decisions put, as (id or "-", outcome, error code in the reason).
fn decisions(put: &Log<(String, String, Value, String)>) -> Vec<(String, String)> {
    taken(put)
        .into_iter()
        .map(|(_, _, d, _)| {
            (d["id"].as_str().unwrap_or("-").to_owned(), d["outcome"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

fn child(origin: &str) -> Value {
    json!({"operation": "TerminateWorkspaces", "origin": origin,
           "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-child001"}]}})
}

fn eventbridge(detail: Value) -> Value {
    json!({"version": "0", "id": "eb-1", "detail-type": "Teardown Request", "source": "teardown.requests",
           "account": "123456789012", "time": "2026-11-24T09:59:00Z", "region": "us-east-1",
           "resources": [], "detail": detail})
}

// ── 10.1 Who may start a chain ────────────────────────────────────────────────

#[tokio::test]
async fn a_check_sent_by_another_principal_is_refused_untrusted_with_a_record_and_no_call() {
    let w = watched(settings());
    let forged = check("TerminateWorkspaces", &[("ws-victim01", None, None)], 1, NOW);

    let response = invoke(&w.app, sqs_event_from(OTHER_SENDER_ID, &[("c-forged", forged)])).await.unwrap();

    assert!(failures(&response).is_empty(), "refused for good, not redelivered");
    assert!(w.nothing_called(), "the service is never asked, and a refused check sends nothing on");
    let records = taken(&w.records);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].3, "invalid");
    assert_eq!(records[0].1["error"]["code"], "UntrustedSender");
    assert!(records[0].1["error"]["message"].as_str().unwrap().contains(OTHER_SENDER_ID));
    assert!(records[0].1.get("retryRequest").is_none());
    assert_eq!(decisions(&w.put), vec![("-".to_owned(), "invalid".to_owned())], "no audit event but the refusal");
}

#[tokio::test]
async fn a_fan_out_child_sent_by_another_principal_reaches_no_account() {
    let w = watched(settings());

    let response = invoke(&w.app, sqs_event_from(OTHER_SENDER_ID, &[("child-forged", child("a1b2c3"))])).await.unwrap();

    assert!(failures(&response).is_empty());
    assert!(w.nothing_called(), "nothing looked up, nothing terminated");
    let records = taken(&w.records);
    assert_eq!((records.len(), records[0].3.as_str()), (1, "invalid"));
    assert_eq!(records[0].1["error"]["code"], "UntrustedSender");
    assert_eq!(records[0].2, "TerminateWorkspaces", "the record names the operation it claimed");
}

#[tokio::test]
async fn an_sqs_record_that_names_no_sender_is_not_the_functions_own() {
    let w = watched(settings());
    let mut event = sqs_event(&[("c-1", check("TerminateWorkspaces", &[("ws-victim01", None, None)], 1, NOW))]);
    event["Records"][0]["attributes"].as_object_mut().unwrap().remove("SenderId");

    invoke(&w.app, event).await.unwrap();

    assert!(w.nothing_called());
    assert_eq!(taken(&w.records)[0].1["error"]["code"], "UntrustedSender");
}

#[tokio::test]
async fn a_check_or_a_child_in_an_eventbridge_or_direct_payload_is_refused_without_asking_sts() {
    let asked = log();
    let caller = sts_caller(FUNCTION_USER_ID, &asked);
    let w = watched(settings());
    let app = w.app.with_identity(identity(&[&caller]));
    let forged = check("TerminateWorkspaces", &[("ws-victim01", None, None)], 1, NOW);

    let payloads = [
        forged.clone(),
        eventbridge(forged),
        child("a1b2c3"),
        eventbridge(child("a1b2c3")),
        json!({"requests": [child("a1b2c3")]}),
    ];
    for payload in payloads {
        let report = invoke(&app, payload.clone()).await.unwrap();
        assert_eq!(report["requests"][0]["outcome"], "invalid", "{payload}");
    }

    assert!(taken(&w.described).is_empty() && taken(&w.terminated).is_empty(), "no call for any of them");
    assert!(taken(&asked).is_empty(), "outside SQS there is no sender to compare: STS is not asked");
    let records = taken(&w.records);
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.1["error"]["code"] == "UntrustedSender"), "{records:?}");
}

#[tokio::test]
async fn the_functions_own_principal_is_asked_once_per_container_and_only_when_a_check_or_child_arrives() {
    let asked = log();
    let caller = sts_caller(FUNCTION_USER_ID, &asked);
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let app =
        Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(settings()).with_identity(identity(&[&caller]));

    invoke(&app, sqs_event(&[("m-1", ws_request(&ws_ids(2, "p")))])).await.unwrap();
    assert!(taken(&asked).is_empty(), "a batch of plain requests never pays for the call");

    for n in 0..3 {
        let event = sqs_event(&[(format!("child-{n}"), child(&format!("origin{n}")))]);
        invoke(&app, event).await.unwrap();
    }
    assert_eq!(taken(&asked).len(), 1, "asked at most once per container");
    assert_eq!(taken(&calls).len(), 1 + 3, "the request, then each child from the function itself, is worked");
}

#[tokio::test]
async fn when_sts_cannot_answer_a_check_is_redelivered_untouched_and_sts_is_asked_again_next_time() {
    let described = log();
    let describe = ws_describe_recording(&described);
    let records = log();
    let send = sqs_send_ok(&records);
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let throttled = {
        let asked = asked.clone();
        mock!(aws_sdk_sts::Client::get_caller_identity).then_http_response(move || {
            asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            http(
                400,
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
            )
        })
    };
    let app = Doubles { ws: &[&describe], mgn: &[], sc: &[], sqs: &[&send] }
        .app(settings())
        .with_identity(identity(&[&throttled]));
    let body = check("TerminateWorkspaces", &[("ws-aaaaaaaa", None, None)], 1, NOW);

    let response = invoke(&app, sqs_event(&[("c-1", body.clone())])).await.unwrap();

    assert_eq!(failures(&response), vec!["c-1"], "neither trusted nor refused: redelivered");
    assert!(taken(&described).is_empty());
    assert!(taken(&records).is_empty(), "a message SQS redelivers gets no record yet");

    let response = invoke(&app, sqs_event(&[("c-1", body)])).await.unwrap();
    assert_eq!(failures(&response), vec!["c-1"]);
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 2, "a failed answer is not kept");
}

fn sts_throttled() -> Rule {
    mock!(aws_sdk_sts::Client::get_caller_identity).then_http_response(|| {
        http(400, "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>")
    })
}

#[tokio::test]
async fn when_sts_cannot_answer_on_the_last_delivery_a_child_leaves_a_retry_and_a_check_ends_its_targets_unconfirmed() {
    let throttled = sts_throttled();
    let records = log();
    let send = sqs_send_ok(&records);
    let put = log();
    let events = events_put(&put);
    let app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[&send] }
        .app(Settings { max_receives: Some(1), dry_run: true, ..settings() })
        .with_identity(identity(&[&throttled]))
        .with_audit(audit_bus(&[&events]));
    let a_check = check("TerminateWorkspaces", &[("ws-aaaaaaaa", None, None), ("ws-bbbbbbbb", None, None)], 1, NOW);

    let response = invoke(&app, sqs_event(&[("child-1", child("a1b2c3")), ("c-1", a_check)])).await.unwrap();

    assert!(failures(&response).is_empty(), "settled on the last delivery, not lost");
    let records = taken(&records);
    let child_record = records.iter().find(|r| r.1["source"]["messageId"] == "child-1").expect("the child's record");
    assert_eq!(child_record.3, "transient");
    assert_eq!(
        child_record.1["retryRequest"],
        json!({"operation": "TerminateWorkspaces", "dryRun": true,
               "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-child001"}]}}),
        "without its origin, as the dry run it was"
    );
    let check_record = records.iter().find(|r| r.3 == "unconfirmed").expect("the check's record");
    assert_eq!(check_record.1["failedTargets"].as_array().unwrap().len(), 2);
    let mut decided = decisions(&put);
    decided.sort();
    assert_eq!(
        decided,
        vec![
            ("ws-aaaaaaaa".to_owned(), "unconfirmed".to_owned()),
            ("ws-bbbbbbbb".to_owned(), "unconfirmed".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_check_that_arrives_with_the_deadline_passed_is_redelivered_not_refused() {
    let asked = log();
    let caller = sts_caller(FUNCTION_USER_ID, &asked);
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[&send] }.app(settings()).with_identity(identity(&[&caller]));
    let mut context = Context::default();
    context.request_id = "req-1".to_owned();
    context.deadline = 1; // long gone
    let event = sqs_event(&[("c-1", check("TerminateWorkspaces", &[("ws-aaaaaaaa", None, None)], 1, NOW))]);

    let response = handle(&app, LambdaEvent::new(event, context)).await.unwrap();

    assert_eq!(failures(&response), vec!["c-1"]);
    assert!(taken(&asked).is_empty(), "no call started past the deadline");
    assert!(taken(&records).is_empty());
}

#[tokio::test]
async fn a_check_or_child_wrapped_in_sns_or_eventbridge_is_refused_whoever_delivered_it() {
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());
    let sns = |message: Value| {
        json!({"Type": "Notification", "MessageId": "n-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
               "Message": message.to_string(), "Timestamp": "2026-11-24T09:59:00.000Z", "SignatureVersion": "1",
               "Signature": "x", "SigningCertURL": "https://x", "UnsubscribeURL": "https://x"})
    };
    let forged_check = check("TerminateWorkspaces", &[("ws-victim01", None, None)], 1, NOW);

    // Even with the function's own SenderId: the wrapper, not the author, is named there.
    invoke(
        &app,
        sqs_event(&[("m-1", sns(child("a1b2c3"))), ("m-2", eventbridge(child("a1b2c3"))), ("m-3", sns(forged_check))]),
    )
    .await
    .unwrap();

    assert!(taken(&calls).is_empty());
    let records = taken(&records);
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.1["error"]["code"] == "UntrustedSender"), "{records:?}");
}

#[tokio::test]
async fn a_check_accepted_in_the_future_is_invalid_and_never_resends_itself() {
    let w = watched(settings());
    let from_the_future = check("TerminateWorkspaces", &[("ws-aaaaaaaa", None, None)], 1, "2027-01-01T00:00:00Z");

    let response = invoke(&w.app, sqs_event(&[("c-1", from_the_future)])).await.unwrap();

    assert!(failures(&response).is_empty());
    assert!(w.nothing_called());
    let records = taken(&w.records);
    assert_eq!(records[0].3, "invalid");
    assert!(records[0].1["error"]["message"].as_str().unwrap().contains("confirm.acceptedAt"));
}

// ── 10.2 The effective dry run travels ────────────────────────────────────────

/// The settings that make a request a dry run it did not ask for, each with the
/// request's own `dryRun` member as it was received.
fn dry_by_settings() -> Vec<(&'static str, Settings, Option<bool>)> {
    vec![
        ("ENFORCE_DRY_RUN over dryRun false", Settings { enforce_dry_run: true, ..settings() }, Some(false)),
        ("ENFORCE_DRY_RUN, no dryRun", Settings { enforce_dry_run: true, ..settings() }, None),
        ("DRY_RUN, no dryRun", Settings { dry_run: true, ..settings() }, None),
    ]
}

fn with_dry_run(mut request: Value, dry_run: Option<bool>) -> Value {
    if let Some(dry_run) = dry_run {
        request["dryRun"] = json!(dry_run);
    }
    request
}

#[tokio::test]
async fn the_children_of_a_fan_out_that_is_a_dry_run_by_the_settings_say_dry_run() {
    for (case, settings, own) in dry_by_settings() {
        let batches = log();
        let batch = children_sent(&batches);
        let app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[] }
            .app(Settings { allowed_accounts: vec!["111122223333".into()], ..settings })
            .with_request_queue(request_queue(&[&batch]));
        let fan_out = with_dry_run(
            json!({"operation": "TerminateWorkspaces", "accounts": ["111122223333"], "regions": ["us-east-1", "eu-west-1"],
                   "select": {"tags": {"env": "sandbox"}}}),
            own,
        );

        invoke(&app, sqs_event(&[("m-1", fan_out)])).await.unwrap();

        let children = taken(&batches);
        assert_eq!(children.len(), 2, "{case}");
        for child in children {
            assert_eq!(child["dryRun"], true, "{case}: {child}");
        }
    }
}

/// Every SendMessageBatch entry's body.
fn children_sent(bodies: &Log<Value>) -> Rule {
    let bodies = bodies.clone();
    mock!(aws_sdk_sqs::Client::send_message_batch).then_compute_output(move |req| {
        let mut ok = aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput::builder();
        for entry in req.entries() {
            bodies.lock().unwrap().push(serde_json::from_str(entry.message_body()).unwrap_or(Value::Null));
            ok = ok.successful(
                aws_sdk_sqs::types::SendMessageBatchResultEntry::builder()
                    .id(entry.id())
                    .message_id("child")
                    .md5_of_message_body("0")
                    .build()
                    .unwrap(),
            );
        }
        ok.build().unwrap()
    })
}

#[tokio::test]
async fn every_retry_request_of_a_dry_run_by_the_settings_says_dry_run() {
    let denied = || {
        mock!(aws_sdk_workspaces::Client::describe_workspaces)
            .then_http_response(|| http(400, r#"{"__type":"AccessDeniedException","message":"no"}"#))
    };
    let throttled = || {
        mock!(aws_sdk_workspaces::Client::describe_workspaces)
            .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"slow down"}"#))
    };
    let request = ws_request(&["ws-dryrun01".to_owned()]);
    let selection = json!({"operation": "TerminateWorkspaces", "select": {"directoryId": "d-1234567890"}});
    for (case, settings, own) in dry_by_settings() {
        // Each record kind a dry run can leave: rejected, transient outside SQS, a
        // transient SQS message on its last delivery, a selection whose lookup failed,
        // and a fan-out whose children could not be sent.
        let kinds: Vec<(&str, Rule, Value, bool)> = vec![
            ("rejected", denied(), with_dry_run(request.clone(), own), false),
            ("transient, direct", throttled(), with_dry_run(request.clone(), own), false),
            ("transient, last SQS delivery", throttled(), with_dry_run(request.clone(), own), true),
            ("selection lookup failed", throttled(), with_dry_run(selection.clone(), own), false),
        ];
        for (kind, lookup, body, sqs) in kinds {
            let records = log();
            let send = sqs_send_ok(&records);
            let app = Doubles { ws: &[&lookup], mgn: &[], sc: &[], sqs: &[&send] }
                .app(Settings { max_receives: Some(1), ..settings.clone() });
            let payload = if sqs { sqs_event(&[("m-1", body)]) } else { body };

            invoke(&app, payload).await.unwrap();

            let records = taken(&records);
            assert_eq!(records.len(), 1, "{case}, {kind}");
            assert_eq!(records[0].1["retryRequest"]["dryRun"], true, "{case}, {kind}: {}", records[0].1);
            if let Some(own) = own {
                assert_eq!(records[0].1["request"]["dryRun"], own, "{case}, {kind}: the record echoes what came");
            }
        }

        let unsent = mock!(aws_sdk_sqs::Client::send_message_batch)
            .then_http_response(|| http(500, r#"{"__type":"InternalError","message":"down"}"#));
        let records = log();
        let send = sqs_send_ok(&records);
        let app = Doubles { ws: &[], mgn: &[], sc: &[], sqs: &[&send] }
            .app(Settings { allowed_accounts: vec!["111122223333".into()], ..settings.clone() })
            .with_request_queue(request_queue(&[&unsent]));
        let fan_out = with_dry_run(
            json!({"operation": "TerminateWorkspaces", "accounts": ["111122223333"],
                                          "select": {"tags": {"env": "sandbox"}}}),
            own,
        );
        invoke(&app, fan_out).await.unwrap();
        let records = taken(&records);
        assert_eq!(records.len(), 1, "{case}, fan-out");
        assert_eq!(records[0].1["retryRequest"]["dryRun"], true, "{case}, fan-out: {}", records[0].1);
    }
}

#[tokio::test]
async fn a_real_run_leaves_its_dry_run_member_as_it_was() {
    let throttled = mock!(aws_sdk_workspaces::Client::describe_workspaces)
        .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"slow down"}"#));
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[&throttled], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());

    invoke(&app, ws_request(&["ws-realrun1".to_owned()])).await.unwrap();

    let records = taken(&records);
    assert!(records[0].1["retryRequest"].get("dryRun").is_none(), "{}", records[0].1);
}

// ── 10.3 A replay names what the lookup found ─────────────────────────────────

#[tokio::test]
async fn the_retry_of_a_product_named_by_name_names_the_id_the_lookup_found() {
    let under_change = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_compute_output(|req| {
        DescribeProvisionedProductOutput::builder()
            .provisioned_product_detail(
                ProvisionedProductDetail::builder()
                    .id(format!("pp-{}", req.name().unwrap_or("x")))
                    .name(req.name().unwrap_or("x"))
                    .status(ProvisionedProductStatus::UnderChange)
                    .last_successful_provisioning_record_id("rec-1")
                    .build(),
            )
            .build()
    });
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&under_change, &terminate], sqs: &[&send] }.app(settings());
    let by_name = json!({"operation": "TerminateProvisionedProduct",
                         "input": {"ProvisionedProductName": "sandbox", "IgnoreErrors": true}});

    invoke(&app, by_name.clone()).await.unwrap();

    assert!(taken(&seen).is_empty(), "UNDER_CHANGE: nothing terminated now");
    let records = taken(&records);
    assert_eq!(records[0].3, "transient");
    assert_eq!(
        records[0].1["retryRequest"],
        json!({"operation": "TerminateProvisionedProduct",
               "input": {"ProvisionedProductId": "pp-sandbox", "IgnoreErrors": true}}),
        "a sandbox re-provisioned under the name later is never reached by the replay"
    );
    assert_eq!(records[0].1["request"], by_name, "the record still echoes what was received");
}

#[tokio::test]
async fn a_product_named_by_name_whose_lookup_found_nothing_gets_no_retry_that_names_it() {
    let down = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product)
        .then_http_response(|| http(500, r#"{"__type":"InternalFailure","message":"down"}"#));
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&down], sqs: &[&send] }.app(settings());

    invoke(&app, json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox"}}))
        .await
        .unwrap();

    let records = taken(&records);
    assert_eq!(records[0].3, "transient");
    assert!(records[0].1.get("retryRequest").is_none(), "never by name: {}", records[0].1);
    let message = records[0].1["error"]["message"].as_str().unwrap();
    assert!(message.contains("no retryRequest") && message.contains("by name"), "the record says why: {message}");
}

#[tokio::test]
async fn a_product_found_by_name_whose_tags_cannot_be_read_yet_is_retried_by_its_id() {
    // Describe finds it; the search index does not list it yet (its protection is unknown).
    let unlisted = mock!(aws_sdk_servicecatalog::Client::search_provisioned_products)
        .then_output(|| SearchProvisionedProductsOutput::builder().build());
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&unlisted, &terminate], sqs: &[&send] }.app(settings());

    invoke(&app, json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox"}}))
        .await
        .unwrap();

    assert!(taken(&seen).is_empty(), "protection unknown: nothing terminated");
    let records = taken(&records);
    assert_eq!((records[0].3.as_str(), records[0].1["error"]["code"].as_str()), ("transient", Some("TagsUnknown")));
    assert_eq!(
        records[0].1["retryRequest"],
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-sandbox"}})
    );
}

#[tokio::test]
async fn the_check_and_the_failed_retry_of_a_product_named_by_name_name_its_id() {
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let sent = log();
    let checks = checks_sent(&sent);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&terminate], sqs: &[] }
        .app(settings())
        .with_request_queue(request_queue(&[&checks]));

    invoke(
        &app,
        sqs_event(&[(
            "m-1",
            json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox"}}),
        )]),
    )
    .await
    .unwrap();

    assert_eq!(taken(&seen)[0].0.as_deref(), Some("pp-sandbox"));
    let sent = taken(&sent);
    let check = sent[0].0.clone();
    assert_eq!(
        check["confirm"]["request"],
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-sandbox"}})
    );

    // The check comes back and the record failed: the retry is cut from the check.
    let failed = mock!(aws_sdk_servicecatalog::Client::describe_record).then_output(|| {
        DescribeRecordOutput::builder()
            .record_detail(RecordDetail::builder().record_id("rec-1").status(RecordStatus::Failed).build())
            .build()
    });
    let records = log();
    let send = sqs_send_ok(&records);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&failed], sqs: &[&send] }.app(settings());
    invoke(&app, sqs_event(&[("c-1", check)])).await.unwrap();
    let records = taken(&records);
    assert_eq!(records[0].3, "failed");
    assert_eq!(
        records[0].1["retryRequest"],
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-sandbox"}})
    );
}

// ── 10.4 Tokens without a message id ──────────────────────────────────────────

#[tokio::test]
async fn direct_and_schedule_tokens_follow_the_lambda_request_id() {
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&terminate], sqs: &[] }.app(settings());
    let schedule_input =
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-sandbox1"}});
    let run = |request_id: &'static str| {
        let mut context = Context::default();
        context.request_id = request_id.to_owned();
        handle(&app, LambdaEvent::new(schedule_input.clone(), context))
    };

    run("run-1").await.unwrap();
    run("run-1").await.unwrap(); // Lambda's own retry of the same invocation
    run("run-2").await.unwrap(); // the schedule's next run, same Input

    let tokens: Vec<String> = taken(&seen).into_iter().map(|(_, _, t)| t.unwrap()).collect();
    assert_eq!(tokens.len(), 3);
    assert_eq!(tokens[0], tokens[1], "a retry of one invocation reuses its token");
    assert_ne!(tokens[0], tokens[2], "two runs of one schedule never share a token");
}

// ── "What each request ends as" as amended: a WorkSpace TERMINATING is terminated, underway ────────────

#[tokio::test]
async fn a_terminating_workspace_is_terminated_underway_not_sent_again_and_followed_up_on_a_redelivery() {
    let terminating = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(|req| {
        let found = req.workspace_ids().iter().map(|id| workspace(id, WorkspaceState::Terminating)).collect();
        DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
    });
    let calls = log();
    let terminate = ws_terminate_ok(&calls);
    let sent = log();
    let checks = checks_sent(&sent);
    let app = Doubles { ws: &[&terminating, &terminate], mgn: &[], sc: &[], sqs: &[] }
        .app(settings())
        .with_request_queue(request_queue(&[&checks]));
    let request = ws_request(&["ws-going001".to_owned()]);

    let report = invoke(&app, request.clone()).await.unwrap();
    assert_eq!(target_outcomes(&report, 0), vec![("ws-going001".to_owned(), "terminated".to_owned())]);
    assert_eq!(report["requests"][0]["outcome"], "terminated");

    let delivery = |count: &str| {
        let mut event = sqs_event(&[("m-1", request.clone())]);
        event["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!(count);
        event
    };
    invoke(&app, delivery("1")).await.unwrap();
    assert!(taken(&sent).is_empty(), "a first delivery: whoever started it follows it up");
    invoke(&app, delivery("2")).await.unwrap();
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1, "a redelivery follows it up: the first attempt may not have");
    assert_eq!(sent[0].0["confirm"]["targets"], json!([{"id": "ws-going001"}]));
    assert!(taken(&calls).is_empty(), "never sent again");
}

#[tokio::test]
async fn a_workspace_refused_because_it_is_already_terminating_is_terminated_not_rejected() {
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let states = {
        let asked = asked.clone();
        // Available before the call, TERMINATING after it (another call got there first).
        mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
            let state = if asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                WorkspaceState::Available
            } else {
                WorkspaceState::Terminating
            };
            let found = req.workspace_ids().iter().map(|id| workspace(id, state.clone())).collect();
            DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
        })
    };
    let refused = mock!(aws_sdk_workspaces::Client::terminate_workspaces).then_output(|| {
        TerminateWorkspacesOutput::builder()
            .failed_requests(
                aws_sdk_workspaces::types::FailedWorkspaceChangeRequest::builder()
                    .workspace_id("ws-raced001")
                    .error_code("InvalidResourceState.TerminatingOrTerminated")
                    .error_message("The WorkSpace is being terminated")
                    .build(),
            )
            .build()
    });
    let records = log();
    let send = sqs_send_ok(&records);
    let sent = log();
    let checks = checks_sent(&sent);
    let app = Doubles { ws: &[&states, &refused], mgn: &[], sc: &[], sqs: &[&send] }
        .app(settings())
        .with_request_queue(request_queue(&[&checks]));

    let response = invoke(&app, sqs_event(&[("m-1", ws_request(&["ws-raced001".to_owned()]))])).await.unwrap();

    assert!(failures(&response).is_empty());
    assert!(taken(&records).is_empty(), "not a rejection: no record");
    // This very call may have started it (an attempt retried after a timeout was
    // accepted): it is followed up, even on a first delivery.
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0["confirm"]["targets"], json!([{"id": "ws-raced001"}]));
}
