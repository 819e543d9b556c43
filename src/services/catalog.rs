//! Service Catalog: `TerminateProvisionedProduct`, one product a call, made
//! idempotent by its `TerminateToken`.

use std::collections::BTreeMap;

use aws_sdk_servicecatalog::types::{AccessLevelFilter, AccessLevelFilterKey, ProvisionedProductViewFilterBy};

use super::{Gate, LookupError, classify, to_time};
use crate::guard::Candidate;
use crate::outcome::{Failure, Outcome, TargetResult};
use crate::request::{ProductRef, ProvisionedProductInput, Selection, ServiceFilters};

#[derive(Clone, Debug)]
pub struct Catalog {
    client: aws_sdk_servicecatalog::Client,
    gate: Gate,
}

impl Catalog {
    pub fn new(client: aws_sdk_servicecatalog::Client) -> Self {
        Catalog { client, gate: Gate::default() }
    }

    pub fn with_gate(self, gate: Gate) -> Self {
        Catalog { gate, ..self }
    }

    /// `token` is used when the request gave none: the caller derives it from the
    /// delivery, so a redelivered message cannot start a second termination.
    pub async fn terminate(&self, input: &ProvisionedProductInput, token: &str) -> TargetResult {
        let id = input.product.id();
        let (product_id, product_name) = match &input.product {
            ProductRef::Id(id) => (Some(id.clone()), None),
            ProductRef::Name(name) => (None, Some(name.clone())),
        };
        let call = self
            .client
            .terminate_provisioned_product()
            .set_provisioned_product_id(product_id)
            .set_provisioned_product_name(product_name)
            .terminate_token(input.terminate_token.as_deref().unwrap_or(token))
            .set_ignore_errors(input.ignore_errors)
            .set_retain_physical_resources(input.retain_physical_resources)
            .set_accept_language(input.accept_language.clone())
            .send();
        match self.gate.pass(call).await {
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
    ///
    /// `DescribeProvisionedProduct` is authoritative: it alone decides that a product
    /// is gone. It carries no tags, so `SearchProvisionedProducts` is asked at the
    /// same time (one round of latency); but that is an index that lags behind new
    /// products and tokenises names, so a product it misses is not gone: its tags,
    /// and so its protection, are unknown, and it is left for a later attempt.
    pub async fn describe(&self, product: &ProductRef) -> Result<Option<Candidate>, LookupError> {
        let query = match product {
            ProductRef::Id(id) => format!("id:{id}"),
            ProductRef::Name(name) if name.starts_with("arn:") => format!("arn:{name}"),
            ProductRef::Name(name) => format!("name:{name}"),
        };
        let (id, name) = match product {
            ProductRef::Id(id) => (Some(id.clone()), None),
            ProductRef::Name(name) => (None, Some(name.clone())),
        };
        let described = self.client.describe_provisioned_product().set_id(id).set_name(name).send();
        let (described, searched) = futures_util::join!(self.gate.pass(described), self.search(Some(query)));
        let detail = match described {
            Ok(out) => match out.provisioned_product_detail().and_then(|d| d.id().map(|id| (id.to_owned(), d.clone())))
            {
                Some(found) => found,
                // An answer without the product is not the service saying it is gone.
                None => {
                    let failure =
                        Failure::new("UnreadableResponse", "DescribeProvisionedProduct answered without the product");
                    return Err((Outcome::Transient, failure));
                }
            },
            Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                return Ok(None);
            }
            Err(error) => return Err(classify(&error)),
        };
        let (found_id, detail) = detail;
        let mut listed = searched?.into_iter().find(|c| c.id == found_id);
        // A name is tokenised by the index and may not find it; the id Describe gave may.
        if listed.is_none() && matches!(product, ProductRef::Name(_)) {
            listed = self.search(Some(format!("id:{found_id}"))).await?.into_iter().find(|c| c.id == found_id);
        }
        let Some(mut candidate) = listed else {
            let failure = Failure::new(
                "TagsUnknown",
                format!(
                    "SearchProvisionedProducts does not list {found_id} yet (its index lags): its tags, and so its protection, are unknown"
                ),
            );
            return Err((Outcome::Transient, failure));
        };
        // The authoritative status wins over the index's, which may be stale.
        if let Some(status) = detail.status() {
            candidate.state = Some(status.as_str().to_owned());
        }
        candidate.id = product.id().to_owned();
        Ok(Some(candidate))
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
        while let Some(page) = self.gate.pass(pages.next()).await {
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
