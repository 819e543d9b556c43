//! Notice before termination, never-connected WorkSpaces and the richer filters
//! (docs/reference.md, "Notice"), end to end: WorkSpaces, their tags, SQS and
//! EventBridge in moto (behind a stand-in for the calls moto lacks), MGN in an HTTP
//! stand-in. The function runs in this process so that its clock can move on by
//! days between runs; every call is read back from the emulators' own logs.

#[path = "../support/mod.rs"]
mod support;

use std::cell::Cell;

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use support::workspaces_front::Front;
use support::{Moto, sorted_outcomes as targets};
use teardown::audit::AuditBus;
use teardown::deadletter::DeadLetterQueue;
use teardown::handler::{App, handle};
use teardown::services::{Catalog, Mgn, Services, Workspaces};
use teardown::settings::Settings;
use time::OffsetDateTime;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const T0: OffsetDateTime = time::macros::datetime!(2026-12-01 10:37:00 UTC);
const DAY: i64 = 86_400;

thread_local! {
    /// Seconds after T0 that the function's clock reads.
    static SECONDS: Cell<i64> = const { Cell::new(0) };
}

fn clock() -> OffsetDateTime {
    T0 + time::Duration::seconds(SECONDS.with(Cell::get))
}

fn days_later(days: i64) {
    SECONDS.with(|s| s.set(days * DAY));
}

macro_rules! client_at {
    ($sdk:ident, $endpoint:expr) => {{
        let config = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new("us-east-1"))
            .endpoint_url($endpoint)
            .credentials_provider($sdk::config::Credentials::new("testing", "testing", None, None, "tests"))
            .retry_config($sdk::config::retry::RetryConfig::disabled())
            .build();
        $sdk::Client::from_conf(config)
    }};
}

/// The emulators and the function between them.
struct World {
    moto: Moto,
    front: Front,
    mgn: MockServer,
    dlq: String,
    audit: String,
    app: App,
}

async fn world() -> World {
    let moto = Moto::start();
    let front = Front::start(&moto.endpoint).await;
    let mgn = MockServer::start().await;
    let dlq = moto.queue("teardown-dlq");
    let audit = moto.audit_bus("teardown-audit", "audit-events");
    let services = Services {
        workspaces: Workspaces::new(client_at!(aws_sdk_workspaces, &front.endpoint))
            .with_tagging(client_at!(aws_sdk_resourcegroupstagging, &moto.endpoint)),
        mgn: Mgn::new(client_at!(aws_sdk_mgn, &mgn.uri())),
        catalog: Catalog::new(client_at!(aws_sdk_servicecatalog, &support::dead_endpoint())),
    };
    let settings = Settings { dlq_url: Some(dlq.clone()), ..Settings::default() };
    let mut app = App::new(services, DeadLetterQueue::new(moto.sqs(), Some(dlq.clone())), settings);
    app.audit = AuditBus::new(client_at!(aws_sdk_eventbridge, &moto.endpoint), Some("teardown-audit".to_owned()));
    app.clock = clock;
    app.metrics = false;
    World { moto, front, mgn, dlq, audit, app }
}

impl World {
    async fn run(&self, request: Value) -> Value {
        let mut context = Context::default();
        context.request_id = format!("run-{}", SECONDS.with(Cell::get));
        handle(&self.app, LambdaEvent::new(request, context)).await.expect("the invocation answers")
    }

    /// Each WorkSpace's tags, as moto keeps them (and as the stand-in shows them).
    async fn tags_of(&self, id: &str) -> Vec<(String, String)> {
        let ws = client_at!(aws_sdk_workspaces, &self.front.endpoint);
        let out = ws.describe_tags().resource_id(id).send().await.expect("DescribeTags");
        let mut tags: Vec<(String, String)> =
            out.tag_list().iter().map(|t| (t.key().to_owned(), t.value().unwrap_or("").to_owned())).collect();
        tags.sort();
        tags
    }

    async fn tag(&self, id: &str, key: &str, value: &str) {
        let ws = self.moto.workspaces_client();
        let tag = aws_sdk_workspaces::types::Tag::builder().key(key).value(value).build().unwrap();
        ws.create_tags().resource_id(id).tags(tag).send().await.expect("CreateTags in moto");
    }

    /// Which of `ids` moto still has neither terminating nor terminated.
    async fn live(&self, ids: &[String]) -> Vec<String> {
        let ws = self.moto.workspaces_client();
        let out =
            ws.describe_workspaces().set_workspace_ids(Some(ids.to_vec())).send().await.expect("DescribeWorkspaces");
        out.workspaces()
            .iter()
            .filter(|w| !matches!(w.state().map(|s| s.as_str()), Some("TERMINATING" | "TERMINATED")))
            .filter_map(|w| w.workspace_id().map(str::to_owned))
            .collect()
    }

    /// The ids of `TerminateWorkspaces` calls the stand-in received, per call.
    fn terminate_calls(&self) -> Vec<Vec<String>> {
        self.front
            .calls("TerminateWorkspaces")
            .iter()
            .map(|b| {
                b["TerminateWorkspaceRequests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["WorkspaceId"].as_str().unwrap().to_owned())
                    .collect()
            })
            .collect()
    }

    /// `CreateTags` calls as (WorkSpace, key, value).
    fn tag_writes(&self) -> Vec<(String, String, String)> {
        let mut writes: Vec<(String, String, String)> = self
            .front
            .calls("CreateTags")
            .iter()
            .flat_map(|b| {
                let id = b["ResourceId"].as_str().unwrap().to_owned();
                b["Tags"].as_array().unwrap().iter().map(move |t| {
                    (id.clone(), t["Key"].as_str().unwrap().to_owned(), t["Value"].as_str().unwrap().to_owned())
                })
            })
            .collect();
        writes.sort();
        writes
    }

    /// The audit events the bus delivered, as (detail-type, detail).
    async fn audit_events(&self) -> Vec<(String, Value)> {
        self.moto
            .drain(&self.audit)
            .await
            .into_iter()
            .map(|(event, _, _)| (event["detail-type"].as_str().unwrap_or("").to_owned(), event["detail"].clone()))
            .collect()
    }
}

fn target<'a>(report: &'a Value, id: &str) -> &'a Value {
    let list = report["requests"][0]["targets"].as_array().unwrap();
    list.iter().find(|t| t["id"] == id).unwrap_or_else(|| panic!("{id} is not in {report}"))
}

fn ended(pairs: &[(&String, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs.iter().map(|(id, o)| ((*id).clone(), (*o).to_owned())).collect();
    out.sort();
    out
}

const EXPIRES: &str = "teardown:expires-at";

#[tokio::test(flavor = "current_thread")]
async fn a_notice_then_an_expired_run_days_later_terminates_exactly_what_kept_its_notice() {
    let w = world().await;
    let (_, sandbox) = w.moto.tagged_workspaces(5, "sbx", &[("env", "sandbox")]);
    let (_, dev) = w.moto.tagged_workspaces(1, "dev", &[("env", "dev")]);
    let (_, prod) = w.moto.tagged_workspaces(1, "prod", &[("env", "prod")]);
    let (_, owned) = w.moto.tagged_workspaces(1, "own", &[("env", "sandbox"), ("owner", "carol")]);
    let (_, protected) = w.moto.tagged_workspaces(1, "keep", &[("env", "sandbox"), ("teardown:protect", "")]);
    let all = [sandbox.clone(), dev.clone(), prod.clone(), owned.clone(), protected.clone()].concat();
    let forty_days_ago = T0.unix_timestamp() - 40 * DAY;
    for id in &all {
        w.front.connect(id, "DISCONNECTED", Some(forty_days_ago));
    }
    // The rule of the template's two steps, with the owner filter a team adds.
    let select = json!({"tags": {"env": ["sandbox", "dev"]}, "tagsAbsent": ["owner"], "idleDays": 30});
    let notice = json!({"operation": "TerminateWorkspaces", "notice": {"days": 7}, "select": select});
    let mut expired = json!({"operation": "TerminateWorkspaces", "select": select});
    expired["select"]["expired"] = json!(true);

    // What plan shows first: a dry run names the expiry it would set and writes nothing.
    let mut dry = notice.clone();
    dry["dryRun"] = json!(true);
    let report = w.run(dry).await;
    let dry_ids = [sandbox.clone(), dev.clone()].concat();
    let mut want: Vec<(&String, &str)> = dry_ids.iter().map(|id| (id, "dry_run")).collect();
    want.push((&protected[0], "protected"));
    assert_eq!(targets(&report), ended(&want));
    assert_eq!(target(&report, &sandbox[0])["expiresAt"], "2026-12-08T10:00:00Z");
    assert!(w.front.calls("CreateTags").is_empty(), "a dry run writes nothing");
    let _ = w.audit_events().await;

    // The notice: each target that passes every filter and guard is tagged once.
    let report = w.run(notice.clone()).await;
    let mut want: Vec<(&String, &str)> = dry_ids.iter().map(|id| (id, "noticed")).collect();
    want.push((&protected[0], "protected"));
    assert_eq!(targets(&report), ended(&want));
    assert_eq!(report["requests"][0]["outcome"], "noticed");
    let mut want_writes: Vec<(String, String, String)> =
        dry_ids.iter().map(|id| (id.clone(), EXPIRES.to_owned(), "2026-12-08T10:00:00Z".to_owned())).collect();
    want_writes.sort();
    assert_eq!(w.tag_writes(), want_writes, "exactly one CreateTags per noticed WorkSpace, and no other tag");
    assert!(w.tags_of(&sandbox[0]).await.contains(&(EXPIRES.to_owned(), "2026-12-08T10:00:00Z".to_owned())));
    assert!(w.tags_of(&prod[0]).await.iter().all(|(k, _)| k != EXPIRES));
    assert!(w.terminate_calls().is_empty(), "a notice terminates nothing");
    assert!(w.moto.drain(&w.dlq).await.is_empty(), "a notice leaves no record");

    // The owner receives one notice event per WorkSpace, with the date and the user.
    let events = w.audit_events().await;
    let notices: Vec<&Value> = events.iter().filter(|(t, _)| t == "Teardown Target Notice").map(|(_, d)| d).collect();
    assert_eq!(notices.len(), 6, "{events:?}");
    let first = notices.iter().find(|d| d["id"] == sandbox[0]).expect("a notice for each");
    assert_eq!(first["outcome"], "noticed");
    assert_eq!(first["expiresAt"], "2026-12-08T10:00:00Z");
    assert_eq!(first["userName"], "sbx0");
    assert_eq!(first["operation"], "TerminateWorkspaces");
    assert!(events.iter().any(|(t, d)| t == "Teardown Target Decision" && d["outcome"] == "protected"));

    // A second notice run keeps the dates set: nothing is written again.
    days_later(2);
    let report = w.run(notice.clone()).await;
    assert_eq!(target(&report, &sandbox[1])["outcome"], "skipped");
    assert!(
        target(&report, &sandbox[1])["reason"].as_str().unwrap().contains("already noticed until 2026-12-08T10:00:00Z")
    );
    assert_eq!(w.tag_writes().len(), 6, "no tag is written twice");

    // The owners act: one removes the tag, one protects, one connects again.
    w.front.forget(&sandbox[1], EXPIRES);
    w.tag(&sandbox[2], "teardown:protect", "mine").await;
    w.front.connect(&sandbox[3], "DISCONNECTED", Some((T0 + time::Duration::days(3)).unix_timestamp()));

    // Before the date, the expired run terminates nothing.
    days_later(6);
    let report = w.run(expired.clone()).await;
    assert!(w.terminate_calls().is_empty(), "not yet expired: {report}");

    // After it, exactly those that kept their notice and still match.
    days_later(7);
    let report = w.run(expired.clone()).await;
    let mut called = w.terminate_calls().concat();
    called.sort();
    let mut want = vec![sandbox[0].clone(), sandbox[4].clone(), dev[0].clone()];
    want.sort();
    assert_eq!(called, want, "the expired, still idle, still tagged: one call, exactly those ({report})");
    assert_eq!(w.terminate_calls().len(), 1);
    assert_eq!(target(&report, &sandbox[2])["outcome"], "protected");
    let mut left = w.live(&all).await;
    left.sort();
    let mut spared =
        [vec![sandbox[1].clone(), sandbox[2].clone(), sandbox[3].clone()], prod, owned, protected].concat();
    spared.sort();
    assert_eq!(left, spared, "the owner who removed the tag, protected it or used it again keeps it");

    // Forty days on, the one used on day 3 is idle again: its lapsed date does not
    // count, and the next notice run gives it a new one.
    days_later(40);
    let report = w.run(expired.clone()).await;
    assert_eq!(w.terminate_calls().len(), 1, "no second call: {report}");
    assert_eq!(target(&report, &sandbox[3])["outcome"], "skipped");
    let report = w.run(notice.clone()).await;
    assert_eq!(target(&report, &sandbox[3])["outcome"], "noticed");
    assert_eq!(target(&report, &sandbox[3])["expiresAt"], "2027-01-17T10:00:00Z");
    assert!(w.tags_of(&sandbox[3]).await.contains(&(EXPIRES.to_owned(), "2027-01-17T10:00:00Z".to_owned())));
}

#[tokio::test(flavor = "current_thread")]
async fn two_notices_of_one_batch_report_the_one_date_the_tag_holds() {
    let w = world().await;
    let (_, ids) = w.moto.tagged_workspaces(1, "sbx", &[("env", "sandbox")]);
    let notice = |days: u32| json!({"operation": "TerminateWorkspaces", "notice": {"days": days}, "select": {"tags": {"env": "sandbox"}}});

    let report = w.run(json!({"requests": [notice(7), notice(30)]})).await;

    assert_eq!(w.tag_writes(), vec![(ids[0].clone(), EXPIRES.to_owned(), "2026-12-08T10:00:00Z".to_owned())]);
    for request in report["requests"].as_array().unwrap() {
        assert_eq!(request["targets"][0]["expiresAt"], "2026-12-08T10:00:00Z", "{report}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_tag_write_that_fails_is_that_targets_own_end_and_its_replay_is_a_notice() {
    let w = world().await;
    let (_, ids) = w.moto.tagged_workspaces(3, "sbx", &[("env", "sandbox")]);
    w.front.refuse_tags(&ids[0], 400, "AccessDeniedException");
    w.front.refuse_tags(&ids[1], 400, "ThrottlingException");
    let notice =
        json!({"operation": "TerminateWorkspaces", "notice": {"days": 3}, "select": {"tags": {"env": "sandbox"}}});

    let report = w.run(notice).await;

    assert_eq!(targets(&report), ended(&[(&ids[0], "rejected"), (&ids[1], "transient"), (&ids[2], "noticed")]));
    assert_eq!(target(&report, &ids[0])["error"]["code"], "AccessDeniedException");
    assert!(w.tags_of(&ids[2]).await.contains(&(EXPIRES.to_owned(), "2026-12-04T10:00:00Z".to_owned())));
    assert!(w.terminate_calls().is_empty());
    // Outside SQS there is no redelivery: one record, naming the two that failed, and
    // a replay that notices them (never one that terminates).
    let records = w.moto.drain(&w.dlq).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let (record, _, _) = &records[0];
    let mut failed: Vec<&str> =
        record["failedTargets"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    failed.sort();
    let mut want = vec![ids[0].as_str(), ids[1].as_str()];
    want.sort();
    assert_eq!(failed, want);
    let retry = &record["retryRequest"];
    assert_eq!(retry["notice"], json!({"days": 3}), "{retry}");
    let mut retried: Vec<&str> =
        retry["select"]["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    retried.sort();
    assert_eq!(retried, want);
    assert_eq!(retry["select"]["tags"], json!({"env": "sandbox"}));
}

#[tokio::test(flavor = "current_thread")]
async fn never_connected_workspaces_are_idle_from_the_day_first_seen_and_connected_ones_never() {
    let w = world().await;
    let (_, never) = w.moto.tagged_workspaces(2, "new", &[("env", "sandbox")]);
    let (_, connected) = w.moto.tagged_workspaces(1, "busy", &[("env", "sandbox")]);
    let (_, other) = w.moto.tagged_workspaces(1, "prod", &[("env", "prod")]);
    // Connected now, though its last recorded connection is a year old.
    w.front.connect(&connected[0], "CONNECTED", Some(T0.unix_timestamp() - 365 * DAY));
    let select = json!({"operation": "TerminateWorkspaces", "select": {"tags": {"env": "sandbox"}, "idleDays": 30}});

    // A dry run dates nothing.
    let mut dry = select.clone();
    dry["dryRun"] = json!(true);
    let report = w.run(dry).await;
    assert_eq!(report["requests"][0]["targets"], json!([]), "{report}");
    assert!(w.front.calls("CreateTags").is_empty());

    // The first real run dates the never-connected ones, and terminates nothing.
    let _ = w.run(select.clone()).await;
    let mut want: Vec<(String, String, String)> =
        never.iter().map(|id| (id.clone(), "teardown:first-seen".to_owned(), "2026-12-01".to_owned())).collect();
    want.sort();
    assert_eq!(w.tag_writes(), want, "the connected WorkSpace and the unselected one are not dated");
    assert!(w.tags_of(&other[0]).await.iter().all(|(k, _)| k != "teardown:first-seen"));

    days_later(29);
    let _ = w.run(select.clone()).await;
    assert!(w.terminate_calls().is_empty(), "29 days after first seen is not 30");
    assert_eq!(w.tag_writes().len(), 2, "dated once");

    days_later(30);
    let report = w.run(select.clone()).await;
    let mut called = w.terminate_calls().concat();
    called.sort();
    let mut want_ids = never.clone();
    want_ids.sort();
    assert_eq!(called, want_ids, "{report}");
    assert!(target(&report, &never[0])["reason"].as_str().unwrap().contains("never connected, first seen 2026-12-01"));
    assert_eq!(w.live(&connected).await, connected, "a connected WorkSpace is never idle");
}

#[tokio::test(flavor = "current_thread")]
async fn running_modes_narrow_a_selection_before_any_tag_is_read() {
    let w = world().await;
    let (directory, ids) = w.moto.tagged_workspaces(2, "sbx", &[("env", "sandbox")]);
    // moto makes WorkSpaces ALWAYS_ON unless asked otherwise.
    let select = json!({"operation": "TerminateWorkspaces", "dryRun": true,
        "select": {"directoryId": directory, "runningModes": ["AUTO_STOP"]}});
    let report = w.run(select).await;
    assert_eq!(report["requests"][0]["targets"], json!([]), "{report}");
    assert!(w.front.calls("DescribeTags").is_empty(), "no tag is read for a WorkSpace the mode leaves out");
    let select = json!({"operation": "TerminateWorkspaces", "dryRun": true,
        "select": {"directoryId": directory, "runningModes": ["ALWAYS_ON", "AUTO_STOP"]}});
    let report = w.run(select).await;
    assert_eq!(targets(&report), ended(&[(&ids[0], "dry_run"), (&ids[1], "dry_run")]));
}

/// MGN's DescribeSourceServers answering `servers` (id, tags), each READY_FOR_TEST with
/// a launched instance, and DescribeJobs answering that none is running.
async fn mgn_serves(fake: &MockServer, servers: &[(&str, Value)]) {
    fake.reset().await;
    let items: Vec<Value> = servers
        .iter()
        .map(|(id, tags)| json!({"sourceServerID": id, "arn": format!("arn:aws:mgn:us-east-1:123456789012:source-server/{id}"),
            "lifeCycle": {"state": "READY_FOR_TEST"}, "launchedInstance": {"ec2InstanceID": "i-0abc1234def567890"}, "tags": tags}))
        .collect();
    Mock::given(method("POST"))
        .and(path("/DescribeSourceServers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": items})))
        .mount(fake)
        .await;
    Mock::given(method("POST"))
        .and(path("/DescribeJobs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .mount(fake)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/tags/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(fake)
        .await;
    Mock::given(method("POST"))
        .and(path("/TerminateTargetInstances"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"job": {"jobID": "mgnjob-1", "participatingServers": []}})),
        )
        .mount(fake)
        .await;
}

/// Every request the MGN stand-in received, as (path, body).
async fn mgn_calls(fake: &MockServer, prefix: &str) -> Vec<(String, Value)> {
    let received = fake.received_requests().await.unwrap_or_default();
    received
        .iter()
        .filter(|r| r.url.path().starts_with(prefix))
        .map(|r| (r.url.path().to_owned(), serde_json::from_slice(&r.body).unwrap_or(Value::Null)))
        .collect()
}

const S1: &str = "s-1111111111111111a";
const S2: &str = "s-2222222222222222b";
const S3: &str = "s-3333333333333333c";

#[tokio::test(flavor = "current_thread")]
async fn an_mgn_notice_tags_the_source_server_by_its_arn_and_the_expired_run_terminates_what_kept_it() {
    let w = world().await;
    let wave = json!({"wave": "3"});
    mgn_serves(
        &w.mgn,
        &[(S1, wave.clone()), (S2, json!({"wave": "3", "teardown:protect": ""})), (S3, json!({"wave": "4"}))],
    )
    .await;
    let notice =
        json!({"operation": "TerminateTargetInstances", "notice": {"days": 14}, "select": {"tags": {"wave": "3"}}});

    let mut dry = notice.clone();
    dry["dryRun"] = json!(true);
    let report = w.run(dry).await;
    assert_eq!(target(&report, S1)["outcome"], "dry_run");
    assert_eq!(target(&report, S1)["expiresAt"], "2026-12-15T10:00:00Z");
    assert!(mgn_calls(&w.mgn, "/tags/").await.is_empty(), "a dry run writes nothing");

    let report = w.run(notice).await;
    assert_eq!(targets(&report), vec![(S1.to_owned(), "noticed".to_owned()), (S2.to_owned(), "protected".to_owned())]);
    let tagged = mgn_calls(&w.mgn, "/tags/").await;
    assert_eq!(tagged.len(), 1, "{tagged:?}");
    let (at, body) = &tagged[0];
    assert_eq!(
        at.replace("%3A", ":").replace("%2F", "/"),
        format!("/tags/arn:aws:mgn:us-east-1:123456789012:source-server/{S1}")
    );
    assert_eq!(body, &json!({"tags": {"teardown:expires-at": "2026-12-15T10:00:00Z"}}));
    assert!(mgn_calls(&w.mgn, "/TerminateTargetInstances").await.is_empty());
    let events = w.audit_events().await;
    assert!(
        events
            .iter()
            .any(|(t, d)| t == "Teardown Target Notice" && d["id"] == S1 && d["expiresAt"] == "2026-12-15T10:00:00Z")
    );

    // MGN now shows the tag; the expired run fifteen days later terminates that server alone.
    mgn_serves(
        &w.mgn,
        &[
            (S1, json!({"wave": "3", "teardown:expires-at": "2026-12-15T10:00:00Z"})),
            (S3, json!({"wave": "4", "teardown:expires-at": "2026-12-01T00:00:00Z"})),
        ],
    )
    .await;
    days_later(15);
    let report = w
        .run(json!({"operation": "TerminateTargetInstances", "select": {"tags": {"wave": "3"}, "expired": true}}))
        .await;
    assert_eq!(targets(&report), vec![(S1.to_owned(), "terminated".to_owned())]);
    let terminated = mgn_calls(&w.mgn, "/TerminateTargetInstances").await;
    assert_eq!(terminated.len(), 1);
    assert_eq!(terminated[0].1, json!({"sourceServerIDs": [S1]}));
}
