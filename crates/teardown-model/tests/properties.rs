//! The model check, bounded for CI: every property holds for each service, exhaustively
//! within each configuration's bounds, and each planted bug is caught by the property
//! named for it. The state counts are printed (`--nocapture`) for the evidence.

use std::collections::BTreeSet;
use std::time::Instant;

use stateright::{Checker, HasDiscoveries, Model};
use teardown_model::world::Kinds;
use teardown_model::{
    CALL_WRITTEN_FIRST, EVERY_TERMINATION_DECIDED, IDENTICAL, Lifecycle, NO_FALSE_DECISION, ONE_MGN_CALL, Outcome,
    Plant, Service,
};

fn explore(name: &str, model: Lifecycle, stop_at: Option<&'static str>) -> impl Checker<Lifecycle> {
    explore_to(name, model, stop_at, None)
}

fn explore_to(
    name: &str,
    model: Lifecycle,
    stop_at: Option<&'static str>,
    states: Option<usize>,
) -> impl Checker<Lifecycle> {
    let started = Instant::now();
    let mut builder = model.checker().threads(2);
    if let Some(property) = stop_at {
        builder = builder.finish_when(HasDiscoveries::AnyOf(BTreeSet::from([property])));
    }
    if let Some(states) = states {
        builder = builder.target_state_count(states);
    }
    let checker = builder.spawn_bfs().join();
    eprintln!(
        "{name}: {} states, {} unique, depth {}, {:.1?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed()
    );
    checker
}

/// Two requests racing for one target, every interleaving of their steps, the service's
/// every answer, and its terminations ending at any moment.
fn racing(service: Service) -> Lifecycle {
    Lifecycle { faults: 0, max_receives: 2, ..Lifecycle::new(service) }
}

/// One request, and one fault of any kind anywhere: a kill between any two actions, a
/// copy handed out twice, a send that fails, a message held back.
fn faulted(service: Service) -> Lifecycle {
    Lifecycle { requests: vec![false], faults: 1, kinds: Kinds::ALL, max_receives: 2, ..Lifecycle::new(service) }
}

/// Two requests racing, and one fault of any kind anywhere: past what CI can explore to
/// the end (over 40 million states), so breadth first to the first 3 million, every
/// interleaving up to the depth they reach.
#[test]
fn two_requests_race_for_an_mgn_server_with_a_fault_anywhere_breadth_first() {
    let model = Lifecycle { faults: 1, kinds: Kinds::ALL, max_receives: 2, ..Lifecycle::new(Service::Mgn) };
    explore_to("MGN, two requests, one fault, breadth first", model, None, Some(3_000_000)).assert_properties();
}

#[test]
fn two_requests_race_for_a_workspace() {
    explore("WorkSpaces, two requests", racing(Service::WorkSpaces), None).assert_properties();
}

#[test]
fn two_requests_race_for_an_mgn_server() {
    explore("MGN, two requests", racing(Service::Mgn), None).assert_properties();
}

#[test]
fn two_requests_race_for_a_provisioned_product() {
    explore("Service Catalog, two requests", racing(Service::ServiceCatalog), None).assert_properties();
}

#[test]
fn a_workspace_request_meets_a_fault_anywhere() {
    explore("WorkSpaces, one request, one fault", faulted(Service::WorkSpaces), None).assert_properties();
}

#[test]
fn an_mgn_request_meets_a_fault_anywhere() {
    explore("MGN, one request, one fault", faulted(Service::Mgn), None).assert_properties();
}

#[test]
fn a_workspace_already_in_error_is_never_decided_for_a_call_that_did_not_go_in() {
    let model = Lifecycle { failed_before: true, ..racing(Service::WorkSpaces) };
    explore("WorkSpaces in ERROR, two requests", model, None).assert_properties();
}

#[test]
fn a_dry_run_beside_a_real_request_never_calls() {
    let model = Lifecycle { requests: vec![true, false], ..racing(Service::Mgn) };
    explore("MGN, a dry run and a request", model, None).assert_properties();
}

#[test]
fn planted_without_the_compare_and_set_an_mgn_server_is_called_twice() {
    let model = racing(Service::Mgn).planted(Plant::NoCompareAndSet);
    let checker = explore("planted: no compare-and-set", model, Some(ONE_MGN_CALL));
    checker.assert_any_discovery(ONE_MGN_CALL);
}

#[test]
fn planted_without_the_compare_and_set_a_workspace_is_called_without_its_write() {
    let model = racing(Service::WorkSpaces).planted(Plant::NoCompareAndSet);
    explore("planted: no compare-and-set (WorkSpaces)", model, Some(CALL_WRITTEN_FIRST))
        .assert_any_discovery(CALL_WRITTEN_FIRST);
}

#[test]
fn planted_forgetting_the_look_before_the_call_decides_a_failure_that_never_happened() {
    let model = Lifecycle { failed_before: true, ..racing(Service::WorkSpaces) }.planted(Plant::ForgetSeenBefore);
    explore("planted: forget the look before", model, Some(NO_FALSE_DECISION)).assert_any_discovery(NO_FALSE_DECISION);
}

#[test]
fn planted_publishing_before_the_write_publishes_two_different_decisions() {
    let model = faulted(Service::WorkSpaces).planted(Plant::PublishBeforeWrite);
    explore("planted: publish before the write", model, Some(IDENTICAL)).assert_any_discovery(IDENTICAL);
}

#[test]
fn planted_calling_without_a_watch_leaves_a_termination_nobody_comes_back_for() {
    // The call went in, its answer was lost on the request's only delivery, and no watch
    // was sent: the termination is left undecided, and the liveness property says so.
    let model = Lifecycle {
        requests: vec![false],
        faults: 0,
        max_receives: 1,
        outcomes: vec![Outcome::AnswerLost],
        ..Lifecycle::new(Service::Mgn)
    };
    explore("with the watch", model.clone(), None).assert_properties();
    let model = model.planted(Plant::NoWatch);
    explore("planted: no watch", model, Some(EVERY_TERMINATION_DECIDED))
        .assert_any_discovery(EVERY_TERMINATION_DECIDED);
}
