//! What one request asks for, once it has passed validation. The service is the
//! top discriminant: each variant holds that service's own input, or a selection
//! with that service's own filters, so a `match` on a request has exactly one arm
//! per service and no arm that cannot happen.

use std::collections::BTreeMap;

/// The three AWS operations teardown performs, named as the AWS API names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    TerminateWorkspaces,
    TerminateTargetInstances,
    TerminateProvisionedProduct,
}

impl Operation {
    pub const ALL: [Operation; 3] =
        [Operation::TerminateWorkspaces, Operation::TerminateTargetInstances, Operation::TerminateProvisionedProduct];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::TerminateWorkspaces => "TerminateWorkspaces",
            Operation::TerminateTargetInstances => "TerminateTargetInstances",
            Operation::TerminateProvisionedProduct => "TerminateProvisionedProduct",
        }
    }

    pub fn parse(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

/// Written as the AWS API names it, wherever a report, record or event names it.
impl serde::Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that satisfies the contract: safe to hand to a service handler.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub target: Target,
    /// `None` when the request did not say; the `DRY_RUN` setting decides.
    pub dry_run: Option<bool>,
    /// Where the targets are (docs/reference.md, "Accounts, regions and fan-out"); `None`: the function's own account or region.
    pub account: Option<String>,
    pub region: Option<String>,
    /// A fan-out to every (account, region) pair, in place of `account` / `region`.
    pub fan_out: Option<FanOut>,
    /// Set by teardown on the children of a fan-out: the tokens derive from it.
    pub origin: Option<String>,
}

/// `accounts` and / or `regions`: one child request per pair.
#[derive(Clone, Debug, PartialEq)]
pub struct FanOut {
    /// Empty: the function's own account.
    pub accounts: Vec<String>,
    /// Empty: the function's own region.
    pub regions: Vec<String>,
}

/// What to terminate, per service.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Workspaces(Scope<WorkspacesInput, WorkspacesFilters>),
    TargetInstances(Scope<TargetInstancesInput, TargetInstancesFilters>),
    ProvisionedProduct(Scope<ProvisionedProductInput, ProvisionedProductFilters>),
}

impl Target {
    /// The days of notice a selection gives in place of terminating, if it does.
    pub fn notice_days(&self) -> Option<u32> {
        match self {
            Target::Workspaces(Scope::Select(s)) => s.notice,
            Target::TargetInstances(Scope::Select(s)) => s.notice,
            Target::ProvisionedProduct(Scope::Select(s)) => s.notice,
            Target::Workspaces(Scope::Named(_))
            | Target::TargetInstances(Scope::Named(_))
            | Target::ProvisionedProduct(Scope::Named(_)) => None,
        }
    }
}

/// How the targets are known: named in `input`, or found by `select`.
#[derive(Clone, Debug, PartialEq)]
pub enum Scope<I, F> {
    Named(I),
    Select(Selection<F>),
}

impl Request {
    pub fn operation(&self) -> Operation {
        match &self.target {
            Target::Workspaces(_) => Operation::TerminateWorkspaces,
            Target::TargetInstances(_) => Operation::TerminateTargetInstances,
            Target::ProvisionedProduct(_) => Operation::TerminateProvisionedProduct,
        }
    }

    /// This request as a replay may name it (docs/reference.md, "The dead-letter record"): a provisioned product
    /// named by name (or ARN) is named by the id the lookup found, so that a product
    /// created later under the name is never reached. `None` when the lookup found no
    /// id to name: a replay by name could reach another product.
    pub fn replayable(&self, found_product: Option<&str>) -> Option<Request> {
        match (&self.target, found_product) {
            (Target::ProvisionedProduct(Scope::Named(input)), found)
                if matches!(input.product, ProductRef::Name(_)) =>
            {
                let mut input = input.clone();
                input.product = ProductRef::Id(found?.to_owned());
                Some(Request { target: Target::ProvisionedProduct(Scope::Named(input)), ..self.clone() })
            }
            _ => Some(self.clone()),
        }
    }

    /// The days of notice a selection gives in place of terminating, if it does.
    pub fn notice_days(&self) -> Option<u32> {
        self.target.notice_days()
    }

    /// The targets named in `input`, as a person would recognise them, in request
    /// order; `None` for a selection.
    pub fn named_ids(&self) -> Option<Vec<String>> {
        match &self.target {
            Target::Workspaces(Scope::Named(w)) => Some(w.workspace_ids.clone()),
            Target::TargetInstances(Scope::Named(t)) => Some(t.source_server_ids.clone()),
            Target::ProvisionedProduct(Scope::Named(p)) => Some(vec![p.product.as_given().to_owned()]),
            Target::Workspaces(Scope::Select(_))
            | Target::TargetInstances(Scope::Select(_))
            | Target::ProvisionedProduct(Scope::Select(_)) => None,
        }
    }
}

/// What a scheduled rule asks to be found. All filters are ANDed.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection<F> {
    /// Only these ids (WorkSpaces `ids`, MGN `sourceServerIDs`, Service Catalog `ids`).
    pub ids: Vec<String>,
    /// Every one of these tags must be present, holding one of its values.
    pub tags: BTreeMap<String, Vec<String>>,
    /// Not one of these tag keys may be present.
    pub tags_absent: Vec<String>,
    /// Only targets whose `teardown:expires-at` tag has passed.
    pub expired: bool,
    /// docs/reference.md, "Notice": tag what passes every filter and guard with an
    /// expiry this many days ahead, in place of terminating it.
    pub notice: Option<u32>,
    /// The service's own filters.
    pub filters: F,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkspacesFilters {
    pub directory_id: Option<String>,
    pub bundle_id: Option<String>,
    pub user_name: Option<String>,
    pub states: Vec<String>,
    pub running_modes: Vec<String>,
    pub idle_days: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetInstancesFilters {
    pub lifecycle_states: Vec<String>,
    pub account_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProvisionedProductFilters {
    pub product_id: Option<String>,
    pub provisioning_artifact_id: Option<String>,
    pub statuses: Vec<String>,
    pub older_than_days: Option<u32>,
    /// Passed to each termination.
    pub ignore_errors: Option<bool>,
    pub retain_physical_resources: Option<bool>,
    pub accept_language: Option<String>,
}

/// The operation's input, with every id checked and duplicates removed.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkspacesInput {
    pub workspace_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TargetInstancesInput {
    pub source_server_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub account_id: Option<String>,
}

/// A provisioned product as a request names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProductRef {
    Id(String),
    /// A name, or an ARN.
    Name(String),
}

impl ProductRef {
    /// The id, name or ARN, as the request gave it.
    pub fn as_given(&self) -> &str {
        match self {
            ProductRef::Id(s) | ProductRef::Name(s) => s,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProvisionedProductInput {
    pub product: ProductRef,
    /// As given; when `None`, the caller derives one from the request's origin.
    pub terminate_token: Option<String>,
    pub ignore_errors: Option<bool>,
    pub retain_physical_resources: Option<bool>,
    pub accept_language: Option<String>,
}
