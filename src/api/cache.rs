//! The experiment list travels compressed, or not at all when the client has it.
//!
//! A large fleet's list is tens of megabytes, and readers poll it (the
//! dashboard every 2 s). Each published snapshot carries a version: it is the
//! list's entity tag, so a client that sends it back in `If-None-Match` gets
//! `304` and no body until the picture changes. A client that accepts gzip
//! gets the list compressed once per snapshot, by its first such reader.
//! Both are standard HTTP: browsers and `curl --compressed` use them unasked.

use axum::http::header::{self, HeaderMap, HeaderValue};

/// How to answer one request for a representation that has `etag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The client's copy is current: `304`, no body.
    NotModified,
    /// The whole body, gzip-compressed.
    Gzip,
    /// The whole body as it is.
    Identity,
}

/// Decides from the request's `If-None-Match` and `Accept-Encoding`.
pub fn negotiate(request: &HeaderMap, etag: &str) -> Answer {
    if request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|value| matches_any(value, etag))
    {
        Answer::NotModified
    } else if request.get_all(header::ACCEPT_ENCODING).iter().any(accepts_gzip) {
        Answer::Gzip
    } else {
        Answer::Identity
    }
}

/// The snapshot `version` as a strong entity tag.
pub fn etag(version: u64) -> String {
    format!("\"{version:016x}\"")
}

/// The headers every answer carries, `304` included: caches must ask again
/// each time (the picture changes every few seconds) and keep one copy per encoding.
pub fn headers(etag: &str) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::ETAG,
            HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ]
}

/// `If-None-Match: "a", W/"b"` or `*` (RFC 9110 §13.1.2: weak comparison).
fn matches_any(value: &HeaderValue, etag: &str) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    value.split(',').map(str::trim).any(|tag| {
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        tag == "*" || tag == etag
    })
}

/// `Accept-Encoding: gzip, br;q=0.5` accepts gzip; `gzip;q=0` refuses it, and
/// an explicit `gzip` entry outranks `*`.
fn accepts_gzip(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let (mut gzip, mut any) = (None, None);
    for coding in value.split(',') {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let accepted = !parts.any(|p| {
            p.strip_prefix("q=")
                .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        if name.eq_ignore_ascii_case("gzip") {
            gzip = Some(accepted);
        } else if name == "*" {
            any = Some(accepted);
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_current_tag_in_any_form_means_not_modified() {
        let tag = etag(0x2a);
        assert_eq!(tag, "\"000000000000002a\"");
        for sent in [
            "\"000000000000002a\"",
            "W/\"000000000000002a\"",
            "\"old\", \"000000000000002a\"",
            "*",
        ] {
            let headers = request(&[("if-none-match", sent)]);
            assert_eq!(negotiate(&headers, &tag), Answer::NotModified, "{sent}");
        }
        let stale = request(&[("if-none-match", "\"0000000000000029\""), ("accept-encoding", "gzip")]);
        assert_eq!(negotiate(&stale, &tag), Answer::Gzip);
    }

    #[test]
    fn gzip_only_when_accepted() {
        let tag = etag(1);
        for (sent, answer) in [
            ("gzip", Answer::Gzip),
            ("br, GZIP;q=0.8", Answer::Gzip),
            ("deflate, gzip ; q=1.0", Answer::Gzip),
            ("*", Answer::Gzip),
            ("gzip;q=0", Answer::Identity),
            ("gzip;q=0, *", Answer::Identity),
            ("*;q=0", Answer::Identity),
            ("gzip; q=0.000", Answer::Identity),
            ("br, deflate", Answer::Identity),
            ("identity", Answer::Identity),
        ] {
            let headers = request(&[("accept-encoding", sent)]);
            assert_eq!(negotiate(&headers, &tag), answer, "{sent}");
        }
        assert_eq!(negotiate(&HeaderMap::new(), &tag), Answer::Identity);
    }
}
