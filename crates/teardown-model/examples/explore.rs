//! Explores one configuration and prints what it found, for the evidence:
//!
//!   cargo run --release -p teardown-model --example explore -- SERVICE [faults crash(0|1) duplicate lost-send-and-delay until max-states requests max-receives]
//!
//! SERVICE is workspaces, mgn or catalog.

use std::time::Instant;

use stateright::{Checker, Model};
use teardown_model::world::Kinds;
use teardown_model::{Lifecycle, Service};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let service = match args.first().map(String::as_str) {
        Some("mgn") => Service::Mgn,
        Some("catalog") => Service::ServiceCatalog,
        _ => Service::WorkSpaces,
    };
    let number = |i: usize, default: i64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let mut model = Lifecycle::new(service);
    model.faults = number(1, 1) as u8;
    model.kinds = Kinds {
        crash: number(2, 1) == 1,
        duplicate: number(3, 1) == 1,
        lost_send: number(4, 1) == 1,
        delay: number(4, 1) == 1,
        slow: number(4, 1) == 1 || std::env::var_os("SLOW").is_some(),
        unasked: number(4, 1) == 1,
    };
    model.until = number(5, model.until);
    model.requests = vec![false; number(7, 2) as usize];
    model.max_receives = number(8, model.max_receives as i64) as u8;
    model.failed_before = std::env::var_os("FAILED_BEFORE").is_some();
    let started = Instant::now();
    let checker = model.checker().threads(2).target_state_count(number(6, 50_000_000) as usize).spawn_bfs().join();
    println!(
        "{service:?}: {} states, {} unique, depth {}, {:?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed()
    );
    for (name, path) in checker.discoveries() {
        let actions = path.clone().into_actions();
        println!("discovery: {name}: {} steps", actions.len());
        if name != "a termination is confirmed" {
            let verbose = std::env::var_os("VERBOSE").is_some();
            for (state, action) in path.into_vec() {
                if verbose {
                    println!(
                        "  now {} item {:?}\n    target {:?} queue {:?}\n    running {:?}",
                        state.now,
                        state.item.phase,
                        state.target,
                        state
                            .queue
                            .iter()
                            .map(|m| (m.id, &m.body, m.receives, m.visible_at, m.in_flight))
                            .collect::<Vec<_>>(),
                        state.running.iter().map(|r| (&r.body, &r.pc)).collect::<Vec<_>>()
                    );
                }
                let running: Vec<_> = state.running.iter().map(|r| format!("{}:{:?}", r.msg, r.body)).collect();
                println!(
                    "  t{} v{} {:?} | {:?} | jobs {:?} | running {running:?} -> {action:?}",
                    state.now,
                    state.version,
                    phase(&state.item.phase),
                    state.target.view,
                    state.jobs.iter().map(|j| j.state).collect::<Vec<_>>()
                );
                if action.is_none() {
                    println!("  ledger {:?}", state.ledger);
                }
            }
        }
    }
}

fn phase(phase: &teardown_core::lifecycle::Phase) -> String {
    use teardown_core::lifecycle::Phase;
    match phase {
        Phase::Idle => "Idle".into(),
        Phase::Calling(c) => format!("Calling({} {} since {} open {})", c.by.token, c.call, c.since, c.open),
        Phase::Following(f) => format!("Following(e{} by {} last {:?} due {})", f.epoch, f.by.token, f.last, f.due),
        Phase::Decided(d) => format!("Decided(e{} {:?} pub {})", d.epoch, d.decision.verdict, d.published),
    }
}
