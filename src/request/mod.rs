//! What one request asks for, once it has passed validation.
//!
//! Everything here is pure: no SDK types, no I/O. The service handlers turn
//! these values into API calls; the decoder and validator produce them.

mod retry;
mod select;
mod validate;

use std::collections::BTreeMap;

pub use retry::retry_request;
pub use select::{Selection, ServiceFilters};
pub use validate::{Limits, ValidationError, validate};
pub(crate) use validate::{kind, quote};

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

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that satisfies the contract: safe to hand to a service handler.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub operation: Operation,
    pub scope: Scope,
    /// `None` when the request did not say; the `DRY_RUN` setting decides.
    pub dry_run: Option<bool>,
}

/// How the targets are known: named in `input`, or found by `select`.
#[derive(Clone, Debug, PartialEq)]
pub enum Scope {
    Named(Targets),
    Select(Selection),
}

impl Request {
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The targets named in `input`; `None` for a selection.
    pub fn named(&self) -> Option<&Targets> {
        match &self.scope {
            Scope::Named(targets) => Some(targets),
            Scope::Select(_) => None,
        }
    }
}

/// The operation's input, with every id checked and duplicates removed.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    Workspaces(WorkspacesInput),
    TargetInstances(TargetInstancesInput),
    ProvisionedProduct(ProvisionedProductInput),
}

impl Targets {
    pub fn operation(&self) -> Operation {
        match self {
            Targets::Workspaces(_) => Operation::TerminateWorkspaces,
            Targets::TargetInstances(_) => Operation::TerminateTargetInstances,
            Targets::ProvisionedProduct(_) => Operation::TerminateProvisionedProduct,
        }
    }

    /// The ids a person would recognise, in request order.
    pub fn ids(&self) -> Vec<String> {
        match self {
            Targets::Workspaces(w) => w.workspace_ids.clone(),
            Targets::TargetInstances(t) => t.source_server_ids.clone(),
            Targets::ProvisionedProduct(p) => vec![p.product.id().to_owned()],
        }
    }
}

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

#[derive(Clone, Debug, PartialEq)]
pub enum ProductRef {
    Id(String),
    Name(String),
}

impl ProductRef {
    pub fn id(&self) -> &str {
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
