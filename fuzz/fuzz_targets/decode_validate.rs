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
    for delivery in items {
        let field = match &delivery.decoded {
            Err(error) => Some(error.field.clone()),
            Ok(value) => validate(value, Limits::default()).err().map(|error| error.field),
        };
        if let Some(field) = field {
            assert!(!field.is_empty(), "an error without a field");
            assert!(field.chars().count() <= 201, "an unbounded field path");
        }
        let _ = delivery.idempotency_token();
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        check(value);
    }
    check(json!({"Records": [{"messageId": "m-1", "body": text, "eventSource": "aws:sqs"}]}));
});
