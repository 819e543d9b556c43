//! What one invocation does, one action at a time: the handler's load → step → write →
//! act, with the step made by teardown-core's own transition function. Any action may be
//! the last (a kill); a write that loses its compare-and-set reads what won and steps again.

use teardown_core::lifecycle::{Answer, Arrived, Effect, Event, Item, Phase, Step};

use crate::world::{Body, Job, JobState, Pc, Run, View, World, requester};
use crate::{Lifecycle, Plant};

/// What the service does with one terminate call of a standing target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Accepted,
    Refused,
    /// It went in; the answer was lost (a timeout).
    AnswerLost,
    /// Nothing went in, and the caller cannot tell (a 5xx).
    Unavailable,
}

impl Lifecycle {
    /// The event an invocation steps after its look.
    fn event(&self, world: &World, run: &Run) -> Event {
        let last_delivery = run.receives >= self.max_receives;
        match &run.body {
            Body::Request { n, dry } => {
                Event::Request { by: requester(*n), call: run.call.clone(), seen: world.target.seen(), dry_run: *dry }
            }
            Body::Watch { n } => Event::Watch { by: requester(*n), seen: world.target.seen(), last_delivery },
            Body::Check { epoch, attempt, by, job, accepted_at } => {
                let check = Arrived {
                    epoch: *epoch,
                    attempt: *attempt,
                    message: run.msg.to_string(),
                    by: requester(*by),
                    job: job.clone(),
                    accepted_at: *accepted_at,
                    last_delivery,
                };
                Event::Check { status: world.target.status(&world.jobs, job), check }
            }
        }
    }

    /// The shipping transition function, with a planted bug when one is asked for.
    pub(crate) fn step(&self, item: &Item, event: &Event, now: i64) -> Step {
        let mut item = item.clone();
        if self.plant == Some(Plant::ForgetSeenBefore)
            && let Phase::Calling(calling) = &mut item.phase
        {
            calling.before = teardown_core::lifecycle::Seen::Standing { failed: None };
        }
        teardown_core::lifecycle::step(&item, event, now, &self.rules)
    }

    /// Steps `event` against what the invocation knows, and goes on to its sends or its write.
    fn stepped(&self, run: &mut Run, event: Event) {
        let step = self.step(&run.known.1, &event, run.now);
        // A step with nothing to send beside its write (or to plant there) goes straight to it.
        let planted = self.plant == Some(Plant::PublishBeforeWrite);
        let beside = step.effects.iter().any(|e| match e {
            Effect::Send(next) => next.beside,
            Effect::Call => true,
            Effect::Publish(_) => planted,
            _ => false,
        });
        run.pc = if beside { Pc::Beside { event, step } } else { Pc::Write { event, step } };
    }

    /// Loads the item and looks; a check's look may fail (`unasked`).
    pub(crate) fn look(&self, world: &mut World, i: usize, unasked: bool) {
        let mut event = self.event(world, &world.running[i]);
        if let (true, Event::Check { status, .. }) = (unasked, &mut event) {
            *status = teardown_core::lifecycle::Status::Unasked { why: "throttled".into() };
        }
        let run = &mut world.running[i];
        run.now = world.now;
        run.known = (world.version, world.item.clone());
        self.stepped(run, event);
    }

    /// The checks go out beside the write; before a call, the request's watch too.
    pub(crate) fn beside(&self, world: &mut World, i: usize) {
        let Pc::Beside { event, step } = world.running[i].pc.clone() else { return };
        for effect in &step.effects {
            match effect {
                Effect::Send(next) if next.beside => send_check(world, next),
                Effect::Call if self.plant != Some(Plant::NoWatch) => {
                    if let Body::Request { n, .. } = world.running[i].body {
                        world.send(Body::Watch { n }, self.watch_delay);
                    }
                }
                Effect::Publish(d) if self.plant == Some(Plant::PublishBeforeWrite) => {
                    world.publish(d.epoch, &d.decision, d.accepted_at);
                }
                _ => {}
            }
        }
        world.running[i].pc = Pc::Write { event, step };
    }

    /// The sends beside a write fail: a call (whose watch did not go out) is neither
    /// written nor made; any other write is made, and the message comes back. Sends
    /// after a write that fail leave the write as it is, and the message comes back.
    pub(crate) fn lose_sends(&self, world: &mut World, i: usize) {
        if let Pc::After(step) = world.running[i].pc.clone() {
            let run = &mut world.running[i];
            run.back = true;
            return self.then(run, step);
        }
        let Pc::Beside { event, step } = world.running[i].pc.clone() else { return };
        if step.effects.contains(&Effect::Call) {
            return self.finish(world, i, true);
        }
        let run = &mut world.running[i];
        run.back = true;
        let effects = step.effects.into_iter().filter(|e| !matches!(e, Effect::Send(n) if n.beside)).collect();
        run.pc = Pc::Write { event, step: Step { effects, ..step } };
    }

    /// The conditional write on the version the invocation read; when it loses, the
    /// invocation reads what won and steps again.
    pub(crate) fn write(&self, world: &mut World, i: usize) {
        let Pc::Write { event, step } = world.running[i].pc.clone() else { return };
        let run = &mut world.running[i];
        if step.item == run.known.1 {
            return self.act(run, step);
        }
        if world.version == run.known.0 || self.plant == Some(Plant::NoCompareAndSet) {
            if let Phase::Decided(d) = &step.item.phase
                && !world.ledger.written.iter().any(|(e, dec)| *e == d.epoch && *dec == d.decision)
            {
                world.ledger.written.push((d.epoch, d.decision.clone()));
            }
            world.version += 1;
            world.item = step.item.clone();
            run.known = (world.version, step.item.clone());
            return self.act(run, step);
        }
        run.known = (world.version, world.item.clone());
        self.stepped(run, event);
    }

    fn act(&self, run: &mut Run, step: Step) {
        run.back |= step.effects.iter().any(|e| matches!(e, Effect::Hold(_)));
        if step.effects.iter().any(|e| matches!(e, Effect::Send(n) if !n.beside)) {
            run.pc = Pc::After(step);
            return;
        }
        self.then(run, step);
    }

    /// The checks that wait for the write, once it went in.
    pub(crate) fn after(&self, world: &mut World, i: usize) {
        let Pc::After(step) = world.running[i].pc.clone() else { return };
        for effect in &step.effects {
            if let Effect::Send(next) = effect
                && !next.beside
            {
                send_check(world, next);
            }
        }
        self.then(&mut world.running[i], step);
    }

    fn then(&self, run: &mut Run, step: Step) {
        run.pc = Pc::Finish;
        for effect in step.effects {
            match effect {
                Effect::Call => run.pc = Pc::Call,
                Effect::Publish(d) => run.pc = Pc::Publish(Box::new(d)),
                _ => {}
            }
        }
    }

    pub(crate) fn publish(&self, world: &mut World, i: usize) {
        let Pc::Publish(d) = world.running[i].pc.clone() else { return };
        world.publish(d.epoch, &d.decision, d.accepted_at);
        world.running[i].now = world.now;
        self.stepped(&mut world.running[i], Event::Published { epoch: d.epoch });
    }

    /// The terminate call, checked against the item as it stands at that moment.
    pub(crate) fn call(&self, world: &mut World, i: usize, outcome: Outcome) {
        let Body::Request { n, dry } = world.running[i].body else { return };
        let by = requester(n);
        let call = world.running[i].call.clone();
        if !matches!(&world.item.phase, Phase::Calling(c) if c.by == by && c.call == call) {
            world.ledger.unwritten_calls += 1;
        }
        if self.rules.calls == teardown_core::lifecycle::Calls::Once && matches!(world.target.view, View::Leaving(_)) {
            world.ledger.second_calls += 1;
        }
        if dry {
            world.ledger.dry_calls += 1;
        }
        let answer = self.serve(world, n, outcome);
        // An answer is stepped when it came, not when the look began.
        world.running[i].now = world.now;
        self.stepped(&mut world.running[i], Event::Answer { by, call, answer });
    }

    fn serve(&self, world: &mut World, n: u8, outcome: Outcome) -> Answer {
        let job_of = |j: u8| self.has_jobs.then(|| crate::world::job_name(j));
        match world.target.view {
            View::Gone => Answer::Refused,
            View::Leaving(j) if !self.has_jobs || world.jobs[j as usize].token == Some(n) => {
                Answer::Accepted { job: job_of(j) }
            }
            View::Leaving(_) => Answer::Refused,
            View::Standing => match outcome {
                Outcome::Refused => Answer::Refused,
                Outcome::Unavailable => Answer::Unknown,
                Outcome::Accepted | Outcome::AnswerLost => {
                    let j = world.jobs.len() as u8;
                    let from_error = !self.has_jobs && world.target.failed_job.is_some();
                    world.jobs.push(Job { token: Some(n), state: JobState::Running, started: world.now, from_error });
                    world.target.view = View::Leaving(j);
                    if outcome == Outcome::Accepted { Answer::Accepted { job: job_of(j) } } else { Answer::Unknown }
                }
            },
        }
    }

    /// The invocation ends: its message is deleted, or comes back (dead-lettered after
    /// its last delivery).
    pub(crate) fn finish(&self, world: &mut World, i: usize, back: bool) {
        let run = world.running.remove(i);
        let Some(at) = world.queue.iter().position(|m| m.id == run.msg) else { return };
        if !back {
            world.queue.remove(at);
            return;
        }
        let msg = &mut world.queue[at];
        msg.in_flight = msg.in_flight.saturating_sub(1);
        if msg.in_flight > 0 {
            return;
        }
        if msg.receives >= self.max_receives {
            world.queue.remove(at);
            world.ledger.dead += 1;
        } else {
            msg.visible_at = world.now + self.visibility;
        }
    }
}

fn send_check(world: &mut World, next: &teardown_core::lifecycle::Next) {
    let body = Body::Check {
        epoch: next.epoch,
        attempt: next.attempt,
        by: next.by.token.as_bytes()[0] - b'A',
        job: next.job.clone(),
        accepted_at: next.accepted_at,
    };
    world.send(body, next.delay);
}
