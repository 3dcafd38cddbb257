//! Durations as text, in Go's `time.ParseDuration` grammar.
//!
//! The previous service read its `STATUS_*` durations with Go's parser, and
//! the relay and jump write `stats.*.last` with Go's `Duration.String()`, so
//! one grammar serves both: an optional sign, then one or more decimal
//! numbers (fraction allowed: `1.5h`, `.5s`, `5.s`) each with a unit `ns`,
//! `us` (`µs`, `μs`), `ms`, `s`, `m` or `h`; or a bare `0`. The configuration
//! also takes `d` (24 h), which the previous service advertised but could not
//! parse. Arithmetic is exact (integer nanoseconds; a fraction of a
//! nanosecond is dropped, as Go does).

use std::fmt::Write as _;
use std::time::Duration;

/// Which units a caller takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    /// Exactly Go's: `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`.
    Go,
    /// Go's and `d`, 24 hours.
    GoAndDays,
}

/// A parsed duration: its sign and its exact size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// A leading `-` (even on zero).
    pub negative: bool,
    /// A leading `+` or `-`.
    pub signed: bool,
    /// Nanoseconds, never rounded up; may exceed what a [`Duration`] holds.
    pub nanos: u128,
}

impl Parsed {
    /// The size as a [`Duration`], if it fits.
    pub fn magnitude(&self) -> Option<Duration> {
        let secs = u64::try_from(self.nanos / NANOS_PER_SEC).ok()?;
        Some(Duration::new(secs, (self.nanos % NANOS_PER_SEC) as u32))
    }
}

const NANOS_PER_SEC: u128 = 1_000_000_000;
/// Digits read of a number or a fraction; more cannot change a result that fits.
const MAX_DIGITS: usize = 30;

/// Parses `s` (no surrounding spaces) in Go's grammar; `None` if it is not one.
pub fn parse(s: &str, units: Units) -> Option<Parsed> {
    let (negative, signed, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, true, &s[1..]),
        Some(b'+') => (false, true, &s[1..]),
        _ => (false, false, s),
    };
    if rest == "0" {
        return Some(Parsed {
            negative,
            signed,
            nanos: 0,
        });
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(f) => {
                let frac_len = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                f.split_at(frac_len)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let per_unit = unit_nanos(unit, units)?;
        nanos = nanos.checked_add(number(int)?.checked_mul(per_unit)?)?;
        nanos = nanos.checked_add(fraction(frac, per_unit))?;
        rest = after;
    }
    Some(Parsed {
        negative,
        signed,
        nanos,
    })
}

fn unit_nanos(unit: &str, units: Units) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3_600 * NANOS_PER_SEC,
        "d" if units == Units::GoAndDays => 86_400 * NANOS_PER_SEC,
        _ => return None,
    })
}

/// The whole number in `digits`; `None` when it is absurdly long.
fn number(digits: &str) -> Option<u128> {
    let digits = digits.trim_start_matches('0');
    if digits.len() > MAX_DIGITS {
        return None;
    }
    Some(digits.bytes().fold(0, |n, d| n * 10 + u128::from(d - b'0')))
}

/// `0.digits` of a unit, in nanoseconds, rounded down.
fn fraction(digits: &str, per_unit: u128) -> u128 {
    let digits = &digits[..digits.len().min(MAX_DIGITS)];
    let scale = 10u128.pow(digits.len() as u32);
    let value = digits.bytes().fold(0, |n, d| n * 10 + u128::from(d - b'0'));
    // value < scale ≤ 10^30 and per_unit < 10^14: the product fits in a u128 (< 3.4·10^38).
    value * per_unit / scale
}

/// The compact form used to print effective values: `1d12h`, `1h30m`, `10s`, `500ms`, `0s`.
///
/// Each unit from days to nanoseconds that is not zero, largest first; the
/// result parses back to the same duration with [`Units::GoAndDays`].
pub fn format(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "us"),
        (u64::from(nanos % 1_000), "ns"),
    ];
    let mut out = String::new();
    for (n, unit) in parts {
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(s: &str) -> Option<Duration> {
        let p = parse(s, Units::Go)?;
        assert!(!p.negative, "{s}");
        p.magnitude()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn every_form_go_accepts() {
        for (s, want) in [
            ("1h0m0s", ms(3_600_000)),
            ("2h45m0.5s", ms((2 * 3600 + 45 * 60) * 1000 + 500)),
            ("1.5h", ms(5_400_000)),
            ("300ms", ms(300)),
            (".5s", ms(500)),
            ("5.s", ms(5000)),
            ("+10s", ms(10_000)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("1ns", Duration::from_nanos(1)),
            ("1us", Duration::from_micros(1)),
            ("1µs", Duration::from_micros(1)),
            ("1μs", Duration::from_micros(1)),
            ("1m30s", ms(90_000)),
            ("30s1m", ms(90_000)),
            ("2.90373838s", Duration::from_nanos(2_903_738_380)),
            ("1.0000000019s", Duration::from_nanos(1_000_000_001)),
            ("007s", ms(7000)),
        ] {
            assert_eq!(go(s), Some(want), "{s}");
        }
    }

    #[test]
    fn what_go_refuses_is_refused() {
        for s in [
            "", "+", "-", "s", ".", ".s", "10", "1", "1x", "1M", "1y", "1d", "1.2.3s", "1 s", " 1s", "1s ", "1h 30m",
            "1e3s", "abc", "1day", "1sec", "--1s", "+-1s", "1S",
        ] {
            assert_eq!(parse(s, Units::Go), None, "{s:?}");
        }
    }

    #[test]
    fn days_only_when_asked_for() {
        let day = |s| parse(s, Units::GoAndDays).and_then(|p| p.magnitude());
        assert_eq!(day("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(day("1d12h"), Some(Duration::from_secs(129_600)));
        assert_eq!(day("0.5d"), Some(Duration::from_secs(43_200)));
        for s in ["1M", "1y", "1w", "1D", "1days"] {
            assert_eq!(parse(s, Units::GoAndDays), None, "{s}");
        }
    }

    #[test]
    fn signs_are_reported_and_huge_values_do_not_wrap() {
        let p = parse("-1.5s", Units::Go).unwrap();
        assert!(p.negative && p.signed);
        assert_eq!(p.magnitude(), Some(ms(1500)));
        assert!(parse("+0", Units::Go).unwrap().signed);
        let huge = parse("500000000000000h", Units::Go).unwrap();
        assert_eq!(huge.nanos, 500_000_000_000_000 * 3_600 * NANOS_PER_SEC);
        assert_eq!(huge.magnitude(), Some(Duration::from_secs(500_000_000_000_000 * 3_600)));
        assert_eq!(
            parse("1000000000000000000000000h", Units::Go).unwrap().magnitude(),
            None
        );
        assert_eq!(parse(&format!("{}s", "9".repeat(40)), Units::Go), None);
    }

    #[test]
    fn the_compact_form_is_short_and_parses_back() {
        for (d, s) in [
            (Duration::ZERO, "0s"),
            (ms(500), "500ms"),
            (ms(10_000), "10s"),
            (ms(5_400_000), "1h30m"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_secs(129_600), "1d12h"),
            (ms(1_500), "1s500ms"),
            (Duration::from_nanos(1_001), "1us1ns"),
            (Duration::from_secs(365 * 86_400), "365d"),
        ] {
            assert_eq!(format(d), s);
            assert_eq!(parse(s, Units::GoAndDays).and_then(|p| p.magnitude()), Some(d), "{s}");
        }
    }
}
