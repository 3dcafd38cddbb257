//! The simulated lab of `status demo`: experiments, their streams and jump
//! hosts, what the booking manifest says about them, and what the relay and
//! the jump would report about them at a given moment.
//!
//! Pure: time comes in as the offset since the lab started; it never sleeps,
//! spawns or touches a socket. A fault changes the state of a stream or a
//! host, and the reports follow from the states, so ages are real: a stalled
//! stream's `tx.last` grows from the moment it stalled, a stream that never
//! started reports `Never`, a vanished stream or a dropped host is simply
//! absent from the next snapshot.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::report::{Last, Report, RxTx, Statistics};

/// One kind of stream a rig may have.
#[derive(Debug)]
struct StreamKind {
    name: &'static str,
    /// Frames per second while sending.
    fps: f64,
    /// Mean frame size in bytes.
    size: f64,
    /// Listed in the booking manifest (its loss makes the rig unbookable).
    required: bool,
}

/// Every rig has data; video and cam come by the seed. Cam is an extra stream the booking system does not require.
const DATA: StreamKind = StreamKind {
    name: "data",
    fps: 20.0,
    size: 120.0,
    required: true,
};
const VIDEO: StreamKind = StreamKind {
    name: "video",
    fps: 25.0,
    size: 18_000.0,
    required: true,
};
const CAM: StreamKind = StreamKind {
    name: "cam",
    fps: 10.0,
    size: 9_000.0,
    required: false,
};

/// Topic prefixes and descriptions of the kinds of rig in the lab.
const RIGS: [(&str, &str); 6] = [
    ("pend", "Pendulum"),
    ("spin", "Spinning disk"),
    ("trus", "Truss"),
    ("wave", "Ripple tank"),
    ("heat", "Heat exchanger"),
    ("lens", "Optics bench"),
];

/// A lab connection token is valid this long after it connected (only shown in reports).
const CONNECTION_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// What a stream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    Sending,
    /// Connected, last frame at this offset, nothing since.
    Stalled {
        at: Duration,
    },
    /// Connected, never sent a frame.
    Never,
    /// Not connected: absent from the relay's reports.
    Gone,
}

#[derive(Debug)]
struct Stream {
    kind: &'static StreamKind,
    state: StreamState,
    /// When the current connection was made, as an offset.
    connected: Duration,
}

#[derive(Debug)]
struct Rig {
    topic: String,
    description: String,
    streams: Vec<Stream>,
    jump: bool,
    /// Taken over by an induced failure: the fault script leaves it alone.
    held: bool,
}

impl Rig {
    fn stream(&mut self, name: &str) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|s| s.kind.name == name)
    }
}

/// Something that happens to the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The stream reconnects and never sends (a rig restarted with a broken sensor).
    NeverStarts {
        rig: usize,
        stream: &'static str,
    },
    /// The stream stays connected but stops sending.
    Stalls {
        rig: usize,
        stream: &'static str,
    },
    /// The stream's connection is gone.
    Vanishes {
        rig: usize,
        stream: &'static str,
    },
    /// The stream sends again (reconnecting if it was gone).
    Recovers {
        rig: usize,
        stream: &'static str,
    },
    JumpDrops {
        rig: usize,
    },
    JumpReturns {
        rig: usize,
    },
    /// The relay keeps its sockets open but sends no statistics.
    RelaySilent,
    RelaySpeaks,
}

/// No experiment of that topic in the lab.
#[derive(Debug, thiserror::Error)]
#[error("no experiment {0:?} in the demo lab")]
pub struct UnknownExperiment(pub String);

/// The whole simulated lab.
#[derive(Debug)]
pub struct Lab {
    rigs: Vec<Rig>,
    index: HashMap<String, usize>,
    relay_silent: bool,
    /// Wall-clock time of offset zero, for the reports' timestamps.
    started: DateTime<Utc>,
    /// Jitters the age of sending streams so the numbers look alive.
    jitter: fastrand::Rng,
}

impl Lab {
    /// `experiments` rigs whose kinds, numbers and streams follow from `seed`; all healthy.
    pub fn new(seed: u64, experiments: usize, started: DateTime<Utc>) -> Lab {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut numbers = [0usize; RIGS.len()];
        let mut rigs = Vec::with_capacity(experiments);
        for _ in 0..experiments {
            let kind = rng.usize(..RIGS.len());
            let (prefix, what) = RIGS[kind];
            let n = numbers[kind];
            numbers[kind] += 1;
            let mut kinds = vec![&DATA];
            if rng.u8(..3) < 2 {
                kinds.push(&VIDEO);
            }
            if rng.u8(..3) == 0 {
                kinds.push(&CAM);
            }
            rigs.push(Rig {
                topic: format!("{prefix}{n:02}"),
                description: format!("{what} {n:02}"),
                streams: kinds
                    .into_iter()
                    .map(|kind| Stream {
                        kind,
                        state: StreamState::Sending,
                        connected: Duration::ZERO,
                    })
                    .collect(),
                jump: true,
                held: false,
            });
        }
        let index = rigs.iter().enumerate().map(|(i, r)| (r.topic.clone(), i)).collect();
        Lab {
            rigs,
            index,
            relay_silent: false,
            started,
            jitter: fastrand::Rng::with_seed(seed.rotate_left(17)),
        }
    }

    /// How many rigs the lab has; they are numbered from zero in [`Fault`]s.
    pub fn rigs(&self) -> usize {
        self.rigs.len()
    }

    /// Topic stubs, in rig order.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.rigs.iter().map(|r| r.topic.as_str())
    }

    /// The names of rig `rig`'s streams (`data`, `video`, `cam`).
    pub fn streams(&self, rig: usize) -> impl Iterator<Item = &'static str> + '_ {
        self.rigs[rig].streams.iter().map(|s| s.kind.name)
    }

    pub fn relay_silent(&self) -> bool {
        self.relay_silent
    }

    /// The booking manifest (PROTOCOL.md §3): `r-<topic>` → topic stub and required streams.
    pub fn manifest(&self) -> Map<String, Value> {
        self.rigs
            .iter()
            .map(|r| {
                let required: Vec<String> = r
                    .streams
                    .iter()
                    .filter(|s| s.kind.required)
                    .map(|s| format!("st-{}", s.kind.name))
                    .collect();
                (
                    resource(&r.topic),
                    json!({
                        "topic_stub": r.topic,
                        "streams": required,
                        "description": r.description,
                        "tests": [],
                        "config_url": "",
                    }),
                )
            })
            .collect()
    }

    /// Applies `fault` at offset `now`; says what happened, or `None` when it changes nothing
    /// (the rig is held by an induced failure, or already in that state).
    pub fn apply(&mut self, fault: Fault, now: Duration) -> Option<String> {
        match fault {
            Fault::RelaySilent | Fault::RelaySpeaks => {
                let silent = fault == Fault::RelaySilent;
                if self.relay_silent == silent {
                    return None;
                }
                self.relay_silent = silent;
                Some(if silent {
                    "the relay goes silent: sockets open, no statistics".into()
                } else {
                    "the relay sends statistics again".into()
                })
            }
            Fault::JumpDrops { rig } | Fault::JumpReturns { rig } => {
                let up = matches!(fault, Fault::JumpReturns { .. });
                let r = self.rigs.get_mut(rig).filter(|r| !r.held && r.jump != up)?;
                r.jump = up;
                Some(format!(
                    "{}: jump host {}",
                    r.topic,
                    if up { "reconnects" } else { "drops" }
                ))
            }
            Fault::NeverStarts { rig, stream }
            | Fault::Stalls { rig, stream }
            | Fault::Vanishes { rig, stream }
            | Fault::Recovers { rig, stream } => {
                let r = self.rigs.get_mut(rig).filter(|r| !r.held)?;
                let topic = r.topic.clone();
                let s = r.stream(stream)?;
                let (state, what) = match fault {
                    Fault::NeverStarts { .. } => (StreamState::Never, "reconnects and never sends"),
                    Fault::Stalls { .. } if s.state == StreamState::Sending => {
                        (StreamState::Stalled { at: now }, "stalls: connected, no frames")
                    }
                    Fault::Stalls { .. } => return None,
                    Fault::Vanishes { .. } => (StreamState::Gone, "disappears from the relay"),
                    _ => (StreamState::Sending, "sends again"),
                };
                if s.state == state {
                    return None;
                }
                if matches!(s.state, StreamState::Gone) || state == StreamState::Never {
                    s.connected = now;
                }
                s.state = state;
                Some(format!("{topic}-st-{stream} {what}"))
            }
        }
    }

    /// Takes rig `topic` offline for good: every stream and its jump host vanish,
    /// and the fault script no longer touches it.
    pub fn induce_failure(&mut self, topic: &str) -> Result<String, UnknownExperiment> {
        let i = *self
            .index
            .get(topic)
            .ok_or_else(|| UnknownExperiment(topic.to_string()))?;
        let rig = &mut self.rigs[i];
        rig.held = true;
        rig.jump = false;
        for s in &mut rig.streams {
            s.state = StreamState::Gone;
        }
        Ok(format!(
            "{topic}: failure induced: the rig goes offline (every stream and its jump host vanish)"
        ))
    }

    /// The relay's statistics at offset `now`: each present stream's own connection, and a viewer on each video.
    pub fn relay_reports(&mut self, now: Duration) -> Vec<Report> {
        let mut reports = Vec::new();
        for (i, rig) in self.rigs.iter().enumerate() {
            for s in &rig.streams {
                let (last, fps, size) = match s.state {
                    StreamState::Gone => continue,
                    StreamState::Never => (None, 0.0, 0.0),
                    StreamState::Stalled { at } => {
                        let frame = Duration::from_secs_f64(1.0 / s.kind.fps);
                        (Some(now.saturating_sub(at) + frame), 0.0, s.kind.size)
                    }
                    StreamState::Sending => {
                        let gap = self.jitter.f64() / s.kind.fps;
                        let fps = s.kind.fps * (0.9 + 0.2 * self.jitter.f64());
                        (Some(Duration::from_secs_f64(gap)), fps, s.kind.size)
                    }
                };
                let topic = format!("{}-st-{}", rig.topic, s.kind.name);
                let connected = self.at(s.connected);
                let own = Report {
                    topic: topic.clone(),
                    can_read: true,
                    can_write: true,
                    connected: Some(connected),
                    expires_at: Some(connected + CONNECTION_LIFETIME),
                    remote_addr: rig_address(i),
                    user_agent: "Go-http-client/1.1".into(),
                    scopes: vec!["read".into(), "write".into(), "expt".into()],
                    stats: RxTx {
                        tx: Statistics {
                            last: Last(last),
                            size,
                            fps,
                        },
                        rx: Statistics::default(),
                    },
                };
                if s.kind.name == VIDEO.name {
                    reports.push(viewer(&own, fps, size));
                }
                reports.push(own);
            }
        }
        reports
    }

    /// The jump's statistics: one host connection per rig whose jump is up.
    pub fn jump_reports(&self) -> Vec<Report> {
        self.rigs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.jump)
            .map(|(i, r)| Report {
                topic: r.topic.clone(),
                can_read: true,
                can_write: true,
                connected: Some(self.started),
                remote_addr: rig_address(i),
                user_agent: "jump-agent/1.0".into(),
                scopes: vec!["host".into()],
                ..Report::default()
            })
            .collect()
    }

    fn at(&self, offset: Duration) -> DateTime<Utc> {
        self.started + chrono::TimeDelta::from_std(offset).unwrap_or(chrono::TimeDelta::zero())
    }
}

/// The booking system's name for the experiment `topic`.
pub fn resource(topic: &str) -> String {
    format!("r-{topic}")
}

/// A documentation address (TEST-NET-1) per rig.
fn rig_address(rig: usize) -> String {
    format!("192.0.2.{}", rig % 254 + 1)
}

/// A student watching the stream: read scope only, so the service must ignore it.
fn viewer(own: &Report, fps: f64, size: f64) -> Report {
    Report {
        can_write: false,
        remote_addr: "198.51.100.23".into(),
        user_agent: "Mozilla/5.0".into(),
        scopes: vec!["read".into()],
        stats: RxTx {
            tx: Statistics::default(),
            rx: Statistics {
                last: own.stats.tx.last,
                size,
                fps,
            },
        },
        ..own.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(n: usize) -> Lab {
        Lab::new(7, n, Utc::now())
    }

    fn topic(lab: &Lab, rig: usize) -> String {
        lab.topics().nth(rig).unwrap().to_string()
    }

    fn own<'a>(reports: &'a [Report], topic: &str) -> Option<&'a Report> {
        reports.iter().find(|r| r.topic == topic && r.has_scope("expt"))
    }

    #[test]
    fn the_same_seed_builds_the_same_lab_and_every_rig_has_one_to_three_streams() {
        let (a, b) = (lab(40), lab(40));
        assert_eq!(a.topics().collect::<Vec<_>>(), b.topics().collect::<Vec<_>>());
        for i in 0..a.rigs() {
            let streams: Vec<_> = a.streams(i).collect();
            assert_eq!(streams, b.streams(i).collect::<Vec<_>>());
            assert!((1..=3).contains(&streams.len()) && streams[0] == "data", "{streams:?}");
        }
        let other = Lab::new(8, 40, Utc::now());
        assert_ne!(a.topics().collect::<Vec<_>>(), other.topics().collect::<Vec<_>>());
        let mut unique: Vec<_> = a.topics().collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 40, "topics are unique");
    }

    #[test]
    fn the_manifest_requires_data_and_video_but_not_cam() {
        let lab = lab(30);
        let manifest = crate::book::manifest::map(lab.manifest());
        assert!(manifest.skipped.is_empty(), "{:?}", manifest.skipped);
        assert_eq!(manifest.resources.len(), 30);
        for (i, res) in manifest.resources.iter().enumerate() {
            assert_eq!(res.name, resource(&res.topic));
            assert!(res.required.iter().all(|t| !t.ends_with("-st-cam")), "{res:?}");
            assert!(res.required.contains(&format!("{}-st-data", res.topic)), "{i}: {res:?}");
        }
    }

    #[test]
    fn a_stalled_stream_ages_and_recovers() {
        let mut lab = lab(3);
        let topic = format!("{}-st-data", topic(&lab, 0));
        let fresh = lab.relay_reports(Duration::from_secs(5));
        assert!(own(&fresh, &topic).unwrap().stats.tx.last.0.unwrap() < Duration::from_millis(100));

        let said = lab.apply(Fault::Stalls { rig: 0, stream: "data" }, Duration::from_secs(5));
        assert!(said.unwrap().contains("stalls"));
        let later = lab.relay_reports(Duration::from_secs(12));
        let r = own(&later, &topic).unwrap();
        let age = r.stats.tx.last.0.unwrap();
        assert!(
            age >= Duration::from_secs(7) && age < Duration::from_millis(7100),
            "{age:?}"
        );
        assert_eq!(r.stats.tx.fps, 0.0);

        lab.apply(Fault::Recovers { rig: 0, stream: "data" }, Duration::from_secs(13));
        let back = lab.relay_reports(Duration::from_secs(14));
        assert!(own(&back, &topic).unwrap().stats.tx.last.0.unwrap() < Duration::from_millis(100));
    }

    #[test]
    fn never_vanished_and_jump_drops_show_in_the_reports() {
        let mut lab = lab(2);
        let t0 = topic(&lab, 0);
        let t1 = topic(&lab, 1);
        let now = Duration::from_secs(1);
        lab.apply(Fault::NeverStarts { rig: 0, stream: "data" }, now);
        lab.apply(Fault::Vanishes { rig: 1, stream: "data" }, now);
        lab.apply(Fault::JumpDrops { rig: 1 }, now);
        let relay = lab.relay_reports(now);
        let never = own(&relay, &format!("{t0}-st-data")).unwrap();
        assert!(never.stats.tx.last.never());
        assert_eq!(never.connected, Some(lab.at(now)), "a reconnection is a new connection");
        assert!(own(&relay, &format!("{t1}-st-data")).is_none());
        let jump: Vec<_> = lab.jump_reports().into_iter().map(|r| r.topic).collect();
        assert_eq!(jump, [t0]);
    }

    #[test]
    fn viewers_are_read_only_and_the_wire_form_round_trips() {
        let mut lab = lab(20);
        let reports = lab.relay_reports(Duration::from_secs(1));
        let viewers: Vec<_> = reports.iter().filter(|r| !r.has_scope("expt")).collect();
        assert!(!viewers.is_empty());
        assert!(viewers
            .iter()
            .all(|v| v.topic.ends_with("-st-video") && v.scopes == ["read"]));
        for r in &reports {
            let back: Report = serde_json::from_value(crate::sim::stats::wire(r)).unwrap();
            assert_eq!(back.topic, r.topic);
            assert_eq!(back.stats.tx.last, r.stats.tx.last);
        }
    }

    #[test]
    fn an_induced_failure_takes_the_rig_offline_and_holds_it_from_the_script() {
        let mut lab = lab(3);
        let topic = topic(&lab, 2);
        lab.induce_failure(&topic).unwrap();
        let now = Duration::from_secs(2);
        assert!(lab.relay_reports(now).iter().all(|r| !r.topic.starts_with(&topic)));
        assert!(lab.jump_reports().iter().all(|r| r.topic != topic));
        assert_eq!(lab.apply(Fault::Recovers { rig: 2, stream: "data" }, now), None);
        assert_eq!(lab.apply(Fault::JumpReturns { rig: 2 }, now), None);
        assert!(lab.induce_failure("nope").is_err());
    }

    #[test]
    fn faults_that_change_nothing_say_nothing() {
        let mut lab = lab(1);
        let now = Duration::from_secs(1);
        assert_eq!(lab.apply(Fault::Recovers { rig: 0, stream: "data" }, now), None);
        assert_eq!(lab.apply(Fault::RelaySpeaks, now), None);
        assert!(lab.apply(Fault::RelaySilent, now).is_some());
        assert!(lab.relay_silent());
        assert_eq!(lab.apply(Fault::JumpReturns { rig: 0 }, now), None);
        assert_eq!(lab.apply(Fault::JumpDrops { rig: 9 }, now), None, "no such rig");
        assert_eq!(lab.apply(Fault::Stalls { rig: 0, stream: "nope" }, now), None);
    }
}
