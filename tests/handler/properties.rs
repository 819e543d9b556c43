//! Properties over random batches: ids are split into calls without loss or
//! repetition, and every SQS record is accounted for exactly once.

use std::collections::{BTreeMap, BTreeSet};

use crate::doubles::*;
use proptest::prelude::*;

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// A record of one of the kinds a batch can hold, and where it must end up.
#[derive(Clone, Debug)]
enum Kind {
    Valid(Vec<u16>),
    BadJson,
    UnknownOperation,
    Throttled,
    Refused,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => prop::collection::vec(0u16..60, 1..30).prop_map(Kind::Valid),
        1 => Just(Kind::BadJson),
        1 => Just(Kind::UnknownOperation),
        1 => Just(Kind::Throttled),
        1 => Just(Kind::Refused),
    ]
}

fn ws_id(n: u16) -> String {
    format!("ws-prop{n:04}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn workspace_ids_are_split_into_calls_of_at_most_25_each_id_exactly_once(
        lists in prop::collection::vec(prop::collection::vec(0u16..200, 1..60), 1..8)
    ) {
        let calls = log();
        let terminate = ws_terminate_ok(&calls);
        let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[] }.app(Settings { max_targets: 1000, ..settings() });
        let records: Vec<(String, Value)> = lists
            .iter()
            .enumerate()
            .map(|(i, ids)| (format!("m-{i}"), ws_request(&ids.iter().map(|n| ws_id(*n)).collect::<Vec<_>>())))
            .collect();

        let response = run(invoke(&app, sqs_event(&records))).unwrap();

        prop_assert!(failures(&response).is_empty());
        let calls = taken(&calls);
        let distinct: BTreeSet<String> = lists.iter().flatten().map(|n| ws_id(*n)).collect();
        let called: Vec<String> = calls.concat();
        prop_assert_eq!(called.len(), distinct.len(), "no id is sent twice");
        prop_assert_eq!(called.into_iter().collect::<BTreeSet<_>>(), distinct.clone());
        prop_assert!(calls.iter().all(|c| !c.is_empty() && c.len() <= 25));
        prop_assert_eq!(calls.len(), distinct.len().div_ceil(25), "⌈n/25⌉ calls for n distinct ids across the batch");
    }

    #[test]
    fn every_record_ends_exactly_once(kinds in prop::collection::vec(kind(), 1..12)) {
        let ws_calls = log();
        let ws = ws_terminate_ok(&ws_calls);
        let throttled = mock!(aws_sdk_mgn::Client::terminate_target_instances)
            .then_http_response(|| http(400, r#"{"__type":"ThrottlingException","message":"slow down"}"#));
        let refused = mock!(aws_sdk_servicecatalog::Client::terminate_provisioned_product)
            .then_http_response(|| http(400, r#"{"__type":"InvalidParametersException","Message":"no"}"#));
        let sent = log();
        let send = sqs_send_ok(&sent);
        let app = Doubles { ws: &[&ws], mgn: &[&throttled], sc: &[&refused], sqs: &[&send] }.app(Settings { max_targets: 1000, ..settings() });
        let records: Vec<(String, Value)> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let body = match k {
                    Kind::Valid(ids) => ws_request(&ids.iter().map(|n| ws_id(*n)).collect::<Vec<_>>()),
                    Kind::BadJson => Value::String("{\"operation\"".into()),
                    Kind::UnknownOperation => json!({"operation": "TerminateEverything", "input": {}}),
                    Kind::Throttled => json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-0123456789abcdefA"]}}),
                    Kind::Refused => json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": format!("pp-{i}")}}),
                };
                (format!("m-{i}"), body)
            })
            .collect();

        let response = run(invoke(&app, sqs_event(&records))).unwrap();

        let redelivered: Vec<String> = failures(&response);
        let dead_lettered: Vec<String> = taken(&sent).iter().map(|(_, b, _, _)| b["source"]["messageId"].as_str().unwrap().to_owned()).collect();
        let mut ends: BTreeMap<String, usize> = BTreeMap::new();
        for id in redelivered.iter().chain(&dead_lettered) {
            *ends.entry(id.clone()).or_default() += 1;
        }
        for (i, k) in kinds.iter().enumerate() {
            let id = format!("m-{i}");
            let count = ends.get(&id).copied().unwrap_or(0);
            match k {
                // Done: neither redelivered nor dead-lettered.
                Kind::Valid(_) => prop_assert_eq!(count, 0, "{} {:?}", id, k),
                Kind::Throttled => prop_assert!(redelivered.contains(&id) && count == 1, "{} {:?}", id, k),
                _ => prop_assert!(dead_lettered.contains(&id) && count == 1, "{} {:?}", id, k),
            }
        }
        prop_assert_eq!(redelivered.len() + dead_lettered.len(), kinds.iter().filter(|k| !matches!(k, Kind::Valid(_))).count());
    }
}
