//! docs/reference.md, "Selection" and "Guards": the filters of a selection and the guards every target passes
//! before any terminate call. Pure: it judges facts the services looked up.

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use crate::outcome::Outcome;
use crate::request::{ProvisionedProductFilters, Scope, Selection, Target, TargetInstancesFilters, WorkspacesFilters};

/// MGN lifecycle states in which a source server's launched instance may be terminated.
pub const MGN_TERMINABLE: &[&str] = &["NOT_READY", "READY_FOR_TEST", "READY_FOR_CUTOVER", "STOPPED"];

/// The tag whose ISO-8601 date or date-time says when a target may go.
pub const EXPIRES_TAG: &str = "teardown:expires-at";

/// The tag that dates a WorkSpace that never had a user connection: idle since then
/// (docs/reference.md, "Never-connected WorkSpaces").
pub const FIRST_SEEN_TAG: &str = "teardown:first-seen";

/// What a service told us about one target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Candidate {
    pub id: String,
    /// WorkSpace state, MGN lifecycle state, or provisioned product status.
    pub state: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// MGN: whether the server has a launched test or cutover instance.
    pub has_launched_instance: Option<bool>,
    /// WorkSpaces: the last user connection, when there was one.
    pub last_connected: Option<OffsetDateTime>,
    /// WorkSpaces: a user is connected right now.
    pub connected: bool,
    /// WorkSpaces: the connection status says no user ever connected (a status with
    /// no timestamp; a WorkSpace the status does not answer for is not this).
    pub never_connected: bool,
    pub created: Option<OffsetDateTime>,
    /// A termination already under way: MGN, a `PENDING` or `STARTED` `TERMINATE` job
    /// the server takes part in; Service Catalog, a terminate record in progress.
    pub active_job: Option<String>,
    /// Service Catalog: tags from the search index, which may lag behind the
    /// authoritative ones in `tags`. Consulted for protection only, where a stale tag
    /// can only leave a target alone.
    pub index_tags: BTreeMap<String, String>,
    /// Why a fact the guards need (its tags) could not be read: the target is then
    /// not judged at all, and ends with this outcome and error.
    pub unreadable: Option<(Outcome, crate::outcome::Failure)>,
    /// The id to call the service with, when the request named the target otherwise
    /// (a Service Catalog product named by name or ARN).
    pub call_id: Option<String>,
    /// Attributes some filters compare: directoryId, bundleId, userName, runningMode,
    /// productId, provisioningArtifactId; and MGN's source server `arn`, which tagging names.
    pub attributes: BTreeMap<&'static str, String>,
}

/// What happens to a candidate.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Terminate it (or, in a dry run, report that it would be), because of `reason`;
    /// with `call_id` when the call must name it otherwise than the request did.
    Terminate { reason: String, call_id: Option<String> },
    /// A notice run: tag it with `teardown:expires-at` = `expires_at` (or, in a dry
    /// run, report that it would be), because of `reason`. With the WorkSpace's user,
    /// whom the notice is for, and the MGN source server's ARN, which the tag call names.
    Notice { expires_at: String, reason: String, user_name: Option<String>, arn: Option<String> },
    /// Leave it, with this outcome and reason.
    Stop { outcome: Outcome, reason: String },
    /// Already being terminated by an earlier call: reported `terminated`, not sent
    /// again; with the MGN job or Service Catalog record doing it (a WorkSpace has none).
    Underway { job_id: Option<String>, reason: String },
    /// A fact the guards need could not be read: left alone, with this end.
    Unreadable { outcome: Outcome, failure: crate::outcome::Failure },
    /// Not part of the selection at all.
    Unselected,
}

/// Judges one candidate for `target`: a selection's filters first (when it is one),
/// then the guards.
pub fn judge(target: &Target, candidate: &Candidate, protect_tag: &str, now: OffsetDateTime) -> Verdict {
    // Protection hangs on the tags: a target whose tags could not be read is not judged.
    if let Some((outcome, failure)) = &candidate.unreadable {
        // Unless what it is, without its tags, already leaves it out of a selection.
        let may_be_selected = match target {
            Target::Workspaces(Scope::Select(s)) => {
                // Whether a WorkSpace that never connected is idle is written in its
                // tags (first seen): unknown here, so it may be.
                let mut s = s.clone();
                if candidate.never_connected && !candidate.connected {
                    s.filters.idle_days = None;
                }
                untagged_match(candidate, &s, now, workspaces_match)
            }
            Target::TargetInstances(Scope::Select(s)) => untagged_match(candidate, s, now, target_instances_match),
            Target::ProvisionedProduct(Scope::Select(s)) => {
                untagged_match(candidate, s, now, provisioned_product_match)
            }
            Target::Workspaces(Scope::Named(_))
            | Target::TargetInstances(Scope::Named(_))
            | Target::ProvisionedProduct(Scope::Named(_)) => true,
        };
        if !may_be_selected {
            return Verdict::Unselected;
        }
        return Verdict::Unreadable { outcome: *outcome, failure: failure.clone() };
    }
    let selected = match target {
        Target::Workspaces(Scope::Named(_))
        | Target::TargetInstances(Scope::Named(_))
        | Target::ProvisionedProduct(Scope::Named(_)) => Ok(Some("named in the request".to_owned())),
        Target::Workspaces(Scope::Select(s)) => matches(candidate, s, now, workspaces_match),
        Target::TargetInstances(Scope::Select(s)) => matches(candidate, s, now, target_instances_match),
        Target::ProvisionedProduct(Scope::Select(s)) => matches(candidate, s, now, provisioned_product_match),
    };
    let reason = match selected {
        Ok(Some(matched)) => matched,
        Ok(None) => return Verdict::Unselected,
        Err(stop) => return stop,
    };
    if let Some(value) = candidate.tags.get(protect_tag).or_else(|| candidate.index_tags.get(protect_tag)) {
        return stop(Outcome::Protected, format!("tag {protect_tag}={value:?}: never terminated"));
    }
    let state = candidate.state.as_deref().unwrap_or("");
    match target {
        Target::Workspaces(_) => match state {
            "SUSPENDED" => {
                return stop(Outcome::Skipped, "SUSPENDED: TerminateWorkspaces refuses a suspended WorkSpace".into());
            }
            "TERMINATED" => return stop(Outcome::NotFound, "already TERMINATED".into()),
            // On its way out because of an earlier call (docs/reference.md, "What each request ends as"): terminated, not
            // sent again, and followed up as MGN jobs and Service Catalog records are.
            "TERMINATING" => {
                return Verdict::Underway { job_id: None, reason: "already TERMINATING".into() };
            }
            _ => {}
        },
        Target::TargetInstances(_) => {
            // A list of what is allowed, not of what is refused: a DISCONNECTED server's
            // launched instance may be serving production, and a state added to the API
            // tomorrow must not be terminated before someone has read what it means.
            if !MGN_TERMINABLE.contains(&state) {
                let why = match state {
                    "TESTING" | "CUTTING_OVER" => "a launch is in progress",
                    "CUTOVER" => "its cutover instance is the migrated production server",
                    "DISCONNECTED" => "its launched instance may be serving production",
                    "" => "its lifecycle state is unknown",
                    _ => "not a state teardown terminates in",
                };
                let shown = if state.is_empty() { "unknown" } else { state };
                return stop(
                    Outcome::Skipped,
                    format!("lifecycle {shown}: {why}; only {} are terminated", MGN_TERMINABLE.join(", ")),
                );
            }
            if candidate.has_launched_instance != Some(true) {
                return stop(Outcome::Skipped, "no launched test or cutover instance".into());
            }
            // Past every other guard, a server already in a running TERMINATE job is not
            // sent again: a second call would start a second job.
            if let Some(job_id) = &candidate.active_job {
                return Verdict::Underway {
                    job_id: Some(job_id.clone()),
                    reason: format!("already terminating: job {job_id} is PENDING or STARTED"),
                };
            }
        }
        Target::ProvisionedProduct(_) => {
            if let Some(record_id) = &candidate.active_job {
                return Verdict::Underway {
                    job_id: Some(record_id.clone()),
                    reason: format!("already terminating: record {record_id} is in progress"),
                };
            }
            if matches!(state, "UNDER_CHANGE" | "PLAN_IN_PROGRESS") {
                return stop(Outcome::Transient, format!("status {state}: it will settle, then it can be terminated"));
            }
        }
    }
    let idle_days = match target {
        Target::Workspaces(Scope::Select(s)) => s.filters.idle_days,
        _ => None,
    };
    // An expiry is a notice that the target is idle; a WorkSpace used since its
    // notice was given has not stayed idle, whatever the date says.
    if let (Target::Workspaces(Scope::Select(s)), Some(days)) = (target, idle_days)
        && s.expired
        && let Some(used) = used_since_notice(candidate, days)
    {
        return stop(
            Outcome::Skipped,
            format!("used since its notice (last connection {used}): the next notice run gives it a new date"),
        );
    }
    match target.notice_days() {
        Some(days) => give_notice(candidate, reason, days, idle_days, now),
        None => Verdict::Terminate { reason, call_id: candidate.call_id.clone() },
    }
}

/// When a WorkSpace with an expiry was last used, if that was after its notice: a
/// notice is given to what has been idle `idle_days`, so a connection later than
/// `idle_days` before the expiry came after the notice (for notices shorter than
/// `idle_days`, as the template's are).
fn used_since_notice(candidate: &Candidate, idle_days: u32) -> Option<String> {
    let expiry = candidate.tags.get(EXPIRES_TAG).and_then(|v| parse_expiry(v))?;
    let used = candidate.last_connected?;
    (used > expiry - time::Duration::days(i64::from(idle_days)))
        .then(|| used.format(&Rfc3339).unwrap_or_else(|_| used.to_string()))
}

/// A target that passed every filter and guard of a notice run: tagged, unless it
/// already carries an expiry, which it keeps (its owner may have moved it on). Two
/// expiries are not kept: the very date this run sets (an earlier attempt of this
/// run wrote it, and its owner may not have been told), and a lapsed one on a
/// WorkSpace used after its notice (it is idle again, and owed a new notice).
fn give_notice(
    candidate: &Candidate,
    reason: String,
    days: u32,
    idle_days: Option<u32>,
    now: OffsetDateTime,
) -> Verdict {
    let expires_at = expiry_after(now, days);
    let notice = |reason: String| Verdict::Notice {
        expires_at: expires_at.clone(),
        reason,
        user_name: candidate.attributes.get("userName").cloned(),
        arn: candidate.attributes.get("arn").cloned(),
    };
    match candidate.tags.get(EXPIRES_TAG) {
        None => notice(reason),
        Some(until) if *until == expires_at => notice(reason),
        Some(until) if idle_days.and_then(|d| used_since_notice(candidate, d)).is_some() => {
            notice(format!("its notice until {until} lapsed when it was used again; {reason}"))
        }
        Some(until) => stop(Outcome::Skipped, format!("already noticed until {until} ({EXPIRES_TAG} kept)")),
    }
}

/// The start of the current UTC hour plus `days`, as `2026-12-08T10:00:00Z`: a whole
/// hour, so every target of one run gets the same date.
pub fn expiry_after(now: OffsetDateTime, days: u32) -> String {
    let hour = now.to_offset(time::UtcOffset::UTC);
    let hour = hour.replace_time(time::Time::from_hms(hour.hour(), 0, 0).unwrap_or(time::Time::MIDNIGHT));
    let at = hour + time::Duration::days(i64::from(days));
    at.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")).unwrap_or_default()
}

/// Today's UTC date, as the first-seen tag holds it.
pub fn first_seen_date(now: OffsetDateTime) -> String {
    let day = now.to_offset(time::UtcOffset::UTC).date();
    day.format(time::macros::format_description!("[year]-[month]-[day]")).unwrap_or_default()
}

/// Whether a real run of `target` must date this WorkSpace with the first-seen tag
/// (docs/reference.md, "Never-connected WorkSpaces"): the selection asks for
/// `idleDays`; the WorkSpace never had a user connection, is not connected, carries
/// no first-seen tag, and matches every other filter and guard (a protected or
/// suspended one is left untouched).
pub fn first_seen_due(target: &Target, candidate: &Candidate, protect_tag: &str, now: OffsetDateTime) -> bool {
    let Target::Workspaces(Scope::Select(selection)) = target else { return false };
    if selection.filters.idle_days.is_none()
        || !candidate.never_connected
        || candidate.last_connected.is_some()
        || candidate.connected
        || candidate.unreadable.is_some()
        || candidate.tags.contains_key(FIRST_SEEN_TAG)
    {
        return false;
    }
    let mut without_idle = selection.clone();
    without_idle.filters.idle_days = None;
    without_idle.notice = None;
    let others = Target::Workspaces(Scope::Select(without_idle));
    matches!(judge(&others, candidate, protect_tag, now), Verdict::Terminate { .. })
}

fn stop(outcome: Outcome, reason: String) -> Verdict {
    Verdict::Stop { outcome, reason }
}

/// `Ok(Some(why))` when every filter matches; `Ok(None)` when one does not;
/// `Err` when the candidate must be reported without being judged further.
/// `service` checks the service's own filters, adding to the reasons.
fn matches<F>(
    c: &Candidate,
    s: &Selection<F>,
    now: OffsetDateTime,
    service: fn(&Candidate, &F, OffsetDateTime, &mut Vec<String>) -> bool,
) -> Result<Option<String>, Verdict> {
    let mut why = Vec::new();
    if !s.ids.is_empty() {
        if !s.ids.contains(&c.id) {
            return Ok(None);
        }
        why.push("id listed".to_owned());
    }
    for (key, values) in &s.tags {
        match c.tags.get(key) {
            Some(value) if values.contains(value) => why.push(format!("tag {key}={value}")),
            _ => return Ok(None),
        }
    }
    for key in &s.tags_absent {
        if c.tags.contains_key(key) {
            return Ok(None);
        }
    }
    if !s.tags_absent.is_empty() {
        why.push(format!("no tag {}", s.tags_absent.join(", ")));
    }
    if !service(c, &s.filters, now, &mut why) {
        return Ok(None);
    }
    if s.expired {
        match c.tags.get(EXPIRES_TAG).map(|v| (v, parse_expiry(v))) {
            None => return Ok(None),
            Some((v, None)) => {
                return Err(stop(
                    Outcome::Skipped,
                    format!("tag {EXPIRES_TAG}={v:?} is not an ISO-8601 date or date-time: never treated as expired"),
                ));
            }
            Some((v, Some(at))) if at <= now => why.push(format!("expired ({EXPIRES_TAG}={v})")),
            Some(_) => return Ok(None),
        }
    }
    Ok(Some(format!("matched: {}", why.join(", "))))
}

/// Whether a candidate matches every filter of a selection that needs no tags.
fn untagged_match<F>(
    c: &Candidate,
    s: &Selection<F>,
    now: OffsetDateTime,
    service: fn(&Candidate, &F, OffsetDateTime, &mut Vec<String>) -> bool,
) -> bool {
    (s.ids.is_empty() || s.ids.contains(&c.id)) && service(c, &s.filters, now, &mut Vec::new())
}

fn attribute(c: &Candidate, name: &str, wanted: &Option<String>, why: &mut Vec<String>) -> bool {
    match wanted {
        None => true,
        Some(w) if c.attributes.get(name) == Some(w) => {
            why.push(format!("{name} {w}"));
            true
        }
        Some(_) => false,
    }
}

fn state_in(c: &Candidate, states: &[String], why: &mut Vec<String>) -> bool {
    if states.is_empty() {
        return true;
    }
    let ok = c.state.as_ref().is_some_and(|st| states.contains(st));
    if ok {
        why.push(format!("state {}", c.state.as_deref().unwrap_or("")));
    }
    ok
}

fn workspaces_match(c: &Candidate, f: &WorkspacesFilters, now: OffsetDateTime, why: &mut Vec<String>) -> bool {
    if !(attribute(c, "directoryId", &f.directory_id, why)
        && attribute(c, "bundleId", &f.bundle_id, why)
        && attribute(c, "userName", &f.user_name, why)
        && state_in(c, &f.states, why)
        && one_of(c, "runningMode", &f.running_modes, why))
    {
        return false;
    }
    match (f.idle_days, idle_for(c, now)) {
        (None, _) => true,
        (Some(days), Some(idle)) if idle >= i64::from(days) => {
            match (c.last_connected, c.tags.get(FIRST_SEEN_TAG)) {
                (None, Some(seen)) => {
                    why.push(format!("never connected, first seen {seen}: idle {idle} days (≥ {days})"))
                }
                _ => why.push(format!("idle {idle} days (≥ {days})")),
            }
            true
        }
        // Busy, connected now, or never connected and not yet dated: nothing proves it
        // idle, and a permanent action needs proof.
        (Some(_), _) => false,
    }
}

fn target_instances_match(c: &Candidate, f: &TargetInstancesFilters, _: OffsetDateTime, why: &mut Vec<String>) -> bool {
    // Only servers with a launched test or cutover instance are selected.
    state_in(c, &f.lifecycle_states, why) && c.has_launched_instance == Some(true)
}

fn provisioned_product_match(
    c: &Candidate,
    f: &ProvisionedProductFilters,
    now: OffsetDateTime,
    why: &mut Vec<String>,
) -> bool {
    if !(attribute(c, "productId", &f.product_id, why)
        && attribute(c, "provisioningArtifactId", &f.provisioning_artifact_id, why)
        && state_in(c, &f.statuses, why))
    {
        return false;
    }
    match (f.older_than_days, c.created.map(|t| (now - t).whole_days())) {
        (None, _) => true,
        (Some(days), Some(age)) if age >= i64::from(days) => {
            why.push(format!("created {age} days ago (≥ {days})"));
            true
        }
        (Some(_), _) => false,
    }
}

/// Whole days since the last connection, or, when it never connected, since it was
/// first seen (its first-seen tag) or created. A WorkSpace connected right now is
/// not idle, whatever its timestamp says.
fn idle_for(c: &Candidate, now: OffsetDateTime) -> Option<i64> {
    if c.connected {
        return None;
    }
    // Only a WorkSpace the status says never connected is dated by its tag: one the
    // status did not answer for is unknown, not idle.
    let first_seen = || c.tags.get(FIRST_SEEN_TAG).and_then(|v| parse_expiry(v)).filter(|_| c.never_connected);
    c.last_connected.or_else(first_seen).or(c.created).map(|since| (now - since).whole_days())
}

fn one_of(c: &Candidate, name: &str, wanted: &[String], why: &mut Vec<String>) -> bool {
    if wanted.is_empty() {
        return true;
    }
    match c.attributes.get(name) {
        Some(value) if wanted.contains(value) => {
            why.push(format!("{name} {value}"));
            true
        }
        _ => false,
    }
}

/// An ISO-8601 date (`2026-12-31`, the start of that day, UTC) or an RFC 3339 date-time.
pub fn parse_expiry(value: &str) -> Option<OffsetDateTime> {
    let value = value.trim();
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(at);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(value, format).ok().map(|d| d.midnight().assume_utc())
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
