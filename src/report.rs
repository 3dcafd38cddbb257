//! Wire types of the relay's and jump's statistics reports (PROTOCOL.md §2).
//!
//! Read in the peers' camelCase, written out in the REST API's snake_case.
//! Owns the Go duration grammar of `stats.*.last`; knows nothing of health.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// One connection the relay or jump currently has.
///
/// Read only from a JSON object, as are its `stats` and their `tx` and `rx`
/// (see `object_only!`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(
    remote = "Self",
    default,
    rename_all(deserialize = "camelCase", serialize = "snake_case")
)]
pub struct Report {
    pub topic: String,
    pub can_read: bool,
    pub can_write: bool,
    #[serde(deserialize_with = "go_time")]
    pub connected: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "go_time")]
    pub expires_at: Option<DateTime<Utc>>,
    pub remote_addr: String,
    pub user_agent: String,
    pub scopes: Vec<String>,
    pub stats: RxTx,
}

impl Report {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(remote = "Self", default)]
pub struct RxTx {
    pub tx: Statistics,
    pub rx: Statistics,
}

/// Traffic in one direction of a connection.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(remote = "Self", default)]
pub struct Statistics {
    /// Time since the last message; `None` when nothing was ever sent.
    pub last: Last,
    /// Mean message size in bytes.
    pub size: f64,
    /// Messages per second.
    pub fps: f64,
}

/// Gives a type its derived `Serialize`, and its derived `Deserialize` from a JSON object only.
///
/// serde's derived structs also accept an array as positional fields
/// (`["pend00-st-data"]` would be a report); no peer writes that, so it is
/// refused like any other wrong type. Each type derives with
/// `#[serde(remote = "Self")]`, which makes the derived code inherent
/// functions; these impls run them through [`MapOnly`].
macro_rules! object_only {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                <$t>::serialize(self, s)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$t>::deserialize(MapOnly(d))
            }
        }
    )*};
}

/// A deserializer that hands whatever is asked of it a map, or fails: a derived struct read
/// through it takes only a JSON object. The struct's own code runs on the inner deserializer's
/// map, exactly as it would without this (the typed fast path stays as fast).
pub struct MapOnly<D>(pub D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

object_only!(Report, RxTx, Statistics);

/// A time the peer may leave unset: `null`, or Go's zero `time.Time` (`0001-01-01T00:00:00Z`),
/// which a Go peer writes for a time it never set. Both are `None` (PROTOCOL.md §6).
fn go_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<DateTime<Utc>>::deserialize(d).map(set_time)
}

/// `None` for Go's zero time (year 1, or year 0 when printed west of UTC).
pub fn set_time(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.filter(|t| t.naive_utc().year() > 1)
}

/// `stats.*.last`: a Go duration string, `Never`/empty, or nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Last(pub Option<Duration>);

impl Last {
    pub fn never(&self) -> bool {
        self.0.is_none()
    }
}

impl Serialize for Last {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_str("Never"),
            Some(d) => s.collect_str(&GoDuration(d)),
        }
    }
}

impl<'de> Deserialize<'de> for Last {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Last;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Go duration string, \"Never\", or nanoseconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Last, E> {
                let v = v.trim();
                if v.is_empty() || v.eq_ignore_ascii_case("never") {
                    return Ok(Last(None));
                }
                parse_go_duration(v)
                    .map(|d| Last(Some(d)))
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(&clip(v, PEER_TEXT_SHOWN)), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Last, E> {
                if v <= GO_DURATION_MAX_NANOS {
                    Ok(Last(Some(Duration::from_nanos(v))))
                } else {
                    Err(E::invalid_value(de::Unexpected::Unsigned(v), &self))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Last, E> {
                u64::try_from(v)
                    .map(|n| Last(Some(Duration::from_nanos(n))))
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Last, E> {
                // 2^63, the first float beyond Go's range; `as` would saturate rather than fail.
                const BEYOND: f64 = 9_223_372_036_854_775_808.0;
                if (0.0..BEYOND).contains(&v) {
                    Ok(Last(Some(Duration::from_nanos(v as u64))))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Last, E> {
                Ok(Last(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Go's `time.Duration` is an `int64` of nanoseconds: no peer can mean more.
pub const GO_DURATION_MAX_NANOS: u64 = i64::MAX as u64;

/// Parses Go's `time.Duration` text form: `150ms`, `2.90373838s`, `1m30.5s`, `1h2m3.004s`,
/// `.5s`, units `ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`. Like Go's `ParseDuration`, in
/// integers, and refusing what would overflow Go's range. A leading sign is refused: a
/// negative age is nonsense from a peer.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    // Go's durations are int64 nanoseconds: anything longer is not one.
    let parsed = crate::duration::parse(s, crate::duration::Units::Go)?;
    let nanos = u64::try_from(parsed.nanos)
        .ok()
        .filter(|&n| n <= GO_DURATION_MAX_NANOS)?;
    (!parsed.signed).then(|| Duration::from_nanos(nanos))
}

/// Formats like Go's `Duration.String()`, so the REST API shows what the relay sent.
pub struct GoDuration(pub Duration);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d < Duration::from_secs(1) {
            let ns = d.as_nanos();
            return match ns {
                0 => f.write_str("0s"),
                1..=999 => write!(f, "{ns}ns"),
                1_000..=999_999 => write!(f, "{}µs", trim_fraction(ns as f64 / 1e3)),
                _ => write!(f, "{}ms", trim_fraction(ns as f64 / 1e6)),
            };
        }
        let secs = d.as_secs();
        let (h, m) = (secs / 3600, (secs % 3600) / 60);
        let s = (secs % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if h > 0 || m > 0 {
            write!(f, "{m}m")?;
        }
        write!(f, "{}s", trim_fraction(s))
    }
}

fn trim_fraction(v: f64) -> String {
    let s = format!("{v:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// At most this many characters of a peer's text go into a log line or an error.
pub const PEER_TEXT_SHOWN: usize = 200;

/// `text` cut to its first `max_chars` characters, with `…` when anything was cut.
pub fn clip(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

/// The experiment a relay stream topic belongs to: everything before the first `-st-`.
pub fn stream_stub(topic: &str) -> Option<&str> {
    let (stub, name) = topic.split_once("-st-")?;
    (!stub.is_empty() && !name.is_empty()).then_some(stub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_with_fractions() {
        let cases = [
            ("150ms", 0.150),
            ("2.90373838s", 2.90373838),
            ("1m30.5s", 90.5),
            ("1h2m3.004s", 3723.004),
            ("999h", 999.0 * 3600.0),
            ("0s", 0.0),
            ("0", 0.0),
            ("1.5µs", 1.5e-6),
        ];
        for (s, secs) in cases {
            let d = parse_go_duration(s).unwrap_or_else(|| panic!("{s} parses"));
            assert!((d.as_secs_f64() - secs).abs() < 1e-9, "{s} gave {d:?}");
        }
        for bad in ["", "s", "10", "1x", "-1s", "1.2.3s", "abc"] {
            assert!(parse_go_duration(bad).is_none(), "{bad} must not parse");
        }
    }

    #[test]
    fn go_durations_print_like_go() {
        for s in ["150ms", "2.90373838s", "1m30.5s", "1h2m3.004s", "999h0m0s", "0s"] {
            let d = parse_go_duration(s).unwrap();
            assert_eq!(GoDuration(d).to_string(), s);
        }
    }

    #[test]
    fn a_report_parses_from_the_protocol_example() {
        let json = r#"{
          "topic": "pend00-st-data", "canRead": true, "canWrite": true,
          "connected": "2023-03-10T14:04:46.294717207Z", "expiresAt": "2023-03-10T15:04:46Z",
          "remoteAddr": "203.0.113.7", "userAgent": "Go-http-client/1.1",
          "scopes": ["read", "write", "expt"], "unknown": {"x": 1},
          "stats": {"tx": {"last": "2.90373838s", "size": 5, "fps": 20.17},
                    "rx": {"last": "Never", "size": 0, "fps": 0}}
        }"#;
        let r: Report = serde_json::from_str(json).unwrap();
        assert_eq!(r.topic, "pend00-st-data");
        assert!(r.can_read && r.can_write && r.has_scope("expt"));
        assert_eq!(r.stats.tx.last.0, Some(Duration::from_nanos(2_903_738_380)));
        assert!(r.stats.rx.last.never());
        assert_eq!(r.stats.tx.fps, 20.17);
        let out = serde_json::to_value(&r).unwrap();
        assert_eq!(out["can_read"], true);
        assert_eq!(out["remote_addr"], "203.0.113.7");
        assert_eq!(out["stats"]["tx"]["last"], "2.90373838s");
        assert_eq!(out["stats"]["rx"]["last"], "Never");
    }

    #[test]
    fn last_accepts_nanoseconds_and_empty() {
        let s: Statistics = serde_json::from_str(r#"{"last": 1500000000}"#).unwrap();
        assert_eq!(s.last.0, Some(Duration::from_millis(1500)));
        let s: Statistics = serde_json::from_str(r#"{"last": ""}"#).unwrap();
        assert!(s.last.never());
        let s: Statistics = serde_json::from_str(r#"{"last": "NEVER"}"#).unwrap();
        assert!(s.last.never());
    }

    #[test]
    fn reports_and_their_stats_must_be_objects() {
        // serde's derived structs also take an array as positional fields; no peer sends that.
        for json in [
            r#"["pend00-st-data"]"#,
            r#"{"topic": "pend00-st-data", "stats": [{"last": "1s"}, {}]}"#,
            r#"{"topic": "pend00-st-data", "stats": {"tx": ["1s", 5, 20]}}"#,
            r#"{"topic": "pend00-st-data", "stats": {"rx": ["Never"]}}"#,
        ] {
            assert!(serde_json::from_str::<Report>(json).is_err(), "{json} was accepted");
        }
        let ok: Report = serde_json::from_str(r#"{"topic": "a-st-b", "stats": {"tx": {"last": "1s"}}}"#).unwrap();
        assert_eq!(ok.stats.tx.last.0, Some(Duration::from_secs(1)));
    }

    #[test]
    fn go_zero_times_are_times_never_set() {
        let r: Report = serde_json::from_str(
            r#"{"topic": "a-st-b", "connected": "0001-01-01T00:00:00Z", "expiresAt": "0001-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!((r.connected, r.expires_at), (None, None));
        // Go's zero time printed in a zone west of UTC (New York's local mean time) is in year 0.
        let r: Report =
            serde_json::from_str(r#"{"topic": "a-st-b", "connected": "0000-12-31T19:04:00-04:56"}"#).unwrap();
        assert_eq!(r.connected, None);
        let r: Report =
            serde_json::from_str(r#"{"topic": "a-st-b", "connected": "0002-01-01T00:00:00Z", "expiresAt": null}"#)
                .unwrap();
        assert_eq!(r.connected.map(|t| t.year()), Some(2));
        assert_eq!(r.expires_at, None);
        let out = serde_json::to_value(Report::default()).unwrap();
        assert_eq!(out["connected"], serde_json::Value::Null);
    }

    #[test]
    fn numeric_last_is_bounded_like_a_go_duration() {
        let last = |json: &str| serde_json::from_str::<Statistics>(&format!(r#"{{"last": {json}}}"#)).map(|s| s.last.0);
        assert_eq!(last("1500000000.0").unwrap(), Some(Duration::from_millis(1500)));
        assert_eq!(last("2.5").unwrap(), Some(Duration::from_nanos(2)));
        assert_eq!(
            last("9223372036854775807").unwrap(),
            Some(Duration::from_nanos(i64::MAX as u64))
        );
        // Go's time.Duration is an int64 of nanoseconds: nothing above, nothing negative.
        for bad in [
            "9223372036854775808",
            "18446744073709551615",
            "-5",
            "-1.5",
            "1e20",
            "9.3e18",
            "1e308",
        ] {
            assert!(last(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn go_duration_units_fractions_and_overflow() {
        for (s, nanos) in [
            ("1ns", 1),
            ("1500ns", 1_500),
            ("3us", 3_000),
            ("3µs", 3_000),
            ("3μs", 3_000),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("1h0.5m", 3_630_000_000_000),
            ("0.000000001s", 1),
            ("0.0000000019s", 1),
            ("1.9999999999ms", 1_999_999),
            ("2.5us", 2_500),
            ("2562047h47m16.854775807s", i64::MAX as u64),
            ("9223372036854775807ns", i64::MAX as u64),
        ] {
            assert_eq!(parse_go_duration(s), Some(Duration::from_nanos(nanos)), "{s}");
        }
        for overflow in [
            "9223372036854775808ns",
            "2562047h47m16.854775808s",
            "2562048h",
            "99999999999999999999s",
            "9223372036854775807ns1ns",
        ] {
            assert_eq!(parse_go_duration(overflow), None, "{overflow} overflows Go's int64");
        }
        for bad in [".s", ".", "1.2.3s", "+", "-0s", "1 s", "1e3s", "ms"] {
            assert_eq!(parse_go_duration(bad), None, "{bad} must not parse");
        }
    }

    #[test]
    fn a_bad_last_string_is_quoted_short_in_the_error() {
        let long = "é".repeat(5000);
        let e = serde_json::from_str::<Statistics>(&format!(r#"{{"last": "{long}"}}"#)).unwrap_err();
        let text = e.to_string();
        assert!(text.chars().count() < 400, "{} chars", text.chars().count());
        assert!(
            text.contains("éé…") && text.contains("expected a Go duration"),
            "{text}"
        );
    }

    #[test]
    fn clipping_keeps_short_text_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("0123456789", 10), "0123456789");
        assert_eq!(clip("ééééé", 3), "ééé…");
        assert_eq!(clip("", 0), "");
    }

    #[test]
    fn stubs_split_at_the_first_st() {
        assert_eq!(stream_stub("pend00-st-data"), Some("pend00"));
        assert_eq!(stream_stub("spin-30-st-video-st-x"), Some("spin-30"));
        assert_eq!(stream_stub("pend00-data"), None);
        assert_eq!(stream_stub("-st-data"), None);
        assert_eq!(stream_stub("pend00-st-"), None);
    }
}
