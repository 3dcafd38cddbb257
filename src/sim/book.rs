//! A simulated booking admin API (PROTOCOL.md §3) on 127.0.0.1, for the tests and `status demo`.
//!
//! It serves a manifest, stores availability per resource, checks booking
//! tokens as the real system does (the bare token in `Authorization`,
//! signature, `aud` of exactly one element, `sub`, `scopes`, expiry), records
//! every request with its headers and how many were in flight at once, and
//! can be told through a [`BookControl`] to misbehave: answer 500 (or another
//! status about one resource), hang until a time or until released, or
//! refuse with 401. It never listens beyond loopback and never logs a token.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawPathParams, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;

use crate::token::{verify, BookClaims, WHO};

/// The real booking system refuses tokens that live longer than this.
const MAX_TOKEN_LIFETIME_SECS: i64 = 60 * 60;

/// What the simulated booking system holds for one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holding {
    pub available: bool,
    pub reason: String,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path as sent, still percent-encoded.
    pub path: String,
    /// The query, decoded.
    pub query: Vec<(String, String)>,
    /// The `{name}` of `/admin/resources/{name}`, decoded.
    pub resource: Option<String>,
    /// What was answered; `None` while the request is still being answered (or hangs).
    pub status: Option<u16>,
    /// When it arrived (monotonic): where evidence-to-action latency ends.
    pub at: Instant,
}

impl Recorded {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `GET /admin/resources`, the manifest.
    pub fn is_manifest(&self) -> bool {
        self.method == "GET" && self.resource.is_none() && self.path.ends_with("/admin/resources")
    }

    /// A request about `resource` with `method`.
    pub fn is(&self, method: &str, resource: &str) -> bool {
        self.method == method && self.resource.as_deref() == Some(resource)
    }
}

/// The headers of one request as they arrived (values that are not text are left out).
pub type Headers = Vec<(String, String)>;

#[derive(Default)]
struct Ledger {
    manifest: Map<String, Value>,
    held: BTreeMap<String, Holding>,
    requests: VecDeque<Recorded>,
    /// The headers of each of `requests`, at the same index.
    headers: VecDeque<Headers>,
    /// Absolute index of `requests[0]`: earlier ones were let go (see [`BookControl::keep_requests`]).
    first_request: usize,
    /// Requests remembered at most; `None` keeps them all.
    keep: Option<usize>,
    fail_next: usize,
    hang_next: usize,
    hang_for: Duration,
    /// Only requests about this resource hang, if set.
    hang_only: Option<String>,
    /// Cancelled to let every request hanging now go on.
    release: CancellationToken,
    /// Requests about one resource answered with a status of choice: (resource, how many, status).
    fail_about: Option<(String, usize, StatusCode)>,
    refuse: bool,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: usize,
    max_in_flight: usize,
    /// Requests about each resource being answered now, and the most about one resource at once.
    in_flight_about: HashMap<String, usize>,
    max_in_flight_about_one: usize,
}

struct Shared {
    secret: String,
    /// `http://127.0.0.1:<port><basepath>`: the audience tokens must name.
    audience: String,
    state: Mutex<Ledger>,
    stop: CancellationToken,
}

/// Steers a running simulated booking API; cheap to clone.
#[derive(Clone)]
pub struct BookControl(Arc<Shared>);

/// A running simulated booking API; stops serving (and releases hung requests) when dropped.
pub struct SimBook {
    control: BookControl,
    addr: SocketAddr,
    basepath: String,
    _stop: DropGuard,
}

impl SimBook {
    /// Serves on an ephemeral loopback port under `basepath` (`""` or `/tenant/book`).
    pub async fn start(secret: &str, basepath: &str) -> std::io::Result<SimBook> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let trimmed = basepath.trim_matches('/');
        let basepath = if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        };
        let stop = CancellationToken::new();
        let control = BookControl(Arc::new(Shared {
            secret: secret.to_string(),
            audience: format!("http://{addr}{basepath}"),
            state: Mutex::default(),
            stop: stop.clone(),
        }));
        let api = Router::new()
            .route("/api/v1/admin/resources", get(manifest))
            .route("/api/v1/admin/resources/{name}", get(read).put(set));
        let app = if basepath.is_empty() {
            api
        } else {
            Router::new().nest(&basepath, api)
        }
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"error": "no such route"}))) })
        .layer(middleware::from_fn_with_state(control.clone(), gate))
        .with_state(control.clone());
        let serving = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(serving.cancelled_owned())
                .await;
            if let Err(e) = served {
                debug!("simulated booking API stopped: {e}");
            }
        });
        Ok(SimBook {
            control,
            addr,
            basepath,
            _stop: stop.drop_guard(),
        })
    }

    pub fn control(&self) -> &BookControl {
        &self.control
    }

    /// `127.0.0.1:<port>`, for `STATUS_HOST_BOOK`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// For `STATUS_BASEPATH_BOOK`.
    pub fn basepath(&self) -> &str {
        &self.basepath
    }

    pub fn base_url(&self) -> &str {
        &self.control.0.audience
    }
}

impl BookControl {
    fn state(&self) -> MutexGuard<'_, Ledger> {
        // Every update is a single assignment or push: a panic cannot leave it half done.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves `manifest` (a `name → {topic_stub, streams, …}` object, bad entries welcome);
    /// resources not yet held start available.
    pub fn set_manifest(&self, manifest: Map<String, Value>) {
        let mut s = self.state();
        for name in manifest.keys() {
            s.held.entry(name.clone()).or_insert(Holding {
                available: true,
                reason: String::new(),
            });
        }
        s.manifest = manifest;
    }

    /// Changes a resource by hand, as an operator in the booking system would.
    pub fn set_available(&self, resource: &str, available: bool, reason: &str) {
        self.state().held.insert(
            resource.to_string(),
            Holding {
                available,
                reason: reason.to_string(),
            },
        );
    }

    pub fn holding(&self, resource: &str) -> Option<Holding> {
        self.state().held.get(resource).cloned()
    }

    /// The next `n` requests with a valid token are answered 500.
    pub fn fail_next(&self, n: usize) {
        self.state().fail_next = n;
    }

    /// The next `n` requests with a valid token wait `d` before being answered.
    pub fn hang_next(&self, n: usize, d: Duration) {
        self.hang(n, d, None);
    }

    /// Like [`Self::hang_next`], counting only requests about `resource`.
    pub fn hang_next_about(&self, resource: &str, n: usize, d: Duration) {
        self.hang(n, d, Some(resource.to_string()));
    }

    fn hang(&self, n: usize, d: Duration, only: Option<String>) {
        let mut s = self.state();
        s.hang_next = n;
        s.hang_for = d;
        s.hang_only = only;
    }

    /// Lets every request hanging now be answered at once (later hangs still hang).
    pub fn release_hung(&self) {
        let mut s = self.state();
        std::mem::take(&mut s.release).cancel();
    }

    /// The next `n` requests about `resource` with a valid token are answered `status`.
    pub fn fail_next_about(&self, resource: &str, n: usize, status: StatusCode) {
        self.state().fail_about = Some((resource.to_string(), n, status));
    }

    /// Requests being answered (or hanging) right now.
    pub fn in_flight(&self) -> usize {
        self.state().in_flight
    }

    /// The most requests ever answered (or hanging) at once.
    pub fn max_in_flight(&self) -> usize {
        self.state().max_in_flight
    }

    /// The most requests about one resource ever answered (or hanging) at once.
    pub fn max_in_flight_about_one_resource(&self) -> usize {
        self.state().max_in_flight_about_one
    }

    /// The headers of every request remembered, in the order of [`Self::requests`].
    pub fn headers(&self) -> Vec<Headers> {
        self.state().headers.iter().cloned().collect()
    }

    /// While on, every request is answered 401, as after a rotated secret.
    pub fn refuse(&self, on: bool) {
        self.state().refuse = on;
    }

    /// Every request remembered, in arrival order: all of them unless [`Self::keep_requests`] was called.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.iter().cloned().collect()
    }

    /// Remembers only the latest `n` requests, so a long run (the demo) does not grow without bound.
    pub fn keep_requests(&self, n: usize) {
        let mut s = self.state();
        s.keep = Some(n);
        s.forget_old();
    }

    /// The requests from absolute index `from` on, and the absolute index of the first one returned
    /// (later than `from` when older ones were let go): a reader's cursor over the request log.
    pub fn requests_from(&self, from: usize) -> (usize, Vec<Recorded>) {
        let s = self.state();
        let start = from.max(s.first_request);
        let skip = start - s.first_request;
        (start, s.requests.iter().skip(skip).cloned().collect())
    }

    fn record(&self, r: Recorded, headers: Headers) -> usize {
        let mut s = self.state();
        s.requests.push_back(r);
        s.headers.push_back(headers);
        s.forget_old();
        s.first_request + s.requests.len() - 1
    }

    /// Counts a request in flight until the returned guard is dropped (answered, or abandoned by the client).
    fn arrive(&self, resource: Option<&str>) -> InFlight {
        let mut s = self.state();
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        if let Some(name) = resource {
            let about = s.in_flight_about.entry(name.to_string()).or_default();
            *about += 1;
            let about = *about;
            s.max_in_flight_about_one = s.max_in_flight_about_one.max(about);
        }
        InFlight {
            sim: self.clone(),
            resource: resource.map(str::to_string),
        }
    }

    fn answered(&self, i: usize, status: StatusCode) {
        let mut s = self.state();
        let Some(at) = i.checked_sub(s.first_request) else {
            return;
        };
        if let Some(r) = s.requests.get_mut(at) {
            r.status = Some(status.as_u16());
        }
    }

    /// Checks the token as the real booking system does; the error says why, never what the token was.
    fn admit(&self, req: &Request) -> Result<(), String> {
        let value = req
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or("no Authorization header")?
            .to_str()
            .map_err(|_| "Authorization is not text")?;
        if value.starts_with("Bearer ") {
            return Err("a Bearer prefix: the booking API takes the bare token".into());
        }
        let claims: BookClaims =
            verify(value, self.0.secret.as_bytes(), &self.0.audience).map_err(|e| e.to_string())?;
        if claims.aud.len() != 1 {
            return Err(format!("aud has {} elements, not one", claims.aud.len()));
        }
        if claims.sub != WHO {
            return Err(format!("sub is {:?}", claims.sub));
        }
        if !claims.scopes.iter().any(|s| s == "booking:admin") {
            return Err("no booking:admin scope".into());
        }
        if claims.exp - claims.iat > MAX_TOKEN_LIFETIME_SECS {
            return Err("token lives too long".into());
        }
        Ok(())
    }

    /// Consumes one pending fault for a request about `resource`, failures first.
    fn take_fault(&self, resource: Option<&str>) -> Fault {
        let mut s = self.state();
        let hangs = s.hang_next > 0 && (s.hang_only.is_none() || s.hang_only.as_deref() == resource);
        if let Some((about, n, status)) = &mut s.fail_about {
            if *n > 0 && Some(about.as_str()) == resource {
                *n -= 1;
                return Fault::Fail(*status);
            }
        }
        if s.fail_next > 0 {
            s.fail_next -= 1;
            Fault::Fail(StatusCode::INTERNAL_SERVER_ERROR)
        } else if hangs {
            s.hang_next -= 1;
            Fault::Hang(s.hang_for, s.release.clone())
        } else {
            Fault::None
        }
    }
}

/// One request in flight, counted until dropped.
struct InFlight {
    sim: BookControl,
    resource: Option<String>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.sim.state();
        s.in_flight -= 1;
        if let Some(name) = &self.resource {
            if let Some(about) = s.in_flight_about.get_mut(name) {
                *about -= 1;
                if *about == 0 {
                    s.in_flight_about.remove(name);
                }
            }
        }
    }
}

impl Ledger {
    fn forget_old(&mut self) {
        let keep = self.keep.unwrap_or(usize::MAX);
        while self.requests.len() > keep {
            self.requests.pop_front();
            self.headers.pop_front();
            self.first_request += 1;
        }
    }
}

/// What a fault setting does to one request.
enum Fault {
    None,
    Fail(StatusCode),
    /// Wait this long, or until released.
    Hang(Duration, CancellationToken),
}

/// Records the request, then refuses, fails, delays or passes it on.
async fn gate(
    State(sim): State<BookControl>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let resource = params
        .ok()
        .and_then(|p| p.iter().find(|(k, _)| *k == "name").map(|(_, v)| v.to_string()));
    let at = Instant::now();
    let _in_flight = sim.arrive(resource.as_deref());
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let i = sim.record(
        Recorded {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
            resource: resource.clone(),
            status: None,
            at,
        },
        headers,
    );
    let refused = sim.state().refuse;
    let admitted = if refused {
        Err("refusing every token".to_string())
    } else {
        sim.admit(&req)
    };
    let response = match admitted {
        Err(why) => {
            debug!("simulated booking API refused a token: {why}");
            error(StatusCode::UNAUTHORIZED, "token refused")
        }
        Ok(()) => match sim.take_fault(resource.as_deref()) {
            Fault::Fail(status) => error(status, "simulated failure"),
            Fault::Hang(d, release) => {
                tokio::select! {
                    () = sim.0.stop.cancelled() => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
                    () = release.cancelled() => next.run(req).await,
                    () = tokio::time::sleep(d) => next.run(req).await,
                }
            }
            Fault::None => next.run(req).await,
        },
    };
    sim.answered(i, response.status());
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn manifest(State(sim): State<BookControl>) -> Json<Map<String, Value>> {
    Json(sim.state().manifest.clone())
}

async fn read(State(sim): State<BookControl>, Path(name): Path<String>) -> Response {
    match sim.holding(&name) {
        Some(h) => Json(h).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such resource"),
    }
}

async fn set(State(sim): State<BookControl>, Path(name): Path<String>, req: Request) -> Response {
    let query: BTreeMap<String, String> = url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let available = match query.get("available").map(String::as_str) {
        Some("true") => true,
        Some("false") => false,
        _ => return error(StatusCode::BAD_REQUEST, "available must be true or false"),
    };
    let mut s = sim.state();
    match s.held.get_mut(&name) {
        Some(h) => {
            *h = Holding {
                available,
                reason: query.get("reason").cloned().unwrap_or_default(),
            };
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "no such resource"),
    }
}
