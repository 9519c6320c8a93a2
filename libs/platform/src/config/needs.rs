//! What a command needs ([`Needs`]) and what a service tells the loader about its settings
//! ([`ServiceSettings`]).

use figment::value::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{PlatformSettings, Problems, Profile};

/// What a command uses, and so which settings it needs: the one way a binary says so.
///
/// `main` picks the value for its subcommand and passes it to `platform::boot` (which hands it to
/// [`load`](super::load) and on to [`ServiceSettings::validate`]). The platform basics (`APP_ENV`,
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
/// In `validate`, a service checks a part's settings when `needs.has(part)`: [`DatabaseSettings`](super::DatabaseSettings)
/// under [`Needs::DATABASE`], [`NatsSettings`](super::NatsSettings) under [`Needs::NATS`], and settings that only
/// serving uses (listeners, tokens, rate limits, cursors…) under [`Needs::SERVE`]. A value that
/// *is* given must still parse, whatever the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs(u32);

impl Needs {
    /// The platform basics only.
    pub const BASICS: Needs = Needs(0);
    /// The service's PostgreSQL database ([`DatabaseSettings`](super::DatabaseSettings)).
    pub const DATABASE: Needs = Needs(1);
    /// NATS ([`NatsSettings`](super::NatsSettings)).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_combine_and_serve_has_every_part() {
        let part = Needs::service_part(3);
        assert!(Needs::SERVE.has(part) && Needs::SERVE.has(Needs::DATABASE));
        assert!(Needs::DATABASE.and(part).has(part));
        assert!(!Needs::DATABASE.has(part) && !Needs::BASICS.has(Needs::DATABASE));
        assert!(!Needs::DATABASE.and(Needs::NATS).and(part).has(Needs::SERVE));
        assert!(Needs::BASICS.has(Needs::BASICS));
    }
}
