//! Service Catalog: `TerminateProvisionedProduct`, one product a call, made
//! idempotent by its `TerminateToken`.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_servicecatalog::types::{
    AccessLevelFilter, AccessLevelFilterKey, ProvisionedProductStatus, ProvisionedProductViewFilterBy, RecordStatus,
};

use super::{Gate, LookupError, to_time};
use crate::classify::{ServiceError, classify};
use crate::confirm::Status;
use crate::guard::Candidate;
use crate::outcome::{Failure, Outcome, TargetResult};
use crate::request::{ProductRef, ProvisionedProductFilters, ProvisionedProductInput, Selection};

/// How `DescribeProvisionedProduct` is asked.
enum Describe {
    Id(String),
    Name(String),
}

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

    /// The most calls this service has in flight at once (its gate's capacity).
    pub fn calls_in_flight(&self) -> usize {
        self.gate.capacity()
    }

    /// `token` is used when the request gave none: the caller derives it from the
    /// delivery, so a redelivered message cannot start a second termination.
    pub async fn terminate(&self, input: &ProvisionedProductInput, token: &str) -> TargetResult {
        let id = input.product.as_given();
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
        match self.gate.pass("TerminateProvisionedProduct", call).await {
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
                let ServiceError { outcome, failure } = classify(&error);
                TargetResult::failed(id, outcome, failure)
            }
        }
    }
}

impl Catalog {
    /// The named product, if it still exists, with status, creation time and tags.
    /// The returned candidate carries the id or name as the request gave it, and the
    /// product's own id to call with (a name may name another product tomorrow).
    ///
    /// `DescribeProvisionedProduct` is authoritative: it alone decides that a product
    /// is gone. `SearchProvisionedProducts`, asked at the same time, is an index that
    /// lags behind new products and tokenises names: a product it misses is not
    /// gone, and it is not terminated either (docs/reference.md, "What each request ends as": `transient`). The tags
    /// judged are the last successful provisioning record's (`DescribeRecord`), not
    /// the index's, which may be stale; the index's tags still count for protection,
    /// where a stale tag can only leave a product alone.
    pub async fn describe(&self, product: &ProductRef) -> Result<Option<Candidate>, LookupError> {
        let (query, by) = match product {
            ProductRef::Id(id) => (format!("id:{id}"), Describe::Id(id.clone())),
            ProductRef::Name(arn) if arn.starts_with("arn:") => {
                // DescribeProvisionedProduct takes an id or a plain name, not an ARN; the
                // ARN's last segment is the product's id, and the ARN is checked after.
                let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
                (format!("arn:{arn}"), Describe::Id(id))
            }
            ProductRef::Name(name) => (format!("name:{name}"), Describe::Name(name.clone())),
        };
        let (described, searched) = futures_util::join!(self.describe_product(by), self.search(Some(query)));
        let Some(mut candidate) = described? else { return Ok(None) };
        // The id an ARN ends with found a product with another ARN (another account or
        // region, or not a provisioned product's ARN): that is a wrong request, not a
        // product that is gone.
        if let ProductRef::Name(arn) = product
            && arn.starts_with("arn:")
            && candidate.attributes.get("arn") != Some(arn)
        {
            let found = candidate.attributes.get("arn").map(String::as_str).unwrap_or("no ARN");
            return Err(ServiceError::new(
                Outcome::Rejected,
                "ArnMismatch",
                format!("no provisioned product here has this ARN; the id it ends with is {found}"),
            ));
        }
        let found_id = candidate.id.clone();
        candidate.call_id = Some(found_id.clone());
        candidate.id = product.as_given().to_owned();
        // From here on the product is known by its id: a lookup that fails now leaves it
        // unjudged (its protection is unknown) but still named by that id, so that a
        // replay names the id and never the name (docs/reference.md, "The dead-letter record").
        let listed = match searched {
            Ok(listed) => listed.into_iter().find(|c| c.id == found_id),
            Err(error) => return Ok(Some(unreadable(candidate, error))),
        };
        // A name is tokenised by the index and may not find it; the id Describe gave may.
        let listed = match listed {
            None if matches!(product, ProductRef::Name(_)) => match self.search(Some(format!("id:{found_id}"))).await {
                Ok(listed) => listed.into_iter().find(|c| c.id == found_id),
                Err(error) => return Ok(Some(unreadable(candidate, error))),
            },
            listed => listed,
        };
        let Some(listed) = listed else {
            let lagging = ServiceError::transient(
                "TagsUnknown",
                format!(
                    "SearchProvisionedProducts does not list {found_id} yet (its index lags): its tags, and so its protection, are unknown"
                ),
            );
            return Ok(Some(unreadable(candidate, lagging)));
        };
        candidate.index_tags = listed.tags;
        Ok(Some(candidate))
    }
}

/// A product found, whose protection could not be read: it is not judged, and ends
/// with the lookup's error.
fn unreadable(mut candidate: Candidate, error: ServiceError) -> Candidate {
    candidate.unreadable = Some((error.outcome, error.failure));
    candidate
}

impl Catalog {
    /// What Service Catalog itself says of a product the index listed: its status,
    /// creation time and the tags of its last successful provisioning record. `None`
    /// when it is gone. The index's tags are kept for protection only.
    pub async fn confirm(&self, indexed: &Candidate) -> Result<Option<Candidate>, LookupError> {
        let Some(mut candidate) = self.describe_product(Describe::Id(indexed.id.clone())).await? else {
            return Ok(None);
        };
        candidate.index_tags = indexed.tags.clone();
        candidate.call_id = Some(indexed.id.clone());
        Ok(Some(candidate))
    }

    /// `DescribeProvisionedProduct`, then `DescribeRecord` for the tags.
    async fn describe_product(&self, by: Describe) -> Result<Option<Candidate>, LookupError> {
        let call = match by {
            Describe::Id(id) => self.client.describe_provisioned_product().id(id),
            Describe::Name(name) => self.client.describe_provisioned_product().name(name),
        };
        let detail = match self.gate.pass("DescribeProvisionedProduct", call.send()).await {
            Ok(out) => match out.provisioned_product_detail() {
                Some(detail) if detail.id().is_some() => detail.clone(),
                // An answer without the product is not the service saying it is gone.
                _ => {
                    return Err(ServiceError::transient(
                        "UnreadableResponse",
                        "DescribeProvisionedProduct answered without the product",
                    ));
                }
            },
            Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                return Ok(None);
            }
            Err(error) => return Err(classify(&error)),
        };
        let id = detail.id().unwrap_or_default().to_owned();
        // A product that is changing because it is being terminated is on its way out:
        // reported as such, not retried until the queue gives up on it.
        let terminating = match (detail.status(), detail.last_record_id()) {
            (Some(ProvisionedProductStatus::UnderChange), Some(last)) => {
                let described = self.gate.pass("DescribeRecord", self.client.describe_record().id(last).send()).await;
                let record = described.map_err(|e| classify(&e))?;
                let terminate = record.record_detail().is_some_and(|r| {
                    r.record_type() == Some("TERMINATE_PROVISIONED_PRODUCT")
                        && matches!(r.status(), Some(RecordStatus::Created | RecordStatus::InProgress))
                });
                terminate.then(|| last.to_owned())
            }
            _ => None,
        };
        let record = detail.last_successful_provisioning_record_id().or(detail.last_provisioning_record_id());
        let Some(record) = record else {
            return Err(ServiceError::transient(
                "TagsUnknown",
                format!("{id} has no provisioning record to read its tags from"),
            ));
        };
        let described = self.gate.pass("DescribeRecord", self.client.describe_record().id(record).send()).await;
        let tags = described
            .map_err(|e| classify(&e))?
            .record_detail()
            .map(|r| {
                r.record_tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let mut attributes = BTreeMap::new();
        for (name, value) in [
            ("name", detail.name()),
            ("arn", detail.arn()),
            ("productId", detail.product_id()),
            ("provisioningArtifactId", detail.provisioning_artifact_id()),
        ] {
            if let Some(v) = value {
                attributes.insert(name, v.to_owned());
            }
        }
        Ok(Some(Candidate {
            id,
            state: detail.status().map(|s| s.as_str().to_owned()),
            tags,
            created: detail.created_time().and_then(to_time),
            attributes,
            active_job: terminating,
            ..Candidate::default()
        }))
    }

    /// The products a selection could match; the guards check every filter again.
    pub async fn find(&self, selection: &Selection<ProvisionedProductFilters>) -> Result<Vec<Candidate>, LookupError> {
        let product_id = &selection.filters.product_id;
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
        while let Some(page) = self.gate.pass("SearchProvisionedProducts", pages.next()).await {
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

impl Catalog {
    /// A product's last record, and whether it is a termination; `None` when the
    /// product is gone.
    async fn last_record(&self, id: &str) -> Result<Option<LastRecord>, LookupError> {
        let call = self.client.describe_provisioned_product().id(id).send();
        let detail = match self.gate.pass("DescribeProvisionedProduct", call).await {
            Ok(out) => out.provisioned_product_detail().cloned(),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                return Ok(None);
            }
            Err(error) => return Err(classify(&error)),
        };
        let Some(last) = detail.and_then(|d| d.last_record_id().map(str::to_owned)) else {
            return Err(ServiceError::transient(
                "UnreadableResponse",
                "DescribeProvisionedProduct named no last record",
            ));
        };
        let described = self.gate.pass("DescribeRecord", self.client.describe_record().id(&last).send()).await;
        let record = described.map_err(|e| classify(&e))?;
        let detail = record.record_detail();
        let terminate = detail.is_some_and(|r| r.record_type() == Some("TERMINATE_PROVISIONED_PRODUCT"));
        let created = detail.and_then(|r| r.created_time()).map(|t| t.secs());
        Ok(Some(LastRecord { id: last, terminate, created }))
    }
}

/// A product's last record: its id, whether it is a termination, when it was made.
struct LastRecord {
    id: String,
    terminate: bool,
    created: Option<i64>,
}

impl Catalog {
    /// docs/reference.md, "Follow-up, audit events and metrics": where each followed product's terminate record is. `SUCCEEDED`
    /// (or the product gone) is done; `FAILED` failed, with the record's own errors;
    /// anything else is on its way.
    ///
    /// A product followed without its record looks at its last record; one made
    /// before `since` (epoch seconds), when given, is no sign of this termination.
    pub async fn check(
        &self,
        targets: &[crate::confirm::Followed],
        since: Option<i64>,
    ) -> Result<HashMap<String, (Status, Option<String>)>, LookupError> {
        use futures_util::{StreamExt, TryStreamExt, stream};
        // One record a call: asked side by side, bounded by the service's gate.
        stream::iter(targets)
            .map(|t| async move { self.check_one(t, since).await.map(|status| (t.id.clone(), status)) })
            .buffer_unordered(self.gate.capacity())
            .try_collect()
            .await
    }

    /// A product's status, with the record followed (found when the check had none).
    async fn check_one(
        &self,
        t: &crate::confirm::Followed,
        since: Option<i64>,
    ) -> Result<(Status, Option<String>), LookupError> {
        let record_id = match &t.record_id {
            Some(record_id) => record_id.clone(),
            // A call whose answer never came: the product's last record says.
            None => match self.last_record(&t.id).await? {
                None => return Ok((Status::Done, None)),
                Some(last) if !last.terminate => {
                    return Ok((Status::Unseen(format!("its last record {} is not a termination", last.id)), None));
                }
                Some(last) if since.is_some_and(|since| last.created.is_some_and(|created| created < since)) => {
                    let why = format!("its last termination, record {}, came before", last.id);
                    return Ok((Status::Unseen(why), None));
                }
                Some(last) => last.id,
            },
        };
        Ok((self.record_status(&record_id).await?, Some(record_id)))
    }

    /// Where the terminate record `record_id` is.
    async fn record_status(&self, record_id: &str) -> Result<Status, LookupError> {
        let described = self.gate.pass("DescribeRecord", self.client.describe_record().id(record_id).send()).await;
        Ok(match described {
            Ok(answer) => match answer.record_detail() {
                Some(r) if r.status() == Some(&RecordStatus::Succeeded) => Status::Done,
                Some(r) if r.status() == Some(&RecordStatus::Failed) => {
                    let first = r.record_errors().first();
                    let code = first.and_then(|e| e.code()).unwrap_or("RecordFailed");
                    let message =
                        r.record_errors().iter().filter_map(|e| e.description()).collect::<Vec<_>>().join("; ");
                    let message = if message.is_empty() { format!("record {record_id} FAILED") } else { message };
                    Status::Failed(Failure::new(code, message))
                }
                Some(r) => {
                    Status::Pending(format!("record {record_id} is {}", r.status().map_or("CREATED", |s| s.as_str())))
                }
                None => Status::Pending(format!("record {record_id} is not readable yet")),
            },
            // docs/reference.md, "Follow-up, audit events and metrics": the product gone is a termination done.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Status::Done,
            Err(e) => return Err(classify(&e)),
        })
    }
}
