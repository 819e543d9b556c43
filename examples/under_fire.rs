//! The large run of the whole system under fire (tests/under_fire has the engine and
//! the small seeded runs CI keeps). Run it with `scripts/ledger --all`; its options are
//! in `USAGE` (`--help` prints them).
//!
//! It prints the ledger and exits 1 when any invariant was broken.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/under_fire/engine/mod.rs"]
mod engine;

use std::path::PathBuf;
use std::process::exit;
use std::time::Duration;

const USAGE: &str = "usage: under_fire BINARY [--messages N] [--faults RATE] [--crashes RATE] \
[--duplicates RATE] [--later-failures RATE] [--stuck RATE] [--no-table] [--environments N] \
[--seed N] [--per-group N] [--groups N] [--timeouts]";

/// A mistyped option is the operator's slip, not a bug: say which, and how to call it.
fn refuse(why: &str) -> ! {
    eprintln!("under_fire: {why}\n{USAGE}");
    exit(2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    // The binary may be left out (options first): the release build is the default.
    let bin = args
        .next_if(|first| !first.starts_with('-'))
        .map_or_else(|| PathBuf::from("target/release/teardown"), PathBuf::from);
    let mut config = engine::Config::small(bin, true);
    config.messages = 10_000;
    config.real_groups = 12;
    config.per_group = 8;
    config.crash_rate = 0.02;
    config.limit = Duration::from_secs(3600);
    let rest: Vec<String> = args.collect();
    let mut i = 0;
    while i < rest.len() {
        let value = rest.get(i + 1).cloned().unwrap_or_default();
        let rate =
            || value.parse::<f64>().unwrap_or_else(|_| refuse(&format!("{} takes a number, not {value:?}", rest[i])));
        let count =
            || value.parse::<usize>().unwrap_or_else(|_| refuse(&format!("{} takes a count, not {value:?}", rest[i])));
        let mut flag = false;
        match rest[i].as_str() {
            "--messages" => config.messages = count(),
            "--faults" => config.fault_rate = rate(),
            "--crashes" => config.crash_rate = rate(),
            "--duplicates" => config.duplicate_rate = rate(),
            "--later-failures" => config.later_failure_rate = rate(),
            "--stuck" => config.stuck_rate = rate(),
            "--environments" => config.environments = count(),
            "--seed" => config.seed = count() as u64,
            "--per-group" => config.per_group = count(),
            "--groups" => config.real_groups = count(),
            "--no-table" => (config.state_table, flag) = (false, true),
            "--timeouts" => (config.timeouts, flag) = (true, true),
            "--help" | "-h" => {
                println!("{USAGE}");
                return;
            }
            other => refuse(&format!("unknown option {other}")),
        }
        i += if flag { 1 } else { 2 };
    }
    let outcome = engine::run(&config).await;
    println!("{}", outcome.ledger);
    let violations = outcome.violations();
    if !violations.is_empty() {
        println!("{} violations", violations.len());
        exit(1);
    }
}
