//! Coalescing and attribution on their own: which calls a batch makes, and that
//! each request reads back exactly its own targets.

use serde_json::{Value, json};

use super::*;
use crate::decode::{Decoded, decode};
use crate::guard::Verdict;
use crate::handler::admit::Accepted;
use crate::handler::resolve::{Resolution, Resolved};
use crate::request::{Limits, validate};

/// A request from SQS message `message_id` (FIFO group `group`), resolved with every
/// named target judged to be terminated.
fn work(message_id: &str, group: Option<&str>, request: Value) -> Resolved {
    let arn = if group.is_some() { "arn:aws:sqs:us-east-1:1:q.fifo" } else { "arn:aws:sqs:us-east-1:1:q" };
    let mut record = json!({
        "messageId": message_id, "body": request.to_string(), "eventSource": "aws:sqs",
        "eventSourceARN": arn, "attributes": {"ApproximateReceiveCount": "1"}
    });
    if let Some(group) = group {
        record["attributes"]["MessageGroupId"] = json!(group);
    }
    let Decoded::Sqs(mut deliveries) = decode(json!({"Records": [record]}), "req") else { panic!("not SQS") };
    let delivery = deliveries.remove(0);
    let request = validate(delivery.decoded.as_ref().unwrap(), Limits { max_targets: 1000 }).unwrap();
    let judged = request
        .named_ids()
        .unwrap()
        .into_iter()
        .map(|id| (id, Verdict::Terminate { reason: "named in the request".into(), call_id: None }))
        .collect();
    let place = crate::services::places::Place { account: None, region: None };
    Resolved {
        accepted: Accepted { delivery, request, dry_run: false, place },
        resolution: Resolution::Judged(judged),
        found_product: None,
        chain: None,
        chains_won: Default::default(),
        recovered: Default::default(),
    }
}

fn ws(ids: &[&str]) -> Value {
    json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": ids.iter().map(|i| json!({"WorkspaceId": i})).collect::<Vec<_>>()}})
}

fn mgn(ids: &[&str], tags: Value) -> Value {
    json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ids, "tags": tags}})
}

fn ws_ids(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("ws-{prefix}{i:07}")).collect()
}

fn calls_of(calls: &[Call]) -> Vec<Vec<String>> {
    calls
        .iter()
        .map(|c| match c {
            Call::Workspaces(ids) => ids.clone(),
            Call::Mgn(call) => call.input.source_server_ids.clone(),
            Call::Catalog(call) => vec![call.input.product.as_given().to_owned()],
            Call::Notice(call) => vec![format!("notice {}", call.id)],
        })
        .collect()
}

#[test]
fn workspaces_of_a_batch_share_calls_of_25_each_id_once() {
    let a = ws_ids(20, "a");
    let b = ws_ids(20, "b");
    fn refs(ids: &[String]) -> Vec<&str> {
        ids.iter().map(String::as_str).collect()
    }
    let mut overlap = refs(&b);
    overlap.push(&a[0]);
    let works = [work("m-1", None, ws(&refs(&a))), work("m-2", None, ws(&overlap))];

    let calls = calls_of(&plan_in(&works.iter().collect::<Vec<_>>()));

    assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![25, 15]);
    let mut sent: Vec<String> = calls.concat();
    sent.sort();
    let mut want: Vec<String> = a.iter().chain(&b).cloned().collect();
    want.sort();
    assert_eq!(sent, want, "40 distinct ids, each once");
}

#[test]
fn a_fifo_batch_shares_calls_within_a_group_only() {
    let works = [
        work("m-1", Some("g1"), ws(&["ws-g1000001"])),
        work("m-2", Some("g2"), ws(&["ws-g2000001"])),
        work("m-3", Some("g1"), ws(&["ws-g1000002"])),
    ];
    let calls = calls_of(&plan_in(&works.iter().collect::<Vec<_>>()));
    assert_eq!(calls, vec![vec!["ws-g1000001".to_owned(), "ws-g1000002".to_owned()], vec!["ws-g2000001".to_owned()]]);
}

#[test]
fn mgn_servers_share_calls_by_job_tags_and_one_server_is_in_one_call() {
    let (x, y, z) = ("s-xxxxxxxxxxxxxxxxx", "s-yyyyyyyyyyyyyyyyy", "s-zzzzzzzzzzzzzzzzz");
    let works = [
        work("m-1", None, mgn(&[x, y], json!({"ticket": "A"}))),
        work("m-2", None, mgn(&[y, z], json!({"ticket": "A"}))),
        work("m-3", None, mgn(&[x], json!({"ticket": "B"}))),
    ];
    let calls = plan_in(&works.iter().collect::<Vec<_>>());
    let mgn_calls: Vec<&MgnCall> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Mgn(call) => Some(call),
            _ => None,
        })
        .collect();
    assert_eq!(mgn_calls.len(), 1, "x is claimed by ticket A's call, so ticket B makes none");
    assert_eq!(mgn_calls[0].input.source_server_ids, vec![x, y, z]);
    assert_eq!(mgn_calls[0].input.tags.get("ticket").map(String::as_str), Some("A"));
    // Each request that named one of the call's servers takes part in the calls apart.
    assert_eq!(
        mgn_calls[0].requests,
        vec![vec![x.to_owned(), y.to_owned()], vec![y.to_owned(), z.to_owned()], vec![x.to_owned()]]
    );
}

/// (A refused request never reaches the plan: `plan` takes only resolved requests.)
#[test]
fn dry_runs_and_stopped_targets_make_no_call() {
    let mut dry = work("m-1", None, ws(&["ws-dry00001"]));
    dry.accepted.dry_run = true;
    let mut stopped = work("m-2", None, ws(&["ws-stop0001"]));
    stopped.resolution = Resolution::Judged(vec![(
        "ws-stop0001".into(),
        Verdict::Stop { outcome: crate::outcome::Outcome::Protected, reason: "tag".into() },
    )]);
    assert!(plan_in(&[&dry, &stopped]).is_empty());
}

#[test]
fn two_requests_naming_one_product_read_one_call_each_by_its_own_name() {
    let by_id = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": "pp-sandbox"}});
    let by_name = json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductName": "sandbox"}});
    let mut named = work("m-2", None, by_name);
    // The lookup found the name's product: pp-sandbox.
    named.resolution = Resolution::Judged(vec![(
        "sandbox".into(),
        Verdict::Terminate { reason: "named".into(), call_id: Some("pp-sandbox".into()) },
    )]);
    let calls = plan_in(&[&work("m-1", None, by_id), &named]);
    assert_eq!(calls.len(), 1);
    let Call::Catalog(call) = &calls[0] else { panic!("{calls:?}") };
    assert_eq!(call.named, vec!["pp-sandbox".to_owned(), "sandbox".to_owned()]);
}

#[test]
fn answers_are_filed_by_service_and_target_so_each_request_reads_its_own() {
    let mut results = CallResults::default();
    results.file(
        Operation::TerminateWorkspaces,
        None,
        vec![
            TargetResult::new("ws-a0000001", Outcome::Terminated),
            TargetResult::new("ws-b0000001", Outcome::NotFound),
        ],
    );
    results.file(
        Operation::TerminateTargetInstances,
        None,
        vec![TargetResult {
            job_id: Some("mgnjob-1".into()),
            ..TargetResult::new("s-xxxxxxxxxxxxxxxxx", Outcome::Terminated)
        }],
    );
    assert_eq!(
        results.get(Operation::TerminateWorkspaces, "ws-b0000001", None).map(|r| r.outcome),
        Some(Outcome::NotFound)
    );
    assert!(results.get(Operation::TerminateTargetInstances, "ws-a0000001", None).is_none(), "filed per service");
    assert_eq!(results.accepted_servers().collect::<Vec<_>>(), vec![("s-xxxxxxxxxxxxxxxxx", "mgnjob-1")]);
}
