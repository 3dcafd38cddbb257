//! The relay's and the jump's statistics feeds (PROTOCOL.md §2): one generic
//! subscription, run once for each.
//!
//! A subscription turns the network into typed snapshots for the reconciler:
//! mint a token → `POST` the access URL → dial the granted WebSocket URI →
//! parse each text frame → send [`Input::Relay`] or [`Input::Jump`]. Every
//! failure is logged once with its context and retried after an exponential
//! backoff; every attempt starts again with a fresh token and access request.
//! It owns its connection and its [`FeedState`]; it never judges health
//! (the tracker does) and never logs a token or a granted code.

mod access;
mod backoff;
mod frame;
mod state;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

pub use access::{access_url, redact, AccessError};
pub use backoff::{Backoff, BACKOFF_MAX, BACKOFF_MIN};
pub use frame::{parse_frame, Frame, FrameError};
pub use state::{FeedBoard, FeedState, FeedStatus, FeedStatuses};

use crate::config::{Config, Peer};
use crate::token::{self, Feed};
use crate::tracker::Input;

/// Longest wait for the access answer, and for the WebSocket handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection silent for this many `STATUS_HEALTH_LAST_CHECKED` periods is
/// treated as dead and renewed. The tracker raises the silence alert after
/// one period; renewing after two gives a stuck connection (rather than a
/// stuck peer) its cure while staying far above the peers' frame period
/// (relay: 5 s; `last_checked` defaults to 30 s).
pub const IDLE_LIMIT_PERIODS: u32 = 2;

/// How long a polite close may take before the socket is simply dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What a deadline beyond the clock's range becomes: far enough never to come (as tokio does).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// When a subscription renews, gives up on silence and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Close and reconnect with a fresh token this often (`STATUS_RECONNECT_<X>_EVERY`).
    pub renew_every: Duration,
    /// A connection that delivers no frame for this long is dead.
    pub idle_limit: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Timing {
    /// The protocol's timing for `feed` under `config`.
    pub fn new(feed: Feed, config: &Config) -> Self {
        Self {
            renew_every: match feed {
                Feed::Relay => config.reconnect_relay_every,
                Feed::Jump => config.reconnect_jump_every,
            },
            idle_limit: idle_limit(config.health.last_checked),
            backoff_min: BACKOFF_MIN,
            backoff_max: BACKOFF_MAX,
        }
    }
}

/// [`IDLE_LIMIT_PERIODS`] times `last_checked`, saturating rather than overflowing.
fn idle_limit(last_checked: Duration) -> Duration {
    last_checked.saturating_mul(IDLE_LIMIT_PERIODS)
}

/// `now + after`, or a far-future instant when that would overflow the clock.
fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after).unwrap_or_else(|| now + FAR_FUTURE)
}

/// Why one connection attempt failed; the text is the one log line about it.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("dialling {uri} failed: {cause}")]
    Dial { uri: String, cause: String },
    #[error("dialling {uri} timed out after {CONNECT_TIMEOUT:?}")]
    DialTimeout { uri: String },
    #[error("the peer closed the connection{}", close_detail(.0))]
    Closed(Option<CloseFrame>),
    #[error("the connection ended without a close frame")]
    Vanished,
    #[error("WebSocket error: {0}")]
    Socket(tungstenite::Error),
    #[error("no frame for {0:?}: treating the connection as dead")]
    Idle(Duration),
}

fn close_detail(frame: &Option<CloseFrame>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => format!(" (code {})", f.code),
        Some(f) => format!(" (code {}: {:?})", f.code, f.reason.as_str()),
        None => String::new(),
    }
}

/// How one attempt ended.
enum End {
    /// The reconnect period is over: renew at once.
    Renew,
    Shutdown,
    /// `worked`: the connection delivered a snapshot before failing.
    Failed {
        error: FeedError,
        worked: bool,
    },
}

/// One statistics feed: relay or jump.
pub struct Subscription {
    feed: Feed,
    peer: Peer,
    timing: Timing,
    inputs: mpsc::Sender<Input>,
    state: Arc<FeedState>,
}

impl Subscription {
    pub fn new(feed: Feed, peer: Peer, timing: Timing, inputs: mpsc::Sender<Input>, state: Arc<FeedState>) -> Self {
        Self {
            feed,
            peer,
            timing,
            inputs,
            state,
        }
    }

    fn name(&self) -> &'static str {
        match self.feed {
            Feed::Relay => "relay",
            Feed::Jump => "jump",
        }
    }

    /// Subscribes, and again after every end, until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let feed = self.name();
        // Anything but a 200 is a failed attempt (PROTOCOL.md §2), a redirect included.
        let http = reqwest::Client::builder()
            .timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        let http = match http.build() {
            Ok(http) => http,
            Err(e) => {
                let error = FeedError::Client(access::causes(&e));
                error!(feed, %error, "feed cannot start");
                self.state.failed(Utc::now(), error.to_string());
                return;
            }
        };
        let mut backoff = Backoff::new(self.timing.backoff_min, self.timing.backoff_max);
        let mut first = true;
        loop {
            let (error, worked) = match self.attempt(&http, &shutdown, &mut first).await {
                End::Shutdown => break,
                End::Renew => {
                    backoff.reset();
                    continue;
                }
                End::Failed { error, worked } => (error, worked),
            };
            let delay = backoff.after_failure(worked);
            warn!(feed, peer = %self.peer.host, %error, retry_in = ?delay, "feed attempt failed");
            self.state.failed(Utc::now(), error.to_string());
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = sleep(delay) => {}
            }
        }
        debug!(feed, "feed stopped");
    }

    /// One access request, dial and connection, from a fresh token to its end.
    async fn attempt(&self, http: &reqwest::Client, shutdown: &CancellationToken, first: &mut bool) -> End {
        let (mut ws, shown) = tokio::select! {
            () = shutdown.cancelled() => return End::Shutdown,
            dialled = self.connect(http) => match dialled {
                Ok(dialled) => dialled,
                Err(error) => return End::Failed { error, worked: false },
            },
        };
        let feed = self.name();
        self.state.connected(Utc::now(), *first);
        *first = false;
        info!(feed, uri = %shown, "feed subscribed");
        let since = Instant::now();
        let end = self.read(&mut ws, shutdown).await;
        self.state.disconnected();
        let lasted = since.elapsed();
        match &end {
            // The failure itself is logged once, with the retry, by `run`.
            End::Failed { .. } => info!(feed, ?lasted, "feed disconnected"),
            End::Renew => info!(feed, ?lasted, "feed renewing its subscription"),
            End::Shutdown => debug!(feed, "feed closing for shutdown"),
        }
        close(ws).await;
        end
    }

    /// Mints a token, requests access and dials the granted URI; returns the socket and the URI fit for logs.
    async fn connect(&self, http: &reqwest::Client) -> Result<(Socket, String), FeedError> {
        let token = token::stats_token(self.feed, &self.peer, Utc::now().timestamp(), self.timing.renew_every)
            .map_err(AccessError::from)?;
        let url = access_url(self.feed, &self.peer);
        let uri = access::request(http, &url, &token, self.peer.scheme).await?;
        let shown = redact(&uri);
        match timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(uri.as_str())).await {
            Ok(Ok((ws, _))) => Ok((ws, shown)),
            Ok(Err(e)) => Err(FeedError::Dial {
                uri: shown,
                cause: access::causes(&e),
            }),
            Err(_) => Err(FeedError::DialTimeout { uri: shown }),
        }
    }

    /// Reads frames until renewal, shutdown, silence or failure.
    async fn read(&self, ws: &mut Socket, shutdown: &CancellationToken) -> End {
        let renew_at = deadline(Instant::now(), self.timing.renew_every);
        let idle = sleep_until(deadline(Instant::now(), self.timing.idle_limit));
        tokio::pin!(idle);
        let mut worked = false;
        let failed = |error, worked| End::Failed { error, worked };
        loop {
            let message = tokio::select! {
                biased;
                () = shutdown.cancelled() => return End::Shutdown,
                () = sleep_until(renew_at) => return End::Renew,
                () = &mut idle => return failed(FeedError::Idle(self.timing.idle_limit), worked),
                message = ws.next() => message,
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    idle.as_mut().reset(deadline(Instant::now(), self.timing.idle_limit));
                    match self.on_text(text.as_str(), shutdown).await {
                        ControlFlow::Continue(accepted) => worked |= accepted,
                        ControlFlow::Break(()) => return End::Shutdown,
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    idle.as_mut().reset(deadline(Instant::now(), self.timing.idle_limit));
                    self.state.frame(Utc::now(), None);
                    warn!(
                        feed = self.name(),
                        bytes = bytes.len(),
                        "binary frame ignored: statistics come as text"
                    );
                }
                // Tungstenite queues the pong; flushing sends it now rather than with the next read.
                Some(Ok(Message::Ping(_))) => {
                    if let Err(e) = ws.flush().await {
                        return failed(FeedError::Socket(e), worked);
                    }
                }
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(frame))) => return failed(FeedError::Closed(frame), worked),
                Some(Err(e)) => return failed(FeedError::Socket(e), worked),
                None => return failed(FeedError::Vanished, worked),
            }
        }
    }

    /// Parses a text frame and hands its snapshot on; `Continue(true)` when it was accepted.
    async fn on_text(&self, text: &str, shutdown: &CancellationToken) -> ControlFlow<(), bool> {
        let feed = self.name();
        let frame = match parse_frame(text) {
            Ok(frame) => frame,
            Err(error) => {
                self.state.frame(Utc::now(), None);
                warn!(feed, %error, bytes = text.len(), "frame rejected; the previous snapshot stands");
                return ControlFlow::Continue(false);
            }
        };
        self.state.frame(Utc::now(), Some(frame.defects));
        if let Some(first) = &frame.first_defect {
            warn!(feed, defects = frame.defects, first = %first, "frame accepted with defects");
        }
        let input = match self.feed {
            Feed::Relay => Input::Relay(frame.reports),
            Feed::Jump => Input::Jump(frame.reports),
        };
        tokio::select! {
            () = shutdown.cancelled() => ControlFlow::Break(()),
            sent = self.inputs.send(input) => match sent {
                Ok(()) => ControlFlow::Continue(true),
                // The reconciler only goes away at shutdown.
                Err(_) => ControlFlow::Break(()),
            },
        }
    }
}

/// Closes politely (a close frame, then the peer's answer) but never waits long.
async fn close(mut ws: Socket) {
    let _ = timeout(CLOSE_WAIT, async {
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A configuration with every required variable plus `extra`.
    pub(crate) fn config_with(extra: &[(&str, &str)]) -> Config {
        let mut vars: Vec<(String, String)> = ["BOOK", "JUMP", "RELAY"]
            .iter()
            .flat_map(|p| {
                [
                    (format!("STATUS_HOST_{p}"), "h".into()),
                    (format!("STATUS_SECRET_{p}"), "s".into()),
                ]
            })
            .collect();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_vars(vars).unwrap()
    }

    #[test]
    fn timing_follows_the_configuration() {
        let config = config_with(&[
            ("STATUS_RECONNECT_JUMP_EVERY", "1h"),
            ("STATUS_HEALTH_LAST_CHECKED", "20s"),
        ]);
        let t = Timing::new(Feed::Jump, &config);
        assert_eq!(t.renew_every, Duration::from_secs(3600));
        assert_eq!(t.idle_limit, Duration::from_secs(40));
        assert_eq!((t.backoff_min, t.backoff_max), (BACKOFF_MIN, BACKOFF_MAX));
        assert_eq!(
            Timing::new(Feed::Relay, &config).renew_every,
            Duration::from_secs(86_400)
        );
    }

    #[test]
    fn absurd_periods_saturate_instead_of_overflowing() {
        assert_eq!(idle_limit(Duration::from_secs(20)), Duration::from_secs(40));
        assert_eq!(idle_limit(Duration::MAX), Duration::MAX);
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::from_secs(5)), now + Duration::from_secs(5));
        assert!(deadline(now, Duration::MAX) >= now + FAR_FUTURE);
    }

    #[test]
    fn close_reasons_are_shown_but_short() {
        use tungstenite::protocol::frame::coding::CloseCode;
        let e = FeedError::Closed(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "restarting".into(),
        }));
        assert_eq!(
            e.to_string(),
            "the peer closed the connection (code 1001: \"restarting\")"
        );
        assert_eq!(FeedError::Closed(None).to_string(), "the peer closed the connection");
    }
}
