//! HS256 tokens for relay, jump and booking (PROTOCOL.md §1).
//!
//! Minting only needs the peer's base URL (the audience) and secret; the
//! simulated peers use [`verify`] to check exactly what a real peer would.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::Peer;

/// Booking tokens live minutes, not days: one is minted per round or request.
pub const BOOK_TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The `booking_id` and `sub` the peers know us by.
pub const WHO: &str = "status-server";

#[derive(Debug, thiserror::Error)]
#[error("cannot {0} token: {1}")]
pub struct TokenError(&'static str, jsonwebtoken::errors::Error);

/// Which statistics feed a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Relay,
    Jump,
}

impl Feed {
    /// The connection type (`prefix` claim) and the scope the peer expects.
    fn prefix_and_scope(self) -> (&'static str, &'static str) {
        match self {
            Feed::Relay => ("session", "read"),
            Feed::Jump => ("connect", "stats"),
        }
    }
}

/// Claims of a relay or jump statistics token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsClaims {
    pub aud: Vec<String>,
    pub topic: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub booking_id: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// Claims of a booking admin token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookClaims {
    pub aud: Vec<String>,
    pub sub: String,
    pub scopes: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// A token for the `stats` topic of relay or jump, valid from `now` (Unix seconds) for `lifetime`
/// rounded up to whole seconds, at least one: `exp` is never `iat`.
pub fn stats_token(feed: Feed, peer: &Peer, now: i64, lifetime: Duration) -> Result<String, TokenError> {
    let (prefix, scope) = feed.prefix_and_scope();
    let claims = StatsClaims {
        aud: vec![peer.base_url()],
        topic: "stats".into(),
        prefix: prefix.into(),
        scopes: vec![scope.into()],
        booking_id: WHO.into(),
        iat: now,
        nbf: now,
        exp: now.saturating_add(secs(lifetime)),
    };
    sign(&claims, peer)
}

/// A booking admin token, valid from a second before `now` for [`BOOK_TOKEN_LIFETIME`].
pub fn book_token(peer: &Peer, now: i64) -> Result<String, TokenError> {
    let claims = BookClaims {
        aud: vec![peer.base_url()],
        sub: WHO.into(),
        scopes: vec!["booking:admin".into()],
        iat: now,
        nbf: now - 1,
        exp: now.saturating_add(secs(BOOK_TOKEN_LIFETIME)),
    };
    sign(&claims, peer)
}

/// Checks signature, expiry and audience as a peer would, and returns the claims.
pub fn verify<C: DeserializeOwned>(token: &str, secret: &[u8], audience: &str) -> Result<C, TokenError> {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&[audience]);
    v.validate_nbf = true;
    v.leeway = 1;
    jsonwebtoken::decode::<C>(token, &DecodingKey::from_secret(secret), &v)
        .map(|d| d.claims)
        .map_err(|e| TokenError("verify", e))
}

fn sign<C: Serialize>(claims: &C, peer: &Peer) -> Result<String, TokenError> {
    let key = EncodingKey::from_secret(peer.secret.expose_secret().as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).map_err(|e| TokenError("sign", e))
}

/// `d` in whole seconds, rounded up and at least 1: a token must outlive the second it is minted in.
fn secs(d: Duration) -> i64 {
    let up = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)).max(1);
    i64::try_from(up).map_or(i64::MAX / 2, |s| s.min(i64::MAX / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scheme;
    use secrecy::SecretString;

    fn peer() -> Peer {
        Peer {
            scheme: Scheme::Https,
            host: "app.example.org".into(),
            basepath: "/tenant/relay".into(),
            secret: SecretString::from("s3cret"),
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn relay_tokens_carry_exactly_the_protocol_claims() {
        let n = now();
        let t = stats_token(Feed::Relay, &peer(), n, Duration::from_secs(86_400)).unwrap();
        let c: StatsClaims = verify(&t, b"s3cret", "https://app.example.org/tenant/relay").unwrap();
        assert_eq!(
            c,
            StatsClaims {
                aud: vec!["https://app.example.org/tenant/relay".into()],
                topic: "stats".into(),
                prefix: "session".into(),
                scopes: vec!["read".into()],
                booking_id: "status-server".into(),
                iat: n,
                nbf: n,
                exp: n + 86_400,
            }
        );
        // No other claims sneak in.
        let all: serde_json::Map<String, serde_json::Value> =
            verify(&t, b"s3cret", "https://app.example.org/tenant/relay").unwrap();
        assert_eq!(all.len(), 8);
    }

    #[test]
    fn jump_tokens_use_connect_and_stats() {
        let t = stats_token(Feed::Jump, &peer(), now(), Duration::from_secs(60)).unwrap();
        let c: StatsClaims = verify(&t, b"s3cret", "https://app.example.org/tenant/relay").unwrap();
        assert_eq!(
            (c.prefix.as_str(), c.scopes.as_slice()),
            ("connect", &["stats".to_string()][..])
        );
    }

    #[test]
    fn book_tokens_carry_exactly_the_protocol_claims() {
        let n = now();
        let book = Peer {
            basepath: "/tenant/book".into(),
            ..peer()
        };
        let base = "https://app.example.org/tenant/book";
        let t = book_token(&book, n).unwrap();
        let c: BookClaims = verify(&t, b"s3cret", base).unwrap();
        assert_eq!(
            c,
            BookClaims {
                aud: vec![base.into()],
                sub: "status-server".into(),
                scopes: vec!["booking:admin".into()],
                iat: n,
                nbf: n - 1,
                exp: n + 5 * 60,
            }
        );
        // No other claims sneak in, and `aud` is an array of exactly one string.
        let all: serde_json::Map<String, serde_json::Value> = verify(&t, b"s3cret", base).unwrap();
        let mut names: Vec<&str> = all.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["aud", "exp", "iat", "nbf", "scopes", "sub"]);
        assert_eq!(all["aud"], serde_json::json!([base]));
    }

    #[test]
    fn lifetimes_round_up_to_whole_seconds_and_never_to_zero() {
        let n = now();
        for (lifetime, secs) in [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_millis(500), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1500), 2),
            (Duration::from_secs(60), 60),
        ] {
            let t = stats_token(Feed::Relay, &peer(), n, lifetime).unwrap();
            let c: StatsClaims = verify(&t, b"s3cret", "https://app.example.org/tenant/relay").unwrap();
            assert_eq!(c.exp - c.iat, secs, "{lifetime:?}");
        }
        // Absurd lifetimes saturate instead of overflowing.
        let t = stats_token(Feed::Relay, &peer(), n, Duration::MAX).unwrap();
        let c: StatsClaims = verify(&t, b"s3cret", "https://app.example.org/tenant/relay").unwrap();
        assert!(c.exp > n);
    }

    #[test]
    fn a_wrong_secret_or_audience_is_refused() {
        let t = stats_token(Feed::Relay, &peer(), now(), Duration::from_secs(60)).unwrap();
        assert!(verify::<StatsClaims>(&t, b"other", "https://app.example.org/tenant/relay").is_err());
        assert!(verify::<StatsClaims>(&t, b"s3cret", "https://app.example.org").is_err());
    }
}
