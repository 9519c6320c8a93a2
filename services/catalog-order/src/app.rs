//! Wiring: settings → pool, NATS, token verifier, router → a runnable [`App`].

use std::sync::Arc;

use jobs::EventConsumer;
use jobs::events::Event;
use jobs::images::ImageStore;
use jobs::maintenance;
use jobs::outbox::{Columns, Outbox, Publishes};
use jobs::runtime::{JobMetrics, spawn_event_listener_on};
use platform::cache::ResponseCache;
use platform::db::PurgeMetrics;
use platform::ratelimit::{self, Limiter, Quota};
use platform::replica::Reads;
use platform::{App, AppBuilder};
use sqlx::PgPool;

use crate::maintenance::{Maintenance, PURGED_KINDS};
use crate::payments::Payments;
use crate::settings::Settings;
use crate::state::{AppState, Shared};
use crate::usecases::payments::PaymentJobs;
use crate::{MIGRATOR, SERVICE, VERSION, routes};

/// catalog-order's durable consumer of every event (job status changes, `image.processed`).
pub const EVENTS_CONSUMER: &str = "catalog-order-events";

/// catalog-order's durable consumer of account events (`{ns}.events.account.>`), beside
/// [`EVENTS_CONSUMER`]. Releases before it applied `account.deleted` from the general consumer,
/// or did not know it and dropped it there; a consumer of its own that older releases do not read
/// gets every account event to a release that applies it, even during a rolling upgrade or after
/// a rollback.
pub const ACCOUNT_EVENTS_CONSUMER: &str = "catalog-order-account-events";

/// Core NATS subject (under the namespace) on which every replica announces the catalog changes
/// it committed, for the others' response caches (`platform::cache`).
pub const CACHE_SUBJECT: &str = "cache.catalog";

/// catalog-order's outbox: its `jobs` table (`migrations/catalog/*_jobs_outbox.up.sql`, whose
/// trigger notifies `outbox`); each row is a job.
pub const OUTBOX: Outbox = Outbox {
    table: "jobs",
    columns: Columns::NAMED_AS_THEY_ARE,
    channel: "outbox",
    publishes: Publishes::Jobs,
};

/// The JetStream topology as catalog-order provisions it: the families it serves (`catalog`,
/// `payment`), the families its outbox publishes to (`image`, `email`, `payment`), and its two
/// events consumers.
pub fn topology(base: jobs::Topology) -> jobs::Topology {
    base.with_families([
        maintenance::CATALOG_FAMILY,
        jobs::images::FAMILY,
        jobs::email::FAMILY,
        jobs::payments::FAMILY,
    ])
    .with_event_consumer(EventConsumer {
        name: EVENTS_CONSUMER.to_owned(),
        filter: ">".to_owned(),
    })
    .with_event_consumer(EventConsumer {
        name: ACCOUNT_EVENTS_CONSUMER.to_owned(),
        filter: format!("{}.>", jobs::accounts::ACCOUNT_EVENTS),
    })
}

/// Apply events through the inbox (`store::jobs::apply_event`): account events from
/// [`ACCOUNT_EVENTS_CONSUMER`], everything else from [`EVENTS_CONSUMER`], which acknowledges
/// account events without applying them (their own consumer does; the inbox would make a second
/// apply harmless anyway).
pub fn spawn_event_listeners(
    js: async_nats::jetstream::Context,
    topology: jobs::Topology,
    db: PgPool,
    cache: Arc<ResponseCache>,
    shutdown: &platform::shutdown::Shutdown,
) {
    let inbox = db.clone();
    spawn_event_listener_on(
        js.clone(),
        topology.clone(),
        EVENTS_CONSUMER.to_owned(),
        move |event: Event| {
            let db = inbox.clone();
            let cache = cache.clone();
            async move {
                if matches!(event, Event::AccountDeleted(_)) {
                    return Ok(());
                }
                crate::store::jobs::apply_event(&db, &event).await?;
                // A thumbnail made or given up on changes its image's status in the image lists.
                let images = match &event {
                    Event::ImageProcessed(_) => true,
                    Event::JobStatus(e) => e.kind == jobs::images::THUMBNAIL_KIND,
                    Event::AccountDeleted(_) => false,
                };
                if images {
                    cache.changed(&[crate::changes::IMAGES.to_owned()]);
                }
                Ok(())
            }
        },
        shutdown,
    );
    spawn_event_listener_on(
        js,
        topology,
        ACCOUNT_EVENTS_CONSUMER.to_owned(),
        move |event: Event| {
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
    if settings.database.auto_migrate {
        // What `migrate up` does after the schema (dev only, like AUTO_MIGRATE itself).
        crate::store::search::configure(&db, &settings.search.config()).await?;
    }
    let nats = builder.nats(&settings.nats).await?;
    let nats_client = nats.clone();
    let verifier =
        authn::remote_verifier(&settings.tokens, nats, &settings.nats, builder.shutdown()).await?;
    let js = async_nats::jetstream::new(nats_client.clone());
    let topology = topology(jobs::Topology::from_settings(&settings.nats)?);
    topology.add_readiness_check(&mut builder);
    jobs::outbox::spawn_relay(
        OUTBOX,
        db.clone(),
        js.clone(),
        topology.clone(),
        jobs::outbox::OutboxMetrics::register(builder.metrics(), &OUTBOX)?,
        builder.shutdown(),
    );
    let cache = ResponseCache::new(&settings.cache, builder.metrics())?;
    cache.spawn_listener(
        nats_client.clone(),
        platform::nats::Namespace::new(&settings.nats.nats_namespace)?.subject(CACHE_SUBJECT),
        builder.nats_gaps(),
        builder.shutdown(),
    );
    // Not for long: with NATS away, the cache serves only young entries anyway.
    cache
        .wait_until_heard(settings.cache.cache_offline_ttl)
        .await;
    spawn_event_listeners(
        js.clone(),
        topology.clone(),
        db.clone(),
        cache.clone(),
        builder.shutdown(),
    );
    let images = ImageStore::new(js.clone(), &topology);
    let job_metrics = JobMetrics::register(builder.metrics())?;
    let own_webhook = Arc::new(std::sync::OnceLock::new());
    let payments =
        Payments::from_settings(&settings.payments, builder.metrics(), own_webhook.clone())?;
    jobs::runtime::spawn_family(
        js.clone(),
        topology.clone(),
        jobs::payments::FAMILY,
        Arc::new(PaymentJobs {
            db: db.clone(),
            provider: payments.provider.clone(),
        }),
        4,
        job_metrics.clone(),
        builder.shutdown(),
    );
    // The scheduler's maintenance jobs for this service's data.
    jobs::runtime::spawn_family(
        js.clone(),
        topology.clone(),
        maintenance::CATALOG_FAMILY,
        Arc::new(Maintenance {
            db: db.clone(),
            order_payment_timeout: settings.order_payment_timeout,
            retention: settings.retention,
            purged: PurgeMetrics::register(builder.metrics(), PURGED_KINDS)?,
            images: images.clone(),
            cache: cache.clone(),
        }),
        1,
        job_metrics,
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
    let reads = Reads::new(
        db.clone(),
        &settings.replica,
        &settings.database,
        SERVICE,
        builder.metrics(),
        builder.shutdown(),
    )?;
    let state = AppState::new(Shared {
        db,
        reads,
        verifier,
        cursors: settings.cursors.signer(),
        write_limiter,
        images,
        search_candidates: settings.search.candidates(),
        cache,
        payments,
        orders_require_verified_email: settings.orders_require_verified_email,
    });
    let app = builder.build(routes::router(state)).await?;
    // The fake provider's webhooks come back to this replica unless told otherwise.
    let mut own = app.http_addr();
    if own.ip().is_unspecified() {
        own.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let _ = own_webhook.set(format!("http://{own}/v1/payments/webhook"));
    Ok(app)
}
