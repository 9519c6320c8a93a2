//! Settings of `worker`: the platform's, plus NATS. See README's settings table.

use platform::config::{NatsSettings, PlatformSettings, Problems, Profile, ServiceSettings};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub platform: PlatformSettings,
    #[serde(flatten)]
    pub nats: NatsSettings,
    /// How e-mail leaves: `log` (writes it to the log; SMTP comes with lettre).
    pub email_transport: String,
    /// Sender name in e-mails.
    pub email_from: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            platform: PlatformSettings::with_ports(8083, 9183),
            nats: NatsSettings::default(),
            email_transport: "log".into(),
            email_from: "Storefront".into(),
        }
    }
}

impl ServiceSettings for Settings {
    const SECRETS: &'static [&'static str] = &["NATS_URL"];

    fn platform(&self) -> &PlatformSettings {
        &self.platform
    }

    fn profile_defaults(profile: Profile) -> Vec<(&'static str, figment::value::Value)> {
        match profile {
            Profile::Prod => Vec::new(),
            Profile::Dev | Profile::Test => vec![("nats_url", "nats://127.0.0.1:4222".into())],
        }
    }

    fn validate(&self, problems: &mut Problems) {
        self.platform.validate(problems);
        self.nats.validate(problems);
        if self.email_transport != "log" {
            problems.add(
                "EMAIL_TRANSPORT",
                "must be `log` (SMTP is not available yet)",
            );
        }
    }
}
