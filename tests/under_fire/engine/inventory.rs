//! What exists before the run: WorkSpaces (in moto), MGN source servers and Service
//! Catalog products (in the stand-ins), in the hub account, two member accounts the
//! function may reach, and one it may not. Each sits in a group that selections
//! name; some are protected, some will fail after their termination is accepted,
//! some never finish; dry groups are named only by dry runs.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::Moto;
use crate::support::rng::Rng;

pub const HUB: &str = "123456789012";
pub const MEMBER_A: &str = "111111111111";
pub const MEMBER_B: &str = "222222222222";
/// Not in `ALLOWED_ACCOUNTS`: nothing here may ever be touched.
pub const OUTSIDE: &str = "333333333333";
pub const REACHABLE: [&str; 3] = [HUB, MEMBER_A, MEMBER_B];
pub const PROTECT_TAG: &str = "teardown:protect";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    WorkSpaces,
    Mgn,
    Catalog,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::WorkSpaces, Service::Mgn, Service::Catalog];

    pub fn operation(self) -> &'static str {
        match self {
            Service::WorkSpaces => "TerminateWorkspaces",
            Service::Mgn => "TerminateTargetInstances",
            Service::Catalog => "TerminateProvisionedProduct",
        }
    }

    pub fn of_operation(operation: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.operation() == operation)
    }
}

#[derive(Clone, Debug)]
pub struct Resource {
    pub service: Service,
    pub account: String,
    pub id: String,
    /// A Service Catalog product's name (requests may name it by name).
    pub name: Option<String>,
    pub group: String,
    pub protected: bool,
    /// Its termination is accepted and then fails (WorkSpace ERROR, MGN launch FAILED, record FAILED).
    pub doomed: bool,
    /// Its termination is accepted and never finishes: unconfirmed after CONFIRM_WITHIN.
    pub stuck: bool,
    /// MGN: a lifecycle the guard refuses, or no launched instance.
    pub refused_state: bool,
}

impl Resource {
    pub fn tags(&self) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::from([("group".to_owned(), self.group.clone())]);
        if self.protected {
            tags.insert(PROTECT_TAG.to_owned(), "yes".to_owned());
        }
        tags
    }

    pub fn key(&self) -> (String, String) {
        (self.account.clone(), self.id.clone())
    }
}

pub struct Inventory {
    pub resources: Vec<Resource>,
    pub real_groups: Vec<String>,
    pub dry_groups: Vec<String>,
}

pub struct Shape {
    pub real_groups: usize,
    pub dry_groups: usize,
    pub per_group: usize,
    pub later_failure_rate: f64,
    pub stuck_rate: f64,
}

impl Inventory {
    /// Plans every resource; WorkSpaces are made in moto, the rest by the stand-ins.
    pub fn make(moto: &Moto, shape: &Shape, rng: &mut Rng) -> Inventory {
        let real_groups: Vec<String> = (0..shape.real_groups).map(|g| format!("g{g}")).collect();
        let dry_groups: Vec<String> = (0..shape.dry_groups).map(|g| format!("d{g}")).collect();
        let mut resources = Vec::new();
        let mut n = 0u64;
        for account in [HUB, MEMBER_A, MEMBER_B, OUTSIDE] {
            for service in Service::ALL {
                for group in real_groups.iter().chain(&dry_groups) {
                    for i in 0..shape.per_group {
                        n += 1;
                        // Every group holds a protected target, so every selection meets one.
                        let protected = i == 0 || rng.chance(0.1);
                        let doomed = !protected && rng.chance(shape.later_failure_rate);
                        let stuck = !protected && !doomed && rng.chance(shape.stuck_rate);
                        let refused_state = service == Service::Mgn && rng.chance(0.1);
                        let (id, name) = match service {
                            Service::WorkSpaces => (String::new(), None),
                            Service::Mgn => (format!("s-{:017x}", 0x1000_0000_0000_0000u64 + n)[..19].to_owned(), None),
                            Service::Catalog => (format!("pp-{n:010}"), Some(format!("fire-product-{n}"))),
                        };
                        resources.push(Resource {
                            service,
                            account: account.to_owned(),
                            id,
                            name,
                            group: group.clone(),
                            protected,
                            doomed,
                            stuck,
                            refused_state,
                        });
                    }
                }
            }
        }
        // WorkSpaces are moto's: made through the seed script, ids read back in order.
        let mut plan: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for r in resources.iter().filter(|r| r.service == Service::WorkSpaces) {
            plan.entry(r.account.as_str()).or_default().push(json!({"tags": r.tags()}));
        }
        let made = moto.seed_with(&["workspaces-plan"], &json!(plan).to_string());
        let mut next: BTreeMap<String, usize> = BTreeMap::new();
        for r in resources.iter_mut().filter(|r| r.service == Service::WorkSpaces) {
            let i = next.entry(r.account.clone()).or_default();
            r.id = made[&r.account][*i].as_str().unwrap_or_default().to_owned();
            *i += 1;
        }
        Inventory { resources, real_groups, dry_groups }
    }

    pub fn of(&self, service: Service, account: &str) -> impl Iterator<Item = &Resource> {
        self.resources.iter().filter(move |r| r.service == service && r.account == account)
    }

    /// The resource a request's id names: a product may be named by its name.
    pub fn find(&self, service: Service, account: &str, id_or_name: &str) -> Option<&Resource> {
        self.of(service, account).find(|r| r.id == id_or_name || r.name.as_deref() == Some(id_or_name))
    }
}
