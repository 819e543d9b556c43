//! docs/reference.md, "Follow-up, audit events and metrics" and "Accounts, regions and fan-out": what teardown sends to its own request queue. Today the
//! follow-up checks: each a `{"confirm": {...}}` message with a delay.

use crate::classify::classify;
use crate::confirm::Check;

#[derive(Debug, thiserror::Error)]
#[error("could not send the follow-up check ({code}): {message}")]
pub struct SendError {
    pub code: String,
    pub message: String,
}

/// The request queue. Without a URL, nothing is followed up (a warning says so at start).
#[derive(Clone, Debug)]
pub struct RequestQueue {
    client: Option<aws_sdk_sqs::Client>,
    url: Option<String>,
}

impl RequestQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: Option<String>) -> Self {
        RequestQueue { client: Some(client), url }
    }

    /// No queue: follow-ups are off.
    pub fn none() -> Self {
        RequestQueue { client: None, url: None }
    }

    pub fn is_set(&self) -> bool {
        self.client.is_some() && self.url.is_some()
    }

    /// Sends `check`, to come back after `delay` seconds.
    pub async fn send(&self, check: &Check, delay: u64) -> Result<(), SendError> {
        let (Some(client), Some(url)) = (&self.client, &self.url) else { return Ok(()) };
        let body = check.message().to_string();
        client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(delay.min(crate::confirm::LONGEST_DELAY) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let failure = classify(&e).failure;
                SendError { code: failure.code, message: failure.message }
            })
    }
}

impl RequestQueue {
    /// Sends every body, 10 and at most 256 KiB a `SendMessageBatch`, 8 calls at a
    /// time; entries a batch reports failed are sent once more. Returns the number of
    /// calls made; `Err` when some entries still failed.
    pub async fn send_all(&self, bodies: &[String]) -> Result<usize, SendError> {
        use futures_util::{StreamExt, stream};
        let (Some(client), Some(url)) = (&self.client, &self.url) else {
            return Err(SendError { code: "NoRequestQueue".into(), message: "REQUEST_QUEUE_URL is not set".into() });
        };
        let batches = crate::batches::cut(bodies.iter().enumerate(), |(_, body)| body.len(), 10, 250 * 1024);
        let sent: Vec<Result<usize, SendError>> =
            stream::iter(batches).map(|batch| send_batch(client, url, batch)).buffer_unordered(8).collect().await;
        let mut calls = 0;
        for result in sent {
            calls += result?;
        }
        Ok(calls)
    }
}

/// One batch, and its failed entries once more; the calls it took.
async fn send_batch(client: &aws_sdk_sqs::Client, url: &str, batch: Vec<(usize, &String)>) -> Result<usize, SendError> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let mut pending = batch;
    let mut calls = 0;
    for attempt in 0..2 {
        let entries: Vec<SendMessageBatchRequestEntry> = pending
            .iter()
            .filter_map(|(i, body)| {
                SendMessageBatchRequestEntry::builder().id(format!("c{i}")).message_body(body.as_str()).build().ok()
            })
            .collect();
        calls += 1;
        let answer = client.send_message_batch().queue_url(url).set_entries(Some(entries)).send().await;
        let failed: Vec<String> = match &answer {
            Ok(out) => out.failed().iter().map(|f| f.id().to_owned()).collect(),
            Err(_) => pending.iter().map(|(i, _)| format!("c{i}")).collect(),
        };
        pending.retain(|(i, _)| failed.contains(&format!("c{i}")));
        if pending.is_empty() {
            return Ok(calls);
        }
        if attempt == 1 {
            let (code, message) = match answer {
                Err(e) => {
                    let f = classify(&e).failure;
                    (f.code, f.message)
                }
                Ok(_) => ("BatchEntryFailed".to_owned(), format!("{} entries were not sent", pending.len())),
            };
            return Err(SendError { code, message });
        }
    }
    Ok(calls)
}
