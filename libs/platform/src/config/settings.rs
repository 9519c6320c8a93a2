//! The settings every service shares: the platform's (listeners, HTTP limits, logs, telemetry),
//! a database's and NATS', each with its defaults and the checks of its values.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    LogFormat, Namespace, Needs, Problems, Profile, Secret, comma_list, duration,
    parse_otlp_headers,
};

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
    /// The longest a statement of the service may run (PostgreSQL's `statement_timeout` on every
    /// pooled connection); 0 for none. A last guard: a query that would run longer is cancelled
    /// and the request answered 503. `migrate` is not bound by it.
    #[serde(with = "duration")]
    pub db_statement_timeout: Duration,
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
pub(crate) fn password_of(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    // Percent-encoded in the URL (`p%40ss`); the password itself is what is judged.
    let password = percent_encoding::percent_decode_str(url.password()?).decode_utf8_lossy();
    Some(password.into_owned())
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
            db_statement_timeout: Duration::from_secs(5),
            auto_migrate: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_read_from_the_userinfo_only() {
        assert_eq!(password_of("postgres://u:p@h/db").as_deref(), Some("p"));
        assert_eq!(password_of("postgres://u@h/db"), None);
        assert_eq!(
            password_of("postgres://u:p:q@h/db?x=@").as_deref(), // secret-scan: allow (test value)
            Some("p:q")
        );
        assert_eq!(
            password_of("postgres://u:pass%40word@h/db").as_deref(), // secret-scan: allow (test value)
            Some("pass@word")
        );
    }
}
