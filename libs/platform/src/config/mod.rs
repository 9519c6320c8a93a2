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
//!
//! One file per idea: `values.rs` (profile, log format, [`Secret`], [`duration`], [`comma_list`],
//! the OTLP headers), `namespace.rs` ([`Namespace`]), `settings.rs` (the shared settings and their
//! checks), `needs.rs` ([`Needs`], [`ServiceSettings`]), `problems.rs` ([`Problems`],
//! [`ConfigError`]), `load.rs` (the loader). Everything is named from here, `platform::config::X`.
//! The checks a service's tests run on its settings are in `testkit::settings`.

mod load;
mod namespace;
mod needs;
mod problems;
mod settings;
mod values;

pub use load::{as_environment, load, load_from};
pub use namespace::{InvalidNamespace, Namespace};
pub use needs::{Needs, PLATFORM_SECRETS, ServiceSettings};
pub use problems::{ConfigError, Problems, SettingProblem};
pub(crate) use settings::password_of;
pub use settings::{DatabaseSettings, NatsSettings, PlatformSettings};
pub use values::{LogFormat, Profile, Secret, comma_list, duration, parse_otlp_headers};

#[cfg(test)]
mod tests;
