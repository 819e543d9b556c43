//! Any bytes, as an invocation payload and as an SQS body: decoding and validation
//! must never panic, and every error must name a field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use teardown::decode::{Decoded, decode};
use teardown::request::{Limits, validate};

fn check(payload: Value) {
    let items = match decode(payload, "fuzz") {
        Decoded::Sqs(items) | Decoded::Other(items) => items,
    };
    for item in items {
        let checked = item.decoded.clone().and_then(|value| validate(&value, Limits::default()));
        if let Err(error) = checked {
            assert!(!error.field.is_empty(), "an error without a field: {error:?}");
            assert!(error.field.chars().count() <= 201, "an unbounded field path");
        }
        let _ = item.idempotency_token();
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        check(value);
    }
    check(json!({"Records": [{"messageId": "m-1", "body": text, "eventSource": "aws:sqs"}]}));
});
