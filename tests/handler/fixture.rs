//! A small world to write handler tests as scenarios:
//!
//! ```text
//! given(World::new().workspace("ws-a", "AVAILABLE", &[("env", "sandbox")]))
//!     .when(sqs_batch)        // the invocation, every client a double over the world
//!     .await
//!     .calls() / .outcomes(0) / .records() / .redelivered()
//! ```
//!
//! The doubles answer lookups from the world and record every terminate call and
//! every dead-letter record; a target can be made to refuse its termination.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_mgn::operation::terminate_target_instances::TerminateTargetInstancesOutput;
use aws_sdk_servicecatalog::types::RecordTag;
use aws_sdk_workspaces::types::{FailedWorkspaceChangeRequest, Tag as WsTag};

use crate::doubles::*;

type Tags = BTreeMap<String, String>;

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// What exists before the invocation.
#[derive(Clone, Default)]
pub struct World {
    workspaces: Vec<(String, String, Tags)>,
    servers: Vec<(String, String, Tags)>,
    products: Vec<(String, String, String, Tags)>,
    /// Targets whose termination the service refuses, with the error code.
    refused: HashMap<String, String>,
    settings: Option<Settings>,
}

impl World {
    pub fn new() -> Self {
        World::default()
    }

    pub fn workspace(mut self, id: &str, state: &str, tag_pairs: &[(&str, &str)]) -> Self {
        self.workspaces.push((id.into(), state.into(), tags(tag_pairs)));
        self
    }

    /// A source server with a launched test or cutover instance.
    pub fn server(mut self, id: &str, lifecycle: &str, tag_pairs: &[(&str, &str)]) -> Self {
        self.servers.push((id.into(), lifecycle.into(), tags(tag_pairs)));
        self
    }

    pub fn product(mut self, id: &str, name: &str, status: &str, tag_pairs: &[(&str, &str)]) -> Self {
        self.products.push((id.into(), name.into(), status.into(), tags(tag_pairs)));
        self
    }

    /// The service refuses to terminate `id`, with `code`.
    pub fn refusing(mut self, id: &str, code: &str) -> Self {
        self.refused.insert(id.into(), code.into());
        self
    }

    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = Some(settings);
        self
    }
}

pub fn given(world: World) -> World {
    world
}

/// What the invocation did.
pub struct Then {
    pub answer: Result<Value, String>,
    calls: Log<(&'static str, Vec<String>)>,
    records: Log<(String, Value, String, String)>,
}

impl World {
    pub async fn when(self, payload: Value) -> Then {
        let calls: Log<(&'static str, Vec<String>)> = log();
        let records = log();
        let world = Arc::new(self);
        let rules = rules(&world, &calls);
        let send = sqs_send_ok(&records);
        let ws: Vec<&Rule> = rules.workspaces.iter().collect();
        let mgn: Vec<&Rule> = rules.mgn.iter().collect();
        let sc: Vec<&Rule> = rules.catalog.iter().collect();
        let app =
            Doubles { ws: &ws, mgn: &mgn, sc: &sc, sqs: &[&send] }.app(world.settings.clone().unwrap_or_else(settings));
        let answer = invoke(&app, payload).await.map_err(|e| e.to_string());
        Then { answer, calls, records }
    }
}

impl Then {
    pub fn answer(&self) -> &Value {
        self.answer.as_ref().unwrap_or_else(|e| panic!("the invocation failed: {e}"))
    }

    /// Every terminate call, as (operation, ids), in the order made.
    pub fn calls(&self) -> Vec<(&'static str, Vec<String>)> {
        taken(&self.calls)
    }

    /// The ids of every terminate call of one operation, sorted.
    pub fn terminated(&self, operation: &str) -> Vec<String> {
        let mut ids: Vec<String> =
            self.calls().into_iter().filter(|(op, _)| *op == operation).flat_map(|(_, ids)| ids).collect();
        ids.sort();
        ids
    }

    /// Each target of request `i` of a report, with its outcome.
    pub fn outcomes(&self, i: usize) -> Vec<(String, String)> {
        target_outcomes(self.answer(), i)
    }

    /// The messages an SQS batch hands back.
    pub fn redelivered(&self) -> Vec<String> {
        failures(self.answer())
    }

    /// Each dead-letter record: (source message id or kind, outcome, error code, failed ids).
    pub fn records(&self) -> Vec<(String, String, String, Vec<String>)> {
        taken(&self.records)
            .into_iter()
            .map(|(_, body, _, outcome)| {
                let source = body["source"]["messageId"].as_str().or(body["source"]["kind"].as_str());
                let failed = body["failedTargets"]
                    .as_array()
                    .map(|t| t.iter().filter_map(|t| t["id"].as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                (
                    source.unwrap_or_default().to_owned(),
                    outcome,
                    body["error"]["code"].as_str().unwrap_or_default().to_owned(),
                    failed,
                )
            })
            .collect()
    }

    /// The bodies of the dead-letter records.
    pub fn record_bodies(&self) -> Vec<Value> {
        taken(&self.records).into_iter().map(|(_, body, _, _)| body).collect()
    }
}

struct Rules {
    workspaces: Vec<Rule>,
    mgn: Vec<Rule>,
    catalog: Vec<Rule>,
}

fn rules(world: &Arc<World>, calls: &Log<(&'static str, Vec<String>)>) -> Rules {
    let w = world.clone();
    let describe_workspaces = mock!(aws_sdk_workspaces::Client::describe_workspaces).then_compute_output(move |req| {
        let asked = req.workspace_ids();
        let found = w
            .workspaces
            .iter()
            .filter(|(id, _, _)| asked.is_empty() || asked.contains(id))
            .map(|(id, state, _)| workspace(id, WorkspaceState::from(state.as_str())))
            .collect();
        DescribeWorkspacesOutput::builder().set_workspaces(Some(found)).build()
    });
    let w = world.clone();
    let describe_tags = mock!(aws_sdk_workspaces::Client::describe_tags).then_compute_output(move |req| {
        let tags =
            w.workspaces.iter().find(|(id, _, _)| Some(id.as_str()) == req.resource_id()).map(|(_, _, t)| t.clone());
        let list = tags.unwrap_or_default().into_iter().map(|(k, v)| WsTag::builder().key(k).value(v).build().unwrap());
        DescribeTagsOutput::builder().set_tag_list(Some(list.collect())).build()
    });
    let (w, recorded) = (world.clone(), calls.clone());
    let terminate_workspaces =
        mock!(aws_sdk_workspaces::Client::terminate_workspaces).then_compute_output(move |req| {
            let ids: Vec<String> =
                req.terminate_workspace_requests().iter().map(|r| r.workspace_id().to_owned()).collect();
            recorded.lock().unwrap().push(("TerminateWorkspaces", ids.clone()));
            let mut out = TerminateWorkspacesOutput::builder();
            for id in ids.iter().filter(|id| w.refused.contains_key(*id)) {
                out = out.failed_requests(
                    FailedWorkspaceChangeRequest::builder()
                        .workspace_id(id)
                        .error_code(&w.refused[id])
                        .error_message("refused by the world")
                        .build(),
                );
            }
            out.build()
        });

    let w = world.clone();
    let describe_servers = mock!(aws_sdk_mgn::Client::describe_source_servers).then_compute_output(move |req| {
        let asked = req.filters().map(|f| f.source_server_ids().to_vec()).unwrap_or_default();
        let found = w
            .servers
            .iter()
            .filter(|(id, _, _)| asked.is_empty() || asked.contains(id))
            .map(|(id, state, t)| {
                let pairs: Vec<(&str, &str)> = t.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                source_server(id, LifeCycleState::from(state.as_str()), true, &pairs)
            })
            .collect();
        DescribeSourceServersOutput::builder().set_items(Some(found)).build()
    });
    let (w, recorded) = (world.clone(), calls.clone());
    let terminate_servers = mock!(aws_sdk_mgn::Client::terminate_target_instances)
        .match_requests(move |req| {
            recorded.lock().unwrap().push(("TerminateTargetInstances", req.source_server_ids().to_vec()));
            !req.source_server_ids().iter().any(|id| w.refused.contains_key(id))
        })
        .then_compute_output(|req| {
            let job = aws_sdk_mgn::types::Job::builder().job_id(format!("mgnjob-{}", req.source_server_ids()[0]));
            TerminateTargetInstancesOutput::builder().job(job.build().unwrap()).build()
        });
    let refused_servers = mock!(aws_sdk_mgn::Client::terminate_target_instances)
        .then_http_response(|| http(409, r#"{"message":"refused by the world","code":"ConflictException"}"#));

    let w = world.clone();
    let describe_product =
        mock!(aws_sdk_servicecatalog::Client::describe_provisioned_product).then_compute_output(move |req| {
            let found = w
                .products
                .iter()
                .find(|(id, name, _, _)| req.id() == Some(id.as_str()) || req.name() == Some(name.as_str()));
            let mut out = DescribeProvisionedProductOutput::builder();
            if let Some((id, name, status, _)) = found {
                out = out.provisioned_product_detail(
                    ProvisionedProductDetail::builder()
                        .id(id)
                        .name(name)
                        .status(ProvisionedProductStatus::from(status.as_str()))
                        .last_successful_provisioning_record_id(format!("rec-of-{id}"))
                        .build(),
                );
            }
            out.build()
        });
    let w = world.clone();
    let describe_record = mock!(aws_sdk_servicecatalog::Client::describe_record).then_compute_output(move |req| {
        let id = req.id().unwrap_or_default().trim_start_matches("rec-of-").to_owned();
        let tags = w.products.iter().find(|(p, _, _, _)| *p == id).map(|(_, _, _, t)| t.clone()).unwrap_or_default();
        let tags = tags.into_iter().map(|(k, v)| RecordTag::builder().key(k).value(v).build()).collect();
        DescribeRecordOutput::builder()
            .record_detail(
                RecordDetail::builder().record_id(req.id().unwrap_or_default()).set_record_tags(Some(tags)).build(),
            )
            .build()
    });
    let w = world.clone();
    let search = mock!(aws_sdk_servicecatalog::Client::search_provisioned_products).then_compute_output(move |_| {
        let found = w
            .products
            .iter()
            .map(|(id, name, status, t)| {
                let pairs: Vec<(&str, &str)> = t.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                product(id, name, ProvisionedProductStatus::from(status.as_str()), &pairs)
            })
            .collect();
        SearchProvisionedProductsOutput::builder().set_provisioned_products(Some(found)).build()
    });
    let (w, recorded) = (world.clone(), calls.clone());
    let terminate_product = mock!(aws_sdk_servicecatalog::Client::terminate_provisioned_product)
        .match_requests(move |req| {
            let id = req.provisioned_product_id().or(req.provisioned_product_name()).unwrap_or_default().to_owned();
            recorded.lock().unwrap().push(("TerminateProvisionedProduct", vec![id.clone()]));
            !w.refused.contains_key(&id)
        })
        .then_output(|| {
            TerminateProvisionedProductOutput::builder()
                .record_detail(RecordDetail::builder().record_id("rec-terminate").status(RecordStatus::Created).build())
                .build()
        });
    let refused_product = mock!(aws_sdk_servicecatalog::Client::terminate_provisioned_product)
        .then_http_response(|| http(400, r#"{"__type":"InvalidStateException","Message":"refused by the world"}"#));

    Rules {
        workspaces: vec![describe_workspaces, describe_tags, terminate_workspaces],
        mgn: vec![describe_servers, terminate_servers, refused_servers],
        catalog: vec![describe_product, describe_record, search, terminate_product, refused_product],
    }
}
