//! Every constraint of docs/reference.md, "A request", on both sides of each boundary.

use serde_json::{Value, json};

use super::*;
use crate::request::retry_request;

enum Want {
    /// Valid; these target ids, in this order.
    Ids(Vec<&'static str>),
    /// Refused; the error names this field and its message contains this text.
    Err(&'static str, &'static str),
}
use Want::{Err as Refused, Ids};

fn ws(ids: &[&str]) -> Value {
    json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": ids.iter().map(|i| json!({"WorkspaceId": i})).collect::<Vec<_>>()}})
}
fn mgn(input: Value) -> Value {
    json!({"operation": "TerminateTargetInstances", "input": input})
}
fn sc(input: Value) -> Value {
    json!({"operation": "TerminateProvisionedProduct", "input": input})
}
const S1: &str = "s-0123456789abcdefA";
fn tags(n: usize) -> Value {
    Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect())
}

fn cases() -> Vec<(&'static str, Value, Want)> {
    let ws8 = "ws-abcd1234";
    let ws63 = format!("ws-{}", "a".repeat(63));
    let ws64 = format!("ws-{}", "a".repeat(64));
    let ws63: &'static str = Box::leak(ws63.into_boxed_str());
    let ws64: &'static str = Box::leak(ws64.into_boxed_str());
    let id100: &'static str = Box::leak("p".repeat(100).into_boxed_str());
    let id101: &'static str = Box::leak("p".repeat(101).into_boxed_str());
    let name128: &'static str = Box::leak(format!("a{}", "b".repeat(127)).into_boxed_str());
    let name129: &'static str = Box::leak(format!("a{}", "b".repeat(128)).into_boxed_str());
    let token128: &'static str = Box::leak(format!("t{}", "x".repeat(127)).into_boxed_str());
    let token129: &'static str = Box::leak(format!("t{}", "x".repeat(128)).into_boxed_str());
    let k256 = "k".repeat(256);
    let k257 = "k".repeat(257);
    let arn = "arn:aws:servicecatalog:us-east-1:123456789012:stack/sandbox/pp-abc123";
    vec![
        // The request envelope.
        ("not an object", json!([1]), Refused("request", "must be a JSON object")),
        ("operation missing", json!({"input": {}}), Refused("operation", "is required")),
        (
            "operation unknown",
            json!({"operation": "DeleteEverything", "input": {}}),
            Refused("operation", "\"DeleteEverything\" is not one of"),
        ),
        (
            "operation wrong case",
            json!({"operation": "terminateWorkspaces", "input": {}}),
            Refused("operation", "is not one of"),
        ),
        (
            "operation not a string",
            json!({"operation": 3, "input": {}}),
            Refused("operation", "must be a string, not a number"),
        ),
        ("input missing", json!({"operation": "TerminateWorkspaces"}), Refused("input", "is required")),
        (
            "input and select",
            json!({"operation": "TerminateWorkspaces", "input": {}, "select": {}}),
            Refused("input", "exclusive"),
        ),
        ("select empty", json!({"operation": "TerminateWorkspaces", "select": {}}), Refused("select", "has no filter")),
        (
            "unknown top member",
            json!({"operation": "TerminateWorkspaces", "input": {}, "dryrun": true}),
            Refused("dryrun", "is not a known member"),
        ),
        (
            "dryRun not bool",
            json!({"operation": "TerminateWorkspaces", "dryRun": "yes", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": ws8}]}}),
            Refused("dryRun", "must be true or false"),
        ),
        (
            "dryRun null",
            json!({"operation": "TerminateWorkspaces", "dryRun": null, "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": ws8}]}}),
            Refused("dryRun", "not null"),
        ),
        (
            "dryRun true",
            json!({"operation": "TerminateWorkspaces", "dryRun": true, "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": ws8}]}}),
            Ids(vec!["ws-abcd1234"]),
        ),
        // WorkSpaces.
        ("ws one", ws(&[ws8]), Ids(vec!["ws-abcd1234"])),
        ("ws 8 chars ok", ws(&["ws-0000aaaa"]), Ids(vec!["ws-0000aaaa"])),
        (
            "ws 7 chars refused",
            ws(&["ws-abc1234"]),
            Refused("input.TerminateWorkspaceRequests[0].WorkspaceId", "does not match ^ws-[0-9a-z]{8,63}$"),
        ),
        ("ws 63 chars ok", ws(&[ws63]), Ids(vec![ws63])),
        (
            "ws 64 chars refused",
            ws(&[ws64]),
            Refused("input.TerminateWorkspaceRequests[0].WorkspaceId", "does not match"),
        ),
        (
            "ws upper case refused",
            ws(&["ws-ABCD1234"]),
            Refused("input.TerminateWorkspaceRequests[0].WorkspaceId", "\"ws-ABCD1234\""),
        ),
        (
            "ws wrong prefix",
            ws(&["wk-abcd1234"]),
            Refused("input.TerminateWorkspaceRequests[0].WorkspaceId", "does not match"),
        ),
        (
            "ws unicode",
            ws(&["ws-abcd123é"]),
            Refused("input.TerminateWorkspaceRequests[0].WorkspaceId", "does not match"),
        ),
        (
            "ws bad fourth names index 3",
            ws(&[ws8, "ws-abcd1235", "ws-abcd1236", "ws-ABC"]),
            Refused("input.TerminateWorkspaceRequests[3].WorkspaceId", "\"ws-ABC\" does not match ^ws-[0-9a-z]{8,63}$"),
        ),
        ("ws duplicates removed", ws(&[ws8, "ws-abcd1235", ws8]), Ids(vec!["ws-abcd1234", "ws-abcd1235"])),
        ("ws empty list", ws(&[]), Refused("input.TerminateWorkspaceRequests", "at least one")),
        (
            "ws list missing",
            json!({"operation": "TerminateWorkspaces", "input": {}}),
            Refused("input.TerminateWorkspaceRequests", "is required"),
        ),
        (
            "ws list not list",
            json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": {"WorkspaceId": ws8}}}),
            Refused("input.TerminateWorkspaceRequests", "must be a list"),
        ),
        (
            "ws typo WorkspaceID",
            json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceID": ws8}]}}),
            Refused("input.TerminateWorkspaceRequests[0].WorkspaceID", "is not a known member"),
        ),
        (
            "ws extra input member",
            json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": ws8}], "Force": true}}),
            Refused("input.Force", "is not a known member"),
        ),
        (
            "ws item not object",
            json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [ws8]}}),
            Refused("input.TerminateWorkspaceRequests[0]", "must be a JSON object"),
        ),
        (
            "ws id number",
            json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": 12345678}]}}),
            Refused("input.TerminateWorkspaceRequests[0].WorkspaceId", "must be a string"),
        ),
        (
            "ws id missing",
            json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{}]}}),
            Refused("input.TerminateWorkspaceRequests[0].WorkspaceId", "is required"),
        ),
        (
            "input not object",
            json!({"operation": "TerminateWorkspaces", "input": "ws-abcd1234"}),
            Refused("input", "must be a JSON object, not a string"),
        ),
        // MGN.
        ("mgn one", mgn(json!({"sourceServerIDs": [S1]})), Ids(vec![S1])),
        (
            "mgn 16 chars",
            mgn(json!({"sourceServerIDs": ["s-0123456789abcde"]})),
            Refused("input.sourceServerIDs[0]", "does not match ^s-[0-9a-zA-Z]{17}$"),
        ),
        (
            "mgn 18 chars",
            mgn(json!({"sourceServerIDs": ["s-0123456789abcdefAB"]})),
            Refused("input.sourceServerIDs[0]", "does not match"),
        ),
        (
            "mgn dash in id",
            mgn(json!({"sourceServerIDs": ["s-0123456789abcde-A"]})),
            Refused("input.sourceServerIDs[0]", "does not match"),
        ),
        ("mgn empty", mgn(json!({"sourceServerIDs": []})), Refused("input.sourceServerIDs", "at least one")),
        ("mgn missing ids", mgn(json!({"tags": {}})), Refused("input.sourceServerIDs", "is required")),
        ("mgn dup removed", mgn(json!({"sourceServerIDs": [S1, S1]})), Ids(vec![S1])),
        (
            "mgn id not string",
            mgn(json!({"sourceServerIDs": [null]})),
            Refused("input.sourceServerIDs[0]", "must be a string, not null"),
        ),
        ("mgn 50 tags ok", mgn(json!({"sourceServerIDs": [S1], "tags": tags(50)})), Ids(vec![S1])),
        ("mgn 51 tags", mgn(json!({"sourceServerIDs": [S1], "tags": tags(51)})), Refused("input.tags", "more than 50")),
        ("mgn key 256 ok", mgn(json!({"sourceServerIDs": [S1], "tags": {k256.clone(): "v"}})), Ids(vec![S1])),
        (
            "mgn key 257",
            mgn(json!({"sourceServerIDs": [S1], "tags": {k257.clone(): "v"}})),
            Refused("input.tags.kkkk", "must be 1 to 256"),
        ),
        (
            "mgn empty key",
            mgn(json!({"sourceServerIDs": [S1], "tags": {"": "v"}})),
            Refused("input.tags[\"\"]", "must be 1 to 256"),
        ),
        ("mgn value 256 ok", mgn(json!({"sourceServerIDs": [S1], "tags": {"k": "v".repeat(256)}})), Ids(vec![S1])),
        (
            "mgn value 257",
            mgn(json!({"sourceServerIDs": [S1], "tags": {"k": "v".repeat(257)}})),
            Refused("input.tags.k", "more than 256"),
        ),
        (
            "mgn value number",
            mgn(json!({"sourceServerIDs": [S1], "tags": {"k": 1}})),
            Refused("input.tags.k", "must be a string"),
        ),
        (
            "mgn tags list",
            mgn(json!({"sourceServerIDs": [S1], "tags": ["k"]})),
            Refused("input.tags", "must be a JSON object"),
        ),
        ("mgn account ok", mgn(json!({"sourceServerIDs": [S1], "accountID": "123456789012"})), Ids(vec![S1])),
        (
            "mgn account 11",
            mgn(json!({"sourceServerIDs": [S1], "accountID": "12345678901"})),
            Refused("input.accountID", "exactly 12 digits"),
        ),
        (
            "mgn account 13",
            mgn(json!({"sourceServerIDs": [S1], "accountID": "1234567890123"})),
            Refused("input.accountID", "exactly 12 digits"),
        ),
        (
            "mgn account letters",
            mgn(json!({"sourceServerIDs": [S1], "accountID": "12345678901a"})),
            Refused("input.accountID", "exactly 12 digits"),
        ),
        (
            "mgn account number",
            mgn(json!({"sourceServerIDs": [S1], "accountID": 123456789012u64})),
            Refused("input.accountID", "must be a string"),
        ),
        (
            "mgn boto casing refused",
            mgn(json!({"SourceServerIDs": [S1]})),
            Refused("input.SourceServerIDs", "is not a known member"),
        ),
        // Service Catalog.
        ("sc id", sc(json!({"ProvisionedProductId": "pp-abc123"})), Ids(vec!["pp-abc123"])),
        ("sc id 100", sc(json!({"ProvisionedProductId": id100})), Ids(vec![id100])),
        (
            "sc id 101",
            sc(json!({"ProvisionedProductId": id101})),
            Refused("input.ProvisionedProductId", "does not match"),
        ),
        (
            "sc id empty",
            sc(json!({"ProvisionedProductId": ""})),
            Refused("input.ProvisionedProductId", "does not match"),
        ),
        (
            "sc id dot",
            sc(json!({"ProvisionedProductId": "pp.abc"})),
            Refused("input.ProvisionedProductId", "does not match"),
        ),
        ("sc name", sc(json!({"ProvisionedProductName": "sandbox-1.dev_x"})), Ids(vec!["sandbox-1.dev_x"])),
        ("sc name 128", sc(json!({"ProvisionedProductName": name128})), Ids(vec![name128])),
        (
            "sc name 129",
            sc(json!({"ProvisionedProductName": name129})),
            Refused("input.ProvisionedProductName", "neither a name"),
        ),
        (
            "sc name leading dash",
            sc(json!({"ProvisionedProductName": "-sandbox"})),
            Refused("input.ProvisionedProductName", "neither a name"),
        ),
        ("sc name arn", sc(json!({"ProvisionedProductName": arn})), Ids(vec![arn])),
        (
            "sc name bad arn",
            sc(json!({"ProvisionedProductName": "arn:aws:servicecatalog:us-east-1:123456789012:/x"})),
            Refused("input.ProvisionedProductName", "nor an ARN"),
        ),
        (
            "sc both",
            sc(json!({"ProvisionedProductId": "pp-1", "ProvisionedProductName": "x"})),
            Refused("input.ProvisionedProductId", "exclusive"),
        ),
        ("sc neither", sc(json!({"IgnoreErrors": true})), Refused("input.ProvisionedProductId", "is required")),
        ("sc token 128", sc(json!({"ProvisionedProductId": "pp-1", "TerminateToken": token128})), Ids(vec!["pp-1"])),
        (
            "sc token 129",
            sc(json!({"ProvisionedProductId": "pp-1", "TerminateToken": token129})),
            Refused("input.TerminateToken", "does not match"),
        ),
        (
            "sc token empty",
            sc(json!({"ProvisionedProductId": "pp-1", "TerminateToken": ""})),
            Refused("input.TerminateToken", "does not match"),
        ),
        (
            "sc token leading dash",
            sc(json!({"ProvisionedProductId": "pp-1", "TerminateToken": "-abc"})),
            Refused("input.TerminateToken", "does not match"),
        ),
        ("sc token one char", sc(json!({"ProvisionedProductId": "pp-1", "TerminateToken": "a"})), Ids(vec!["pp-1"])),
        (
            "sc ignore errors bool",
            sc(json!({"ProvisionedProductId": "pp-1", "IgnoreErrors": true, "RetainPhysicalResources": false})),
            Ids(vec!["pp-1"]),
        ),
        (
            "sc ignore errors string",
            sc(json!({"ProvisionedProductId": "pp-1", "IgnoreErrors": "true"})),
            Refused("input.IgnoreErrors", "must be true or false"),
        ),
        (
            "sc retain number",
            sc(json!({"ProvisionedProductId": "pp-1", "RetainPhysicalResources": 1})),
            Refused("input.RetainPhysicalResources", "must be true or false"),
        ),
        ("sc lang en", sc(json!({"ProvisionedProductId": "pp-1", "AcceptLanguage": "en"})), Ids(vec!["pp-1"])),
        ("sc lang jp", sc(json!({"ProvisionedProductId": "pp-1", "AcceptLanguage": "jp"})), Ids(vec!["pp-1"])),
        ("sc lang zh", sc(json!({"ProvisionedProductId": "pp-1", "AcceptLanguage": "zh"})), Ids(vec!["pp-1"])),
        (
            "sc lang fr",
            sc(json!({"ProvisionedProductId": "pp-1", "AcceptLanguage": "fr"})),
            Refused("input.AcceptLanguage", "not one of en, jp, zh"),
        ),
        (
            "sc unknown member",
            sc(json!({"ProvisionedProductId": "pp-1", "provisionedProductId": "pp-2"})),
            Refused("input.provisionedProductId", "is not a known member"),
        ),
    ]
}

#[test]
fn every_case_is_accepted_or_refused_as_the_contract_says() {
    let cases = cases();
    assert!(cases.len() >= 60, "the table has {} cases", cases.len());
    for (name, value, want) in cases {
        let got = validate(&value, Limits::default());
        match (want, got) {
            (Ids(ids), Ok(request)) => assert_eq!(request.named_ids().unwrap(), ids, "{name}"),
            (Refused(field, text), Err(e)) => {
                assert!(e.field.starts_with(field), "{name}: field {:?}, wanted {field:?}", e.field);
                assert!(e.to_string().contains(text), "{name}: {e:?} should contain {text:?}");
            }
            (Ids(_), Err(e)) => panic!("{name}: refused: {e}"),
            (Refused(field, _), Ok(r)) => {
                panic!("{name}: accepted {r:?}, wanted an error on {field}")
            }
        }
    }
}

#[test]
fn the_error_names_the_path_and_the_rule() {
    let e = validate(&ws(&["ws-abcd1234", "ws-abcd1235", "ws-abcd1236", "ws-ABC"]), Limits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"input.TerminateWorkspaceRequests[3].WorkspaceId: "ws-ABC" does not match ^ws-[0-9a-z]{8,63}$"#
    );
    assert_eq!(e.code, "InvalidRequest");
}

#[test]
fn max_targets_counts_distinct_ids_on_both_sides_of_the_bound() {
    let ids: Vec<String> = (0..101).map(|i| format!("ws-{i:08}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(validate(&ws(&refs[..100]), Limits::default()).unwrap().named_ids().unwrap().len(), 100);
    let e = validate(&ws(&refs), Limits::default()).unwrap_err();
    assert_eq!(e.code, "TooManyTargets");
    assert_eq!(e.to_string(), "input: names 101 targets, more than MAX_TARGETS (100)");
    // 101 entries that are 100 distinct ids fit.
    let mut with_dup = refs[..100].to_vec();
    with_dup.push(refs[0]);
    assert!(validate(&ws(&with_dup), Limits::default()).is_ok());
    assert!(validate(&ws(&refs[..3]), Limits { max_targets: 2 }).is_err());
}

#[test]
fn validated_inputs_keep_every_member() {
    let r = validate(
        &mgn(json!({"sourceServerIDs": [S1], "tags": {"wave": "3"}, "accountID": "123456789012"})),
        Limits::default(),
    )
    .unwrap();
    let Target::TargetInstances(Scope::Named(t)) = r.target else { panic!("wrong operation") };
    assert_eq!(t.tags.get("wave").map(String::as_str), Some("3"));
    assert_eq!(t.account_id.as_deref(), Some("123456789012"));

    let r = validate(&sc(json!({"ProvisionedProductName": "sbx", "TerminateToken": "tok", "IgnoreErrors": true, "RetainPhysicalResources": false, "AcceptLanguage": "jp"})), Limits::default()).unwrap();
    let Target::ProvisionedProduct(Scope::Named(p)) = r.target else { panic!("wrong operation") };
    assert_eq!(p.product, ProductRef::Name("sbx".into()));
    assert_eq!(p.terminate_token.as_deref(), Some("tok"));
    assert_eq!((p.ignore_errors, p.retain_physical_resources), (Some(true), Some(false)));
    assert_eq!(p.accept_language.as_deref(), Some("jp"));
}

#[test]
fn a_retry_request_is_itself_valid_and_names_only_the_failed_ids() {
    let original = validate(
        &mgn(
            json!({"sourceServerIDs": [S1, "s-0123456789abcdefB"], "tags": {"wave": "3"}, "accountID": "123456789012"}),
        ),
        Limits::default(),
    )
    .unwrap();
    let retry = retry_request(&original, &[S1.to_owned()]).unwrap();
    assert_eq!(
        retry,
        json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": [S1], "tags": {"wave": "3"}, "accountID": "123456789012"}})
    );
    assert_eq!(validate(&retry, Limits::default()).unwrap().named_ids().unwrap(), vec![S1.to_owned()]);

    let original = validate(&ws(&["ws-abcd1234", "ws-abcd1235"]), Limits::default()).unwrap();
    let retry = retry_request(&original, &["ws-abcd1235".to_owned()]).unwrap();
    assert_eq!(retry, ws(&["ws-abcd1235"]));
    assert!(retry_request(&original, &[]).is_none());
}

#[test]
fn a_member_name_that_is_not_a_plain_word_is_quoted_in_the_path() {
    // Found by the fuzzer: an empty member name made an error with an empty field.
    let e = validate(&json!({"operation": "TerminateWorkspaces", "": null}), Limits::default()).unwrap_err();
    assert_eq!(e.field, r#"[""]"#);
    let e = validate(&mgn(json!({"sourceServerIDs": [S1], "tags": {"": "v"}})), Limits::default()).unwrap_err();
    assert_eq!(e.to_string(), r#"input.tags[""]: key is 0 characters, must be 1 to 256"#);
    let e = validate(&json!({"operation": "TerminateWorkspaces", "input": {"a b": 1}}), Limits::default()).unwrap_err();
    assert_eq!(e.field, r#"input["a b"]"#);
}

#[test]
fn accounts_and_regions_are_checked_and_a_fan_out_takes_no_single_place() {
    let base = || json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-abcd1234"}]}});
    let with = |member: &str, value: Value| {
        let mut r = base();
        r[member] = value;
        r
    };
    let ok = validate(&with("account", json!("111122223333")), Limits::default()).unwrap();
    assert_eq!(ok.account.as_deref(), Some("111122223333"));
    let ok = validate(&with("region", json!("eu-west-1")), Limits::default()).unwrap();
    assert_eq!(ok.region.as_deref(), Some("eu-west-1"));
    let ok = validate(&with("regions", json!(["us-gov-west-1", "eu-west-1", "eu-west-1"])), Limits::default()).unwrap();
    assert_eq!(ok.fan_out.unwrap().regions, vec!["us-gov-west-1", "eu-west-1"], "duplicates removed");
    for (member, value, field, text) in [
        ("account", json!("1111"), "account", "12 digits"),
        ("region", json!("EU-WEST-1"), "region", "is not a region name"),
        ("region", json!("eu-west"), "region", "is not a region name"),
        ("accounts", json!([]), "accounts", "at least one"),
        ("accounts", json!(["111122223333", "x"]), "accounts[1]", "12 digits"),
        ("regions", json!("eu-west-1"), "regions", "must be a list"),
        ("origin", json!("no spaces allowed"), "origin", "is not an origin"),
    ] {
        let e = validate(&with(member, value), Limits::default()).unwrap_err();
        assert_eq!(e.field, field, "{member}");
        assert!(e.message.contains(text), "{member}: {e}");
    }
    let mut both = with("account", json!("111122223333"));
    both["accounts"] = json!(["111122223333"]);
    assert_eq!(validate(&both, Limits::default()).unwrap_err().field, "accounts");
    let mut mixed = with("region", json!("eu-west-1"));
    mixed["accounts"] = json!(["111122223333"]);
    assert_eq!(validate(&mixed, Limits::default()).unwrap_err().field, "accounts");
}

#[test]
fn a_retry_keeps_the_account_and_region_and_drops_the_origin() {
    let original = json!({"operation": "TerminateWorkspaces", "account": "111122223333", "region": "eu-west-1",
        "origin": "abc123", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-abcd1234"}]}});
    let request = validate(&original, Limits::default()).unwrap();
    let retry = retry_request(&request, &["ws-abcd1234".to_owned()]).unwrap();
    assert_eq!(retry["account"], "111122223333");
    assert_eq!(retry["region"], "eu-west-1");
    assert!(retry.get("origin").is_none(), "a replay derives fresh tokens");
}

#[test]
fn a_notice_is_given_only_by_a_workspaces_or_mgn_selection_for_1_to_90_days() {
    let ws = |extra: serde_json::Value| {
        let mut r = json!({"operation": "TerminateWorkspaces", "select": {"idleDays": 30}});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        validate(&r, Limits::default())
    };
    assert_eq!(ws(json!({"notice": {"days": 7}})).unwrap().notice_days(), Some(7));
    assert_eq!(ws(json!({"notice": {"days": 90}})).unwrap().notice_days(), Some(90));
    assert_eq!(ws(json!({})).unwrap().notice_days(), None);
    for (notice, field, says) in [
        (json!({"days": 0}), "notice.days", "from 1 to 90, not 0"),
        (json!({"days": 91}), "notice.days", "not 91"),
        (json!({"days": "7"}), "notice.days", "not a string"),
        (json!({}), "notice.days", "is required"),
        (json!({"days": 7, "hours": 1}), "notice.hours", ""),
        (json!(7), "notice", "must be a JSON object"),
    ] {
        let e = ws(json!({"notice": notice})).unwrap_err();
        assert_eq!(e.field, field, "{notice}: {e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    let named = json!({"operation": "TerminateWorkspaces", "notice": {"days": 7},
        "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-aaaaaaaa"}]}});
    let e = validate(&named, Limits::default()).unwrap_err();
    assert_eq!(e.field, "notice");
    assert!(e.to_string().contains("only with select"), "{e}");
    let catalog = json!({"operation": "TerminateProvisionedProduct", "notice": {"days": 7}, "select": {"statuses": ["AVAILABLE"]}});
    let e = validate(&catalog, Limits::default()).unwrap_err();
    assert_eq!(e.field, "notice");
    assert!(e.to_string().contains("Service Catalog tags a provisioned product only by updating its stack"), "{e}");
    let mgn = json!({"operation": "TerminateTargetInstances", "notice": {"days": 3}, "select": {"lifecycleStates": ["READY_FOR_TEST"]}});
    assert_eq!(validate(&mgn, Limits::default()).unwrap().notice_days(), Some(3));
}

#[test]
fn list_tag_values_tags_absent_and_running_modes_are_checked_like_any_filter() {
    let ws = |select: serde_json::Value| {
        validate(&json!({"operation": "TerminateWorkspaces", "select": select}), Limits::default())
    };
    let ok = ws(json!({"tags": {"env": ["sandbox", "dev", "sandbox"]}, "tagsAbsent": ["owner"], "runningModes": ["ALWAYS_ON", "MANUAL"]})).unwrap();
    let Target::Workspaces(Scope::Select(s)) = ok.target else { panic!("a selection") };
    assert_eq!(s.tags["env"], vec!["sandbox", "dev"], "duplicates removed, order kept");
    assert_eq!(s.tags_absent, vec!["owner"]);
    assert_eq!(s.filters.running_modes, vec!["ALWAYS_ON", "MANUAL"]);
    for (select, field, says) in [
        (json!({"tags": {"env": []}}), "select.tags.env", "at least one value"),
        (json!({"tags": {"env": [1]}}), "select.tags.env[0]", "must be a string"),
        (json!({"tags": {"env": ["x".repeat(257)]}}), "select.tags.env[0]", "more than 256"),
        (json!({"tagsAbsent": []}), "select.tagsAbsent", "at least one tag key"),
        (json!({"tagsAbsent": "owner"}), "select.tagsAbsent", "must be a list"),
        (json!({"tagsAbsent": [""]}), "select.tagsAbsent[0]", "must be 1 to 256"),
        (json!({"runningModes": ["SOMETIMES"]}), "select.runningModes[0]", "not one of ALWAYS_ON, AUTO_STOP, MANUAL"),
    ] {
        let e = ws(select.clone()).unwrap_err();
        assert_eq!(e.field, field, "{select}: {e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    let mgn = json!({"operation": "TerminateTargetInstances", "select": {"runningModes": ["ALWAYS_ON"]}});
    assert_eq!(validate(&mgn, Limits::default()).unwrap_err().field, "select.runningModes");
    let sc = json!({"operation": "TerminateProvisionedProduct", "select": {"tagsAbsent": ["owner"]}});
    assert!(validate(&sc, Limits::default()).is_ok());
}
