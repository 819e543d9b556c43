//! The state table (`STATE_TABLE`): one DynamoDB item per accepted termination, keyed
//! by account, region, operation and target, changed only by conditional writes, so
//! that at-least-once delivery neither loses a follow-up nor forks one, a decision is
//! made once, and one MGN server is never in two calls (docs/reference.md, "State
//! across messages").
//!
//! The item of a target:
//!
//! | attribute | meaning |
//! |---|---|
//! | `pk` | `account#region#operation#target` |
//! | `chainId`, `chainState` | the follow-up chain that owns the target: `pending` until its first check arrives, then `live` |
//! | `dueAt` | when the chain's next check is due (epoch seconds) |
//! | `checkAttempt`, `checkMsg`, `checkReceive` | the last check that went on (its attempt, SQS message and receive count): a copy of it goes no further; the same message come back later redoes it |
//! | `acceptedAt`, `acceptedFrom`, `jobId`, `recordId` | when and why the termination was accepted |
//! | `decision`, `decidedAt`, `decisionError`, `decidedMsg`, `decidedReceive`, `decidedOf` | `confirmed`, `failed` or `unconfirmed`, written once (by one message), and the MGN job or Service Catalog record decided |
//! | `announcedAt` | the decision is published (its record and audit event are out): until then, or an hour, no new termination starts |
//! | `decidedIds` | every MGN job and Service Catalog record ever decided for the target: none is followed up again |
//! | `intentChain`, `intentAt`, `intentAccepted`, `intentFrom` | a terminate call about to be made, whose answer is not known yet: gone when it is accepted (a chain replaces it) or refused; a later delivery that finds one whose answer never came follows the target up |
//! | `pk` `intents#<request token>`: `targets` | the targets a request was about to call for, so a later delivery of it finds them when its lookups do not |
//! | `claimUntil`, `claimedBy` | MGN: the invocation about to call `TerminateTargetInstances` for the server |
//! | `expiresAt` | TTL: one day after `CONFIRM_WITHIN` has passed |
//! | `pk` `record#<identity>`: `askedAt`, `publishedAt`, `firstFailedAt`, `firstReceive` | a dead-letter record published (its identity: the record without `failedAt` and `source.receiveCount`), so a delivery of the same message after a crash does not publish it again |
//! | `writeToken` | the last write's own token: an attempt the SDK retried after its answer was lost knows its own write by it |

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use crate::classify::{ServiceError, classify};
use crate::request::Operation;

/// No chain still to decide the target: none, decided, or one whose next check is
/// long overdue (lost: its message is gone). A pending chain (its check on its way,
/// or never sent) is still to decide: the caller takes it over and checks it first.
const NO_LIVE_CHAIN: &str = "attribute_not_exists(chainId) \
    OR (attribute_exists(decision) AND (attribute_exists(announcedAt) OR decidedAt < :stale)) OR dueAt < :stale";
/// How long past its due time a live chain's check is taken for lost: past the
/// longest delay (900 s) and a Lambda timeout's worth of redeliveries.
const STALE_SECONDS: i64 = 3600;

/// The attributes of an intent (`StateTable::intend`).
const INTENT_ATTRIBUTES: &str = "intentChain, intentAt, intentAccepted, intentFrom, intentToken";
const INTENT_SET: &str =
    "intentChain = :ichain, intentAt = :inow, intentAccepted = :iat, intentFrom = :isrc, intentToken = :itoken";
/// An intent goes in over none, or over one of the same request (an earlier delivery's:
/// the same token makes the same call), or one stale: never over another request's
/// call whose answer is not known yet, which that call's answer, its next delivery or
/// its watch resolves (`StateTable::watch`).
const NO_OTHER_INTENT: &str = "attribute_not_exists(intentChain) OR intentChain = :ichain OR intentToken = :itoken \
     OR begins_with(intentChain, :iholder) OR intentAt < :stale";
/// What a decision leaves on an item, and the last check that went on.
const DECISION_ATTRIBUTES: &str = "decision, decidedAt, decisionError, decidedMsg, decidedReceive, decidedOf, \
    announcedAt, checkAttempt, checkMsg, checkReceive";

/// A terminate call about to be made: by which chain, when, for which request.
#[derive(Clone, Copy, Debug)]
pub struct Intent<'a> {
    pub chain: &'a str,
    /// Epoch seconds.
    pub at: i64,
    /// The same moment as text, as a chain's `acceptedAt`.
    pub accepted_at: &'a str,
    /// Where the request came from (the record's `source`), as JSON.
    pub source: &'a str,
    /// The request's idempotency token: the same for every delivery of it.
    pub token: &'a str,
}

impl Intent<'_> {
    fn values(&self) -> Vec<(&'static str, AttributeValue)> {
        vec![
            (":ichain", s(self.chain)),
            (":inow", n(self.at)),
            (":iat", s(self.accepted_at)),
            (":isrc", s(self.source)),
            (":itoken", s(self.token)),
            // Another request of the same invocation: their calls are one.
            (":iholder", s(self.chain.rsplit_once(':').map_or(self.chain, |(holder, _)| holder))),
        ]
    }
}

/// How long a published record is remembered: past SQS's longest retention (14
/// days), no delivery of its message can come back.
const RECORD_SECONDS: i64 = 15 * 24 * 3600;

/// How long a claim on an MGN server holds: past it, a call that never answered is
/// assumed to have started its job, which `DescribeJobs` then shows.
pub const CLAIM_SECONDS: i64 = 15 * 60;

/// Which target an item is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub account: String,
    pub region: String,
    pub operation: Operation,
    pub target: String,
}

impl Key {
    pub fn pk(&self) -> String {
        format!("{}#{}#{}#{}", self.account, self.region, self.operation.as_str(), self.target)
    }
}

/// A chain to start for an accepted termination.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainStart {
    pub key: Key,
    pub chain: String,
    /// When the first check is due (epoch seconds).
    pub due_at: i64,
    pub accepted_at: String,
    /// Where the request came from (the record's `source`), as JSON.
    pub source: String,
    pub job_id: Option<String>,
    pub record_id: Option<String>,
    /// Accepted by this invocation's own call (a new termination, which may follow a
    /// decided one), rather than found already on its way out.
    pub fresh: bool,
}

/// What starting a chain came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// The chain owns the target now; it took it over from `previous`, when there was one.
    Won { previous: Option<String> },
    /// A live chain owns it.
    Lost,
}

/// What a conditional write came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The write went in: this invocation owns what it wrote.
    Won,
    /// Another chain owns the target, or the decision was already made, or another
    /// invocation holds the claim: nothing of this one's goes on.
    Lost,
}

/// What a check's end came to (`StateTable::check_end`).
#[derive(Clone, Debug, PartialEq)]
pub enum Ended {
    /// It went in: this check goes on, or decides.
    Won,
    /// Another chain owns the target, or a copy of this check went on or decided first.
    Lost,
    /// This very check, delivered again after its invocation died, had decided
    /// already: what it decided then (`decision`, `decisionError`, `decidedAt`) is
    /// published again as it was, never decided anew.
    Decided(Item),
    /// The same delivery (message and receive count), handed out twice at once by SQS,
    /// went on or decided first: that copy may still publish, or may have died.
    Twin(Item),
    /// Another message of this chain (a check, its watch) decided and has not published
    /// it: its invocation may still be publishing, or every delivery of it may have died.
    Unannounced(Item),
}

/// The check a `check_end` is for: its chain and attempt, and the SQS message it came in.
#[derive(Clone, Copy, Debug)]
pub struct CheckOf<'a> {
    pub chain: &'a str,
    pub attempt: u32,
    pub accepted_at: &'a str,
    pub message_id: &'a str,
    pub receive_count: u64,
}

/// A check's end for one target, to be written before anything is published.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckEnd {
    /// Checked again: the chain is live, due again at `due_at`.
    Again { due_at: i64 },
    /// `confirmed`, `failed` or `unconfirmed`, with the error when there is one, and
    /// the MGN job or Service Catalog record decided, when the check knows it.
    Decided { decision: &'static str, error: Option<String>, of: Option<String> },
}

/// What one item says, for `teardown status`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Item {
    pub attributes: HashMap<String, String>,
}

impl Item {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

/// The table, or none: then every rule of at-least-once delivery holds as without it.
#[derive(Clone, Debug)]
pub struct StateTable {
    client: Option<aws_sdk_dynamodb::Client>,
    table: Option<String>,
    /// `CONFIRM_WITHIN`: items expire a day after it has passed.
    confirm_within: i64,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A token no other write carries: this process, when it started, and a count.
fn write_token() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static STARTED: OnceLock<u128> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let started = STARTED.get_or_init(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
    });
    format!("{}-{started}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed))
}

/// A check's end that did not go in: `Decided` when this very check (the same message,
/// come back later) decided the target before and died before it was published, to
/// publish that decision, the same; `Twin` when a copy of this very delivery (the same
/// receive count: SQS handed it out twice at once) decided or went on first; `Lost`
/// otherwise.
fn decided_before(old: HashMap<String, AttributeValue>, check: &CheckOf<'_>) -> Ended {
    let old = item(Some(&old));
    let receive = old.get("decidedReceive").and_then(|r| r.parse::<u64>().ok());
    // Published already (its invocation lived to mark it): nothing to do again.
    let own = old.get("chainId") == Some(check.chain)
        && old.get("decidedMsg") == Some(check.message_id)
        && receive.is_some_and(|r| r <= check.receive_count)
        && old.get("announcedAt").is_none();
    let went_on = old.get("chainId") == Some(check.chain)
        && old.get("decision").is_none()
        && old.get("checkMsg") == Some(check.message_id)
        && old.get("checkAttempt").and_then(|a| a.parse::<u32>().ok()) == Some(check.attempt)
        && old.get("checkReceive").and_then(|r| r.parse::<u64>().ok()) == Some(check.receive_count);
    let unannounced = old.get("chainId") == Some(check.chain)
        && old.get("decision").is_some()
        && old.get("announcedAt").is_none()
        && old.get("decidedMsg") != Some(check.message_id);
    match (own, receive == Some(check.receive_count)) {
        (true, false) => Ended::Decided(old),
        (true, true) => Ended::Twin(old),
        (false, _) if went_on => Ended::Twin(old),
        (false, _) if unannounced => Ended::Unannounced(old),
        (false, _) => Ended::Lost,
    }
}

/// A state call that fails is `transient`, like a lookup: the message comes back.
fn transient(error: ServiceError) -> ServiceError {
    ServiceError { outcome: crate::outcome::Outcome::Transient, ..error }
}

/// An item's attributes as text.
fn item(attributes: Option<&HashMap<String, AttributeValue>>) -> Item {
    Item {
        attributes: attributes
            .into_iter()
            .flatten()
            .map(|(name, value)| {
                let text = match value {
                    AttributeValue::S(text) | AttributeValue::N(text) => text.clone(),
                    other => format!("{other:?}"),
                };
                (name.clone(), text)
            })
            .collect(),
    }
}

impl StateTable {
    pub fn none() -> Self {
        StateTable { client: None, table: None, confirm_within: 7200 }
    }

    pub fn new(client: aws_sdk_dynamodb::Client, table: Option<String>, confirm_within: u64) -> Self {
        StateTable { client: Some(client), table, confirm_within: i64::try_from(confirm_within).unwrap_or(43_200) }
    }

    pub fn is_set(&self) -> bool {
        self.client.is_some() && self.table.is_some()
    }

    fn expires(&self, now: i64) -> i64 {
        now + self.confirm_within + 24 * 3600
    }

    /// One conditional `UpdateItem`: `Won` when it went in, `Lost` when its condition
    /// did not hold, and the service's error (`transient` or `rejected`) otherwise.
    async fn update(
        &self,
        pk: String,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Written, ServiceError> {
        let written = self.write(pk, update, condition, values, ReturnValue::None).await?;
        Ok(if written.is_some() { Written::Won } else { Written::Lost })
    }

    /// One conditional `UpdateItem`, with what it `returning` asks back when it went
    /// in; `None` when its condition did not hold.
    ///
    /// Each write carries a token of its own. When an attempt went in but its answer
    /// was lost (a reset, a timeout), the SDK sends the same request again, whose
    /// condition then fails against its own write: the item that DynamoDB returns with
    /// the failure still carries the token, and the write counts as made (answered with
    /// the item as it is, since the item as it was is gone).
    async fn write(
        &self,
        pk: String,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        returning: ReturnValue,
    ) -> Result<Option<Item>, ServiceError> {
        let (Some(_), Some(_)) = (&self.client, &self.table) else {
            return Ok(Some(Item::default()));
        };
        let raw = self.write_raw(pk, update, condition, values, returning).await?;
        Ok(raw.map(|attributes| item(Some(&attributes))))
    }

    /// `write`, answering with the attributes as DynamoDB gives them.
    async fn write_raw(
        &self,
        pk: String,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        returning: ReturnValue,
    ) -> Result<Option<HashMap<String, AttributeValue>>, ServiceError> {
        Ok(self.write_or_item(pk, update, condition, values, returning).await?.ok())
    }

    /// `write_raw`, answering a failed condition with the item as it is (`Err`).
    async fn write_or_item(
        &self,
        pk: String,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        returning: ReturnValue,
    ) -> Result<Result<HashMap<String, AttributeValue>, HashMap<String, AttributeValue>>, ServiceError> {
        let (Some(client), Some(table)) = (&self.client, &self.table) else {
            return Ok(Ok(HashMap::new()));
        };
        let token = write_token();
        let update = match update.strip_prefix("SET ") {
            Some(rest) => format!("SET writeToken = :writeToken, {rest}"),
            None => format!("SET writeToken = :writeToken {update}"),
        };
        let mut call = client
            .update_item()
            .table_name(table)
            .key("pk", s(pk))
            .update_expression(update)
            .condition_expression(condition)
            .return_values(returning)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_values(":writeToken", s(&token));
        for (name, value) in values {
            call = call.expression_attribute_values(name, value);
        }
        match call.send().await {
            Ok(out) => Ok(Ok(out.attributes().cloned().unwrap_or_default())),
            Err(SdkError::ServiceError(e)) => match e.err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    let now = failed.item().cloned().unwrap_or_default();
                    let own = now.get("writeToken") == Some(&s(&token));
                    Ok(if own { Ok(now) } else { Err(now) })
                }
                // Whatever the table answered, the target is not decided yet: retried.
                _ => Err(transient(classify(&SdkError::ServiceError(e)))),
            },
            Err(e) => Err(transient(classify(&e))),
        }
    }

    /// MGN: holds `key`'s server for this invocation (`holder`) for 15 minutes before
    /// its terminate call, and notes the `intent`. `Lost`: another invocation holds it.
    pub async fn claim(&self, key: &Key, holder: &str, now: i64, intent: &Intent<'_>) -> Result<Written, ServiceError> {
        let mut values = vec![
            (":until", n(now + CLAIM_SECONDS)),
            (":me", s(holder)),
            (":now", n(now)),
            (":exp", n(self.expires(now))),
        ];
        values.extend(intent.values());
        values.push((":stale", n(now - STALE_SECONDS)));
        self.update(
            key.pk(),
            &format!("SET claimUntil = :until, claimedBy = :me, expiresAt = :exp, {INTENT_SET}"),
            &format!(
                "(attribute_not_exists(claimUntil) OR claimUntil < :now OR claimedBy = :me) AND ({NO_LIVE_CHAIN}) \
                 AND ({NO_OTHER_INTENT})"
            ),
            values,
        )
        .await
    }

    /// Notes the `intent` to terminate `key` before the call: a delivery that comes
    /// back after the call's answer was lost (its invocation died, or the answer never
    /// came) follows the target up even when it finds it gone (`recover_intent`).
    ///
    /// `Lost` while a live chain has yet to decide the target's last termination (it
    /// finished, or it would be found underway): a second one accepted now would have
    /// no chain of its own, so the call waits for that decision; and while another
    /// request's call is still to be answered (`NO_OTHER_INTENT`): were its intent
    /// replaced, a termination it got accepted, its answer lost, would go undecided.
    pub async fn intend(&self, key: &Key, intent: &Intent<'_>, now: i64) -> Result<Written, ServiceError> {
        let mut values = vec![(":exp", n(self.expires(now))), (":stale", n(now - STALE_SECONDS))];
        values.extend(intent.values());
        let condition = format!("({NO_LIVE_CHAIN}) AND ({NO_OTHER_INTENT})");
        self.update(key.pk(), &format!("SET expiresAt = :exp, {INTENT_SET}"), &condition, values).await
    }

    /// A call refused (never accepted): its intent goes, and an MGN claim with it.
    pub async fn release(&self, key: &Key, holder: &str, chain: &str) -> Result<Written, ServiceError> {
        self.update(
            key.pk(),
            &format!("REMOVE claimUntil, claimedBy, {INTENT_ATTRIBUTES}"),
            "claimedBy = :me OR intentChain = :chain",
            vec![(":me", s(holder)), (":chain", s(chain))],
        )
        .await
    }

    /// A call accepted whose chain another follows (or whose termination was decided):
    /// its intent goes; an MGN claim stays, lest the running job go unseen for a while.
    pub async fn answered(&self, key: &Key, chain: &str) -> Result<Written, ServiceError> {
        self.update(
            key.pk(),
            &format!("REMOVE {INTENT_ATTRIBUTES}"),
            "intentChain = :chain",
            vec![(":chain", s(chain))],
        )
        .await
    }

    /// Notes which targets the request of `token` (`Delivery::idempotency_token`) is
    /// about to call for, so that a later delivery of it finds them even when its
    /// lookups no longer do (a selection does not list what is gone).
    pub async fn note_intents(&self, token: &str, ids: &[String], now: i64) -> Result<Written, ServiceError> {
        self.update(
            format!("intents#{token}"),
            "SET expiresAt = :exp ADD targets :ids",
            "attribute_not_exists(targets) OR attribute_exists(targets)",
            vec![(":exp", n(self.expires(now))), (":ids", AttributeValue::Ss(ids.to_vec()))],
        )
        .await
    }

    /// The targets an earlier delivery of the request of `token` was about to call for.
    pub async fn intents_of(&self, token: &str, now: i64) -> Result<Vec<String>, ServiceError> {
        let found = self
            .write_raw(
                format!("intents#{token}"),
                "SET askedAt = :now",
                "attribute_exists(targets)",
                vec![(":now", n(now))],
                ReturnValue::AllOld,
            )
            .await?;
        Ok(match found.as_ref().and_then(|item| item.get("targets")) {
            Some(AttributeValue::Ss(ids)) => ids.clone(),
            _ => Vec::new(),
        })
    }

    /// A target whose call never answered (`intend`), found by a later delivery of the
    /// same request gone, finished or not listed: it gets `chain` (and a check, which
    /// finds what became of it) unless a chain came after the intent: one accepted by
    /// this or another request, which follows it. The item as it was, when it went in.
    pub async fn recover_intent(
        &self,
        key: &Key,
        chain: &str,
        due_at: i64,
        now: i64,
    ) -> Result<Option<Item>, ServiceError> {
        self.adopt_intent(key, chain, "attribute_exists(intentChain)", due_at, now).await
    }

    /// `chain` takes over `key`'s intent where `whose` holds and no chain came after it.
    async fn adopt_intent(
        &self,
        key: &Key,
        chain: &str,
        whose: &str,
        due_at: i64,
        now: i64,
    ) -> Result<Option<Item>, ServiceError> {
        self.write(
            key.pk(),
            &format!(
                "SET chainId = :chain, chainState = :pending, dueAt = :due, acceptedAt = intentAccepted, \
                 acceptedFrom = intentFrom, expiresAt = :exp REMOVE {INTENT_ATTRIBUTES}, {DECISION_ATTRIBUTES}, jobId, recordId"
            ),
            &format!(
                "{whose} AND (attribute_not_exists(chainId) OR (attribute_exists(decision) AND decidedAt < intentAt))"
            ),
            vec![(":chain", s(chain)), (":pending", s("pending")), (":due", n(due_at)), (":exp", n(self.expires(now)))],
            ReturnValue::AllOld,
        )
        .await
    }

    /// A watch of `chain` come back for `key` (`Check::is_watch`): the target is the
    /// watch's to follow, as `chain`'s own check, when the intent `chain` noted is still
    /// there and the service shows a sign of the termination (`seen`): the invocation
    /// that was to follow it died, or its call's answer never came. Or when `chain` was
    /// written and its check never came (it was never sent): the chain itself says the
    /// call was accepted. Or when this very watch (`message_id`) went on or decided
    /// before its invocation died: it redoes that (`check_end`). Or when another message
    /// of `chain` decided and never published it (`Ended::Unannounced`). `Lost` otherwise: the
    /// call was followed up, refused, or never went in, and the watch ends without effect;
    /// with no sign, the intent `chain` noted goes (its call was never accepted).
    pub async fn watch(
        &self,
        key: &Key,
        chain: &str,
        message_id: &str,
        seen: bool,
        due_at: i64,
        now: i64,
    ) -> Result<Written, ServiceError> {
        if seen && self.adopt_intent(key, chain, "intentChain = :chain", due_at, now).await?.is_some() {
            return Ok(Written::Won);
        }
        // No sign of its call: it was never accepted, and its intent no longer holds
        // other requests back.
        if !seen {
            self.update(
                key.pk(),
                &format!("REMOVE {INTENT_ATTRIBUTES}"),
                "intentChain = :chain",
                vec![(":chain", s(chain))],
            )
            .await?;
        }
        self.update(
            key.pk(),
            "SET expiresAt = :exp",
            "chainId = :chain AND ((chainState = :pending AND attribute_not_exists(decision)) \
             OR checkMsg = :msg OR decidedMsg = :msg \
             OR (attribute_exists(decision) AND attribute_not_exists(announcedAt)))",
            vec![
                (":chain", s(chain)),
                (":pending", s("pending")),
                (":msg", s(message_id)),
                (":exp", n(self.expires(now))),
            ],
        )
        .await
    }

    /// Starts `start.chain` for a target found on its way out or just accepted. It goes
    /// in unless a `live` chain owns the target: a `pending` one may never have been
    /// sent, so the next delivery that finds the target on its way out takes it over
    /// (were it sent after all, its check finds another chain and ends without effect).
    /// A decided target starts afresh only for a new termination of this invocation's
    /// own; one found on its way out was decided already.
    pub async fn start_chain(&self, start: &ChainStart, now: i64) -> Result<Started, ServiceError> {
        let mut update = format!(
            "SET chainId = :chain, chainState = :pending, dueAt = :due, acceptedAt = :at, acceptedFrom = :source, \
             expiresAt = :exp REMOVE {DECISION_ATTRIBUTES}, {INTENT_ATTRIBUTES}"
        );
        let mut values = vec![
            (":chain", s(&start.chain)),
            (":pending", s("pending")),
            (":due", n(start.due_at)),
            (":at", s(&start.accepted_at)),
            (":source", s(&start.source)),
            (":exp", n(self.expires(now))),
        ];
        // The ids of an earlier termination's job or record do not carry over.
        match &start.job_id {
            Some(job) => {
                update = update.replacen(" REMOVE", ", jobId = :job REMOVE", 1);
                values.push((":job", s(job)));
            }
            None => update.push_str(", jobId"),
        }
        match &start.record_id {
            Some(record) => {
                update = update.replacen(" REMOVE", ", recordId = :record REMOVE", 1);
                values.push((":record", s(record)));
            }
            None => update.push_str(", recordId"),
        }
        let started = if start.fresh {
            // Never this chain's own item again: its check may have adopted and decided
            // it already, were this write late.
            values.push((":stale", n(now - STALE_SECONDS)));
            let fresh = "attribute_not_exists(chainId) OR ((attribute_exists(decision) OR chainState = :pending \
                         OR dueAt < :stale) AND chainId <> :chain)";
            // The same record answered again (a Service Catalog token reused by a
            // redelivery returns the record it started) is no new termination: the
            // decision it has stands.
            match (&start.job_id, &start.record_id) {
                (Some(_), _) => format!("({fresh}) AND NOT (attribute_exists(decision) AND jobId = :job)"),
                (None, Some(_)) => format!("({fresh}) AND NOT (attribute_exists(decision) AND recordId = :record)"),
                (None, None) => fresh.to_owned(),
            }
        } else {
            let found = "attribute_not_exists(chainId) OR (chainState = :pending AND attribute_not_exists(decision))";
            // A decision not yet published stays until it is (`announced`), or an hour.
            if start.job_id.is_some() || start.record_id.is_some() {
                values.push((":stale", n(now - STALE_SECONDS)));
            }
            let published = "(attribute_exists(announcedAt) OR decidedAt < :stale)";
            // Found on its way out in a job or record other than the one decided: a later
            // termination (after a failed one), whose answer this invocation never had.
            match (&start.job_id, &start.record_id) {
                // An item with no id (a check adopted the target) may well have decided this
                // very job or record: it is not taken for another.
                (Some(_), _) => {
                    format!(
                        "{found} OR (attribute_exists(decision) AND {published} AND attribute_exists(jobId) AND jobId <> :job)"
                    )
                }
                (None, Some(_)) => format!(
                    "{found} OR (attribute_exists(decision) AND {published} AND attribute_exists(recordId) AND recordId <> :record)"
                ),
                (None, None) => found.to_owned(),
            }
        };
        // A job or record decided once is never followed up again, whatever the item
        // has been through since: a redelivery whose reused token answers with a record
        // decided two terminations ago would otherwise take over a later chain still
        // pending, whose own termination would then never be decided.
        let condition = match (&start.job_id, &start.record_id) {
            (Some(_), _) => format!("({started}) AND NOT contains(decidedIds, :job)"),
            (None, Some(_)) => format!("({started}) AND NOT contains(decidedIds, :record)"),
            (None, None) => started,
        };
        let written = self.write(start.key.pk(), &update, &condition, values, ReturnValue::UpdatedOld).await?;
        Ok(match written {
            None => Started::Lost,
            Some(old) => Started::Won { previous: old.get("chainId").map(str::to_owned) },
        })
    }

    /// A target found gone whose item still names a `pending` chain and no decision:
    /// that chain's check may never have been sent, so this one takes it over and
    /// checks (finding it gone, it confirms). The item as it is now, when it went in.
    pub async fn recover(&self, key: &Key, chain: &str, due_at: i64) -> Result<Option<Item>, ServiceError> {
        self.write(
            key.pk(),
            "SET chainId = :chain, dueAt = :due",
            "attribute_exists(chainId) AND chainState = :pending AND attribute_not_exists(decision)",
            vec![(":chain", s(chain)), (":due", n(due_at)), (":pending", s("pending"))],
            ReturnValue::AllOld,
        )
        .await
    }

    /// A chain this invocation took over but whose check it could not send gives the
    /// target back to the chain it took it from, whose check may well be on its way.
    pub async fn revert(&self, key: &Key, mine: &str, previous: &str) -> Result<Written, ServiceError> {
        self.update(
            key.pk(),
            "SET chainId = :previous",
            "chainId = :mine AND attribute_not_exists(decision)",
            vec![(":previous", s(previous)), (":mine", s(mine))],
        )
        .await
    }

    /// A check of `chain` for `key`, ending as `end`: it goes in only when the chain
    /// still owns the target (a target whose chain was never written is adopted), and
    /// no copy of this check went on or decided before. The same message delivered
    /// again (its message id: later, with a higher receive count, or at once, a
    /// duplicate SQS handed out with the same), after its write went in but before what
    /// followed it was published, is not a copy: it is the check itself, come back
    /// because its invocation did not finish (a duplicate cannot tell, and SQS deletes
    /// the message when either copy settles). Going on, it redoes its write; having
    /// decided, it gets what it decided then (`Ended::Decided`), to publish it as it was.
    pub async fn check_end(
        &self,
        key: &Key,
        check: &CheckOf<'_>,
        end: &CheckEnd,
        now: i64,
    ) -> Result<Ended, ServiceError> {
        let owned = "(attribute_not_exists(chainId) OR chainId = :chain)";
        let mut values = vec![
            (":chain", s(check.chain)),
            (":msg", s(check.message_id)),
            (":receive", n(i64::try_from(check.receive_count).unwrap_or(i64::MAX))),
            (":accepted", s(check.accepted_at)),
            (":exp", n(self.expires(now))),
        ];
        let set = "SET chainId = :chain, acceptedAt = if_not_exists(acceptedAt, :accepted), expiresAt = :exp";
        let (update, condition) = match end {
            CheckEnd::Again { due_at } => {
                values.extend([(":live", s("live")), (":due", n(*due_at)), (":attempt", n(i64::from(check.attempt)))]);
                (
                    format!(
                        "{set}, chainState = :live, dueAt = :due, checkAttempt = :attempt, checkMsg = :msg, checkReceive = :receive"
                    ),
                    format!(
                        "{owned} AND attribute_not_exists(decision) AND (attribute_not_exists(checkAttempt) \
                         OR checkAttempt < :attempt \
                         OR (checkAttempt = :attempt AND checkMsg = :msg AND checkReceive < :receive))"
                    ),
                )
            }
            CheckEnd::Decided { decision, error, of } => {
                values.extend([(":decision", s(*decision)), (":now", n(now))]);
                let mut update = format!(
                    "{set}, decision = :decision, decidedAt = :now, decidedMsg = :msg, decidedReceive = :receive"
                );
                if let Some(error) = error {
                    update.push_str(", decisionError = :error");
                    values.push((":error", s(error)));
                }
                // Every job or record ever decided, not only the last, is kept: a token
                // reused much later answers with its old record (`start_chain`), and a
                // later chain of the target may find it again. None is decided twice.
                let mut condition = format!("{owned} AND attribute_not_exists(decision)");
                match of {
                    Some(of) => {
                        update.push_str(", decidedOf = :ofOne ADD decidedIds :of");
                        values.push((":of", AttributeValue::Ss(vec![of.clone()])));
                        values.push((":ofOne", s(of)));
                        condition.push_str(" AND NOT contains(decidedIds, :ofOne)");
                    }
                    // Whatever an earlier termination's decision named is not this one's.
                    None => update.push_str(" REMOVE decidedOf"),
                }
                (update, condition)
            }
        };
        let written = self.write_or_item(key.pk(), &update, &condition, values, ReturnValue::None).await?;
        // An end that did not go in may be this very check's decision, made before its
        // invocation died (even when it would wait now: the target changed since).
        Ok(match written {
            Ok(_) => Ended::Won,
            Err(old) => decided_before(old, check),
        })
    }

    /// The decision `message` of `chain` wrote on `item` (`Key::pk`) is published: a new
    /// termination of the target may start (`NO_LIVE_CHAIN`).
    pub async fn announced(&self, item: &str, chain: &str, message: &str, now: i64) -> Result<Written, ServiceError> {
        self.update(
            item.to_owned(),
            "SET announcedAt = :now",
            "chainId = :chain AND decidedMsg = :msg",
            vec![(":now", n(now)), (":chain", s(chain)), (":msg", s(message))],
        )
        .await
    }

    /// A dead-letter record about to be published (`identity`: the record's
    /// `DeadLetterRecord::identity`), first built at `failed_at` from the `receive`th
    /// delivery. `None` when an earlier delivery of the same message published the same
    /// record already: a batch redelivered because its invocation died after the record
    /// went out. An attempt that died before marking it published leaves it unpublished:
    /// the next one publishes it again, as the first built it (`firstFailedAt`,
    /// `firstReceive`), so that what may go out twice is the one record twice.
    pub async fn record_unpublished(
        &self,
        identity: &str,
        failed_at: &str,
        receive: Option<u64>,
        now: i64,
    ) -> Result<Option<Item>, ServiceError> {
        let mut update =
            "SET askedAt = :now, expiresAt = :exp, firstFailedAt = if_not_exists(firstFailedAt, :failedAt)".to_owned();
        let mut values = vec![(":now", n(now)), (":exp", n(now + RECORD_SECONDS)), (":failedAt", s(failed_at))];
        if let Some(receive) = receive {
            update.push_str(", firstReceive = if_not_exists(firstReceive, :receive)");
            values.push((":receive", n(i64::try_from(receive).unwrap_or(i64::MAX))));
        }
        self.write(
            format!("record#{identity}"),
            &update,
            "attribute_not_exists(publishedAt)",
            values,
            ReturnValue::AllNew,
        )
        .await
    }

    /// The record of `identity` is in the dead-letter queue.
    pub async fn record_published(&self, identity: &str, now: i64) -> Result<Written, ServiceError> {
        self.update(
            format!("record#{identity}"),
            "SET publishedAt = :now, expiresAt = :exp",
            "attribute_not_exists(publishedAt)",
            vec![(":now", n(now)), (":exp", n(now + RECORD_SECONDS))],
        )
        .await
    }

    /// The item of `key`, as it is now (`teardown status`).
    pub async fn get(&self, key: &Key) -> Result<Option<Item>, ServiceError> {
        let (Some(client), Some(table)) = (&self.client, &self.table) else { return Ok(None) };
        let out = client
            .get_item()
            .table_name(table)
            .key("pk", s(key.pk()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| transient(classify(&e)))?;
        Ok(out.item().map(|attributes| item(Some(attributes))))
    }
}
