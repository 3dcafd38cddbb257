//! The booking manifest: which resources the service manages, and what each requires.
//!
//! Turns the booking API's resource list (PROTOCOL.md §3) into tracker
//! [`Resource`]s. Pure: it checks every entry and skips a bad one with a
//! reason, so one broken entry never hides the rest, and it never panics on
//! what the network sent. An entry it cannot trust is left unmanaged rather
//! than guessed at: a wrong requirement would unbook a working rig.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::report::stream_stub;
use crate::tracker::Resource;

/// Longer names are not names but garbage; they also end up in URLs and logs.
const MAX_NAME_CHARS: usize = 200;

/// The checked manifest.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub resources: Vec<Resource>,
    /// Entries left out, with why: logged each round so an operator can fix them.
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub why: String,
}

/// The fields of one resource that matter here; the rest (`description`, `tests`, …) are ignored.
#[derive(Deserialize)]
struct Entry {
    topic_stub: String,
    streams: Vec<String>,
}

/// Maps the raw `name → {topic_stub, streams, …}` object to resources, in name order.
pub fn map(raw: Map<String, Value>) -> Manifest {
    let mut manifest = Manifest::default();
    let mut owners: HashMap<String, String> = HashMap::new();
    for (name, value) in raw {
        match resource(&name, value) {
            Ok(res) => match owners.get(&res.topic) {
                Some(owner) => manifest.skipped.push(Skipped {
                    why: format!("topic_stub {:?} is already managed by resource {owner:?}", res.topic),
                    name,
                }),
                None => {
                    owners.insert(res.topic.clone(), name);
                    manifest.resources.push(res);
                }
            },
            Err(why) => manifest.skipped.push(Skipped {
                name: printable(&name),
                why,
            }),
        }
    }
    manifest
}

fn resource(name: &str, value: Value) -> Result<Resource, String> {
    sane(name).map_err(|e| format!("resource name {e}"))?;
    let entry: Entry = serde_json::from_value(value).map_err(|e| format!("expected {{topic_stub, streams}}: {e}"))?;
    let stub = entry.topic_stub;
    topic_part(&stub).map_err(|e| format!("topic_stub {e}"))?;
    let mut required = BTreeSet::new();
    for stream in entry.streams {
        topic_part(&stream).map_err(|e| format!("stream {e}"))?;
        let topic = format!("{stub}-{stream}");
        // The relay names an experiment's streams `<stub>-st-<name>`; any other requirement could never be met.
        if stream_stub(&topic) != Some(stub.as_str()) {
            return Err(format!(
                "stream {stream:?} of topic_stub {stub:?} makes topic {topic:?}, which no relay stream of it can have \
                 (expected st-<name>, and no -st- inside the stub)"
            ));
        }
        required.insert(topic);
    }
    Ok(Resource {
        name: name.to_string(),
        topic: stub,
        required: required.into_iter().collect(),
    })
}

/// Non-empty, not too long, no whitespace or control characters, and not a `.`/`..` path segment.
fn sane(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(format!("is longer than {MAX_NAME_CHARS} characters"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{:?} contains whitespace or control characters", printable(s)));
    }
    if s == "." || s == ".." {
        return Err(format!("{s:?} is not a name"));
    }
    Ok(())
}

/// A topic stub or stream name: [`sane`], and only ASCII letters, digits,
/// `-`, `_` and `.`. They make relay topics and land in URLs, mail and logs,
/// where `/`, `?`, `#`, `%`, quotes or spaces would change what they mean.
fn topic_part(s: &str) -> Result<(), String> {
    sane(s)?;
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{:?} holds {:?}: only letters, digits, '-', '_' and '.' are allowed",
            printable(s),
            bad.escape_debug().to_string()
        ));
    }
    Ok(())
}

/// A bounded, escaped form of untrusted text for log lines.
fn printable(s: &str) -> String {
    let short: String = s.chars().take(MAX_NAME_CHARS).collect();
    short.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test manifests are objects"),
        }
    }

    #[test]
    fn resources_map_to_full_stream_topics() {
        let m = map(raw(json!({
            "r-pend00": {
                "topic_stub": "pend00",
                "streams": ["st-video", "st-data", "st-data"],
                "description": "A pendulum",
                "tests": [{"anything": 1}],
                "config_url": "https://example.org/pend00.json"
            },
            "r-spin01": {"topic_stub": "spin01", "streams": []}
        })));
        assert_eq!(m.skipped, []);
        assert_eq!(
            m.resources,
            [
                Resource {
                    name: "r-pend00".into(),
                    topic: "pend00".into(),
                    required: vec!["pend00-st-data".into(), "pend00-st-video".into()],
                },
                Resource {
                    name: "r-spin01".into(),
                    topic: "spin01".into(),
                    required: vec![],
                },
            ]
        );
    }

    #[test]
    fn bad_entries_are_skipped_with_a_reason_and_the_rest_kept() {
        let m = map(raw(json!({
            "": {"topic_stub": "a", "streams": []},
            "..": {"topic_stub": "b", "streams": []},
            "r bad": {"topic_stub": "c", "streams": []},
            "r-nostub": {"streams": ["st-data"]},
            "r-emptystub": {"topic_stub": "", "streams": []},
            "r-spacestub": {"topic_stub": "pend 00", "streams": []},
            "r-ststub": {"topic_stub": "pend-st-00", "streams": ["st-data"]},
            "r-nostreams": {"topic_stub": "d"},
            "r-streamsnull": {"topic_stub": "e", "streams": null},
            "r-numstream": {"topic_stub": "f", "streams": ["st-data", 7]},
            "r-emptystream": {"topic_stub": "g", "streams": [""]},
            "r-notst": {"topic_stub": "h", "streams": ["data"]},
            "r-bare-st": {"topic_stub": "i", "streams": ["st-"]},
            "r-string": "pend00",
            "r-ctl\u{7}": {"topic_stub": "j", "streams": []},
            "r-slashstub": {"topic_stub": "pend/00", "streams": []},
            "r-querystub": {"topic_stub": "pend?00", "streams": []},
            "r-hashstub": {"topic_stub": "pend#00", "streams": []},
            "r-pctstub": {"topic_stub": "pend%2F00", "streams": []},
            "r-unicodestub": {"topic_stub": "pénd00", "streams": []},
            "r-slashstream": {"topic_stub": "k", "streams": ["st-da/ta"]},
            "r-querystream": {"topic_stub": "l", "streams": ["st-data?x=1"]},
            "r-hashstream": {"topic_stub": "m", "streams": ["st-data#x"]},
            "r-tabstream": {"topic_stub": "n", "streams": ["st-da\tta"]},
            "r-good": {"topic_stub": "good", "streams": ["st-data"]},
            "r-good.2_x": {"topic_stub": "Good_2.x-y", "streams": ["st-Data_2.x-y"]},
        })));
        assert_eq!(
            m.resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["r-good", "r-good.2_x"]
        );
        assert_eq!(m.resources[1].required, ["Good_2.x-y-st-Data_2.x-y"]);
        assert_eq!(m.skipped.len(), 24, "{:#?}", m.skipped);
        let why = |name: &str| {
            m.skipped
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.why.clone())
                .unwrap_or_else(|| panic!("{name} not skipped"))
        };
        assert!(why("").contains("name is empty"));
        assert!(why("r-nostub").contains("topic_stub"));
        assert!(why("r-notst").contains("st-<name>"));
        assert!(why("r-ststub").contains("-st-"));
        assert!(why("r-numstream").contains("expected"));
        for (name, bad) in [
            ("r-slashstub", "/"),
            ("r-querystub", "?"),
            ("r-hashstub", "#"),
            ("r-pctstub", "%"),
            ("r-unicodestub", "é"),
            ("r-slashstream", "/"),
            ("r-querystream", "?"),
            ("r-hashstream", "#"),
        ] {
            let why = why(name);
            assert!(
                why.contains(&format!("holds \"{bad}\"")) && why.contains("only letters, digits"),
                "{name}: {why}"
            );
        }
        assert!(why("r-slashstub").starts_with("topic_stub "));
        assert!(why("r-slashstream").starts_with("stream "));
        assert!(why("r-tabstream").contains("whitespace"), "{}", why("r-tabstream"));
        // Control characters never reach a log line raw.
        assert!(m.skipped.iter().any(|s| s.name == "r-ctl\\u{7}"));
    }

    #[test]
    fn a_topic_stub_claimed_twice_keeps_the_first_by_name() {
        let m = map(raw(json!({
            "r-b": {"topic_stub": "pend00", "streams": ["st-data"]},
            "r-a": {"topic_stub": "pend00", "streams": []},
        })));
        assert_eq!(m.resources.len(), 1);
        assert_eq!(m.resources[0].name, "r-a");
        assert_eq!(m.skipped[0].name, "r-b");
        assert!(m.skipped[0].why.contains("r-a"));
    }

    #[test]
    fn overlong_names_are_refused_and_trimmed_in_logs() {
        let long = "r".repeat(MAX_NAME_CHARS + 1);
        let mut m = Map::new();
        m.insert(long, json!({"topic_stub": "x", "streams": []}));
        let m = map(m);
        assert!(m.resources.is_empty());
        assert_eq!(m.skipped[0].name.len(), MAX_NAME_CHARS);
        assert!(m.skipped[0].why.contains("longer"));
    }
}
