//! The whole deployed shape under fire: the function (the built binary, as a
//! Lambda custom runtime, in several execution environments at once) fed by an
//! SQS event source, reaching moto and the stand-ins through a proxy that injects
//! faults on every dependency and kills the calling function at the crash points.
//! The run ends when every queue is empty; the invariants are then read from what
//! the stand-ins accepted, not from anything the function reported.

pub mod catalog;
pub mod invariants;
pub mod inventory;
pub mod mgn;
pub mod queues;
pub mod traffic;
pub mod world;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Moto;
use crate::support::rng::Rng;
use inventory::{Inventory, MEMBER_A, MEMBER_B, Service, Shape};
use queues::{OPERATOR, Queues};
use world::{Env, Rates, World};

pub struct Config {
    pub bin: PathBuf,
    pub seed: u64,
    pub messages: usize,
    pub fault_rate: f64,
    pub crash_rate: f64,
    pub duplicate_rate: f64,
    pub later_failure_rate: f64,
    pub stuck_rate: f64,
    pub state_table: bool,
    pub environments: usize,
    /// How many seconds of queue time (delays, visibility timeouts, jobs) pass in one real second.
    pub compress: f64,
    pub real_groups: usize,
    pub dry_groups: usize,
    pub per_group: usize,
    pub timeouts: bool,
    /// Faults after a call took effect: its answer lost on the way back.
    pub after_faults: bool,
    /// Gives up (and says so) when the queues are not empty by then.
    pub limit: Duration,
}

impl Config {
    /// The small seeded run CI keeps.
    pub fn small(bin: PathBuf, state_table: bool) -> Config {
        Config {
            bin,
            seed: 0x00f1_4e00_0000_0021,
            messages: 300,
            fault_rate: 0.03,
            crash_rate: 0.0,
            duplicate_rate: 0.03,
            later_failure_rate: 0.1,
            stuck_rate: 0.0,
            state_table,
            environments: 3,
            compress: 100.0,
            real_groups: 4,
            dry_groups: 2,
            per_group: 4,
            timeouts: false,
            after_faults: true,
            limit: Duration::from_secs(150),
        }
    }
}

pub struct Outcome {
    pub ledger: String,
    /// Each invariant's name and its violations.
    pub checks: Vec<(&'static str, Vec<String>)>,
}

impl Outcome {
    /// Every violation, but of the invariants named in `except`.
    pub fn violations(&self) -> Vec<String> {
        self.checks.iter().flat_map(|(name, v)| v.iter().map(move |v| format!("{name}: {v}"))).collect()
    }
}

pub async fn run(config: &Config) -> Outcome {
    let mut rng = Rng(config.seed);
    let moto = Moto::start();
    let table = config.state_table.then(|| moto.table("teardown-state"));
    let shape = Shape {
        real_groups: config.real_groups,
        dry_groups: config.dry_groups,
        per_group: config.per_group,
        later_failure_rate: config.later_failure_rate,
        stuck_rate: config.stuck_rate,
    };
    let setup = Instant::now();
    let inventory = Inventory::make(&moto, &shape, &mut rng);
    let doomed_workspaces: HashSet<(String, String)> =
        inventory.resources.iter().filter(|r| r.service == Service::WorkSpaces && r.doomed).map(|r| r.key()).collect();
    let world = Arc::new(World::new(
        Queues::new(config.compress, config.duplicate_rate, rng.next()),
        mgn::Mgn::new(&inventory, config.compress),
        catalog::Catalog::new(&inventory, config.compress),
        Rates {
            fault: config.fault_rate,
            crash: config.crash_rate,
            timeouts: config.timeouts,
            after: config.after_faults,
        },
        rng.next(),
        doomed_workspaces,
    ));
    let endpoint = world.clone().serve(moto.endpoint.clone()).await;
    let queue_url = |name: &str| format!("{endpoint}/{}/{name}", queues::ACCOUNT);
    let mut vars: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.clone()),
        ("DLQ_URL".into(), queue_url(queues::DLQ)),
        ("REQUEST_QUEUE_URL".into(), queue_url(queues::STANDARD)),
        ("MAX_RECEIVES".into(), queues::MAX_RECEIVE_COUNT.to_string()),
        ("ALLOWED_ACCOUNTS".into(), format!("{MEMBER_A},{MEMBER_B}")),
        ("AUDIT_BUS".into(), "teardown-audit".into()),
        ("CONFIRM_WITHIN".into(), "300".into()),
    ];
    if let Some(table) = &table {
        vars.push(("STATE_TABLE".into(), table.clone()));
    }
    let not_sent = Arc::new(Mutex::new(Vec::<Value>::new()));
    for index in 0..config.environments {
        let env = Env::start(index, &config.bin, vars.clone(), not_sent.clone()).await;
        world.envs.lock().expect("environments").push(env);
    }

    let sent = traffic::generate(&inventory, config.messages, &mut rng);
    if let Ok(mut queues) = world.queues.lock() {
        for s in &sent {
            queues.store(s.queue, s.id.clone(), s.body.clone(), OPERATOR, 0, s.group.clone(), serde_json::json!({}));
        }
    }
    let setup = setup.elapsed();

    let started = Instant::now();
    let invocations = Arc::new(Mutex::new((0u64, 0u64)));
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let envs: Vec<Arc<Env>> = world.envs.lock().map(|e| e.clone()).unwrap_or_default();
    let pollers: Vec<_> = envs
        .into_iter()
        .map(|env| {
            let (world, invocations, busy) = (world.clone(), invocations.clone(), busy.clone());
            let limit = config.limit;
            tokio::spawn(async move { poll(env, world, invocations, busy, started, limit).await })
        })
        .collect();
    for p in pollers {
        let _ = p.await;
    }
    let elapsed = started.elapsed();
    world.stop();

    let (invoked, crashed_invocations) = invocations.lock().map(|i| *i).unwrap_or_default();
    let not_sent = not_sent.lock().map(|n| n.clone()).unwrap_or_default();
    let mut outcome = invariants::check(invariants::Run {
        config,
        inventory: &inventory,
        sent: &sent,
        world: &world,
        not_sent: &not_sent,
        invocations: invoked,
        crashed_invocations,
        elapsed,
        setup,
    });
    // TEARDOWN_FIRE_LOGS=DIR: what became of every message, next to the function's lines.
    if let (Some(dir), Ok(queues)) = (std::env::var_os("TEARDOWN_FIRE_LOGS"), world.queues.lock()) {
        let mut out = String::new();
        for (message, (body, events)) in &queues.trace {
            out.push_str(&format!("message {message}: {body}\n"));
            for event in events {
                out.push_str(&format!("  {event}\n"));
            }
        }
        let _ = std::fs::write(std::path::Path::new(&dir).join("queues.log"), out);
    }
    // TEARDOWN_FIRE_ITEMS=1: the state table's item of each target a decision is missing for.
    if let (Some(table), true) = (&table, world.diagnose) {
        for (name, violations) in &outcome.checks {
            for v in violations.iter().filter(|_| name.contains("final decision")) {
                let mut words = v.split_whitespace();
                let (service, account, id) =
                    (words.next(), words.next(), words.next().map(|i| i.trim_end_matches(':')));
                let operation = match service {
                    Some("Mgn") => "TerminateTargetInstances",
                    Some("Catalog") => "TerminateProvisionedProduct",
                    _ => "TerminateWorkspaces",
                };
                let pk = format!("{}#us-east-1#{operation}#{}", account.unwrap_or(""), id.unwrap_or(""));
                let item = moto.item(table, &pk).await;
                outcome.ledger.push_str(&format!("  item {pk}: {item}\n"));
                if let Ok(seen) = world.seen.lock() {
                    for line in seen.state_writes.get(&pk).into_iter().flatten() {
                        outcome.ledger.push_str(&format!("    {line}\n"));
                    }
                }
                // Every message that names the target, and what became of it.
                if let (Ok(queues), Some(id)) = (world.queues.lock(), id) {
                    for (message, (body, events)) in queues.trace.iter().filter(|(_, (b, _))| b.contains(id)) {
                        let body: String = body.chars().take(400).collect();
                        outcome.ledger.push_str(&format!("    message {message}: {body}\n"));
                        for event in events {
                            outcome.ledger.push_str(&format!("      {event}\n"));
                        }
                    }
                }
            }
        }
    }
    outcome
}

/// One execution environment's share of Lambda's event source: take a batch, invoke,
/// settle what it answered; a crashed function fails its batch and starts cold.
async fn poll(
    env: Arc<Env>,
    world: Arc<World>,
    invocations: Arc<Mutex<(u64, u64)>>,
    busy: Arc<std::sync::atomic::AtomicUsize>,
    started: Instant,
    limit: Duration,
) {
    use std::sync::atomic::Ordering;
    let mut turn = env.index;
    loop {
        turn += 1;
        let queue = if turn.is_multiple_of(2) { queues::STANDARD } else { queues::FIFO };
        busy.fetch_add(1, Ordering::SeqCst);
        let batch = world.queues.lock().map(|mut q| q.receive(queue)).unwrap_or_default();
        if batch.is_empty() {
            busy.fetch_sub(1, Ordering::SeqCst);
            let drained = world.queues.lock().map(|q| q.drained()).unwrap_or(true);
            if (drained && busy.load(Ordering::SeqCst) == 0) || started.elapsed() > limit {
                return;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
            continue;
        }
        let event = serde_json::json!({"Records": batch.iter().map(|d| d.record.clone()).collect::<Vec<_>>()});
        let answer = {
            let invoke = env.api.invoke(event, Duration::from_secs(60));
            tokio::pin!(invoke);
            loop {
                tokio::select! {
                    answer = &mut invoke => break Some(answer),
                    _ = tokio::time::sleep(Duration::from_millis(10)) => if env.crashed() { break None },
                }
            }
        };
        let failed: HashSet<String> = match &answer {
            Some(Ok(response)) => response["batchItemFailures"]
                .as_array()
                .map(|f| f.iter().filter_map(|x| x["itemIdentifier"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            _ => batch.iter().map(|d| d.id.clone()).collect(),
        };
        if let Ok(mut i) = invocations.lock() {
            i.0 += 1;
            if answer.is_none() {
                i.1 += 1;
            }
        }
        // Killed during this invocation, or just after it answered: a cold start next.
        if env.crashed() {
            env.spawn();
        }
        if let Ok(mut q) = world.queues.lock() {
            if answer.is_none() {
                for d in &batch {
                    q.note(&d.id, format!("its invocation killed (env {})", env.index));
                    if !d.duplicate {
                        *q.killed.entry(d.id.clone()).or_default() += 1;
                    }
                }
            }
            q.complete(&batch, &failed);
        }
        busy.fetch_sub(1, Ordering::SeqCst);
    }
}
