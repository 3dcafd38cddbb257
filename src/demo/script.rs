//! The demo's fault script: what goes wrong in the lab, and when.
//!
//! Seeded and reproducible: the same seed and lab give the same steps. One
//! cycle lasts a minute and shows every kind of trouble once, so a person
//! watching sees all of it within the first minute: a data stream that never
//! starts, a video stream that stalls, a jump host that drops, the relay
//! falling silent for longer than `STATUS_HEALTH_LAST_CHECKED`, a stream that
//! disappears, and every rig recovering. Cycles repeat with other rigs, so a
//! long run stays interesting.
//!
//! It never has more than two rigs unbookable at once, so the mass-change
//! guard (at least three, and more than half) stays quiet. Pure: it only
//! plans; the demo's driver applies the steps to the [`Lab`] on time.

use std::time::Duration;

use super::lab::{Fault, Lab};

/// Length of one cycle of the script.
pub const CYCLE: Duration = Duration::from_secs(60);

/// How long the relay stays silent; longer than the demo's `STATUS_HEALTH_LAST_CHECKED`.
pub const RELAY_SILENCE: Duration = Duration::from_secs(10);

/// One planned fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Offset from the start of the demo.
    pub at: Duration,
    pub fault: Fault,
}

/// Plans cycle after cycle for one lab.
pub struct Script {
    rng: fastrand::Rng,
    /// Per rig, the stream a "video stalls" or "stream disappears" fault takes.
    target_stream: Vec<&'static str>,
    has_video: Vec<bool>,
    cycle: u32,
}

impl Script {
    pub fn new(seed: u64, lab: &Lab) -> Script {
        let has_video: Vec<bool> = (0..lab.rigs()).map(|i| lab.streams(i).any(|s| s == "video")).collect();
        Script {
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed_f00d),
            target_stream: has_video.iter().map(|&v| if v { "video" } else { "data" }).collect(),
            has_video,
            cycle: 0,
        }
    }

    /// The steps of the next cycle, in time order.
    pub fn next_cycle(&mut self) -> Vec<Step> {
        let start = CYCLE * self.cycle;
        self.cycle += 1;
        let n = self.has_video.len();
        if n == 0 {
            return Vec::new();
        }
        let mut order: Vec<usize> = (0..n).collect();
        self.rng.shuffle(&mut order);
        // Distinct rigs when there are enough; a small lab reuses them.
        let pick = |k: usize| order[k % n];
        let never = pick(0);
        let stall = order[1.min(n - 1)..]
            .iter()
            .copied()
            .find(|&i| self.has_video[i] && i != never)
            .unwrap_or(pick(1));
        let rest: Vec<usize> = order.iter().copied().filter(|&i| i != never && i != stall).collect();
        let (jump, vanish) = match rest.as_slice() {
            [] => (pick(2), pick(3)),
            [only] => (*only, *only),
            [a, b, ..] => (*a, *b),
        };
        let secs = |s: u64| start + Duration::from_secs(s);
        let silence = secs(32);
        let (stalled, vanished) = (self.target_stream[stall], self.target_stream[vanish]);
        let plan = [
            (
                secs(0),
                Fault::NeverStarts {
                    rig: never,
                    stream: "data",
                },
            ),
            (
                secs(8),
                Fault::Stalls {
                    rig: stall,
                    stream: stalled,
                },
            ),
            (secs(15), Fault::JumpDrops { rig: jump }),
            (
                secs(20),
                Fault::Recovers {
                    rig: never,
                    stream: "data",
                },
            ),
            (
                secs(24),
                Fault::Recovers {
                    rig: stall,
                    stream: stalled,
                },
            ),
            (secs(28), Fault::JumpReturns { rig: jump }),
            (silence, Fault::RelaySilent),
            (silence + RELAY_SILENCE, Fault::RelaySpeaks),
            (
                secs(46),
                Fault::Vanishes {
                    rig: vanish,
                    stream: vanished,
                },
            ),
            (
                secs(54),
                Fault::Recovers {
                    rig: vanish,
                    stream: vanished,
                },
            ),
        ];
        plan.into_iter().map(|(at, fault)| Step { at, fault }).collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn steps(seed: u64, rigs: usize, cycles: usize) -> Vec<Step> {
        let lab = Lab::new(seed, rigs, Utc::now());
        let mut script = Script::new(seed, &lab);
        (0..cycles).flat_map(|_| script.next_cycle()).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_script_and_another_seed_another() {
        assert_eq!(steps(7, 12, 3), steps(7, 12, 3));
        assert_ne!(steps(7, 12, 3), steps(8, 12, 3));
    }

    #[test]
    fn the_first_minute_shows_every_kind_of_trouble_and_every_recovery() {
        let first = steps(7, 12, 1);
        assert!(first.iter().all(|s| s.at < CYCLE));
        assert!(first.windows(2).all(|w| w[0].at <= w[1].at), "in time order");
        let has = |f: &dyn Fn(&Fault) -> bool| first.iter().any(|s| f(&s.fault));
        assert!(has(&|f| matches!(f, Fault::NeverStarts { stream: "data", .. })));
        assert!(has(&|f| matches!(f, Fault::Stalls { stream: "video", .. })));
        assert!(has(&|f| matches!(f, Fault::JumpDrops { .. })));
        assert!(has(&|f| matches!(f, Fault::Vanishes { .. })));
        assert!(has(&|f| *f == Fault::RelaySilent));
        let silence: Vec<Duration> = first
            .iter()
            .filter(|s| matches!(s.fault, Fault::RelaySilent | Fault::RelaySpeaks))
            .map(|s| s.at)
            .collect();
        assert_eq!(silence[1] - silence[0], RELAY_SILENCE);
        let recoveries = first
            .iter()
            .filter(|s| matches!(s.fault, Fault::Recovers { .. } | Fault::JumpReturns { .. }))
            .count();
        assert_eq!(recoveries, 4, "every rig that breaks recovers within the cycle");
    }

    #[test]
    fn a_big_lab_has_distinct_victims_and_cycles_move_on_to_other_rigs() {
        let all = steps(3, 12, 2);
        let victims = |cycle: &[Step]| -> Vec<usize> {
            let mut v: Vec<usize> = cycle
                .iter()
                .filter_map(|s| match s.fault {
                    Fault::NeverStarts { rig, .. }
                    | Fault::Stalls { rig, .. }
                    | Fault::JumpDrops { rig }
                    | Fault::Vanishes { rig, .. } => Some(rig),
                    _ => None,
                })
                .collect();
            v.sort_unstable();
            v
        };
        let (first, second) = all.split_at(all.len() / 2);
        let mut distinct = victims(first);
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{first:?}");
        assert_ne!(victims(first), victims(second));
        assert!(second.iter().all(|s| s.at >= CYCLE && s.at < CYCLE * 2));
    }

    /// Replays the script and counts rigs whose required streams are broken at once.
    #[test]
    fn never_more_than_two_rigs_are_unbookable_at_once_so_the_guard_stays_quiet() {
        for seed in 0..50 {
            for rigs in [1, 2, 3, 4, 5, 12, 40] {
                let mut broken: Vec<Vec<&str>> = vec![Vec::new(); rigs];
                for step in steps(seed, rigs, 3) {
                    match step.fault {
                        Fault::NeverStarts { rig, stream }
                        | Fault::Stalls { rig, stream }
                        | Fault::Vanishes { rig, stream } => broken[rig].push(stream),
                        Fault::Recovers { rig, stream } => broken[rig].retain(|s| *s != stream),
                        _ => {}
                    }
                    let unbookable = broken.iter().filter(|b| !b.is_empty()).count();
                    assert!(unbookable <= 2, "seed {seed}, {rigs} rigs, at {:?}", step.at);
                }
                assert!(broken.iter().all(Vec::is_empty), "seed {seed}: all recovered");
            }
        }
    }
}
