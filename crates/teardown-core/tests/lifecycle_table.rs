//! The reference's transition table is the transition function's: each row is stepped
//! here, and the table in docs/lifecycle.md must read exactly
//! as the steps came out. On a mismatch the test prints the table as the code has it.

use std::path::Path;

use teardown_core::lifecycle::{
    Answer, Arrived, Bounds, Calls, Effect, Event, Item, Mark, Phase, Requester, Rules, Seconds, Seen, Status, step,
};

const T0: Seconds = 1_800_000_000;

fn rules(calls: Calls) -> Rules {
    Rules { calls, bounds: Bounds::from_settings(60, 360, 5, 7200) }
}

fn by(token: &str) -> Requester {
    Requester::new(token, "")
}

fn want(token: &str, seen: Seen) -> Event {
    Event::Request { by: by(token), call: format!("{token}-1"), seen, dry_run: false }
}

fn answer(token: &str, answer: Answer) -> Event {
    Event::Answer { by: by(token), call: format!("{token}-1"), answer }
}

fn check(attempt: u32, message: &str, status: Status) -> Event {
    let check = Arrived {
        epoch: 1,
        attempt,
        message: message.into(),
        by: by("A"),
        job: None,
        accepted_at: T0,
        last_delivery: false,
    };
    Event::Check { check, status }
}

fn standing() -> Seen {
    Seen::Standing { failed: None }
}

fn pending() -> Status {
    Status::Pending { why: "TERMINATING".into() }
}

fn done() -> Status {
    Status::Done { job: None }
}

fn after(rules: &Rules, item: Item, events: &[(Seconds, Event)]) -> Item {
    events.iter().fold(item, |item, (at, event)| step(&item, event, *at, rules).item)
}

fn calling(rules: &Rules) -> Item {
    after(rules, Item::default(), &[(T0, want("A", standing()))])
}

fn let_go(rules: &Rules) -> Item {
    after(rules, calling(rules), &[(T0 + 1, answer("A", Answer::Unknown))])
}

fn following(rules: &Rules) -> Item {
    after(rules, calling(rules), &[(T0, answer("A", Answer::Accepted { job: None }))])
}

fn decided(rules: &Rules) -> Item {
    after(rules, following(rules), &[(T0 + 30, check(1, "m1", done()))])
}

fn published(rules: &Rules) -> Item {
    after(rules, decided(rules), &[(T0 + 31, Event::Published { epoch: 1 })])
}

struct Row {
    from: &'static str,
    event: &'static str,
    item: Item,
    step: Event,
    at: Seconds,
    rules: Rules,
}

fn rows() -> Vec<Row> {
    let ws = rules(Calls::Idempotent);
    let mgn = rules(Calls::Once);
    let over = T0 + ws.bounds.call;
    let row = |from, event, item, step, at, rules| Row { from, event, item, step, at, rules };
    let copy = Event::Request { by: by("A"), call: "A-2".into(), seen: standing(), dry_run: false };
    let in_error = Seen::Standing { failed: Some(Mark { job: None }) };
    vec![
        row("idle", "request, target standing", Item::default(), want("A", standing()), T0, ws),
        row("idle", "request, target on its way out", Item::default(), want("A", Seen::Leaving { job: None }), T0, ws),
        row("idle", "request, target gone", Item::default(), want("A", Seen::Gone), T0, ws),
        row(
            "idle",
            "dry run",
            Item::default(),
            Event::Request { by: by("A"), call: "d".into(), seen: standing(), dry_run: true },
            T0,
            ws,
        ),
        row(
            "any",
            "request whose look began before the item's last write",
            calling(&ws),
            want("B", standing()),
            T0,
            ws,
        ),
        row("calling (held)", "another request", calling(&ws), want("B", standing()), T0 + 1, ws),
        row("calling (held), MGN", "another request", calling(&mgn), want("B", standing()), T0 + 1, mgn),
        row(
            "calling (held)",
            "a copy of the same request, nothing seen going in",
            calling(&ws),
            copy.clone(),
            T0 + 1,
            ws,
        ),
        row(
            "calling (held), MGN",
            "a copy of the same request, nothing seen going in",
            calling(&mgn),
            copy,
            T0 + 1,
            mgn,
        ),
        row(
            "calling (held)",
            "the same request, a failure seen that was not there before",
            calling(&ws),
            Event::Request { by: by("A"), call: "A-2".into(), seen: in_error.clone(), dry_run: false },
            T0 + 1,
            ws,
        ),
        row("calling", "its answer: accepted", calling(&ws), answer("A", Answer::Accepted { job: None }), T0 + 1, ws),
        row("calling", "its answer: refused", calling(&ws), answer("A", Answer::Refused), T0 + 1, ws),
        row("calling", "its answer: none (timeout, 5xx)", calling(&ws), answer("A", Answer::Unknown), T0 + 1, ws),
        row(
            "calling (let go)",
            "another request, within the call's bound",
            let_go(&ws),
            want("B", standing()),
            T0 + 30,
            ws,
        ),
        row("calling (let go)", "its own request again", let_go(&ws), want("A", standing()), T0 + 30, ws),
        row(
            "calling (let go), MGN",
            "its own request again, within the call's bound",
            let_go(&mgn),
            want("A", standing()),
            T0 + 30,
            mgn,
        ),
        row(
            "calling",
            "a copy's answer",
            calling(&ws),
            Event::Answer { by: by("A"), call: "A-2".into(), answer: Answer::Refused },
            T0 + 1,
            ws,
        ),
        row(
            "calling (over)",
            "request, a sign it went in",
            calling(&ws),
            want("B", Seen::Leaving { job: None }),
            over,
            ws,
        ),
        row("calling (over)", "request, no sign", calling(&ws), want("B", standing()), over, ws),
        row(
            "calling (over)",
            "its watch, a sign it went in",
            calling(&ws),
            Event::Watch { by: by("A"), seen: in_error, last_delivery: false },
            over,
            ws,
        ),
        row(
            "calling (over)",
            "its watch, no sign",
            calling(&ws),
            Event::Watch { by: by("A"), seen: standing(), last_delivery: false },
            over,
            ws,
        ),
        row(
            "calling",
            "its check (the write after the call is missing), caller over",
            calling(&ws),
            check(1, "m1", pending()),
            over,
            ws,
        ),
        row("following", "another request", following(&ws), want("B", Seen::Leaving { job: None }), T0 + 5, ws),
        row(
            "following, no check yet",
            "its own request again, or its watch",
            following(&ws),
            want("A", Seen::Leaving { job: None }),
            T0 + 5,
            ws,
        ),
        row(
            "following, check long overdue",
            "another request",
            following(&ws),
            want("B", Seen::Leaving { job: None }),
            T0 + 30 + ws.bounds.check + 1,
            ws,
        ),
        row("following", "current check: still going", following(&ws), check(1, "m1", pending()), T0 + 30, ws),
        row("following", "current check: done", following(&ws), check(1, "m1", done()), T0 + 30, ws),
        row(
            "following",
            "current check: failed",
            following(&ws),
            check(1, "m1", Status::Failed { job: None, code: "ERROR".into(), message: "went to ERROR".into() }),
            T0 + 30,
            ws,
        ),
        row(
            "following",
            "current check: still going past `CONFIRM_WITHIN`",
            following(&ws),
            check(1, "m1", pending()),
            T0 + 7200,
            ws,
        ),
        row(
            "following",
            "current check: service not asked",
            following(&ws),
            check(1, "m1", Status::Unasked { why: "throttled".into() }),
            T0 + 30,
            ws,
        ),
        row(
            "following",
            "a copy of an earlier check",
            after(&ws, following(&ws), &[(T0 + 30, check(1, "m1", pending()))]),
            check(1, "m1-copy", pending()),
            T0 + 31,
            ws,
        ),
        row(
            "following",
            "the same check come back after its write",
            after(&ws, following(&ws), &[(T0 + 30, check(1, "m1", pending()))]),
            check(1, "m1", pending()),
            T0 + 400,
            ws,
        ),
        row("decided", "its maker's message again", decided(&ws), check(1, "m1", pending()), T0 + 40, ws),
        row(
            "decided",
            "another message, its maker may still publish",
            decided(&ws),
            want("B", standing()),
            T0 + 40,
            ws,
        ),
        row(
            "decided",
            "another message, its maker must be over",
            decided(&ws),
            want("B", standing()),
            T0 + 30 + ws.bounds.call,
            ws,
        ),
        row("decided", "published", decided(&ws), Event::Published { epoch: 1 }, T0 + 40, ws),
        row("decided, published", "request, target standing", published(&ws), want("B", standing()), T0 + 40, ws),
        row("decided, published", "a check of its epoch", published(&ws), check(2, "m2", pending()), T0 + 40, ws),
        row(
            "following (epoch 2)",
            "a check of epoch 1",
            after(
                &ws,
                published(&ws),
                &[(T0 + 40, want("B", standing())), (T0 + 40, answer("B", Answer::Accepted { job: None }))],
            ),
            check(2, "m2", pending()),
            T0 + 50,
            ws,
        ),
    ]
}

fn phase(item: &Item, at: Seconds, rules: &Rules) -> String {
    match &item.phase {
        Phase::Idle => "idle".into(),
        Phase::Calling(c) if !c.open => "calling (let go)".into(),
        Phase::Calling(c) if c.held(at, rules) => "calling (held)".into(),
        Phase::Calling(_) => "calling (over)".into(),
        Phase::Following(f) => format!("following (epoch {}, check {} went on)", f.epoch, f.last.attempt),
        Phase::Decided(d) if d.published => format!("decided {}, published", d.decision.verdict.as_str()),
        Phase::Decided(d) => format!("decided {}", d.decision.verdict.as_str()),
    }
}

fn effect(effect: &Effect) -> String {
    match effect {
        Effect::Call => "call".into(),
        Effect::WouldCall => "would call (dry run)".into(),
        Effect::Hold(hold) => format!("`transient` `{}`", hold.code()),
        Effect::Underway { mine: true, .. } => "`terminated` (already underway)".into(),
        Effect::Underway { mine: false, .. } => "`skipped` (already being terminated)".into(),
        Effect::Gone => "`not_found`".into(),
        Effect::Send(next) if next.beside => {
            format!("send check {} (in {} s, beside the write)", next.attempt, next.delay)
        }
        Effect::Send(next) => format!("send check {} (in {} s, once written)", next.attempt, next.delay),
        Effect::Publish(d) => format!("publish `{}`", d.decision.verdict.as_str()),
        Effect::Dropped => "ends without effect, counted".into(),
    }
}

fn table() -> String {
    let mut out = String::from("| from | event | to | effects |\n|---|---|---|---|\n");
    for row in rows() {
        let step = step(&row.item, &row.step, row.at, &row.rules);
        let to = if step.item == row.item { "(unchanged)".to_string() } else { phase(&step.item, row.at, &row.rules) };
        let effects: Vec<String> = step.effects.iter().map(effect).collect();
        let effects = if effects.is_empty() { "none".to_string() } else { effects.join(", ") };
        out.push_str(&format!("| {} | {} | {to} | {effects} |\n", row.from, row.event));
    }
    out
}

#[test]
fn the_reference_shows_the_transition_table_the_code_has() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/lifecycle.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (start, end) = ("<!-- transitions: start -->\n", "<!-- transitions: end -->");
    let documented = text.split_once(start).and_then(|(_, rest)| rest.split_once(end)).map(|(table, _)| table);
    let expected = table();
    assert_eq!(documented, Some(expected.as_str()), "docs/lifecycle.md's transition table should read:\n{expected}");
}
