//! Settings of `auth`: the platform's, its database, NATS, cursors and its own (below). See the
//! README's settings table.

use std::time::Duration;

use platform::config::{
    DatabaseSettings, NatsSettings, Needs, PlatformSettings, Problems, Profile, Secret,
    ServiceSettings, duration,
};
use platform::pagination::CursorSettings;
use serde::{Deserialize, Serialize};

use crate::domain::LinkBase;
use crate::keys::SigningKeys;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub platform: PlatformSettings,
    #[serde(flatten)]
    pub database: DatabaseSettings,
    #[serde(flatten)]
    pub nats: NatsSettings,
    #[serde(flatten)]
    pub cursors: CursorSettings,
    #[serde(flatten)]
    pub auth: AuthSettings,
    #[serde(flatten)]
    pub retention: Retention,
}

/// How long ended sessions, idle login counters and published events are kept before the scheduled
/// `auth.purge_sessions` (or `auth purge-sessions`) deletes them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Retention {
    /// Sessions, counted from when they expired or were revoked; at least `ACCESS_TOKEN_TTL`
    /// (logout-all re-broadcasts the sessions revoked within a token's lifetime).
    #[serde(with = "duration")]
    pub retention_sessions: Duration,
    /// Failed-login counters, counted from the last failure (a running lock is always kept).
    #[serde(with = "duration")]
    pub retention_login_counters: Duration,
    /// Published rows of the outboxes (`event_outbox`, and `job_outbox`, whose e-mail jobs have
    /// lost their links by then), counted from their publication; at least
    /// [`RETENTION_EVENTS_OUTBOX_MIN`]. Unpublished ones are never deleted.
    #[serde(with = "duration")]
    pub retention_events_outbox: Duration,
}

/// Published events stay at least this long, to look into what was announced recently (the
/// events stream keeps its own copy; auth never publishes a row twice once it is marked).
pub const RETENTION_EVENTS_OUTBOX_MIN: Duration = Duration::from_secs(3600);

impl Default for Retention {
    fn default() -> Self {
        Retention {
            retention_sessions: Duration::from_secs(24 * 3600),
            retention_login_counters: Duration::from_secs(24 * 3600),
            retention_events_outbox: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Retention {
    fn validate(&self, access_token_ttl: Duration, problems: &mut Problems) {
        if self.retention_sessions.is_zero() || self.retention_sessions < access_token_ttl {
            problems.add(
                "RETENTION_SESSIONS",
                "must be greater than zero and at least ACCESS_TOKEN_TTL: logout-all re-announces \
                 the sessions revoked within a token's lifetime",
            );
        }
        if self.retention_login_counters.is_zero() {
            problems.add("RETENTION_LOGIN_COUNTERS", "must be greater than zero");
        }
        if self.retention_events_outbox < RETENTION_EVENTS_OUTBOX_MIN {
            problems.add("RETENTION_EVENTS_OUTBOX", "must be at least 1h");
        }
    }
}

/// The argon2 settings: what a command that hashes passwords needs besides the database
/// (`create-admin`); `serve` has it too.
pub const PASSWORD_HASHING: Needs = Needs::service_part(0);

/// The owner of a slowed-down account must still get in within a request's time.
pub const LOGIN_ACCOUNT_MAX_DELAY_CAP: Duration = Duration::from_secs(5);

/// OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane).
pub const OWASP_ARGON2_MEMORY_KIB: u32 = 19_456;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthSettings {
    /// Ed25519 private keys, PKCS#8 PEM, newest first: the first signs, all verify (JWKS).
    pub auth_signing_keys: Option<Secret>,
    /// `iss` of issued tokens; verifiers require it.
    pub auth_issuer: String,
    /// `aud` of issued tokens; verifiers require it.
    pub auth_audience: String,
    #[serde(with = "duration")]
    pub access_token_ttl: Duration,
    /// Idle lifetime of a session: every refresh pushes it forward by this much.
    #[serde(with = "duration")]
    pub refresh_token_ttl: Duration,
    /// Absolute lifetime of a session, however often it is refreshed.
    #[serde(with = "duration")]
    pub session_max_age: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Login, register and refresh requests per client IP.
    pub rate_limit_auth_per_minute: u32,
    pub rate_limit_auth_burst: u32,
    /// Failed logins for one email from one client address before that address must wait
    /// (doubling, ≤ 15 min); the same number from any addresses starts the email's slow-down.
    pub login_max_failures: u32,
    /// Longest delay the per-email slow-down adds to a login attempt (doubling from 250 ms).
    #[serde(with = "duration")]
    pub login_account_max_delay: Duration,
    /// Where the links of account e-mails point: the site's pages `verify-email` and
    /// `reset-password` under it take the `token` query parameter. Required in prod (https);
    /// elsewhere it defaults to [`DEV_LINK_BASE`].
    pub account_link_base_url: Option<String>,
}

/// The link base outside prod when none is set (the dev stack's front door).
pub const DEV_LINK_BASE: &str = "http://localhost:8080";

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            auth_signing_keys: None,
            auth_issuer: "storefront-auth".into(),
            auth_audience: "storefront".into(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(14 * 24 * 3600),
            session_max_age: Duration::from_secs(90 * 24 * 3600),
            argon2_memory_kib: OWASP_ARGON2_MEMORY_KIB,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            rate_limit_auth_per_minute: 30,
            rate_limit_auth_burst: 10,
            login_max_failures: 5,
            login_account_max_delay: Duration::from_secs(2),
            account_link_base_url: None,
        }
    }
}

impl AuthSettings {
    /// The argon2 settings under [`PASSWORD_HASHING`], the rest under [`Needs::SERVE`].
    pub fn validate(&self, profile: Profile, needs: Needs, problems: &mut Problems) {
        if needs.has(PASSWORD_HASHING) {
            self.validate_password_hashing(profile, problems);
        }
        if !needs.has(Needs::SERVE) {
            return;
        }
        match &self.auth_signing_keys {
            None if profile == Profile::Prod => problems.add(
                "AUTH_SIGNING_KEYS",
                "is required in prod (Ed25519 PKCS#8 PEM, newest first; see docs/auth.md)",
            ),
            None => {}
            Some(pem) => {
                if let Err(e) = SigningKeys::from_pem_list(pem.expose()) {
                    problems.add("AUTH_SIGNING_KEYS", e);
                }
            }
        }
        for (name, ttl) in [
            ("ACCESS_TOKEN_TTL", self.access_token_ttl),
            ("REFRESH_TOKEN_TTL", self.refresh_token_ttl),
            ("SESSION_MAX_AGE", self.session_max_age),
        ] {
            if ttl.is_zero() {
                problems.add(name, "must be greater than zero");
            }
        }
        if self.access_token_ttl > Duration::from_secs(3600) {
            problems.add(
                "ACCESS_TOKEN_TTL",
                "must be at most 1h: access tokens cannot be recalled once issued",
            );
        }
        if self.refresh_token_ttl > self.session_max_age {
            problems.add("REFRESH_TOKEN_TTL", "must not exceed SESSION_MAX_AGE");
        }
        if self.rate_limit_auth_per_minute == 0 || self.rate_limit_auth_burst == 0 {
            problems.add(
                "RATE_LIMIT_AUTH_PER_MINUTE",
                "rate and burst must be positive",
            );
        }
        if self.login_max_failures == 0 {
            problems.add("LOGIN_MAX_FAILURES", "must be greater than zero");
        }
        if self.login_account_max_delay > LOGIN_ACCOUNT_MAX_DELAY_CAP {
            problems.add(
                "LOGIN_ACCOUNT_MAX_DELAY",
                "must be at most 5s: a slowed login must still answer well within the request timeout",
            );
        }
        self.validate_link_base(profile, problems);
    }

    /// The link base of account e-mails (validated at load; see `account_link_base_url`).
    pub fn link_base(&self) -> Result<LinkBase, String> {
        LinkBase::parse(
            self.account_link_base_url
                .as_deref()
                .unwrap_or(DEV_LINK_BASE),
        )
    }

    fn validate_link_base(&self, profile: Profile, problems: &mut Problems) {
        let name = "ACCOUNT_LINK_BASE_URL";
        match (&self.account_link_base_url, profile) {
            // A link to a developer's machine in a customer's inbox would be a broken account.
            (None, Profile::Prod) => problems.add(
                name,
                "is required in prod: the public https:// address of the site whose pages \
                 verify-email and reset-password take the e-mails' tokens",
            ),
            (None, _) => {}
            (Some(_), _) => match self.link_base() {
                Err(e) => problems.add(name, e),
                Ok(base) if profile == Profile::Prod && !base.is_https() => problems.add(
                    name,
                    "must be https:// in prod: the links carry tokens that open the account",
                ),
                Ok(_) => {}
            },
        }
    }

    fn validate_password_hashing(&self, profile: Profile, problems: &mut Problems) {
        if argon2::Params::new(
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
            None,
        )
        .is_err()
        {
            problems.add("ARGON2_MEMORY_KIB", "argon2 parameters are invalid");
        }
        if profile == Profile::Prod
            && (self.argon2_memory_kib < OWASP_ARGON2_MEMORY_KIB || self.argon2_iterations < 2)
        {
            problems.add(
                "ARGON2_MEMORY_KIB",
                "prod needs at least OWASP's argon2id parameters (19456 KiB, 2 iterations)",
            );
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            platform: PlatformSettings::with_ports(8081, 9181),
            database: DatabaseSettings::default(),
            nats: NatsSettings::default(),
            cursors: CursorSettings::default(),
            auth: AuthSettings::default(),
            retention: Retention::default(),
        }
    }
}

impl ServiceSettings for Settings {
    const SECRETS: &'static [&'static str] = &[
        "DATABASE_URL",
        "NATS_URL",
        "AUTH_SIGNING_KEYS",
        "CURSOR_SECRET",
    ];

    fn platform(&self) -> &PlatformSettings {
        &self.platform
    }

    fn profile_defaults(profile: Profile) -> Vec<(&'static str, figment::value::Value)> {
        match profile {
            // Prod has no defaults for where its data lives: it must be told.
            Profile::Prod => Vec::new(),
            Profile::Dev | Profile::Test => vec![
                (
                    "database_url",
                    "postgres://postgres@127.0.0.1:5432/auth".into(),
                ),
                ("nats_url", "nats://127.0.0.1:4222".into()),
            ],
        }
    }

    fn validate(&self, needs: Needs, problems: &mut Problems) {
        let profile = self.platform.app_env;
        self.platform.validate(needs, problems);
        if needs.has(Needs::DATABASE) {
            self.database.validate(profile, problems);
        }
        if needs.has(Needs::NATS) {
            self.nats.validate(problems);
        }
        if needs.has(Needs::SERVE) {
            self.cursors.validate(profile, problems);
        }
        if needs.has(Needs::DATABASE) {
            self.retention
                .validate(self.auth.access_token_ttl, problems);
        }
        self.auth.validate(profile, needs, problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_written_as_text_loads_back() {
        testkit::settings::assert_defaults_round_trip::<Settings>();
    }

    #[test]
    fn retention_is_read_as_durations_and_refused_when_zero_or_under_a_token_lifetime() {
        let s: Settings = testkit::settings::load_test_settings(&[
            ("RETENTION_SESSIONS", "30d"),
            ("RETENTION_LOGIN_COUNTERS", "6h"),
            ("RETENTION_EVENTS_OUTBOX", "30d"),
        ]);
        assert_eq!(
            s.retention.retention_events_outbox,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert_eq!(
            s.retention.retention_sessions,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert_eq!(
            s.retention.retention_login_counters,
            Duration::from_secs(6 * 3600)
        );
        let refused = platform::config::load_from::<Settings>(
            [
                ("APP_ENV", "test"),
                ("RETENTION_SESSIONS", "5m"),
                ("RETENTION_LOGIN_COUNTERS", "0s"),
                ("RETENTION_EVENTS_OUTBOX", "30m"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            std::path::Path::new("/nonexistent"),
            Needs::SERVE,
        )
        .unwrap_err();
        assert!(refused.mentions("RETENTION_SESSIONS"), "{refused}");
        assert!(refused.mentions("RETENTION_LOGIN_COUNTERS"), "{refused}");
        assert!(refused.mentions("RETENTION_EVENTS_OUTBOX"), "{refused}");
    }

    #[test]
    fn the_link_base_defaults_outside_prod_and_must_be_https_in_prod() {
        let dev: Settings = testkit::settings::load_test_settings(&[]);
        assert_eq!(
            dev.auth.link_base().unwrap(),
            LinkBase::parse(DEV_LINK_BASE).unwrap()
        );
        let set: Settings = testkit::settings::load_test_settings(&[(
            "ACCOUNT_LINK_BASE_URL",
            "https://shop.example.com/",
        )]);
        assert_eq!(
            set.auth.link_base().unwrap(),
            LinkBase::parse("https://shop.example.com").unwrap()
        );
        for (value, in_prod) in [
            (None, true),
            (Some("http://shop.example.com"), true),
            (Some("shop.example.com"), false),
        ] {
            let auth = AuthSettings {
                account_link_base_url: value.map(str::to_owned),
                ..AuthSettings::default()
            };
            let mut problems = Problems::default();
            let profile = if in_prod { Profile::Prod } else { Profile::Dev };
            auth.validate_link_base(profile, &mut problems);
            assert!(!problems.is_empty(), "{value:?} was accepted");
        }
    }

    #[test]
    fn a_fractional_sampler_ratio_and_numeric_looking_secrets_are_read() {
        let s: Settings = testkit::settings::load_test_settings(&[
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
            ("CURSOR_SECRET", "0123"),
        ]);
        assert_eq!(s.platform.otel_traces_sampler_arg, 0.1);
        assert_eq!(s.cursors.cursor_secret.unwrap().expose(), "0123");
    }
}
