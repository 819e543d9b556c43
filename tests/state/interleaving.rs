//! Any interleaving: exactly one decision per accepted target.

use super::*;

#[derive(Clone, Debug)]
pub(super) enum Step {
    /// The request delivered (again, or a duplicate).
    Request,
    /// Every check waiting is delivered; `twice`: each one twice.
    Checks {
        twice: bool,
    },
    /// The sends to the request queue fail, until `Heal`.
    Break,
    Heal,
    /// Time passes.
    Wait(i64),
}

pub(super) fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        3 => Just(Step::Request),
        4 => any::<bool>().prop_map(|twice| Step::Checks { twice }),
        1 => Just(Step::Break),
        2 => Just(Step::Heal),
        3 => (1i64..600).prop_map(Step::Wait),
    ]
}

/// The simulated event source: the request, and the checks waiting on the queue,
/// each an SQS message with its own id and receive count. A message a delivery hands
/// back (or whose invocation fails) comes back later, its receive count one higher.
pub(super) struct Source<'a> {
    f: &'a Function,
    queue: &'a Queue,
    request: Value,
    receives: u32,
    request_back: bool,
    /// (message id, receives so far, body)
    waiting: Vec<(String, u32, Value)>,
    n: usize,
}

impl Source<'_> {
    fn enqueue_sent(&mut self) {
        for body in self.queue.take() {
            self.n += 1;
            self.waiting.push((format!("c-{}", self.n), 0, body));
        }
    }

    async fn deliver_request(&mut self) {
        self.receives += 1;
        self.n += 1;
        let answer =
            invoke_as(&self.f.app, delivery("m-1", &self.request, self.receives), &format!("req-{}", self.n)).await;
        self.request_back = answer.map_or(true, |r| !failures(&r).is_empty());
        self.enqueue_sent();
    }

    /// Every waiting check delivered; `copies` 2: SQS delivers each twice at once.
    async fn deliver_checks(&mut self, copies: u32) {
        for (id, receives, body) in std::mem::take(&mut self.waiting) {
            let mut back = false;
            for _ in 0..copies {
                self.n += 1;
                let answer =
                    invoke_as(&self.f.app, delivery(&id, &body, receives + 1), &format!("req-{}", self.n)).await;
                back |= answer.map_or(true, |r| !failures(&r).is_empty());
            }
            if back {
                self.waiting.push((id, receives + 1, body));
            }
        }
        self.enqueue_sent();
    }
}

/// Deliveries of one request and its checks in any order, duplicated, redelivered,
/// with sends lost: each WorkSpace the request terminated gets exactly one final
/// decision.
#[test]
pub(super) fn any_interleaving_of_deliveries_decides_each_accepted_target_exactly_once() {
    use proptest::prelude::*;
    let moto = Moto::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cases = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(steps in proptest::collection::vec(step(), 1..14), slow in 0usize..4)| {
        let case = cases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        runtime.block_on(async {
            let state = table(&moto, &format!("prop-{case}")).await;
            let ids = [format!("ws-a{case:07}"), format!("ws-b{case:07}")];
            let fleet = fleet(&[ids[0].as_str(), ids[1].as_str()]);
            let queue = queue();
            let f = function(&state, &fleet, &queue, &[], &[], &[]);
            let mut source = Source { f: &f, queue: &queue, request: ws_request(&ids), receives: 0, request_back: false, waiting: Vec::new(), n: 0 };
            let mut now = 0i64;
            at(now);
            source.deliver_request().await;
            for (i, step) in steps.iter().enumerate() {
                // The WorkSpaces finish terminating after `slow` steps.
                if i == slow {
                    for id in &ids {
                        fleet.set(id, WorkspaceState::Terminated);
                    }
                }
                match step {
                    Step::Request => source.deliver_request().await,
                    Step::Checks { twice } => source.deliver_checks(if *twice { 2 } else { 1 }).await,
                    Step::Break => queue.fail(true),
                    Step::Heal => queue.fail(false),
                    Step::Wait(seconds) => {
                        now += seconds;
                        at(now);
                    }
                }
            }
            // Left alone, the system settles: the queue heals, the WorkSpaces are gone,
            // what was handed back comes back, every check comes back, until none is left.
            queue.fail(false);
            for id in &ids {
                fleet.set(id, WorkspaceState::Terminated);
            }
            for _ in 0..20 {
                if !source.request_back && source.waiting.is_empty() {
                    break;
                }
                now += 400;
                at(now);
                if source.request_back {
                    source.deliver_request().await;
                }
                source.deliver_checks(1).await;
            }
            prop_assert!(!source.request_back && source.waiting.is_empty(), "the system did not settle: {:?}", steps);
            let decisions = f.decisions();
            for id in &ids {
                let got = decisions.get(id).cloned().unwrap_or_default();
                prop_assert_eq!(got.len(), 1, "{} decided {:?} after {:?} (slow {})", id, got, steps, slow);
            }
            Ok(())
        })?;
    });
}
