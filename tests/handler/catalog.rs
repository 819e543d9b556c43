//! Service Catalog: tokens, the authoritative lookups behind the search index, names and ARNs, one call per product.

use crate::doubles::*;
use crate::shared::*;

fn sc_search_nothing() -> Rule {
    mock!(aws_sdk_servicecatalog::Client::search_provisioned_products)
        .then_output(|| SearchProvisionedProductsOutput::builder().build())
}

#[tokio::test]
async fn the_terminate_token_follows_the_sqs_message() {
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&terminate], sqs: &[] }.app(settings());
    let request = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-sandbox1"}});

    invoke(&app, sqs_event(&[("m-1", request.clone())])).await.unwrap();
    invoke(&app, sqs_event(&[("m-1", request.clone())])).await.unwrap();
    invoke(&app, sqs_event(&[("m-2", request.clone())])).await.unwrap();
    let given = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox", "TerminateToken": "mine-1"}});
    invoke(&app, sqs_event(&[("m-3", given)])).await.unwrap();

    let seen = taken(&seen);
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].0.as_deref(), Some("pp-sandbox1"));
    let token = seen[0].2.clone().unwrap();
    assert_eq!(seen[1].2.as_deref(), Some(token.as_str()), "a redelivery reuses the token");
    assert_ne!(seen[2].2.as_deref(), Some(token.as_str()), "another message gets another token");
    // Named by name, the call names the product that was looked up, by its id.
    assert_eq!(
        (seen[3].0.as_deref(), seen[3].1.as_deref(), seen[3].2.as_deref()),
        (Some("pp-sandbox"), None, Some("mine-1")),
        "a given token is used as is"
    );
}

#[tokio::test]
async fn a_product_already_gone_is_not_found_and_not_dead_lettered() {
    let terminate = mock!(aws_sdk_servicecatalog::Client::terminate_provisioned_product).then_http_response(|| {
        http(400, r#"{"__type":"ResourceNotFoundException","Message":"Provisioned product not found"}"#)
    });
    let send = mock!(aws_sdk_sqs::Client::send_message).then_output(|| SendMessageOutput::builder().build());
    let app = Doubles { ws: &[], mgn: &[], sc: &[&terminate], sqs: &[&send] }.app(settings());

    let response = invoke(
        &app,
        sqs_event(&[(
            "m-1",
            json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-gone"}}),
        )]),
    )
    .await
    .unwrap();

    assert!(failures(&response).is_empty());
    assert_eq!(send.num_calls(), 0);
    let report =
        invoke(&app, json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-gone"}}))
            .await
            .unwrap();
    assert_eq!(report["requests"][0]["outcome"], "not_found");
}

#[tokio::test]
async fn expired_sandboxes_are_found_across_pages_each_with_its_own_token() {
    fn expires(when: &str) -> [(&str, &str); 1] {
        [("teardown:expires-at", when)]
    }
    let pages = [
        vec![
            product("pp-past00001", "sbx-past", ProvisionedProductStatus::Available, &expires("2026-11-01")),
            product("pp-future001", "sbx-future", ProvisionedProductStatus::Available, &expires("2027-01-01")),
        ],
        vec![
            product("pp-garbled01", "sbx-garbled", ProvisionedProductStatus::Available, &expires("whenever")),
            product("pp-changing1", "sbx-changing", ProvisionedProductStatus::UnderChange, &expires("2026-10-01")),
        ],
        vec![
            product(
                "pp-keep00001",
                "sbx-keep",
                ProvisionedProductStatus::Available,
                &[("teardown:expires-at", "2026-10-01"), ("teardown:protect", "x")],
            ),
            product("pp-past00002", "sbx-past2", ProvisionedProductStatus::Error, &expires("2026-11-24T09:00:00Z")),
        ],
    ];
    let catalog: Vec<ProvisionedProductAttribute> = pages.concat();
    let queries = log::<Option<String>>();
    let search = {
        let queries = queries.clone();
        mock!(aws_sdk_servicecatalog::Client::search_provisioned_products).then_compute_output(move |req| {
            queries
                .lock()
                .unwrap()
                .push(req.filters().and_then(|f| f.values().next()).and_then(|v| v.first()).cloned());
            let page = page_of(req.page_token());
            SearchProvisionedProductsOutput::builder()
                .set_provisioned_products(Some(pages[page].clone()))
                .set_next_page_token(next_token(page))
                .build()
        })
    };
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let sent = log();
    let send = sqs_send_ok(&sent);
    let (describe, record) = sc_authoritative(catalog);
    let app =
        Doubles { ws: &[], mgn: &[], sc: &[&search, &describe, &record, &terminate], sqs: &[&send] }.app(settings());

    let report = invoke(
        &app,
        json!({"operation": "TerminateProvisionedProduct", "select": {"productId": "prod-sandbox", "expired": true, "RetainPhysicalResources": false}}),
    )
    .await
    .unwrap();

    assert_eq!(
        taken(&queries),
        vec![Some("productId:prod-sandbox".to_owned()); 3],
        "every page, narrowed on the server"
    );
    let mut terminated: Vec<(Option<String>, Option<String>)> =
        taken(&seen).into_iter().map(|(id, _, token)| (id, token)).collect();
    terminated.sort();
    assert_eq!(
        terminated.iter().map(|(id, _)| id.clone().unwrap()).collect::<Vec<_>>(),
        vec!["pp-past00001", "pp-past00002"]
    );
    assert_ne!(terminated[0].1, terminated[1].1, "one token per product");
    let outcomes = target_outcomes(&report, 0);
    assert_eq!(
        outcomes,
        vec![
            ("pp-past00001".into(), "terminated".into()),
            ("pp-garbled01".into(), "skipped".into()),
            ("pp-changing1".into(), "transient".into()),
            ("pp-keep00001".into(), "protected".into()),
            ("pp-past00002".into(), "terminated".into()),
        ]
    );
    // UNDER_CHANGE will settle: outside SQS that is a record with a replayable request,
    // which keeps every filter of the selection (docs/reference.md, "The dead-letter record"): on replay the product
    // is terminated only if it is still of that product and still expired.
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1["outcome"], "transient");
    assert_eq!(
        sent[0].1["retryRequest"],
        json!({"operation": "TerminateProvisionedProduct", "select": {
            "ids": ["pp-changing1"], "productId": "prod-sandbox", "expired": true, "RetainPhysicalResources": false}})
    );
}

/// Rule 2: a search miss is not "gone". DescribeProvisionedProduct decides; a product
/// the search index misses but that exists has unknown tags: transient, no call.
#[tokio::test]
async fn a_product_the_search_index_misses_is_transient_and_never_terminated() {
    let calls = log();
    let terminate = sc_terminate_recording(&calls);
    let search = sc_search_nothing();
    let app = Doubles { ws: &[], mgn: &[], sc: &[&search, &terminate], sqs: &[] }.app(settings());
    let request =
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox-new"}});

    let response = invoke(&app, sqs_event(&[("m-1", request)])).await.unwrap();

    assert_eq!(failures(&response), vec!["m-1"], "redelivered: the index may list it later");
    assert!(taken(&calls).is_empty(), "its protection tag is unknown: no terminate call");
}

#[tokio::test]
async fn a_product_that_describe_does_not_know_is_not_found_without_a_terminate_call() {
    let calls = log();
    let terminate = sc_terminate_recording(&calls);
    let gone = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_http_response(|| {
        http(400, r#"{"__type":"ResourceNotFoundException","Message":"Provisioned product not found"}"#)
    });
    let app = Doubles { ws: &[], mgn: &[], sc: &[&gone, &terminate], sqs: &[] }.app(settings());
    let request = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-gone0001"}});

    let report = invoke(&app, request).await.unwrap();

    assert_eq!(target_outcomes(&report, 0), vec![("pp-gone0001".to_owned(), "not_found".to_owned())]);
    assert!(taken(&calls).is_empty());
}

/// The search index lags: a product it still shows as expired and AVAILABLE is
/// looked up where Service Catalog is authoritative before it is terminated. Its
/// expiry moved (record tags) or it is changing now: not terminated.
#[tokio::test]
async fn a_selection_judges_products_again_on_authoritative_status_and_tags() {
    let indexed = vec![
        product("pp-moved0001", "moved", ProvisionedProductStatus::Available, &[("teardown:expires-at", "2026-11-01")]),
        product("pp-busy00001", "busy", ProvisionedProductStatus::Available, &[("teardown:expires-at", "2026-11-01")]),
        product("pp-due000001", "due", ProvisionedProductStatus::Available, &[("teardown:expires-at", "2026-11-01")]),
    ];
    let now = vec![
        product("pp-moved0001", "moved", ProvisionedProductStatus::Available, &[("teardown:expires-at", "2027-06-01")]),
        product(
            "pp-busy00001",
            "busy",
            ProvisionedProductStatus::UnderChange,
            &[("teardown:expires-at", "2026-11-01")],
        ),
        product("pp-due000001", "due", ProvisionedProductStatus::Available, &[("teardown:expires-at", "2026-11-01")]),
    ];
    let search = mock!(aws_sdk_servicecatalog::Client::search_provisioned_products).then_output(move || {
        SearchProvisionedProductsOutput::builder().set_provisioned_products(Some(indexed.clone())).build()
    });
    let (describe, record) = sc_authoritative(now);
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&search, &describe, &record, &terminate], sqs: &[] }.app(settings());

    let response = invoke(
        &app,
        sqs_event(&[("m-1", json!({"operation": "TerminateProvisionedProduct", "select": {"expired": true}}))]),
    )
    .await
    .unwrap();

    let terminated: Vec<Option<String>> = taken(&seen).into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(terminated, vec![Some("pp-due000001".to_owned())]);
    assert_eq!(failures(&response), vec!["m-1"], "the product under change is retried");
}

/// A named product whose protection tag is on its record but not yet in the index is protected.
#[tokio::test]
async fn a_named_product_protected_on_its_record_but_not_in_the_index_is_protected() {
    let catalog =
        vec![product("pp-guarded01", "guarded", ProvisionedProductStatus::Available, &[("teardown:protect", "yes")])];
    let (describe, record) = sc_authoritative(catalog);
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    // The default search finds it, untagged: the index has not seen the tag yet.
    let app = Doubles { ws: &[], mgn: &[], sc: &[&describe, &record, &terminate], sqs: &[] }.app(settings());
    let request =
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-guarded01"}});

    let report = invoke(&app, request).await.unwrap();

    assert!(taken(&seen).is_empty());
    assert_eq!(target_outcomes(&report, 0), vec![("pp-guarded01".to_owned(), "protected".to_owned())]);
}

/// A name that, by redelivery time, names a product provisioned after the request
/// was sent is not the product the request meant: nothing is terminated.
#[tokio::test]
async fn a_name_that_now_names_a_newer_product_terminates_nothing() {
    let created = aws_smithy_types::DateTime::from_secs(1_800_000_000); // 2027
    let newer = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_output(move || {
        DescribeProvisionedProductOutput::builder()
            .provisioned_product_detail(
                ProvisionedProductDetail::builder()
                    .id("pp-sandbox")
                    .name("sandbox")
                    .status(ProvisionedProductStatus::Available)
                    .created_time(created)
                    .last_successful_provisioning_record_id("rec-1")
                    .build(),
            )
            .build()
    });
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&newer, &terminate], sqs: &[] }.app(settings());
    let request = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox"}});
    let mut event = sqs_event(&[("m-1", request)]);
    event["Records"][0]["attributes"]["SentTimestamp"] = json!("1763978400000"); // 2025-11-24

    let response = invoke(&app, event).await.unwrap();

    assert!(failures(&response).is_empty());
    assert!(taken(&seen).is_empty(), "the newer product is not the one named");
}

/// A product named by ARN is looked up by the id the ARN ends with, and only if the
/// product there has that ARN.
#[tokio::test]
async fn a_product_named_by_arn_is_looked_up_by_its_id_and_terminated_by_it() {
    let arn = "arn:aws:servicecatalog:us-east-1:123456789012:stack/sandbox/pp-arnnamed1";
    let describe = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product)
        .match_requests(|req| req.id() == Some("pp-arnnamed1") && req.name().is_none())
        .then_output(move || {
            DescribeProvisionedProductOutput::builder()
                .provisioned_product_detail(
                    ProvisionedProductDetail::builder()
                        .id("pp-arnnamed1")
                        .arn(arn)
                        .status(ProvisionedProductStatus::Available)
                        .last_successful_provisioning_record_id("rec-1")
                        .build(),
                )
                .build()
        });
    let search = mock!(aws_sdk_servicecatalog::Client::search_provisioned_products).then_output(|| {
        SearchProvisionedProductsOutput::builder()
            .provisioned_products(product("pp-arnnamed1", "sandbox", ProvisionedProductStatus::Available, &[]))
            .build()
    });
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&describe, &search, &terminate], sqs: &[] }.app(settings());
    let request = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": arn}});

    let report = invoke(&app, request).await.unwrap();

    assert_eq!(target_outcomes(&report, 0), vec![(arn.to_owned(), "terminated".to_owned())]);
    assert_eq!(
        taken(&seen).into_iter().map(|(id, name, _)| (id, name)).collect::<Vec<_>>(),
        vec![(Some("pp-arnnamed1".to_owned()), None)]
    );
}

/// An ARN whose id finds a product with another ARN is a wrong request: rejected
/// with a record, never reported done.
#[tokio::test]
async fn an_arn_that_names_no_product_here_is_rejected_not_reported_gone() {
    let arn = "arn:aws:servicecatalog:eu-west-1:999999999999:stack/sandbox/pp-arnnamed1";
    let sent = log();
    let send = sqs_send_ok(&sent);
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    // The default Describe finds pp-arnnamed1, with no ARN at all.
    let app = Doubles { ws: &[], mgn: &[], sc: &[&terminate], sqs: &[&send] }.app(settings());
    let request = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": arn}});

    let report = invoke(&app, request).await.unwrap();

    assert_eq!(report["requests"][0]["outcome"], "rejected");
    assert!(taken(&seen).is_empty());
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1["error"]["code"], "ArnMismatch");
}

/// A product under change because it is being terminated is `terminated`, naming the
/// record, and sent nothing: a redelivered selection does not cycle on it.
#[tokio::test]
async fn a_product_already_terminating_is_terminated_naming_its_record_without_a_call() {
    let describe = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_output(|| {
        DescribeProvisionedProductOutput::builder()
            .provisioned_product_detail(
                ProvisionedProductDetail::builder()
                    .id("pp-going0001")
                    .status(ProvisionedProductStatus::UnderChange)
                    .last_record_id("rec-terminate1")
                    .last_successful_provisioning_record_id("rec-provision1")
                    .build(),
            )
            .build()
    });
    let records = mock!(aws_sdk_servicecatalog::Client::describe_record).then_compute_output(|req| {
        let detail = match req.id() {
            Some("rec-terminate1") => RecordDetail::builder()
                .record_id("rec-terminate1")
                .record_type("TERMINATE_PROVISIONED_PRODUCT")
                .status(RecordStatus::InProgress),
            _ => RecordDetail::builder().record_id("rec-provision1"),
        };
        DescribeRecordOutput::builder().record_detail(detail.build()).build()
    });
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&describe, &records, &terminate], sqs: &[] }.app(settings());
    let request =
        json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-going0001"}});

    let response = invoke(&app, sqs_event(&[("m-1", request.clone())])).await.unwrap();
    let report = invoke(&app, request).await.unwrap();

    assert!(failures(&response).is_empty(), "not redelivered until the queue gives up");
    assert!(taken(&seen).is_empty());
    let target = &report["requests"][0]["targets"][0];
    assert_eq!((target["outcome"].as_str(), target["recordId"].as_str()), (Some("terminated"), Some("rec-terminate1")));
}

/// Two messages naming one product make one call, and both read its answer.
#[tokio::test]
async fn two_messages_naming_one_product_make_one_call() {
    let seen = log();
    let terminate = sc_terminate_recording(&seen);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&terminate], sqs: &[] }.app(settings());
    let by_id = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-sandbox"}});
    let by_name = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox"}});

    let report = invoke(&app, json!({"requests": [by_id, by_name]})).await.unwrap();

    assert_eq!(taken(&seen).len(), 1);
    assert_eq!(target_outcomes(&report, 0), vec![("pp-sandbox".to_owned(), "terminated".to_owned())]);
    assert_eq!(target_outcomes(&report, 1), vec![("sandbox".to_owned(), "terminated".to_owned())]);
}

/// A name may be another product's id: two requests of a batch that name the same
/// string for two different products each read their own product's answer.
#[tokio::test]
async fn a_name_that_is_another_products_id_never_shares_its_answer() {
    let describe = mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_compute_output(|req| {
        // By name, "pp-abc123" is the product pp-zzz00001; by id, it is itself.
        let id = if req.name().is_some() { "pp-zzz00001" } else { "pp-abc123" };
        DescribeProvisionedProductOutput::builder()
            .provisioned_product_detail(
                ProvisionedProductDetail::builder()
                    .id(id)
                    .status(ProvisionedProductStatus::Available)
                    .last_successful_provisioning_record_id("rec-1")
                    .build(),
            )
            .build()
    });
    let search = mock!(aws_sdk_servicecatalog::Client::search_provisioned_products).then_output(|| {
        SearchProvisionedProductsOutput::builder()
            .provisioned_products(product("pp-abc123", "other", ProvisionedProductStatus::Available, &[]))
            .provisioned_products(product("pp-zzz00001", "pp-abc123", ProvisionedProductStatus::Available, &[]))
            .build()
    });
    let refuse = mock!(aws_sdk_servicecatalog::Client::terminate_provisioned_product)
        .match_requests(|req| req.provisioned_product_id() == Some("pp-abc123"))
        .then_http_response(|| http(400, r#"{"__type":"InvalidStateException","Message":"refused"}"#));
    let seen = log();
    let accept = sc_terminate_recording(&seen);
    let sent = log();
    let send = sqs_send_ok(&sent);
    let app = Doubles { ws: &[], mgn: &[], sc: &[&describe, &search, &refuse, &accept], sqs: &[&send] }.app(settings());
    let by_name = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "pp-abc123"}});
    let by_id = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-abc123"}});

    let response = invoke(&app, sqs_event(&[("m-1", by_name), ("m-2", by_id)])).await.unwrap();

    assert!(failures(&response).is_empty());
    let sent = taken(&sent);
    assert_eq!(sent.len(), 1, "m-2's refusal is its own, and is not lost");
    assert_eq!(sent[0].1["source"]["messageId"], "m-2");
    assert_eq!(sent[0].3, "rejected");
}
