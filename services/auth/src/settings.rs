//! Settings of `auth`: the platform's, plus its database and NATS. See README's settings table.

use platform::config::{
    DatabaseSettings, NatsSettings, PlatformSettings, Problems, Profile, ServiceSettings,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub platform: PlatformSettings,
    #[serde(flatten)]
    pub database: DatabaseSettings,
    #[serde(flatten)]
    pub nats: NatsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            platform: PlatformSettings::with_ports(8081, 9181),
            database: DatabaseSettings::default(),
            nats: NatsSettings::default(),
        }
    }
}

impl ServiceSettings for Settings {
    const SECRETS: &'static [&'static str] = &["DATABASE_URL", "NATS_URL"];

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

    fn validate(&self, problems: &mut Problems) {
        self.platform.validate(problems);
        self.database.validate(self.platform.app_env, problems);
        self.nats.validate(problems);
    }
}
