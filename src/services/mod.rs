//! One module per AWS service, each a thin struct over its SDK client: the seam
//! tests fill (with `aws-smithy-mocks`, or an HTTP fake via endpoint settings).
//! Nothing here knows where a request came from or where failures go.

pub mod catalog;
mod classify;
pub mod mgn;
pub mod workspaces;

pub use classify::classify;

pub use catalog::Catalog;
pub use mgn::Mgn;
pub use workspaces::Workspaces;

/// The three service handlers, built once per container.
#[derive(Clone, Debug)]
pub struct Services {
    pub workspaces: Workspaces,
    pub mgn: Mgn,
    pub catalog: Catalog,
}

impl Services {
    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        Services {
            workspaces: Workspaces::new(aws_sdk_workspaces::Client::new(config)),
            mgn: Mgn::new(aws_sdk_mgn::Client::new(config)),
            catalog: Catalog::new(aws_sdk_servicecatalog::Client::new(config)),
        }
    }
}

/// A lookup that failed: its classification, so the targets it was for can be
/// retried or reported like a failed terminate call.
pub type LookupError = (crate::outcome::Outcome, crate::outcome::Failure);

pub(crate) fn to_time(t: &aws_smithy_types::DateTime) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t.secs()).ok()
}

/// How many describe calls (tags, for example) one lookup has in flight.
pub(crate) const LOOKUP_CONCURRENCY: usize = 16;
