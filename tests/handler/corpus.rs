//! Every payload in `tests/corpus/` is refused with an error that names its field,
//! and gets a dead-letter record that fits in one SQS message. None panics, none
//! is dropped. Each file is fed as an SQS body, and (when it is JSON) as the whole
//! invocation payload.

use std::path::PathBuf;

use crate::doubles::*;

const SQS_LIMIT: usize = 256 * 1024;

fn corpus() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect();
    files.sort();
    files
}

/// The error a person reads: `<field>: <rule>`, the field a path without spaces.
fn names_a_field(message: &str) -> bool {
    message.split_once(": ").is_some_and(|(field, rule)| !field.is_empty() && !field.contains(' ') && !rule.is_empty())
}

fn check_records(name: &str, sent: &[(String, Value, String, String)], expected: usize) {
    assert_eq!(sent.len(), expected, "{name}: one dead-letter record per refused item");
    for (_, body, _, outcome) in sent {
        assert_eq!(outcome, "invalid", "{name}");
        let size = body.to_string().len();
        assert!(size <= SQS_LIMIT, "{name}: a {size}-byte record does not fit in SQS");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(names_a_field(message), "{name}: {message:?} does not name a field");
        assert!(body.get("request").is_some(), "{name}: the payload is kept");
    }
}

#[tokio::test]
async fn every_bad_input_is_refused_clearly_and_dead_lettered() {
    let corpus = corpus();
    assert!(corpus.len() >= 100, "the corpus has {} payloads", corpus.len());
    let terminate_calls = log();
    let terminate = ws_terminate_ok(&terminate_calls);

    for (name, text) in &corpus {
        // As the body of one SQS record.
        let sent = log();
        let send = sqs_send_ok(&sent);
        let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());
        let response = invoke(&app, sqs_event(&[("corpus-1", Value::String(text.clone()))])).await.unwrap();
        assert!(failures(&response).is_empty(), "{name}: nothing to redeliver, the record was published");
        check_records(name, &taken(&sent), 1);

        // As the whole invocation payload.
        let Ok(payload) = serde_json::from_str::<Value>(text) else { continue };
        let sent = log();
        let send = sqs_send_ok(&sent);
        let app = Doubles { ws: &[&terminate], mgn: &[], sc: &[], sqs: &[&send] }.app(settings());
        let answer =
            invoke(&app, payload.clone()).await.unwrap_or_else(|e| panic!("{name}: the invocation failed: {e}"));
        // One record per item the payload holds: per SQS record, or per request of a
        // `{"requests": [...]}` list, or one for anything else.
        let expected = match (payload.get("Records").and_then(Value::as_array), payload.get("requests")) {
            (Some(records), _) if records.iter().all(|r| r.get("eventSource") == Some(&json!("aws:sqs"))) => {
                records.len()
            }
            (_, Some(Value::Array(requests)))
                if !requests.is_empty() && payload.as_object().is_some_and(|m| m.len() == 1) =>
            {
                requests.len()
            }
            _ => 1,
        };
        match answer.get("batchItemFailures") {
            Some(failures) => assert_eq!(failures, &json!([]), "{name}"),
            None => {
                let requests = answer["requests"].as_array().unwrap();
                assert_eq!(requests.len(), expected, "{name}: one entry per request");
                assert!(requests.iter().all(|r| r["outcome"] == "invalid"), "{name}: {answer}");
            }
        }
        check_records(name, &taken(&sent), expected);
    }
    assert!(taken(&terminate_calls).is_empty(), "no bad input ever reaches a terminate call");
}
