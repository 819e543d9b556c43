//! The invariants, read from what the stand-ins accepted and stored (moto's
//! WorkSpaces answers, the MGN and Service Catalog stand-ins' jobs and records, the
//! events the bus took, the records the dead-letter queue took, what each queue
//! settled), never from the function's own report; and the ledger that prints them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::inventory::{Inventory, OUTSIDE, Service};
use super::traffic::{self, Sent};
use super::world::World;
use super::{Config, Outcome};

pub struct Run<'a> {
    pub config: &'a Config,
    pub inventory: &'a Inventory,
    pub sent: &'a [Sent],
    pub world: &'a World,
    pub not_sent: &'a [Value],
    pub invocations: u64,
    pub crashed_invocations: u64,
    pub elapsed: Duration,
    pub setup: Duration,
}

const FINAL: [&str; 3] = ["confirmed", "failed", "unconfirmed"];

/// The ids a request names, whatever its shape (input or select), as given.
fn ids_of(request: &Value) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let input = &request["input"];
    for w in input["TerminateWorkspaceRequests"].as_array().into_iter().flatten() {
        ids.extend(w["WorkspaceId"].as_str().map(str::to_owned));
    }
    for key in ["sourceServerIDs"] {
        for v in
            input[key].as_array().into_iter().flatten().chain(request["select"][key].as_array().into_iter().flatten())
        {
            ids.extend(v.as_str().map(str::to_owned));
        }
    }
    for v in request["select"]["ids"].as_array().into_iter().flatten() {
        ids.extend(v.as_str().map(str::to_owned));
    }
    for key in ["ProvisionedProductId", "ProvisionedProductName"] {
        ids.extend(input[key].as_str().map(str::to_owned));
    }
    ids
}

/// The record as content: without the moment it was written.
fn record_identity(body: &Value) -> String {
    let mut body = body.clone();
    if let Some(o) = body.as_object_mut() {
        o.remove("failedAt");
    }
    body.to_string()
}

/// An MGN job's start, its planned end (none: it never ends) and its id.
type JobSpan = (Instant, Option<Instant>, String);

/// `a 1, b 2`: a ledger line's counts by name.
fn counts<N: std::fmt::Display>(by: &BTreeMap<String, N>) -> String {
    by.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

struct Check {
    name: &'static str,
    checked: usize,
    violations: Vec<String>,
}

impl Check {
    fn new(name: &'static str) -> Check {
        Check { name, checked: 0, violations: Vec::new() }
    }
}

pub fn check(run: Run<'_>) -> Outcome {
    let Run { config, inventory, sent, world, not_sent, .. } = run;
    let resource = |service: Service, account: &str, id: &str| inventory.find(service, account, id);
    let canonical = |service: Service, account: &str, id: &str| {
        resource(service, account, id).map(|r| r.id.clone()).unwrap_or_else(|| id.to_owned())
    };

    // Every termination a service accepted: (account, service, id) → how many times.
    let mut accepted: BTreeMap<(String, Service, String), usize> = BTreeMap::new();
    let mut how: BTreeMap<(String, Service, String), Vec<String>> = BTreeMap::new();
    let mut jobs_by_server: HashMap<(String, String), Vec<JobSpan>> = HashMap::new();
    {
        let seen = world.seen.lock().expect("the stand-ins' log");
        for a in &seen.workspaces {
            *accepted.entry((a.account.clone(), a.service, a.id.clone())).or_default() += 1;
        }
        let mgn = world.mgn.lock().expect("the MGN stand-in");
        for job in &mgn.jobs {
            for server in &job.servers {
                *accepted.entry((job.account.clone(), Service::Mgn, server.clone())).or_default() += 1;
                how.entry((job.account.clone(), Service::Mgn, server.clone())).or_default().push(job.id.clone());
                jobs_by_server.entry((job.account.clone(), server.clone())).or_default().push((
                    job.created,
                    job.completes,
                    job.id.clone(),
                ));
            }
        }
        let catalog = world.catalog.lock().expect("the Service Catalog stand-in");
        for r in catalog.terminations() {
            *accepted.entry((r.account.clone(), Service::Catalog, r.product.clone())).or_default() += 1;
            how.entry((r.account.clone(), Service::Catalog, r.product.clone())).or_default().push(r.id.clone());
        }
    }
    let reachable = traffic::reachable(sent);

    let mut protected = Check::new("no protected target terminated");
    let mut outside_request = Check::new("no target outside its request terminated");
    let mut outside_account = Check::new("no target in an account not allowed terminated");
    let mut dry = Check::new("no dry-run chain terminated anything");
    for key @ (account, service, id) in accepted.keys() {
        for c in [&mut protected, &mut outside_request, &mut outside_account, &mut dry] {
            c.checked += 1;
        }
        let r = resource(*service, account, id);
        if r.is_some_and(|r| r.protected) {
            protected.violations.push(format!("{service:?} {account} {id} is protected"));
        }
        if !reachable.contains(key) {
            outside_request
                .violations
                .push(format!("{service:?} {account} {id}: no real request named or selected it"));
        }
        if account == OUTSIDE {
            outside_account.violations.push(format!("{service:?} {id} in {account}"));
        }
        if r.is_some_and(|r| inventory.dry_groups.contains(&r.group)) {
            dry.violations.push(format!("{service:?} {account} {id} (group {})", r.map_or("", |r| r.group.as_str())));
        }
    }

    let mut two_jobs = Check::new("no MGN server in two running terminate jobs");
    for ((account, server), jobs) in &mut jobs_by_server {
        two_jobs.checked += 1;
        jobs.sort_by_key(|j| j.0);
        for pair in jobs.windows(2) {
            let (first, second) = (&pair[0], &pair[1]);
            if first.1.is_none_or(|done| second.0 < done) {
                two_jobs.violations.push(format!("{account} {server}: {} while {} still ran", second.2, first.2));
            }
        }
    }

    // Final decisions: the events the bus took, and those the function logged as not sent.
    let mut decisions: BTreeMap<(String, Service, String), BTreeSet<String>> = BTreeMap::new();
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    let mut all_outcomes: BTreeMap<String, usize> = BTreeMap::new();
    {
        let seen = world.seen.lock().expect("the stand-ins' log");
        let details = seen.events.iter().map(|(_, d)| d.clone()).chain(not_sent.iter().cloned());
        for detail in details {
            let outcome = detail["outcome"].as_str().unwrap_or_default().to_owned();
            *all_outcomes.entry(outcome.clone()).or_default() += 1;
            if !FINAL.contains(&outcome.as_str()) {
                continue;
            }
            let Some(service) = detail["operation"].as_str().and_then(Service::of_operation) else { continue };
            let account = detail["account"].as_str().unwrap_or_default().to_owned();
            let id = canonical(service, &account, detail["id"].as_str().unwrap_or_default());
            let mut identity = detail.clone();
            if let Some(o) = identity.as_object_mut() {
                o.remove("auditEventNotSent");
            }
            if decisions.entry((account, service, id)).or_default().insert(identity.to_string()) {
                *by_outcome.entry(outcome).or_default() += 1;
            }
        }
    }
    let weaker = !config.state_table;
    let mut decided = Check::new(if weaker {
        "every accepted termination has at least one final decision"
    } else {
        "every accepted termination has exactly one final decision"
    });
    for (key @ (account, service, id), times) in &accepted {
        decided.checked += 1;
        let got = decisions.get(key).map_or(0, BTreeSet::len);
        let ok = if weaker { got >= *times } else { got == *times };
        if !ok {
            let seen = world.seen.lock().expect("the stand-ins' log");
            let said: Vec<String> = seen
                .events
                .iter()
                .map(|(_, d)| d)
                .chain(not_sent.iter())
                .filter(|d| {
                    d["account"] == account.as_str()
                        && canonical(*service, account, d["id"].as_str().unwrap_or_default()) == *id
                })
                .map(|d| {
                    format!(
                        "{}@{}:{} {}",
                        d["outcome"].as_str().unwrap_or("?"),
                        d["source"]["messageId"].as_str().unwrap_or("-"),
                        d["source"]["receiveCount"],
                        d["jobId"].as_str().or(d["recordId"].as_str()).unwrap_or("")
                    )
                })
                .collect();
            let queues = world.queues.lock().expect("the queues");
            let recorded: Vec<String> = queues
                .records
                .iter()
                .map(|r| &r["body"])
                .filter(|b| b["failedTargets"].as_array().into_iter().flatten().any(|t| t["id"] == id.as_str()))
                .map(|b| {
                    format!(
                        "{}@{}",
                        b["outcome"].as_str().unwrap_or("?"),
                        b["source"]["messageId"].as_str().unwrap_or("-")
                    )
                })
                .collect();
            drop(queues);
            decided.violations.push(format!(
                "{service:?} {account} {id}: accepted {times}× {:?}, {got} final decision(s); events {said:?}; records {recorded:?}; {} not sent",
                how.get(key).cloned().unwrap_or_default(),
                not_sent.len()
            ));
        }
    }
    for (key @ (account, service, id), set) in &decisions {
        if !accepted.contains_key(key) {
            decided.violations.push(format!("{service:?} {account} {id}: {} decision(s), never accepted", set.len()));
        }
    }

    let queues = world.queues.lock().expect("the queues");
    let mut records_by_message: HashMap<String, (BTreeSet<String>, usize)> = HashMap::new();
    let mut receives_by_message: HashMap<String, Vec<String>> = HashMap::new();
    let mut records_by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for r in &queues.records {
        let body = &r["body"];
        *records_by_outcome.entry(body["outcome"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        let id = body["source"]["messageId"].as_str().unwrap_or("?").to_owned();
        receives_by_message.entry(id.clone()).or_default().push(body["source"]["receiveCount"].to_string());
        let entry = records_by_message.entry(id).or_default();
        entry.0.insert(record_identity(body));
        entry.1 += 1;
    }
    let mut one_record = Check::new("every invalid message leaves exactly one record");
    let mut copies = 0;
    // The contract returns a FIFO message that was not worked (behind a failure of its
    // group) as it is, even on its last delivery: the queue's redrive puts it in the
    // dead-letter queue bare, as sent, and that is its one entry there.
    let redriven: HashSet<&str> = queues.stats.redriven.iter().map(|(id, _)| id.as_str()).collect();
    let mut bare = 0;
    // Killed on every delivery: no invocation ever ran to its end, so none could leave a
    // record, and SQS moved the message bare, as sent (so it would in AWS).
    let mut killed_every_time = 0;
    for s in sent.iter().filter(|s| s.kind.invalid()) {
        one_record.checked += 1;
        let (distinct, all) = records_by_message.get(&s.id).map(|(d, n)| (d.len(), *n)).unwrap_or((0, 0));
        copies += all.saturating_sub(distinct);
        if distinct == 0 && s.queue == super::queues::FIFO && redriven.contains(s.id.as_str()) {
            bare += 1;
            continue;
        }
        let killed = queues.killed.get(&s.id).copied().unwrap_or(0);
        if distinct == 0 && redriven.contains(s.id.as_str()) && killed >= super::queues::MAX_RECEIVE_COUNT {
            killed_every_time += 1;
            continue;
        }
        if distinct != 1 {
            let receives = receives_by_message.get(&s.id).cloned().unwrap_or_default().join(",");
            let bodies: Vec<String> = records_by_message
                .get(&s.id)
                .map(|(d, _)| d.iter().map(|b| b.chars().take(400).collect()).collect())
                .unwrap_or_default();
            one_record.violations.push(format!(
                "{} ({:?}, {}): {distinct} records, at receives {receives}: {bodies:?}",
                s.id, s.kind, s.queue
            ));
        }
    }

    let mut lost = Check::new("nothing lost: every message settled or dead-lettered");
    lost.checked = queues.stored.len();
    for id in queues.stored.iter().filter(|id| !queues.ended.contains(*id)) {
        lost.violations.push(format!("{id} never ended"));
    }
    if !queues.drained() {
        lost.violations.push(format!("{} messages still queued when the run stopped", queues.backlog()));
    }

    let mut retry = Check::new("every failed record's retryRequest names exactly its failed targets");
    for r in queues.records.iter().map(|r| &r["body"]).filter(|b| b["outcome"] == "failed") {
        retry.checked += 1;
        let service = r["request"]["operation"].as_str().and_then(Service::of_operation);
        let account = r["account"].as_str().unwrap_or(super::inventory::HUB).to_owned();
        let norm = |ids: BTreeSet<String>| -> BTreeSet<String> {
            ids.into_iter().map(|id| service.map_or(id.clone(), |s| canonical(s, &account, &id))).collect()
        };
        let named = norm(ids_of(&r["retryRequest"]));
        let failed = norm(
            r["failedTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["id"].as_str().map(str::to_owned))
                .collect(),
        );
        if named != failed || named.is_empty() {
            retry.violations.push(format!("retryRequest names {named:?}, failed targets {failed:?}"));
        }
    }

    // The ledger.
    let seen = world.seen.lock().expect("the stand-ins' log");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ledger (under fire): {} messages, seed {:#x}, fault rate {}, crash rate {}, duplicates {}, later failures {}, state table {}",
        sent.len(),
        config.seed,
        config.fault_rate,
        config.crash_rate,
        config.duplicate_rate,
        config.later_failure_rate,
        if config.state_table { "on" } else { "off" }
    );
    let _ = writeln!(
        out,
        "  {} execution environments; queue time {}× real time; run {:.1} s after {:.1} s of set-up",
        config.environments,
        config.compress,
        run.elapsed.as_secs_f64(),
        run.setup.as_secs_f64()
    );
    let _ = writeln!(out, "  messages sent by people");
    for (kind, n) in traffic::by_kind(sent) {
        let _ = writeln!(out, "    {:<32}{n}", format!("{kind:?}"));
    }
    let _ = writeln!(out, "  messages sent by the function");
    for (kind, n) in &queues.stats.sent_by_function {
        let _ = writeln!(out, "    {:<32}{n}", format!("{kind}"));
    }
    let _ = writeln!(out, "  invocations                       {}", run.invocations);
    let _ = writeln!(out, "    killed (SIGKILL, cold restart)  {}", run.crashed_invocations);
    for (point, n) in &seen.crashes {
        let _ = writeln!(out, "      {:<30}{n}", format!("{point:?}"));
    }
    let _ = writeln!(out, "  redeliveries                      {}", queues.stats.redelivered);
    let _ = writeln!(out, "  duplicate deliveries              {}", queues.stats.duplicates);
    let _ = writeln!(out, "  settled                           {}", queues.stats.settled);
    let _ = writeln!(
        out,
        "  redriven after {} receives         {}",
        super::queues::MAX_RECEIVE_COUNT,
        queues.stats.redriven.len()
    );
    let _ = writeln!(out, "  calls reaching the stand-ins      {}", seen.calls.values().sum::<u64>());
    let _ = writeln!(out, "  faults injected                   {}", seen.faults.values().sum::<u64>());
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_service: BTreeMap<String, u64> = BTreeMap::new();
    for ((service, fault), n) in &seen.faults {
        *by_kind.entry(format!("{fault:?}")).or_default() += n;
        *by_service.entry(service.clone()).or_default() += n;
    }
    let _ = writeln!(out, "    by kind     {}", counts(&by_kind));
    let _ = writeln!(out, "    by service  {}", counts(&by_service));
    let mut per_service: BTreeMap<String, usize> = BTreeMap::new();
    for ((_, service, _), n) in &accepted {
        *per_service.entry(format!("{service:?}")).or_default() += n;
    }
    let _ = writeln!(
        out,
        "  terminations accepted             {} ({})",
        accepted.values().sum::<usize>(),
        counts(&per_service)
    );
    let _ = writeln!(out, "  audit events by outcome           {}", counts(&all_outcomes));
    let _ = writeln!(out, "  final decisions (distinct)        {}", counts(&by_outcome));
    let _ = writeln!(
        out,
        "  dead-letter records               {} ({}; {copies} copies of a record already there)",
        queues.records.len(),
        counts(&records_by_outcome)
    );
    let _ = writeln!(out, "  invalid FIFO messages redriven bare, never worked (behind their group's failure): {bare}");
    let _ =
        writeln!(out, "  invalid messages redriven bare, every delivery killed before it ended: {killed_every_time}");
    let _ = writeln!(out, "  invariants");
    let checks = [protected, outside_request, outside_account, dry, two_jobs, decided, one_record, lost, retry];
    let mut violations = Vec::new();
    for c in &checks {
        violations.push((c.name, c.violations.clone()));
        let _ = writeln!(out, "    {:<70} {:>6} checked, {} violations", c.name, c.checked, c.violations.len());
        for v in c.violations.iter().take(5) {
            let _ = writeln!(out, "      {v}");
        }
    }
    Outcome { ledger: out, checks: violations }
}
