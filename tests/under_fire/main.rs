//! The small, seeded run of the whole system under fire (docs/evidence.md, "Under
//! fire"): a few hundred messages over the three services, faults on every
//! dependency (before and after the call took effect), duplicate deliveries and
//! terminations that fail later; with the state table, without it, and with the
//! function killed at the crash points. `scripts/ledger --all` runs the large one.

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
    let violations = outcome.violations();
    assert!(violations.is_empty(), "{}\n{violations:#?}", outcome.ledger);
}

/// Without the table, two invocations racing on one MGN server can both find no
/// running job: that is what the table's claims are for. One execution environment
/// (reserved concurrency 1) leaves the guards alone to hold, with the weaker
/// invariant for decisions (at least one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_state_table_the_weaker_invariants_hold_under_fire() {
    // Nor, without the table, does anything remember a call whose answer was lost:
    // when its termination is over before the redelivery, at least once cannot hold
    // (that is what the table's intents are for). Faults here come before the call.
    let config = Config { environments: 1, after_faults: false, ..Config::small(bin(), false) };
    let outcome = run(&config).await;
    println!("{}", outcome.ledger);
    let violations = outcome.violations();
    assert!(violations.is_empty(), "{}\n{violations:#?}", outcome.ledger);
}

/// Killed anywhere, it terminates nothing it must not, never twice, decides each
/// accepted termination exactly once, loses no message, and leaves one record per
/// invalid message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_anywhere_every_invariant_holds() {
    let config = Config { crash_rate: 0.05, seed: 0x00c4_a5e0_0000_0021, ..Config::small(bin(), true) };
    let outcome = run(&config).await;
    println!("{}", outcome.ledger);
    let crashes = outcome.ledger.lines().find(|l| l.contains("killed (SIGKILL")).unwrap_or_default().to_owned();
    assert!(!crashes.ends_with(" 0"), "the run killed the function at least once: {crashes}");
    let violations = outcome.violations();
    assert!(violations.is_empty(), "{}\n{violations:#?}", outcome.ledger);
}
