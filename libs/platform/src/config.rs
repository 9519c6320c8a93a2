//! Typed settings: defaults < `config/{profile}.toml` < environment, validated all at once.
//!
//! Every service describes its settings as one struct that flattens [`PlatformSettings`] (and,
//! where it has them, [`DatabaseSettings`] and [`NatsSettings`]) and implements
//! [`ServiceSettings`]. [`load`] reads the environment, the optional profile file and any
//! `NAME_FILE` secret, then reports *every* problem in one [`ConfigError`] before anything binds a
//! port: a type error in one variable does not hide a missing secret in another.
//!
//! A command is judged only by the settings it uses: it passes its [`Needs`] to [`load`] (through
//! `platform::boot`), and [`ServiceSettings::validate`] checks the parts those needs name, so
//! `migrate up` in prod needs a database and nothing else.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Provider};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which set of rules and defaults applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A developer's machine: pretty logs, local defaults, ephemeral keys.
    #[default]
    Dev,
    /// Automated tests: like dev, but quiet and deterministic.
    Test,
    /// Production: no defaults for secrets, insecure values refused.
    Prod,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Test => "test",
            Profile::Prod => "prod",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "dev" | "development" => Some(Profile::Dev),
            "test" => Some(Profile::Test),
            "prod" | "production" => Some(Profile::Prod),
            _ => None,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A setting whose value must never reach a log line. `Debug` and `Display` print `[redacted]`.
///
/// Our own type rather than `secrecy::SecretString` because the loader serialises defaults back
/// into figment, which `secrecy` deliberately forbids for `String`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value; call only where it is used (a connection, a key parser).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Environment values are parsed into their most specific type, so a numeric password
        // arrives as a number: accept any scalar and keep its text.
        let value = <Value as Deserialize>::deserialize(d)?;
        match value {
            Value::String(_, s) => Ok(Secret(s)),
            Value::Num(_, n) => Ok(Secret(num_text(n))),
            Value::Bool(_, b) => Ok(Secret(b.to_string())),
            _ => Err(serde::de::Error::custom("expected a string")),
        }
    }
}

fn num_text(n: figment::value::Num) -> String {
    use figment::value::Num;
    match n {
        Num::U8(v) => v.to_string(),
        Num::U16(v) => v.to_string(),
        Num::U32(v) => v.to_string(),
        Num::U64(v) => v.to_string(),
        Num::U128(v) => v.to_string(),
        Num::USize(v) => v.to_string(),
        Num::I8(v) => v.to_string(),
        Num::I16(v) => v.to_string(),
        Num::I32(v) => v.to_string(),
        Num::I64(v) => v.to_string(),
        Num::I128(v) => v.to_string(),
        Num::ISize(v) => v.to_string(),
        Num::F32(v) => v.to_string(),
        Num::F64(v) => v.to_string(),
    }
}

/// Durations are written as `10s`, `250ms`, `15m`, or a bare number of seconds.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(secs) => Ok(Duration::from_secs(secs)),
            Raw::Text(text) => humantime::parse_duration(text.trim()).map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {text:?} ({e}); write e.g. 10s, 250ms or 15m"
                ))
            }),
        }
    }
}

/// A comma-separated list in the environment (`a,b,c`), or a list in TOML.
pub mod comma_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.join(","))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<String>),
            Text(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::List(items) => items,
            Raw::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// `NATS_NAMESPACE`: lets several deployments (or parallel tests) share one NATS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} must be 1–32 characters of a-z, A-Z, 0-9, _ or - (it prefixes subjects, streams and buckets)"
)]
pub struct InvalidNamespace(String);

impl Namespace {
    pub fn new(raw: &str) -> Result<Self, InvalidNamespace> {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Namespace(raw.to_owned()))
        } else {
            Err(InvalidNamespace(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `jobs.image.thumbnail` → `storefront.jobs.image.thumbnail`
    pub fn subject(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.0)
    }

    /// `JOBS` → `STOREFRONT_JOBS` (stream names are upper-case by convention).
    pub fn stream(&self, name: &str) -> String {
        format!("{}_{name}", self.0.to_ascii_uppercase().replace('-', "_"))
    }

    /// `revocations` → `storefront_revocations` (KV buckets and object stores).
    pub fn bucket(&self, name: &str) -> String {
        format!("{}_{name}", self.0.replace('-', "_"))
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS` as the OpenTelemetry specification defines it: `key=value`
/// pairs separated by commas, blanks around keys and values ignored, values percent-decoded
/// (`Authorization=Basic%20abc`). The values are secrets: they are marked sensitive, and an
/// error names the pair by position (and by key once the key is a valid header name), never by
/// value, nor by an invalid key, which may hold a token.
pub fn parse_otlp_headers(raw: &str) -> Result<http::HeaderMap, String> {
    let mut headers = http::HeaderMap::new();
    for (i, pair) in raw.split(',').enumerate() {
        let n = i + 1;
        if pair.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("pair {n} is not key=value"));
        };
        let key = key.trim();
        let name = http::HeaderName::from_bytes(key.as_bytes())
            // Not echoed: an invalid "name" is often a whole header pasted in the wrong format
            // (`Authorization: Bearer <token>=`), the secret included.
            .map_err(|_| format!("pair {n} has an invalid header name"))?;
        let decoded = percent_decode(value.trim())
            .ok_or_else(|| format!("pair {n} ({key}): the value has a bad %-escape"))?;
        let mut value = http::HeaderValue::from_bytes(&decoded)
            .map_err(|_| format!("pair {n} ({key}): the value is not a valid header value"))?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    Ok(headers)
}

/// `%XX` escapes decoded; `None` for a `%` not followed by two hex digits.
fn percent_decode(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Settings every service has. Field names are the environment variables, lower-cased.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlatformSettings {
    pub app_env: Profile,
    /// Address of the API (and health) listener.
    pub http_addr: SocketAddr,
    /// Address of the Prometheus listener; kept apart so an ingress never exposes it.
    pub metrics_addr: SocketAddr,
    /// `json` or `pretty`; unset means pretty in dev and json elsewhere.
    pub log_format: Option<LogFormat>,
    /// Origins allowed by CORS; empty means no CORS headers at all.
    #[serde(with = "comma_list")]
    pub cors_allowed_origins: Vec<String>,
    /// Networks of reverse proxies whose `X-Forwarded-For` is believed (CIDRs, comma-separated).
    #[serde(with = "comma_list")]
    pub trusted_proxies: Vec<String>,
    /// Whole-request deadline; a slower request answers 503.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Largest accepted JSON body.
    pub body_limit_bytes: usize,
    /// Time allowed after SIGTERM to finish in-flight requests and jobs.
    #[serde(with = "duration")]
    pub shutdown_grace_period: Duration,
    /// Tokio worker threads; 0 means one per available core.
    pub worker_threads: usize,
    /// Time a client has to send a request's headers (slowloris guard).
    #[serde(with = "duration")]
    pub http_header_read_timeout: Duration,
    /// Whether HTTP/1.1 connections are kept open between requests.
    pub http_keep_alive: bool,
    /// Open connections served at once; further clients wait in the accept queue.
    pub http_max_connections: usize,
    /// OTLP/HTTP collector base URL (`http://otel-collector:4318`); spans go to
    /// `{it}/v1/traces`. Unset: no traces are exported (trace context is still passed on).
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans; default the binary's name.
    pub otel_service_name: Option<String>,
    /// Fraction (0–1) of new traces sampled; a caller's sampled decision is always followed.
    pub otel_traces_sampler_arg: f64,
    /// Sentry DSN; unset: no error tracking. A secret (may come as `SENTRY_DSN_FILE`).
    pub sentry_dsn: Option<Secret>,
    /// `key=value` pairs, comma-separated, sent with every OTLP export (W3C baggage format
    /// values, as OpenTelemetry's spec says); a secret.
    pub otel_exporter_otlp_headers: Option<Secret>,
}

impl PlatformSettings {
    /// Defaults for a service listening on the given ports (docs/design.md §3).
    pub fn with_ports(http_port: u16, metrics_port: u16) -> Self {
        PlatformSettings {
            app_env: Profile::Dev,
            http_addr: SocketAddr::from(([0, 0, 0, 0], http_port)),
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], metrics_port)),
            log_format: None,
            cors_allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            request_timeout: Duration::from_secs(10),
            body_limit_bytes: 1024 * 1024,
            shutdown_grace_period: Duration::from_secs(25),
            worker_threads: 0,
            http_header_read_timeout: Duration::from_secs(5),
            http_keep_alive: true,
            http_max_connections: 1024,
            otel_exporter_otlp_endpoint: None,
            otel_service_name: None,
            otel_traces_sampler_arg: 1.0,
            sentry_dsn: None,
            otel_exporter_otlp_headers: None,
        }
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(match self.app_env {
            Profile::Dev => LogFormat::Pretty,
            Profile::Test | Profile::Prod => LogFormat::Json,
        })
    }

    /// The basics (profile, logs, runtime, telemetry) always; the listeners and HTTP limits only
    /// when `needs` covers [`Needs::SERVE`].
    pub fn validate(&self, needs: Needs, problems: &mut Problems) {
        let prod = self.app_env == Profile::Prod;
        if prod && self.log_format == Some(LogFormat::Pretty) {
            problems.add(
                "LOG_FORMAT",
                "\"pretty\" is not allowed in prod; log collectors need json",
            );
        }
        if !(0.0..=1.0).contains(&self.otel_traces_sampler_arg) {
            problems.add("OTEL_TRACES_SAMPLER_ARG", "must be between 0 and 1");
        }
        if let Some(endpoint) = &self.otel_exporter_otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            problems.add(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "must be an http:// or https:// URL",
            );
        }
        if let Some(dsn) = &self.sentry_dsn
            && dsn.expose().parse::<sentry::types::Dsn>().is_err()
        {
            problems.add("SENTRY_DSN", "is not a valid Sentry DSN");
        }
        if let Some(headers) = &self.otel_exporter_otlp_headers
            && let Err(e) = parse_otlp_headers(headers.expose())
        {
            problems.add("OTEL_EXPORTER_OTLP_HEADERS", e);
        }
        if !needs.has(Needs::SERVE) {
            return;
        }
        if prod && self.cors_allowed_origins.iter().any(|o| o == "*") {
            problems.add(
                "CORS_ALLOWED_ORIGINS",
                "\"*\" is not allowed in prod; list the allowed origins",
            );
        }
        for origin in &self.cors_allowed_origins {
            if origin != "*" && origin.parse::<http::HeaderValue>().is_err() {
                problems.add(
                    "CORS_ALLOWED_ORIGINS",
                    format!("{origin:?} is not a valid origin"),
                );
            }
        }
        if let Err(e) = crate::ratelimit::TrustedProxies::parse(&self.trusted_proxies) {
            problems.add("TRUSTED_PROXIES", e);
        }
        if self.http_addr == self.metrics_addr && self.http_addr.port() != 0 {
            problems.add("METRICS_ADDR", "must differ from HTTP_ADDR");
        }
        if self.request_timeout.is_zero() {
            problems.add("REQUEST_TIMEOUT", "must be greater than zero");
        }
        if self.body_limit_bytes == 0 {
            problems.add("BODY_LIMIT_BYTES", "must be greater than zero");
        }
        if self.http_max_connections == 0 {
            problems.add("HTTP_MAX_CONNECTIONS", "must be greater than zero");
        }
        if self.http_header_read_timeout.is_zero() {
            problems.add("HTTP_HEADER_READ_TIMEOUT", "must be greater than zero");
        }
    }
}

/// Connection settings of a service that owns a PostgreSQL database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/db`; a secret (may come as `DATABASE_URL_FILE`).
    pub database_url: Option<Secret>,
    /// Pool size; the default suits a 2-core pod.
    pub db_max_connections: u32,
    /// How long a request waits for a pooled connection before failing.
    #[serde(with = "duration")]
    pub db_acquire_timeout: Duration,
    /// Apply pending migrations at start-up. Dev only: prod migrates with `migrate up` (a Job).
    pub auto_migrate: bool,
}

/// Passwords that mean "nobody changed the default".
const WEAK_PASSWORDS: &[&str] = &[
    "postgres", "password", "changeme", "secret", "admin", "root",
];

impl DatabaseSettings {
    pub fn validate(&self, profile: Profile, problems: &mut Problems) {
        if self.db_max_connections == 0 {
            problems.add("DB_MAX_CONNECTIONS", "must be greater than zero");
        }
        let Some(url) = &self.database_url else {
            problems.add(
                "DATABASE_URL",
                "is required (set DATABASE_URL or DATABASE_URL_FILE)",
            );
            return;
        };
        if url
            .expose()
            .parse::<sqlx::postgres::PgConnectOptions>()
            .is_err()
        {
            problems.add("DATABASE_URL", "is not a valid postgres:// URL");
            return;
        }
        if profile == Profile::Prod {
            if self.auto_migrate {
                problems.add(
                    "AUTO_MIGRATE",
                    "is not allowed in prod; run `<service> migrate up` (the chart's migration Job)",
                );
            }
            let password = password_of(url.expose());
            match password.as_deref() {
                None | Some("") => problems.add(
                    "DATABASE_URL",
                    "has no password; prod needs an authenticated database user",
                ),
                Some(p) if WEAK_PASSWORDS.contains(&p.to_ascii_lowercase().as_str()) => {
                    problems.add("DATABASE_URL", "uses a default password; set a real one")
                }
                Some(_) => {}
            }
        }
    }
}

/// The password part of a URL, if any (`postgres://user:pw@host/db`).
fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, pw)| pw.to_owned())
}

/// Connection settings for NATS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NatsSettings {
    /// `nats://host:port`; a secret because it may carry credentials.
    pub nats_url: Option<Secret>,
    /// Prefix of every subject, stream, KV bucket and object store.
    pub nats_namespace: String,
    /// How long start-up waits for the first connection before going on unready.
    #[serde(with = "duration")]
    pub nats_connect_timeout: Duration,
    /// Copies JetStream keeps of every stream, KV bucket and the image store: 3 in a NATS
    /// cluster of three or more (one node may be lost), 1 on a single server.
    pub nats_replicas: usize,
    /// Size limit of the image object store in bytes; 0 is none. Uploads past it are refused
    /// (507) instead of filling the NATS volume.
    pub nats_images_max_bytes: u64,
}

impl NatsSettings {
    pub fn validate(&self, problems: &mut Problems) {
        if self.nats_url.is_none() {
            problems.add("NATS_URL", "is required (set NATS_URL or NATS_URL_FILE)");
        }
        if let Err(e) = Namespace::new(&self.nats_namespace) {
            problems.add("NATS_NAMESPACE", e.to_string());
        }
        if !(1..=5).contains(&self.nats_replicas) {
            problems.add("NATS_REPLICAS", "must be 1 to 5 (JetStream's limit)");
        }
        if i64::try_from(self.nats_images_max_bytes).is_err() {
            problems.add(
                "NATS_IMAGES_MAX_BYTES",
                "is larger than JetStream can store",
            );
        }
    }
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings {
            nats_url: None,
            nats_namespace: "storefront".into(),
            nats_connect_timeout: Duration::from_secs(10),
            nats_replicas: 1,
            nats_images_max_bytes: 0,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            database_url: None,
            db_max_connections: 10,
            db_acquire_timeout: Duration::from_secs(3),
            auto_migrate: false,
        }
    }
}

/// What a command uses, and so which settings it needs: the one way a binary says so.
///
/// `main` picks the value for its subcommand and passes it to `platform::boot` (which hands it to
/// [`load`] and on to [`ServiceSettings::validate`]). The platform basics (`APP_ENV`,
/// `LOG_FORMAT`, `WORKER_THREADS`, tracing and error tracking) are always checked; everything
/// else only for the parts a command names, so a maintenance command in prod is not refused for
/// a missing setting it never reads:
///
/// ```
/// use platform::config::Needs;
///
/// // Settings only some commands of one service use: a part of its own.
/// const PASSWORD_HASHING: Needs = Needs::service_part(0);
///
/// let migrate = Needs::DATABASE;
/// let create_admin = Needs::DATABASE.and(PASSWORD_HASHING);
/// assert!(create_admin.has(Needs::DATABASE) && create_admin.has(PASSWORD_HASHING));
/// assert!(!migrate.has(PASSWORD_HASHING) && !migrate.has(Needs::NATS));
/// // `serve` uses everything, so it has every part, a service's own parts included.
/// assert!(Needs::SERVE.has(PASSWORD_HASHING) && Needs::SERVE.has(Needs::NATS));
/// assert!(!create_admin.has(Needs::SERVE));
/// ```
///
/// In `validate`, a service checks a part's settings when `needs.has(part)`: [`DatabaseSettings`]
/// under [`Needs::DATABASE`], [`NatsSettings`] under [`Needs::NATS`], and settings that only
/// serving uses (listeners, tokens, rate limits, cursors…) under [`Needs::SERVE`]. A value that
/// *is* given must still parse, whatever the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs(u32);

impl Needs {
    /// The platform basics only.
    pub const BASICS: Needs = Needs(0);
    /// The service's PostgreSQL database ([`DatabaseSettings`]).
    pub const DATABASE: Needs = Needs(1);
    /// NATS ([`NatsSettings`]).
    pub const NATS: Needs = Needs(1 << 1);
    /// Everything: what `serve` uses. It has every part, including each [`Needs::service_part`].
    pub const SERVE: Needs = Needs(u32::MAX);

    /// Part `n` (0–23) of a service's own settings, for settings some of its commands use
    /// besides the parts above (e.g. the password hashing an admin-creating command needs).
    pub const fn service_part(n: u32) -> Needs {
        assert!(n < 24, "a service has at most 24 parts of its own");
        Needs(1 << (8 + n))
    }

    /// These needs and `other`'s.
    #[must_use]
    pub const fn and(self, other: Needs) -> Needs {
        Needs(self.0 | other.0)
    }

    /// Whether these needs cover all of `part`.
    pub const fn has(self, part: Needs) -> bool {
        self.0 & part.0 == part.0
    }
}

/// Secrets every service accepts, also as `NAME_FILE`, besides its own [`ServiceSettings::SECRETS`].
pub const PLATFORM_SECRETS: &[&str] = &["SENTRY_DSN", "OTEL_EXPORTER_OTLP_HEADERS"];

/// What a service tells the loader about its settings.
pub trait ServiceSettings: Serialize + DeserializeOwned + Default {
    /// The service's own variables that are secrets: they may be given as `NAME_FILE` (a mounted
    /// secret) and reach their field as the exact text given. The loader adds
    /// [`PLATFORM_SECRETS`].
    const SECRETS: &'static [&'static str];

    fn platform(&self) -> &PlatformSettings;

    /// Defaults that hold only in one profile, e.g. a local `DATABASE_URL` in dev and test.
    fn profile_defaults(_profile: Profile) -> Vec<(&'static str, Value)> {
        Vec::new()
    }

    /// Add a problem for every missing, invalid or (in prod) insecure value among the settings
    /// the command's `needs` cover (see [`Needs`]).
    fn validate(&self, needs: Needs, problems: &mut Problems);
}

/// One setting that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub setting: String,
    pub message: String,
}

/// Collects every problem found; start-up fails once with all of them.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn add(&mut self, setting: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            setting: setting.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Start-up refused: the settings have one or more problems.
#[derive(Debug)]
pub struct ConfigError {
    pub profile: Profile,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// Whether any problem names this setting (used by tests and by callers deciding exit codes).
    pub fn mentions(&self, setting: &str) -> bool {
        self.problems.iter().any(|p| p.setting == setting)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration (APP_ENV={}): {n} problem{}",
            self.profile,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {}: {}", p.setting, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Load the settings of a service from the process environment and `config/{profile}.toml`
/// (under `CONFIG_DIR`, default `./config`), checking those a command with `needs` uses.
pub fn load<S: ServiceSettings>(needs: Needs) -> Result<S, ConfigError> {
    let vars: HashMap<String, String> = std::env::vars().collect();
    let dir = vars
        .get("CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config"));
    load_from(vars, &dir, needs)
}

/// Like [`load`], from the given variables and config folder (tests pass their own).
pub fn load_from<S: ServiceSettings>(
    vars: HashMap<String, String>,
    config_dir: &Path,
    needs: Needs,
) -> Result<S, ConfigError> {
    let mut problems = Problems::default();

    let profile = match vars.get("APP_ENV") {
        None => Profile::Dev,
        Some(raw) => Profile::parse(raw).unwrap_or_else(|| {
            problems.add("APP_ENV", format!("{raw:?} is not one of dev, test, prod"));
            // Judge the rest by the strictest rules rather than the laxest.
            Profile::Prod
        }),
    };

    let (env, env_text) = environment_dict::<S>(&vars, &mut problems);

    let mut defaults = Figment::from(Serialized::defaults(S::default()));
    for (key, value) in S::profile_defaults(profile) {
        defaults = defaults.merge(Serialized::default(key, value));
    }
    let defaults = defaults.merge(Serialized::default("app_env", profile));
    let default_dict = defaults.data().map(flatten_default).unwrap_or_default();

    let file = config_dir.join(format!("{}.toml", profile.as_str()));
    let mut figment = defaults.merge(Toml::file(&file));
    figment = figment.merge(Serialized::defaults(env));
    figment = figment.merge(Serialized::default("app_env", profile));

    let dict = match figment.data() {
        Ok(data) => flatten_default(data),
        Err(e) => {
            problems.add(file.display().to_string(), e.to_string());
            default_dict.clone()
        }
    };

    let settings = match extract::<S>(&dict) {
        Ok(settings) => Some(settings),
        // serde stops at the first error and, through `flatten`, forgets which key it was in:
        // try each given value alone on top of the defaults to name every bad one. A variable
        // read as a number or boolean that its setting refuses is tried as the text it was (a
        // text setting whose value looks numeric, `OTEL_SERVICE_NAME=2024`).
        Err(first) => {
            let mut usable = default_dict.clone();
            for (key, value) in &dict {
                if default_dict.get(key) == Some(value) {
                    continue;
                }
                let mut trial = default_dict.clone();
                trial.insert(key.clone(), value.clone());
                let error = match extract::<S>(&trial) {
                    Ok(_) => {
                        usable.insert(key.clone(), value.clone());
                        continue;
                    }
                    Err(e) => e,
                };
                if let Some(text) = env_text.get(key) {
                    trial.insert(key.clone(), text.clone());
                    if extract::<S>(&trial).is_ok() {
                        usable.insert(key.clone(), text.clone());
                        continue;
                    }
                }
                problems.add(key.to_ascii_uppercase(), clean_figment_message(&error));
            }
            match extract::<S>(&usable) {
                Ok(settings) => Some(settings),
                Err(_) => {
                    problems.add("settings", clean_figment_message(&first));
                    None
                }
            }
        }
    };

    if let Some(settings) = &settings {
        settings.validate(needs, &mut problems);
    }
    match settings {
        Some(settings) if problems.is_empty() => Ok(settings),
        _ => {
            dedupe(&mut problems.0);
            Err(ConfigError {
                profile,
                problems: problems.0,
            })
        }
    }
}

/// The environment as a figment dictionary: keys lower-cased, values parsed into their most
/// specific type, secrets kept as the exact text given, `NAME_FILE` secrets read from their
/// files. Also, for each value parsed into something else, its text (see [`load_from`]).
fn environment_dict<S: ServiceSettings>(
    vars: &HashMap<String, String>,
    problems: &mut Problems,
) -> (Dict, Dict) {
    let secrets = || PLATFORM_SECRETS.iter().chain(S::SECRETS);
    let mut dict = Dict::new();
    let mut text = Dict::new();
    for (name, raw) in vars {
        let key = name.to_ascii_lowercase();
        if secrets().any(|s| *s == name.as_str()) {
            dict.insert(key, Value::from(raw.clone()));
            continue;
        }
        let value = parse_env_value(raw);
        if !matches!(value, Value::String(..)) {
            text.insert(key.clone(), Value::from(raw.clone()));
        }
        dict.insert(key, value);
    }
    for secret in secrets() {
        let file_var = format!("{secret}_FILE");
        let Some(path) = vars.get(&file_var) else {
            continue;
        };
        if vars.contains_key(*secret) {
            problems.add(
                *secret,
                format!("set either {secret} or {file_var}, not both"),
            );
            continue;
        }
        match std::fs::read_to_string(path) {
            Ok(content) => {
                let value = content.trim_end_matches(['\n', '\r']).to_owned();
                dict.insert(secret.to_ascii_lowercase(), Value::from(value));
            }
            Err(e) => problems.add(file_var, format!("cannot read {path:?}: {e}")),
        }
    }
    (dict, text)
}

// figment::Error is large, but this runs a few times at start-up only.
#[allow(clippy::result_large_err)]
fn extract<S: DeserializeOwned>(dict: &Dict) -> Result<S, figment::Error> {
    Figment::from(Serialized::defaults(dict)).extract::<S>()
}

fn parse_env_value(raw: &str) -> Value {
    // Only scalars are interpreted; lists are written comma-separated and parsed by the field.
    if let Ok(b) = raw.parse::<bool>() {
        return Value::from(b);
    }
    if let Ok(n) = raw.parse::<u64>() {
        return Value::from(n);
    }
    if let Ok(n) = raw.parse::<i64>() {
        return Value::from(n);
    }
    // Fractions (`0.1`, `2.5e-3`); not `inf` or `NaN`, which are words more often than numbers.
    if raw.bytes().any(|b| b.is_ascii_digit())
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && let Ok(x) = raw.parse::<f64>()
        && x.is_finite()
    {
        return Value::from(x);
    }
    Value::from(raw.to_owned())
}

/// The environment that would give `settings`: each value as the text its variable would hold
/// (`HTTP_ADDR=0.0.0.0:8081`, `REQUEST_TIMEOUT=10s`, `HTTP_KEEP_ALIVE=true`, `CORS_ALLOWED_ORIGINS=`
/// for an empty list); unset options are left out. Tests use it to check that every setting
/// reads back the text form it writes.
pub fn as_environment<S: Serialize>(settings: &S) -> HashMap<String, String> {
    fn text(value: &Value) -> Option<String> {
        match value {
            Value::String(_, s) => Some(s.clone()),
            Value::Char(_, c) => Some(c.to_string()),
            Value::Bool(_, b) => Some(b.to_string()),
            Value::Num(_, n) => Some(num_text(*n)),
            Value::Array(_, items) => {
                Some(items.iter().filter_map(text).collect::<Vec<_>>().join(","))
            }
            Value::Empty(..) | Value::Dict(..) => None,
        }
    }
    Figment::from(Serialized::defaults(settings))
        .data()
        .map(flatten_default)
        .unwrap_or_default()
        .iter()
        .filter_map(|(key, value)| Some((key.to_ascii_uppercase(), text(value)?)))
        .collect()
}

/// Checks a service's settings tests use (with the `testing` feature).
#[cfg(any(test, feature = "testing"))]
pub mod checks {
    use std::collections::HashMap;
    use std::path::Path;

    use super::{Needs, ServiceSettings, as_environment, load_from};

    /// Every default of `S`, written as the text the environment would hold (as the kubelet
    /// gives every value), loads back with `APP_ENV=test` unrefused and unchanged.
    pub fn assert_defaults_round_trip<S: ServiceSettings>() {
        let mut env = as_environment(&S::default());
        env.insert("APP_ENV".into(), "test".into());
        let loaded: S = load_from(env.clone(), Path::new("/nonexistent"), Needs::SERVE)
            .unwrap_or_else(|e| panic!("defaults written as text refused: {e}\n{env:?}"));
        let back = as_environment(&loaded);
        for (name, text) in &env {
            assert_eq!(back.get(name), Some(text), "{name} changed on its way back");
        }
    }

    /// `S` loaded for `serve` from these variables alone with `APP_ENV=test`; panics if refused.
    pub fn load_test_settings<S: ServiceSettings>(pairs: &[(&str, &str)]) -> S {
        let mut env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.entry("APP_ENV".into()).or_insert_with(|| "test".into());
        load_from(env, Path::new("/nonexistent"), Needs::SERVE)
            .unwrap_or_else(|e| panic!("{pairs:?} refused: {e}"))
    }
}

fn flatten_default(mut data: figment::value::Map<figment::Profile, Dict>) -> Dict {
    data.remove(&figment::Profile::Default).unwrap_or_default()
}

fn clean_figment_message(error: &figment::Error) -> String {
    use figment::error::Kind;
    match &error.kind {
        Kind::MissingField(_) => "is required".to_owned(),
        Kind::InvalidType(actual, expected) => format!("expected {expected}, found {actual}"),
        Kind::InvalidValue(actual, expected) => format!("expected {expected}, found {actual}"),
        Kind::UnknownVariant(v, expected) => {
            format!("{v:?} is not one of {}", expected.join(", "))
        }
        other => other.to_string(),
    }
}

fn dedupe(problems: &mut Vec<Problem>) {
    let mut seen = BTreeMap::new();
    problems.retain(|p| {
        seen.insert((p.setting.clone(), p.message.clone()), ())
            .is_none()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct TestSettings {
        #[serde(flatten)]
        platform: PlatformSettings,
        #[serde(flatten)]
        database: DatabaseSettings,
        #[serde(flatten)]
        nats: NatsSettings,
        api_token: Option<Secret>,
        /// A text setting whose default looks like a number.
        release: String,
        /// A fractional default, written `0.25` in the environment.
        ratio: f64,
    }

    impl Default for TestSettings {
        fn default() -> Self {
            TestSettings {
                platform: PlatformSettings::with_ports(8081, 9181),
                database: DatabaseSettings::default(),
                nats: NatsSettings::default(),
                api_token: None,
                release: "2024.1".into(),
                ratio: 0.25,
            }
        }
    }

    impl ServiceSettings for TestSettings {
        const SECRETS: &'static [&'static str] = &["DATABASE_URL", "NATS_URL", "API_TOKEN"];

        fn platform(&self) -> &PlatformSettings {
            &self.platform
        }

        fn profile_defaults(profile: Profile) -> Vec<(&'static str, Value)> {
            match profile {
                Profile::Prod => vec![],
                _ => vec![
                    ("database_url", "postgres://postgres@127.0.0.1/auth".into()),
                    ("nats_url", "nats://127.0.0.1:4222".into()),
                ],
            }
        }

        fn validate(&self, needs: Needs, problems: &mut Problems) {
            self.platform.validate(needs, problems);
            if needs.has(Needs::DATABASE) {
                self.database.validate(self.platform.app_env, problems);
            }
            if needs.has(Needs::NATS) {
                self.nats.validate(problems);
            }
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_vars(pairs: &[(&str, &str)]) -> Result<TestSettings, ConfigError> {
        load_from(vars(pairs), Path::new("/nonexistent"), Needs::SERVE)
    }

    const GOOD_PROD: &[(&str, &str)] = &[
        ("APP_ENV", "prod"),
        ("DATABASE_URL", "postgres://auth:s3cr3t-Long@db:5432/auth"), // secret-scan: allow (test value)
        ("NATS_URL", "nats://nats:4222"),
    ];

    fn prod_with(extra: &[(&str, &str)]) -> Result<TestSettings, ConfigError> {
        let mut all: Vec<(&str, &str)> = GOOD_PROD.to_vec();
        for (k, v) in extra {
            all.retain(|(key, _)| key != k);
            all.push((k, v));
        }
        load_vars(&all)
    }

    #[test]
    fn namespace_prefixes_every_name_kind() {
        let ns = Namespace::new("storefront").unwrap();
        assert_eq!(
            ns.subject("jobs.image.thumbnail"),
            "storefront.jobs.image.thumbnail"
        );
        assert_eq!(ns.stream("JOBS"), "STOREFRONT_JOBS");
        assert_eq!(ns.bucket("revocations"), "storefront_revocations");
        let dashed = Namespace::new("t-1").unwrap();
        assert_eq!(dashed.stream("DLQ"), "T_1_DLQ");
    }

    #[test]
    fn namespace_refuses_what_would_break_subjects() {
        for bad in ["", "a.b", "a*", "a>", "a b", &"x".repeat(33)] {
            assert!(Namespace::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn otlp_headers_are_parsed_as_the_spec_says() {
        let h = parse_otlp_headers(
            " Authorization = Basic%20dXNlcjpwYXNz%3D ,x-scope-orgid=tenant-1,, api-key=a%2Cb%25c",
        )
        .unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h["authorization"], "Basic dXNlcjpwYXNz=");
        assert_eq!(h["x-scope-orgid"], "tenant-1");
        assert_eq!(h["api-key"], "a,b%c");
        assert!(h["authorization"].is_sensitive());
        assert!(parse_otlp_headers("").unwrap().is_empty());
    }

    #[test]
    fn bad_otlp_headers_are_refused_without_echoing_the_value() {
        for (raw, why) in [
            ("authorization", "not key=value"),
            ("bad key=1", "header name"),
            ("api-key=s3cret%zz", "%-escape"),
            ("api-key=s3cret%2", "%-escape"),
            ("api-key=s3cret%0A", "header value"),
            // `Authorization: Bearer …` instead of `Authorization=Bearer%20…`: the `=` of the
            // token's padding makes everything before it the "key".
            (
                "Authorization: Bearer s3cretdG9rZW4=",
                "pair 1 has an invalid header name",
            ),
            (
                "x-scope-orgid=t1,Authorization: Bearer s3cret=",
                "pair 2 has an invalid header name",
            ),
        ] {
            let err = parse_otlp_headers(raw).unwrap_err();
            assert!(err.contains(why), "{raw}: {err}");
            assert!(!err.contains("s3cret"), "{raw}: {err}");
        }
    }

    #[test]
    fn dev_starts_with_no_settings_at_all() {
        let s = load_vars(&[]).unwrap();
        assert_eq!(s.platform.app_env, Profile::Dev);
        assert_eq!(s.platform.http_addr.port(), 8081);
        assert_eq!(s.platform.log_format(), LogFormat::Pretty);
        assert!(s.database.database_url.is_some());
    }

    #[test]
    fn environment_overrides_defaults_with_typed_values() {
        let s = load_vars(&[
            ("HTTP_ADDR", "127.0.0.1:9999"),
            ("REQUEST_TIMEOUT", "250ms"),
            ("SHUTDOWN_GRACE_PERIOD", "7"),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://a.example, https://b.example",
            ),
            ("HTTP_KEEP_ALIVE", "false"),
        ])
        .unwrap();
        assert_eq!(s.platform.http_addr, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(s.platform.request_timeout, Duration::from_millis(250));
        assert_eq!(s.platform.shutdown_grace_period, Duration::from_secs(7));
        assert_eq!(
            s.platform.cors_allowed_origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert!(!s.platform.http_keep_alive);
    }

    #[test]
    fn profile_file_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("sf-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("dev.toml"),
            "request_timeout = \"3s\"\nbody_limit_bytes = 2048\n",
        )
        .unwrap();
        let s: TestSettings =
            load_from(vars(&[("BODY_LIMIT_BYTES", "4096")]), &dir, Needs::SERVE).unwrap();
        assert_eq!(s.platform.request_timeout, Duration::from_secs(3));
        assert_eq!(s.platform.body_limit_bytes, 4096);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_well_configured_prod_starts() {
        let s = load_vars(GOOD_PROD).unwrap();
        assert_eq!(s.platform.log_format(), LogFormat::Json);
    }

    #[test]
    fn prod_requires_database_and_nats_urls_and_lists_both() {
        let err = load_vars(&[("APP_ENV", "prod")]).unwrap_err();
        assert!(err.mentions("DATABASE_URL"), "{err}");
        assert!(err.mentions("NATS_URL"), "{err}");
        assert_eq!(err.problems.len(), 2, "{err}");
    }

    #[test]
    fn prod_refuses_pretty_logs() {
        let err = prod_with(&[("LOG_FORMAT", "pretty")]).unwrap_err();
        assert!(err.mentions("LOG_FORMAT"));
    }

    #[test]
    fn prod_refuses_wildcard_cors() {
        let err = prod_with(&[("CORS_ALLOWED_ORIGINS", "*")]).unwrap_err();
        assert!(err.mentions("CORS_ALLOWED_ORIGINS"));
        // dev accepts it: a local front-end on any port.
        assert!(load_vars(&[("CORS_ALLOWED_ORIGINS", "*")]).is_ok());
    }

    #[test]
    fn prod_refuses_a_database_without_password_or_with_a_default_one() {
        for url in [
            "postgres://postgres@db/auth",
            "postgres://postgres:@db/auth",
            "postgres://postgres:postgres@db/auth", // secret-scan: allow (test value)
            "postgres://app:Password@db/auth",      // secret-scan: allow (test value)
        ] {
            let err = prod_with(&[("DATABASE_URL", url)]).unwrap_err();
            assert!(err.mentions("DATABASE_URL"), "{url}: {err}");
        }
    }

    #[test]
    fn prod_refuses_auto_migrate() {
        let err = prod_with(&[("AUTO_MIGRATE", "true")]).unwrap_err();
        assert!(err.mentions("AUTO_MIGRATE"));
        assert!(load_vars(&[("AUTO_MIGRATE", "true")]).is_ok());
    }

    #[test]
    fn an_unknown_profile_is_an_error_and_judged_as_prod() {
        let err = load_vars(&[("APP_ENV", "staging")]).unwrap_err();
        assert!(err.mentions("APP_ENV"));
        assert!(err.mentions("DATABASE_URL"), "strictest rules apply: {err}");
    }

    #[test]
    fn every_type_error_is_reported_not_just_the_first() {
        let err = load_vars(&[
            ("HTTP_ADDR", "not-an-address"),
            ("REQUEST_TIMEOUT", "soon"),
            ("DB_MAX_CONNECTIONS", "-3"),
            ("LOG_FORMAT", "xml"),
        ])
        .unwrap_err();
        for setting in [
            "HTTP_ADDR",
            "REQUEST_TIMEOUT",
            "DB_MAX_CONNECTIONS",
            "LOG_FORMAT",
        ] {
            assert!(err.mentions(setting), "{setting} missing from: {err:?}");
        }
    }

    #[test]
    fn semantic_checks_report_zero_values_and_clashing_ports() {
        let err = load_vars(&[
            ("REQUEST_TIMEOUT", "0s"),
            ("BODY_LIMIT_BYTES", "0"),
            ("HTTP_ADDR", "0.0.0.0:7000"),
            ("METRICS_ADDR", "0.0.0.0:7000"),
            ("DB_MAX_CONNECTIONS", "0"),
            ("NATS_NAMESPACE", "has.dots"),
        ])
        .unwrap_err();
        for setting in [
            "REQUEST_TIMEOUT",
            "BODY_LIMIT_BYTES",
            "METRICS_ADDR",
            "DB_MAX_CONNECTIONS",
            "NATS_NAMESPACE",
        ] {
            assert!(err.mentions(setting), "{setting} missing from: {err}");
        }
    }

    #[test]
    fn secrets_can_come_from_files() {
        let path = std::env::temp_dir().join(format!("sf-secret-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "postgres://auth:0123456789@db/auth\n").unwrap(); // secret-scan: allow (test value)
        let s = prod_with(&[("DATABASE_URL_FILE", path.to_str().unwrap())]);
        // GOOD_PROD also sets DATABASE_URL: both at once is ambiguous.
        assert!(s.unwrap_err().mentions("DATABASE_URL"));

        let s = load_vars(&[
            ("APP_ENV", "prod"),
            ("NATS_URL", "nats://nats:4222"),
            ("DATABASE_URL_FILE", path.to_str().unwrap()),
        ])
        .unwrap();
        // A numeric-looking password survives as text, and the newline is gone.
        assert_eq!(
            s.database.database_url.unwrap().expose(),
            "postgres://auth:0123456789@db/auth" // secret-scan: allow (test value)
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn an_unreadable_secret_file_is_reported() {
        let err =
            load_vars(&[("APP_ENV", "prod"), ("DATABASE_URL_FILE", "/nonexistent/x")]).unwrap_err();
        assert!(err.mentions("DATABASE_URL_FILE"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = load_vars(GOOD_PROD).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn the_error_lists_every_problem_on_its_own_line() {
        let err = load_vars(&[("APP_ENV", "prod"), ("LOG_FORMAT", "pretty")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("invalid configuration (APP_ENV=prod): 3 problems"),
            "{text}"
        );
        assert_eq!(text.lines().filter(|l| l.starts_with("  - ")).count(), 3);
    }

    #[test]
    fn password_is_read_from_the_userinfo_only() {
        assert_eq!(password_of("postgres://u:p@h/db").as_deref(), Some("p"));
        assert_eq!(password_of("postgres://u@h/db"), None);
        assert_eq!(
            password_of("postgres://u:p:q@h/db?x=@").as_deref(), // secret-scan: allow (test value)
            Some("p:q")
        );
    }

    #[test]
    fn every_default_written_as_text_loads_back() {
        checks::assert_defaults_round_trip::<TestSettings>();
    }

    #[test]
    fn a_fractional_sampler_ratio_given_as_text_is_read() {
        let s = load_vars(&[("APP_ENV", "test"), ("OTEL_TRACES_SAMPLER_ARG", "0.1")]).unwrap();
        assert_eq!(s.platform.otel_traces_sampler_arg, 0.1);
        let s = load_vars(&[("OTEL_TRACES_SAMPLER_ARG", "1")]).unwrap();
        assert_eq!(s.platform.otel_traces_sampler_arg, 1.0);
        let s = load_vars(&[("OTEL_TRACES_SAMPLER_ARG", "5e-2")]).unwrap();
        assert_eq!(s.platform.otel_traces_sampler_arg, 0.05);
        let err = load_vars(&[("OTEL_TRACES_SAMPLER_ARG", "1.5")]).unwrap_err();
        assert!(err.mentions("OTEL_TRACES_SAMPLER_ARG"), "{err}");
        let err = load_vars(&[("OTEL_TRACES_SAMPLER_ARG", "NaN")]).unwrap_err();
        assert!(err.mentions("OTEL_TRACES_SAMPLER_ARG"), "{err}");
    }

    #[test]
    fn a_text_setting_that_looks_like_a_number_keeps_its_text() {
        let s = load_vars(&[
            ("OTEL_SERVICE_NAME", "2024"),
            ("RELEASE", "1.50"),
            ("NATS_NAMESPACE", "true"),
        ])
        .unwrap();
        assert_eq!(s.platform.otel_service_name.as_deref(), Some("2024"));
        assert_eq!(s.release, "1.50");
        assert_eq!(s.nats.nats_namespace, "true");
        // ... and a numeric setting given words is still named.
        let err =
            load_vars(&[("OTEL_SERVICE_NAME", "7"), ("BODY_LIMIT_BYTES", "lots")]).unwrap_err();
        assert!(
            err.mentions("BODY_LIMIT_BYTES") && !err.mentions("OTEL_SERVICE_NAME"),
            "{err}"
        );
    }

    #[test]
    fn secrets_reach_their_field_as_the_exact_text_given() {
        for raw in [
            "0123",
            "1.50",
            "1e3",
            "-0",
            "true",
            "00000000000000000000000000000042",
        ] {
            let s = load_vars(&[("API_TOKEN", raw)]).unwrap();
            assert_eq!(s.api_token.unwrap().expose(), raw);
            // A platform secret too (OTEL_EXPORTER_OTLP_HEADERS is `key=value` pairs).
            let header = format!("x-token={raw}");
            let s = load_vars(&[("OTEL_EXPORTER_OTLP_HEADERS", header.as_str())]).unwrap();
            assert_eq!(
                s.platform.otel_exporter_otlp_headers.unwrap().expose(),
                header
            );
        }
    }

    #[test]
    fn platform_secrets_come_from_files_for_every_service() {
        let dir = std::env::temp_dir().join(format!("sf-secrets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let dsn = "https://0123abcd@o1.ingest.sentry.io/42"; // secret-scan: allow (test value)
        std::fs::write(dir.join("dsn"), format!("{dsn}\n")).unwrap();
        std::fs::write(dir.join("headers"), "authorization=Bearer 0123\n").unwrap();
        let s = load_vars(&[
            ("SENTRY_DSN_FILE", dir.join("dsn").to_str().unwrap()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS_FILE",
                dir.join("headers").to_str().unwrap(),
            ),
        ])
        .unwrap();
        assert_eq!(
            s.platform.sentry_dsn.as_ref().map(Secret::expose),
            Some(dsn)
        );
        // The DSN carries the project's key: it never reaches a log line.
        assert!(!format!("{s:?}").contains("0123abcd"));
        assert_eq!(
            s.platform.otel_exporter_otlp_headers.unwrap().expose(),
            "authorization=Bearer 0123"
        );
        let err = load_vars(&[
            ("SENTRY_DSN", dsn),
            ("SENTRY_DSN_FILE", dir.join("dsn").to_str().unwrap()),
        ])
        .unwrap_err();
        assert!(err.mentions("SENTRY_DSN"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_command_is_judged_only_by_the_settings_it_needs() {
        let db: &[(&str, &str)] = &[
            ("APP_ENV", "prod"),
            ("LOG_FORMAT", "json"),
            ("DATABASE_URL", "postgres://auth:s3cr3t-Long@db:5432/auth"), // secret-scan: allow (test value)
        ];
        let load = |pairs: &[(&str, &str)], needs| {
            load_from::<TestSettings>(vars(pairs), Path::new("/nonexistent"), needs)
        };
        assert!(load(db, Needs::DATABASE).is_ok());
        let err = load(db, Needs::SERVE).unwrap_err();
        assert!(err.mentions("NATS_URL"), "{err}");
        let err = load(db, Needs::DATABASE.and(Needs::NATS)).unwrap_err();
        assert!(err.mentions("NATS_URL"), "{err}");

        let nats = &[("APP_ENV", "prod"), ("NATS_URL", "nats://nats:4222")];
        assert!(load(nats, Needs::NATS).is_ok());
        assert!(
            load(nats, Needs::DATABASE)
                .unwrap_err()
                .mentions("DATABASE_URL")
        );

        // Serving settings count only for serve; the basics and any given value count always.
        let mut odd = db.to_vec();
        odd.extend([("CORS_ALLOWED_ORIGINS", "*"), ("BODY_LIMIT_BYTES", "0")]);
        assert!(load(&odd, Needs::DATABASE).is_ok());
        let err = load(&odd, Needs::SERVE).unwrap_err();
        assert!(err.mentions("CORS_ALLOWED_ORIGINS") && err.mentions("BODY_LIMIT_BYTES"));
        for bad in [
            ("LOG_FORMAT", "pretty"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("HTTP_ADDR", "x"),
        ] {
            let mut pairs = db.to_vec();
            pairs.retain(|(k, _)| *k != bad.0);
            pairs.push(bad);
            assert!(
                load(&pairs, Needs::DATABASE).unwrap_err().mentions(bad.0),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn needs_combine_and_serve_has_every_part() {
        let part = Needs::service_part(3);
        assert!(Needs::SERVE.has(part) && Needs::SERVE.has(Needs::DATABASE));
        assert!(Needs::DATABASE.and(part).has(part));
        assert!(!Needs::DATABASE.has(part) && !Needs::BASICS.has(Needs::DATABASE));
        assert!(!Needs::DATABASE.and(Needs::NATS).and(part).has(Needs::SERVE));
        assert!(Needs::BASICS.has(Needs::BASICS));
    }

    #[test]
    fn otlp_headers_are_checked_at_load_without_echoing_them() {
        let s = load_vars(&[(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Basic%20dXNlcjpwYXNz,x-scope-orgid=shop",
        )]);
        assert!(s.is_ok(), "{:?}", s.err());
        for bad in [
            "authorization",
            "authorization=Basic%2",
            "bad key=s3cr3t-value",
        ] {
            let err = load_vars(&[("OTEL_EXPORTER_OTLP_HEADERS", bad)]).unwrap_err();
            assert!(err.mentions("OTEL_EXPORTER_OTLP_HEADERS"), "{bad}: {err}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
    }
}
