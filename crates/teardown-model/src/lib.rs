//! A model checker over teardown's lifecycle (docs/reference.md, "State across
//! messages"). One target; requests, watches and checks on an SQS queue that delays,
//! hands a message out twice, and brings back what an invocation did not delete (up to
//! `max_receives`, then dead-letters it); invocations that may be killed between any two
//! actions; the item as a compare-and-set register; a service that accepts, refuses,
//! loses an answer, or is unavailable, and ends a termination later in success or in
//! failure. Every transition of the item is made by `teardown_core::lifecycle::step`,
//! the function the handler ships.
//!
//! The properties are named in [`properties`]; [`Plant`] plants the bugs the evidence
//! shows each property catching.

mod run;
pub mod world;

use stateright::{Model, Property};
use teardown_core::lifecycle::{Bounds, Calls, Item, Rules, Seconds};

pub use run::Outcome;
use world::{Body, Job, JobState, Kinds, Ledger, Msg, Pc, Run, Target, View, World};

/// The three services, as the lifecycle sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    WorkSpaces,
    Mgn,
    ServiceCatalog,
}

/// A bug planted to show that a property catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plant {
    /// Every write wins, whatever was written since the invocation read the item.
    NoCompareAndSet,
    /// The look before the call is forgotten: any failure seen later counts as new.
    ForgetSeenBefore,
    /// A decision is published before the write that fixes it.
    PublishBeforeWrite,
    /// A request calls without sending its watch first.
    NoWatch,
}

/// The model of one target under `service`.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    pub rules: Rules,
    pub has_jobs: bool,
    /// One request per entry; `true` for a dry run.
    pub requests: Vec<bool>,
    /// The target is already in a failed state (a WorkSpace in `ERROR`) before anyone calls.
    pub failed_before: bool,
    /// How many faults one path may meet, and of which kinds. Fewer than `max_receives`:
    /// delivery is fair (a message is never faulted on every one of its deliveries).
    pub faults: u8,
    pub kinds: Kinds,
    pub max_receives: u8,
    pub visibility: Seconds,
    pub watch_delay: Seconds,
    /// Time passes in ticks, up to this.
    pub tick: Seconds,
    pub until: Seconds,
    /// Outcomes of a call the service may choose among.
    pub outcomes: Vec<Outcome>,
    pub plant: Option<Plant>,
}

impl Lifecycle {
    /// Two requests and one fault of any kind: small enough for CI.
    pub fn new(service: Service) -> Self {
        let calls = if service == Service::Mgn { Calls::Once } else { Calls::Idempotent };
        Lifecycle {
            // Model seconds: a tick is 30 s, an invocation never spans one.
            rules: Rules { calls, bounds: Bounds { call: 60, check: 120, confirm_within: 150 } },
            has_jobs: service != Service::WorkSpaces,
            requests: vec![false, false],
            failed_before: false,
            faults: 1,
            kinds: Kinds::ALL,
            max_receives: 3,
            visibility: 30,
            watch_delay: 90,
            tick: 30,
            until: 480,
            outcomes: vec![Outcome::Accepted, Outcome::Refused, Outcome::AnswerLost, Outcome::Unavailable],
            plant: None,
        }
    }

    pub fn planted(self, plant: Plant) -> Self {
        Lifecycle { plant: Some(plant), ..self }
    }
}

/// What can happen next.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// SQS hands out message `id`.
    Deliver(u8),
    /// SQS hands out message `id` again while an invocation holds it.
    Duplicate(u8),
    /// Invocation `i` takes its next step (look, sends, write, publish, finish).
    Advance(usize),
    /// Invocation `i` makes its call, and the service answers so.
    Call(usize, Outcome),
    /// Invocation `i`'s sends report an error: the message comes back; a call waits for
    /// its watch, so nothing is called or written; checks are written for all that.
    LoseSend(usize),
    /// Invocation `i` is killed.
    Kill(usize),
    /// Invocation `i`, a check, cannot ask the service.
    Unasked(usize),
    /// The service ends job `j`, in success or in failure.
    End(u8, bool),
    /// Time passes (only between invocations: none outlives its timeout).
    Tick,
}

impl Model for Lifecycle {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        let mut jobs = Vec::new();
        let mut failed_job = None;
        if self.failed_before {
            jobs.push(Job { token: None, state: JobState::Failed, started: 0, from_error: false });
            failed_job = Some(0);
        }
        let mut world = World {
            now: 0,
            version: 0,
            item: Item::default(),
            target: Target { view: View::Standing, failed_job, has_jobs: self.has_jobs },
            jobs,
            queue: Vec::new(),
            running: Vec::new(),
            ledger: Ledger::default(),
            faults: self.faults,
            next_id: 0,
        };
        for (n, dry) in self.requests.iter().enumerate() {
            world.send(Body::Request { n: n as u8, dry: *dry }, 0);
        }
        vec![world]
    }

    fn actions(&self, world: &World, actions: &mut Vec<Action>) {
        for msg in &world.queue {
            if msg.in_flight == 0 && msg.visible_at <= world.now {
                actions.push(Action::Deliver(msg.id));
            }
            if msg.in_flight > 0 && world.faults > 0 && self.kinds.duplicate {
                actions.push(Action::Duplicate(msg.id));
            }
        }
        for (i, run) in world.running.iter().enumerate() {
            match &run.pc {
                Pc::Call if world.target.view == View::Standing => {
                    actions.extend(self.outcomes.iter().map(|o| Action::Call(i, *o)));
                }
                Pc::Call => actions.push(Action::Call(i, Outcome::Accepted)),
                Pc::Beside { .. } | Pc::After(_) if world.faults > 0 && self.kinds.lost_send => {
                    actions.extend([Action::Advance(i), Action::LoseSend(i)]);
                }
                _ => actions.push(Action::Advance(i)),
            }
            if world.faults > 0 && self.kinds.crash {
                actions.push(Action::Kill(i));
            }
            if world.faults > 0 && self.kinds.unasked && run.pc == Pc::Look && matches!(run.body, Body::Check { .. }) {
                actions.push(Action::Unasked(i));
            }
        }
        for (j, job) in world.jobs.iter().enumerate() {
            if job.state == JobState::Running {
                actions.extend([Action::End(j as u8, true), Action::End(j as u8, false)]);
            }
        }
        // Time passes between invocations, and while a message is visible only when SQS
        // may hold it back; while invocations run only when they may be slow, and then
        // once (none outlives its timeout, a tick).
        let visible = world.queue.iter().any(|m| m.in_flight == 0 && m.visible_at <= world.now);
        let idle = world.running.is_empty() && (!visible || (world.faults > 0 && self.kinds.delay));
        let slow = !world.running.is_empty()
            && world.faults > 0
            && self.kinds.slow
            && world.running.iter().all(|r| r.started == world.now);
        if (idle || slow) && self.next_time(world) <= self.until {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, last: &World, action: Action) -> Option<World> {
        let mut world = last.clone();
        match action {
            Action::Deliver(id) | Action::Duplicate(id) => {
                let msg = world.queue.iter_mut().find(|m| m.id == id)?;
                if matches!(action, Action::Deliver(_)) {
                    msg.receives += 1;
                } else {
                    world.faults -= 1;
                }
                msg.in_flight += 1;
                // A Lambda request id of its own: message, receive, copy.
                let call = format!("{}-{}-{}", msg.id, msg.receives, msg.in_flight);
                let run = self.run_of(msg, call, world.now);
                world.running.push(run);
            }
            Action::Advance(i) => self.advance(&mut world, i),
            Action::Call(i, outcome) => self.call(&mut world, i, outcome),
            Action::LoseSend(i) => {
                world.faults -= 1;
                self.lose_sends(&mut world, i);
            }
            Action::Kill(i) => {
                world.faults -= 1;
                self.finish(&mut world, i, true);
            }
            Action::Unasked(i) => {
                world.faults -= 1;
                self.look(&mut world, i, true);
            }
            Action::End(j, ok) => self.end(&mut world, j, ok),
            Action::Tick => {
                let held_back = world.queue.iter().any(|m| m.in_flight == 0 && m.visible_at <= world.now);
                if held_back || !world.running.is_empty() {
                    world.faults -= 1;
                }
                world.now = if world.running.is_empty() { self.next_time(&world) } else { world.now + self.tick };
            }
        }
        Some(world)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties()
    }
}

impl Lifecycle {
    fn run_of(&self, msg: &Msg, call: String, now: Seconds) -> Run {
        Run {
            msg: msg.id,
            call,
            body: msg.body.clone(),
            receives: msg.receives,
            pc: Pc::Look,
            known: (0, Item::default()),
            back: false,
            now,
            started: now,
        }
    }

    fn advance(&self, world: &mut World, i: usize) {
        match world.running[i].pc {
            Pc::Look => self.look(world, i, false),
            Pc::Beside { .. } => self.beside(world, i),
            Pc::After(_) => self.after(world, i),
            Pc::Write { .. } => self.write(world, i),
            Pc::Publish(_) => self.publish(world, i),
            Pc::Call => {}
            Pc::Finish => {
                let back = world.running[i].back;
                self.finish(world, i, back);
            }
        }
    }

    fn end(&self, world: &mut World, j: u8, ok: bool) {
        world.jobs[j as usize].state = if ok { JobState::Succeeded } else { JobState::Failed };
        if world.target.view == View::Leaving(j) {
            if ok {
                world.target.view = View::Gone;
            } else {
                world.target.view = View::Standing;
                world.target.failed_job = Some(j);
            }
        }
    }

    /// The next moment worth visiting: a tick later, or when the next message shows.
    fn next_time(&self, world: &World) -> Seconds {
        let waiting = world.queue.iter().all(|m| m.visible_at > world.now)
            && !world.jobs.iter().any(|j| j.state == JobState::Running);
        match world.queue.iter().map(|m| m.visible_at).min() {
            Some(at) if waiting => at,
            _ => world.now + self.tick,
        }
    }
}

pub const CALL_WRITTEN_FIRST: &str = "never a call without calling written first";
pub const ONE_MGN_CALL: &str = "never two terminate calls for an MGN server";
pub const ONE_DECISION: &str = "at most one decision per epoch";
pub const IDENTICAL: &str = "every publication of a decision identical";
pub const DRY_NEVER_CALLS: &str = "a dry run never calls";
pub const NO_FALSE_DECISION: &str = "no decision without a termination that went in";
pub const EVERY_TERMINATION_DECIDED: &str = "every termination decided and published";

/// The properties, each named as the evidence names it.
pub fn properties() -> Vec<Property<Lifecycle>> {
    vec![
        Property::always(CALL_WRITTEN_FIRST, |_, w: &World| w.ledger.unwritten_calls == 0),
        Property::always(ONE_MGN_CALL, |_, w: &World| w.ledger.second_calls == 0),
        Property::always(ONE_DECISION, |_, w: &World| {
            w.ledger.written.iter().all(|(e, d)| w.ledger.written.iter().all(|(e2, d2)| e != e2 || d == d2))
        }),
        Property::always(IDENTICAL, |_, w: &World| {
            let ledger = &w.ledger;
            let agree = |(e, d): &(u32, _), (e2, d2): &(u32, _)| e != e2 || d == d2;
            ledger.published.iter().all(|p| ledger.published.iter().chain(&ledger.written).all(|q| agree(p, q)))
        }),
        Property::always(DRY_NEVER_CALLS, |_, w: &World| w.ledger.dry_calls == 0),
        Property::always(NO_FALSE_DECISION, |_, w: &World| {
            world::distinct_epochs(&w.ledger.written) <= w.terminations()
        }),
        // Under fair delivery: once nothing runs and nothing is queued, every termination
        // the service started is decided and published (`World::unaccounted` says what
        // speaks for a WorkSpace's).
        Property::always(EVERY_TERMINATION_DECIDED, |m: &Lifecycle, w: &World| {
            !w.quiet() || w.unaccounted(m.has_jobs) == 0
        }),
        Property::sometimes("a termination is confirmed", |_, w: &World| {
            w.ledger.published.iter().any(|(_, d)| d.verdict == teardown_core::lifecycle::Verdict::Confirmed)
        }),
    ]
}
