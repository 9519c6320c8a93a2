//! Settings of `catalog-order`: the platform's, its database, NATS, cursors, token verification,
//! its write rate limit and how long finished data is kept. See the README's settings table.

use std::time::Duration;

use authn::settings::VerifierSettings;
use platform::cache::CacheSettings;
use platform::config::{
    DatabaseSettings, NatsSettings, Needs, PlatformSettings, Problems, Profile, ServiceSettings,
};
use platform::pagination::CursorSettings;
use platform::replica::ReplicaSettings;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub platform: PlatformSettings,
    #[serde(flatten)]
    pub database: DatabaseSettings,
    /// Public catalog reads from a streaming replica (`DATABASE_READ_URL`).
    #[serde(flatten)]
    pub replica: ReplicaSettings,
    #[serde(flatten)]
    pub nats: NatsSettings,
    #[serde(flatten)]
    pub cursors: CursorSettings,
    #[serde(flatten)]
    pub tokens: VerifierSettings,
    /// Mutations (POST/PUT/PATCH/DELETE) per signed-in user.
    pub rate_limit_write_per_minute: u32,
    pub rate_limit_write_burst: u32,
    /// Pending (unpaid) orders older than this are cancelled and restocked by the scheduled
    /// `catalog.expire_orders` job.
    #[serde(with = "platform::config::duration")]
    pub order_payment_timeout: Duration,
    /// Refuse orders (403) from accounts whose address is not verified (the token's
    /// `email_verified` claim; docs/auth.md).
    pub orders_require_verified_email: bool,
    #[serde(flatten)]
    pub retention: Retention,
    #[serde(flatten)]
    pub search: SearchSettings,
    /// The public catalog reads kept in process and their HTTP caching headers.
    #[serde(flatten)]
    pub cache: CacheSettings,
    /// The payment provider and its webhooks.
    #[serde(flatten)]
    pub payments: crate::payments::PaymentSettings,
}

/// How the catalog is searched (docs/design.md, "Search").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchSettings {
    /// The language whose stemming and stop words the text search uses: a PostgreSQL text
    /// search dictionary `<language>_stem` (`english`, `german`, `french`, …) or `simple` (no
    /// stemming). `migrate up` applies it, rewriting every item's search vector when it changed.
    pub search_language: String,
    /// Whether accents are ignored (`creme` finds "Crème"); applied with the language.
    pub search_unaccent: bool,
    /// Matches a search sorts or ranks in full (see `store::items::page_query`); the bound of
    /// its cost. Relevance ranks the first this many found; facets count this many at most.
    pub search_candidates: u32,
}

impl Default for SearchSettings {
    fn default() -> Self {
        SearchSettings {
            search_language: "english".into(),
            search_unaccent: true,
            search_candidates: crate::store::items::Candidates::default().0,
        }
    }
}

impl SearchSettings {
    fn validate(&self, problems: &mut Problems) {
        // A dictionary name, checked against the database by `migrate up`; here only its form.
        if self.search_language.is_empty()
            || !self
                .search_language
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
        {
            problems.add(
                "SEARCH_LANGUAGE",
                "must be a PostgreSQL text search language in lower case, such as english or simple",
            );
        }
        if !(100..=100_000).contains(&self.search_candidates) {
            problems.add("SEARCH_CANDIDATES", "must be between 100 and 100000");
        }
    }

    pub fn config(&self) -> crate::store::search::SearchConfig {
        crate::store::search::SearchConfig {
            language: self.search_language.clone(),
            unaccent: self.search_unaccent,
        }
    }

    pub fn candidates(&self) -> crate::store::items::Candidates {
        crate::store::items::Candidates(self.search_candidates)
    }
}

/// How long finished data is kept before the scheduled purges delete it (`catalog.purge_jobs`,
/// `catalog.purge_idempotency_keys`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Retention {
    /// Jobs with a final status (succeeded, dead), counted from when they finished. Their
    /// payloads hold e-mail addresses and order lines.
    #[serde(with = "platform::config::duration")]
    pub retention_jobs: Duration,
    /// Applied job events (the inbox), counted from their arrival; at least as long as the events
    /// stream keeps an event, which may be delivered again until then.
    #[serde(with = "platform::config::duration")]
    pub retention_job_events: Duration,
    /// `Idempotency-Key`s, counted from their first use; at least their replay window (24 h).
    #[serde(with = "platform::config::duration")]
    pub retention_idempotency_keys: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            retention_jobs: Duration::from_secs(30 * 24 * 3600),
            retention_job_events: jobs::topology::EVENTS_MAX_AGE,
            retention_idempotency_keys: crate::store::idempotency::REPLAY_WINDOW,
        }
    }
}

impl Retention {
    fn validate(&self, problems: &mut Problems) {
        if self.retention_jobs.is_zero() {
            problems.add("RETENTION_JOBS", "must be greater than zero");
        }
        if self.retention_job_events < jobs::topology::EVENTS_MAX_AGE {
            problems.add(
                "RETENTION_JOB_EVENTS",
                "must be at least 7d: the events stream keeps an event (and may deliver it again) that long",
            );
        }
        if self.retention_idempotency_keys < crate::store::idempotency::REPLAY_WINDOW {
            problems.add(
                "RETENTION_IDEMPOTENCY_KEYS",
                "must be at least 1d: a key replays its answer for 24 h",
            );
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            platform: PlatformSettings::with_ports(8082, 9182),
            database: DatabaseSettings::default(),
            replica: ReplicaSettings::default(),
            nats: NatsSettings::default(),
            cursors: CursorSettings::default(),
            tokens: VerifierSettings::default(),
            rate_limit_write_per_minute: 120,
            rate_limit_write_burst: 30,
            order_payment_timeout: Duration::from_secs(30 * 60),
            orders_require_verified_email: false,
            retention: Retention::default(),
            search: SearchSettings::default(),
            cache: CacheSettings::default(),
            payments: crate::payments::PaymentSettings::default(),
        }
    }
}

impl ServiceSettings for Settings {
    const SECRETS: &'static [&'static str] = &[
        "DATABASE_URL",
        "DATABASE_READ_URL",
        "NATS_URL",
        "CURSOR_SECRET",
        "PAYMENT_WEBHOOK_SECRETS",
        "PAYMENT_GATEWAY_API_KEY",
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
                    "postgres://postgres@127.0.0.1:5432/catalog".into(),
                ),
                ("nats_url", "nats://127.0.0.1:4222".into()),
                (
                    "auth_jwks_url",
                    "http://127.0.0.1:8081/.well-known/jwks.json".into(),
                ),
                (
                    "payment_webhook_secrets",
                    crate::payments::DEV_WEBHOOK_SECRET.into(),
                ),
            ],
        }
    }

    fn validate(&self, needs: Needs, problems: &mut Problems) {
        let profile = self.platform.app_env;
        self.platform.validate(needs, problems);
        if needs.has(Needs::DATABASE) {
            self.database.validate(profile, problems);
            self.replica.validate(profile, problems);
            self.search.validate(problems);
        }
        if needs.has(Needs::NATS) {
            self.nats.validate(problems);
        }
        if !needs.has(Needs::SERVE) {
            return;
        }
        self.cursors.validate(profile, problems);
        self.tokens.validate(profile, problems);
        if self.rate_limit_write_per_minute == 0 || self.rate_limit_write_burst == 0 {
            problems.add(
                "RATE_LIMIT_WRITE_PER_MINUTE",
                "rate and burst must be positive",
            );
        }
        if self.order_payment_timeout < Duration::from_secs(60) {
            problems.add("ORDER_PAYMENT_TIMEOUT", "must be at least 1m");
        }
        self.retention.validate(problems);
        self.cache.validate(problems);
        self.payments.validate(profile, problems);
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
    fn retention_is_read_as_durations_and_refused_below_its_floors() {
        let s: Settings = testkit::settings::load_test_settings(&[
            ("RETENTION_JOBS", "90d"),
            ("RETENTION_JOB_EVENTS", "14d"),
            ("RETENTION_IDEMPOTENCY_KEYS", "48h"),
        ]);
        assert_eq!(
            s.retention.retention_jobs,
            Duration::from_secs(90 * 24 * 3600)
        );
        assert_eq!(
            s.retention.retention_job_events,
            Duration::from_secs(14 * 24 * 3600)
        );
        assert_eq!(
            s.retention.retention_idempotency_keys,
            Duration::from_secs(48 * 3600)
        );

        let refused = platform::config::load_from::<Settings>(
            [
                ("APP_ENV", "test"),
                ("RETENTION_JOBS", "0s"),
                ("RETENTION_JOB_EVENTS", "1d"),
                ("RETENTION_IDEMPOTENCY_KEYS", "1h"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            std::path::Path::new("/nonexistent"),
            Needs::SERVE,
        )
        .unwrap_err();
        for name in [
            "RETENTION_JOBS",
            "RETENTION_JOB_EVENTS",
            "RETENTION_IDEMPOTENCY_KEYS",
        ] {
            assert!(refused.mentions(name), "{name} not refused: {refused}");
        }
    }

    #[test]
    fn a_fractional_sampler_ratio_given_as_text_is_read() {
        let s: Settings =
            testkit::settings::load_test_settings(&[("OTEL_TRACES_SAMPLER_ARG", "0.1")]);
        assert_eq!(s.platform.otel_traces_sampler_arg, 0.1);
    }
}
