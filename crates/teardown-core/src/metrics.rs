//! docs/reference.md, "Follow-up, audit events and metrics": the invocation's metrics in CloudWatch Embedded Metric Format.
//! Pure: the JSON lines; the handler writes them to standard output as they are.
//!
//! The format is a small JSON document (`_aws.Timestamp`, `_aws.CloudWatchMetrics`
//! with the namespace, dimension sets and metric names, then the values at the top
//! level). Written with serde, it costs no dependency and nothing at cold start;
//! the one Lambda-aware crate (`metrics_cloudwatch_embedded`) would bring the
//! `metrics` facade and a global recorder for the same few lines.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::outcome::RequestResult;
use crate::request::Operation;

/// The lines of one invocation: one per (operation, outcome) with `Targets` and
/// `Requests`, and one without dimensions for `ColdStart` and `AuditEventsNotSent`
/// when either is not zero.
pub fn lines(
    namespace: &str,
    results: &[RequestResult],
    cold_start: bool,
    audit_events_not_sent: usize,
    timestamp_ms: i64,
) -> Vec<String> {
    let mut counts: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    for result in results {
        let operation = result.operation.map_or("unknown", Operation::as_str);
        // A follow-up check is not a request; a target it will check again is not
        // decided yet (it was counted when it was accepted).
        if !result.is_check {
            counts.entry((operation, result.outcome.as_str())).or_default().1 += 1;
        }
        for target in result.targets.iter().filter(|t| !t.pending) {
            counts.entry((operation, target.outcome.as_str())).or_default().0 += 1;
        }
    }
    let mut out: Vec<String> = counts
        .into_iter()
        .map(|((operation, outcome), (targets, requests))| {
            json!({
                "_aws": {
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": namespace,
                        "Dimensions": [["operation", "outcome"]],
                        "Metrics": [{"Name": "Targets", "Unit": "Count"}, {"Name": "Requests", "Unit": "Count"}],
                    }],
                },
                "operation": operation,
                "outcome": outcome,
                "Targets": targets,
                "Requests": requests,
            })
            .to_string()
        })
        .collect();
    let mut plain: Vec<(&str, usize)> = Vec::new();
    if cold_start {
        plain.push(("ColdStart", 1));
    }
    if audit_events_not_sent > 0 {
        plain.push(("AuditEventsNotSent", audit_events_not_sent));
    }
    let checks_dropped: usize = results.iter().map(|r| r.checks_dropped).sum();
    if checks_dropped > 0 {
        plain.push(("ChecksDropped", checks_dropped));
    }
    if !plain.is_empty() {
        let mut line = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [[]],
                    "Metrics": plain.iter().map(|(name, _)| json!({"Name": name, "Unit": "Count"})).collect::<Vec<_>>(),
                }],
            },
        });
        for (name, value) in plain {
            line[name] = Value::from(value);
        }
        out.push(line.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::decode::Origin;
    use crate::outcome::{Outcome, TargetResult};

    fn result(operation: Option<&'static str>, outcome: Outcome, targets: &[Outcome]) -> RequestResult {
        RequestResult {
            targets: targets.iter().enumerate().map(|(i, o)| TargetResult::new(format!("t{i}"), *o)).collect(),
            ..RequestResult::new(
                Origin::Direct { request_id: "r".into() },
                operation.and_then(Operation::parse),
                outcome,
                false,
            )
        }
    }

    #[test]
    fn the_numbers_are_exactly_the_outcomes_in_emf() {
        let results = [
            result(
                Some("TerminateWorkspaces"),
                Outcome::Terminated,
                &[Outcome::Terminated, Outcome::Terminated, Outcome::Protected],
            ),
            result(Some("TerminateWorkspaces"), Outcome::Terminated, &[Outcome::Terminated]),
            result(None, Outcome::Invalid, &[]),
        ];
        let lines: Vec<Value> = lines("teardown", &results, true, 2, 1_764_000_000_000)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let find = |operation: &str, outcome: &str| {
            lines
                .iter()
                .find(|l| l["operation"] == operation && l["outcome"] == outcome)
                .cloned()
                .unwrap_or(Value::Null)
        };
        assert_eq!(
            (
                find("TerminateWorkspaces", "terminated")["Targets"].as_u64(),
                find("TerminateWorkspaces", "terminated")["Requests"].as_u64()
            ),
            (Some(3), Some(2))
        );
        assert_eq!(
            (
                find("TerminateWorkspaces", "protected")["Targets"].as_u64(),
                find("TerminateWorkspaces", "protected")["Requests"].as_u64()
            ),
            (Some(1), Some(0))
        );
        assert_eq!(
            (find("unknown", "invalid")["Targets"].as_u64(), find("unknown", "invalid")["Requests"].as_u64()),
            (Some(0), Some(1))
        );
        let emf = &find("unknown", "invalid")["_aws"];
        assert_eq!(emf["Timestamp"], 1_764_000_000_000_i64);
        assert_eq!(emf["CloudWatchMetrics"][0]["Namespace"], "teardown");
        assert_eq!(emf["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["operation", "outcome"]]));
        let plain = lines.iter().find(|l| l.get("ColdStart").is_some()).unwrap();
        assert_eq!((plain["ColdStart"].as_u64(), plain["AuditEventsNotSent"].as_u64()), (Some(1), Some(2)));
        // A follow-up check is no request, and a target it checks again is not counted again.
        let mut check =
            result(Some("TerminateWorkspaces"), Outcome::Terminated, &[Outcome::Terminated, Outcome::Confirmed]);
        check.is_check = true;
        check.targets[0].pending = true;
        let lines: Vec<Value> =
            super::lines("teardown", &[check], false, 0, 0).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (lines[0]["outcome"].as_str(), lines[0]["Targets"].as_u64(), lines[0]["Requests"].as_u64()),
            (Some("confirmed"), Some(1), Some(0))
        );
        // A warm invocation with every event sent has no such line.
        assert!(super::lines("teardown", &results, false, 0, 0).iter().all(|l| !l.contains("ColdStart")));
    }
}
