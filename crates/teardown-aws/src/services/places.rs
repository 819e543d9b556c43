//! docs/reference.md, "Accounts, regions and fan-out": the services of another account or region. Another account is
//! reached by assuming `SPOKE_ROLE_NAME` there; its credentials are reused until
//! they expire, and the clients of each (account, region) are built once for the
//! container's life.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future};

use super::Services;
use crate::classify::{ServiceError, classify};
use crate::outcome::Outcome;

/// Credentials are renewed this long before they expire, so no call starts with
/// credentials about to lapse.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Where a request's targets are, once defaults are applied.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    pub account: Option<String>,
    pub region: Option<String>,
}

/// The services of every place teardown has been asked to act in.
pub struct Places {
    base: aws_config::SdkConfig,
    sts: aws_sdk_sts::Client,
    role_name: String,
    external_id: Option<String>,
    calls_in_flight: usize,
    /// Each place's clients pace their throttled operations (`Services::in_partition`).
    pacing: bool,
    roles: Mutex<HashMap<String, Arc<SpokeRole>>>,
    services: Mutex<HashMap<(String, String), Arc<Services>>>,
}

impl Places {
    pub fn new(
        base: aws_config::SdkConfig,
        role_name: String,
        external_id: Option<String>,
        calls_in_flight: usize,
    ) -> Self {
        Places {
            sts: aws_sdk_sts::Client::new(&base),
            base,
            role_name,
            external_id,
            calls_in_flight,
            pacing: false,
            roles: Mutex::new(HashMap::new()),
            services: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_pacing(self, pacing: bool) -> Self {
        Places { pacing, ..self }
    }

    /// The services of `account` (another than the function's own) in `region`,
    /// assuming the spoke role there first: a role that cannot be assumed is
    /// `rejected` (access denied) or `transient` (throttled, unreachable), before
    /// any other call.
    pub async fn services(
        &self,
        account: Option<&str>,
        region: &str,
        partition: &str,
        session: &str,
    ) -> Result<Arc<Services>, ServiceError> {
        let credentials: Option<SharedCredentialsProvider> = match account {
            None => None,
            Some(account) => {
                let role = self.role(account, partition, session);
                role.renewed().await?;
                Some(SharedCredentialsProvider::new(RoleProvider(role)))
            }
        };
        let key = (account.unwrap_or("").to_owned(), region.to_owned());
        if let Some(services) = self.services.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(services);
        }
        let mut config = self.base.to_builder().region(aws_config::Region::new(region.to_owned()));
        if let Some(credentials) = credentials {
            config = config.credentials_provider(credentials);
        }
        let partition = format!("{}-{region}", account.unwrap_or("home"));
        let services =
            Arc::new(Services::in_partition(&config.build(), self.calls_in_flight, Some(&partition), self.pacing));
        if let Ok(mut cache) = self.services.lock() {
            cache.insert(key, services.clone());
        }
        Ok(services)
    }

    fn role(&self, account: &str, partition: &str, session: &str) -> Arc<SpokeRole> {
        let mut roles = match self.roles.lock() {
            Ok(roles) => roles,
            Err(poisoned) => poisoned.into_inner(),
        };
        roles
            .entry(account.to_owned())
            .or_insert_with(|| {
                Arc::new(SpokeRole {
                    sts: self.sts.clone(),
                    arn: format!("arn:{partition}:iam::{account}:role/{}", self.role_name),
                    external_id: self.external_id.clone(),
                    session: session_name(session),
                    current: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }
}

/// `teardown-<request id>`, with characters outside `[\w+=,.@-]` replaced and cut to 64.
pub fn session_name(request_id: &str) -> String {
    let name: String = format!("teardown-{request_id}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' })
        .collect();
    name.chars().take(64).collect()
}

/// The spoke role of one account, with its current credentials.
struct SpokeRole {
    sts: aws_sdk_sts::Client,
    arn: String,
    external_id: Option<String>,
    session: String,
    current: tokio::sync::Mutex<Option<Credentials>>,
}

impl SpokeRole {
    /// The current credentials, assuming the role again when they are about to expire.
    async fn renewed(&self) -> Result<Credentials, ServiceError> {
        let mut current = self.current.lock().await;
        if let Some(credentials) = current.as_ref()
            && credentials.expiry().is_none_or(|at| at > SystemTime::now() + RENEW_BEFORE)
        {
            return Ok(credentials.clone());
        }
        let answer = self
            .sts
            .assume_role()
            .role_arn(&self.arn)
            .role_session_name(&self.session)
            .set_external_id(self.external_id.clone())
            .send()
            .await
            .map_err(|e| {
                let error = classify(&e);
                ServiceError::new(
                    error.outcome,
                    error.failure.code,
                    format!("could not assume {}: {}", self.arn, error.failure.message),
                )
            })?;
        let Some(c) = answer.credentials() else {
            return Err(ServiceError::transient(
                "NoCredentials",
                format!("AssumeRole of {} answered without credentials", self.arn),
            ));
        };
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            expiry,
            "teardown-spoke",
        );
        *current = Some(credentials.clone());
        Ok(credentials)
    }
}

/// The clients' credentials for one spoke role: renewed on demand.
#[derive(Debug)]
struct RoleProvider(Arc<SpokeRole>);

impl std::fmt::Debug for SpokeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpokeRole").field("arn", &self.arn).finish()
    }
}

impl ProvideCredentials for RoleProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.0.renewed().await.map_err(|e| {
                if e.outcome == Outcome::Rejected {
                    CredentialsError::invalid_configuration(e.to_string())
                } else {
                    CredentialsError::provider_error(e.to_string())
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_name_is_teardown_and_the_request_id_cut_to_what_sts_takes() {
        assert_eq!(session_name("8f2c-11ee/x y"), "teardown-8f2c-11ee-x-y");
        assert_eq!(session_name(&"a".repeat(100)).len(), 64);
    }
}
