//! The loader and the shared settings' rules, through a service's settings made of all three
//! parts and a few fields of its own.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use figment::value::Value;
use serde::{Deserialize, Serialize};

use super::*;

mod loading;
mod rules;

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
