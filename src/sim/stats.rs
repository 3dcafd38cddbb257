//! A simulated relay or jump statistics peer (PROTOCOL.md §1–2), for the
//! demo and the tests.
//!
//! It checks the access token exactly as PROTOCOL.md §1 mints it (HS256
//! signature with the shared secret, `aud` = exactly its base URL, `topic`,
//! `prefix`, exactly the one scope, `booking_id` = `status-server`, validity
//! times), grants a single-use short-lived code, and sends every subscriber
//! a snapshot of its current reports, in the peers' camelCase, once per
//! period, each after a ping. A [`SimStats`] handle steers it: change the
//! reports, fall silent, close every socket, refuse access (by status, by a
//! bad answer, or at the TCP level), send garbage, and read back what it saw.
//! It binds loopback only and is never part of `serve`.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{interval, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response as WsResponse};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{http, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::report::Report;
use crate::token::{self, Feed, StatsClaims};

/// How long a granted code may wait to be dialled, as the real peers allow.
pub const CODE_LIFETIME: Duration = Duration::from_secs(10);

/// Versions of the reports whose first send time is remembered, newest last.
const SENT_REMEMBERED: usize = 1024;

/// Access request arrival times remembered, newest last.
const ACCESS_TIMES_REMEMBERED: usize = 1024;

/// Where [`BadAnswer::Redirect`] points, under the access path: it would grant a code.
const MOVED: &str = "/moved";

/// One odd frame to send instead of the next snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbage {
    /// Text that is not JSON.
    NotJson,
    /// A binary frame.
    Binary,
    /// A JSON object instead of an array.
    Object,
    /// The current reports, each with a field of the wrong type, plus one with a numeric topic.
    WrongTypes,
}

/// An access answer other than a grant, for a request whose token passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadAnswer {
    /// `200` with this body (as JSON) instead of `{"uri": "…"}`.
    Body(String),
    /// `302` to a route that grants a code: following it would hide the failure.
    Redirect,
}

/// A running simulated peer; cloning shares it.
#[derive(Clone)]
pub struct SimStats {
    shared: Arc<Shared>,
}

struct Shared {
    feed: Feed,
    secret: String,
    /// `http://127.0.0.1:<port><basepath>`: the audience tokens must name.
    base_url: String,
    host: String,
    /// `<basepath>/session/stats` or `<basepath>/api/v1/connect/stats`.
    path: String,
    ws_root: String,
    period: Duration,
    closes: watch::Sender<u64>,
    state: Mutex<PeerState>,
    /// The access port, bound but not yet listening: connections to it are refused.
    closed_access: Mutex<Option<TcpSocket>>,
    shutdown: CancellationToken,
}

#[derive(Default)]
struct PeerState {
    reports: Vec<Report>,
    /// Bumped by every `set_reports`.
    version: u64,
    /// When a snapshot of each recent version was first sent: `(version, instant)`.
    first_sent: VecDeque<(u64, std::time::Instant)>,
    silent: bool,
    refusals: u32,
    refusal: StatusCode,
    bad_answers: VecDeque<BadAnswer>,
    redirects_followed: u64,
    access_times: VecDeque<std::time::Instant>,
    garbage: Vec<Garbage>,
    codes: HashMap<String, Instant>,
    access_requests: u64,
    bad_tokens: u64,
    subscriptions: u64,
    open: usize,
    pongs: u64,
    last_claims: Option<Map<String, Value>>,
}

impl SimStats {
    /// Starts a peer for `feed` under `basepath` on two loopback ports (access over HTTP, then
    /// WebSocket), sending snapshots every `period`, until `shutdown` is cancelled.
    pub async fn start(
        feed: Feed,
        basepath: &str,
        secret: &str,
        period: Duration,
        shutdown: CancellationToken,
    ) -> io::Result<SimStats> {
        let sim = Self::start_closed(feed, basepath, secret, period, shutdown).await?;
        sim.listen()?;
        Ok(sim)
    }

    /// Like [`Self::start`], but the access port is only bound, not listening: access
    /// requests are refused at the TCP level (connection refused) until [`Self::listen`].
    pub async fn start_closed(
        feed: Feed,
        basepath: &str,
        secret: &str,
        period: Duration,
        shutdown: CancellationToken,
    ) -> io::Result<SimStats> {
        let http = TcpSocket::new_v4()?;
        http.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let ws = TcpListener::bind("127.0.0.1:0").await?;
        let host = http.local_addr()?.to_string();
        let basepath = match basepath.trim_matches('/') {
            "" => String::new(),
            p => format!("/{p}"),
        };
        let path = match feed {
            Feed::Relay => format!("{basepath}/session/stats"),
            Feed::Jump => format!("{basepath}/api/v1/connect/stats"),
        };
        let shared = Arc::new(Shared {
            feed,
            secret: secret.to_string(),
            base_url: format!("http://{host}{basepath}"),
            host,
            path,
            ws_root: format!("ws://{}", ws.local_addr()?),
            period,
            closes: watch::channel(0).0,
            state: Mutex::new(PeerState::default()),
            closed_access: Mutex::new(Some(http)),
            shutdown: shutdown.clone(),
        });
        tokio::spawn(accept_subscribers(shared.clone(), ws, shutdown));
        Ok(SimStats { shared })
    }

    /// Starts answering access requests on the bound port; does nothing if it already does.
    pub fn listen(&self) -> io::Result<()> {
        let closed = self.shared.closed_access.lock();
        let Some(socket) = closed.unwrap_or_else(|poisoned| poisoned.into_inner()).take() else {
            return Ok(());
        };
        let http = socket.listen(1024)?;
        let app = Router::new()
            .route(&self.shared.path, post(access))
            .route(&format!("{}{MOVED}", self.shared.path), any(moved))
            .with_state(self.shared.clone());
        let stop = self.shared.shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(http, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                warn!(error = %e, "simulated peer: access server failed");
            }
        });
        Ok(())
    }

    /// `127.0.0.1:<port>`, for `STATUS_HOST_*`.
    pub fn host(&self) -> &str {
        &self.shared.host
    }

    /// The audience this peer expects in tokens.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The connections the next snapshots report; returns their version for [`Self::first_sent`].
    pub fn set_reports(&self, reports: Vec<Report>) -> u64 {
        let mut st = self.shared.lock();
        st.reports = reports;
        st.version += 1;
        st.version
    }

    /// When the first snapshot of reports `version` began to go out to a subscriber (monotonic
    /// time), if it has and is among the last 1024 versions: where evidence-to-action latency starts.
    pub fn first_sent(&self, version: u64) -> Option<std::time::Instant> {
        let st = self.shared.lock();
        st.first_sent.iter().find(|(v, _)| *v == version).map(|(_, at)| *at)
    }

    /// Stops (or resumes) sending snapshots while keeping every socket open.
    pub fn set_silent(&self, silent: bool) {
        self.shared.lock().silent = silent;
    }

    /// Closes every open subscription with a close frame.
    pub fn close_connections(&self) {
        self.shared.closes.send_modify(|n| *n += 1);
    }

    /// Answers the next `times` access requests with `status` instead of a code.
    pub fn refuse_access(&self, times: u32, status: StatusCode) {
        let mut st = self.shared.lock();
        st.refusals = times;
        st.refusal = status;
    }

    /// Answers the next access requests whose token passes with `answers`, in order, instead of a code.
    pub fn answer_badly(&self, answers: impl IntoIterator<Item = BadAnswer>) {
        self.shared.lock().bad_answers.extend(answers);
    }

    /// Requests that followed a [`BadAnswer::Redirect`] (a client must not).
    pub fn redirects_followed(&self) -> u64 {
        self.shared.lock().redirects_followed
    }

    /// When the last (up to 1024) access requests arrived, oldest first.
    pub fn access_times(&self) -> Vec<std::time::Instant> {
        self.shared.lock().access_times.iter().copied().collect()
    }

    /// Sends `garbage` instead of the next snapshot (once, to whichever subscriber ticks first).
    pub fn send_garbage(&self, garbage: Garbage) {
        self.shared.lock().garbage.push(garbage);
    }

    /// Access requests received, refused or not.
    pub fn access_requests(&self) -> u64 {
        self.shared.lock().access_requests
    }

    /// Access requests refused because of their token.
    pub fn bad_tokens(&self) -> u64 {
        self.shared.lock().bad_tokens
    }

    /// WebSocket subscriptions accepted with a valid code.
    pub fn subscriptions(&self) -> u64 {
        self.shared.lock().subscriptions
    }

    /// Subscriptions open now.
    pub fn open_connections(&self) -> usize {
        self.shared.lock().open
    }

    /// Pongs received in answer to the ping that precedes every period's message.
    pub fn pongs(&self) -> u64 {
        self.shared.lock().pongs
    }

    /// Every claim of the last token that passed verification.
    pub fn last_claims(&self) -> Option<Map<String, Value>> {
        self.shared.lock().last_claims.clone()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, PeerState> {
        // Critical sections only assign plain fields: a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What the real peer checks before granting a subscription.
    fn verify(&self, headers: &HeaderMap) -> Result<Map<String, Value>, &'static str> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or("no token in Authorization")?;
        let all: Map<String, Value> =
            token::verify(token, self.secret.as_bytes(), &self.base_url).map_err(|_| "token refused")?;
        let claims: StatsClaims =
            serde_json::from_value(Value::Object(all.clone())).map_err(|_| "token lacks a required claim")?;
        let (prefix, scope) = match self.feed {
            Feed::Relay => ("session", "read"),
            Feed::Jump => ("connect", "stats"),
        };
        if claims.aud != [self.base_url.as_str()] {
            return Err("token audience is not exactly this peer");
        }
        if claims.topic != "stats" || claims.prefix != prefix {
            return Err("token is not for the stats topic of this connection type");
        }
        if claims.scopes != [scope] {
            return Err("token scopes are not exactly the one this connection type needs");
        }
        if claims.booking_id != token::WHO {
            return Err("token booking_id is not the status server's");
        }
        Ok(all)
    }

    /// Takes `code` if it was granted and has not expired: a code works once.
    fn redeem(&self, code: &str) -> bool {
        let mut st = self.lock();
        let valid = st.codes.remove(code).is_some_and(|expires| expires > Instant::now());
        if valid {
            st.subscriptions += 1;
            st.open += 1;
        }
        valid
    }

    /// Remembers `at` as the first send of `version` unless it was sent before.
    fn sent(&self, version: u64, at: std::time::Instant) {
        let mut st = self.lock();
        if st.first_sent.iter().any(|(v, _)| *v == version) {
            return;
        }
        if st.first_sent.len() == SENT_REMEMBERED {
            st.first_sent.pop_front();
        }
        st.first_sent.push_back((version, at));
    }

    /// The next message for a subscriber, if any is due, with the version of the reports it carries.
    fn next_message(&self) -> Option<(Message, Option<u64>)> {
        let mut st = self.lock();
        if !st.garbage.is_empty() {
            let message = match st.garbage.remove(0) {
                Garbage::NotJson => Message::text("this is not JSON {"),
                Garbage::Binary => Message::binary(vec![0x5b, 0x5d, 0xff]),
                Garbage::Object => Message::text(r#"{"topic": "stats", "reports": []}"#),
                Garbage::WrongTypes => {
                    let mut odd: Vec<Value> = st
                        .reports
                        .iter()
                        .map(|r| {
                            let mut v = wire(r);
                            v["canWrite"] = json!("yes");
                            v
                        })
                        .collect();
                    odd.push(json!({"topic": 42, "scopes": ["expt"]}));
                    Message::text(Value::Array(odd).to_string())
                }
            };
            return Some((message, None));
        }
        if st.silent {
            return None;
        }
        let snapshot: Vec<Value> = st.reports.iter().map(wire).collect();
        Some((Message::text(Value::Array(snapshot).to_string()), Some(st.version)))
    }
}

/// A report in the peers' own format: camelCase, Go duration strings.
pub fn wire(r: &Report) -> Value {
    json!({
        "topic": r.topic,
        "canRead": r.can_read,
        "canWrite": r.can_write,
        "connected": r.connected,
        "expiresAt": r.expires_at,
        "remoteAddr": r.remote_addr,
        "userAgent": r.user_agent,
        "scopes": r.scopes,
        "stats": r.stats,
    })
}

/// `POST <path>`: verify the token, then grant a single-use code.
async fn access(State(sim): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let refused = {
        let mut st = sim.lock();
        st.access_requests += 1;
        if st.access_times.len() == ACCESS_TIMES_REMEMBERED {
            st.access_times.pop_front();
        }
        st.access_times.push_back(std::time::Instant::now());
        if st.refusals > 0 {
            st.refusals -= 1;
            Some(st.refusal)
        } else {
            None
        }
    };
    if let Some(status) = refused {
        return (status, "refused on request").into_response();
    }
    let claims = match sim.verify(&headers) {
        Ok(claims) => claims,
        Err(why) => {
            sim.lock().bad_tokens += 1;
            return (StatusCode::UNAUTHORIZED, why).into_response();
        }
    };
    let bad = sim.lock().bad_answers.pop_front();
    match bad {
        None => grant(&sim, claims),
        Some(BadAnswer::Body(body)) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Some(BadAnswer::Redirect) => {
            let to = format!("http://{}{}{MOVED}", sim.host, sim.path);
            (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
        }
    }
}

/// Where a redirect points: grants a code to a valid token, and counts that it was followed.
async fn moved(State(sim): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    sim.lock().redirects_followed += 1;
    match sim.verify(&headers) {
        Ok(claims) => grant(&sim, claims),
        Err(why) => (StatusCode::UNAUTHORIZED, why).into_response(),
    }
}

/// A fresh single-use code for a verified token, in the access answer.
fn grant(sim: &Shared, claims: Map<String, Value>) -> Response {
    let code = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let uri = format!("{}{}?code={code}", sim.ws_root, sim.path);
    let mut st = sim.lock();
    let now = Instant::now();
    st.codes.retain(|_, expires| *expires > now);
    st.codes.insert(code, now + CODE_LIFETIME);
    st.last_claims = Some(claims);
    Json(json!({ "uri": uri })).into_response()
}

async fn accept_subscribers(sim: Arc<Shared>, listener: TcpListener, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "simulated peer: accept failed");
                    continue;
                }
            },
        };
        tokio::spawn(subscribe(sim.clone(), stream, shutdown.clone()));
    }
}

/// The WebSocket handshake: the path must be ours and the code fresh and unused.
async fn subscribe(sim: Arc<Shared>, stream: TcpStream, shutdown: CancellationToken) {
    #[allow(clippy::result_large_err)] // The shape tungstenite's handshake callback requires.
    let check = |req: &Request, resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
        let code = req
            .uri()
            .query()
            .into_iter()
            .flat_map(|q| url::form_urlencoded::parse(q.as_bytes()))
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned());
        if req.uri().path() == sim.path && code.is_some_and(|c| sim.redeem(&c)) {
            return Ok(resp);
        }
        let mut refusal = ErrorResponse::new(Some("unknown, used or expired code".into()));
        *refusal.status_mut() = http::StatusCode::UNAUTHORIZED;
        Err(refusal)
    };
    match tokio_tungstenite::accept_hdr_async(stream, check).await {
        Ok(ws) => {
            serve(&sim, ws, shutdown).await;
            sim.lock().open -= 1;
        }
        Err(e) => debug!(error = %e, "simulated peer: subscription refused"),
    }
}

/// Sends snapshots every period until closed, told to close, or shut down.
async fn serve(sim: &Shared, mut ws: WebSocketStream<TcpStream>, shutdown: CancellationToken) {
    let mut closes = sim.closes.subscribe();
    let mut tick = interval(sim.period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = closes.changed() => {
                let bye = CloseFrame { code: CloseCode::Away, reason: "simulated close".into() };
                let _ = ws.close(Some(bye)).await;
                break;
            }
            // Reading answers the client's pings and notices its close.
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Pong(_))) => sim.lock().pongs += 1,
                Some(Ok(_)) => {}
                _ => break,
            },
            // Like the real peers, ping even while silent: the socket is alive, the feed is not.
            _ = tick.tick() => {
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
                let Some((message, version)) = sim.next_message() else { continue };
                // Marked before sending: the frame may be read and acted on before `send` returns.
                if let Some(version) = version {
                    sim.sent(version, std::time::Instant::now());
                }
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        }
    }
}
