//! The transition function: one event on one item, at one moment, under one target's
//! rules. Each arm is a row of the reference's transition table.

use super::{
    Acted, Answer, Arrived, Calling, Calls, Decided, Decision, Effect, Event, Following, Hold, Item, Next, Phase,
    Requester, Rules, Seconds, Seen, Status, Step, Verdict,
};
use crate::confirm;

/// Steps `item` by `event` at `now`. Pure: the same arguments give the same step.
/// For an event that carries a look, `now` is when the look began.
pub fn step(item: &Item, event: &Event, now: Seconds, rules: &Rules) -> Step {
    let mut step = transition(item, event, now, rules);
    if step.item != *item {
        step.item.changed_at = Some(now);
    }
    step
}

fn transition(item: &Item, event: &Event, now: Seconds, rules: &Rules) -> Step {
    let stale = !item.older_than(now);
    match event {
        // A request or watch whose look may predate the item's last write (a write that
        // raced it, or a copy's) judges nothing: it comes back and looks again.
        Event::Request { dry_run: false, .. } | Event::Watch { .. } if stale => {
            same(item, vec![Effect::Hold(busy(rules))])
        }
        Event::Request { by, seen, dry_run: true, .. } => look_only(item, by, seen, now, rules),
        Event::Request { by, call, seen, dry_run: false } => request(item, &Asker { by, call }, seen, now, rules),
        Event::Answer { by, call, answer } => answered(item, &Asker { by, call }, answer, now, rules),
        Event::Check { check, status } => checked(item, check, status, now, rules),
        Event::Watch { by, seen, last_delivery } => watched(item, by, seen, *last_delivery, now, rules),
        Event::Published { epoch } => published(item, *epoch),
    }
}

/// A request's invocation: which request, and which call it would make.
struct Asker<'a> {
    by: &'a Requester,
    call: &'a str,
}

fn same(item: &Item, effects: Vec<Effect>) -> Step {
    Step { item: item.clone(), effects }
}

fn with_phase(item: &Item, phase: Phase, effects: Vec<Effect>) -> Step {
    Step { item: Item { phase, ..item.clone() }, effects }
}

/// A dry run changes nothing: it reports what a real request would find.
fn look_only(item: &Item, by: &Requester, seen: &Seen, now: Seconds, rules: &Rules) -> Step {
    let report = match &item.phase {
        Phase::Following(f) => underway(f.epoch, &f.by, f.accepted_at, by),
        _ if *seen == Seen::Gone => Effect::Gone,
        Phase::Calling(c) if c.held(now, rules) => Effect::Hold(busy(rules)),
        _ => Effect::WouldCall,
    };
    same(item, vec![report])
}

fn request(item: &Item, asker: &Asker, seen: &Seen, now: Seconds, rules: &Rules) -> Step {
    match &item.phase {
        Phase::Idle => fresh(item, asker, seen, now, rules),
        Phase::Decided(d) if d.published => fresh(item, asker, seen, now, rules),
        Phase::Decided(d) => unpublished(item, d, false, false, now, rules),
        Phase::Calling(c) if c.holds(asker.by, now, rules) => held_call(item, c, asker, seen, now, rules),
        Phase::Calling(c) => match adoptable(item, seen.went_in_since(&c.before)) {
            Some(job) => adopt_for(item, &c.by, job, asker.by, now, rules),
            // Its own request come back calls again; what its earlier call did may not show
            // (a WorkSpace already in ERROR), so a refusal now proves nothing.
            None if c.by.same(asker.by) && matches!(seen, Seen::Standing { .. }) => {
                calling(item, asker, seen.clone(), now, true)
            }
            None => fresh(item, asker, seen, now, rules),
        },
        Phase::Following(f) => following_asked(item, f, asker.by, now, rules),
    }
}

/// A target with nothing of teardown's under way.
fn fresh(item: &Item, asker: &Asker, seen: &Seen, now: Seconds, rules: &Rules) -> Step {
    let by = asker.by;
    match seen {
        Seen::Standing { .. } => calling(item, asker, seen.clone(), now, false),
        Seen::Gone => same(item, vec![Effect::Gone]),
        Seen::Leaving { job } => match adoptable(item, Some(job.clone())) {
            Some(job) => adopt_for(item, by, job, by, now, rules),
            // On its way out by a job already decided: nothing new to follow.
            None => same(item, vec![Effect::Underway { epoch: item.epoch, by: by.clone(), since: now, mine: false }]),
        },
    }
}

/// The call is written before it is made, by the invocation that makes it.
fn calling(item: &Item, asker: &Asker, before: Seen, now: Seconds, renewed: bool) -> Step {
    let calling =
        Calling { by: asker.by.clone(), call: asker.call.to_string(), since: now, before, open: true, renewed };
    with_phase(item, Phase::Calling(calling), vec![Effect::Call])
}

/// The request whose call is in flight (a copy of its message, or its redelivery before
/// the holder's bound) follows what its look shows went in, even a termination that has
/// failed since; else it may call again where the service takes the same call twice,
/// writing its own call first. Nobody else may call.
fn held_call(item: &Item, held: &Calling, asker: &Asker, seen: &Seen, now: Seconds, rules: &Rules) -> Step {
    if !held.by.same(asker.by) {
        return same(item, vec![Effect::Hold(busy(rules))]);
    }
    if let Some(job) = adoptable(item, seen.went_in_since(&held.before)) {
        return adopt_for(item, &held.by, job, asker.by, now, rules);
    }
    match rules.calls {
        Calls::Idempotent => calling(item, asker, held.before.clone(), now, true),
        Calls::Once => same(item, vec![Effect::Hold(Hold::ClaimHeld)]),
    }
}

fn busy(rules: &Rules) -> Hold {
    match rules.calls {
        Calls::Idempotent => Hold::ChainDeciding,
        Calls::Once => Hold::ClaimHeld,
    }
}

fn underway(epoch: u32, holder: &Requester, since: Seconds, asker: &Requester) -> Effect {
    Effect::Underway { epoch, by: holder.clone(), since, mine: holder.same(asker) }
}

/// Which job a termination seen going in would be followed by, unless that job was
/// decided already (a token reused much later answers with an old record).
fn adoptable(item: &Item, went_in: Option<Option<String>>) -> Option<Option<String>> {
    went_in.filter(|job| job.as_ref().is_none_or(|j| !item.decided_jobs.contains(j)))
}

/// A termination that went in becomes the next epoch, and its first check goes out.
fn adopt(item: &Item, by: &Requester, job: Option<String>, now: Seconds, rules: &Rules) -> Step {
    let epoch = item.epoch + 1;
    let first = next_check(epoch, 1, by, &job, now, now, rules);
    let following =
        Following { epoch, by: by.clone(), job, accepted_at: now, last: Acted::default(), due: now + first.delay };
    Step {
        item: Item { epoch, phase: Phase::Following(following), ..item.clone() },
        effects: vec![Effect::Send(first)],
    }
}

/// `adopt`, for a request that asked: it is told the target is underway (its own, or
/// `holder`'s).
fn adopt_for(
    item: &Item,
    holder: &Requester,
    job: Option<String>,
    asker: &Requester,
    now: Seconds,
    rules: &Rules,
) -> Step {
    let mut step = adopt(item, holder, job, now, rules);
    step.effects.insert(0, underway(item.epoch + 1, holder, now, asker));
    step
}

fn next_check(
    epoch: u32,
    attempt: u32,
    by: &Requester,
    job: &Option<String>,
    accepted_at: Seconds,
    now: Seconds,
    rules: &Rules,
) -> Next {
    let left = accepted_at + rules.bounds.confirm_within - now;
    let delay = confirm::delay_within(attempt, left) as Seconds;
    // An epoch's first check may go beside the write; every later one waits for it.
    Next { epoch, attempt, delay, by: by.clone(), job: job.clone(), accepted_at, beside: attempt == 1 }
}

/// Another request finds an epoch under way: it is skipped, or (its own) told so. A
/// chain whose check is long overdue is lost, and the asker sends its next check; the
/// epoch's own request come back before any check went on sends the first one again
/// (its invocation may have died before sending it).
fn following_asked(item: &Item, f: &Following, by: &Requester, now: Seconds, rules: &Rules) -> Step {
    let report = underway(f.epoch, &f.by, f.accepted_at, by);
    let lost = now > f.due + rules.bounds.check;
    let unsent = f.by.same(by) && f.last.attempt == 0;
    if !lost && !unsent {
        return same(item, vec![report]);
    }
    let next = next_check(f.epoch, f.last.attempt + 1, &f.by, &f.job, f.accepted_at, now, rules);
    let due = now + next.delay;
    with_phase(item, Phase::Following(Following { due, ..f.clone() }), vec![report, Effect::Send(next)])
}

/// A decision not yet published: its own message publishes it at once, as does any
/// message once its maker's invocation must be over, or on its last delivery; until
/// then the asker waits for it.
fn unpublished(item: &Item, d: &Decided, own: bool, last: bool, now: Seconds, rules: &Rules) -> Step {
    let maker_over = now >= d.decision.at + rules.bounds.call;
    let mut effects = Vec::new();
    if own || last || maker_over {
        effects.push(Effect::Publish(d.clone()));
    }
    if !own {
        effects.push(Effect::Hold(Hold::DecisionUnpublished));
    }
    same(item, effects)
}

fn answered(item: &Item, asker: &Asker, answer: &Answer, now: Seconds, rules: &Rules) -> Step {
    match (&item.phase, answer) {
        // Without an answer (or with a refusal that proves nothing) the caller lets go, and
        // its next delivery looks (and, where the service takes it, calls again).
        (Phase::Calling(c), answer) if c.call == asker.call => match answer {
            Answer::Accepted { job } => accepted(item, &c.by, job, now, rules),
            Answer::Refused if !c.renewed => with_phase(item, Phase::Idle, Vec::new()),
            // An earlier call may have gone in: only a look can tell.
            Answer::Refused | Answer::Unknown => with_phase(
                item,
                Phase::Calling(Calling { open: false, ..c.clone() }),
                vec![Effect::Hold(Hold::AnswerUnknown)],
            ),
        },
        // Its call went in though nothing holds the target: it is followed all the same.
        (Phase::Idle, Answer::Accepted { job }) => accepted(item, asker.by, job, now, rules),
        // A copy's answer (the copy that wrote last answers for the call), or one already
        // resolved by a look: nothing left to do.
        _ => same(item, Vec::new()),
    }
}

fn accepted(item: &Item, by: &Requester, job: &Option<String>, now: Seconds, rules: &Rules) -> Step {
    match adoptable(item, Some(job.clone())) {
        Some(job) => adopt(item, by, job, now, rules),
        None => with_phase(item, Phase::Idle, Vec::new()),
    }
}

fn checked(item: &Item, check: &Arrived, status: &Status, now: Seconds, rules: &Rules) -> Step {
    match &item.phase {
        Phase::Following(f) if f.epoch == check.epoch => {
            let current =
                check.attempt > f.last.attempt || (check.attempt == f.last.attempt && check.message == f.last.message);
            if current { act(item, f, check, status, now, rules) } else { same(item, Vec::new()) }
        }
        // The check proves its call was accepted, though the write that said so is
        // missing; while a copy of its request may still be calling, it waits for it.
        Phase::Calling(c) if check.epoch == item.epoch + 1 && c.by.same(&check.by) => {
            if c.holds(&check.by, now, rules) {
                same(item, vec![Effect::Hold(busy(rules))])
            } else {
                act(item, &from_check(check), check, status, now, rules)
            }
        }
        Phase::Idle if check.epoch == item.epoch + 1 => act(item, &from_check(check), check, status, now, rules),
        Phase::Decided(d) if d.epoch == check.epoch && !d.published => {
            unpublished(item, d, d.maker == check.message, check.last_delivery, now, rules)
        }
        Phase::Decided(d) if d.epoch == check.epoch => same(item, Vec::new()),
        _ => same(item, vec![Effect::Dropped]),
    }
}

fn from_check(check: &Arrived) -> Following {
    Following {
        epoch: check.epoch,
        by: check.by.clone(),
        job: check.job.clone(),
        accepted_at: check.accepted_at,
        last: Acted::default(),
        due: check.accepted_at,
    }
}

/// The epoch's current check acts on what the service said.
fn act(item: &Item, f: &Following, check: &Arrived, status: &Status, now: Seconds, rules: &Rules) -> Step {
    let decision = |verdict, reason: String, code: Option<String>, job: &Option<String>| Decision {
        verdict,
        reason,
        code,
        job: job.clone().or_else(|| f.job.clone()),
        at: now,
    };
    let too_late = now >= f.accepted_at + rules.bounds.confirm_within;
    match status {
        Status::Done { job } => {
            decide(item, f, check, decision(Verdict::Confirmed, "the termination is done".into(), None, job), rules)
        }
        Status::Failed { job, code, message } => {
            decide(item, f, check, decision(Verdict::Failed, message.clone(), Some(code.clone()), job), rules)
        }
        Status::Pending { why } if too_late => {
            decide(item, f, check, decision(Verdict::Unconfirmed, late(rules, why), None, &None), rules)
        }
        Status::Unasked { why } if check.last_delivery => decide(
            item,
            f,
            check,
            decision(Verdict::Unconfirmed, format!("could not be checked: {why}"), None, &None),
            rules,
        ),
        Status::Unasked { .. } => same(item, vec![Effect::Hold(Hold::CheckUnasked)]),
        Status::Pending { .. } => {
            let next = next_check(f.epoch, check.attempt + 1, &f.by, &f.job, f.accepted_at, now, rules);
            let last = Acted { attempt: check.attempt, message: check.message.clone() };
            let following = Following { last, due: now + next.delay, ..f.clone() };
            Step {
                item: Item { epoch: f.epoch, phase: Phase::Following(following), ..item.clone() },
                effects: vec![Effect::Send(next)],
            }
        }
    }
}

fn late(rules: &Rules, why: &str) -> String {
    confirm::not_confirmed_within(u64::try_from(rules.bounds.confirm_within).unwrap_or(0), why)
}

fn decide(item: &Item, f: &Following, check: &Arrived, decision: Decision, rules: &Rules) -> Step {
    let mut decided_jobs = item.decided_jobs.clone();
    if let Some(job) = &decision.job
        && !decided_jobs.contains(job)
    {
        decided_jobs.push(job.clone());
    }
    let decided_at = decision.at;
    let decided = Decided {
        epoch: f.epoch,
        by: f.by.clone(),
        accepted_at: f.accepted_at,
        decision,
        maker: check.message.clone(),
        published: false,
    };
    // Should its maker die before publishing, on its last delivery, this later check of the
    // epoch publishes the decision once the maker must be over.
    let backstop = Next {
        delay: confirm::LONGEST_DELAY as Seconds,
        beside: false,
        ..next_check(f.epoch, check.attempt + 1, &f.by, &f.job, f.accepted_at, decided_at, rules)
    };
    Step {
        item: Item { epoch: f.epoch, phase: Phase::Decided(decided.clone()), decided_jobs, ..item.clone() },
        effects: vec![Effect::Publish(decided), Effect::Send(backstop)],
    }
}

/// A watch resolves its own request's call once nobody can still be making it: by
/// looking. It also sends a first check its request never sent, and publishes a
/// decision of its epoch that nobody published.
fn watched(item: &Item, by: &Requester, seen: &Seen, last: bool, now: Seconds, rules: &Rules) -> Step {
    match &item.phase {
        Phase::Calling(c) if c.by.same(by) && c.holds(by, now, rules) => same(item, vec![Effect::Hold(busy(rules))]),
        Phase::Calling(c) if c.by.same(by) => match adoptable(item, seen.went_in_since(&c.before)) {
            Some(job) => adopt(item, &c.by, job, now, rules),
            None => with_phase(item, Phase::Idle, Vec::new()),
        },
        Phase::Following(f) if f.by.same(by) && f.last.attempt == 0 => {
            let next = next_check(f.epoch, 1, &f.by, &f.job, f.accepted_at, now, rules);
            same(item, vec![Effect::Send(next)])
        }
        Phase::Decided(d) if d.by.same(by) && !d.published => unpublished(item, d, false, last, now, rules),
        _ => same(item, Vec::new()),
    }
}

fn published(item: &Item, epoch: u32) -> Step {
    match &item.phase {
        Phase::Decided(d) if d.epoch == epoch && !d.published => {
            with_phase(item, Phase::Decided(Decided { published: true, ..d.clone() }), Vec::new())
        }
        _ => same(item, Vec::new()),
    }
}
