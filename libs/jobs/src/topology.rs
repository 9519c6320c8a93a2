//! Streams, consumers, KV buckets and the object store, defined once.
//!
//! - `{NS}_JOBS`: work queue of `{ns}.jobs.<kind>`; each message is delivered to one consumer and
//!   removed when acknowledged. A 2-minute duplicate window absorbs re-publishes with the same
//!   `Nats-Msg-Id` (the outbox relay crashing between publish and mark, schedulers racing).
//! - `{NS}_EVENTS`: `{ns}.events.>` (job status changes and results), kept for a week.
//! - `{NS}_DLQ`: `{ns}.dlq.>`, jobs that failed for good, kept for 30 days for inspection and replay.
//! - One durable pull consumer per job family on `{NS}_JOBS`, with disjoint filters. This module
//!   knows no family: a service adds the ones it serves or publishes to
//!   ([`Topology::with_family`]), from the definitions both sides share (`crate::contracts`), so a
//!   family's consumer exists before its first job is published and every service provisions it
//!   alike.
//! - Durable pull consumers on `{NS}_EVENTS` that a service declares for the events it reads
//!   ([`Topology::with_event_consumer`]). The stream keeps its messages (limits retention), so
//!   every consumer gets its own copy of each event, including those published before it existed.
//! - KV `{ns}_jobs_done`: the idempotency record of applied jobs. Object store `{ns}_images`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use platform::backoff::Backoff;
use platform::config::NatsSettings;
use platform::nats::Namespace;
use tokio::sync::OnceCell;

/// A family of jobs served by one durable consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Consumer name and the first token of the family's job kinds (`image` → `image.thumbnail`).
    pub name: &'static str,
    /// How long a delivery may stay unacknowledged before JetStream hands it to another worker.
    /// Short, so a killed worker's jobs come back quickly; a running handler keeps its job with
    /// in-progress acks every third of it.
    pub ack_wait: Duration,
    /// How long a handler may run before the attempt counts as failed.
    pub timeout: Duration,
    pub max_deliver: i64,
    /// Deliveries outstanding at once across the family's workers.
    pub max_ack_pending: i64,
}

/// How long the events stream keeps an event. Until then the event may be delivered again (a
/// recreated consumer, a replay), so the inbox that makes applying it idempotent must remember it
/// at least this long.
pub const EVENTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often an events consumer delivers an event before JetStream gives up on it. A
/// failed apply comes back after the consumer's `ack_wait` (30 s: about 17 hours of attempts); an
/// event of a kind this version does not know comes back after
/// [`crate::runtime::UNKNOWN_EVENT_DELAY`] (5 min: about 7 days, the stream's `max_age`). Past
/// it the event stays in the stream but this consumer never delivers it again.
pub const EVENTS_MAX_DELIVER: i64 = 2016;

/// A durable consumer of `{NS}_EVENTS` (or of part of it) that a service declares for itself:
/// it gets its own copy of every matching event, independently of any other consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventConsumer {
    /// Durable name.
    pub name: String,
    /// Subject filter below `{ns}.events.` (`>` for every event, `account.>`).
    pub filter: String,
}

/// How JetStream keeps a namespace's data (`NATS_REPLICAS`, `NATS_IMAGES_MAX_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Storage {
    /// Copies of every stream, bucket and store (1–5).
    pub replicas: usize,
    /// Size limit of the image store; 0 is none.
    pub images_max_bytes: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            replicas: 1,
            images_max_bytes: 0,
        }
    }
}

impl Storage {
    pub fn from_settings(settings: &NatsSettings) -> Self {
        Storage {
            replicas: settings.nats_replicas,
            images_max_bytes: settings.nats_images_max_bytes,
        }
    }

    /// JetStream's `max_bytes` of the image store: -1 is no limit.
    pub fn images_max_bytes(&self) -> i64 {
        match self.images_max_bytes {
            0 => -1,
            n => i64::try_from(n).unwrap_or(i64::MAX),
        }
    }
}

/// The names of everything in one namespace, and the job families and event consumers a service
/// declared.
#[derive(Debug, Clone)]
pub struct Topology {
    pub namespace: Namespace,
    /// Declared with [`Topology::with_family`].
    pub families: Vec<Family>,
    /// Declared with [`Topology::with_event_consumer`].
    pub event_consumers: Vec<EventConsumer>,
    /// Every provisioning applies it, so every topology a service builds must carry the same:
    /// services build theirs with [`Topology::from_settings`].
    pub storage: Storage,
    /// Set once this topology (or a clone of it) was provisioned: the consumers, the relay and
    /// the scheduler of one process share their clones, so the process provisions once and its
    /// readiness can wait for it ([`Topology::is_provisioned`]).
    provisioned: Arc<OnceCell<()>>,
}

impl Topology {
    /// The streams, the done-marker bucket and the image store of `namespace`; no job family and
    /// no events consumer until a service adds them.
    pub fn new(namespace: Namespace) -> Self {
        Topology {
            namespace,
            families: Vec::new(),
            event_consumers: Vec::new(),
            storage: Storage::default(),
            provisioned: Arc::default(),
        }
    }

    /// Whether [`provision_with_retry`] has succeeded for this topology or a clone of it. A
    /// service is not ready before: an upload would find no image store, a job no consumer.
    pub fn is_provisioned(&self) -> bool {
        self.provisioned.initialized()
    }

    /// Make the service unready until this topology is provisioned (check `jetstream`).
    pub fn add_readiness_check(&self, builder: &mut platform::AppBuilder) {
        let topology = self.clone();
        builder.add_check("jetstream", move || {
            let ready = if topology.is_provisioned() {
                Ok(())
            } else {
                Err("JetStream streams, consumers and stores not provisioned yet".to_owned())
            };
            std::future::ready(ready)
        });
    }

    /// The namespace, replicas and limits of a service's settings.
    pub fn from_settings(settings: &NatsSettings) -> anyhow::Result<Self> {
        let mut topology = Self::new(Namespace::new(&settings.nats_namespace)?);
        topology.storage = Storage::from_settings(settings);
        Ok(topology)
    }

    /// Also provision `family`'s consumer (a family of the same name is replaced).
    pub fn with_family(mut self, family: Family) -> Self {
        self.families.retain(|f| f.name != family.name);
        self.families.push(family);
        self
    }

    /// [`Topology::with_family`] for each of `families`.
    pub fn with_families(self, families: impl IntoIterator<Item = Family>) -> Self {
        families.into_iter().fold(self, Self::with_family)
    }

    /// Also provision `consumer` on the events stream (a service's own durable consumer).
    pub fn with_event_consumer(mut self, consumer: EventConsumer) -> Self {
        self.event_consumers.push(consumer);
        self
    }

    pub fn family(&self, name: &str) -> Option<Family> {
        self.families.iter().copied().find(|f| f.name == name)
    }

    pub fn jobs_stream(&self) -> String {
        self.namespace.stream("JOBS")
    }

    pub fn events_stream(&self) -> String {
        self.namespace.stream("EVENTS")
    }

    pub fn dlq_stream(&self) -> String {
        self.namespace.stream("DLQ")
    }

    /// `image.thumbnail` → `{ns}.jobs.image.thumbnail`
    pub fn job_subject(&self, kind: &str) -> String {
        self.namespace.subject(&format!("jobs.{kind}"))
    }

    pub fn event_subject(&self, name: &str) -> String {
        self.namespace.subject(&format!("events.{name}"))
    }

    /// `{ns}.events.job.status` → `job.status`; `None` outside this namespace's events.
    pub fn event_name<'s>(&self, subject: &'s str) -> Option<&'s str> {
        subject.strip_prefix(&self.event_subject(""))
    }

    pub fn dlq_subject(&self, kind: &str) -> String {
        self.namespace.subject(&format!("dlq.{kind}"))
    }

    /// The family a job kind belongs to, if any.
    pub fn family_of(&self, kind: &str) -> Option<Family> {
        self.family(kind.split('.').next()?)
    }

    pub fn consumer_name(&self, family: &Family) -> String {
        format!("{}-jobs", family.name)
    }

    /// Every durable consumer of the events stream alike: explicit acks, 30 s to apply, at most
    /// [`EVENTS_MAX_DELIVER`] deliveries; a new one starts at the stream's first event (an event
    /// published before it existed is still delivered to it, for up to `EVENTS_MAX_AGE`).
    fn event_consumer_config(&self, name: &str, filter: &str) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(name.to_owned()),
            filter_subject: self.event_subject(filter),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_deliver: EVENTS_MAX_DELIVER,
            ..Default::default()
        }
    }

    pub fn jobs_done_bucket(&self) -> String {
        self.namespace.bucket("jobs_done")
    }

    pub fn images_store(&self) -> String {
        self.namespace.bucket("images")
    }

    fn streams(&self) -> Vec<stream::Config> {
        vec![
            stream::Config {
                name: self.jobs_stream(),
                subjects: vec![self.namespace.subject("jobs.>")],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                num_replicas: self.storage.replicas,
                ..Default::default()
            },
            stream::Config {
                name: self.events_stream(),
                subjects: vec![self.namespace.subject("events.>")],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                max_age: EVENTS_MAX_AGE,
                duplicate_window: Duration::from_secs(120),
                num_replicas: self.storage.replicas,
                ..Default::default()
            },
            stream::Config {
                name: self.dlq_stream(),
                subjects: vec![self.namespace.subject("dlq.>")],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                max_age: Duration::from_secs(30 * 24 * 3600),
                num_replicas: self.storage.replicas,
                ..Default::default()
            },
        ]
    }

    fn consumer(&self, family: &Family) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.consumer_name(family)),
            filter_subject: self.namespace.subject(&format!("jobs.{}.>", family.name)),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: family.ack_wait,
            max_deliver: family.max_deliver,
            // No consumer `backoff`: measured on nats-server 2.15, a consumer backoff overrides
            // the delay of an explicit `Nak` from the second redelivery on (a 2 s retry became
            // 300 s). Failures `Nak` with the runtime's own exponential delay; a delivery whose
            // handler never answers comes back after `ack_wait`.
            max_ack_pending: family.max_ack_pending,
            ..Default::default()
        }
    }
}

/// Create or update every stream, consumer, bucket and store. Safe to run on every start of every
/// replica: an unchanged definition changes nothing.
pub async fn provision(js: &jetstream::Context, topology: &Topology) -> anyhow::Result<()> {
    // What exists as declared is only read: every replica provisions at start, and on a
    // clustered JetStream each create or update is a proposal to the meta leader; a rollout of
    // many pods updating unchanged streams at once once timed requests out for seconds.
    for config in topology.streams() {
        let name = config.name.clone();
        if let Ok(existing) = js.get_stream(&name).await
            && stream_is_as_declared(&existing.cached_info().config, &config)
        {
            continue;
        }
        js.create_or_update_stream(config)
            .await
            .with_context(|| format!("provisioning stream {name}"))?;
    }
    let jobs = js
        .get_stream(topology.jobs_stream())
        .await
        .context("opening the jobs stream")?;
    for family in &topology.families {
        let config = topology.consumer(family);
        let name = topology.consumer_name(family);
        if let Ok(info) = jobs.consumer_info(&name).await
            && consumer_is_as_declared(&info.config, &config)
        {
            continue;
        }
        jobs.create_consumer(config)
            .await
            .with_context(|| format!("provisioning consumer {name}"))?;
    }
    let events = js
        .get_stream(topology.events_stream())
        .await
        .context("opening the events stream")?;
    for declared in &topology.event_consumers {
        let config = topology.event_consumer_config(&declared.name, &declared.filter);
        if let Ok(info) = events.consumer_info(&declared.name).await
            && consumer_is_as_declared(&info.config, &config)
        {
            continue;
        }
        events
            .create_consumer(config)
            .await
            .with_context(|| format!("provisioning event consumer {}", declared.name))?;
    }
    let bucket = topology.jobs_done_bucket();
    if js.get_key_value(&bucket).await.is_ok() {
        platform::nats::update_stream_limits(
            js,
            &format!("KV_{bucket}"),
            topology.storage.replicas,
            -1,
        )
        .await
        .with_context(|| format!("provisioning KV bucket {bucket}"))?;
    } else {
        js.create_or_update_key_value(kv::Config {
            bucket: bucket.clone(),
            description: "Job ids whose effect has happened (idempotency)".into(),
            history: 1,
            max_age: Duration::from_secs(7 * 24 * 3600),
            storage: stream::StorageType::File,
            num_replicas: topology.storage.replicas,
            ..Default::default()
        })
        .await
        .with_context(|| format!("provisioning KV bucket {bucket}"))?;
    }
    let store = topology.images_store();
    let (replicas, max_bytes) = (
        topology.storage.replicas,
        topology.storage.images_max_bytes(),
    );
    if js.get_object_store(&store).await.is_err() {
        js.create_object_store(object_store::Config {
            bucket: store.clone(),
            description: Some("Item images: originals and thumbnails".into()),
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_bytes,
            ..Default::default()
        })
        .await
        .with_context(|| format!("provisioning object store {store}"))?;
    } else {
        // async-nats has no "create or update" for object stores: change its stream.
        platform::nats::update_stream_limits(js, &format!("OBJ_{store}"), replicas, max_bytes)
            .await
            .with_context(|| format!("provisioning object store {store}"))?;
    }
    tracing::info!(namespace = %topology.namespace, "JetStream topology provisioned");
    Ok(())
}

/// How the loops that wait for NATS (provisioning, the outbox relay, pulling from a consumer)
/// retry: 100 ms doubling to 5 s.
pub const RECONNECT: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// Provision, retrying with backoff until it works or `stop` is cancelled (then `false`). Services
/// call this from a background task: NATS may come up after them.
pub async fn provision_with_retry(
    js: &jetstream::Context,
    topology: &Topology,
    stop: &tokio_util::sync::CancellationToken,
) -> bool {
    // The first caller of a process provisions; the others wait for it, then go on at once.
    topology
        .provisioned
        .get_or_try_init(|| async {
            let mut backoff = RECONNECT;
            loop {
                match provision(js, topology).await {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "provisioning JetStream; retrying")
                    }
                }
                if !backoff.wait(stop).await {
                    return Err(());
                }
            }
        })
        .await
        .is_ok()
}

/// The streams and consumers of `topology` that are missing or differ from their declaration
/// (what [`provision`] would create or update); empty once provisioned.
pub async fn undeclared(js: &jetstream::Context, topology: &Topology) -> Vec<String> {
    let mut out = Vec::new();
    for config in topology.streams() {
        match js.get_stream(&config.name).await {
            Ok(existing) if stream_is_as_declared(&existing.cached_info().config, &config) => {}
            _ => out.push(config.name),
        }
    }
    let consumers = topology
        .families
        .iter()
        .map(|f| (topology.jobs_stream(), topology.consumer(f)))
        .chain(topology.event_consumers.iter().map(|c| {
            (
                topology.events_stream(),
                topology.event_consumer_config(&c.name, &c.filter),
            )
        }));
    for (stream, config) in consumers {
        let name = config.durable_name.clone().unwrap_or_default();
        let as_declared = match js.get_stream(&stream).await {
            Ok(stream) => stream
                .consumer_info(&name)
                .await
                .is_ok_and(|info| consumer_is_as_declared(&info.config, &config)),
            Err(_) => false,
        };
        if !as_declared {
            out.push(name);
        }
    }
    out
}

/// The settings [`Topology`] declares for a stream are what it has (the server fills in the
/// rest; a duplicate window left at zero gets the server's default).
fn stream_is_as_declared(have: &stream::Config, want: &stream::Config) -> bool {
    have.subjects == want.subjects
        && have.retention == want.retention
        && have.storage == want.storage
        && have.max_age == want.max_age
        && have.num_replicas == want.num_replicas
        && (want.duplicate_window.is_zero() || have.duplicate_window == want.duplicate_window)
}

/// The same for a pull consumer.
fn consumer_is_as_declared(have: &consumer::Config, want: &consumer::pull::Config) -> bool {
    have.durable_name == want.durable_name
        && have.filter_subject == want.filter_subject
        && have.ack_policy == want.ack_policy
        && have.ack_wait == want.ack_wait
        && have.max_deliver == want.max_deliver
        && (want.max_ack_pending == 0 || have.max_ack_pending == want.max_ack_pending)
}

/// Delete everything of a namespace (tests clean up after themselves with this).
pub async fn teardown(js: &jetstream::Context, topology: &Topology) {
    for stream in [
        topology.jobs_stream(),
        topology.events_stream(),
        topology.dlq_stream(),
    ] {
        let _ = js.delete_stream(stream).await;
    }
    let _ = js.delete_key_value(topology.jobs_done_bucket()).await;
    let _ = js.delete_object_store(topology.images_store()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(name: &'static str) -> Family {
        Family {
            name,
            ack_wait: Duration::from_secs(15),
            timeout: Duration::from_secs(60),
            max_deliver: 3,
            max_ack_pending: 4,
        }
    }

    #[test]
    fn a_topology_has_the_families_a_service_adds_each_on_its_own_subjects() {
        let bare = Topology::new(Namespace::new("shop").unwrap());
        assert!(bare.families.is_empty() && bare.event_consumers.is_empty());
        let t = bare.with_families([family("image"), family("catalog"), family("image")]);
        let filters: Vec<String> = t
            .families
            .iter()
            .map(|f| t.consumer(f).filter_subject)
            .collect();
        assert_eq!(filters, ["shop.jobs.catalog.>", "shop.jobs.image.>"]);
        assert_eq!(t.consumer_name(&family("image")), "image-jobs");
        assert_eq!(t.family_of("image.thumbnail"), Some(family("image")));
        assert!(t.family_of("email.order_confirmation").is_none());
        assert_eq!(
            t.job_subject("image.thumbnail"),
            "shop.jobs.image.thumbnail"
        );
        assert_eq!(t.jobs_stream(), "SHOP_JOBS");
    }
}
