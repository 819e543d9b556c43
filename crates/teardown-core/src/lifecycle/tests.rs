//! The scenarios of the state table, each a step or a few on the transition function:
//! the specification, in microseconds.

use super::*;

const T0: Seconds = 1_800_000_000;

fn rules(calls: Calls) -> Rules {
    Rules { calls, bounds: Bounds::from_settings(60, 360, 5, 7200) }
}

fn ws() -> Rules {
    rules(Calls::Idempotent)
}

fn mgn() -> Rules {
    rules(Calls::Once)
}

fn a() -> Requester {
    Requester::new("token-a", "{\"kind\":\"sqs\"}")
}

fn b() -> Requester {
    Requester::new("token-b", "{\"kind\":\"direct\"}")
}

fn standing() -> Seen {
    Seen::Standing { failed: None }
}

fn in_error() -> Seen {
    Seen::Standing { failed: Some(Mark { job: None }) }
}

fn leaving(job: Option<&str>) -> Seen {
    Seen::Leaving { job: job.map(str::to_string) }
}

/// Each request's invocation makes its own call (`<token>-call`); a copy names another.
fn want(by: Requester, seen: Seen) -> Event {
    Event::Request { call: format!("{}-call", by.token), by, seen, dry_run: false }
}

fn answer(by: Requester, answer: Answer) -> Event {
    Event::Answer { call: format!("{}-call", by.token), by, answer }
}

fn arrived(epoch: u32, attempt: u32, message: &str, by: Requester) -> Arrived {
    Arrived { epoch, attempt, message: message.into(), by, job: None, accepted_at: T0, last_delivery: false }
}

fn check(arrived: Arrived, status: Status) -> Event {
    Event::Check { check: arrived, status }
}

fn pending() -> Status {
    Status::Pending { why: "TERMINATING".into() }
}

fn done() -> Status {
    Status::Done { job: None }
}

/// Runs `events` in order from a fresh item, each at its own time; returns the last step.
fn run(rules: &Rules, events: &[(Seconds, Event)]) -> Step {
    let mut last = Step { item: Item::default(), effects: Vec::new() };
    for (at, event) in events {
        last = step(&last.item, event, *at, rules);
    }
    last
}

fn calling_by_a(rules: &Rules, seen: Seen) -> Item {
    step(&Item::default(), &want(a(), seen), T0, rules).item
}

fn following_by_a(rules: &Rules) -> Item {
    run(rules, &[(T0, want(a(), standing())), (T0, answer(a(), Answer::Accepted { job: None }))]).item
}

fn sends(step: &Step) -> Vec<(u32, u32, Seconds)> {
    step.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(n) => Some((n.epoch, n.attempt, n.delay)),
            _ => None,
        })
        .collect()
}

fn publishes(step: &Step) -> Vec<Decided> {
    step.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Publish(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_request_for_a_standing_target_writes_calling_then_calls() {
    let step = step(&Item::default(), &want(a(), standing()), T0, &ws());
    assert_eq!(step.effects, vec![Effect::Call]);
    let Phase::Calling(c) = &step.item.phase else { panic!("not calling: {:?}", step.item) };
    assert_eq!((c.by.token.as_str(), c.since, c.open), ("token-a", T0, true));
    assert!(Effect::Call.waits_for_write());
}

#[test]
fn another_request_waits_while_a_call_is_in_flight() {
    for (rules, code) in [(ws(), Hold::ChainDeciding), (mgn(), Hold::ClaimHeld)] {
        let item = calling_by_a(&rules, standing());
        // Even one that finds the target on its way out: the holder's call is deciding it.
        for seen in [standing(), leaving(None), Seen::Gone] {
            let step = step(&item, &want(b(), seen), T0 + 5, &rules);
            assert_eq!(step.effects, vec![Effect::Hold(code)]);
            assert_eq!(step.item, item, "nothing written");
        }
    }
}

#[test]
fn the_same_request_calls_again_only_where_the_service_takes_a_second_call() {
    let copy = Event::Request { by: a(), call: "a-copy".into(), seen: standing(), dry_run: false };
    let item = calling_by_a(&ws(), standing());
    let again = step(&item, &copy, T0 + 1, &ws());
    assert_eq!(again.effects, vec![Effect::Call]);
    let Phase::Calling(c) = &again.item.phase else { panic!() };
    assert_eq!((c.call.as_str(), c.since), ("a-copy", T0 + 1), "the copy writes its own call before making it");
    let item = calling_by_a(&mgn(), standing());
    assert_eq!(step(&item, &copy, T0 + 1, &mgn()).effects, vec![Effect::Hold(Hold::ClaimHeld)]);
}

#[test]
fn a_refusal_of_a_renewed_call_proves_nothing_and_the_next_delivery_looks() {
    // Found by the model: A's call went in, A died before writing it; A's redelivery
    // called again, and the WorkSpace, gone by then, was refused. Idle would lose the
    // termination; the next delivery sees it gone and follows it.
    let r = ws();
    let copy = Event::Request { by: a(), call: "a-again".into(), seen: standing(), dry_run: false };
    let renewed = step(&calling_by_a(&r, standing()), &copy, T0 + 30, &r).item;
    let refused = Event::Answer { by: a(), call: "a-again".into(), answer: Answer::Refused };
    let after = step(&renewed, &refused, T0 + 31, &r);
    assert_eq!(after.effects, vec![Effect::Hold(Hold::AnswerUnknown)]);
    let next = step(&after.item, &want(a(), Seen::Gone), T0 + 60, &r);
    assert_eq!((next.item.epoch, sends(&next)), (1, vec![(1, 1, 30)]));
}

#[test]
fn its_own_request_come_back_after_the_holders_bound_calls_again_as_a_renewed_call() {
    let r = ws();
    let item = run(&r, &[(T0, want(a(), in_error())), (T0, answer(a(), Answer::Unknown))]).item;
    let again = Event::Request { by: a(), call: "a-again".into(), seen: in_error(), dry_run: false };
    let step = step(&item, &again, T0 + 400, &r);
    assert_eq!(step.effects, vec![Effect::Call]);
    let Phase::Calling(c) = &step.item.phase else { panic!("{:?}", step.item) };
    assert!(c.renewed, "what the earlier call did may not show: a refusal now proves nothing");
    let other = super::step(&item, &want(b(), in_error()), T0 + 400, &r);
    let Phase::Calling(c) = &other.item.phase else { panic!("{:?}", other.item) };
    assert!(!c.renewed);
}

#[test]
fn a_copys_answer_never_releases_the_call_another_copy_wrote_after_it() {
    // Found by the model: copy 1 wrote its call and was refused; copy 2 had written its
    // own call meanwhile and is calling. Copy 1's refusal must not leave the item idle.
    let r = ws();
    let copy = Event::Request { by: a(), call: "a-copy".into(), seen: standing(), dry_run: false };
    let item = step(&calling_by_a(&r, standing()), &copy, T0 + 1, &r).item;
    for first in [Answer::Refused, Answer::Unknown, Answer::Accepted { job: None }] {
        let step = step(&item, &answer(a(), first), T0 + 2, &r);
        assert_eq!(step, Step { item: item.clone(), effects: Vec::new() });
    }
    let accepted = Event::Answer { by: a(), call: "a-copy".into(), answer: Answer::Accepted { job: None } };
    assert_eq!(step(&item, &accepted, T0 + 2, &r).item.epoch, 1);
}

#[test]
fn an_accepted_call_starts_epoch_one_and_its_first_check() {
    let step = run(&ws(), &[(T0, want(a(), standing())), (T0 + 2, answer(a(), Answer::Accepted { job: None }))]);
    assert_eq!(step.item.epoch, 1);
    assert_eq!(sends(&step), vec![(1, 1, 30)]);
    let Phase::Following(f) = &step.item.phase else { panic!() };
    assert_eq!((f.accepted_at, f.due, f.last.attempt), (T0 + 2, T0 + 32, 0));
}

#[test]
fn a_refused_call_leaves_the_target_idle_for_the_next_request() {
    let step = run(&mgn(), &[(T0, want(a(), standing())), (T0, answer(a(), Answer::Refused))]);
    assert_eq!((step.item.phase.clone(), step.item.epoch), (Phase::Idle, 0));
    let next = super::step(&step.item, &want(b(), standing()), T0 + 1, &mgn());
    assert_eq!(next.effects, vec![Effect::Call]);
}

#[test]
fn one_unknown_answer_is_resolved_by_looking_at_the_next_delivery_not_by_a_clock() {
    // An MGN 5xx: the invocation lets go. Its jobs may show a moment late, so the server
    // is held for the call's bound (the function's timeout and a margin), which is
    // shorter than the queue's visibility timeout: the first redelivery looks.
    let r = mgn();
    let item = run(&r, &[(T0, want(a(), standing())), (T0, answer(a(), Answer::Unknown))]).item;
    assert!(r.bounds.call < 360, "the template's visibility timeout for a 60 s function");
    let early = step(&item, &want(a(), standing()), T0 + 30, &r);
    assert_eq!(early.effects, vec![Effect::Hold(Hold::ClaimHeld)]);
    let redelivered = T0 + 360;
    let no_job = step(&item, &want(a(), standing()), redelivered, &r);
    assert_eq!(no_job.effects, vec![Effect::Call], "no job lists the server: call again");
    let with_job = step(&item, &want(a(), leaving(Some("mgnjob-1"))), redelivered, &r);
    assert!(matches!(with_job.effects[0], Effect::Underway { epoch: 1, mine: true, .. }));
    assert_eq!(sends(&with_job), vec![(1, 1, 30)]);
}

#[test]
fn a_second_request_never_starts_a_second_chain_for_a_termination_in_flight() {
    // The double decision found from outside: B found the WorkSpace TERMINATING while
    // A's call was in flight. Now B waits, A's answer starts the only epoch, B is skipped.
    let r = ws();
    let item = calling_by_a(&r, standing());
    let b_first = step(&item, &want(b(), leaving(None)), T0 + 1, &r);
    assert_eq!(b_first.effects, vec![Effect::Hold(Hold::ChainDeciding)]);
    let item = step(&item, &answer(a(), Answer::Accepted { job: None }), T0 + 2, &r).item;
    let b_again = step(&item, &want(b(), leaving(None)), T0 + 400, &r);
    assert_eq!(b_again.effects, vec![Effect::Underway { epoch: 1, by: a(), since: T0 + 2, mine: false }]);
    assert_eq!(b_again.item, item);
}

#[test]
fn an_answer_that_comes_after_its_epoch_was_decided_starts_nothing() {
    let r = ws();
    let item = following_by_a(&r);
    let decided = step(&item, &check(arrived(1, 1, "m1", a()), done()), T0 + 40, &r).item;
    let late = step(&decided, &answer(a(), Answer::Accepted { job: None }), T0 + 41, &r);
    assert_eq!(late, Step { item: decided, effects: Vec::new() });
}

#[test]
fn a_failure_swallowed_by_a_crash_is_found_by_the_redelivery_and_decided() {
    // The call went in, the invocation died, the WorkSpace went to ERROR before the
    // message came back: the redelivery sees a failure that was not there before.
    let r = ws();
    let item = calling_by_a(&r, standing());
    // Found by the model: a redelivery before the holder's bound looks too.
    let soon =
        step(&item, &Event::Request { by: a(), call: "a-2".into(), seen: in_error(), dry_run: false }, T0 + 30, &r);
    assert_eq!(sends(&soon), vec![(1, 1, 30)]);
    let after = T0 + r.bounds.call;
    let found = step(&item, &want(a(), in_error()), after, &r);
    assert_eq!(sends(&found), vec![(1, 1, 30)]);
    assert!(found.effects.iter().all(|e| *e != Effect::Call), "never called again");
    let failed = Status::Failed { job: None, code: "ERROR".into(), message: "went to ERROR".into() };
    let decided = step(&found.item, &check(arrived(1, 1, "m1", a()), failed), after + 30, &r);
    assert_eq!(publishes(&decided)[0].decision.verdict, Verdict::Failed);
}

#[test]
fn a_service_catalog_failure_swallowed_by_a_crash_is_followed_by_its_record() {
    let r = ws();
    let before = Seen::Standing { failed: Some(Mark { job: Some("rec-old".into()) }) };
    let item = calling_by_a(&r, before);
    let now = Seen::Standing { failed: Some(Mark { job: Some("rec-new".into()) }) };
    let found = step(&item, &want(a(), now), T0 + r.bounds.call, &r);
    let Phase::Following(f) = &found.item.phase else { panic!("{:?}", found.item) };
    assert_eq!(f.job.as_deref(), Some("rec-new"));
}

#[test]
fn a_failure_that_was_already_there_is_never_decided() {
    // A WorkSpace already in ERROR; every call got a 503 (nothing went in). Its watch
    // finds it as it was: no epoch, no check, no decision.
    let r = ws();
    let item = run(&r, &[(T0, want(a(), in_error())), (T0, answer(a(), Answer::Unknown))]).item;
    let watch = Event::Watch { by: a(), seen: in_error(), last_delivery: false };
    let step = step(&item, &watch, T0 + 900, &r);
    assert_eq!((step.item.phase, step.item.epoch, step.effects), (Phase::Idle, 0, Vec::new()));
}

#[test]
fn a_look_older_than_the_items_last_write_judges_nothing() {
    // Found by the model: B looked (standing) before A's call went in; A's answer was
    // lost and A let go; B's step then took the target for one where nothing went in,
    // and called over A's termination, which failed undecided.
    let r = ws();
    let released = run(&r, &[(T0, want(a(), standing())), (T0 + 1, answer(a(), Answer::Unknown))]).item;
    let stale = step(&released, &want(b(), standing()), T0 + 1, &r);
    assert_eq!(stale, Step { item: released.clone(), effects: vec![Effect::Hold(Hold::ChainDeciding)] });
    // Found by the review: a look that began before the call went in but after the write
    // of `calling` passes that test; so another request waits out the call's bound even
    // once its caller let go, and only then judges by a look that must be newer.
    let soon = step(&released, &want(b(), standing()), T0 + 2, &r);
    assert_eq!(soon.effects, vec![Effect::Hold(Hold::ChainDeciding)]);
    // Looking again later, B sees A's termination and follows it instead of calling.
    let again = step(&released, &want(b(), leaving(None)), T0 + r.bounds.call, &r);
    assert!(matches!(again.effects[0], Effect::Underway { epoch: 1, mine: false, .. }), "{:?}", again.effects);
    assert!(!again.effects.contains(&Effect::Call));
}

#[test]
fn a_watch_follows_a_call_whose_invocation_died_after_it_went_in() {
    let r = mgn();
    let item = calling_by_a(&r, standing());
    let watch = Event::Watch { by: a(), seen: leaving(Some("mgnjob-7")), last_delivery: false };
    let early = step(&item, &watch, T0 + 10, &r);
    assert_eq!(early.effects, vec![Effect::Hold(Hold::ClaimHeld)], "its caller may still be calling");
    let found = step(&item, &watch, T0 + 900, &r);
    assert_eq!(sends(&found), vec![(1, 1, 30)]);
}

#[test]
fn a_watch_sends_the_first_check_its_request_never_sent_and_nothing_after_one_went_on() {
    let r = ws();
    let item = following_by_a(&r);
    let watch = Event::Watch { by: a(), seen: leaving(None), last_delivery: false };
    assert_eq!(sends(&step(&item, &watch, T0 + 900, &r)), vec![(1, 1, 30)]);
    let checked = step(&item, &check(arrived(1, 1, "m1", a()), pending()), T0 + 30, &r).item;
    assert_eq!(step(&checked, &watch, T0 + 900, &r).effects, Vec::new());
}

#[test]
fn a_copy_of_a_check_ends_without_effect_and_is_not_counted() {
    let r = ws();
    let item = following_by_a(&r);
    let first = step(&item, &check(arrived(1, 1, "m1", a()), pending()), T0 + 30, &r);
    assert_eq!(sends(&first), vec![(1, 2, 60)]);
    // Another message of attempt 1 (the check sent twice): absorbed.
    let copy = step(&first.item, &check(arrived(1, 1, "m1-copy", a()), pending()), T0 + 31, &r);
    assert_eq!(copy, Step { item: first.item.clone(), effects: Vec::new() });
}

#[test]
fn the_same_check_come_back_after_its_write_sends_its_next_check_again() {
    let r = ws();
    let first = step(&following_by_a(&r), &check(arrived(1, 1, "m1", a()), pending()), T0 + 30, &r);
    let again = step(&first.item, &check(arrived(1, 1, "m1", a()), pending()), T0 + 400, &r);
    assert_eq!(sends(&again), vec![(1, 2, 60)]);
}

#[test]
fn a_check_of_another_epoch_is_dropped_and_counted() {
    let r = ws();
    let decided = step(&following_by_a(&r), &check(arrived(1, 1, "m1", a()), done()), T0 + 30, &r).item;
    let published = step(&decided, &Event::Published { epoch: 1 }, T0 + 31, &r).item;
    let second = run_from(
        &published,
        &r,
        &[(T0 + 100, want(b(), standing())), (T0 + 100, answer(b(), Answer::Accepted { job: None }))],
    );
    assert_eq!(second.epoch, 2);
    let old = step(&second, &check(arrived(1, 2, "m2", a()), pending()), T0 + 130, &r);
    assert_eq!(old.effects, vec![Effect::Dropped]);
}

fn run_from(item: &Item, rules: &Rules, events: &[(Seconds, Event)]) -> Item {
    events.iter().fold(item.clone(), |item, (at, event)| step(&item, event, *at, rules).item)
}

#[test]
fn a_check_proves_its_call_went_in_when_the_write_after_the_call_is_missing() {
    let r = ws();
    let item = calling_by_a(&r, standing());
    let early = step(&item, &check(arrived(1, 1, "m1", a()), pending()), T0 + 30, &r);
    assert_eq!(early.effects, vec![Effect::Hold(Hold::ChainDeciding)], "a copy of its request may be calling");
    let step = step(&item, &check(arrived(1, 1, "m1", a()), pending()), T0 + r.bounds.call, &r);
    assert_eq!((step.item.epoch, sends(&step)), (1, vec![(1, 2, 60)]));
}

#[test]
fn a_decision_is_made_once_and_every_publication_is_identical() {
    let r = ws();
    let item = following_by_a(&r);
    let one = step(&item, &check(arrived(1, 1, "m1", a()), done()), T0 + 30, &r);
    // The same message handed out twice at once: the copy loses the compare-and-set and
    // steps again against what won: it publishes the same decision.
    let two = step(&one.item, &check(arrived(1, 1, "m1", a()), pending()), T0 + 31, &r);
    assert_eq!(publishes(&one), publishes(&two));
    assert_eq!(publishes(&one)[0].decision.verdict, Verdict::Confirmed);
    assert_eq!(decision_id("1#r#op#ws-1", 1), decision_id("1#r#op#ws-1", 1));
    assert_ne!(decision_id("1#r#op#ws-1", 1), decision_id("1#r#op#ws-1", 2));
}

#[test]
fn a_decision_sends_a_later_check_that_publishes_it_should_its_maker_die() {
    // Found by the review: a maker killed on its last delivery after writing its
    // decision left it unpublished for good. Its later check publishes it.
    let r = ws();
    let decided = step(&following_by_a(&r), &check(arrived(1, 1, "m1", a()), done()), T0 + 30, &r);
    let backstop: Vec<&Next> = decided
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(n) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(backstop.len(), 1);
    assert!(!backstop[0].beside && backstop[0].delay == 900 && backstop[0].attempt == 2);
    assert!(Effect::Send(backstop[0].clone()).waits_for_write());
    let later = Arrived { attempt: 2, message: "m2".into(), ..arrived(1, 1, "m1", a()) };
    let published = step(&decided.item, &check(later.clone(), pending()), T0 + 30 + r.bounds.call, &r);
    assert_eq!(publishes(&published), publishes(&decided), "the same decision");
    let after = step(&decided.item, &Event::Published { epoch: 1 }, T0 + 40, &r).item;
    assert_eq!(step(&after, &check(later, pending()), T0 + 930, &r).effects, Vec::new(), "published: nothing");
}

#[test]
fn a_checks_next_check_waits_for_its_write_and_an_epochs_first_may_go_beside_it() {
    // Found by the review: two copies of a check, each sending its next one beside a
    // write only one of them wins, forked the chain for the rest of the epoch.
    let r = ws();
    let accepted = run(&r, &[(T0, want(a(), standing())), (T0, answer(a(), Answer::Accepted { job: None }))]);
    let first = accepted.effects.iter().find_map(|e| match e {
        Effect::Send(n) => Some(n.clone()),
        _ => None,
    });
    assert!(first.is_some_and(|n| n.beside && n.attempt == 1));
    let next = step(&accepted.item, &check(arrived(1, 1, "m1", a()), pending()), T0 + 30, &r);
    assert!(next.effects.iter().all(|e| e.waits_for_write()), "{:?}", next.effects);
}

#[test]
fn an_unpublished_decision_holds_new_terminations_until_its_maker_must_be_over() {
    let r = ws();
    let decided = step(&following_by_a(&r), &check(arrived(1, 1, "m1", a()), done()), T0 + 30, &r).item;
    let early = step(&decided, &want(b(), standing()), T0 + 31, &r);
    assert_eq!(early.effects, vec![Effect::Hold(Hold::DecisionUnpublished)]);
    let late = step(&decided, &want(b(), standing()), T0 + 30 + r.bounds.call, &r);
    assert_eq!(publishes(&late).len(), 1);
    assert!(late.effects.contains(&Effect::Hold(Hold::DecisionUnpublished)));
    let published = step(&decided, &Event::Published { epoch: 1 }, T0 + 32, &r).item;
    assert_eq!(step(&published, &want(b(), standing()), T0 + 33, &r).effects, vec![Effect::Call]);
}

#[test]
fn a_stale_check_publishes_an_unpublished_decision_on_its_last_delivery() {
    let r = ws();
    let decided = step(&following_by_a(&r), &check(arrived(1, 2, "m2", a()), done()), T0 + 90, &r).item;
    let stale = arrived(1, 1, "m1", a());
    assert_eq!(
        step(&decided, &check(stale.clone(), pending()), T0 + 91, &r).effects,
        vec![Effect::Hold(Hold::DecisionUnpublished)]
    );
    let last = Arrived { last_delivery: true, ..stale };
    assert_eq!(publishes(&step(&decided, &check(last, pending()), T0 + 91, &r)).len(), 1);
}

#[test]
fn past_confirm_within_a_pending_check_decides_unconfirmed() {
    let r = ws();
    let item = following_by_a(&r);
    let late = step(&item, &check(arrived(1, 9, "m9", a()), pending()), T0 + 7200, &r);
    let d = &publishes(&late)[0];
    assert_eq!(d.decision.verdict, Verdict::Unconfirmed);
    assert!(d.decision.reason.contains("7200 s"), "{}", d.decision.reason);
}

#[test]
fn the_last_check_is_never_due_past_the_deadline() {
    let r = ws();
    let step = step(&following_by_a(&r), &check(arrived(1, 8, "m8", a()), pending()), T0 + 7000, &r);
    assert_eq!(sends(&step), vec![(1, 9, 200)]);
}

#[test]
fn a_check_that_cannot_ask_waits_and_on_its_last_delivery_is_unconfirmed() {
    let r = ws();
    let item = following_by_a(&r);
    let unasked = Status::Unasked { why: "throttled".into() };
    assert_eq!(
        step(&item, &check(arrived(1, 1, "m1", a()), unasked.clone()), T0 + 30, &r).effects,
        vec![Effect::Hold(Hold::CheckUnasked)]
    );
    let last = Arrived { last_delivery: true, ..arrived(1, 1, "m1", a()) };
    let ended = step(&item, &check(last, unasked), T0 + 30, &r);
    assert_eq!(publishes(&ended)[0].decision.verdict, Verdict::Unconfirmed);
}

#[test]
fn a_lost_chain_is_taken_over_by_the_next_request_that_finds_it() {
    let r = ws();
    let item = following_by_a(&r);
    let soon = step(&item, &want(b(), leaving(None)), T0 + 100, &r);
    assert_eq!(sends(&soon), Vec::<(u32, u32, Seconds)>::new());
    let lost_at = T0 + 30 + r.bounds.check + 1;
    let taken = step(&item, &want(b(), leaving(None)), lost_at, &r);
    assert_eq!(sends(&taken).len(), 1);
    assert!(matches!(taken.effects[0], Effect::Underway { mine: false, .. }));
}

#[test]
fn a_job_once_decided_is_never_followed_again() {
    let r = rules(Calls::Idempotent);
    let item =
        run(&r, &[(T0, want(a(), standing())), (T0, answer(a(), Answer::Accepted { job: Some("rec-1".into()) }))]).item;
    let decided = step(&item, &check(arrived(1, 1, "m1", a()), Status::Done { job: None }), T0 + 30, &r).item;
    let published = step(&decided, &Event::Published { epoch: 1 }, T0 + 31, &r).item;
    assert_eq!(published.decided_jobs, vec!["rec-1".to_string()]);
    // A token reused much later answers with the old record: nothing starts.
    let reused = run_from(
        &published,
        &r,
        &[(T0 + 100, want(b(), standing())), (T0 + 100, answer(b(), Answer::Accepted { job: Some("rec-1".into()) }))],
    );
    assert_eq!((reused.epoch, reused.phase), (1, Phase::Idle));
}

#[test]
fn a_dry_run_changes_nothing_and_never_calls() {
    let r = ws();
    for item in [Item::default(), calling_by_a(&r, standing()), following_by_a(&r)] {
        for seen in [standing(), leaving(None), Seen::Gone] {
            let step = step(&item, &Event::Request { by: b(), call: "b-dry".into(), seen, dry_run: true }, T0 + 1, &r);
            assert_eq!(step.item, item);
            assert!(!step.effects.contains(&Effect::Call));
        }
    }
}

#[test]
fn the_bounds_come_from_the_settings() {
    let b = Bounds::from_settings(60, 360, 5, 7200);
    assert_eq!((b.call, b.check, b.confirm_within), (120, 360 * 5 + 900 + 60, 7200));
    assert_eq!(Bounds::from_settings(5000, 1, 1, 1).call, 900 + 60, "no invocation outlives Lambda's longest timeout");
}

#[test]
fn an_item_survives_its_round_trip_through_json() {
    let r = ws();
    for item in [Item::default(), calling_by_a(&r, in_error()), following_by_a(&r)] {
        let text = serde_json::to_string(&item).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Item>(&text).ok(), Some(item));
    }
}
