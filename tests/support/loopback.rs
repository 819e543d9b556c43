//! The loopback HTTP stand-ins in front of moto share two pieces: a server that
//! answers each request with what `answer` makes of it (Nagle off, so each answer
//! goes out in one write), and the forwarding of a request to moto as it came.

use std::future::Future;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub type Upstream = Client<HttpConnector, Full<Bytes>>;

/// A client for forwarding to moto.
pub fn upstream() -> Upstream {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Serves `answer` on a loopback port; returns its endpoint (`http://127.0.0.1:port`).
pub async fn serve<F, Fut>(answer: F) -> String
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let answered = answer(req);
                    async move {
                        let answer = answered.await;
                        // An answer marked by `reset()` closes the connection unanswered.
                        if answer.headers().contains_key(RESET) {
                            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
                        }
                        Ok(answer)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    endpoint
}

/// The whole body of a request (empty if it cannot be read).
pub async fn body_of(body: Incoming) -> Bytes {
    body.collect().await.map(|b| b.to_bytes()).unwrap_or_default()
}

/// Sends `parts` and `body` to `upstream` (`http://127.0.0.1:port`) as they came,
/// and returns the whole answer; 502 when it cannot be reached.
pub async fn forward(
    client: &Upstream,
    upstream: &str,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let uri = format!("{upstream}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut out = Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST {
            out = out.header(name, value);
        }
    }
    let answer = match out.body(Full::new(body)) {
        Ok(request) => client.request(request).await.ok(),
        Err(_) => None,
    };
    match answer {
        Some(answer) => {
            let (parts, body) = answer.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            Response::from_parts(parts, Full::new(body))
        }
        None => status(502, Bytes::new()),
    }
}

const RESET: &str = "x-loopback-reset";

/// No answer at all: the connection is closed, as a reset on the way back would.
pub fn reset() -> Response<Full<Bytes>> {
    let mut answer = status(502, Bytes::new());
    answer.headers_mut().insert(RESET, hyper::header::HeaderValue::from_static("1"));
    answer
}

/// An answer with `status` and `body`.
pub fn status(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut answer = Response::new(Full::new(body.into()));
    *answer.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    answer
}
