//! Public GET responses kept in process, invalidated on every replica over NATS, and served with
//! HTTP caching headers (a strong `ETag`, `Cache-Control: public, …`, 304 to `If-None-Match`).
//!
//! An entry is a whole 200 response (its JSON body and ETag) keyed by path and query. A service
//! names the tags each cached route depends on (`items`, `item:<id>`) and, after each write
//! commits, the tags the write touched ([`ResponseCache::changed`]): this replica forgets them at
//! once and every other one when the change arrives over core NATS, a few milliseconds later.
//! Tags are versions in a fixed array of counters indexed by the tag's hash, so they cost no
//! memory and a collision only forgets more. An entry remembers the versions of its tags from
//! *before* its database read: a write that commits during the read leaves it stale, never served.
//!
//! How stale an entry can be when invalidations are lost:
//! - a NATS reconnection or a slow-subscriber drop may have lost some: everything cached before it
//!   is dropped;
//! - while this replica hears nothing over NATS (it publishes a heartbeat every quarter of
//!   `CACHE_OFFLINE_TTL` and listens to its own echo) it serves no entry older than
//!   `CACHE_OFFLINE_TTL`, and drops everything when it hears again;
//! - no entry is served after `CACHE_TTL`, whatever happens (a writer that died between its commit
//!   and its publish).
//!
//! Personal responses never pass through here: routes opt in, and the HTTP stack marks every other
//! response `Cache-Control: private, no-store`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use xxhash_rust::xxh3::xxh3_128;

use crate::config::Problems;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// The settings of the response cache and of the HTTP caching headers (README, settings table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheSettings {
    /// Most responses kept; 0 turns the in-process cache off (the HTTP headers stay).
    pub cache_max_entries: u32,
    /// Most bytes of responses kept (each counts at least `CACHE_MAX_BYTES / CACHE_MAX_ENTRIES`,
    /// which is how both limits hold with one weight).
    pub cache_max_bytes: u64,
    /// No entry is served older than this, even when no change was heard.
    #[serde(with = "crate::config::duration")]
    pub cache_ttl: Duration,
    /// While NATS is silent, no entry older than this is served.
    #[serde(with = "crate::config::duration")]
    pub cache_offline_ttl: Duration,
    /// `max-age` of public responses: how long a browser, CDN or proxy may reuse one unasked.
    #[serde(with = "crate::config::duration")]
    pub http_max_age: Duration,
    /// `stale-while-revalidate`: how long after that a cache may answer with the old response while
    /// it revalidates (a 304 when nothing changed).
    #[serde(with = "crate::config::duration")]
    pub http_stale_while_revalidate: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            cache_max_entries: 10_000,
            cache_max_bytes: 32 * 1024 * 1024,
            cache_ttl: Duration::from_secs(60),
            cache_offline_ttl: Duration::from_secs(2),
            http_max_age: Duration::from_secs(5),
            http_stale_while_revalidate: Duration::from_secs(30),
        }
    }
}

impl CacheSettings {
    pub fn validate(&self, problems: &mut Problems) {
        if self.cache_max_entries > 0 && self.cache_max_bytes < u64::from(self.cache_max_entries) {
            problems.add(
                "CACHE_MAX_BYTES",
                "must be at least CACHE_MAX_ENTRIES (bytes, not entries)",
            );
        }
        if self.cache_offline_ttl < Duration::from_millis(100) {
            problems.add("CACHE_OFFLINE_TTL", "must be at least 100ms");
        }
        if self.cache_ttl < self.cache_offline_ttl {
            problems.add("CACHE_TTL", "must be at least CACHE_OFFLINE_TTL");
        }
    }

    /// `Cache-Control` of the public responses.
    fn cache_control(&self) -> HeaderValue {
        let value = format!(
            "public, max-age={}, stale-while-revalidate={}",
            self.http_max_age.as_secs(),
            self.http_stale_while_revalidate.as_secs()
        );
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("no-cache"))
    }
}

/// Tag versions; a tag's slot is its hash modulo this.
const SLOTS: usize = 4096;

/// "Never heard from NATS" in [`ResponseCache::heard`].
const NEVER: u64 = u64::MAX;

/// The change message: the tags a write touched, and the replica that wrote (which applied them
/// already, and must not apply its own echo: arriving late, it would drop answers read after the
/// write). Heartbeats carry no tags.
#[derive(Debug, Serialize, Deserialize)]
struct Change {
    from: u64,
    tags: Vec<String>,
}

/// What the cache knew when a fill started: an entry is good while this is still true.
#[derive(Debug, Clone)]
struct Stamp {
    epoch: u64,
    versions: Vec<(usize, u64)>,
    at: Instant,
}

/// What [`ResponseCache::find`] found.
enum Found {
    /// The cache is off (`CACHE_MAX_ENTRIES=0`).
    Off,
    Nothing,
    Fresh(Arc<Entry>),
    /// An entry that may not be served any more (now removed).
    Stale,
}

#[derive(Debug)]
struct Entry {
    body: Bytes,
    etag: HeaderValue,
    stamp: Stamp,
}

type Store = quick_cache::sync::Cache<
    String,
    Arc<Entry>,
    Weight,
    quick_cache::DefaultHashBuilder,
    Evictions,
>;

/// Bytes of key and body, at least `floor`: so `CACHE_MAX_BYTES` also bounds the entry count.
#[derive(Clone)]
struct Weight {
    floor: u64,
}

impl quick_cache::Weighter<String, Arc<Entry>> for Weight {
    fn weight(&self, key: &String, entry: &Arc<Entry>) -> u64 {
        let bytes = key.len() + entry.body.len() + entry.etag.len();
        u64::try_from(bytes).unwrap_or(u64::MAX).max(self.floor)
    }
}

/// Counts what the size limits push out.
#[derive(Clone)]
struct Evictions(IntCounter);

impl quick_cache::Lifecycle<String, Arc<Entry>> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: String, _entry: Arc<Entry>) {
        self.0.inc();
    }
}

/// The response cache of one replica: see the module's documentation.
pub struct ResponseCache {
    /// This replica's id in its change messages.
    id: u64,
    /// `None` when `CACHE_MAX_ENTRIES` is 0.
    store: Option<Arc<Store>>,
    versions: Vec<AtomicU64>,
    /// When each slot last changed, in µs since `origin`: what a read replica must have replayed
    /// to answer for it (see [`Self::changed_since`]).
    changed_at: Vec<AtomicU64>,
    /// When the cache was last dropped, in µs since `origin`.
    reset_at: AtomicU64,
    /// Bumped when changes may have been missed: everything cached before is stale.
    epoch: AtomicU64,
    /// When a message was last heard over NATS, in ms since `origin` ([`NEVER`] before the first).
    heard: AtomicU64,
    origin: Instant,
    ttl: Duration,
    offline_ttl: Duration,
    cache_control: HeaderValue,
    /// Changes to publish, drained by the listener (a write never waits for NATS).
    outgoing: mpsc::Sender<Change>,
    outgoing_rx: std::sync::Mutex<Option<mpsc::Receiver<Change>>>,
    hits: IntCounter,
    misses: IntCounter,
    stale: IntCounter,
    resets: IntCounter,
    unsent: IntCounter,
}

impl ResponseCache {
    /// An empty cache with its metrics registered: `response_cache_requests_total{result}` (hit,
    /// miss, stale), `response_cache_entries`, `response_cache_bytes`,
    /// `response_cache_evictions_total`, `response_cache_resets_total`,
    /// `response_cache_changes_unsent_total`.
    pub fn new(settings: &CacheSettings, metrics: &Metrics) -> anyhow::Result<Arc<Self>> {
        let requests = IntCounterVec::new(
            Opts::new(
                "response_cache_requests_total",
                "Cacheable GETs by outcome: hit, miss, or stale (found but invalidated or too old).",
            ),
            &["result"],
        )?;
        // Resolved once: a label lookup per request was a measurable part of a hit.
        let [hits, misses, stale] =
            ["hit", "miss", "stale"].map(|result| requests.with_label_values(&[result]));
        let evictions = IntCounter::new(
            "response_cache_evictions_total",
            "Entries pushed out by CACHE_MAX_BYTES / CACHE_MAX_ENTRIES.",
        )?;
        let resets = IntCounter::new(
            "response_cache_resets_total",
            "Times the whole cache was dropped because changes may have been missed (NATS \
             reconnection, slow subscriber, silence).",
        )?;
        let unsent = IntCounter::new(
            "response_cache_changes_unsent_total",
            "Changes not published to the other replicas (queue full); they expire by CACHE_TTL.",
        )?;
        let store = (settings.cache_max_entries > 0).then(|| {
            let entries = u64::from(settings.cache_max_entries);
            Arc::new(Store::with(
                usize::try_from(entries).unwrap_or(usize::MAX),
                settings.cache_max_bytes,
                Weight {
                    floor: settings.cache_max_bytes / entries,
                },
                quick_cache::DefaultHashBuilder::default(),
                Evictions(evictions.clone()),
            ))
        });
        for collector in [
            Box::new(requests.clone()) as Box<dyn Collector>,
            Box::new(evictions),
            Box::new(resets.clone()),
            Box::new(unsent.clone()),
            Box::new(SizeMetrics::new(store.clone())?),
        ] {
            metrics.register(collector)?;
        }
        let (outgoing, outgoing_rx) = mpsc::channel(1024);
        Ok(Arc::new(ResponseCache {
            id: rand::random(),
            store,
            versions: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            changed_at: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            reset_at: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            heard: AtomicU64::new(NEVER),
            origin: Instant::now(),
            ttl: settings.cache_ttl,
            offline_ttl: settings.cache_offline_ttl,
            cache_control: settings.cache_control(),
            outgoing,
            outgoing_rx: std::sync::Mutex::new(Some(outgoing_rx)),
            hits,
            misses,
            stale,
            resets,
            unsent,
        }))
    }

    /// A write committed that touched `tags`: forget them here now, and on every other replica
    /// as soon as the change reaches it.
    pub fn changed(&self, tags: &[String]) {
        if tags.is_empty() {
            return;
        }
        self.forget(tags);
        let change = Change {
            from: self.id,
            tags: tags.to_vec(),
        };
        if self.outgoing.try_send(change).is_err() {
            self.unsent.inc();
            tracing::warn!(
                "response cache: change queue full; other replicas expire it by CACHE_TTL"
            );
        }
    }

    /// Listen for the other replicas' changes on `subject` and publish this one's (and its
    /// heartbeats), until shutdown. `gaps` moves when the client may have missed messages.
    pub fn spawn_listener(
        self: &Arc<Self>,
        client: async_nats::Client,
        subject: String,
        gaps: Option<watch::Receiver<u64>>,
        shutdown: &Shutdown,
    ) {
        let cache = self.clone();
        let stop = shutdown.token();
        let outgoing = self.outgoing_rx.lock().ok().and_then(|mut rx| rx.take());
        shutdown.spawn("response cache listener", async move {
            let Some(mut outgoing) = outgoing else {
                anyhow::bail!("response cache: a second listener was started");
            };
            let mut gaps = gaps.unwrap_or_else(|| watch::channel(0).1);
            let mut heartbeat = tokio::time::interval(cache.offline_ttl / 4);
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut subscriber = loop {
                match client.subscribe(subject.clone()).await {
                    Ok(s) => break s,
                    Err(e) => {
                        tracing::warn!(error = %e, "response cache: subscribing; retrying");
                        tokio::select! {
                            () = stop.cancelled() => return Ok(()),
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            };
            loop {
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    message = futures_util::StreamExt::next(&mut subscriber) => {
                        let Some(message) = message else { return Ok(()) };
                        cache.receive(&message.payload);
                    }
                    Some(change) = outgoing.recv() => {
                        publish(&client, &subject, &change).await;
                    }
                    _ = heartbeat.tick() => {
                        let beat = Change { from: cache.id, tags: Vec::new() };
                        publish(&client, &subject, &beat).await;
                    }
                    Ok(()) = gaps.changed() => cache.reset("NATS reconnected or dropped messages"),
                }
            }
        });
    }

    /// Wait (at most `timeout`) until the listener hears its first message, so that what is
    /// cached from now on is not dropped by that first hearing (see [`Self::heard_now`]).
    pub async fn wait_until_heard(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.heard.load(Ordering::Acquire) == NEVER && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A message over NATS: proof of hearing, and another replica's change to apply.
    fn receive(&self, payload: &[u8]) {
        self.heard_now();
        match serde_json::from_slice::<Change>(payload) {
            Ok(change) if change.from != self.id => self.forget(&change.tags),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "response cache: unreadable change"),
        }
    }

    /// An entry may be served: no tag changed since its read began, no reset since, and it is
    /// young enough for what this replica hears.
    fn fresh(&self, stamp: &Stamp) -> bool {
        let age = stamp.at.elapsed();
        stamp.epoch == self.epoch.load(Ordering::Acquire)
            && age < self.ttl
            && (age < self.offline_ttl || self.online())
            && stamp
                .versions
                .iter()
                .all(|&(slot, v)| self.versions[slot].load(Ordering::Acquire) == v)
    }

    fn online(&self) -> bool {
        match self.heard.load(Ordering::Acquire) {
            NEVER => false,
            ms => self.since_origin().saturating_sub(ms) < millis(self.offline_ttl),
        }
    }

    fn since_origin(&self) -> u64 {
        millis(self.origin.elapsed())
    }

    /// A message arrived: the first one, or one after a silence longer than the offline bound,
    /// means changes may have been missed, so everything cached before is dropped.
    fn heard_now(&self) {
        let now = self.since_origin();
        let before = self.heard.swap(now, Ordering::AcqRel);
        if before == NEVER || now.saturating_sub(before) >= millis(self.offline_ttl) {
            self.reset("NATS was silent");
        }
    }

    fn reset(&self, why: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.reset_at.fetch_max(self.micros(), Ordering::AcqRel);
        self.resets.inc();
        tracing::info!(why, "response cache dropped");
    }

    fn forget(&self, tags: &[String]) {
        let now = self.micros();
        for tag in tags {
            self.versions[slot(tag)].fetch_add(1, Ordering::AcqRel);
            self.changed_at[slot(tag)].fetch_max(now, Ordering::AcqRel);
        }
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The newest moment any of `tags` changed, as this replica heard it (its own writes at
    /// once, the others' when they arrive), or the cache was dropped: a read that depends on
    /// them must see every write committed before it. Now, while NATS is silent (changes may be
    /// going unheard).
    pub fn changed_since(&self, tags: &[String]) -> Instant {
        if !self.online() {
            return Instant::now();
        }
        let newest = tags
            .iter()
            .map(|t| self.changed_at[slot(t)].load(Ordering::Acquire))
            .fold(self.reset_at.load(Ordering::Acquire), u64::max);
        self.origin + Duration::from_micros(newest)
    }

    fn stamp(&self, tags: &[String]) -> Stamp {
        Stamp {
            epoch: self.epoch.load(Ordering::Acquire),
            versions: tags
                .iter()
                .map(|t| {
                    let slot = slot(t);
                    (slot, self.versions[slot].load(Ordering::Acquire))
                })
                .collect(),
            at: Instant::now(),
        }
    }

    /// The entry of `key` if it may be served; a stale one is removed. Counts nothing: the
    /// caller counts once it knows the route is cacheable at all.
    fn find(&self, key: &str) -> Found {
        let Some(store) = &self.store else {
            return Found::Off;
        };
        let Some(entry) = store.get(key) else {
            return Found::Nothing;
        };
        if self.fresh(&entry.stamp) {
            return Found::Fresh(entry);
        }
        store.remove_if(key, |e| Arc::ptr_eq(e, &entry));
        Found::Stale
    }

    #[cfg(test)]
    fn lookup(&self, key: &str) -> Option<Arc<Entry>> {
        match self.find(key) {
            Found::Fresh(entry) => Some(entry),
            _ => None,
        }
    }

    fn count(&self, found: &Found) {
        match found {
            Found::Off => {}
            Found::Fresh(_) => self.hits.inc(),
            Found::Nothing => self.misses.inc(),
            Found::Stale => self.stale.inc(),
        }
    }

    fn keep(&self, key: String, entry: Arc<Entry>) {
        if let Some(store) = &self.store
            && self.fresh(&entry.stamp)
        {
            store.insert(key, entry);
        }
    }

    /// `if_none_match`: the request's `If-None-Match` values (usually none).
    fn respond<'a>(
        &self,
        body: Bytes,
        etag: HeaderValue,
        if_none_match: impl Iterator<Item = &'a HeaderValue>,
    ) -> Response {
        let headers = [
            (header::ETAG, etag.clone()),
            (header::CACHE_CONTROL, self.cache_control.clone()),
        ];
        if matches_any(if_none_match, &etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        (
            headers,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    }
}

async fn publish(client: &async_nats::Client, subject: &str, change: &Change) {
    let Ok(payload) = serde_json::to_vec(change) else {
        return;
    };
    if let Err(e) = client.publish(subject.to_owned(), payload.into()).await {
        tracing::warn!(error = %e, "response cache: publishing a change");
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn slot(tag: &str) -> usize {
    // A fixed-key hasher: the same tag has the same slot for the life of the process.
    let mut hasher = std::hash::DefaultHasher::new();
    tag.hash(&mut hasher);
    usize::try_from(hasher.finish() % SLOTS as u64).unwrap_or(0)
}

/// A strong validator of a body: its 128-bit XXH3, quoted. The same body has the same ETag on
/// every replica. Not a cryptographic hash: a validator only has to tell apart the versions of
/// one resource, and the catalog's bodies are not chosen by clients.
pub fn etag_of(body: &[u8]) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = xxh3_128(body).to_be_bytes();
    let mut tag = [b'"'; 34];
    for (i, b) in digest.iter().enumerate() {
        tag[1 + 2 * i] = HEX[usize::from(b >> 4)];
        tag[2 + 2 * i] = HEX[usize::from(b & 0xf)];
    }
    HeaderValue::from_bytes(&tag).unwrap_or(HeaderValue::from_static("\"\""))
}

/// Whether `If-None-Match` names `etag` (or is `*`), with the weak comparison RFC 9110 asks for.
pub fn none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
    matches_any(request.get_all(header::IF_NONE_MATCH).iter(), etag)
}

/// Whether any of the `If-None-Match` header values names `etag` (or is `*`).
fn matches_any<'a>(values: impl Iterator<Item = &'a HeaderValue>, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// Which tags the response of a route depends on: the route's template (`/v1/items/{id}`) and
/// the path; `None` for a route that must not be cached.
pub type TagsOf = fn(route: &str, path: &str) -> Option<Vec<String>>;

/// The middleware state of [`serve`].
#[derive(Clone)]
pub struct Cached {
    pub cache: Arc<ResponseCache>,
    pub tags_of: TagsOf,
    /// Where a miss's handler reads (a replica when it has every change of the route's tags);
    /// `None`: the handler reads where it always does.
    pub reads: Option<crate::replica::Reads>,
}

/// Middleware (`route_layer`): GETs (and HEADs, which axum answers with the GET handler and
/// strips of their body outside this layer) of routes `tags_of` names are answered from the cache
/// when it holds them; otherwise the handler's 200 is kept. Both carry the ETag and the public
/// `Cache-Control`, and a matching `If-None-Match` gets a 304 without a body.
pub async fn serve(State(cached): State<Cached>, request: Request, next: Next) -> Response {
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .filter(|_| matches!(*request.method(), Method::GET | Method::HEAD))
    else {
        return next.run(request).await;
    };
    let cache = &cached.cache;
    let uri = request.uri();
    let key = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    // Only the answers of routes that `tags_of` names are kept, so an entry found is served
    // without asking for the route's tags or copying its key.
    let found = cache.find(key);
    if let Found::Fresh(entry) = &found {
        cache.count(&found);
        let asked = request.headers().get_all(header::IF_NONE_MATCH);
        return cache.respond(entry.body.clone(), entry.etag.clone(), asked.iter());
    }
    let Some(tags) = (cached.tags_of)(route.as_str(), uri.path()) else {
        return next.run(request).await;
    };
    cache.count(&found);
    let key = key.to_owned();
    // Only what the answer depends on, not a copy of every header (an empty Vec allocates nothing).
    let asked: Vec<HeaderValue> = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .cloned()
        .collect();
    let stamp = cache.stamp(&tags);
    let response = match &cached.reads {
        Some(reads) => reads.run(request, cache.changed_since(&tags), next).await,
        None => next.run(request).await,
    };
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "response cache: reading a response body");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let etag = etag_of(&body);
    cache.keep(
        key,
        Arc::new(Entry {
            body: body.clone(),
            etag: etag.clone(),
            stamp,
        }),
    );
    cache.respond(body, etag, asked.iter())
}

/// `response_cache_entries` and `response_cache_bytes`, read at scrape time.
struct SizeMetrics {
    store: Option<Arc<Store>>,
    gauge: IntGaugeVec,
}

impl SizeMetrics {
    fn new(store: Option<Arc<Store>>) -> Result<Self, prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "response_cache_size",
                "The response cache's size: `entries`, and `bytes` as counted against \
                 CACHE_MAX_BYTES.",
            ),
            &["unit"],
        )?;
        Ok(SizeMetrics { store, gauge })
    }
}

impl Collector for SizeMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (entries, bytes) = self
            .store
            .as_ref()
            .map_or((0, 0), |s| (s.len(), s.weight()));
        self.gauge
            .with_label_values(&["entries"])
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.gauge
            .with_label_values(&["bytes"])
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(settings: CacheSettings) -> Arc<ResponseCache> {
        let metrics = Metrics::new("test", "0").unwrap_or_else(|e| panic!("{e}"));
        ResponseCache::new(&settings, &metrics).unwrap_or_else(|e| panic!("{e}"))
    }

    fn entry(cache: &ResponseCache, tags: &[&str], body: &'static str) -> Arc<Entry> {
        let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
        Arc::new(Entry {
            body: Bytes::from_static(body.as_bytes()),
            etag: etag_of(body.as_bytes()),
            stamp: cache.stamp(&tags),
        })
    }

    #[test]
    fn a_change_forgets_the_entries_of_its_tags_and_no_other() {
        let cache = cache(CacheSettings::default());
        cache.heard_now();
        cache.keep("/a".into(), entry(&cache, &["items", "item:1"], "a"));
        cache.keep("/b".into(), entry(&cache, &["item:2"], "b"));
        assert!(cache.lookup("/a").is_some());
        cache.changed(&["item:1".to_owned()]);
        assert!(cache.lookup("/a").is_none());
        assert!(cache.lookup("/b").is_some());
    }

    #[test]
    fn a_replica_applies_the_changes_of_others_but_not_the_echo_of_its_own() {
        let cache = cache(CacheSettings::default());
        cache.heard_now();
        let message = |from: u64| {
            serde_json::to_vec(&Change {
                from,
                tags: vec!["items".to_owned()],
            })
            .unwrap_or_else(|e| panic!("{e}"))
        };
        // Its own change was applied when written; an answer read after it is good, and the echo
        // (arriving late) must not drop it.
        cache.changed(&["items".to_owned()]);
        cache.keep("/list".into(), entry(&cache, &["items"], "after"));
        cache.receive(&message(cache.id));
        assert!(cache.lookup("/list").is_some());
        cache.receive(&message(cache.id.wrapping_add(1)));
        assert!(cache.lookup("/list").is_none());
        // Unreadable messages still count as hearing, and change nothing.
        cache.keep("/list".into(), entry(&cache, &["items"], "again"));
        cache.receive(b"not json");
        assert!(cache.lookup("/list").is_some());
    }

    #[test]
    fn a_read_that_began_before_a_change_is_never_served() {
        let cache = cache(CacheSettings::default());
        cache.heard_now();
        // The read starts (stamp), the write commits and is announced, the read ends (keep).
        let stale = entry(&cache, &["items"], "old");
        cache.changed(&["items".to_owned()]);
        cache.keep("/list".into(), stale);
        assert!(cache.lookup("/list").is_none());
    }

    #[test]
    fn without_news_from_nats_only_young_entries_are_served() {
        let settings = CacheSettings {
            cache_offline_ttl: Duration::from_millis(100),
            ..CacheSettings::default()
        };
        let cache = cache(settings);
        // Never heard: an entry younger than the bound is served, an older one is not.
        cache.keep("/a".into(), entry(&cache, &["items"], "a"));
        assert!(cache.lookup("/a").is_some());
        std::thread::sleep(Duration::from_millis(150));
        assert!(cache.lookup("/a").is_none());
        // Heard again after the silence: what was cached before is dropped.
        cache.keep("/b".into(), entry(&cache, &["items"], "b"));
        cache.heard_now();
        assert!(cache.lookup("/b").is_none());
    }

    #[test]
    fn both_limits_hold_with_one_weight() {
        let cache = cache(CacheSettings {
            cache_max_entries: 10,
            cache_max_bytes: 10_000,
            ..CacheSettings::default()
        });
        cache.heard_now();
        for i in 0..100 {
            cache.keep(format!("/{i}"), entry(&cache, &["items"], "tiny"));
        }
        let store = cache.store.as_ref().unwrap_or_else(|| panic!("enabled"));
        assert!(store.len() <= 10, "{} entries", store.len());
        let big: &'static str = Box::leak("x".repeat(3_000).into_boxed_str());
        for i in 0..10 {
            cache.keep(format!("/big{i}"), entry(&cache, &["items"], big));
        }
        assert!(store.weight() <= 10_000, "{} bytes", store.weight());
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let etag = etag_of(b"body");
        let e = etag.to_str().unwrap_or_else(|e| panic!("{e}"));
        let ask = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
            none_match(&h, &etag)
        };
        assert!(ask(e));
        assert!(ask(&format!("\"other\", W/{e}")));
        assert!(ask("*"));
        assert!(!ask("\"other\""));
        assert!(!none_match(&HeaderMap::new(), &etag));
        assert_ne!(etag_of(b"body"), etag_of(b"bodz"));
    }
}
