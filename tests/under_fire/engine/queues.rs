//! The SQS stand-in: the request queues (standard and FIFO) and the dead-letter
//! queue, as the function's `SendMessage` / `SendMessageBatch` reach them, and the
//! event source that hands their messages to the function as Lambda's SQS event
//! source mapping would: batches of up to 10, a visibility timeout, redelivery of
//! batch item failures, redrive after `maxReceiveCount`, FIFO groups in order, and
//! duplicate deliveries at a set rate (SQS is at least once).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::rng::Rng;

pub const ACCOUNT: &str = "123456789012";
pub const STANDARD: &str = "teardown-requests";
pub const FIFO: &str = "teardown-requests.fifo";
pub const DLQ: &str = "teardown-dlq";
/// The request queues' `maxReceiveCount` (and the function's `MAX_RECEIVES`).
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// Who sends what the ledger puts on the queues itself: a person, not the function.
pub const OPERATOR: &str = "AIDAEXAMPLEOPERATOR0";

pub fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Clone, Debug)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub sender: String,
    pub sent_ms: u64,
    pub group: Option<String>,
    pub attributes: Value,
    pub seq: u64,
    visible_at: Instant,
    pub receives: u32,
    first_receive_ms: Option<u64>,
    in_flight: bool,
    /// Which receive is current: an answer for an older one changes nothing.
    delivery: u64,
}

/// One message as handed to the function, and which receive it was.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub queue: &'static str,
    pub id: String,
    pub delivery: u64,
    /// A second copy of a message already in flight (SQS's at-least-once).
    pub duplicate: bool,
    pub record: Value,
}

#[derive(Default)]
pub struct Stats {
    pub sent_by_function: BTreeMap<&'static str, u64>,
    pub settled: u64,
    pub redelivered: u64,
    pub duplicates: u64,
    pub redriven: Vec<(String, String)>,
}

pub struct Queues {
    queues: BTreeMap<&'static str, Vec<Message>>,
    ghosts: Vec<Delivery>,
    next_seq: u64,
    /// Real milliseconds per second of queue time (delays and visibility timeouts).
    ms_per_second: f64,
    visibility: Duration,
    duplicate_rate: f64,
    rng: Rng,
    /// Every message ever stored in a request queue, by id: it must end settled or redriven.
    pub stored: Vec<String>,
    pub ended: HashSet<String>,
    pub records: Vec<Value>,
    pub stats: Stats,
    /// What became of each message (stored, received, settled, failed, redriven), by
    /// id, with its body: read next to a violation (`TEARDOWN_FIRE_ITEMS`).
    pub trace: BTreeMap<String, (String, Vec<String>)>,
    /// How many deliveries of each message ended with their invocation killed.
    pub killed: std::collections::HashMap<String, u32>,
    started: Instant,
}

impl Queues {
    pub fn new(compress: f64, duplicate_rate: f64, seed: u64) -> Queues {
        let mut queues = BTreeMap::new();
        queues.insert(STANDARD, Vec::new());
        queues.insert(FIFO, Vec::new());
        let ms_per_second = 1000.0 / compress;
        Queues {
            queues,
            ghosts: Vec::new(),
            next_seq: 0,
            ms_per_second,
            // The template's: 6 × the function's timeout (60 s), compressed like every delay.
            visibility: Duration::from_millis((360.0 * ms_per_second) as u64),
            duplicate_rate,
            rng: Rng(seed),
            stored: Vec::new(),
            ended: HashSet::new(),
            records: Vec::new(),
            stats: Stats::default(),
            trace: BTreeMap::new(),
            killed: std::collections::HashMap::new(),
            started: Instant::now(),
        }
    }

    pub fn queue_of(url: &str) -> Option<&'static str> {
        match url.rsplit('/').next()? {
            STANDARD => Some(STANDARD),
            FIFO => Some(FIFO),
            DLQ => Some(DLQ),
            _ => None,
        }
    }

    /// Stores one message; `delay_s` is in queue seconds. Records go to the log.
    #[allow(clippy::too_many_arguments)]
    pub fn store(
        &mut self,
        queue: &'static str,
        id: String,
        body: String,
        sender: &str,
        delay_s: u64,
        group: Option<String>,
        attributes: Value,
    ) {
        if queue == DLQ {
            let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
            self.records.push(json!({"body": body, "attributes": attributes}));
            return;
        }
        self.next_seq += 1;
        let delay = Duration::from_millis((delay_s as f64 * self.ms_per_second) as u64);
        self.stored.push(id.clone());
        self.trace.insert(id.clone(), (body.clone(), Vec::new()));
        self.note(&id, format!("stored by {sender}, delay {delay_s} s"));
        if let Some(q) = self.queues.get_mut(queue) {
            q.push(Message {
                id,
                body,
                sender: sender.to_owned(),
                sent_ms: epoch_ms(),
                group,
                attributes,
                seq: self.next_seq,
                visible_at: Instant::now() + delay,
                receives: 0,
                first_receive_ms: None,
                in_flight: false,
                delivery: 0,
            });
        }
    }

    /// Nothing left anywhere: no message stored, delayed, in flight or duplicated.
    pub fn drained(&self) -> bool {
        self.ghosts.is_empty() && self.queues.values().all(Vec::is_empty)
    }

    pub fn note(&mut self, id: &str, what: String) {
        let at = self.started.elapsed().as_secs_f64();
        if let Some((_, events)) = self.trace.get_mut(id) {
            events.push(format!("{at:.3} {what}"));
        }
    }

    pub fn backlog(&self) -> usize {
        self.queues.values().map(Vec::len).sum()
    }

    /// Up to 10 messages of `queue` for one invocation.
    pub fn receive(&mut self, queue: &'static str) -> Vec<Delivery> {
        let now = Instant::now();
        let mut batch = Vec::new();
        if queue == STANDARD {
            while batch.len() < 10 {
                let Some(ghost) = self.ghosts.pop() else { break };
                batch.push(ghost);
            }
        }
        let Some(messages) = self.queues.get_mut(queue) else { return batch };
        let mut picked = Vec::new();
        let mut redrive = Vec::new();
        if queue == FIFO {
            // A group with a message in flight, or whose next message is not visible yet,
            // hands out nothing: its messages go in order, one batch at a time.
            let mut blocked: HashSet<String> = HashSet::new();
            for (i, m) in messages.iter().enumerate() {
                let group = m.group.clone().unwrap_or_default();
                if blocked.contains(&group) {
                    continue;
                }
                if m.in_flight || m.visible_at > now {
                    blocked.insert(group);
                    continue;
                }
                if batch.len() + picked.len() >= 10 {
                    break;
                }
                if m.receives >= MAX_RECEIVE_COUNT {
                    redrive.push(i);
                    blocked.insert(group);
                    continue;
                }
                picked.push(i);
            }
        } else {
            for (i, m) in messages.iter().enumerate() {
                if batch.len() + picked.len() >= 10 {
                    break;
                }
                if m.in_flight || m.visible_at > now {
                    continue;
                }
                if m.receives >= MAX_RECEIVE_COUNT {
                    redrive.push(i);
                } else {
                    picked.push(i);
                }
            }
        }
        let arn = format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}");
        for &i in &picked {
            let m = &mut messages[i];
            m.receives += 1;
            m.in_flight = true;
            m.delivery += 1;
            m.visible_at = now + self.visibility;
            if m.receives > 1 {
                self.stats.redelivered += 1;
            }
            let first = *m.first_receive_ms.get_or_insert_with(epoch_ms);
            let mut attributes = json!({
                "ApproximateReceiveCount": m.receives.to_string(),
                "SentTimestamp": m.sent_ms.to_string(),
                "SenderId": m.sender,
                "ApproximateFirstReceiveTimestamp": first.to_string(),
            });
            if let Some(group) = &m.group {
                attributes["MessageGroupId"] = json!(group);
                attributes["SequenceNumber"] = json!(format!("{:020}", m.seq));
                attributes["MessageDeduplicationId"] = json!(m.id);
            }
            let record = json!({
                "messageId": m.id, "receiptHandle": format!("{}#{}", m.id, m.delivery), "body": m.body,
                "attributes": attributes, "messageAttributes": m.attributes, "md5OfBody": "",
                "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1"
            });
            let delivery = Delivery { queue, id: m.id.clone(), delivery: m.delivery, duplicate: false, record };
            let what = format!("received #{} (delivery {})", m.receives, m.delivery);
            if let Some((_, events)) = self.trace.get_mut(&m.id) {
                events.push(format!("{:.3} {what}", self.started.elapsed().as_secs_f64()));
            }
            if queue == STANDARD && self.rng.chance(self.duplicate_rate) {
                self.stats.duplicates += 1;
                self.ghosts.push(Delivery { duplicate: true, ..delivery.clone() });
            }
            batch.push(delivery);
        }
        for i in redrive.into_iter().rev() {
            let m = messages.remove(i);
            self.ended.insert(m.id.clone());
            if let Some((_, events)) = self.trace.get_mut(&m.id) {
                events.push(format!("{:.3} redriven", self.started.elapsed().as_secs_f64()));
            }
            self.stats.redriven.push((m.id, m.body));
        }
        for d in batch.iter().filter(|d| d.duplicate) {
            let what = format!("received again, a duplicate of delivery {}", d.delivery);
            self.note(&d.id.clone(), what);
        }
        batch
    }

    /// What the invocation answered: `failed` are its batch item failures (every
    /// message when the invocation itself failed).
    pub fn complete(&mut self, batch: &[Delivery], failed: &HashSet<String>) {
        for d in batch {
            let what = if failed.contains(&d.id) { "failed" } else { "answered settled" };
            self.note(
                &d.id.clone(),
                format!("{what} (delivery {}{})", d.delivery, if d.duplicate { ", duplicate" } else { "" }),
            );
            let Some(messages) = self.queues.get_mut(d.queue) else { continue };
            let Some(i) = messages.iter().position(|m| m.id == d.id) else { continue };
            let current = messages[i].in_flight && messages[i].delivery == d.delivery && !d.duplicate;
            if failed.contains(&d.id) {
                if current {
                    // Visible again once the visibility timeout of this receive runs out.
                    messages[i].in_flight = false;
                }
                continue;
            }
            // A delete with any valid receipt handle deletes the message.
            if current || d.duplicate || !messages[i].in_flight {
                let m = messages.remove(i);
                self.ended.insert(m.id);
                self.stats.settled += 1;
            }
        }
    }
}
