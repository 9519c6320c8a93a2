//! Settings of `worker`: the platform's, NATS, e-mail, thumbnails and the scheduler. See README's
//! settings table.

use std::time::Duration;

use platform::config::{
    NatsSettings, Needs, PlatformSettings, Problems, Profile, Secret, ServiceSettings,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub platform: PlatformSettings,
    #[serde(flatten)]
    pub nats: NatsSettings,
    /// How e-mail leaves: `log` (written to the log, for development) or `smtp` (via `SMTP_URL`).
    pub email_transport: String,
    /// `smtp://host:25`, `smtp://user:password@host:587?tls=required` or `smtps://…:465`; a secret
    /// (it may hold a password), required when `EMAIL_TRANSPORT=smtp`.
    pub smtp_url: Option<Secret>,
    /// Sender of e-mails, a mailbox: `Storefront <shop@example.com>`.
    pub email_from: String,
    /// Thumbnail sizes, `name=longest edge in pixels`, comma-separated.
    pub thumbnail_sizes: String,
    /// Image jobs resized at once by this worker (each takes one core while it runs).
    pub image_concurrency: usize,
    /// Publish the maintenance jobs on schedule (see `jobs::schedule`).
    pub scheduler_enabled: bool,
    /// In Kubernetes, the Lease whose holder schedules (outside a cluster every worker does).
    pub scheduler_lease_name: String,
    #[serde(with = "platform::config::duration")]
    pub schedule_expire_orders_every: Duration,
    #[serde(with = "platform::config::duration")]
    pub schedule_purge_jobs_every: Duration,
    #[serde(with = "platform::config::duration")]
    pub schedule_purge_idempotency_keys_every: Duration,
    #[serde(with = "platform::config::duration")]
    pub schedule_purge_sessions_every: Duration,
    #[serde(with = "platform::config::duration")]
    pub schedule_sweep_images_every: Duration,
}

/// One thumbnail size: its name in URLs and the longest edge it fits into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThumbnailSize {
    pub name: String,
    pub max_edge: u32,
}

/// `thumb=128,small=320,medium=800` → sizes, in that order.
pub fn parse_sizes(spec: &str) -> Result<Vec<ThumbnailSize>, String> {
    let mut sizes: Vec<ThumbnailSize> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, edge) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not name=pixels"))?;
        let name = name.trim();
        if name.is_empty()
            || name.len() > 32
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            || name == "original"
        {
            return Err(format!(
                "size name `{name}` must be 1–32 of a-z, 0-9, _ (and not `original`)"
            ));
        }
        let max_edge: u32 = edge
            .trim()
            .parse()
            .ok()
            .filter(|e| (16..=4096).contains(e))
            .ok_or_else(|| format!("size `{name}` must be 16 to 4096 pixels"))?;
        if sizes.iter().any(|s| s.name == name) {
            return Err(format!("size `{name}` is given twice"));
        }
        sizes.push(ThumbnailSize {
            name: name.to_owned(),
            max_edge,
        });
    }
    if sizes.is_empty() {
        return Err("at least one size is needed".into());
    }
    Ok(sizes)
}

impl Settings {
    pub fn sizes(&self) -> Vec<ThumbnailSize> {
        parse_sizes(&self.thumbnail_sizes).unwrap_or_default()
    }

    pub fn schedule(&self) -> Vec<jobs::schedule::Entry> {
        use jobs::maintenance::{AuthJob, CatalogJob};
        use jobs::schedule::Entry;
        vec![
            Entry {
                kind: CatalogJob::ExpireOrders.kind(),
                every: self.schedule_expire_orders_every,
            },
            Entry {
                kind: CatalogJob::PurgeJobs.kind(),
                every: self.schedule_purge_jobs_every,
            },
            Entry {
                kind: CatalogJob::PurgeIdempotencyKeys.kind(),
                every: self.schedule_purge_idempotency_keys_every,
            },
            Entry {
                kind: AuthJob::PurgeSessions.kind(),
                every: self.schedule_purge_sessions_every,
            },
            Entry {
                kind: CatalogJob::SweepImages.kind(),
                every: self.schedule_sweep_images_every,
            },
        ]
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            platform: PlatformSettings::with_ports(8083, 9183),
            nats: NatsSettings::default(),
            email_transport: "log".into(),
            smtp_url: None,
            email_from: "Storefront <no-reply@storefront.invalid>".into(),
            thumbnail_sizes: "thumb=128,small=320,medium=800".into(),
            image_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            scheduler_enabled: true,
            scheduler_lease_name: "storefront-scheduler".into(),
            schedule_expire_orders_every: Duration::from_secs(60),
            schedule_purge_jobs_every: Duration::from_secs(3600),
            schedule_purge_idempotency_keys_every: Duration::from_secs(3600),
            schedule_purge_sessions_every: Duration::from_secs(3600),
            schedule_sweep_images_every: Duration::from_secs(3600),
        }
    }
}

impl ServiceSettings for Settings {
    const SECRETS: &'static [&'static str] = &["NATS_URL", "SMTP_URL"];

    fn platform(&self) -> &PlatformSettings {
        &self.platform
    }

    fn profile_defaults(profile: Profile) -> Vec<(&'static str, figment::value::Value)> {
        match profile {
            Profile::Prod => Vec::new(),
            Profile::Dev | Profile::Test => vec![("nats_url", "nats://127.0.0.1:4222".into())],
        }
    }

    fn validate(&self, needs: Needs, problems: &mut Problems) {
        self.platform.validate(needs, problems);
        if needs.has(Needs::NATS) {
            self.nats.validate(problems);
        }
        if !needs.has(Needs::SERVE) {
            return;
        }
        match self.email_transport.as_str() {
            "log" => {
                if self.platform.app_env == Profile::Prod {
                    problems.add(
                        "EMAIL_TRANSPORT",
                        "`log` only writes e-mails to the log; use `smtp` in prod",
                    );
                }
            }
            "smtp" => match &self.smtp_url {
                None => problems.add("SMTP_URL", "is required when EMAIL_TRANSPORT=smtp"),
                Some(url) => {
                    if let Err(e) = crate::email::smtp_transport(url) {
                        problems.add("SMTP_URL", format!("is not a usable SMTP URL: {e}"));
                    }
                }
            },
            _ => problems.add("EMAIL_TRANSPORT", "must be `log` or `smtp`"),
        }
        if self.email_from.parse::<lettre::message::Mailbox>().is_err() {
            problems.add(
                "EMAIL_FROM",
                "must be a mailbox such as `Storefront <shop@example.com>`",
            );
        }
        if let Err(e) = parse_sizes(&self.thumbnail_sizes) {
            problems.add("THUMBNAIL_SIZES", e);
        }
        if !(1..=64).contains(&self.image_concurrency) {
            problems.add("IMAGE_CONCURRENCY", "must be 1 to 64");
        }
        for (name, every) in [
            (
                "SCHEDULE_EXPIRE_ORDERS_EVERY",
                self.schedule_expire_orders_every,
            ),
            ("SCHEDULE_PURGE_JOBS_EVERY", self.schedule_purge_jobs_every),
            (
                "SCHEDULE_PURGE_IDEMPOTENCY_KEYS_EVERY",
                self.schedule_purge_idempotency_keys_every,
            ),
            (
                "SCHEDULE_PURGE_SESSIONS_EVERY",
                self.schedule_purge_sessions_every,
            ),
            (
                "SCHEDULE_SWEEP_IMAGES_EVERY",
                self.schedule_sweep_images_every,
            ),
        ] {
            if every < Duration::from_secs(1) {
                problems.add(name, "must be at least 1s");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_order_and_bad_ones_are_named() {
        let sizes = parse_sizes("thumb=128, small=320,medium=800").unwrap();
        assert_eq!(
            sizes
                .iter()
                .map(|s| (s.name.as_str(), s.max_edge))
                .collect::<Vec<_>>(),
            [("thumb", 128), ("small", 320), ("medium", 800)]
        );
        assert!(parse_sizes("").is_err());
        assert!(parse_sizes("thumb").unwrap_err().contains("thumb"));
        assert!(parse_sizes("thumb=8").unwrap_err().contains("16 to 4096"));
        assert!(parse_sizes("a=100,a=200").unwrap_err().contains("twice"));
        assert!(parse_sizes("../x=100").is_err());
        assert!(parse_sizes("original=100").is_err());
    }

    #[test]
    fn the_schedule_has_every_maintenance_job_once() {
        let kinds: Vec<&str> = Settings::default()
            .schedule()
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "catalog.expire_orders",
                "catalog.purge_jobs",
                "catalog.purge_idempotency_keys",
                "auth.purge_sessions",
                "catalog.sweep_images",
            ]
        );
    }

    #[test]
    fn every_default_written_as_text_loads_back() {
        testkit::settings::assert_defaults_round_trip::<Settings>();
    }

    #[test]
    fn a_fractional_sampler_ratio_given_as_text_is_read() {
        let s: Settings =
            testkit::settings::load_test_settings(&[("OTEL_TRACES_SAMPLER_ARG", "0.1")]);
        assert_eq!(s.platform.otel_traces_sampler_arg, 0.1);
    }
}
