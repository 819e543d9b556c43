//! Service Catalog: `TerminateProvisionedProduct`, one product a call, made
//! idempotent by its `TerminateToken`.

use std::collections::BTreeMap;

use aws_sdk_servicecatalog::types::{AccessLevelFilter, AccessLevelFilterKey, ProvisionedProductViewFilterBy};

use super::{LookupError, classify, to_time};
use crate::guard::Candidate;
use crate::outcome::{Outcome, TargetResult};
use crate::request::{ProductRef, ProvisionedProductInput, Selection, ServiceFilters};

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
                    record_status: record.and_then(|r| r.status()).map(|s| s.as_str().to_owned()),
                    ..TargetResult::new(id, Outcome::Terminated)
                }
            }
            // After a termination, repeated requests always answer ResourceNotFound.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                TargetResult::new(id, Outcome::NotFound)
            }
            Err(error) => {
                let (outcome, failure) = classify(&error);
                TargetResult::failed(id, outcome, failure)
            }
        }
    }
}

impl Catalog {
    /// The named product, if it still exists, with status, creation time and tags.
    /// The returned candidate carries the id or name as the request gave it.
    pub async fn describe(&self, product: &ProductRef) -> Result<Option<Candidate>, LookupError> {
        let query = match product {
            ProductRef::Id(id) => format!("id:{id}"),
            ProductRef::Name(name) if name.starts_with("arn:") => format!("arn:{name}"),
            ProductRef::Name(name) => format!("name:{name}"),
        };
        let wanted = product.id();
        let found = self.search(Some(query)).await?;
        Ok(found
            .into_iter()
            .find(|c| {
                c.id == wanted
                    || c.attributes.get("name").map(String::as_str) == Some(wanted)
                    || c.attributes.get("arn").map(String::as_str) == Some(wanted)
            })
            .map(|mut c| {
                c.id = wanted.to_owned();
                c
            }))
    }

    /// The products a selection could match; the guards check every filter again.
    pub async fn find(&self, selection: &Selection) -> Result<Vec<Candidate>, LookupError> {
        let ServiceFilters::ProvisionedProduct { product_id, .. } = &selection.filters else {
            return Ok(Vec::new());
        };
        self.search(product_id.as_ref().map(|p| format!("productId:{p}"))).await
    }

    async fn search(&self, query: Option<String>) -> Result<Vec<Candidate>, LookupError> {
        let mut call = self
            .client
            .search_provisioned_products()
            .access_level_filter(AccessLevelFilter::builder().key(AccessLevelFilterKey::Account).value("self").build());
        if let Some(query) = query {
            call = call.filters(ProvisionedProductViewFilterBy::SearchQuery, vec![query]);
        }
        let mut pages = call.into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            for p in page.map_err(|e| classify(&e))?.provisioned_products() {
                let Some(id) = p.id() else { continue };
                let mut attributes = BTreeMap::new();
                for (name, value) in [
                    ("name", p.name()),
                    ("arn", p.arn()),
                    ("productId", p.product_id()),
                    ("provisioningArtifactId", p.provisioning_artifact_id()),
                ] {
                    if let Some(v) = value {
                        attributes.insert(name, v.to_owned());
                    }
                }
                found.push(Candidate {
                    id: id.to_owned(),
                    state: p.status().map(|s| s.as_str().to_owned()),
                    tags: p.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
                    created: p.created_time().and_then(to_time),
                    attributes,
                    ..Candidate::default()
                });
            }
        }
        Ok(found)
    }
}
