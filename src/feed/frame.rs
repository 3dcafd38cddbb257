//! One statistics frame → the reports it holds (PROTOCOL.md §2), leniently.
//!
//! A frame that is not a JSON array is refused whole, so the tracker keeps
//! the previous snapshot. Inside an array, one odd report must not blind the
//! service to the rest: a report without a usable `topic` is skipped, and a
//! field of the wrong type takes its default; both are counted as defects.
//! Reports, `stats`, `tx` and `rx` are JSON objects: anything else in their
//! place is one of those defects too, never read as positional fields.
//! The common case (a well-formed array) costs one typed serde pass; the
//! field-by-field fallback runs only for the reports that need it.
//! Never logs: the caller decides what to say about the outcome.

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::report::{clip, set_time, MapOnly, Report, RxTx, Statistics, PEER_TEXT_SHOWN};

/// The longest defect line: a peer's quoted value (clipped to [`PEER_TEXT_SHOWN`]) and serde's words around it.
const DEFECT_SHOWN: usize = PEER_TEXT_SHOWN + 150;

/// Why a whole frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("JSON {0}, not an array of reports")]
    NotArray(&'static str),
}

/// The usable reports of one frame, and what had to be forgiven to get them.
#[derive(Debug, Default, PartialEq)]
pub struct Frame {
    pub reports: Vec<Report>,
    /// Reports skipped plus fields defaulted.
    pub defects: u64,
    /// The first defect, for one log line per frame.
    pub first_defect: Option<String>,
}

impl Frame {
    fn defect(&mut self, what: impl FnOnce() -> String) {
        self.defects += 1;
        if self.first_defect.is_none() {
            self.first_defect = Some(what());
        }
    }
}

/// Parses one text frame of the relay or jump `stats` topic.
pub fn parse_frame(text: &str) -> Result<Frame, FrameError> {
    if let Ok(reports) = serde_json::from_str::<Vec<Report>>(text) {
        let mut frame = Frame {
            reports,
            ..Frame::default()
        };
        let before = frame.reports.len();
        frame.reports.retain(|r| !r.topic.is_empty());
        for _ in frame.reports.len()..before {
            frame.defect(|| "a report without a topic was skipped".into());
        }
        return Ok(frame);
    }
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| not_an_array(text, e))?;
    let mut frame = Frame {
        reports: Vec::with_capacity(items.len()),
        ..Frame::default()
    };
    for (i, item) in items.into_iter().enumerate() {
        match serde_json::from_str::<Report>(item.get()) {
            Ok(r) if !r.topic.is_empty() => frame.reports.push(r),
            _ => {
                if let Some(r) = lenient_report(i, item, &mut frame) {
                    frame.reports.push(r);
                }
            }
        }
    }
    Ok(frame)
}

/// Tells valid JSON of the wrong shape from text that is not JSON at all.
fn not_an_array(text: &str, err: serde_json::Error) -> FrameError {
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Err(_) => FrameError::NotJson(err),
        Ok(_) => FrameError::NotArray(match text.trim_start().as_bytes().first() {
            Some(b'{') => "object",
            Some(b'"') => "string",
            Some(b'[') => "array of something else",
            Some(b'n') => "null",
            Some(b't' | b'f') => "boolean",
            _ => "number",
        }),
    }
}

/// A report's fields, each kept raw so one bad value cannot spoil the others.
/// (The `bound` lets the raw values borrow from the frame instead of copying it.)
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
struct RawReport<'a> {
    topic: Option<&'a RawValue>,
    can_read: Option<&'a RawValue>,
    can_write: Option<&'a RawValue>,
    connected: Option<&'a RawValue>,
    expires_at: Option<&'a RawValue>,
    remote_addr: Option<&'a RawValue>,
    user_agent: Option<&'a RawValue>,
    scopes: Option<&'a RawValue>,
    stats: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
struct RawRxTx<'a> {
    tx: Option<&'a RawValue>,
    rx: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
struct RawStatistics<'a> {
    last: Option<&'a RawValue>,
    size: Option<&'a RawValue>,
    fps: Option<&'a RawValue>,
}

/// The slow path for report `i`: `None` when it has no usable topic.
fn lenient_report(i: usize, item: &RawValue, frame: &mut Frame) -> Option<Report> {
    let Ok(Object(raw)) = serde_json::from_str::<Object<RawReport>>(item.get()) else {
        frame.defect(|| format!("report {i} is not an object with distinct fields; skipped"));
        return None;
    };
    let topic = raw.topic.and_then(|t| serde_json::from_str::<String>(t.get()).ok());
    let Some(topic) = topic.filter(|t| !t.is_empty()) else {
        frame.defect(|| format!("report {i} has no usable topic; skipped"));
        return None;
    };
    let mut fields = Fields { i, frame };
    Some(Report {
        topic,
        can_read: fields.take("canRead", raw.can_read),
        can_write: fields.take("canWrite", raw.can_write),
        connected: set_time(fields.take("connected", raw.connected)),
        expires_at: set_time(fields.take("expiresAt", raw.expires_at)),
        remote_addr: fields.take("remoteAddr", raw.remote_addr),
        user_agent: fields.take("userAgent", raw.user_agent),
        scopes: fields.take("scopes", raw.scopes),
        stats: fields.nested("stats", raw.stats, |f, s: RawRxTx| RxTx {
            tx: f.nested("stats.tx", s.tx, statistics),
            rx: f.nested("stats.rx", s.rx, statistics),
        }),
    })
}

fn statistics(f: &mut Fields, s: RawStatistics) -> Statistics {
    Statistics {
        last: f.take("last", s.last),
        size: f.take("size", s.size),
        fps: f.take("fps", s.fps),
    }
}

/// Reads the fields of report `i`, defaulting and counting the ones of the wrong type.
struct Fields<'f> {
    i: usize,
    frame: &'f mut Frame,
}

impl Fields<'_> {
    /// A missing or `null` field is simply absent; a present one of the wrong type is a defect.
    fn take<T: DeserializeOwned + Default>(&mut self, name: &str, raw: Option<&RawValue>) -> T {
        let Some(raw) = raw else { return T::default() };
        serde_json::from_str(raw.get()).unwrap_or_else(|e| {
            self.defaulted(name, &e);
            T::default()
        })
    }

    /// An object field whose own fields are read leniently by `build`.
    fn nested<'a, R: Deserialize<'a>, T: Default>(
        &mut self,
        name: &str,
        raw: Option<&'a RawValue>,
        build: impl FnOnce(&mut Self, R) -> T,
    ) -> T {
        let Some(raw) = raw else { return T::default() };
        match serde_json::from_str::<Object<R>>(raw.get()) {
            Ok(Object(r)) => build(self, r),
            Err(e) => {
                self.defaulted(name, &e);
                T::default()
            }
        }
    }

    /// Counts field `name` as defaulted; serde's words may quote the peer's value, so they are clipped.
    fn defaulted(&mut self, name: &str, e: &serde_json::Error) {
        let i = self.i;
        self.frame.defect(|| {
            let why = e.to_string();
            format!("report {i}: field {name} defaulted: {}", clip(&why, DEFECT_SHOWN))
        });
    }
}

/// A `T` read only from a JSON object: serde's derived structs would also read an array, positionally.
pub(super) struct Object<T>(pub(super) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(MapOnly(d)).map(Object)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const GOOD: &str = r#"{"topic": "pend00-st-data", "canRead": true, "scopes": ["expt"],
        "stats": {"tx": {"last": "1.5s", "size": 5, "fps": 20.17}, "rx": {"last": "Never"}}}"#;

    #[test]
    fn a_clean_array_has_no_defects() {
        let frame = parse_frame(&format!("[{GOOD}, {GOOD}]")).unwrap();
        assert_eq!(frame.reports.len(), 2);
        assert_eq!(frame.defects, 0);
        assert_eq!(frame.first_defect, None);
        assert_eq!(frame.reports[0].stats.tx.last.0, Some(Duration::from_millis(1500)));
        assert_eq!(parse_frame("[]").unwrap(), Frame::default());
    }

    #[test]
    fn anything_but_an_array_is_refused_whole() {
        for (text, shape) in [
            (r#"{"topic": "pend00-st-data"}"#, "object"),
            ("\"hello\"", "string"),
            ("null", "null"),
            ("42", "number"),
            ("true", "boolean"),
            ("[1, 2", ""),
            ("not json at all", ""),
            ("", ""),
        ] {
            match parse_frame(text) {
                Err(FrameError::NotArray(s)) => assert_eq!(s, shape, "{text}"),
                Err(FrameError::NotJson(_)) => assert_eq!(shape, "", "{text} is JSON"),
                Ok(f) => panic!("{text} gave {f:?}"),
            }
        }
    }

    #[test]
    fn a_wrong_field_defaults_and_the_rest_survives() {
        let odd = r#"{"topic": "pend00-st-video", "canRead": "yes", "scopes": "expt",
            "connected": 12, "remoteAddr": "203.0.113.7",
            "stats": {"tx": {"last": "2s", "size": "big", "fps": 3}, "rx": []}}"#;
        let frame = parse_frame(&format!("[{GOOD}, {odd}, {GOOD}]")).unwrap();
        assert_eq!(frame.reports.len(), 3, "one odd report must not blind the rest");
        let r = &frame.reports[1];
        assert_eq!(r.topic, "pend00-st-video");
        assert!(!r.can_read);
        assert!(r.scopes.is_empty());
        assert_eq!(r.connected, None);
        assert_eq!(r.remote_addr, "203.0.113.7");
        assert_eq!(r.stats.tx.last.0, Some(Duration::from_secs(2)), "a bad size keeps last");
        assert_eq!(r.stats.tx.fps, 3.0);
        assert_eq!(r.stats.tx.size, 0.0);
        // canRead, scopes, connected, stats.tx.size, stats.rx
        assert_eq!(frame.defects, 5);
        assert!(frame.first_defect.unwrap().contains("report 1: field canRead"));
    }

    #[test]
    fn reports_without_a_usable_topic_are_skipped() {
        let frame = parse_frame(&format!(
            r#"[{GOOD}, {{"topic": 7}}, {{"canRead": true}}, {{"topic": ""}}, {{"topic": null}}, 3, "x", {GOOD}]"#
        ))
        .unwrap();
        assert_eq!(frame.reports.len(), 2);
        assert_eq!(frame.defects, 6);
    }

    #[test]
    fn a_bad_duration_in_last_is_a_defect_not_a_fresh_stream() {
        let odd = r#"{"topic": "pend00-st-data", "stats": {"tx": {"last": "soon"}}}"#;
        let frame = parse_frame(&format!("[{odd}]")).unwrap();
        assert!(frame.reports[0].stats.tx.last.never());
        assert_eq!(frame.defects, 1);
    }

    #[test]
    fn an_array_of_non_objects_is_all_defects() {
        let frame = parse_frame(r#"[1, "pend00-st-data", null, true, 2.5, []]"#).unwrap();
        assert!(frame.reports.is_empty());
        assert_eq!(frame.defects, 6);
        assert!(frame.first_defect.unwrap().contains("report 0 is not an object"));
    }

    #[test]
    fn a_report_written_as_an_array_is_skipped_not_read_positionally() {
        for text in [
            r#"[["pend00-st-data"]]"#,
            r#"[["pend00-st-data", true, true, null, null, "", "", ["expt"], {}]]"#,
        ] {
            let frame = parse_frame(text).unwrap();
            assert!(frame.reports.is_empty(), "{text} gave {:?}", frame.reports);
            assert_eq!(frame.defects, 1, "{text}");
        }
        let frame = parse_frame(&format!("[{GOOD}, [\"pend00-st-video\"]]")).unwrap();
        assert_eq!(frame.reports.len(), 1);
        assert_eq!(frame.defects, 1);
        assert!(frame.first_defect.unwrap().contains("report 1 is not an object"));
    }

    #[test]
    fn stats_written_as_arrays_default_and_are_counted() {
        let odd = r#"[{"topic": "a-st-b", "stats": [{"last": "1s"}, {}]},
                      {"topic": "a-st-c", "stats": {"tx": ["1s", 5, 20], "rx": {"last": "2s"}}},
                      {"topic": "a-st-d", "stats": {"tx": {"last": "3s"}, "rx": ["Never", 0, 0]}}]"#;
        let frame = parse_frame(odd).unwrap();
        assert_eq!(frame.reports.len(), 3);
        assert_eq!(frame.defects, 3);
        let lasts: Vec<_> = frame
            .reports
            .iter()
            .map(|r| (r.stats.tx.last.0, r.stats.rx.last.0))
            .collect();
        let s = |n| Some(Duration::from_secs(n));
        assert_eq!(lasts, [(None, None), (None, s(2)), (s(3), None)]);
        assert!(frame.first_defect.unwrap().contains("report 0: field stats defaulted"));
    }

    #[test]
    fn go_zero_times_are_unset_on_the_lenient_path_too() {
        let text = r#"[{"topic": "a-st-b", "canRead": "yes", "connected": "0001-01-01T00:00:00Z",
                        "expiresAt": "0001-01-01T00:00:00Z"}]"#;
        let frame = parse_frame(text).unwrap();
        assert_eq!(frame.defects, 1, "only canRead is a defect");
        assert_eq!((frame.reports[0].connected, frame.reports[0].expires_at), (None, None));
    }

    #[test]
    fn defect_lines_quote_peer_values_short() {
        for long in ["x".repeat(100_000), "日本".repeat(20_000)] {
            for (report, says) in [
                (
                    format!(r#"{{"topic": "a-st-b", "canRead": "{long}"}}"#),
                    "field canRead defaulted: invalid type",
                ),
                (
                    format!(r#"{{"topic": "a-st-b", "stats": {{"tx": {{"last": "{long}"}}}}}}"#),
                    "field last defaulted: invalid value",
                ),
            ] {
                let frame = parse_frame(&format!("[{report}]")).unwrap();
                assert_eq!(frame.defects, 1);
                let first = frame.first_defect.unwrap();
                assert!(first.chars().count() <= 400, "{} chars", first.chars().count());
                assert!(first.contains(says) && first.contains("…"), "{first}");
            }
        }
    }

    #[test]
    fn missing_and_null_fields_are_defaults_not_defects() {
        let frame = parse_frame(r#"[{"topic": "a-st-b", "connected": null, "stats": {"tx": null}}]"#).unwrap();
        assert_eq!(frame.reports.len(), 1);
        assert_eq!(frame.defects, 0);
    }
}
