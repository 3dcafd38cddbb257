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
    pub host: String,
    pub port: u16,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub link: String,
    pub user: String,
    pub password: Option<SecretString>,
    pub auth: EmailAuth,
    pub tls: EmailTls,
    /// First event opens a window this long in which others join the digest.
    pub group_wait: Duration,
    /// Minimum time between two digests.
    pub min_interval: Duration,
    /// A send taking longer is abandoned and retried later.
    pub timeout: Duration,
}

impl EmailConfig {
    /// Whether the SMTP host is this machine, where a password may travel unencrypted.
    pub fn host_is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
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
    /// A tracing filter directive such as `warn` or `status=debug`.
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
const DURATION_EXPECTED: &str = "a duration such as 500ms, 10s, 15m, 1h30m or 1d";

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

    fn secret(&self, key: &str) -> Result<SecretString, ConfigError> {
        let name = Self::name(key);
        let value = self
            .0
            .get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ConfigError::missing(&name, "the shared HS256 secret"))?;
        Ok(SecretString::from(value.clone()))
    }

    fn parse<T>(&self, key: &str, default: T, expected: &str, f: impl Fn(&str) -> Option<T>) -> Result<T, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => f(v).ok_or_else(|| ConfigError::bad(&Self::name(key), v, expected)),
        }
    }

    fn duration(&self, key: &str, default: &str) -> Result<Duration, ConfigError> {
        let default = parse_duration(default).expect("built-in defaults are valid durations");
        self.parse(key, default, DURATION_EXPECTED, parse_duration)
    }

    /// A duration that drives a timer, so zero would spin.
    fn period(&self, key: &str, default: &str) -> Result<Duration, ConfigError> {
        let d = self.duration(key, default)?;
        if d.is_zero() {
            let v = self.raw(key).unwrap_or_default();
            return Err(ConfigError::bad(
                &Self::name(key),
                v,
                format!("{DURATION_EXPECTED}, greater than zero"),
            ));
        }
        Ok(d)
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
        let host = self.required(&host_key, "a host name, optionally with a port, e.g. app.example.org")?;
        if host.contains("://") || host.contains('/') || host.contains(char::is_whitespace) {
            return Err(ConfigError::bad(
                &Self::name(&host_key),
                host,
                "a bare host name without scheme or path, e.g. app.example.org (put the path in STATUS_BASEPATH_*)",
            ));
        }
        let scheme = self.parse(&format!("SCHEME_{which}"), Scheme::Https, "https or http", |v| match v
            .to_ascii_lowercase()
            .as_str()
        {
            "https" => Some(Scheme::Https),
            "http" => Some(Scheme::Http),
            _ => None,
        })?;
        Ok(Peer {
            scheme,
            host: host.to_string(),
            basepath: normalise_basepath(&self.string(&format!("BASEPATH_{which}"), "")),
            secret: self.secret(&format!("SECRET_{which}"))?,
        })
    }
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
            vars.period("HEALTH_LAST_ACTIVE", "10s")?
        } else {
            vars.period("HEALTH_LAST", "10s")?
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
                last_checked: vars.period("HEALTH_LAST_CHECKED", "30s")?,
                startup: vars.duration("HEALTH_STARTUP", "1m")?,
                events: vars.parse("HEALTH_EVENTS", 100, "a whole number from 1 to 100000", |v| {
                    v.parse().ok().filter(|n| (1..=100_000).contains(n))
                })?,
                mass_change_guard: vars.flag("MASS_CHANGE_GUARD", true)?,
            },
            health_log_every: vars.period("HEALTH_LOG_EVERY", "1h")?,
            query_book_every: vars.period("QUERY_BOOK_EVERY", "15m")?,
            reconnect_relay_every: vars.period("RECONNECT_RELAY_EVERY", "1d")?,
            reconnect_jump_every: vars.period("RECONNECT_JUMP_EVERY", "1d")?,
            timeout_book: vars.period("TIMEOUT_BOOK", "5s")?,
            dry_run: vars.flag("DRY_RUN", false)?,
            email: email(&vars)?,
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

fn email(vars: &Vars) -> Result<Email, ConfigError> {
    let missing: Vec<&'static str> = [
        ("EMAIL_HOST", "STATUS_EMAIL_HOST"),
        ("EMAIL_FROM", "STATUS_EMAIL_FROM"),
        ("EMAIL_TO", "STATUS_EMAIL_TO"),
    ]
    .into_iter()
    .filter(|(k, _)| vars.raw(k).is_none())
    .map(|(_, name)| name)
    .collect();
    if !missing.is_empty() {
        return Ok(Email::Off { missing });
    }
    let from = vars.string("EMAIL_FROM", "");
    let auth = vars.parse("EMAIL_AUTH_TYPE", EmailAuth::None, "none, plain or login", |v| match v
        .to_ascii_lowercase()
        .as_str()
    {
        "none" | "" => Some(EmailAuth::None),
        "plain" => Some(EmailAuth::Plain),
        "login" => Some(EmailAuth::Login),
        _ => None,
    })?;
    let password = vars
        .0
        .get("EMAIL_PASSWORD")
        .filter(|v| !v.is_empty())
        .map(|v| SecretString::from(v.clone()));
    if auth != EmailAuth::None && password.is_none() {
        return Err(ConfigError::missing(
            "STATUS_EMAIL_PASSWORD",
            "a password, because STATUS_EMAIL_AUTH_TYPE asks for authentication",
        ));
    }
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
    for (key, addresses) in [
        ("EMAIL_FROM", vec![from.clone()]),
        ("EMAIL_TO", vars.list("EMAIL_TO")),
        ("EMAIL_CC", vars.list("EMAIL_CC")),
    ] {
        if let Some(bad) = addresses
            .iter()
            .find(|a| a.parse::<lettre::message::Mailbox>().is_err())
        {
            return Err(ConfigError::bad(
                &Vars::name(key),
                bad,
                "mail addresses such as status@example.org or Lab Status <status@example.org>, comma-separated",
            ));
        }
    }
    let config = EmailConfig {
        host: vars.string("EMAIL_HOST", ""),
        port: vars.port("EMAIL_PORT", 587)?,
        user: vars.string("EMAIL_USER", &from),
        from,
        to: vars.list("EMAIL_TO"),
        cc: vars.list("EMAIL_CC"),
        subject: vars.string("EMAIL_SUBJECT", "Lab status:"),
        link: vars.string("EMAIL_LINK", ""),
        password,
        auth,
        tls,
        group_wait: vars.duration("EMAIL_GROUP_WAIT", "10s")?,
        min_interval: vars.duration("EMAIL_MIN_INTERVAL", "1m")?,
        timeout: vars.period("EMAIL_TIMEOUT", "30s")?,
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

/// `500ms`, `10s`, `15m`, `1h30m`, `1d`, `1h 30m`: humantime's grammar.
pub fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s.trim()).ok()
}

/// The inverse of [`parse_duration`], for printing effective values.
pub fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
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
        ] {
            assert_eq!(parse_duration(s).unwrap().as_secs_f64(), secs, "{s}");
        }
        assert!(parse_duration("abc").is_none());
        assert!(parse_duration("10").is_none());
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
