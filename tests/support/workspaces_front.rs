//! A loopback stand-in in front of moto's WorkSpaces, for what moto 5.2 lacks:
//! `DescribeWorkspacesConnectionStatus` (answered from `connections`), `DeleteTags`
//! (a tag `forget` names is left out of `DescribeTags` answers, as if its owner
//! had removed it), and a `CreateTags` the service refuses (`refuse`). Everything
//! else goes to moto. It logs every call it receives, target and body: the
//! stand-in's own record of what the function asked for. Each answer is one write.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::loopback::{Upstream, body_of, forward, serve, status, upstream};

/// A user's connection as `DescribeWorkspacesConnectionStatus` reports it.
#[derive(Clone, Debug)]
pub struct Connection {
    pub state: &'static str,
    /// Seconds since the epoch; `None`: no user ever connected.
    pub last: Option<i64>,
}

#[derive(Default)]
pub struct Shared {
    pub calls: Vec<(String, Value)>,
    pub connections: HashMap<String, Connection>,
    pub forget: HashSet<(String, String)>,
    /// WorkSpace id → (HTTP status, error type) that `CreateTags` answers for it.
    pub refuse: HashMap<String, (u16, &'static str)>,
}

#[derive(Clone)]
pub struct Front {
    pub endpoint: String,
    pub shared: Arc<Mutex<Shared>>,
}

impl Front {
    pub async fn start(to: &str) -> Front {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (to, client): (Arc<str>, Upstream) = (to.into(), upstream());
        let served = shared.clone();
        let endpoint = serve(move |req: Request<Incoming>| {
            let (to, shared, client) = (to.clone(), served.clone(), client.clone());
            async move { answer(&to, &shared, &client, req).await }
        })
        .await;
        Front { endpoint, shared }
    }

    /// The calls received for `target` (`CreateTags`, `TerminateWorkspaces`, …), bodies in order.
    pub fn calls(&self, target: &str) -> Vec<Value> {
        let shared = self.shared.lock().unwrap();
        shared.calls.iter().filter(|(t, _)| t == target).map(|(_, b)| b.clone()).collect()
    }

    pub fn connect(&self, id: &str, state: &'static str, last: Option<i64>) {
        self.shared.lock().unwrap().connections.insert(id.to_owned(), Connection { state, last });
    }

    pub fn forget(&self, id: &str, key: &str) {
        self.shared.lock().unwrap().forget.insert((id.to_owned(), key.to_owned()));
    }

    pub fn refuse_tags(&self, id: &str, status: u16, error: &'static str) {
        self.shared.lock().unwrap().refuse.insert(id.to_owned(), (status, error));
    }
}

fn json_answer(code: u16, body: Value) -> Response<Full<Bytes>> {
    let mut answer = status(code, body.to_string());
    answer.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"));
    answer
}

async fn answer(to: &str, shared: &Mutex<Shared>, client: &Upstream, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body_of(body).await;
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("WorkspacesService."))
        .unwrap_or("")
        .to_owned();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (connections, forget, refused) = {
        let mut shared = shared.lock().unwrap();
        shared.calls.push((target.clone(), parsed.clone()));
        let refused = parsed["ResourceId"].as_str().and_then(|id| shared.refuse.get(id).copied());
        (shared.connections.clone(), shared.forget.clone(), refused)
    };
    match target.as_str() {
        "DescribeWorkspacesConnectionStatus" => {
            let statuses: Vec<Value> = parsed["WorkspaceIds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|id| match connections.get(id) {
                    Some(Connection { state, last: Some(at) }) => {
                        json!({"WorkspaceId": id, "ConnectionState": state, "LastKnownUserConnectionTimestamp": at})
                    }
                    Some(Connection { state, last: None }) => json!({"WorkspaceId": id, "ConnectionState": state}),
                    None => json!({"WorkspaceId": id, "ConnectionState": "DISCONNECTED"}),
                })
                .collect();
            return json_answer(200, json!({"WorkspacesConnectionStatus": statuses}));
        }
        "CreateTags" => {
            if let Some((status, error)) = refused {
                return json_answer(status, json!({"__type": error, "message": "refused by the stand-in"}));
            }
        }
        _ => {}
    }
    let answered = forward(client, to, parts, body).await;
    if target != "DescribeTags" {
        return answered;
    }
    let (parts, body) = answered.into_parts();
    let body = http_body_util::BodyExt::collect(body).await.map(|b| b.to_bytes()).unwrap_or_default();
    let id = parsed["ResourceId"].as_str().unwrap_or("").to_owned();
    match serde_json::from_slice::<Value>(&body) {
        Ok(mut tags) => {
            if let Some(list) = tags["TagList"].as_array_mut() {
                list.retain(|t| !forget.contains(&(id.clone(), t["Key"].as_str().unwrap_or("").to_owned())));
            }
            json_answer(parts.status.as_u16(), tags)
        }
        Err(_) => Response::from_parts(parts, Full::new(body)),
    }
}
