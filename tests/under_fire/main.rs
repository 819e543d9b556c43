//! The small, seeded run of the whole system under fire (docs/evidence.md, "Under
//! fire"): a few hundred messages, faults on every dependency, the function killed
//! at the crash points, with and without the state table. `scripts/ledger --all`
//! runs the large one.

#[path = "../support/mod.rs"]
mod support;

mod engine;

use engine::{Config, run};

fn bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_teardown"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_state_table_every_invariant_holds_under_fire() {
    let outcome = run(&Config::small(bin(), true)).await;
    println!("{}", outcome.ledger);
    assert!(outcome.violations.is_empty(), "{}\n{:#?}", outcome.ledger, outcome.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_state_table_the_weaker_invariants_hold_under_fire() {
    let outcome = run(&Config::small(bin(), false)).await;
    println!("{}", outcome.ledger);
    assert!(outcome.violations.is_empty(), "{}\n{:#?}", outcome.ledger, outcome.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn experiment() {
    let mut config = Config::small(bin(), std::env::var("FIRE_TABLE").is_ok());
    config.crash_rate = std::env::var("FIRE_CRASH").ok().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    config.after_faults = std::env::var("FIRE_AFTER").is_ok();
    let outcome = run(&config).await;
    println!("{}", outcome.ledger);
}
