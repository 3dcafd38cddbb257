//! The experiment list over HTTP: entity tags and gzip, as browsers and
//! `curl --compressed` use them, against the real service on loopback.

mod support;

use std::io::Read;

use flate2::read::GzDecoder;
use reqwest::header::{
    HeaderMap, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use status::tracker::{Input, Resource};
use support::{base_env, wait_for, Running};

const LIST: &str = "/api/v1/experiments";

fn resource(topic: &str) -> Resource {
    Resource {
        name: format!("r-{topic}"),
        topic: topic.into(),
        required: vec![format!("{topic}-st-data")],
    }
}

async fn get(svc: &Running, headers: &[(reqwest::header::HeaderName, &str)]) -> (u16, HeaderMap, Vec<u8>) {
    let mut request = svc.http.get(svc.url(LIST));
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = request.send().await.expect("the list answers");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body = response.bytes().await.expect("a whole body").to_vec();
    (status, headers, body)
}

fn header<'a>(headers: &'a HeaderMap, name: &reqwest::header::HeaderName) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn the_list_is_sent_compressed_when_accepted_and_not_again_while_unchanged() {
    let svc = Running::start_with(
        base_env(),
        vec![Input::Manifest(vec![resource("pend00"), resource("spin00")])],
    )
    .await;
    wait_for("both experiments listed", || async {
        (svc.snapshot.load().experiments.len() == 2).then_some(())
    })
    .await;

    let (status, plain_headers, plain) = get(&svc, &[]).await;
    assert_eq!(status, 200);
    assert!(plain_headers.get(CONTENT_ENCODING).is_none(), "not asked for gzip");
    assert_eq!(header(&plain_headers, &CONTENT_TYPE), "application/json");
    assert_eq!(header(&plain_headers, &CACHE_CONTROL), "no-cache");
    assert_eq!(header(&plain_headers, &VARY), "accept-encoding");
    let etag = header(&plain_headers, &ETAG).to_string();
    let listed: serde_json::Value = serde_json::from_slice(&plain).expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");

    // Compressed: the same bytes once inflated, under the same tag.
    let (status, gz_headers, gz) = get(&svc, &[(ACCEPT_ENCODING, "gzip, deflate")]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&gz_headers, &CONTENT_ENCODING), "gzip");
    assert_eq!(header(&gz_headers, &ETAG), etag);
    let mut inflated = Vec::new();
    GzDecoder::new(gz.as_slice())
        .read_to_end(&mut inflated)
        .expect("a valid gzip body");
    assert_eq!(inflated, plain, "gzip carries exactly the plain list");

    // The client has it: no body, either encoding.
    for accept in ["identity", "gzip"] {
        let (status, headers, body) = get(&svc, &[(IF_NONE_MATCH, &etag), (ACCEPT_ENCODING, accept)]).await;
        assert_eq!(status, 304, "{accept}");
        assert!(body.is_empty());
        assert_eq!(header(&headers, &ETAG), etag);
    }

    // Once the picture changes, the old tag fetches the new list.
    svc.send(Input::Manifest(vec![
        resource("pend00"),
        resource("spin00"),
        resource("tank00"),
    ]))
    .await;
    let (headers, body) = wait_for("the third experiment listed", || async {
        let (status, headers, body) = get(&svc, &[(IF_NONE_MATCH, &etag)]).await;
        (status == 200).then_some((headers, body))
    })
    .await;
    assert_ne!(header(&headers, &ETAG), etag);
    let listed: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    svc.stop().await;
}

#[tokio::test]
async fn a_tag_from_another_run_is_not_taken_for_this_one() {
    let first = Running::start(base_env()).await;
    let (_, headers, _) = get(&first, &[]).await;
    let tag = header(&headers, &ETAG).to_string();
    first.stop().await;

    let second = Running::start(base_env()).await;
    let (status, headers, _) = get(&second, &[(IF_NONE_MATCH, &tag)]).await;
    assert_eq!(status, 200, "a fresh process answers in full");
    assert_ne!(header(&headers, &ETAG), tag);
    second.stop().await;
}
