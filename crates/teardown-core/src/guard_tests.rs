//! The filters and guards of docs/reference.md, "Guards", judged on plain facts.

use std::collections::BTreeMap;

use time::macros::datetime;

use super::*;
use crate::request::{Limits, Operation, Target, validate};

const NOW: OffsetDateTime = datetime!(2026-11-24 10:00 UTC);
const PROTECT: &str = "teardown:protect";

fn candidate(id: &str, state: &str, tags: &[(&str, &str)]) -> Candidate {
    Candidate {
        id: id.to_owned(),
        state: Some(state.to_owned()),
        tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Candidate::default()
    }
}

fn selection(operation: &str, select: serde_json::Value) -> (Operation, Target) {
    let request = validate(&serde_json::json!({"operation": operation, "select": select}), Limits::default()).unwrap();
    (request.operation(), request.target)
}

/// A named request of `operation` (its own ids do not matter to the guards).
fn named(operation: Operation) -> Target {
    let input = match operation {
        Operation::TerminateWorkspaces => {
            serde_json::json!({"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-aaaaaaaa"}]})
        }
        Operation::TerminateTargetInstances => serde_json::json!({"sourceServerIDs": ["s-0123456789abcdefA"]}),
        Operation::TerminateProvisionedProduct => serde_json::json!({"ProvisionedProductId": "pp-1"}),
    };
    validate(&serde_json::json!({"operation": operation.as_str(), "input": input}), Limits::default()).unwrap().target
}

/// The guard as the tests ask it: an operation, and its selection or none.
fn judge(op: Operation, c: &Candidate, selection: Option<&Target>, protect: &str, now: OffsetDateTime) -> Verdict {
    match selection {
        Some(target) => super::judge(target, c, protect, now),
        None => super::judge(&named(op), c, protect, now),
    }
}

fn outcome(v: &Verdict) -> Option<Outcome> {
    match v {
        Verdict::Stop { outcome, .. } => Some(*outcome),
        Verdict::Terminate { .. } | Verdict::Underway { .. } => Some(Outcome::Terminated),
        Verdict::Notice { .. } => Some(Outcome::Noticed),
        Verdict::Unselected => None,
        Verdict::Unreadable { outcome, .. } => Some(*outcome),
    }
}

#[test]
fn expiry_dates_parse_as_iso_8601_and_nothing_else() {
    assert_eq!(parse_expiry("2026-11-01"), Some(datetime!(2026-11-01 0:00 UTC)));
    assert_eq!(parse_expiry("2026-11-24T09:59:59Z"), Some(datetime!(2026-11-24 9:59:59 UTC)));
    assert_eq!(parse_expiry("2026-11-24T12:00:00+02:00"), Some(datetime!(2026-11-24 10:00 UTC)));
    for bad in ["soon", "", "24/11/2026", "2026-13-01", "2026-11-24T10:00"] {
        assert_eq!(parse_expiry(bad), None, "{bad:?}");
    }
}

#[test]
fn expired_selects_past_never_future_unparseable_or_absent() {
    let (op, sel) = selection("TerminateWorkspaces", serde_json::json!({"expired": true}));
    let judge_tag = |tag: Option<&str>| {
        let tags: Vec<(&str, &str)> = tag.map(|t| vec![(EXPIRES_TAG, t)]).unwrap_or_default();
        judge(op, &candidate("ws-aaaaaaaa", "AVAILABLE", &tags), Some(&sel), PROTECT, NOW)
    };
    assert!(matches!(judge_tag(Some("2026-11-01")), Verdict::Terminate { reason, .. } if reason.contains("expired")));
    assert_eq!(judge_tag(Some("2026-11-24T10:00:00Z")).clone(), judge_tag(Some("2026-11-24T10:00:00Z")));
    assert!(matches!(judge_tag(Some("2026-11-24T10:00:00Z")), Verdict::Terminate { .. }), "due exactly now counts");
    assert_eq!(judge_tag(Some("2026-12-31")), Verdict::Unselected, "future");
    assert_eq!(judge_tag(None), Verdict::Unselected, "absent");
    match judge_tag(Some("next tuesday")) {
        Verdict::Stop { outcome: Outcome::Skipped, reason } => assert!(reason.contains("not an ISO-8601"), "{reason}"),
        other => panic!("an unparseable tag is reported, never expired: {other:?}"),
    }
}

#[test]
fn the_protection_tag_stops_named_and_selected_targets_whatever_its_value() {
    let (op, sel) = selection("TerminateWorkspaces", serde_json::json!({"tags": {"env": "sandbox"}}));
    let protected = candidate("ws-aaaaaaaa", "AVAILABLE", &[("env", "sandbox"), (PROTECT, "")]);
    for verdict in [judge(op, &protected, None, PROTECT, NOW), judge(op, &protected, Some(&sel), PROTECT, NOW)] {
        assert_eq!(outcome(&verdict), Some(Outcome::Protected));
    }
    let custom = candidate("ws-aaaaaaaa", "AVAILABLE", &[("keep", "yes")]);
    assert_eq!(outcome(&judge(op, &custom, None, "keep", NOW)), Some(Outcome::Protected));
    assert_eq!(outcome(&judge(op, &custom, None, PROTECT, NOW)), Some(Outcome::Terminated));
}

#[test]
fn states_the_api_refuses_are_skipped_and_settling_ones_are_transient() {
    let ws = Operation::TerminateWorkspaces;
    assert_eq!(
        outcome(&judge(ws, &candidate("ws-aaaaaaaa", "SUSPENDED", &[]), None, PROTECT, NOW)),
        Some(Outcome::Skipped)
    );
    assert_eq!(
        outcome(&judge(ws, &candidate("ws-aaaaaaaa", "TERMINATED", &[]), None, PROTECT, NOW)),
        Some(Outcome::NotFound)
    );
    assert_eq!(
        outcome(&judge(ws, &candidate("ws-aaaaaaaa", "STOPPED", &[]), None, PROTECT, NOW)),
        Some(Outcome::Terminated)
    );

    let mgn = Operation::TerminateTargetInstances;
    for state in ["TESTING", "CUTTING_OVER", "CUTOVER"] {
        let c = Candidate { has_launched_instance: Some(true), ..candidate("s-0123456789abcdefA", state, &[]) };
        assert_eq!(outcome(&judge(mgn, &c, None, PROTECT, NOW)), Some(Outcome::Skipped), "{state}");
    }
    let no_instance =
        Candidate { has_launched_instance: Some(false), ..candidate("s-0123456789abcdefA", "READY_FOR_CUTOVER", &[]) };
    assert_eq!(outcome(&judge(mgn, &no_instance, None, PROTECT, NOW)), Some(Outcome::Skipped));
    let ready = Candidate { has_launched_instance: Some(true), ..no_instance.clone() };
    assert_eq!(outcome(&judge(mgn, &ready, None, PROTECT, NOW)), Some(Outcome::Terminated));
}

/// docs/reference.md, "Guards": MGN lifecycle is an allow-list. DISCONNECTED (its instance may be
/// production), CUTOVER, and any state teardown does not know are skipped with the reason.
#[test]
fn mgn_terminates_only_in_the_allowed_lifecycle_states() {
    let mgn = Operation::TerminateTargetInstances;
    let server =
        |state: &str| Candidate { has_launched_instance: Some(true), ..candidate("s-0123456789abcdefA", state, &[]) };
    for state in ["NOT_READY", "READY_FOR_TEST", "READY_FOR_CUTOVER", "STOPPED"] {
        assert_eq!(outcome(&judge(mgn, &server(state), None, PROTECT, NOW)), Some(Outcome::Terminated), "{state}");
    }
    for state in [
        "DISCONNECTED",
        "CUTOVER",
        "TESTING",
        "CUTTING_OVER",
        "DISCOVERED",
        "PENDING_INSTALLATION",
        "SOMETHING_NEW",
        "",
    ] {
        let verdict = judge(mgn, &server(state), None, PROTECT, NOW);
        let Verdict::Stop { outcome, reason } = verdict else { panic!("{state}: {verdict:?}") };
        assert_eq!(outcome, Outcome::Skipped, "{state}");
        assert!(reason.starts_with("lifecycle "), "{state}: {reason}");
    }
    let disconnected = judge(mgn, &server("DISCONNECTED"), None, PROTECT, NOW);
    assert!(matches!(&disconnected, Verdict::Stop { reason, .. } if reason.contains("production")), "{disconnected:?}");
    // No launched instance known: nothing to terminate, whatever the state.
    let unknown_instance = Candidate { has_launched_instance: None, ..server("READY_FOR_TEST") };
    assert_eq!(outcome(&judge(mgn, &unknown_instance, None, PROTECT, NOW)), Some(Outcome::Skipped));
}

/// docs/reference.md, "Guards": a server already in a running TERMINATE job is `terminated`, naming
/// that job, and never sent again; the protection and state guards come first, so
/// teardown never reports as its own a termination they would have refused.
#[test]
fn an_mgn_server_in_a_running_terminate_job_is_underway_not_sent_again() {
    let mgn = Operation::TerminateTargetInstances;
    let running = |state: &str, tags: &[(&str, &str)]| Candidate {
        has_launched_instance: Some(true),
        active_job: Some("mgnjob-1".to_owned()),
        ..candidate("s-0123456789abcdefA", state, tags)
    };
    match judge(mgn, &running("READY_FOR_CUTOVER", &[]), None, PROTECT, NOW) {
        Verdict::Underway { job_id, .. } => assert_eq!(job_id.as_deref(), Some("mgnjob-1")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        outcome(&judge(mgn, &running("READY_FOR_CUTOVER", &[(PROTECT, "")]), None, PROTECT, NOW)),
        Some(Outcome::Protected)
    );
    assert_eq!(outcome(&judge(mgn, &running("CUTOVER", &[]), None, PROTECT, NOW)), Some(Outcome::Skipped));

    let sc = Operation::TerminateProvisionedProduct;
    for (state, want) in [
        ("UNDER_CHANGE", Outcome::Transient),
        ("PLAN_IN_PROGRESS", Outcome::Transient),
        ("AVAILABLE", Outcome::Terminated),
        ("ERROR", Outcome::Terminated),
    ] {
        assert_eq!(outcome(&judge(sc, &candidate("pp-1", state, &[]), None, PROTECT, NOW)), Some(want), "{state}");
    }
}

#[test]
fn workspaces_filters_are_anded() {
    let (op, sel) = selection(
        "TerminateWorkspaces",
        serde_json::json!({"directoryId": "d-1234567890", "userName": "alice", "states": ["AVAILABLE", "STOPPED"], "tags": {"env": "sandbox"}}),
    );
    let mut c = candidate("ws-aaaaaaaa", "STOPPED", &[("env", "sandbox"), ("team", "x")]);
    c.attributes = BTreeMap::from([("directoryId", "d-1234567890".to_owned()), ("userName", "alice".to_owned())]);
    match judge(op, &c, Some(&sel), PROTECT, NOW) {
        Verdict::Terminate { reason, .. } => {
            assert_eq!(reason, "matched: tag env=sandbox, directoryId d-1234567890, userName alice, state STOPPED")
        }
        other => panic!("{other:?}"),
    }
    let wrong_user = Candidate {
        attributes: BTreeMap::from([("directoryId", "d-1234567890".to_owned()), ("userName", "bob".to_owned())]),
        ..c.clone()
    };
    assert_eq!(judge(op, &wrong_user, Some(&sel), PROTECT, NOW), Verdict::Unselected);
    let wrong_tag = Candidate { tags: BTreeMap::from([("env".to_owned(), "prod".to_owned())]), ..c.clone() };
    assert_eq!(judge(op, &wrong_tag, Some(&sel), PROTECT, NOW), Verdict::Unselected);
    let wrong_state = Candidate { state: Some("SUSPENDED".into()), ..c };
    assert_eq!(judge(op, &wrong_state, Some(&sel), PROTECT, NOW), Verdict::Unselected);
}

#[test]
fn idle_days_needs_proof_of_idleness() {
    let (op, sel) = selection("TerminateWorkspaces", serde_json::json!({"idleDays": 30}));
    let at = |days: i64| Some(NOW - time::Duration::days(days));
    let with =
        |last, created| Candidate { last_connected: last, created, ..candidate("ws-aaaaaaaa", "AVAILABLE", &[]) };
    assert!(
        matches!(judge(op, &with(at(30), None), Some(&sel), PROTECT, NOW), Verdict::Terminate { reason, .. } if reason.contains("idle 30 days"))
    );
    assert_eq!(judge(op, &with(at(29), None), Some(&sel), PROTECT, NOW), Verdict::Unselected);
    assert!(
        matches!(judge(op, &with(None, at(45)), Some(&sel), PROTECT, NOW), Verdict::Terminate { .. }),
        "never connected: idle since creation"
    );
    assert_eq!(judge(op, &with(None, None), Some(&sel), PROTECT, NOW), Verdict::Unselected, "nothing proves it idle");
}

#[test]
fn mgn_selects_only_servers_with_a_launched_instance_and_products_by_age() {
    let (op, sel) = selection("TerminateTargetInstances", serde_json::json!({"tags": {"wave": "3"}}));
    let server = |launched| Candidate {
        has_launched_instance: Some(launched),
        ..candidate("s-0123456789abcdefA", "READY_FOR_CUTOVER", &[("wave", "3")])
    };
    assert!(matches!(judge(op, &server(true), Some(&sel), PROTECT, NOW), Verdict::Terminate { .. }));
    assert_eq!(judge(op, &server(false), Some(&sel), PROTECT, NOW), Verdict::Unselected);

    let (op, sel) =
        selection("TerminateProvisionedProduct", serde_json::json!({"olderThanDays": 7, "statuses": ["AVAILABLE"]}));
    let product =
        |age: i64| Candidate { created: Some(NOW - time::Duration::days(age)), ..candidate("pp-1", "AVAILABLE", &[]) };
    assert!(matches!(judge(op, &product(7), Some(&sel), PROTECT, NOW), Verdict::Terminate { .. }));
    assert_eq!(judge(op, &product(6), Some(&sel), PROTECT, NOW), Verdict::Unselected);
}

#[test]
fn select_is_validated_like_input() {
    let refuse = |op: &str, select: serde_json::Value| {
        validate(&serde_json::json!({"operation": op, "select": select}), Limits::default()).unwrap_err().to_string()
    };
    assert!(refuse("TerminateWorkspaces", serde_json::json!({})).starts_with("select: has no filter"));
    assert!(
        refuse("TerminateProvisionedProduct", serde_json::json!({"IgnoreErrors": true}))
            .starts_with("select: has no filter")
    );
    assert!(
        refuse("TerminateWorkspaces", serde_json::json!({"idleDays": 0}))
            .starts_with("select.idleDays: must be a whole number")
    );
    assert!(refuse("TerminateWorkspaces", serde_json::json!({"idleDays": 3651})).starts_with("select.idleDays"));
    assert!(
        refuse("TerminateWorkspaces", serde_json::json!({"states": ["ASLEEP"]}))
            .starts_with("select.states[0]: \"ASLEEP\" is not one of")
    );
    assert!(
        refuse("TerminateWorkspaces", serde_json::json!({"lifecycleStates": ["TESTING"]}))
            .starts_with("select.lifecycleStates: is not a known member")
    );
    assert!(
        refuse("TerminateWorkspaces", serde_json::json!({"directoryId": "d-XYZ"})).starts_with("select.directoryId")
    );
    assert!(refuse("TerminateWorkspaces", serde_json::json!({"ids": ["ws-bad"]})).starts_with("select.ids[0]"));
    assert!(refuse("TerminateWorkspaces", serde_json::json!({"expired": "yes"})).starts_with("select.expired"));
    assert!(refuse("TerminateTargetInstances", serde_json::json!({"accountID": "1"})).starts_with("select.accountID"));
    assert!(
        refuse("TerminateProvisionedProduct", serde_json::json!({"statuses": ["GONE"]}))
            .starts_with("select.statuses[0]")
    );
    assert!(
        refuse("TerminateProvisionedProduct", serde_json::json!({"productId": "prod 1"}))
            .starts_with("select.productId")
    );
    assert!(
        validate(
            &serde_json::json!({"operation": "TerminateWorkspaces", "select": {"idleDays": 1}}),
            Limits::default()
        )
        .is_ok()
    );
    assert!(
        validate(
            &serde_json::json!({"operation": "TerminateWorkspaces", "select": {"idleDays": 3650}}),
            Limits::default()
        )
        .is_ok()
    );
}

#[test]
fn a_target_whose_tags_cannot_be_read_is_left_alone_unless_the_selection_leaves_it_out_anyway() {
    let (op, sel) = selection(
        "TerminateWorkspaces",
        serde_json::json!({"tags": {"env": "sandbox"}, "directoryId": "d-1234567890"}),
    );
    let unreadable = |directory: &str| Candidate {
        unreadable: Some((Outcome::Transient, crate::outcome::Failure::new("ThrottlingException", "slow down"))),
        attributes: BTreeMap::from([("directoryId", directory.to_owned())]),
        ..candidate("ws-aaaaaaaa", "AVAILABLE", &[])
    };
    assert_eq!(judge(op, &unreadable("d-9999999999"), Some(&sel), PROTECT, NOW), Verdict::Unselected);
    assert!(matches!(
        judge(op, &unreadable("d-1234567890"), Some(&sel), PROTECT, NOW),
        Verdict::Unreadable { outcome: Outcome::Transient, .. }
    ));
    // Named, it is never judged without its tags.
    assert!(matches!(judge(op, &unreadable("d-9999999999"), None, PROTECT, NOW), Verdict::Unreadable { .. }));
}

fn request_target(request: serde_json::Value) -> Target {
    validate(&request, Limits::default()).unwrap().target
}

#[test]
fn a_notice_tags_what_passes_every_filter_and_guard_and_keeps_an_expiry_already_set() {
    let target = request_target(serde_json::json!({"operation": "TerminateWorkspaces", "notice": {"days": 7},
        "select": {"tags": {"env": "sandbox"}}}));
    let now = datetime!(2026-12-01 10:37:12 UTC);
    let mut c = candidate("ws-aaaaaaaa", "AVAILABLE", &[("env", "sandbox")]);
    c.attributes.insert("userName", "alice".to_owned());
    match super::judge(&target, &c, PROTECT, now) {
        Verdict::Notice { expires_at, user_name, reason, .. } => {
            assert_eq!(expires_at, "2026-12-08T10:00:00Z", "the start of the hour, plus seven days");
            assert_eq!(user_name.as_deref(), Some("alice"));
            assert!(reason.contains("tag env=sandbox"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let noticed = candidate("ws-aaaaaaaa", "AVAILABLE", &[("env", "sandbox"), (EXPIRES_TAG, "2026-12-20T00:00:00Z")]);
    match super::judge(&target, &noticed, PROTECT, now) {
        Verdict::Stop { outcome: Outcome::Skipped, reason } => {
            assert!(reason.contains("already noticed until 2026-12-20T00:00:00Z"), "{reason}");
        }
        other => panic!("an expiry already set is kept: {other:?}"),
    }
    let protected = candidate("ws-aaaaaaaa", "AVAILABLE", &[("env", "sandbox"), (PROTECT, "")]);
    assert_eq!(outcome(&super::judge(&target, &protected, PROTECT, now)), Some(Outcome::Protected));
    let suspended = candidate("ws-aaaaaaaa", "SUSPENDED", &[("env", "sandbox")]);
    assert_eq!(outcome(&super::judge(&target, &suspended, PROTECT, now)), Some(Outcome::Skipped));
    let other = candidate("ws-aaaaaaaa", "AVAILABLE", &[("env", "prod")]);
    assert_eq!(super::judge(&target, &other, PROTECT, now), Verdict::Unselected);
}

#[test]
fn an_expiry_is_the_start_of_the_utc_hour_plus_the_days() {
    assert_eq!(expiry_after(datetime!(2026-12-31 23:59:59 UTC), 1), "2027-01-01T23:00:00Z");
    assert_eq!(expiry_after(datetime!(2026-03-01 00:00 +05:00), 90), "2026-05-29T19:00:00Z");
    assert_eq!(first_seen_date(datetime!(2026-12-01 00:30 +02:00)), "2026-11-30");
}

#[test]
fn tag_values_may_be_a_list_and_tags_absent_selects_the_untagged() {
    let many: Vec<String> = (0..21).map(|i| format!("v{i}")).collect();
    let too_many = validate(
        &serde_json::json!({"operation": "TerminateWorkspaces", "select": {"tags": {"env": many}}}),
        Limits::default(),
    );
    assert_eq!(too_many.unwrap_err().field, "select.tags.env", "the tag index takes 20 values a key");
    let (op, sel) = selection(
        "TerminateWorkspaces",
        serde_json::json!({"tags": {"env": ["sandbox", "dev"]}, "tagsAbsent": ["owner", "keep"]}),
    );
    let judged =
        |tags: &[(&str, &str)]| judge(op, &candidate("ws-aaaaaaaa", "AVAILABLE", tags), Some(&sel), PROTECT, NOW);
    assert!(matches!(judged(&[("env", "dev")]), Verdict::Terminate { reason, .. }
        if reason.contains("tag env=dev") && reason.contains("no tag owner, keep")));
    assert!(matches!(judged(&[("env", "sandbox")]), Verdict::Terminate { .. }));
    assert_eq!(judged(&[("env", "prod")]), Verdict::Unselected);
    assert_eq!(judged(&[]), Verdict::Unselected, "a listed key must be present");
    assert_eq!(judged(&[("env", "dev"), ("owner", "bob")]), Verdict::Unselected);
    assert_eq!(judged(&[("env", "dev"), ("keep", "")]), Verdict::Unselected, "any value of an absent key counts");
}

#[test]
fn running_modes_select_by_the_workspaces_running_mode() {
    let (op, sel) = selection("TerminateWorkspaces", serde_json::json!({"runningModes": ["ALWAYS_ON"]}));
    let mut c = candidate("ws-aaaaaaaa", "AVAILABLE", &[]);
    assert_eq!(judge(op, &c, Some(&sel), PROTECT, NOW), Verdict::Unselected, "a mode unknown is not matched");
    c.attributes.insert("runningMode", "AUTO_STOP".to_owned());
    assert_eq!(judge(op, &c, Some(&sel), PROTECT, NOW), Verdict::Unselected);
    c.attributes.insert("runningMode", "ALWAYS_ON".to_owned());
    assert!(
        matches!(judge(op, &c, Some(&sel), PROTECT, NOW), Verdict::Terminate { reason, .. } if reason.contains("runningMode ALWAYS_ON"))
    );
}

#[test]
fn a_connected_workspace_is_never_idle_and_a_never_connected_one_is_idle_from_its_first_seen_date() {
    let (op, sel) = selection("TerminateWorkspaces", serde_json::json!({"idleDays": 30}));
    let mut old = candidate("ws-aaaaaaaa", "AVAILABLE", &[]);
    old.last_connected = Some(NOW - time::Duration::days(400));
    assert!(matches!(judge(op, &old, Some(&sel), PROTECT, NOW), Verdict::Terminate { .. }));
    old.connected = true;
    assert_eq!(judge(op, &old, Some(&sel), PROTECT, NOW), Verdict::Unselected, "connected now, whatever the timestamp");

    let never = Candidate { never_connected: true, ..candidate("ws-bbbbbbbb", "AVAILABLE", &[]) };
    assert_eq!(judge(op, &never, Some(&sel), PROTECT, NOW), Verdict::Unselected, "nothing dates it yet");
    assert!(first_seen_due(&sel, &never, PROTECT, NOW), "a real run dates it");
    let seen = |date: &str| Candidate {
        never_connected: true,
        ..candidate("ws-bbbbbbbb", "AVAILABLE", &[(FIRST_SEEN_TAG, date)])
    };
    assert_eq!(judge(op, &seen("2026-10-26"), Some(&sel), PROTECT, NOW), Verdict::Unselected, "29 days: not yet");
    assert!(matches!(judge(op, &seen("2026-10-25"), Some(&sel), PROTECT, NOW), Verdict::Terminate { reason, .. }
        if reason.contains("never connected, first seen 2026-10-25")));
    assert!(!first_seen_due(&sel, &seen("2026-10-25"), PROTECT, NOW), "dated once, never again");
    let mut connected_never = never.clone();
    connected_never.connected = true;
    assert!(!first_seen_due(&sel, &connected_never, PROTECT, NOW));
    let protected = Candidate { never_connected: true, ..candidate("ws-bbbbbbbb", "AVAILABLE", &[(PROTECT, "")]) };
    assert!(!first_seen_due(&sel, &protected, PROTECT, NOW), "a protected WorkSpace is not touched");
    // One the connection status did not answer for is unknown: neither dated nor idle.
    let unknown = candidate("ws-bbbbbbbb", "AVAILABLE", &[(FIRST_SEEN_TAG, "2026-01-01")]);
    assert_eq!(judge(op, &unknown, Some(&sel), PROTECT, NOW), Verdict::Unselected, "no status: not idle");
    assert!(!first_seen_due(&sel, &candidate("ws-bbbbbbbb", "AVAILABLE", &[]), PROTECT, NOW));
    let (_, no_idle) = selection("TerminateWorkspaces", serde_json::json!({"states": ["AVAILABLE"]}));
    assert!(!first_seen_due(&no_idle, &never, PROTECT, NOW), "only a selection by idleDays dates");
    let (_, other_dir) =
        selection("TerminateWorkspaces", serde_json::json!({"idleDays": 30, "directoryId": "d-1234567890"}));
    assert!(!first_seen_due(&other_dir, &never, PROTECT, NOW), "only what matches every other filter");
}

#[test]
fn a_never_connected_workspace_whose_tags_cannot_be_read_is_reported_not_dropped() {
    let (op, sel) = selection("TerminateWorkspaces", serde_json::json!({"idleDays": 30}));
    let mut c = Candidate { never_connected: true, ..candidate("ws-bbbbbbbb", "AVAILABLE", &[]) };
    c.unreadable = Some((Outcome::Transient, crate::outcome::Failure::new("Throttling", "slow down")));
    assert_eq!(outcome(&judge(op, &c, Some(&sel), PROTECT, NOW)), Some(Outcome::Transient));
}

#[test]
fn a_workspace_used_since_its_notice_is_not_terminated_by_its_lapsed_date_and_is_noticed_anew() {
    // Noticed on 2026-10-20 for 2026-10-27, used on 2026-10-24, idle again since.
    let tags = [("env", "sandbox"), (EXPIRES_TAG, "2026-10-27T10:00:00Z")];
    let mut used = candidate("ws-aaaaaaaa", "AVAILABLE", &tags);
    used.last_connected = Some(datetime!(2026-10-24 09:00 UTC));
    let cleanup = request_target(serde_json::json!({"operation": "TerminateWorkspaces",
        "select": {"tags": {"env": "sandbox"}, "idleDays": 30, "expired": true}}));
    match super::judge(&cleanup, &used, PROTECT, NOW) {
        Verdict::Stop { outcome: Outcome::Skipped, reason } => {
            assert!(reason.contains("used since its notice"), "{reason}")
        }
        other => panic!("used after its notice, it must not go on the old date: {other:?}"),
    }
    let notice = request_target(serde_json::json!({"operation": "TerminateWorkspaces", "notice": {"days": 7},
        "select": {"tags": {"env": "sandbox"}, "idleDays": 30}}));
    match super::judge(&notice, &used, PROTECT, NOW) {
        Verdict::Notice { expires_at, reason, .. } => {
            assert_eq!(expires_at, "2026-12-01T10:00:00Z");
            assert!(reason.contains("lapsed when it was used again"), "{reason}");
        }
        other => panic!("idle again, it is owed a new notice: {other:?}"),
    }
    // Not used since its notice: the date holds.
    let mut idle = candidate("ws-aaaaaaaa", "AVAILABLE", &tags);
    idle.last_connected = Some(datetime!(2026-09-01 09:00 UTC));
    assert!(matches!(super::judge(&cleanup, &idle, PROTECT, NOW), Verdict::Terminate { .. }));
    assert_eq!(outcome(&super::judge(&notice, &idle, PROTECT, NOW)), Some(Outcome::Skipped));
}

#[test]
fn the_date_this_run_sets_is_noticed_again_so_an_owner_told_nothing_is_told() {
    let notice = request_target(serde_json::json!({"operation": "TerminateWorkspaces", "notice": {"days": 7},
        "select": {"tags": {"env": "sandbox"}}}));
    // An earlier attempt of this run wrote the tag, then stopped before its event went out.
    let written = candidate("ws-aaaaaaaa", "AVAILABLE", &[("env", "sandbox"), (EXPIRES_TAG, "2026-12-01T10:00:00Z")]);
    assert!(matches!(super::judge(&notice, &written, PROTECT, NOW), Verdict::Notice { .. }));
}
