//! The live dashboard at `/`: one page, its script and its style, embedded in
//! the binary. It reads only the public REST API, like any other client.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("dashboard.js");
const STYLE: &str = include_str!("dashboard.css");

/// Nothing but this origin: the page fetches no external resource and runs no inline code.
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX)))
        .route("/dashboard.js", get(|| asset("text/javascript; charset=utf-8", SCRIPT)))
        .route("/dashboard.css", get(|| asset("text/css; charset=utf-8", STYLE)))
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every quoted string in `text` that starts with `/`, after `prefix` (`href="`, `("`…).
    fn absolute_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.match_indices(prefix)
            .map(|(at, _)| &text[at + prefix.len()..])
            .filter(|rest| rest.starts_with('/'))
            .map(|rest| &rest[..rest.find(['"', '\n']).unwrap_or(rest.len())])
            .collect()
    }

    #[test]
    fn the_page_uses_only_relative_urls_so_it_works_under_a_proxy_prefix() {
        for attribute in ["href=\"", "src=\"", "action=\""] {
            assert_eq!(absolute_after(INDEX, attribute), Vec::<&str>::new(), "{attribute}");
        }
        for call in ["fetch(\"", "getJson(\"", "fetch('", "getJson('"] {
            assert_eq!(absolute_after(SCRIPT, call), Vec::<&str>::new(), "{call}");
        }
        assert!(
            SCRIPT.contains("getJson(\"api/v1/experiments\")"),
            "the list is fetched relatively"
        );
        assert!(STYLE.find("url(/").is_none(), "no root-absolute url() in the style");
    }
}
