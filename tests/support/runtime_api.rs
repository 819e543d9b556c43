//! A small Lambda Runtime API (the `2018-06-01` interface a custom runtime polls),
//! enough to run the real `bootstrap` binary as Lambda would: one invocation at a
//! time, with a request id and a deadline, answered by `/response` or `/error`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, oneshot};

/// What the function answered: its response, or the error it reported.
pub type Answer = Result<Value, Value>;

struct Pending {
    id: String,
    payload: Value,
    deadline_ms: u64,
}

struct State {
    queue: Mutex<mpsc::UnboundedReceiver<Pending>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_error: Mutex<Option<Value>>,
    first_poll: std::sync::Mutex<Option<std::time::Instant>>,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    sender: mpsc::UnboundedSender<Pending>,
    state: Arc<State>,
    next_id: std::sync::atomic::AtomicU64,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            queue: Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            first_poll: std::sync::Mutex::new(None),
        });
        let served = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| route(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(RuntimeApi { addr, sender, state, next_id: std::sync::atomic::AtomicU64::new(1) })
    }

    /// `host:port`, as `AWS_LAMBDA_RUNTIME_API` wants it.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Queues one invocation and waits for the function's answer.
    pub async fn invoke(&self, payload: Value, timeout: Duration) -> Answer {
        let id = format!("req-{:04}", self.next_id.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        let (tx, rx) = oneshot::channel();
        self.state.waiting.lock().await.insert(id.clone(), tx);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let deadline_ms = u64::try_from((now + timeout).as_millis()).unwrap_or(u64::MAX);
        if self.sender.send(Pending { id, payload, deadline_ms }).is_err() {
            return Err(serde_json::json!({"errorMessage": "runtime API stopped"}));
        }
        match tokio::time::timeout(timeout + Duration::from_secs(5), rx).await {
            Ok(Ok(answer)) => answer,
            _ => Err(
                serde_json::json!({"errorType": "Timeout", "errorMessage": "the function did not answer in time", "initError": self.init_error().await}),
            ),
        }
    }

    /// When the function first asked for work: the end of its cold start.
    pub fn first_poll(&self) -> Option<std::time::Instant> {
        self.state.first_poll.lock().ok().and_then(|t| *t)
    }

    /// The error the function reported at start, if it did.
    pub async fn init_error(&self) -> Option<Value> {
        self.state.init_error.lock().await.clone()
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let json = || {
        serde_json::from_slice::<Value>(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let response = match (method, parts.as_slice()) {
        (Method::GET, ["2018-06-01", "runtime", "invocation", "next"]) => {
            if let Ok(mut first) = state.first_poll.lock() {
                first.get_or_insert_with(std::time::Instant::now);
            }
            let next = state.queue.lock().await.recv().await;
            match next {
                Some(p) => {
                    let mut response = reply(StatusCode::OK, p.payload.to_string());
                    let headers = response.headers_mut();
                    let set = |v: &str| {
                        hyper::header::HeaderValue::from_str(v).unwrap_or(hyper::header::HeaderValue::from_static(""))
                    };
                    headers.insert("lambda-runtime-aws-request-id", set(&p.id));
                    headers.insert("lambda-runtime-deadline-ms", set(&p.deadline_ms.to_string()));
                    headers.insert(
                        "lambda-runtime-invoked-function-arn",
                        set("arn:aws:lambda:us-east-1:123456789012:function:teardown"),
                    );
                    headers.insert("lambda-runtime-trace-id", set("Root=1-00000000-000000000000000000000000"));
                    headers.insert("content-type", set("application/json"));
                    response
                }
                None => reply(StatusCode::GONE, ""),
            }
        }
        (Method::POST, ["2018-06-01", "runtime", "invocation", id, "response"]) => {
            if let Some(tx) = state.waiting.lock().await.remove(*id) {
                let _ = tx.send(Ok(json()));
            }
            reply(StatusCode::ACCEPTED, "")
        }
        (Method::POST, ["2018-06-01", "runtime", "invocation", id, "error"]) => {
            if let Some(tx) = state.waiting.lock().await.remove(*id) {
                let _ = tx.send(Err(json()));
            }
            reply(StatusCode::ACCEPTED, "")
        }
        // The Extensions API, as far as an extension that subscribes to nothing needs
        // it (the runtime's graceful-shutdown helper): register, then wait forever.
        (Method::POST, ["2020-01-01", "extension", "register"]) => {
            let mut response = reply(
                StatusCode::OK,
                r#"{"functionName":"teardown","functionVersion":"$LATEST","handler":"bootstrap"}"#,
            );
            response
                .headers_mut()
                .insert("lambda-extension-identifier", hyper::header::HeaderValue::from_static("ext-1"));
            response
        }
        (Method::GET, ["2020-01-01", "extension", "event", "next"]) => std::future::pending().await,
        (Method::POST, ["2018-06-01", "runtime", "init", "error"]) => {
            *state.init_error.lock().await = Some(json());
            reply(StatusCode::ACCEPTED, "")
        }
        _ => reply(StatusCode::NOT_FOUND, ""),
    };
    Ok(response)
}
