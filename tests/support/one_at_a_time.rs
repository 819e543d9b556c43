//! DynamoDB applies a conditional write atomically: of two racing writes with the
//! same condition, one goes in. moto's server does not serialize them (checked here:
//! three racing `UpdateItem`s on one new item, 13 keys of 200 had two winners). The
//! state table's tests race deliveries on purpose, so they reach moto through this
//! loopback proxy, which forwards one request at a time, as DynamoDB's per-item
//! ordering would, and answers each in one write.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// Starts the proxy in front of `upstream` (`http://127.0.0.1:port`); its endpoint.
pub async fn start(upstream: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
    let upstream: Arc<str> = upstream.into();
    let turn = Arc::new(Mutex::new(()));
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let (upstream, turn, client) = (upstream.clone(), turn.clone(), client.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (upstream, turn, client) = (upstream.clone(), turn.clone(), client.clone());
                    async move { Ok::<_, Infallible>(forward(&upstream, &turn, &client, req).await) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    endpoint
}

async fn forward(
    upstream: &str,
    turn: &Mutex<()>,
    client: &Client<HttpConnector, Full<Bytes>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let uri = format!("{upstream}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut out = Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST {
            out = out.header(name, value);
        }
    }
    let Ok(out) = out.body(Full::new(body)) else { return Response::new(Full::new(Bytes::new())) };
    // One request at a time, from its send to its whole answer.
    let _turn = turn.lock().await;
    match client.request(out).await {
        Ok(answer) => {
            let (parts, body) = answer.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            Response::from_parts(parts, Full::new(body))
        }
        Err(_) => {
            let mut failed = Response::new(Full::new(Bytes::new()));
            *failed.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            failed
        }
    }
}
