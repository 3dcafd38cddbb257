//! The health tracker: every rule of PROTOCOL.md §4, and nothing else.
//!
//! Pure and synchronous: it never reads the clock, awaits, or touches a
//! socket. [`Tracker::handle`] takes an [`Input`] and the current time and
//! returns the [`Effect`]s to carry out; the reconciler does the IO and feeds
//! outcomes back in as inputs. Work per input is linear in the input's size:
//! only the experiments an input touches are judged again, except when a
//! whole feed falls silent or returns.

mod alert;
mod experiment;
mod health;
mod ring;
mod view;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

pub use alert::{AlertKind, SystemAlert};
pub use experiment::Experiment;
pub use health::{Health, HealthEvent};
pub use ring::EventRing;
pub use view::{ExperimentView, Snapshot};

/// A full stream topic (`pend00-st-data`), shared by every map that names the stream.
pub type Topic = Arc<str>;

use crate::config::HealthConfig;
use crate::report::{stream_stub, Report};
use experiment::{FeedsFresh, Stream};
use health::{MISSING_REQUIRED, UNHEALTHY};

/// After a change that failed transiently, or read back other than asked, wait this long before asking again.
pub const AVAILABILITY_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A change's reason names at most this many issues, then how many more there are.
const REASON_MAX_ISSUES: usize = 3;

/// A change's reason (it travels in the PUT's URL) is never longer than this, in bytes.
const REASON_MAX_BYTES: usize = 480;

/// One resource of the booking manifest, already mapped to stream topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Resource name in the booking system (`r-pend00`).
    pub name: String,
    /// Topic stub of the experiment (`pend00`).
    pub topic: String,
    /// Full topics of required streams (`pend00-st-data`).
    pub required: Vec<String>,
}

/// Availability of one resource as read from the booking system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub resource: String,
    pub available: bool,
}

/// Everything the tracker learns from the outside world.
#[derive(Debug, Clone)]
pub enum Input {
    /// A complete relay statistics snapshot.
    Relay(Vec<Report>),
    /// A complete jump statistics snapshot.
    Jump(Vec<Report>),
    /// The booking system's resource list.
    Manifest(Vec<Resource>),
    /// Availabilities read from the booking system in one round.
    Availability(Vec<Observed>),
    /// The outcome of a requested change: the value read back, or why there is none.
    AvailabilityOutcome {
        resource: String,
        result: Result<bool, ChangeError>,
    },
    /// Time passed; lets deadlines (grace, silence, retries) fire.
    Tick,
}

/// Why a requested change left no value read back, which decides when it is asked for again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// Might work soon (a timeout, an unreachable booking API, a 5xx): asked again after
    /// [`AVAILABILITY_RETRY_AFTER`].
    Transient(String),
    /// Refused for a reason that asking again will not change (a 4xx, an unusable answer):
    /// asked again only once the booking system has been read again (the next manifest round).
    Refused(String),
    /// A dry run: nothing was sent. Decided again only once the booking system has been read again.
    DryRun,
}

/// A request to the booking system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityChange {
    pub resource: String,
    pub topic: String,
    pub available: bool,
    pub reason: String,
}

/// One health event worth telling maintainers about.
#[derive(Debug, Clone, PartialEq)]
pub struct News {
    pub topic: String,
    pub resource: Option<String>,
    pub event: HealthEvent,
    /// What the booking system holds (or is being told to hold) now; `None` if unmanaged or unknown.
    pub bookable: Option<bool>,
}

/// What the reconciler must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    SetAvailability(AvailabilityChange),
    /// New health events from one evaluation, for the email digest.
    Notify(Vec<News>),
    /// A system alert was raised (`raised`) or cleared.
    Alert {
        alert: SystemAlert,
        raised: bool,
    },
}

/// What the tracker knows of one feed.
#[derive(Debug, Default)]
struct Feed {
    /// When the latest snapshot arrived.
    last: Option<DateTime<Utc>>,
    /// Experiments present in the latest snapshot.
    present: Vec<usize>,
    fresh: bool,
}

pub struct Tracker {
    cfg: HealthConfig,
    started: DateTime<Utc>,
    /// Never shrinks, so indices stay valid; experiments that leave stay visible.
    experiments: Vec<Experiment>,
    index: HashMap<String, usize>,
    by_resource: HashMap<String, usize>,
    relay: Feed,
    jump: Feed,
    alerts: BTreeMap<AlertKind, SystemAlert>,
    /// When each experiment's startup grace ends.
    grace: BTreeSet<(DateTime<Utc>, usize)>,
    /// When a failed availability change may be retried.
    retries: BTreeSet<(DateTime<Utc>, usize)>,
    /// Experiments whose unbooking the mass-change guard holds back.
    held: Vec<usize>,
    /// Stamp of the current relay/jump snapshot, to reset per-experiment evidence once.
    generation: u64,
    stamps: Vec<u64>,
    changed: bool,
}

impl Tracker {
    pub fn new(cfg: HealthConfig, now: DateTime<Utc>) -> Self {
        Self {
            cfg,
            started: now,
            experiments: Vec::new(),
            index: HashMap::new(),
            by_resource: HashMap::new(),
            relay: Feed {
                fresh: true,
                ..Feed::default()
            },
            jump: Feed {
                fresh: true,
                ..Feed::default()
            },
            alerts: BTreeMap::new(),
            grace: BTreeSet::new(),
            retries: BTreeSet::new(),
            held: Vec::new(),
            generation: 0,
            stamps: Vec::new(),
            changed: true,
        }
    }

    /// Applies one input at time `now` and returns what must be done.
    pub fn handle(&mut self, now: DateTime<Utc>, input: Input) -> Vec<Effect> {
        let mut effects = Vec::new();
        let mut touched = match input {
            Input::Tick => Vec::new(),
            Input::Relay(reports) => self.apply_relay(now, reports),
            Input::Jump(reports) => self.apply_jump(now, reports),
            Input::Manifest(resources) => self.apply_manifest(now, resources),
            Input::Availability(observed) => self.apply_observed(observed),
            Input::AvailabilityOutcome { resource, result } => self.apply_outcome(now, &resource, result),
        };
        if self.check_feeds(now, &mut effects) {
            touched = (0..self.experiments.len()).collect();
        }
        self.expire(now, &mut touched);
        // An alert raised or cleared is news for readers even with no experiment to judge.
        self.changed |= !effects.is_empty() || !touched.is_empty();
        if touched.is_empty() {
            return effects;
        }
        touched.sort_unstable();
        touched.dedup();
        let news: Vec<usize> = touched.iter().copied().filter(|&i| self.evaluate(now, i)).collect();
        self.decide(now, touched, &mut effects);
        if !news.is_empty() {
            effects.push(Effect::Notify(news.into_iter().map(|i| self.news(i)).collect()));
        }
        effects
    }

    /// Whether anything visible changed since the last call (for publishing snapshots).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    pub fn experiment(&self, topic: &str) -> Option<&Experiment> {
        self.index.get(topic).map(|&i| &self.experiments[i])
    }

    pub fn experiments(&self) -> impl Iterator<Item = &Experiment> {
        self.experiments.iter()
    }

    pub fn alerts(&self) -> impl Iterator<Item = &SystemAlert> {
        self.alerts.values()
    }

    fn upsert(&mut self, topic: &str, now: DateTime<Utc>) -> usize {
        if let Some(&i) = self.index.get(topic) {
            return i;
        }
        let i = self.experiments.len();
        self.experiments.push(Experiment::new(topic, now));
        self.stamps.push(0);
        self.index.insert(topic.to_string(), i);
        self.grace.insert((now + self.cfg.startup, i));
        i
    }

    fn apply_relay(&mut self, now: DateTime<Utc>, reports: Vec<Report>) -> Vec<usize> {
        // Until the relay first speaks nothing is unbooked; once it has, everyone is judged on its word.
        let first = self.relay.last.replace(now).is_none();
        self.generation += 1;
        // Sized like the last snapshot: growing a large vector makes the allocator sweep its free lists.
        let mut present = Vec::with_capacity(self.relay.present.len());
        for r in reports {
            if !r.has_scope("expt") {
                continue;
            }
            let Some(stub) = stream_stub(&r.topic) else { continue };
            let i = self.upsert(stub, now);
            let exp = &mut self.experiments[i];
            if self.stamps[i] != self.generation {
                self.stamps[i] = self.generation;
                exp.last_checked_streams = Some(now);
                present.push(i);
            }
            let active = r.stats.tx.last.0.is_some_and(|d| d <= self.cfg.last_active);
            let seen = self.generation;
            // Updated in place, not rebuilt: a frame mostly names the streams the last one did.
            match exp.streams.get_mut(r.topic.as_str()) {
                // Several connections on one topic in this snapshot: keep the healthiest.
                Some(s) if s.seen == seen && (s.active || !active) => {}
                Some(s) => {
                    *s = Stream {
                        report: Arc::new(r),
                        active,
                        seen,
                    }
                }
                None => {
                    let topic = Topic::from(r.topic.as_str());
                    let report = Arc::new(r);
                    exp.streams.insert(topic, Stream { report, active, seen });
                }
            }
        }
        // A stream absent from this snapshot is gone.
        for &i in &present {
            let seen = self.generation;
            self.experiments[i].streams.retain(|_, s| s.seen == seen);
        }
        let previous = std::mem::replace(&mut self.relay.present, present);
        for &i in &previous {
            if self.stamps[i] != self.generation {
                self.experiments[i].streams.clear();
            }
        }
        let mut touched = Vec::with_capacity(previous.len() + self.relay.present.len());
        touched.extend(previous);
        touched.extend_from_slice(&self.relay.present);
        if first {
            touched.extend(0..self.experiments.len());
        }
        touched
    }

    fn apply_jump(&mut self, now: DateTime<Utc>, reports: Vec<Report>) -> Vec<usize> {
        self.jump.last = Some(now);
        self.generation += 1;
        let mut present = Vec::new();
        for r in reports {
            if !r.has_scope("host") || r.topic.is_empty() {
                continue;
            }
            let i = self.upsert(&r.topic, now);
            if self.stamps[i] != self.generation {
                self.stamps[i] = self.generation;
                let exp = &mut self.experiments[i];
                exp.jump = Some(Arc::new(r));
                exp.last_checked_jump = Some(now);
                present.push(i);
            }
        }
        let mut touched = std::mem::replace(&mut self.jump.present, present.clone());
        for &i in &touched {
            if self.stamps[i] != self.generation {
                self.experiments[i].jump = None;
            }
        }
        touched.extend(present);
        touched
    }

    /// Takes a new manifest. An experiment is managed by one resource only: a
    /// later entry naming an experiment (or a resource name) already taken in
    /// this manifest is skipped, and the first keeps it. `manifest::map` has
    /// already left such entries out, saying why; this only keeps the
    /// bookkeeping sound whoever sends the manifest.
    fn apply_manifest(&mut self, now: DateTime<Utc>, resources: Vec<Resource>) -> Vec<usize> {
        let mut by_resource = HashMap::with_capacity(resources.len());
        let mut claimed = HashSet::with_capacity(resources.len());
        let mut touched = Vec::with_capacity(resources.len());
        for res in resources {
            if res.topic.is_empty() || res.name.is_empty() || by_resource.contains_key(&res.name) {
                continue;
            }
            let i = self.upsert(&res.topic, now);
            if !claimed.insert(i) {
                continue;
            }
            let exp = &mut self.experiments[i];
            if exp.resource.as_deref() != Some(&res.name) {
                exp.availability = Default::default();
            }
            exp.resource = Some(res.name.clone());
            exp.required = res.required.into_iter().map(Topic::from).collect();
            exp.last_found_in_manifest = Some(now);
            by_resource.insert(res.name, i);
            touched.push(i);
        }
        for (name, i) in std::mem::replace(&mut self.by_resource, by_resource) {
            if self.by_resource.get(&name) != Some(&i) && self.experiments[i].resource.as_ref() == Some(&name) {
                let exp = &mut self.experiments[i];
                exp.resource = None;
                exp.required.clear();
                exp.availability = Default::default();
                touched.push(i);
            }
        }
        touched
    }

    fn apply_observed(&mut self, observed: Vec<Observed>) -> Vec<usize> {
        let mut touched = Vec::with_capacity(observed.len());
        for o in observed {
            let Some(&i) = self.by_resource.get(&o.resource) else {
                continue;
            };
            let a = &mut self.experiments[i].availability;
            // A read racing a change in flight may predate it; the change's own outcome decides.
            if a.in_flight.is_none() {
                a.observed = Some(o.available);
                a.until_read = false;
                touched.push(i);
            }
        }
        touched
    }

    fn apply_outcome(&mut self, now: DateTime<Utc>, resource: &str, result: Result<bool, ChangeError>) -> Vec<usize> {
        let Some(&i) = self.by_resource.get(resource) else {
            return Vec::new();
        };
        let a = &mut self.experiments[i].availability;
        let requested = a.in_flight.take();
        match result {
            Ok(v) => {
                a.observed = Some(v);
                if requested.is_some_and(|r| r != v) {
                    a.retry_after = Some(now + AVAILABILITY_RETRY_AFTER);
                }
            }
            Err(ChangeError::Transient(_)) => a.retry_after = Some(now + AVAILABILITY_RETRY_AFTER),
            // What the booking system holds is unchanged and known: `observed` stays as read.
            Err(ChangeError::Refused(_) | ChangeError::DryRun) => a.until_read = true,
        }
        if let Some(t) = a.retry_after {
            self.retries.insert((t, i));
        }
        vec![i]
    }

    /// Updates feed freshness; true when a feed fell silent or came back (everyone must be judged again).
    fn check_feeds(&mut self, now: DateTime<Utc>, effects: &mut Vec<Effect>) -> bool {
        let mut flipped = false;
        for kind in [AlertKind::RelaySilent, AlertKind::JumpSilent] {
            let feed = if kind == AlertKind::RelaySilent {
                &mut self.relay
            } else {
                &mut self.jump
            };
            let fresh = now < feed.last.unwrap_or(self.started) + self.cfg.last_checked;
            if fresh == feed.fresh {
                continue;
            }
            feed.fresh = fresh;
            flipped = true;
            let alert = if fresh {
                self.alerts.remove(&kind)
            } else {
                let a = SystemAlert::feed_silent(kind, now, feed.last);
                self.alerts.insert(kind, a.clone());
                Some(a)
            };
            if let Some(alert) = alert {
                effects.push(Effect::Alert { alert, raised: !fresh });
            }
        }
        flipped
    }

    /// Pops grace periods and retry waits that have ended.
    fn expire(&mut self, now: DateTime<Utc>, touched: &mut Vec<usize>) {
        while let Some(&(t, i)) = self.grace.first() {
            if t > now {
                break;
            }
            self.grace.pop_first();
            touched.push(i);
        }
        while let Some(&(t, i)) = self.retries.first() {
            if t > now {
                break;
            }
            self.retries.pop_first();
            let a = &mut self.experiments[i].availability;
            if a.retry_after.is_some_and(|r| r <= now) {
                a.retry_after = None;
            }
            touched.push(i);
        }
    }

    /// Judges experiment `i`; records a health event on change. True when it is news for the email.
    fn evaluate(&mut self, now: DateTime<Utc>, i: usize) -> bool {
        let feeds = FeedsFresh {
            relay: self.relay.fresh,
            jump: self.jump.fresh,
        };
        let exp = &mut self.experiments[i];
        exp.health = exp.judge(feeds);
        if exp.in_grace(now, self.cfg.startup) {
            return false;
        }
        let first = match &exp.recorded {
            Some(r) if r.same_as(&exp.health) => return false,
            Some(_) => false,
            None => true,
        };
        exp.record(now, self.cfg.events);
        exp.recorded = Some(exp.health.clone());
        // A restart must not mail a list of healthy rigs.
        !first || !exp.health.healthy
    }

    /// Requests availability changes where health and the booking system disagree.
    fn decide(&mut self, now: DateTime<Utc>, mut candidates: Vec<usize>, effects: &mut Vec<Effect>) {
        candidates.append(&mut self.held);
        candidates.sort_unstable();
        candidates.dedup();
        let mut changes = Vec::new();
        let mut downs = Vec::new();
        for i in candidates {
            let exp = &self.experiments[i];
            let a = &exp.availability;
            if exp.resource.is_none()
                || exp.in_grace(now, self.cfg.startup)
                || a.in_flight.is_some()
                || a.until_read
                || a.retry_after.is_some_and(|t| t > now)
            {
                continue;
            }
            let want = exp.health.bookable;
            match a.observed {
                Some(has) if has != want && want => changes.push(i),
                // Relay silence, or a relay not yet heard from, means we cannot see, not that the rig broke.
                Some(has) if has != want && self.relay.fresh && self.relay.last.is_some() => downs.push(i),
                _ => {}
            }
        }
        let managed = self.by_resource.len();
        let mass = self.cfg.mass_change_guard && downs.len() >= 3 && downs.len() * 2 > managed;
        if mass {
            let alert = SystemAlert::mass_change(now, downs.len(), managed);
            if self.alerts.get(&AlertKind::MassChangeHeld).map(|a| &a.message) != Some(&alert.message) {
                self.alerts.insert(AlertKind::MassChangeHeld, alert.clone());
                effects.push(Effect::Alert { alert, raised: true });
            }
            self.held = downs;
        } else {
            if let Some(alert) = self.alerts.remove(&AlertKind::MassChangeHeld) {
                effects.push(Effect::Alert { alert, raised: false });
            }
            changes.extend(downs);
        }
        for i in changes {
            let exp = &mut self.experiments[i];
            let available = exp.health.bookable;
            exp.availability.in_flight = Some(available);
            effects.push(Effect::SetAvailability(AvailabilityChange {
                resource: exp.resource.clone().unwrap_or_default(),
                topic: exp.topic.clone(),
                available,
                reason: reason(exp, now),
            }));
        }
    }

    fn news(&self, i: usize) -> News {
        let exp = &self.experiments[i];
        News {
            topic: exp.topic.clone(),
            resource: exp.resource.clone(),
            event: exp
                .events
                .back()
                .cloned()
                .expect("news is made only right after recording an event"),
            bookable: exp.availability.in_flight.or(exp.availability.observed),
        }
    }
}

/// `status: missing required pend00-st-data at 2026-11-21T10:00:00Z`.
///
/// It travels in the PUT's URL, so it names at most [`REASON_MAX_ISSUES`]
/// issues (then `and N more`) and stays within [`REASON_MAX_BYTES`].
fn reason(exp: &Experiment, now: DateTime<Utc>) -> String {
    let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    if exp.health.bookable {
        return format!("status: all required streams healthy at {at}");
    }
    let why: Vec<&str> = exp
        .health
        .issues
        .iter()
        .map(String::as_str)
        .filter(|i| {
            i.starts_with(MISSING_REQUIRED) || i.strip_prefix(UNHEALTHY).is_some_and(|t| exp.required.contains(t))
        })
        .collect();
    let budget = REASON_MAX_BYTES - "status: ".len() - " at ".len() - at.len();
    format!("status: {} at {at}", issue_list(&why, budget))
}

/// `a, b, c and 4 more`, within `budget` bytes: whole issues while they fit,
/// the first one cut short (`…`) if even it alone does not.
fn issue_list(issues: &[&str], budget: usize) -> String {
    // Room kept for the longest possible tail.
    let tail = |more: usize| {
        if more == 0 {
            String::new()
        } else {
            format!(" and {more} more")
        }
    };
    let room = budget - tail(issues.len()).len();
    let mut list = String::new();
    let mut named = 0;
    for issue in issues.iter().take(REASON_MAX_ISSUES) {
        let sep = if named == 0 { "" } else { ", " };
        if list.len() + sep.len() + issue.len() > room {
            break;
        }
        list.push_str(sep);
        list.push_str(issue);
        named += 1;
    }
    if named == 0 {
        if let Some(first) = issues.first() {
            let mut end = room - "…".len();
            while !first.is_char_boundary(end) {
                end -= 1;
            }
            list = format!("{}…", &first[..end]);
            named = 1;
        }
    }
    list + &tail(issues.len() - named)
}
