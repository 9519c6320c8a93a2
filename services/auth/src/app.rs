//! Wiring: settings → pool, NATS, keys, hasher, verifier, router → a runnable [`App`].

use std::sync::Arc;

use anyhow::Context;
use authn::revocation::{self, RevocationList};
use authn::{Verifier, VerifierConfig};
use jobs::maintenance::AUTH_FAMILY;
use jobs::outbox::{Columns, Outbox, OutboxMetrics, Publishes};
use platform::nats::Namespace;
use platform::ratelimit::{self, ClientIpLimit, Limiter, Quota, TrustedProxies};
use platform::{App, AppBuilder};

use crate::keys::SigningKeys;
use crate::maintenance;
use crate::metrics::AuthMetrics;
use crate::passwords::Passwords;
use crate::settings::{AuthSettings, Settings};
use crate::state::{AppState, Shared};
use crate::{MIGRATOR, SERVICE, VERSION, routes};

/// The signing keys from settings, or (dev and test only; prod refuses to start without keys)
/// a key that lives as long as this process.
pub fn signing_keys(settings: &AuthSettings) -> anyhow::Result<SigningKeys> {
    match &settings.auth_signing_keys {
        Some(pem) => SigningKeys::from_pem_list(pem.expose()).map_err(anyhow::Error::msg),
        None => {
            tracing::warn!(
                "AUTH_SIGNING_KEYS is not set: signing with an ephemeral key; tokens will not \
                 survive a restart and other replicas will not share it"
            );
            SigningKeys::ephemeral().map_err(anyhow::Error::msg)
        }
    }
}

/// auth's outbox: its `event_outbox` table (`migrations/auth/*_event_outbox.up.sql`, whose trigger
/// notifies `outbox`); each row is an event (`account.deleted`).
pub const EVENT_OUTBOX: Outbox = Outbox {
    table: crate::store::outbox::EVENT_TABLE,
    columns: Columns::NAMED_AS_THEY_ARE,
    channel: "outbox",
    publishes: Publishes::Events,
};

/// auth's job outbox: its `job_outbox` table (`migrations/auth/*_account_recovery.up.sql`, whose
/// trigger notifies `job_outbox`); each row is a job, so far the account e-mails the worker sends.
pub const JOB_OUTBOX: Outbox = Outbox {
    table: crate::store::outbox::JOB_TABLE,
    columns: Columns::NAMED_AS_THEY_ARE,
    channel: "job_outbox",
    publishes: Publishes::Jobs,
};

/// The JetStream topology as auth provisions it: the family it serves (`auth`, the scheduler's
/// session purge) and the one its job outbox publishes to (`email`), so that family's consumer
/// exists before the first e-mail. Its events need no consumer of its own: the events stream
/// keeps them for the services that read them.
pub fn topology(base: jobs::Topology) -> jobs::Topology {
    base.with_families([AUTH_FAMILY, jobs::email::FAMILY])
}

/// Build the service; `App::run` serves it. Tests call this with `HTTP_ADDR` on port 0.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let mut builder = AppBuilder::new(SERVICE, VERSION, &settings.platform)?;
    let db = builder.postgres(&settings.database, &MIGRATOR).await?;
    let nats = builder.nats(&settings.nats).await?;
    let namespace = Namespace::new(&settings.nats.nats_namespace)?;

    let auth = settings.auth.clone();
    let keys = signing_keys(&auth)?;
    let revoked = RevocationList::new(auth.access_token_ttl);
    let verifier = Verifier::with_keys(
        VerifierConfig::new(&auth.auth_issuer, &auth.auth_audience),
        keys.jwks(),
        revoked.clone(),
    );
    let js = async_nats::jetstream::new(nats);
    let revocations = revocation::bucket(
        &js,
        &namespace,
        auth.access_token_ttl,
        settings.nats.nats_replicas,
    )
    .await
    .context("opening the revocations bucket")?;
    revocation::spawn_watcher(revocations.clone(), revoked, builder.shutdown());
    let topology = topology(jobs::Topology::from_settings(&settings.nats)?);
    topology.add_readiness_check(&mut builder);
    // account.deleted and any later events of auth, from its outbox (docs/design.md §6); the
    // account e-mails from its job outbox.
    for outbox in [EVENT_OUTBOX, JOB_OUTBOX] {
        jobs::outbox::spawn_relay(
            outbox,
            db.clone(),
            js.clone(),
            topology.clone(),
            OutboxMetrics::register(builder.metrics(), &outbox)?,
            builder.shutdown(),
        );
    }
    // The scheduler's session purge.
    jobs::runtime::spawn_family(
        js.clone(),
        topology,
        AUTH_FAMILY,
        Arc::new(maintenance::PurgeSessions {
            db: db.clone(),
            retention: settings.retention,
            purged: platform::db::PurgeMetrics::register(
                builder.metrics(),
                maintenance::PURGED_KINDS,
            )?,
        }),
        1,
        jobs::runtime::JobMetrics::register(builder.metrics())?,
        builder.shutdown(),
    );

    let links = auth.link_base().map_err(anyhow::Error::msg)?;
    let state = AppState::new(Shared {
        db,
        keys: Arc::new(keys),
        passwords: Passwords::new(&auth).await?,
        verifier: Arc::new(verifier),
        revocations,
        cursors: settings.cursors.signer(),
        metrics: AuthMetrics::register(builder.metrics())?,
        settings: Arc::new(auth),
        links,
    });
    let proxies =
        TrustedProxies::parse(&settings.platform.trusted_proxies).map_err(anyhow::Error::msg)?;
    let auth_limit = ClientIpLimit {
        limiter: Limiter::new(
            state.db.clone(),
            "auth",
            Quota {
                per_minute: state.settings.rate_limit_auth_per_minute,
                burst: state.settings.rate_limit_auth_burst,
            },
            builder.metrics(),
        )?,
        proxies,
    };
    ratelimit::spawn_purge(state.db.clone(), builder.shutdown());
    let router = routes::router(state, auth_limit);
    builder.build(router).await
}
