//! DynamoDB applies a conditional write atomically: of two racing writes with the
//! same condition, one goes in. moto's server does not serialize them (checked here:
//! three racing `UpdateItem`s on one new item, 13 keys of 200 had two winners). The
//! state table's tests race deliveries on purpose, so they reach moto through this
//! loopback proxy, which forwards one request at a time, as DynamoDB's per-item
//! ordering would, and answers each in one write.

use std::sync::Arc;

use tokio::sync::Mutex;

use super::loopback::{body_of, forward, serve, upstream};

/// Starts the proxy in front of `upstream` (`http://127.0.0.1:port`); its endpoint.
pub async fn start(to: &str) -> String {
    let to: Arc<str> = to.into();
    let turn = Arc::new(Mutex::new(()));
    let client = upstream();
    serve(move |req: hyper::Request<hyper::body::Incoming>| {
        let (to, turn, client) = (to.clone(), turn.clone(), client.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = body_of(body).await;
            // One request at a time, from its send to its whole answer.
            let _turn = turn.lock().await;
            forward(&client, &to, parts, body).await
        }
    })
    .await
}
