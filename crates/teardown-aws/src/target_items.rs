//! The state table's item of each target under the lifecycle (docs/lifecycle.md): one
//! mapping between a DynamoDB item and `lifecycle::Item`, one reader, and one
//! conditional write on a version. Every rule lives in `lifecycle::step`; this only
//! stores what a step returns, and says, when a write loses, what won.
//!
//! | attribute | meaning |
//! |---|---|
//! | `pk` | `lifecycle#account#region#operation#target` |
//! | `version` | bumped by every write; every write is conditional on the one it read |
//! | `lifecycle` | the item, as JSON (`lifecycle::Item`) |
//! | `phase`, `epoch` | copies for a person reading the table in the console |
//! | `writeToken` | the write's own token: a write the SDK sent again after its answer was lost knows itself |
//! | `expiresAt` | TTL |
//!
//! Items of the earlier format (claims, intents, chains) live under the bare key and are
//! never read here: they expire within a day of their last decision.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure};
use teardown_core::lifecycle::{Item, Phase};

use crate::classify::{ServiceError, classify};
use crate::state::Key;

/// An item as stored: version 0 is an item never written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub version: u64,
    pub item: Item,
}

/// What a conditional write came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// It went in: the item as written.
    Won(Stored),
    /// Another write came first: what it wrote, to step again against.
    Lost(Stored),
}

/// The conditions: the only two, and never built from input.
const NEVER_WRITTEN: &str = "attribute_not_exists(pk)";
const SAME_VERSION: &str = "version = :version";
/// BatchGetItem reads at most 100 keys a call.
const KEYS_PER_CALL: usize = 100;

pub fn pk(key: &Key) -> String {
    format!("lifecycle#{}", key.pk())
}

/// The item's attributes: the one mapping from the lifecycle to the table.
pub fn to_attributes(
    key: &Key,
    stored: &Stored,
    write_token: &str,
    expires_at: i64,
) -> HashMap<String, AttributeValue> {
    let json = serde_json::to_string(&stored.item).unwrap_or_default();
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk(key))),
        ("version".to_owned(), AttributeValue::N(stored.version.to_string())),
        ("lifecycle".to_owned(), AttributeValue::S(json)),
        ("phase".to_owned(), AttributeValue::S(phase_name(&stored.item.phase).to_owned())),
        ("epoch".to_owned(), AttributeValue::N(stored.item.epoch.to_string())),
        ("writeToken".to_owned(), AttributeValue::S(write_token.to_owned())),
        ("expiresAt".to_owned(), AttributeValue::N(expires_at.to_string())),
    ])
}

/// The one mapping back; an item that does not read as one is an error naming why.
pub fn from_attributes(attributes: &HashMap<String, AttributeValue>) -> Result<Stored, String> {
    let version = attributes
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or("the item has no version")?;
    let json = attributes.get("lifecycle").and_then(|v| v.as_s().ok()).ok_or("the item has no lifecycle")?;
    let item = serde_json::from_str(json).map_err(|e| format!("the item's lifecycle does not read: {e}"))?;
    Ok(Stored { version, item })
}

pub fn phase_name(phase: &Phase) -> &'static str {
    match phase {
        Phase::Idle => "idle",
        Phase::Calling(_) => "calling",
        Phase::Following(_) => "following",
        Phase::Decided(d) if d.published => "published",
        Phase::Decided(_) => "decided",
    }
}

/// An item that does not read as one, named by its `pk`.
fn unreadable(name: &str, why: String) -> ServiceError {
    ServiceError::transient("ResponseError", format!("{name}: {why}"))
}

/// The items of the state table under the lifecycle.
#[derive(Clone, Debug)]
pub struct TargetItems {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl TargetItems {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        TargetItems { client, table }
    }

    /// The items of `keys` (strongly consistent), in one call per 100; a key never written
    /// reads as version 0.
    pub async fn load(&self, keys: &[Key]) -> Result<Vec<Stored>, ServiceError> {
        let mut found: HashMap<String, Stored> = HashMap::new();
        for chunk in keys.chunks(KEYS_PER_CALL) {
            let mut wanted: Vec<HashMap<String, AttributeValue>> =
                chunk.iter().map(|k| HashMap::from([("pk".to_owned(), AttributeValue::S(pk(k)))])).collect();
            // What DynamoDB leaves unprocessed (throttling) is asked again.
            while !wanted.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut wanted)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| ServiceError::transient("Unknown", e.to_string()))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
                for attributes in out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                    let Some(name) = attributes.get("pk").and_then(|v| v.as_s().ok()).cloned() else { continue };
                    let stored = from_attributes(&attributes).map_err(|why| unreadable(&name, why))?;
                    found.insert(name, stored);
                }
                wanted =
                    out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).map(|k| k.keys).unwrap_or_default();
            }
        }
        Ok(keys.iter().map(|k| found.remove(&pk(k)).unwrap_or_default()).collect())
    }

    /// Writes `item` over `from` on the condition that nobody wrote since `from` was read.
    /// `write_token` must be new for each write: a write the SDK sent again after its
    /// answer was lost finds its own token, and counts as won.
    pub async fn write(
        &self,
        key: &Key,
        from: &Stored,
        item: &Item,
        write_token: &str,
        expires_at: i64,
    ) -> Result<Written, ServiceError> {
        let next = Stored { version: from.version + 1, item: item.clone() };
        let mut call = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(key, &next, write_token, expires_at)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        call = if from.version == 0 {
            call.condition_expression(NEVER_WRITTEN)
        } else {
            call.condition_expression(SAME_VERSION)
                .expression_attribute_values(":version", AttributeValue::N(from.version.to_string()))
        };
        match call.send().await {
            Ok(_) => Ok(Written::Won(next)),
            Err(error) => {
                let won = error.as_service_error().filter(|e| e.is_conditional_check_failed_exception()).and_then(
                    |e| match e {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                            c.item.clone()
                        }
                        _ => None,
                    },
                );
                let Some(attributes) = won else { return Err(classify(&error)) };
                let mine = attributes.get("writeToken").and_then(|v| v.as_s().ok()).is_some_and(|t| t == write_token);
                let stored = from_attributes(&attributes).map_err(|why| unreadable(&pk(key), why))?;
                Ok(if mine { Written::Won(stored) } else { Written::Lost(stored) })
            }
        }
    }
}
