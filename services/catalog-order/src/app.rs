//! Wiring: settings → pool, NATS, token verifier, router → a runnable [`App`].

use std::sync::Arc;

use jobs::images::ImageStore;
use jobs::runtime::JobMetrics;
use platform::db::PurgeMetrics;
use platform::ratelimit::{self, Limiter, Quota};
use platform::{App, AppBuilder};
use sqlx::PgPool;

use crate::maintenance::{self, Maintenance};
use crate::settings::Settings;
use crate::state::AppState;
use crate::{MIGRATOR, SERVICE, VERSION, routes};

/// catalog-order's durable consumer of account events (`{ns}.events.account.>`), beside the
/// general events consumer. Releases before it applied `account.deleted` from the general
/// consumer, or did not know it and dropped it there; a consumer of its own that older releases
/// do not read gets every account event to a release that applies it, even during a rolling
/// upgrade or after a rollback.
pub const ACCOUNT_EVENTS_CONSUMER: &str = "catalog-order-account-events";

/// The JetStream topology as catalog-order provisions it: the shared one plus
/// [`ACCOUNT_EVENTS_CONSUMER`].
pub fn topology(base: jobs::Topology) -> jobs::Topology {
    base.with_event_consumer(jobs::EventConsumer {
        name: ACCOUNT_EVENTS_CONSUMER.to_owned(),
        filter: format!("{}.>", jobs::accounts::ACCOUNT_EVENTS),
    })
}

/// Apply events through the inbox (`store::jobs::apply_event`): account events from
/// [`ACCOUNT_EVENTS_CONSUMER`], everything else from the general events consumer, which
/// acknowledges account events without applying them (their own consumer does; the inbox would
/// make a second apply harmless anyway).
pub fn spawn_event_listeners(
    js: async_nats::jetstream::Context,
    topology: jobs::Topology,
    db: PgPool,
    shutdown: &platform::shutdown::Shutdown,
) {
    let inbox = db.clone();
    jobs::runtime::spawn_event_listener(
        js.clone(),
        topology.clone(),
        move |event| {
            let db = inbox.clone();
            async move {
                if matches!(event, jobs::events::Event::AccountDeleted(_)) {
                    return Ok(());
                }
                Ok(crate::store::jobs::apply_event(&db, &event).await?)
            }
        },
        shutdown,
    );
    jobs::runtime::spawn_event_listener_on(
        js,
        topology,
        ACCOUNT_EVENTS_CONSUMER.to_owned(),
        move |event| {
            let db = db.clone();
            async move { Ok(crate::store::jobs::apply_event(&db, &event).await?) }
        },
        shutdown,
    );
}

/// Build the service; `App::run` serves it. Tests call this with `HTTP_ADDR` on port 0.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let mut builder = AppBuilder::new(SERVICE, VERSION, &settings.platform)?;
    let db = builder.postgres(&settings.database, &MIGRATOR).await?;
    let nats = builder.nats(&settings.nats).await?;
    let nats_client = nats.clone();
    let verifier =
        authn::remote_verifier(&settings.tokens, nats, &settings.nats, builder.shutdown()).await?;
    let js = async_nats::jetstream::new(nats_client);
    let topology = topology(jobs::Topology::from_settings(&settings.nats)?);
    jobs::outbox::spawn_relay(
        db.clone(),
        js.clone(),
        topology.clone(),
        jobs::outbox::OutboxMetrics::register(builder.metrics())?,
        builder.shutdown(),
    );
    spawn_event_listeners(js.clone(), topology.clone(), db.clone(), builder.shutdown());
    let images = ImageStore::new(js.clone(), &topology);
    // The scheduler's maintenance jobs for this service's data.
    let catalog = topology
        .family("catalog")
        .ok_or_else(|| anyhow::anyhow!("no catalog job family"))?;
    jobs::runtime::spawn_family(
        js.clone(),
        topology.clone(),
        catalog,
        Arc::new(Maintenance {
            db: db.clone(),
            order_payment_timeout: settings.order_payment_timeout,
            retention: settings.retention,
            purged: PurgeMetrics::register(builder.metrics(), maintenance::PURGED_KINDS)?,
            images: images.clone(),
        }),
        1,
        JobMetrics::register(builder.metrics())?,
        builder.shutdown(),
    );
    let write_limiter = Limiter::new(
        db.clone(),
        "write",
        Quota {
            per_minute: settings.rate_limit_write_per_minute,
            burst: settings.rate_limit_write_burst,
        },
        builder.metrics(),
    )?;
    ratelimit::spawn_purge(db.clone(), builder.shutdown());
    let state = AppState {
        db,
        verifier,
        cursors: settings.cursors.signer(),
        write_limiter,
        images,
    };
    builder.build(routes::router(state)).await
}
