//! Doubles and event builders the behaviour files share.

use crate::doubles::*;
use aws_sdk_mgn::operation::terminate_target_instances::TerminateTargetInstancesOutput;
use aws_sdk_mgn::types::{Job, ParticipatingServer};

/// Page `n` (0-based) of three, by the token the caller sends back.
pub fn page_of(token: Option<&str>) -> usize {
    match token {
        None => 0,
        Some("page-2") => 1,
        Some(_) => 2,
    }
}

pub fn next_token(page: usize) -> Option<String> {
    match page {
        0 => Some("page-2".to_owned()),
        1 => Some("page-3".to_owned()),
        _ => None,
    }
}

pub fn days_ago(days: i64) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(
        (time::macros::datetime!(2026-11-24 10:00 UTC) - time::Duration::days(days)).unix_timestamp(),
    )
}

/// An SQS event whose records carry the given attributes (receive count, FIFO group…)
/// and come from `queue_arn`.
pub type Attributes<'a> = &'a [(&'a str, &'a str)];

pub fn sqs_event_with(queue_arn: &str, records: &[(&str, Value, Attributes)]) -> Value {
    let mut event = sqs_event(&records.iter().map(|(id, body, _)| (*id, body.clone())).collect::<Vec<_>>());
    for (record, (_, _, attributes)) in event["Records"].as_array_mut().unwrap().iter_mut().zip(records) {
        record["eventSourceARN"] = json!(queue_arn);
        for (name, value) in attributes.iter() {
            record["attributes"][*name] = json!(value);
        }
    }
    event
}

pub fn job(
    id: &str,
    kind: aws_sdk_mgn::types::JobType,
    status: aws_sdk_mgn::types::JobStatus,
    servers: &[&str],
) -> Job {
    Job::builder()
        .job_id(id)
        .r#type(kind)
        .status(status)
        .set_participating_servers(Some(
            servers.iter().map(|s| ParticipatingServer::builder().source_server_id(*s).build().unwrap()).collect(),
        ))
        .build()
        .unwrap()
}

pub fn mgn_terminate_recording(calls: &Log<Vec<String>>) -> Rule {
    let calls = calls.clone();
    mock!(aws_sdk_mgn::Client::terminate_target_instances).then_compute_output(move |req| {
        calls.lock().unwrap().push(req.source_server_ids().to_vec());
        TerminateTargetInstancesOutput::builder().job(Job::builder().job_id("mgnjob-new").build().unwrap()).build()
    })
}
