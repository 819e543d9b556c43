//! Contract §7 and §9: what teardown sends to its own request queue. Today the
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
