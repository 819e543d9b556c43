//! docs/evidence.md, "Throttled is not frozen": how fast teardown calls one
//! operation once AWS has throttled it.
//!
//! AWS throttles per account and operation, by rate. The SDK's adaptive retry mode
//! paces a whole client (every operation of the service) with one bucket, cuts its
//! rate by 30 % on every throttle down to half a call a second, and climbs back
//! slowly: random throttles (a few in a hundred calls) hold a container at a crawl
//! long after the service has recovered. This pacer keeps the SDK's standard retries
//! and adds, per operation of one client (so per account and region), a rate of its
//! own:
//!
//! - none until the operation is throttled: first attempts go at once;
//! - on a throttle, 80 % of what the operation got through in the last second
//!   (at least one call a second): just under the limit the service showed, which
//!   a random throttle leaves high;
//! - at most one cut a second, however many throttles answer the calls already
//!   sent (cutting on each is how a pace falls to the floor);
//! - bursts up to one second's calls pass at once, as AWS's own buckets allow;
//! - each call that gets through raises it by half a call a second (about ×1.5 a
//!   second), so it finds the limit again within seconds;
//! - dropped altogether ten seconds after the last throttle.
//!
//! Attempts are observed by an SDK interceptor (every attempt, retries included);
//! only first attempts wait here: retries keep the SDK's own backoff.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::time::Instant;

/// How far back "what got through" is counted, and the least time between two cuts.
const WINDOW: Duration = Duration::from_secs(1);
/// The share of the observed rate kept after a throttle.
const CUT: f64 = 0.8;
/// The slowest a throttled operation is paced, in calls a second.
const FLOOR: f64 = 1.0;
/// Calls a second added per call that gets through (about ×1.5 a second).
const GROWTH: f64 = 0.5;
/// How long after its last throttle an operation goes unpaced again.
const RELEASE: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Pace {
    /// Calls a second; `None`: unpaced.
    rate: Option<f64>,
    /// A bucket of one second's calls: bursts up to the rate pass at once, as AWS's
    /// own buckets let them. Below zero: first attempts already waiting.
    tokens: f64,
    refilled: Instant,
    /// When recent attempts got through, within `WINDOW`.
    through: VecDeque<Instant>,
    last_cut: Option<Instant>,
}

impl Pace {
    fn new(now: Instant) -> Self {
        Pace { rate: None, tokens: 0.0, refilled: now, through: VecDeque::new(), last_cut: None }
    }

    /// Whether the pace has lapsed: `RELEASE` since its last cut.
    fn released(&self, now: Instant) -> bool {
        self.last_cut.is_some_and(|at| now - at >= RELEASE)
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            self.tokens = (self.tokens + (now - self.refilled).as_secs_f64() * rate).min(rate);
        }
        self.refilled = now;
    }
}

/// The pace of each operation of one client. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Pacer {
    operations: Arc<Mutex<HashMap<String, Pace>>>,
}

impl Pacer {
    /// Waits until a first attempt of `operation` may start.
    pub async fn wait(&self, operation: &str) {
        let delay = self.reserve(operation, Instant::now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// Takes the next start of `operation` at `now`: how long it must wait.
    fn reserve(&self, operation: &str, now: Instant) -> Duration {
        let Ok(mut operations) = self.operations.lock() else { return Duration::ZERO };
        let Some(pace) = operations.get_mut(operation) else { return Duration::ZERO };
        if pace.released(now) {
            pace.rate = None;
        }
        let Some(rate) = pace.rate else { return Duration::ZERO };
        pace.refill(now);
        pace.tokens -= 1.0;
        if pace.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-pace.tokens / rate) }
    }

    /// What one attempt of `operation` came to.
    pub fn observed(&self, operation: &str, throttled: bool) {
        self.observed_at(operation, throttled, Instant::now());
    }

    fn observed_at(&self, operation: &str, throttled: bool, now: Instant) {
        let Ok(mut operations) = self.operations.lock() else { return };
        let pace = operations.entry(operation.to_owned()).or_insert_with(|| Pace::new(now));
        while pace.through.front().is_some_and(|at| now - *at > WINDOW) {
            pace.through.pop_front();
        }
        pace.refill(now);
        if !throttled {
            pace.through.push_back(now);
            if let Some(rate) = pace.rate {
                pace.rate = Some(rate + GROWTH);
            }
            return;
        }
        // One cut a window: throttles answered to calls sent before the last cut
        // say nothing new, and cutting on each would fall to the floor.
        if pace.last_cut.is_some_and(|at| now - at < WINDOW) {
            return;
        }
        let got_through = pace.through.len() as f64 / WINDOW.as_secs_f64();
        pace.rate = Some((got_through * CUT).max(FLOOR));
        pace.tokens = pace.tokens.min(0.0);
        pace.last_cut = Some(now);
    }

    /// The rate of `operation` at `now`, in calls a second; `None`: unpaced.
    pub fn rate_at(&self, operation: &str, now: Instant) -> Option<f64> {
        let operations = self.operations.lock().ok()?;
        let pace = operations.get(operation)?;
        if pace.released(now) { None } else { pace.rate }
    }

    /// The interceptor that tells this pacer what each attempt came to.
    pub fn observer(&self) -> Observer {
        Observer { pacer: self.clone() }
    }
}

/// Reads each attempt's answer: a throttle is a 429, or an error whose code the
/// SDK's own retry classifier counts as throttling.
#[derive(Debug)]
pub struct Observer {
    pacer: Pacer,
}

impl Intercept for Observer {
    fn name(&self) -> &'static str {
        "teardown pacing"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(operation) = cfg.load::<Metadata>().map(|m| m.name().to_owned()) else { return Ok(()) };
        let Some(response) = context.response() else { return Ok(()) };
        self.pacer
            .observed(&operation, is_throttle(response.status().as_u16(), response.headers(), response.body().bytes()));
        Ok(())
    }
}

fn is_throttle(status: u16, headers: &aws_smithy_runtime_api::http::Headers, body: Option<&[u8]>) -> bool {
    use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
    if status == 429 {
        return true;
    }
    if status < 400 {
        return false;
    }
    // restJson names the error in a header; JSON 1.0 / 1.1 in `__type`, possibly
    // prefixed with a namespace (`com.amazonaws…#ThrottlingException`).
    let code = headers.get("x-amzn-errortype").map(str::to_owned).or_else(|| {
        let body: serde_json::Value = serde_json::from_slice(body?).ok()?;
        body.get("__type").or_else(|| body.get("code")).and_then(|v| v.as_str()).map(str::to_owned)
    });
    let Some(code) = code else { return false };
    let code = code.split(':').next().unwrap_or("");
    let code = code.rsplit('#').next().unwrap_or("");
    THROTTLING_ERRORS.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAGS: &str = "DescribeTags";

    fn after(start: Instant, seconds: f64) -> Instant {
        start + Duration::from_secs_f64(seconds)
    }

    #[test]
    fn an_operation_is_paced_only_after_a_throttle_below_what_got_through_and_only_that_operation() {
        let (pacer, t0) = (Pacer::default(), Instant::now());
        for _ in 0..20 {
            pacer.observed_at(TAGS, false, t0);
        }
        assert_eq!(pacer.rate_at(TAGS, t0), None, "nothing is paced before a throttle");
        assert_eq!(pacer.reserve(TAGS, t0), Duration::ZERO);
        pacer.observed_at(TAGS, true, t0);
        assert_eq!(pacer.rate_at(TAGS, t0), Some(16.0), "80 % of the 20 a second that got through");
        assert_eq!(pacer.rate_at("DescribeWorkspaces", t0), None, "another operation is not held back");
        // Right after a cut, first attempts are spread at the rate: the sixteenth waits a second.
        let waits: Vec<Duration> = (0..16).map(|_| pacer.reserve(TAGS, t0)).collect();
        assert_eq!(waits[0], Duration::from_secs_f64(1.0 / 16.0));
        assert_eq!(waits[15], Duration::from_secs(1));
        assert_eq!(pacer.reserve("DescribeWorkspaces", t0), Duration::ZERO, "an unpaced operation does not wait");
        pacer.observed_at(TAGS, true, after(t0, 0.5));
        assert_eq!(pacer.rate_at(TAGS, t0), Some(16.0), "one cut a second, not one per throttle");
        // Two seconds on, a second's worth passes at once, as AWS's buckets let it.
        let later = after(t0, 2.0);
        assert!((0..16).all(|_| pacer.reserve(TAGS, later).is_zero()));
        assert!(!pacer.reserve(TAGS, later).is_zero(), "and no more");
    }

    #[test]
    fn random_throttles_in_a_fast_stream_leave_it_fast_and_the_pace_is_dropped_ten_seconds_on() {
        let (pacer, t0) = (Pacer::default(), Instant::now());
        // 300 calls a second, one in fifty throttled, for five seconds.
        for second in 0..5 {
            for i in 0..300 {
                let at = after(t0, second as f64 + i as f64 / 300.0);
                pacer.observed_at(TAGS, i % 50 == 49, at);
            }
        }
        let rate = pacer.rate_at(TAGS, after(t0, 5.0)).expect("paced");
        assert!(rate > 240.0, "random throttles must not collapse the pace: {rate}");
        let released = after(t0, 5.0) + RELEASE;
        assert_eq!(pacer.rate_at(TAGS, released), None, "ten seconds after its last cut it is unpaced");
        assert_eq!(pacer.reserve(TAGS, released), Duration::ZERO);
    }

    #[test]
    fn a_throttle_with_nothing_through_paces_at_one_call_a_second_and_climbs_back() {
        let (pacer, t0) = (Pacer::default(), Instant::now());
        pacer.observed_at("TerminateWorkspaces", true, t0);
        assert_eq!(pacer.rate_at("TerminateWorkspaces", t0), Some(FLOOR));
        for i in 0..10 {
            pacer.observed_at("TerminateWorkspaces", false, after(t0, 0.1 * f64::from(i)));
        }
        assert_eq!(pacer.rate_at("TerminateWorkspaces", t0), Some(FLOOR + 10.0 * GROWTH));
    }

    #[test]
    fn throttles_are_told_by_status_header_or_type_as_the_sdk_names_them() {
        let none = aws_smithy_runtime_api::http::Headers::new();
        assert!(is_throttle(429, &none, None));
        assert!(is_throttle(400, &none, Some(br#"{"__type":"ThrottlingException","message":"x"}"#)));
        assert!(is_throttle(400, &none, Some(br#"{"__type":"com.amazonaws.workspaces#ThrottlingException"}"#)));
        assert!(!is_throttle(400, &none, Some(br#"{"__type":"AccessDeniedException"}"#)));
        assert!(!is_throttle(503, &none, Some(b"{}")));
        assert!(!is_throttle(200, &none, Some(br#"{"__type":"ThrottlingException"}"#)));
        let mut rest = aws_smithy_runtime_api::http::Headers::new();
        rest.insert("x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/");
        assert!(is_throttle(400, &rest, Some(b"{}")));
    }
}
