//! The messages people send: named and selected requests over the three services,
//! dry and real, in the hub and in member accounts, fan-outs, requests for an
//! account that is not allowed, invalid and hostile bodies; on the standard queue
//! and, in groups, on the FIFO queue. Each carries what it may reach, so the
//! invariants can say what no request asked for.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::inventory::{HUB, Inventory, MEMBER_A, OUTSIDE, REACHABLE, Resource, Service};
use crate::support::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Named,
    NamedDry,
    Selected,
    SelectedDry,
    FanOut,
    FanOutDry,
    OutsideAccount,
    Invalid,
    Hostile,
}

impl Kind {
    pub fn invalid(self) -> bool {
        matches!(self, Kind::OutsideAccount | Kind::Invalid | Kind::Hostile)
    }
}

pub struct Sent {
    pub id: String,
    pub queue: &'static str,
    pub group: Option<String>,
    pub body: String,
    pub kind: Kind,
    /// (account, service, id) this request may terminate (real requests only).
    pub reach: Vec<(String, Service, String)>,
}

fn named_body(service: Service, targets: &[&Resource], rng: &mut Rng) -> Value {
    match service {
        Service::WorkSpaces => json!({"operation": service.operation(), "input": {"TerminateWorkspaceRequests":
            targets.iter().map(|r| json!({"WorkspaceId": r.id})).collect::<Vec<_>>()}}),
        Service::Mgn => json!({"operation": service.operation(), "input": {"sourceServerIDs":
            targets.iter().map(|r| r.id.clone()).collect::<Vec<_>>()}}),
        Service::Catalog => {
            let r = targets[0];
            if rng.chance(0.5) {
                json!({"operation": service.operation(), "input": {"ProvisionedProductId": r.id}})
            } else {
                json!({"operation": service.operation(), "input": {"ProvisionedProductName": r.name}})
            }
        }
    }
}

fn place(body: &mut Value, account: &str) {
    if account != HUB {
        body["account"] = json!(account);
    }
}

pub fn generate(inventory: &Inventory, total: usize, rng: &mut Rng) -> Vec<Sent> {
    let mut sent = Vec::with_capacity(total);
    let by_group = |service: Service, account: &str, group: &str| -> Vec<&Resource> {
        inventory.of(service, account).filter(|r| r.group == group).collect()
    };
    for i in 0..total {
        let service = *rng.pick(&Service::ALL);
        let account = *rng.pick(&REACHABLE);
        let roll = rng.below(100);
        let kind = match roll {
            0..30 => Kind::Named,
            30..38 => Kind::NamedDry,
            38..50 => Kind::Selected,
            50..56 => Kind::SelectedDry,
            56..61 => Kind::FanOut,
            61..64 => Kind::FanOutDry,
            64..68 => Kind::OutsideAccount,
            68..88 => Kind::Invalid,
            _ => Kind::Hostile,
        };
        let mut reach = Vec::new();
        let body: String = match kind {
            Kind::Named | Kind::NamedDry => {
                let groups = if kind == Kind::Named { &inventory.real_groups } else { &inventory.dry_groups };
                let group = rng.pick(groups).clone();
                let pool = by_group(service, account, &group);
                let n = if service == Service::Catalog { 1 } else { 1 + rng.below(3) as usize };
                let targets: Vec<&Resource> = (0..n).map(|_| *rng.pick(&pool)).collect();
                let mut body = named_body(service, &targets, rng);
                place(&mut body, account);
                if kind == Kind::NamedDry {
                    body["dryRun"] = json!(true);
                } else {
                    reach.extend(targets.iter().map(|r| (r.account.clone(), service, r.id.clone())));
                }
                body.to_string()
            }
            Kind::Selected | Kind::SelectedDry | Kind::FanOut | Kind::FanOutDry => {
                let dry = matches!(kind, Kind::SelectedDry | Kind::FanOutDry);
                // A dry run may look at any group; only dry runs name the dry groups.
                let groups = if dry && rng.chance(0.5) { &inventory.dry_groups } else { &inventory.real_groups };
                let group = rng.pick(groups).clone();
                let mut body = json!({"operation": service.operation(), "select": {"tags": {"group": group}}});
                if service == Service::Mgn && rng.chance(0.3) {
                    body["select"]["lifecycleStates"] = json!(["READY_FOR_TEST", "TESTING"]);
                }
                let accounts: Vec<&str> = if matches!(kind, Kind::FanOut | Kind::FanOutDry) {
                    body["accounts"] = json!(REACHABLE);
                    REACHABLE.to_vec()
                } else {
                    place(&mut body, account);
                    vec![account]
                };
                if dry {
                    body["dryRun"] = json!(true);
                } else {
                    for a in accounts {
                        reach.extend(
                            by_group(service, a, &group).iter().map(|r| (r.account.clone(), service, r.id.clone())),
                        );
                    }
                }
                body.to_string()
            }
            Kind::OutsideAccount => {
                let pool: Vec<&Resource> = inventory.of(service, OUTSIDE).collect();
                let target = *rng.pick(&pool);
                let mut body = named_body(service, &[target], rng);
                if rng.chance(0.5) {
                    body["account"] = json!(OUTSIDE);
                } else {
                    body = json!({"operation": service.operation(), "select": {"tags": {"group": target.group}}, "accounts": [HUB, OUTSIDE]});
                }
                body.to_string()
            }
            Kind::Invalid => invalid_body(inventory, service, account, rng),
            Kind::Hostile => hostile_body(inventory, service, rng),
        };
        // One in four goes to the FIFO queue, in one of five groups.
        let fifo = rng.chance(0.25);
        sent.push(Sent {
            id: format!("op-{i:06}"),
            queue: if fifo { super::queues::FIFO } else { super::queues::STANDARD },
            group: fifo.then(|| format!("team-{}", rng.below(5))),
            body,
            kind,
            reach,
        });
    }
    sent
}

fn invalid_body(inventory: &Inventory, service: Service, account: &str, rng: &mut Rng) -> String {
    let any = inventory.of(service, account).next().map(|r| r.id.clone()).unwrap_or_default();
    match rng.below(8) {
        0 => "{\"operation\": \"TerminateWorkspaces\", ".to_owned(),
        1 => json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceID": any}]}}).to_string(),
        2 => json!({"operation": "TerminateWorkspaces", "input": {"TerminateWorkspaceRequests": [{"WorkspaceId": "ws-NOT!valid"}]}}).to_string(),
        3 => json!({"operation": service.operation(), "select": {}}).to_string(),
        4 => json!({"operation": "TerminateTargetInstances", "input": {"sourceServerIDs": ["s-short"]}}).to_string(),
        5 => json!({"operation": "TerminateProvisionedProduct", "input": {"ProvisionedProductId": any, "ProvisionedProductName": "both"}}).to_string(),
        6 => json!({"operation": service.operation(), "select": {"tags": {"group": "g0"}}, "input": {}}).to_string(),
        _ => json!({"operation": "DeleteEverything", "input": {}}).to_string(),
    }
}

/// Bodies that try to reach past the guards: a check or a fan-out child forged by a
/// person (only the function may start those), nonsense in every shape.
fn hostile_body(inventory: &Inventory, service: Service, rng: &mut Rng) -> String {
    let target = inventory.of(service, MEMBER_A).find(|r| !r.protected).map(|r| r.id.clone()).unwrap_or_default();
    match rng.below(6) {
        0 => json!({"confirm": {"operation": service.operation(), "account": MEMBER_A, "region": "us-east-1",
            "targets": [{"id": target}], "acceptedAt": "2026-12-01T00:00:00Z", "chain": "forged"}})
        .to_string(),
        1 => json!({"operation": service.operation(), "select": {"tags": {"group": "g0"}}, "account": MEMBER_A,
            "origin": {"forged": true}})
        .to_string(),
        2 => "\u{0}\u{1}not json at all".to_owned(),
        3 => format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
        4 => json!({"requests": [{"operation": service.operation(), "input": {}}]}).to_string(),
        _ => json!({"operation": service.operation(), "select": {"tags": {"group": "g0"}}, "dryRun": "false"})
            .to_string(),
    }
}

/// What every real request together may reach.
pub fn reachable(sent: &[Sent]) -> HashSet<(String, Service, String)> {
    sent.iter().flat_map(|s| s.reach.iter().cloned()).collect()
}

pub fn by_kind(sent: &[Sent]) -> BTreeMap<Kind, usize> {
    let mut out = BTreeMap::new();
    for s in sent {
        *out.entry(s.kind).or_default() += 1;
    }
    out
}
