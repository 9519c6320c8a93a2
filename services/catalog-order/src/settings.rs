//! Settings of `catalog-order`: the platform's, its database, NATS, cursors, token verification
//! and its write rate limit. See the README's settings table.

use authn::settings::VerifierSettings;
use platform::config::{
    DatabaseSettings, NatsSettings, Needs, PlatformSettings, Problems, Profile, ServiceSettings,
};
use platform::pagination::CursorSettings;
use serde::{Deserialize, Serialize};

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
    pub tokens: VerifierSettings,
    /// Mutations (POST/PUT/PATCH/DELETE) per signed-in user.
    pub rate_limit_write_per_minute: u32,
    pub rate_limit_write_burst: u32,
    /// Pending (unpaid) orders older than this are cancelled and restocked by the scheduled
    /// `catalog.expire_orders` job.
    #[serde(with = "platform::config::duration")]
    pub order_payment_timeout: std::time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            platform: PlatformSettings::with_ports(8082, 9182),
            database: DatabaseSettings::default(),
            nats: NatsSettings::default(),
            cursors: CursorSettings::default(),
            tokens: VerifierSettings::default(),
            rate_limit_write_per_minute: 120,
            rate_limit_write_burst: 30,
            order_payment_timeout: std::time::Duration::from_secs(30 * 60),
        }
    }
}

impl ServiceSettings for Settings {
    const SECRETS: &'static [&'static str] = &["DATABASE_URL", "NATS_URL", "CURSOR_SECRET"];

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
        if self.order_payment_timeout < std::time::Duration::from_secs(60) {
            problems.add("ORDER_PAYMENT_TIMEOUT", "must be at least 1m");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_written_as_text_loads_back() {
        platform::config::checks::assert_defaults_round_trip::<Settings>();
    }

    #[test]
    fn a_fractional_sampler_ratio_given_as_text_is_read() {
        let s: Settings =
            platform::config::checks::load_test_settings(&[("OTEL_TRACES_SAMPLER_ARG", "0.1")]);
        assert_eq!(s.platform.otel_traces_sampler_arg, 0.1);
    }
}
