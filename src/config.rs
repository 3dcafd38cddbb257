//! `STATUS_*` environment → a typed, validated [`Config`].
//!
//! Owns every default and every validation rule, so a bad value is refused at
//! start with one line naming the variable, the value and what was expected.
//! Secrets live in [`SecretString`] and are never printed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::duration::{self, Units};

/// A configuration value that cannot be used: the service refuses to start.
#[derive(Debug, thiserror::Error)]
#[error("{var}{shown}: expected {expected}")]
pub struct ConfigError {
    var: String,
    /// `=value`, ` is not set`, or `=<redacted>` for secrets.
    shown: String,
    expected: String,
}

impl ConfigError {
    fn bad(var: &str, value: &str, expected: impl Into<String>) -> Self {
        Self {
            var: var.to_string(),
            shown: format!("={value:?}"),
            expected: expected.into(),
        }
    }

    fn missing(var: &str, expected: impl Into<String>) -> Self {
        Self {
            var: var.to_string(),
            shown: " is not set".to_string(),
            expected: expected.into(),
        }
    }

    /// The variable at fault.
    pub fn var(&self) -> &str {
        &self.var
    }
}

/// `http` or `https`; websocket URIs follow from it (`ws`/`wss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// One peer service (relay, jump or booking): where it is and the secret it shares with us.
#[derive(Clone)]
pub struct Peer {
    pub scheme: Scheme,
    /// Host, optionally with a port: `app.example.org`, `127.0.0.1:8080`.
    pub host: String,
    /// Normalised: empty, or a leading `/` and no trailing `/`.
    pub basepath: String,
    pub secret: SecretString,
}

impl Peer {
    /// `<scheme>://<host><basepath>`: the token audience and the root of every URL.
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.basepath)
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("base_url", &self.base_url())
            .field("secret", &"<set>")
            .finish()
    }
}

/// Thresholds of PROTOCOL.md §4.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// A stream whose last transmission is older than this is unhealthy.
    pub last_active: Duration,
    /// A feed with no fresh snapshot for this long is silent.
    pub last_checked: Duration,
    /// Grace after an experiment is first seen, during which nothing is decided.
    pub startup: Duration,
    /// Health events kept per experiment.
    pub events: usize,
    /// Hold evaluations that would unbook a majority of experiments at once.
    pub mass_change_guard: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailAuth {
    None,
    Plain,
    Login,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTls {
    /// STARTTLS when offered; required before a password goes to a non-loopback host.
    Auto,
    StartTls,
    /// Implicit TLS (port 465).
    Tls,
    None,
}

/// Everything needed to send digests; present only when email is configured.
#[derive(Clone)]
pub struct EmailConfig {
    /// A host name or an IP address (IPv6 without brackets), never a port.
    pub host: String,
    /// 465 for implicit TLS unless set, 587 otherwise.
    pub port: u16,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub link: String,
    /// `STATUS_EMAIL_USER`, or the bare address of `from` (`a@example.org` of `Lab <a@example.org>`).
    pub user: String,
    pub password: Option<SecretString>,
    pub auth: EmailAuth,
    pub tls: EmailTls,
    /// First event opens a window this long in which others join the digest.
    pub group_wait: Duration,
    /// Minimum time from one delivered digest to the next.
    pub min_interval: Duration,
    /// A send taking longer is abandoned and retried later.
    pub timeout: Duration,
}

impl EmailConfig {
    /// Whether the SMTP host is this machine, where a password may travel unencrypted.
    pub fn host_is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let host = host.strip_suffix('.').unwrap_or(host);
        host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("cc", &self.cc)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("password", &secret_state(self.password.as_ref()))
            .finish_non_exhaustive()
    }
}

/// Email is optional: when off, `missing` names the variables that would turn it on.
// Built once at start and never moved in bulk, so the larger `On` costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Email {
    On(EmailConfig),
    Off { missing: Vec<&'static str> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// One of `trace`, `debug`, `info`, `warn` or `error`: the level of this
    /// crate's own lines (dependencies stay at `warn`).
    pub level: String,
    pub format: LogFormat,
    /// `None` is stdout; otherwise a file appended to.
    pub file: Option<PathBuf>,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub relay: Peer,
    pub jump: Peer,
    pub book: Peer,
    pub listen: IpAddr,
    pub port_serve: u16,
    pub health: HealthConfig,
    pub health_log_every: Duration,
    pub query_book_every: Duration,
    pub reconnect_relay_every: Duration,
    pub reconnect_jump_every: Duration,
    pub timeout_book: Duration,
    pub dry_run: bool,
    pub email: Email,
    pub log: LogConfig,
    /// Accepted for compatibility with the predecessor's pprof switch; see README.
    pub profile: bool,
    pub port_profile: u16,
    /// Non-fatal remarks for the log: unknown `STATUS_` variables, deprecated aliases.
    pub warnings: Vec<String>,
}

/// The variables [`Config::from_vars`] reads, so unknown ones can be flagged as typos.
const KNOWN: &[&str] = &[
    "BASEPATH_BOOK",
    "BASEPATH_JUMP",
    "BASEPATH_RELAY",
    "DRY_RUN",
    "EMAIL_AUTH_TYPE",
    "EMAIL_CC",
    "EMAIL_FROM",
    "EMAIL_GROUP_WAIT",
    "EMAIL_HOST",
    "EMAIL_LINK",
    "EMAIL_MIN_INTERVAL",
    "EMAIL_PASSWORD",
    "EMAIL_PORT",
    "EMAIL_SUBJECT",
    "EMAIL_TIMEOUT",
    "EMAIL_TLS",
    "EMAIL_TO",
    "EMAIL_USER",
    "HEALTH_EVENTS",
    "HEALTH_LAST",
    "HEALTH_LAST_ACTIVE",
    "HEALTH_LAST_CHECKED",
    "HEALTH_LOG_EVERY",
    "HEALTH_STARTUP",
    "HOST_BOOK",
    "HOST_JUMP",
    "HOST_RELAY",
    "LISTEN",
    "LOG_FILE",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "MASS_CHANGE_GUARD",
    "PORT_PROFILE",
    "PORT_SERVE",
    "PROFILE",
    "QUERY_BOOK_EVERY",
    "RECONNECT_JUMP_EVERY",
    "RECONNECT_RELAY_EVERY",
    "SCHEME_BOOK",
    "SCHEME_JUMP",
    "SCHEME_RELAY",
    "SECRET_BOOK",
    "SECRET_JUMP",
    "SECRET_RELAY",
    "TIMEOUT_BOOK",
];

const PREFIX: &str = "STATUS_";
/// What the example environment file puts where a secret goes.
const PLACEHOLDER_SECRET: &str = "replace-me";
const PEER_HOST_EXPECTED: &str = "a host name or IP address, optionally with a port, e.g. app.example.org, \
     127.0.0.1:8080 or [::1]:8080 (no scheme, user, path, query or fragment: the path goes in STATUS_BASEPATH_*)";

/// The range a duration variable accepts: outside it a value is a mistake
/// (a timer that spins or floods the log, a peer hammered, a deadline past
/// the calendar), refused at start.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    min: Duration,
    max: Duration,
}

const fn bounds(min: Duration, max: Duration) -> Bounds {
    Bounds { min, max }
}

const ZERO: Duration = Duration::ZERO;
const MS_100: Duration = Duration::from_millis(100);
const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3_600);
const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// Thresholds compared with reported ages, where a fraction of a second makes sense.
const FINE_THRESHOLD: Bounds = bounds(MS_100, YEAR);
/// Deadlines checked on the reconciler's one-second tick, and periods that contact a peer.
const COARSE: Bounds = bounds(SECOND, YEAR);
/// Waits that may be skipped altogether.
const OPTIONAL_WAIT: Bounds = bounds(ZERO, YEAR);
/// A log line this often at most.
const LOG_PERIOD: Bounds = bounds(MS_100, YEAR);
/// Bounds on one request or conversation with a peer.
const TIMEOUT: Bounds = bounds(SECOND, HOUR);

/// The `STATUS_` variables, read one at a time by name.
struct Vars(BTreeMap<String, String>);

impl Vars {
    fn raw(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn name(key: &str) -> String {
        format!("{PREFIX}{key}")
    }

    fn string(&self, key: &str, default: &str) -> String {
        self.raw(key).unwrap_or(default).to_string()
    }

    fn required(&self, key: &str, expected: &str) -> Result<&str, ConfigError> {
        self.raw(key)
            .ok_or_else(|| ConfigError::missing(&Self::name(key), expected))
    }

    /// A secret as given (spaces included), unless unset, empty or the example's placeholder.
    fn optional_secret(&self, key: &str) -> Result<Option<SecretString>, ConfigError> {
        match self.0.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) if v.trim() == PLACEHOLDER_SECRET => Err(ConfigError::bad(
                &Self::name(key),
                PLACEHOLDER_SECRET,
                "the real secret: replace-me is the example file's placeholder",
            )),
            Some(v) => Ok(Some(SecretString::from(v.clone()))),
        }
    }

    fn secret(&self, key: &str) -> Result<SecretString, ConfigError> {
        self.optional_secret(key)?
            .ok_or_else(|| ConfigError::missing(&Self::name(key), "the shared HS256 secret"))
    }

    fn parse<T>(&self, key: &str, default: T, expected: &str, f: impl Fn(&str) -> Option<T>) -> Result<T, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => f(v).ok_or_else(|| ConfigError::bad(&Self::name(key), v, expected)),
        }
    }

    /// A duration in Go's grammar (plus `d`), within `range`.
    fn duration(&self, key: &str, default: &str, range: Bounds) -> Result<Duration, ConfigError> {
        let Some(v) = self.raw(key) else {
            return Ok(parse_duration(default).expect("built-in defaults are valid durations"));
        };
        let parsed = duration::parse(v, Units::GoAndDays);
        let value = parsed.and_then(|p| match p.magnitude() {
            Some(d) if p.negative && !d.is_zero() => None,
            d => d,
        });
        value.filter(|d| (range.min..=range.max).contains(d)).ok_or_else(|| {
            ConfigError::bad(
                &Self::name(key),
                v,
                format!(
                    "a duration from {} to {}, such as 500ms, 10s, 15m, 1h30m or 1d",
                    duration::format(range.min),
                    duration::format(range.max)
                ),
            )
        })
    }

    fn port(&self, key: &str, default: u16) -> Result<u16, ConfigError> {
        self.parse(key, default, "a port number from 1 to 65535", parse_port)
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        self.parse(key, default, "true or false (also on/off, yes/no, 1/0)", parse_bool)
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.raw(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn peer(&self, which: &str) -> Result<Peer, ConfigError> {
        let host_key = format!("HOST_{which}");
        let host = self.required(&host_key, PEER_HOST_EXPECTED)?;
        let scheme = self.parse(&format!("SCHEME_{which}"), Scheme::Https, "https or http", |v| match v
            .to_ascii_lowercase()
            .as_str()
        {
            "https" => Some(Scheme::Https),
            "http" => Some(Scheme::Http),
            _ => None,
        })?;
        if !peer_host_is_valid(scheme, host) {
            return Err(ConfigError::bad(&Self::name(&host_key), host, PEER_HOST_EXPECTED));
        }
        Ok(Peer {
            scheme,
            host: host.to_string(),
            basepath: normalise_basepath(&self.string(&format!("BASEPATH_{which}"), "")),
            secret: self.secret(&format!("SECRET_{which}"))?,
        })
    }
}

/// Whether `{scheme}://{host}` is a URL with a host, perhaps a port, and nothing else.
fn peer_host_is_valid(scheme: Scheme, host: &str) -> bool {
    // Characters the URL parser would take as the start of another part, or quietly decode.
    if host.contains(['/', '\\', '?', '#', '@', '%']) || host.contains(char::is_whitespace) || host.ends_with(':') {
        return false;
    }
    let Ok(url) = url::Url::parse(&format!("{scheme}://{host}")) else {
        return false;
    };
    url.has_host()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.port() != Some(0)
}

/// `STATUS_EMAIL_HOST` for lettre: a DNS name as given, or an IP address
/// (IPv6 without brackets, so it resolves); `None` for anything else.
fn email_host(v: &str) -> Option<String> {
    let unbracketed = v.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if let Ok(ip) = unbracketed.unwrap_or(v).parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let name = v.strip_suffix('.').unwrap_or(v);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    // A last label of digits only is neither a name nor an address (`10.0.0`); TLS refuses it too.
    let numeric = name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    (name.len() <= 253 && name.split('.').all(label_ok) && !numeric).then(|| v.to_string())
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads `STATUS_*` pairs from any source (tests pass their own).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let vars = Vars(
            vars.into_iter()
                .filter_map(|(k, v)| k.strip_prefix(PREFIX).map(|k| (k.to_string(), v)))
                .collect(),
        );
        let mut warnings: Vec<String> = vars
            .0
            .keys()
            .filter(|k| !KNOWN.contains(&k.as_str()))
            .map(|k| format!("{PREFIX}{k} is not a variable status knows (a typo?); it is ignored"))
            .collect();

        let last_active = if vars.raw("HEALTH_LAST_ACTIVE").is_some() {
            vars.duration("HEALTH_LAST_ACTIVE", "10s", FINE_THRESHOLD)?
        } else {
            vars.duration("HEALTH_LAST", "10s", FINE_THRESHOLD)?
        };
        if vars.raw("HEALTH_LAST_ACTIVE").is_some() && vars.raw("HEALTH_LAST").is_some() {
            warnings.push(
                "both STATUS_HEALTH_LAST_ACTIVE and STATUS_HEALTH_LAST are set; STATUS_HEALTH_LAST_ACTIVE wins".into(),
            );
        }

        let listen = vars.parse(
            "LISTEN",
            IpAddr::from([127, 0, 0, 1]),
            "an IP address such as 127.0.0.1 or ::",
            |v| v.parse().ok(),
        )?;

        let config = Config {
            relay: vars.peer("RELAY")?,
            jump: vars.peer("JUMP")?,
            book: vars.peer("BOOK")?,
            listen,
            port_serve: vars.port("PORT_SERVE", 3007)?,
            health: HealthConfig {
                last_active,
                last_checked: vars.duration("HEALTH_LAST_CHECKED", "30s", COARSE)?,
                startup: vars.duration("HEALTH_STARTUP", "1m", OPTIONAL_WAIT)?,
                events: vars.parse("HEALTH_EVENTS", 100, "a whole number from 1 to 100000", |v| {
                    v.parse().ok().filter(|n| (1..=100_000).contains(n))
                })?,
                mass_change_guard: vars.flag("MASS_CHANGE_GUARD", true)?,
            },
            health_log_every: vars.duration("HEALTH_LOG_EVERY", "1h", LOG_PERIOD)?,
            query_book_every: vars.duration("QUERY_BOOK_EVERY", "15m", COARSE)?,
            reconnect_relay_every: vars.duration("RECONNECT_RELAY_EVERY", "1d", COARSE)?,
            reconnect_jump_every: vars.duration("RECONNECT_JUMP_EVERY", "1d", COARSE)?,
            timeout_book: vars.duration("TIMEOUT_BOOK", "5s", TIMEOUT)?,
            dry_run: vars.flag("DRY_RUN", false)?,
            email: email(&vars, &mut warnings)?,
            log: LogConfig {
                level: vars.parse(
                    "LOG_LEVEL",
                    "warn".to_string(),
                    "trace, debug, info, warn or error",
                    parse_level,
                )?,
                format: vars.parse("LOG_FORMAT", LogFormat::Json, "json or text", |v| {
                    match v.to_ascii_lowercase().as_str() {
                        "json" => Some(LogFormat::Json),
                        "text" => Some(LogFormat::Text),
                        _ => None,
                    }
                })?,
                file: vars
                    .raw("LOG_FILE")
                    .filter(|v| !v.eq_ignore_ascii_case("stdout"))
                    .map(PathBuf::from),
            },
            profile: vars.flag("PROFILE", false)?,
            port_profile: vars.port("PORT_PROFILE", 6061)?,
            warnings,
        };
        Ok(config)
    }

    /// The effective configuration as `NAME=value` lines, secrets as `<set>`/`<unset>`.
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut put = |k: &str, v: String| out.push((format!("{PREFIX}{k}"), v));
        for (name, p) in [("BOOK", &self.book), ("JUMP", &self.jump), ("RELAY", &self.relay)] {
            put(&format!("HOST_{name}"), p.host.clone());
            put(&format!("SCHEME_{name}"), p.scheme.to_string());
            put(&format!("BASEPATH_{name}"), p.basepath.clone());
            put(&format!("SECRET_{name}"), secret_state(Some(&p.secret)).into());
        }
        put("LISTEN", self.listen.to_string());
        put("PORT_SERVE", self.port_serve.to_string());
        put("HEALTH_LAST_ACTIVE", fmt_duration(self.health.last_active));
        put("HEALTH_LAST_CHECKED", fmt_duration(self.health.last_checked));
        put("HEALTH_STARTUP", fmt_duration(self.health.startup));
        put("HEALTH_EVENTS", self.health.events.to_string());
        put("HEALTH_LOG_EVERY", fmt_duration(self.health_log_every));
        put("MASS_CHANGE_GUARD", on_off(self.health.mass_change_guard));
        put("QUERY_BOOK_EVERY", fmt_duration(self.query_book_every));
        put("RECONNECT_JUMP_EVERY", fmt_duration(self.reconnect_jump_every));
        put("RECONNECT_RELAY_EVERY", fmt_duration(self.reconnect_relay_every));
        put("TIMEOUT_BOOK", fmt_duration(self.timeout_book));
        put("DRY_RUN", self.dry_run.to_string());
        match &self.email {
            Email::Off { missing } => put("EMAIL", format!("off (not set: {})", missing.join(", "))),
            Email::On(e) => {
                put("EMAIL_HOST", e.host.clone());
                put("EMAIL_PORT", e.port.to_string());
                put("EMAIL_FROM", e.from.clone());
                put("EMAIL_TO", e.to.join(","));
                put("EMAIL_CC", e.cc.join(","));
                put("EMAIL_SUBJECT", e.subject.clone());
                put("EMAIL_LINK", e.link.clone());
                put("EMAIL_USER", e.user.clone());
                put("EMAIL_PASSWORD", secret_state(e.password.as_ref()).into());
                put("EMAIL_AUTH_TYPE", format!("{:?}", e.auth).to_lowercase());
                put("EMAIL_TLS", format!("{:?}", e.tls).to_lowercase());
                put("EMAIL_GROUP_WAIT", fmt_duration(e.group_wait));
                put("EMAIL_MIN_INTERVAL", fmt_duration(e.min_interval));
                put("EMAIL_TIMEOUT", fmt_duration(e.timeout));
            }
        }
        put("LOG_LEVEL", self.log.level.clone());
        put("LOG_FORMAT", format!("{:?}", self.log.format).to_lowercase());
        put(
            "LOG_FILE",
            self.log
                .file
                .as_ref()
                .map_or("stdout".into(), |p| p.display().to_string()),
        );
        put("PROFILE", self.profile.to_string());
        put("PORT_PROFILE", self.port_profile.to_string());
        out
    }
}

fn email(vars: &Vars, warnings: &mut Vec<String>) -> Result<Email, ConfigError> {
    // Every value that is set is checked even while email is off, so a
    // mistake shows now rather than on the day email is switched on.
    let host = match vars.raw("EMAIL_HOST") {
        None => None,
        Some(v) => Some(email_host(v).ok_or_else(|| {
            ConfigError::bad(
                "STATUS_EMAIL_HOST",
                v,
                "a host name or IP address such as smtp.example.org, without scheme or port \
                 (the port goes in STATUS_EMAIL_PORT)",
            )
        })?),
    };
    let from = vars.raw("EMAIL_FROM").map(String::from);
    let (to, cc) = (vars.list("EMAIL_TO"), vars.list("EMAIL_CC"));
    let mut from_address = None;
    for (key, addresses) in [
        ("EMAIL_FROM", from.iter().cloned().collect::<Vec<_>>()),
        ("EMAIL_TO", to.clone()),
        ("EMAIL_CC", cc.clone()),
    ] {
        for a in &addresses {
            match a.parse::<lettre::message::Mailbox>() {
                Ok(mailbox) if key == "EMAIL_FROM" => from_address = Some(mailbox.email.to_string()),
                Ok(_) => {}
                Err(_) => {
                    return Err(ConfigError::bad(
                        &Vars::name(key),
                        a,
                        "mail addresses such as status@example.org or Lab Status <status@example.org>, comma-separated",
                    ))
                }
            }
        }
    }
    let auth = vars.parse("EMAIL_AUTH_TYPE", EmailAuth::None, "none, plain or login", |v| match v
        .to_ascii_lowercase()
        .as_str()
    {
        "none" => Some(EmailAuth::None),
        "plain" => Some(EmailAuth::Plain),
        "login" => Some(EmailAuth::Login),
        _ => None,
    })?;
    let tls = vars.parse("EMAIL_TLS", EmailTls::Auto, "auto, starttls, tls or none", |v| match v
        .to_ascii_lowercase()
        .as_str()
    {
        "auto" => Some(EmailTls::Auto),
        "starttls" => Some(EmailTls::StartTls),
        "tls" => Some(EmailTls::Tls),
        "none" => Some(EmailTls::None),
        _ => None,
    })?;
    // Implicit TLS has its own port; everything else starts in clear on the submission port.
    let port = vars.port("EMAIL_PORT", if tls == EmailTls::Tls { 465 } else { 587 })?;
    let password = vars.optional_secret("EMAIL_PASSWORD")?;
    if password.is_some() && auth == EmailAuth::None {
        warnings.push(
            "STATUS_EMAIL_PASSWORD is set but STATUS_EMAIL_AUTH_TYPE is none, so it is not used \
             (set STATUS_EMAIL_AUTH_TYPE=plain or login to log in)"
                .into(),
        );
    }
    let group_wait = vars.duration("EMAIL_GROUP_WAIT", "10s", OPTIONAL_WAIT)?;
    let min_interval = vars.duration("EMAIL_MIN_INTERVAL", "1m", COARSE)?;
    let timeout = vars.duration("EMAIL_TIMEOUT", "30s", TIMEOUT)?;

    let missing: Vec<&'static str> = [
        ("STATUS_EMAIL_HOST", host.is_none()),
        ("STATUS_EMAIL_FROM", from.is_none()),
        ("STATUS_EMAIL_TO", to.is_empty()),
    ]
    .into_iter()
    .filter_map(|(name, missing)| missing.then_some(name))
    .collect();
    let (Some(host), Some(from), Some(from_address), true) = (host, from, from_address, missing.is_empty()) else {
        return Ok(Email::Off { missing });
    };
    if auth != EmailAuth::None && password.is_none() {
        return Err(ConfigError::missing(
            "STATUS_EMAIL_PASSWORD",
            "a password, because STATUS_EMAIL_AUTH_TYPE asks for authentication",
        ));
    }
    let config = EmailConfig {
        host,
        port,
        user: vars.raw("EMAIL_USER").map_or(from_address, String::from),
        from,
        to,
        cc,
        subject: vars.string("EMAIL_SUBJECT", "Lab status:"),
        link: vars.string("EMAIL_LINK", ""),
        password,
        auth,
        tls,
        group_wait,
        min_interval,
        timeout,
    };
    if config.auth != EmailAuth::None && config.tls == EmailTls::None && !config.host_is_loopback() {
        return Err(ConfigError::bad(
            "STATUS_EMAIL_TLS",
            "none",
            format!(
                "auto, starttls or tls: a password must not cross the network in clear to {}",
                config.host
            ),
        ));
    }
    Ok(Email::On(config))
}

/// A duration in the configuration's grammar: Go's (`1h0m0s`, `2h45m0.5s`,
/// `1.5h`, `300ms`, `.5s`, `+10s`) plus `d` for days (`1d`, `1d12h`); never negative.
pub fn parse_duration(s: &str) -> Option<Duration> {
    duration::parse(s.trim(), Units::GoAndDays)
        .filter(|p| !p.negative || p.nanos == 0)
        .and_then(|p| p.magnitude())
}

/// The compact form of [`parse_duration`]'s input, for printing effective values: `1d`, `1h30m`, `500ms`.
pub fn fmt_duration(d: Duration) -> String {
    duration::format(d)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_port(v: &str) -> Option<u16> {
    v.parse().ok().filter(|p| *p != 0)
}

fn parse_level(v: &str) -> Option<String> {
    let v = v.to_ascii_lowercase();
    match v.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" => Some(v),
        "warning" => Some("warn".into()),
        // The predecessor accepted these; both mean "errors only" here.
        "fatal" | "panic" => Some("error".into()),
        _ => None,
    }
}

fn normalise_basepath(p: &str) -> String {
    let trimmed = p.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.into()
}

fn secret_state(s: Option<&SecretString>) -> &'static str {
    match s {
        Some(s) if !s.expose_secret().is_empty() => "<set>",
        _ => "<unset>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn minimal() -> Vec<(String, String)> {
        [
            ("STATUS_HOST_BOOK", "book.example.org"),
            ("STATUS_HOST_JUMP", "jump.example.org"),
            ("STATUS_HOST_RELAY", "relay.example.org"),
            ("STATUS_SECRET_BOOK", "book-secret"),
            ("STATUS_SECRET_JUMP", "jump-secret"),
            ("STATUS_SECRET_RELAY", "relay-secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn with(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut v = minimal();
        v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_vars(v)
    }

    #[test]
    fn defaults_match_the_predecessor() {
        let c = with(&[]).unwrap();
        assert_eq!(c.port_serve, 3007);
        assert_eq!(c.listen.to_string(), "127.0.0.1");
        assert_eq!(c.health.last_active, Duration::from_secs(10));
        assert_eq!(c.health.last_checked, Duration::from_secs(30));
        assert_eq!(c.health.startup, Duration::from_secs(60));
        assert_eq!(c.health.events, 100);
        assert!(c.health.mass_change_guard);
        assert_eq!(c.query_book_every, Duration::from_secs(15 * 60));
        assert_eq!(c.reconnect_relay_every, Duration::from_secs(86_400));
        assert_eq!(c.timeout_book, Duration::from_secs(5));
        assert_eq!(c.log.level, "warn");
        assert_eq!(c.log.format, LogFormat::Json);
        assert!(c.log.file.is_none());
        assert_eq!(c.relay.base_url(), "https://relay.example.org");
        assert!(c.warnings.is_empty());
        match c.email {
            Email::Off { missing } => {
                assert_eq!(missing, ["STATUS_EMAIL_HOST", "STATUS_EMAIL_FROM", "STATUS_EMAIL_TO"])
            }
            Email::On(_) => panic!("email needs host, from and to"),
        }
    }

    #[test]
    fn durations_in_every_advertised_form() {
        for (s, secs) in [
            ("500ms", 0.5),
            ("10s", 10.0),
            ("15m", 900.0),
            ("1h30m", 5400.0),
            ("1d", 86400.0),
            ("1d12h", 129_600.0),
            // The previous service's (Go's) forms.
            ("1h0m0s", 3600.0),
            ("2h45m0.5s", 9900.5),
            ("1.5h", 5400.0),
            ("300ms", 0.3),
            (".5s", 0.5),
            ("5.s", 5.0),
            ("+10s", 10.0),
            ("0", 0.0),
        ] {
            assert_eq!(parse_duration(s).unwrap().as_secs_f64(), secs, "{s}");
        }
        for bad in ["abc", "10", "1M", "1y", "1month", "1 day", "1h 30m", "-1s", "1w"] {
            assert!(parse_duration(bad).is_none(), "{bad}");
        }
    }

    fn email_on(extra: &[(&str, &str)]) -> EmailConfig {
        let mut vars = vec![
            ("STATUS_EMAIL_HOST", "smtp.example.org"),
            ("STATUS_EMAIL_FROM", "Lab Status <status@example.org>"),
            ("STATUS_EMAIL_TO", "a@example.org"),
        ];
        vars.extend_from_slice(extra);
        match with(&vars).unwrap().email {
            Email::On(e) => e,
            Email::Off { missing } => panic!("email is configured, yet off: {missing:?}"),
        }
    }

    #[test]
    fn every_duration_is_bounded_and_a_refusal_names_the_range() {
        for (var, value, range) in [
            // Past what any clock or timer can take: panics once, refused now.
            ("STATUS_HEALTH_LAST_CHECKED", "1000000y", "from 1s to 365d"),
            ("STATUS_HEALTH_LAST_CHECKED", "100000000h", "from 1s to 365d"),
            ("STATUS_HEALTH_LOG_EVERY", "500000000000y", "from 100ms to 365d"),
            (
                "STATUS_HEALTH_LOG_EVERY",
                "9999999999999999999999h",
                "from 100ms to 365d",
            ),
            // A log line per nanosecond, peers hammered.
            ("STATUS_HEALTH_LOG_EVERY", "1ns", "from 100ms to 365d"),
            ("STATUS_HEALTH_LOG_EVERY", "99ms", "from 100ms to 365d"),
            ("STATUS_QUERY_BOOK_EVERY", "10ms", "from 1s to 365d"),
            ("STATUS_RECONNECT_RELAY_EVERY", "999ms", "from 1s to 365d"),
            ("STATUS_RECONNECT_JUMP_EVERY", "0s", "from 1s to 365d"),
            ("STATUS_TIMEOUT_BOOK", "1ms", "from 1s to 1h"),
            ("STATUS_TIMEOUT_BOOK", "2h", "from 1s to 1h"),
            ("STATUS_HEALTH_LAST_ACTIVE", "10ms", "from 100ms to 365d"),
            ("STATUS_HEALTH_LAST", "366d", "from 100ms to 365d"),
            ("STATUS_HEALTH_STARTUP", "365d1ns", "from 0s to 365d"),
            ("STATUS_HEALTH_STARTUP", "-1s", "from 0s to 365d"),
            ("STATUS_EMAIL_GROUP_WAIT", "-10s", "from 0s to 365d"),
            ("STATUS_EMAIL_MIN_INTERVAL", "0s", "from 1s to 365d"),
            ("STATUS_EMAIL_TIMEOUT", "100ms", "from 1s to 1h"),
            // Units a Go user would not expect: `M` is not a month, nor `y` a year.
            ("STATUS_HEALTH_STARTUP", "1M", "from 0s to 365d"),
            ("STATUS_HEALTH_STARTUP", "1y", "from 0s to 365d"),
            ("STATUS_HEALTH_STARTUP", "1day", "from 0s to 365d"),
        ] {
            let e = with(&[(var, value)]).unwrap_err();
            assert_eq!(e.var(), var, "{value}");
            let line = e.to_string();
            assert!(line.contains(&format!("{var}=\"{value}\"")), "{line}");
            assert!(line.contains(range), "{line}");
            assert!(!line.contains('\n'));
        }
        for (var, value) in [
            ("STATUS_HEALTH_LOG_EVERY", "100ms"),
            ("STATUS_HEALTH_LAST_CHECKED", "365d"),
            ("STATUS_HEALTH_LAST_CHECKED", "8760h"),
            ("STATUS_HEALTH_STARTUP", "0s"),
            ("STATUS_HEALTH_STARTUP", "-0s"),
            ("STATUS_TIMEOUT_BOOK", "1h"),
            ("STATUS_QUERY_BOOK_EVERY", "1s"),
            ("STATUS_EMAIL_GROUP_WAIT", "0"),
        ] {
            assert!(with(&[(var, value)]).is_ok(), "{var}={value}");
        }
    }

    #[test]
    fn effective_durations_print_in_the_compact_form() {
        let c = with(&[
            ("STATUS_HEALTH_STARTUP", "1h0m0s"),
            ("STATUS_HEALTH_LAST_CHECKED", "1.5h"),
            ("STATUS_HEALTH_LAST_ACTIVE", "2h45m0.5s"),
            ("STATUS_QUERY_BOOK_EVERY", "1d12h"),
            ("STATUS_TIMEOUT_BOOK", "+10s"),
            ("STATUS_EMAIL_HOST", "smtp.example.org"),
            ("STATUS_EMAIL_FROM", "status@example.org"),
            ("STATUS_EMAIL_TO", "a@example.org"),
            ("STATUS_EMAIL_GROUP_WAIT", ".5s"),
        ])
        .unwrap();
        let described = c.describe();
        for (var, shown) in [
            ("STATUS_HEALTH_STARTUP", "1h"),
            ("STATUS_HEALTH_LAST_CHECKED", "1h30m"),
            ("STATUS_HEALTH_LAST_ACTIVE", "2h45m500ms"),
            ("STATUS_QUERY_BOOK_EVERY", "1d12h"),
            ("STATUS_TIMEOUT_BOOK", "10s"),
            ("STATUS_RECONNECT_RELAY_EVERY", "1d"),
            ("STATUS_EMAIL_GROUP_WAIT", "500ms"),
            ("STATUS_EMAIL_MIN_INTERVAL", "1m"),
        ] {
            assert!(
                described.contains(&(var.into(), shown.into())),
                "{var}={shown} in {described:?}"
            );
        }
    }

    #[test]
    fn the_smtp_user_defaults_to_the_bare_sender_address() {
        assert_eq!(email_on(&[]).user, "status@example.org");
        assert_eq!(email_on(&[("STATUS_EMAIL_USER", "bot")]).user, "bot");
    }

    #[test]
    fn implicit_tls_defaults_to_port_465() {
        assert_eq!(email_on(&[("STATUS_EMAIL_TLS", "tls")]).port, 465);
        assert_eq!(
            email_on(&[("STATUS_EMAIL_TLS", "TLS"), ("STATUS_EMAIL_PORT", "2465")]).port,
            2465
        );
        for tls in ["auto", "starttls", "none"] {
            assert_eq!(email_on(&[("STATUS_EMAIL_TLS", tls)]).port, 587, "{tls}");
        }
        let c = with(&[
            ("STATUS_EMAIL_HOST", "smtp.example.org"),
            ("STATUS_EMAIL_FROM", "status@example.org"),
            ("STATUS_EMAIL_TO", "a@example.org"),
            ("STATUS_EMAIL_TLS", "tls"),
        ])
        .unwrap();
        assert!(c.describe().contains(&("STATUS_EMAIL_PORT".into(), "465".into())));
    }

    #[test]
    fn a_peer_host_is_a_host_and_perhaps_a_port_nothing_else() {
        for bad in [
            "https://relay.example.org",
            "relay.example.org/relay",
            "relay.example.org?x=1",
            "relay.example.org#frag",
            "user@relay.example.org",
            "user:pw@relay.example.org",
            "relay.example.org:abc",
            "relay.example.org:",
            "relay.example.org:0",
            "relay.example.org:65536",
            "http:relay",
            "relay example.org",
            "::1",
            "[::1",
            "rel%61y.example.org",
            "relay\\example.org",
        ] {
            let e = with(&[("STATUS_HOST_RELAY", bad)]).unwrap_err();
            assert_eq!(e.var(), "STATUS_HOST_RELAY", "{bad}");
            assert!(
                e.to_string().contains("no scheme, user, path, query or fragment"),
                "{e}"
            );
        }
        for good in [
            "relay.example.org",
            "Relay.Example.org",
            "relay.example.org:8443",
            "relay.example.org:443",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
            "localhost",
        ] {
            let c = with(&[("STATUS_HOST_RELAY", good)]).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(c.relay.base_url(), format!("https://{good}"));
        }
    }

    #[test]
    fn only_http_and_https_are_schemes() {
        for bad in ["ws", "wss", "ftp", "https://"] {
            let e = with(&[("STATUS_SCHEME_RELAY", bad)]).unwrap_err();
            assert_eq!(e.var(), "STATUS_SCHEME_RELAY", "{bad}");
            assert!(e.to_string().contains("https or http"), "{e}");
        }
        let c = with(&[("STATUS_SCHEME_BOOK", "HTTP")]).unwrap();
        assert_eq!(c.book.base_url(), "http://book.example.org");
    }

    #[test]
    fn the_email_host_is_a_bare_name_or_address() {
        for bad in [
            "smtp://x",
            "x:587",
            "smtp.example.org:587",
            "[::1]:25",
            "smtp example.org",
            "user@smtp.example.org",
            "smtp.example.org/",
            "-smtp.example.org",
            "smtp..example.org",
            "smtp.exämple.org",
            "10.0.0",
            "10.0.0.256",
        ] {
            let e = with(&[
                ("STATUS_EMAIL_HOST", bad),
                ("STATUS_EMAIL_FROM", "status@example.org"),
                ("STATUS_EMAIL_TO", "a@example.org"),
            ])
            .unwrap_err();
            assert_eq!(e.var(), "STATUS_EMAIL_HOST", "{bad}");
            assert!(e.to_string().contains("the port goes in STATUS_EMAIL_PORT"), "{e}");
        }
        for (given, host, loopback) in [
            ("smtp.example.org", "smtp.example.org", false),
            ("smtp.example.org.", "smtp.example.org.", false),
            ("mail_relay.internal", "mail_relay.internal", false),
            ("192.0.2.7", "192.0.2.7", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("localhost", "localhost", true),
            ("localhost.", "localhost.", true),
            // Brackets are dropped so that lettre can resolve the address.
            ("[::1]", "::1", true),
            ("::1", "::1", true),
        ] {
            let e = email_on(&[("STATUS_EMAIL_HOST", given)]);
            assert_eq!(e.host, host, "{given}");
            assert_eq!(e.host_is_loopback(), loopback, "{given}");
        }
    }

    #[test]
    fn set_email_values_are_checked_even_while_email_is_off() {
        for (var, value) in [
            ("STATUS_EMAIL_PORT", "abc"),
            ("STATUS_EMAIL_PORT", "0"),
            ("STATUS_EMAIL_HOST", "smtp.example.org:25"),
            ("STATUS_EMAIL_FROM", "not an address"),
            ("STATUS_EMAIL_CC", "nobody"),
            ("STATUS_EMAIL_TLS", "ssl"),
            ("STATUS_EMAIL_AUTH_TYPE", "cram-md5"),
            ("STATUS_EMAIL_MIN_INTERVAL", "1ns"),
            ("STATUS_EMAIL_PASSWORD", "replace-me"),
        ] {
            let e = with(&[(var, value)]).unwrap_err();
            assert_eq!(e.var(), var, "{value}");
        }
        // Set but incomplete: off, and says what is missing.
        let c = with(&[("STATUS_EMAIL_HOST", "smtp.example.org"), ("STATUS_EMAIL_TO", " , ")]).unwrap();
        match c.email {
            Email::Off { missing } => assert_eq!(missing, ["STATUS_EMAIL_FROM", "STATUS_EMAIL_TO"]),
            Email::On(_) => panic!("from and to are missing"),
        }
    }

    #[test]
    fn a_password_without_authentication_is_warned_about_once() {
        let c = with(&[
            ("STATUS_EMAIL_HOST", "smtp.example.org"),
            ("STATUS_EMAIL_FROM", "status@example.org"),
            ("STATUS_EMAIL_TO", "a@example.org"),
            ("STATUS_EMAIL_PASSWORD", "hunter2"),
        ])
        .unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("STATUS_EMAIL_PASSWORD") && c.warnings[0].contains("none"));
        assert!(!c.warnings[0].contains("hunter2"));
        let c = with(&[
            ("STATUS_EMAIL_HOST", "smtp.example.org"),
            ("STATUS_EMAIL_FROM", "status@example.org"),
            ("STATUS_EMAIL_TO", "a@example.org"),
            ("STATUS_EMAIL_PASSWORD", "hunter2"),
            ("STATUS_EMAIL_AUTH_TYPE", "plain"),
        ])
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn the_example_placeholder_secret_is_refused() {
        for var in ["STATUS_SECRET_RELAY", "STATUS_SECRET_JUMP", "STATUS_SECRET_BOOK"] {
            let e = with(&[(var, "replace-me")]).unwrap_err();
            assert_eq!(e.var(), var);
            assert!(e.to_string().contains("the real secret"), "{e}");
        }
        let e = with(&[
            ("STATUS_EMAIL_HOST", "smtp.example.org"),
            ("STATUS_EMAIL_FROM", "status@example.org"),
            ("STATUS_EMAIL_TO", "a@example.org"),
            ("STATUS_EMAIL_AUTH_TYPE", "login"),
            ("STATUS_EMAIL_PASSWORD", " replace-me"),
        ])
        .unwrap_err();
        assert_eq!(e.var(), "STATUS_EMAIL_PASSWORD");
    }

    #[test]
    fn a_bad_duration_names_variable_value_and_expectation() {
        let e = with(&[("STATUS_HEALTH_STARTUP", "abc")]).unwrap_err();
        assert_eq!(e.var(), "STATUS_HEALTH_STARTUP");
        let line = e.to_string();
        assert!(line.contains("STATUS_HEALTH_STARTUP=\"abc\""), "{line}");
        assert!(line.contains("1h30m"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_zero_period_is_refused() {
        let e = with(&[("STATUS_QUERY_BOOK_EVERY", "0s")]).unwrap_err();
        assert_eq!(e.var(), "STATUS_QUERY_BOOK_EVERY");
    }

    #[test]
    fn missing_required_names_it() {
        let v: Vec<_> = minimal()
            .into_iter()
            .filter(|(k, _)| k != "STATUS_SECRET_JUMP")
            .collect();
        let e = Config::from_vars(v).unwrap_err();
        assert_eq!(e.var(), "STATUS_SECRET_JUMP");
        assert!(e.to_string().contains("is not set"));
    }

    #[test]
    fn host_with_scheme_is_refused() {
        let e = with(&[("STATUS_HOST_RELAY", "https://relay.example.org")]).unwrap_err();
        assert_eq!(e.var(), "STATUS_HOST_RELAY");
    }

    #[test]
    fn basepaths_join_without_doubled_or_trailing_slashes() {
        for (bp, want) in [
            ("", "https://app.example.org"),
            ("/", "https://app.example.org"),
            ("/tenant/relay", "https://app.example.org/tenant/relay"),
            ("tenant/relay/", "https://app.example.org/tenant/relay"),
            ("//tenant/relay//", "https://app.example.org/tenant/relay"),
        ] {
            let c = with(&[("STATUS_HOST_RELAY", "app.example.org"), ("STATUS_BASEPATH_RELAY", bp)]).unwrap();
            assert_eq!(c.relay.base_url(), want, "basepath {bp:?}");
        }
    }

    #[test]
    fn health_last_is_an_alias_and_active_wins() {
        let c = with(&[("STATUS_HEALTH_LAST", "20s")]).unwrap();
        assert_eq!(c.health.last_active, Duration::from_secs(20));
        let c = with(&[("STATUS_HEALTH_LAST", "20s"), ("STATUS_HEALTH_LAST_ACTIVE", "5s")]).unwrap();
        assert_eq!(c.health.last_active, Duration::from_secs(5));
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn unknown_status_variables_are_warned_about() {
        let c = with(&[("STATUS_HEALTH_STARTUPP", "1m"), ("OTHER_THING", "x")]).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("STATUS_HEALTH_STARTUPP"));
    }

    #[test]
    fn email_lists_and_auth() {
        let c = with(&[
            ("STATUS_EMAIL_HOST", "smtp.example.org"),
            ("STATUS_EMAIL_FROM", "status@example.org"),
            ("STATUS_EMAIL_TO", "a@example.org, b@example.org,"),
            ("STATUS_EMAIL_CC", "c@example.org"),
            ("STATUS_EMAIL_AUTH_TYPE", "plain"),
            ("STATUS_EMAIL_PASSWORD", "hunter2"),
        ])
        .unwrap();
        let Email::On(e) = c.email else {
            panic!("email is configured")
        };
        assert_eq!(e.to, ["a@example.org", "b@example.org"]);
        assert_eq!(e.cc, ["c@example.org"]);
        assert_eq!(e.port, 587);
        assert_eq!(e.user, "status@example.org");
        assert_eq!(e.auth, EmailAuth::Plain);
        assert_eq!(e.tls, EmailTls::Auto);
        assert!(!format!("{e:?}").contains("hunter2"));
    }

    #[test]
    fn email_timeout_defaults_and_is_described() {
        let c = with(&[
            ("STATUS_EMAIL_HOST", "smtp.example.org"),
            ("STATUS_EMAIL_FROM", "status@example.org"),
            ("STATUS_EMAIL_TO", "a@example.org"),
        ])
        .unwrap();
        let Email::On(e) = &c.email else {
            panic!("email is configured")
        };
        assert_eq!(e.timeout, Duration::from_secs(30));
        assert!(c.describe().contains(&("STATUS_EMAIL_TIMEOUT".into(), "30s".into())));
    }

    #[test]
    fn a_bad_mail_address_names_its_variable() {
        let e = with(&[
            ("STATUS_EMAIL_HOST", "smtp.example.org"),
            ("STATUS_EMAIL_FROM", "Lab Status <status@example.org>"),
            ("STATUS_EMAIL_TO", "a@example.org"),
            ("STATUS_EMAIL_CC", "c@example.org, not an address"),
        ])
        .unwrap_err();
        assert_eq!(e.var(), "STATUS_EMAIL_CC");
        assert!(e.to_string().contains("not an address"), "{e}");
    }

    #[test]
    fn a_password_in_clear_goes_only_to_loopback() {
        let vars = |host: &'static str| {
            [
                ("STATUS_EMAIL_HOST", host),
                ("STATUS_EMAIL_FROM", "status@example.org"),
                ("STATUS_EMAIL_TO", "a@example.org"),
                ("STATUS_EMAIL_AUTH_TYPE", "plain"),
                ("STATUS_EMAIL_PASSWORD", "hunter2"),
                ("STATUS_EMAIL_TLS", "none"),
            ]
        };
        let e = with(&vars("smtp.example.org")).unwrap_err();
        assert_eq!(e.var(), "STATUS_EMAIL_TLS");
        assert!(!e.to_string().contains("hunter2"));
        for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            assert!(with(&vars(host)).is_ok(), "{host}");
        }
    }

    #[test]
    fn auth_without_password_is_refused() {
        let e = with(&[
            ("STATUS_EMAIL_HOST", "smtp.example.org"),
            ("STATUS_EMAIL_FROM", "status@example.org"),
            ("STATUS_EMAIL_TO", "a@example.org"),
            ("STATUS_EMAIL_AUTH_TYPE", "login"),
        ])
        .unwrap_err();
        assert_eq!(e.var(), "STATUS_EMAIL_PASSWORD");
    }

    #[test]
    fn describe_never_shows_secrets() {
        let c = with(&[]).unwrap();
        let text: String = c.describe().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        for secret in ["book-secret", "jump-secret", "relay-secret"] {
            assert!(!text.contains(secret));
        }
        assert!(text.contains("STATUS_SECRET_RELAY=<set>"));
        assert!(!format!("{c:?}").contains("relay-secret"));
    }

    /// Every variable in the example file, commented defaults included, is known and valid.
    #[test]
    fn the_example_environment_file_is_complete_and_valid() {
        let example = include_str!("../scripts/status.env.example");
        let readme = include_str!("../README.md");
        let vars: Vec<(String, String)> = example
            .lines()
            .map(|l| l.trim_start_matches('#'))
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.starts_with(PREFIX) && !k.contains(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(
            Config::from_vars(vars.clone()).is_err_and(|e| e.to_string().contains("the real secret")),
            "the placeholder secrets must be replaced before use"
        );
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| match v.as_str() {
                PLACEHOLDER_SECRET => (k, "a-real-secret".to_string()),
                _ => (k, v),
            })
            .collect();
        for known in KNOWN {
            let name = format!("{PREFIX}{known}");
            assert!(
                vars.iter().any(|(k, _)| *k == name),
                "{name} is missing from status.env.example"
            );
            assert!(readme.contains(&name), "{name} is missing from README.md");
        }
        let c = Config::from_vars(vars).unwrap();
        assert!(c.warnings.iter().all(|w| w.contains("both")), "{:?}", c.warnings);
    }
}
