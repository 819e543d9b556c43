//! Service Catalog: `TerminateProvisionedProduct`, one product a call, made
//! idempotent by its `TerminateToken`.

use super::classify;
use crate::outcome::{Outcome, TargetResult};
use crate::request::{ProductRef, ProvisionedProductInput};

#[derive(Clone, Debug)]
pub struct Catalog {
    client: aws_sdk_servicecatalog::Client,
}

impl Catalog {
    pub fn new(client: aws_sdk_servicecatalog::Client) -> Self {
        Catalog { client }
    }

    /// `token` is used when the request gave none: the caller derives it from the
    /// delivery, so a redelivered message cannot start a second termination.
    pub async fn terminate(&self, input: &ProvisionedProductInput, token: &str) -> TargetResult {
        let id = input.product.id();
        let (product_id, product_name) = match &input.product {
            ProductRef::Id(id) => (Some(id.clone()), None),
            ProductRef::Name(name) => (None, Some(name.clone())),
        };
        let sent = self
            .client
            .terminate_provisioned_product()
            .set_provisioned_product_id(product_id)
            .set_provisioned_product_name(product_name)
            .terminate_token(input.terminate_token.as_deref().unwrap_or(token))
            .set_ignore_errors(input.ignore_errors)
            .set_retain_physical_resources(input.retain_physical_resources)
            .set_accept_language(input.accept_language.clone())
            .send()
            .await;
        match sent {
            Ok(output) => {
                let record = output.record_detail();
                TargetResult {
                    record_id: record.and_then(|r| r.record_id()).map(str::to_owned),
                    record_status: record
                        .and_then(|r| r.status())
                        .map(|s| s.as_str().to_owned()),
                    ..TargetResult::new(id, Outcome::Terminated)
                }
            }
            // After a termination, repeated requests always answer ResourceNotFound.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                TargetResult::new(id, Outcome::NotFound)
            }
            Err(error) => {
                let (outcome, failure) = classify(&error);
                TargetResult::failed(id, outcome, failure)
            }
        }
    }
}
