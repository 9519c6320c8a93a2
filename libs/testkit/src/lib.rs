//! Test harness: a fresh database per test, cloned from a migrated template, and a random NATS
//! namespace per test, against the real PostgreSQL and NATS that `make test` starts or finds.
//!
//! Where they are: `TEST_DATABASE_URL` (an admin connection, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `TEST_NATS_URL` (default
//! `nats://127.0.0.1:4334`, the port `scripts/test.sh` starts its NATS on).
//!
//! A dev-only crate: every crate takes it in `[dev-dependencies]`, so none of it is compiled
//! into a service. Besides the database and NATS: `settings` (a service's settings load back),
//! `tls` (an HTTPS server with a CA made per test), fault and counting proxies, a NATS server of
//! a test's own, an SMTP sink, a fake Kubernetes Lease API (feature `lease`) and `prod_command`
//! (a binary run as production runs it).

pub mod openapi;
mod prod;
pub mod replication;
pub mod settings;
pub mod tls;

pub use prod::{ProdDb, assert_ran, prod_command};

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4334".to_owned())
}

/// A namespace no other test uses, so tests can share one NATS server in parallel.
pub fn nats_namespace() -> String {
    format!("t{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Connection URL for another database on the admin server.
pub fn url_for(database: &str) -> String {
    let admin = admin_url();
    match admin.rsplit_once('/') {
        Some((server, tail)) => {
            let query = tail
                .split_once('?')
                .map(|(_, q)| format!("?{q}"))
                .unwrap_or_default();
            format!("{server}/{database}{query}")
        }
        None => format!("{admin}/{database}"),
    }
}

/// A database that exists for one test and is dropped when the value is.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A new database with `migrator`'s schema, copied from a template that is migrated once per
    /// set of migrations (the template's name holds their checksum, so a changed migration builds
    /// a new one). `label` names the schema (`auth`, `catalog`).
    pub async fn new(label: &str, migrator: &'static Migrator) -> TestDb {
        let template = template_name(label, migrator);
        let mut admin = admin_connection().await;
        ensure_template(&mut admin, &template, migrator).await;
        let name = format!("sf_test_{label}_{}", random_suffix());
        exec(
            &mut admin,
            format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#),
        )
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let _ = admin.close().await;
        TestDb {
            url: url_for(&name),
            name,
        }
    }

    /// An empty database (no migrations), for tests of the migration machinery itself.
    pub async fn empty(label: &str) -> TestDb {
        let mut admin = admin_connection().await;
        let name = format!("sf_test_{label}_{}", random_suffix());
        exec(&mut admin, format!(r#"CREATE DATABASE "{name}""#))
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let _ = admin.close().await;
        TestDb {
            url: url_for(&name),
            name,
        }
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs outside async; a short-lived thread with its own runtime does the DROP.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                        let _ = exec(
                            &mut admin,
                            format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
                        )
                        .await;
                        let _ = admin.close().await;
                    }
                });
            }
        });
        let _ = dropped.join();
    }
}

async fn admin_connection() -> PgConnection {
    PgConnection::connect(&admin_url())
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach PostgreSQL at TEST_DATABASE_URL ({}): {e}; run `make test`, which finds or starts it", admin_url())
        })
}

fn template_name(label: &str, migrator: &Migrator) -> String {
    // FNV-1a over every migration's checksum: stable across runs, changes with any migration.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for m in migrator.iter() {
        for byte in m.version.to_le_bytes().iter().chain(m.checksum.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("sf_template_{label}_{hash:016x}")
}

async fn ensure_template(admin: &mut PgConnection, template: &str, migrator: &'static Migrator) {
    // Several test processes may start at once: one builds, the others wait on the lock.
    let lock_key = i64::from_le_bytes(*b"sf-tmpl!");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock_key)
        .execute(&mut *admin)
        .await
        .unwrap_or_else(|e| panic!("locking template creation: {e}"));
    let existing: BTreeSet<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'sf_template_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
    if !existing.contains(template) {
        exec(admin, format!(r#"CREATE DATABASE "{template}""#))
            .await
            .unwrap_or_else(|e| panic!("creating template {template}: {e}"));
        let mut conn = PgConnection::connect(&url_for(template))
            .await
            .unwrap_or_else(|e| panic!("connecting to template {template}: {e}"));
        migrator
            .run(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("migrating template {template}: {e}"));
        let _ = conn.close().await;
        // Templates of older migration sets are garbage now.
        let prefix = template
            .rsplit_once('_')
            .map(|(p, _)| p)
            .unwrap_or(template);
        for stale in existing.iter().filter(|t| t.starts_with(prefix)) {
            let _ = exec(admin, format!(r#"DROP DATABASE IF EXISTS "{stale}""#)).await;
        }
    }
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock_key)
        .execute(&mut *admin)
        .await;
}

/// Poll `probe` until it returns true or `timeout` passes; returns the last answer.
pub async fn eventually<F, Fut>(timeout: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if probe().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn exec(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A TCP proxy that a test can cut and restore, to take a dependency (PostgreSQL, NATS) away
/// from one app without disturbing the shared server other tests use.
pub struct FaultProxy {
    pub addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listen on a free local port and forward every connection to `target` (`host:port`).
    pub async fn start(target: &str) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding proxy: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy address: {e}"));
        let (cut, watch) = tokio::sync::watch::channel(false);
        let target = target.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if *watch.borrow() {
                    // Cut: accept and drop at once, as a dead host behind a load balancer would.
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        FaultProxy { addr, cut, task }
    }

    /// Drop every open connection and refuse new ones.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }

    /// `url` with its `host:port` replaced by the proxy's address.
    pub fn rewrite(&self, url: &str) -> String {
        with_host(url, self.addr)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `url` (`scheme://user@host:port/path`) with `host:port` replaced by `addr`.
fn with_host(raw: &str, addr: std::net::SocketAddr) -> String {
    let mut url = url::Url::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
    url.set_ip_host(addr.ip())
        .unwrap_or_else(|()| panic!("{raw:?} cannot have a host"));
    url.set_port(Some(addr.port()))
        .unwrap_or_else(|()| panic!("{raw:?} cannot have a port"));
    url.into()
}

/// `host:port` of a URL such as `postgres://u@host:5432/db` or `nats://host:4222`.
pub fn host_port(raw: &str) -> String {
    let url = url::Url::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
    let host = url
        .host_str()
        .unwrap_or_else(|| panic!("{raw:?} has no host"));
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// A proxy in front of PostgreSQL that records what a client has the server do: the SQL of every
/// statement it executes (simple `Query`, or `Execute` of a bound prepared statement) and every
/// round trip, each point where the client waits for the server (a simple `Query`, or the
/// extended-protocol messages up to a `Sync`). A test can so prove a request runs a fixed number
/// of queries whatever the data (no N+1), and count what a request costs the database
/// ([`StatementCounter::measure`], used by docs/capacity.md's tables). The client must not use
/// TLS: give it `?sslmode=disable` ([`StatementCounter::rewrite`] does).
pub struct StatementCounter {
    pub addr: std::net::SocketAddr,
    executed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    round_trips: std::sync::Arc<std::sync::Mutex<Vec<RoundTrip>>>,
    task: tokio::task::JoinHandle<()>,
}

/// One round trip through a [`StatementCounter`]: what the client sent before it waited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundTrip {
    /// The client connection it was made on, numbered in the order the counter accepted them.
    pub connection: usize,
    /// The SQL of the statements it executed, in order.
    pub executed: Vec<String>,
    /// The SQL of the statements it prepared under a name. A client that caches prepared
    /// statements (sqlx does, per connection) prepares each once per connection.
    pub prepared: Vec<String>,
    /// The SQL of the statements it parsed unnamed, which are parsed again at every use.
    pub parsed: Vec<String>,
}

impl RoundTrip {
    /// A round trip that executes nothing and parses nothing anew: a connection's first use of
    /// statements (prepared and then cached), or the `Close` of one its cache evicts. A
    /// connection that has run the same work before does not make it.
    pub fn only_prepares(&self) -> bool {
        self.executed.is_empty() && self.parsed.is_empty()
    }
}

/// What the database did for a piece of work ([`StatementCounter::measure`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbCost {
    /// Statements executed, `BEGIN` and `COMMIT` included.
    pub statements: usize,
    pub round_trips: usize,
    /// The SQL executed, in order, for a reader of a failure.
    pub sql: Vec<String>,
}

impl DbCost {
    /// The same numbers of statements and round trips (whatever the SQL's parameters).
    pub fn same_counts(&self, other: &DbCost) -> bool {
        (self.statements, self.round_trips) == (other.statements, other.round_trips)
    }
}

/// The NUL-terminated string at the start of `bytes`, and the rest.
fn cstring(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let rest = bytes.get(end + 1..).unwrap_or(&[]);
    (String::from_utf8_lossy(&bytes[..end]).into_owned(), rest)
}

/// Round trips that belong together: one transaction (`BEGIN` to `COMMIT` or `ROLLBACK` on one
/// connection), or one round trip outside a transaction. `first` is the index of its first round
/// trip in the log; `open` says its transaction has not ended yet.
struct Unit<'a> {
    first: usize,
    round_trips: Vec<&'a RoundTrip>,
    open: bool,
}

/// Whether `sql` is the statement `keyword` (`BEGIN`, or `BEGIN ISOLATION LEVEL …`).
fn is_sql(sql: &str, keyword: &str) -> bool {
    let sql = sql.trim();
    sql.get(..keyword.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(keyword))
        && sql[keyword.len()..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c == ';')
}

/// The cost of `trips`, less the round trips that only prepare.
fn cost(trips: &[&RoundTrip]) -> DbCost {
    let mut cost = DbCost::default();
    for trip in trips.iter().filter(|t| !t.only_prepares()) {
        cost.round_trips += 1;
        cost.statements += trip.executed.len();
        cost.sql.extend(trip.executed.iter().cloned());
    }
    cost
}

/// The units of `log`, ordered by their first round trip. Savepoints stay inside their
/// transaction: only a bare `COMMIT` or `ROLLBACK` ends it (`ROLLBACK TO SAVEPOINT` does not).
fn units(log: &[RoundTrip]) -> Vec<Unit<'_>> {
    use std::collections::HashMap;
    let mut done = Vec::new();
    let mut open: HashMap<usize, Unit<'_>> = HashMap::new();
    for (i, trip) in log.iter().enumerate() {
        let ends = trip.executed.iter().any(|sql| {
            let sql = sql.trim().trim_end_matches(';').trim();
            sql.eq_ignore_ascii_case("COMMIT") || sql.eq_ignore_ascii_case("ROLLBACK")
        });
        if let Some(mut unit) = open.remove(&trip.connection) {
            unit.round_trips.push(trip);
            if ends {
                unit.open = false;
                done.push(unit);
            } else {
                open.insert(trip.connection, unit);
            }
        } else if trip
            .executed
            .iter()
            .any(|sql| is_sql(sql, "BEGIN") || is_sql(sql, "START TRANSACTION"))
            && !ends
        {
            open.insert(
                trip.connection,
                Unit {
                    first: i,
                    round_trips: vec![trip],
                    open: true,
                },
            );
        } else {
            done.push(Unit {
                first: i,
                round_trips: vec![trip],
                open: false,
            });
        }
    }
    done.extend(open.into_values());
    done.sort_by_key(|u| u.first);
    done
}

impl StatementCounter {
    /// Start the counter (from inside a Tokio runtime; it need not be awaited, so that settings
    /// closures can call it).
    pub fn start(target: &str) -> StatementCounter {
        use std::collections::HashMap;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .unwrap_or_else(|e| panic!("binding counter: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("counter address: {e}"));
        let executed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let round_trips = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let target = target.to_owned();
        let (log, trips) = (executed.clone(), round_trips.clone());
        let task = tokio::spawn(async move {
            let mut connections = 0..;
            while let Ok((inbound, _)) = listener.accept().await {
                let connection = connections.next().unwrap_or_default();
                let target = target.clone();
                let (log, trips) = (log.clone(), trips.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut client_rx, mut client_tx) = inbound.into_split();
                    let (mut server_rx, mut server_tx) = outbound.into_split();
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
                    });
                    // Startup packet: length-prefixed, no type byte.
                    let mut len = [0u8; 4];
                    if client_rx.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
                    if client_rx.read_exact(&mut body).await.is_err()
                        || server_tx.write_all(&len).await.is_err()
                        || server_tx.write_all(&body).await.is_err()
                    {
                        return;
                    }
                    // Then typed messages: one byte of type, four of length.
                    let mut statements: HashMap<String, String> = HashMap::new();
                    let mut portals: HashMap<String, String> = HashMap::new();
                    let fresh = || RoundTrip {
                        connection,
                        ..RoundTrip::default()
                    };
                    let mut trip = fresh();
                    loop {
                        let mut head = [0u8; 5];
                        if client_rx.read_exact(&mut head).await.is_err() {
                            break;
                        }
                        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                        let mut body = vec![0u8; len.saturating_sub(4)];
                        if client_rx.read_exact(&mut body).await.is_err() {
                            break;
                        }
                        // Recorded before it is forwarded: once the server has answered, the
                        // client's round trip is in the log.
                        let mut flush = false;
                        match head[0] {
                            b'Q' => {
                                let (sql, _) = cstring(&body);
                                if let Ok(mut l) = log.lock() {
                                    l.push(sql.clone());
                                }
                                trip.executed.push(sql);
                                flush = true;
                            }
                            b'P' => {
                                let (name, rest) = cstring(&body);
                                let (sql, _) = cstring(rest);
                                if name.is_empty() {
                                    trip.parsed.push(sql.clone());
                                } else {
                                    trip.prepared.push(sql.clone());
                                }
                                statements.insert(name, sql);
                            }
                            b'B' => {
                                let (portal, rest) = cstring(&body);
                                let (statement, _) = cstring(rest);
                                portals.insert(portal, statement);
                            }
                            b'E' => {
                                let (portal, _) = cstring(&body);
                                let sql = portals
                                    .get(&portal)
                                    .and_then(|s| statements.get(s))
                                    .cloned()
                                    .unwrap_or_default();
                                if let Ok(mut l) = log.lock() {
                                    l.push(sql.clone());
                                }
                                trip.executed.push(sql);
                            }
                            // Sync: the end of an extended-protocol pipeline.
                            b'S' => flush = true,
                            _ => {}
                        }
                        if flush && let Ok(mut t) = trips.lock() {
                            t.push(std::mem::replace(&mut trip, fresh()));
                        }
                        if server_tx.write_all(&head).await.is_err()
                            || server_tx.write_all(&body).await.is_err()
                        {
                            break;
                        }
                    }
                    down.abort();
                });
            }
        });
        StatementCounter {
            addr,
            executed,
            round_trips,
            task,
        }
    }

    /// How many executed statements so far match `filter` (e.g. mention a table).
    pub fn executed(&self, filter: impl Fn(&str) -> bool) -> usize {
        self.executed
            .lock()
            .map(|l| l.iter().filter(|sql| filter(sql)).count())
            .unwrap_or(0)
    }

    /// Every round trip so far, in the order they were made.
    pub fn round_trips(&self) -> Vec<RoundTrip> {
        self.round_trips
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    /// The statements and round trips of the work `run` causes, as a connection that has done
    /// the same work before makes them (round trips that [only prepare](RoundTrip::only_prepares)
    /// are left out). Work is taken by unit: a transaction, or one round trip outside one. Left
    /// out too are the units that began before `run` did and those with a statement that
    /// `background` recognises (an outbox relay's poll, a periodic purge: work the service does
    /// whether asked or not). Waits (at most 10 s) until no transaction is open, so a background
    /// transaction that has begun but not yet shown what it is cannot pass for the work's.
    pub async fn measure<T>(
        &self,
        background: impl Fn(&str) -> bool,
        run: impl Future<Output = T>,
    ) -> (T, DbCost) {
        let mark = self.round_trips().len();
        let out = run.await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let log = loop {
            let log = self.round_trips();
            if !units(&log).iter().any(|u| u.open) {
                break log;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a transaction stayed open for 10 s: {:?}",
                units(&log)
                    .iter()
                    .filter(|u| u.open)
                    .map(|u| &u.round_trips)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let work: Vec<&RoundTrip> = units(&log)
            .into_iter()
            .filter(|u| u.first >= mark)
            .filter(|u| {
                !u.round_trips
                    .iter()
                    .any(|t| t.executed.iter().any(|sql| background(sql)))
            })
            .flat_map(|u| u.round_trips)
            .collect();
        (out, cost(&work))
    }

    /// [`StatementCounter::measure`] of `work` as a warm connection runs it: once unmeasured
    /// (so its statements are prepared), then `runs` times, each with what `setup` (not
    /// measured) returns. The cost of each run, which a test expects to agree
    /// ([`DbCost::same_counts`]).
    pub async fn measure_repeatedly<S>(
        &self,
        background: impl Fn(&str) -> bool,
        runs: usize,
        setup: impl AsyncFn() -> S,
        work: impl AsyncFn(S),
    ) -> Vec<DbCost> {
        work(setup().await).await;
        let mut costs = Vec::new();
        for _ in 0..runs {
            let state = setup().await;
            costs.push(self.measure(&background, work(state)).await.1);
        }
        costs
    }

    /// A row of a statements table of docs/capacity.md: `label` (quoted as code) and the
    /// statements and round trips of `work`, measured [`DOCUMENTED_RUNS`] times (the runs must
    /// agree). The SQL of a run is printed, which a failing test shows.
    pub async fn documented_row<S>(
        &self,
        background: impl Fn(&str) -> bool,
        label: &str,
        setup: impl AsyncFn() -> S,
        work: impl AsyncFn(S),
    ) -> Vec<String> {
        let costs = self
            .measure_repeatedly(background, DOCUMENTED_RUNS, setup, work)
            .await;
        if let Some(cost) = costs.first() {
            eprintln!("{label}:");
            for sql in &cost.sql {
                let words: Vec<&str> = sql.split_whitespace().collect();
                eprintln!("  {:.100}", words.join(" "));
            }
        }
        table_row(&format!("`{label}`"), &costs)
    }

    /// What each unit so far (a transaction, or one round trip outside one) that executed a
    /// statement `matching` recognises cost, in the order they began; round trips that [only
    /// prepare](RoundTrip::only_prepares) are left out, as in [`StatementCounter::measure`]. For
    /// work a test does not start itself: an outbox relay's pass, an event applied.
    pub fn units(&self, matching: impl Fn(&str) -> bool) -> Vec<DbCost> {
        let log = self.round_trips();
        units(&log)
            .iter()
            .filter(|u| !u.open)
            .filter(|u| {
                u.round_trips
                    .iter()
                    .any(|t| t.executed.iter().any(|sql| matching(sql)))
            })
            .map(|u| cost(&u.round_trips))
            .collect()
    }

    /// `url` pointed at the counter, without TLS.
    pub fn rewrite(&self, url: &str) -> String {
        let url = with_host(url, self.addr);
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}sslmode=disable")
    }
}

impl Drop for StatementCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keep a table in a document true, as docs/capacity.md's counts of statements are: `table` (its
/// header row first; the first column names a row, the others are right-aligned) must be the
/// markdown table between the lines `<!-- {block}:begin -->` and `<!-- {block}:end -->` of `doc`.
/// Cells are compared trimmed, so the table may be aligned by hand. When the environment variable
/// `update` is set, the block is written instead; otherwise a difference panics, printing the
/// table as measured.
/// How many times [`StatementCounter::documented_row`] measures a request (after one unmeasured
/// run that prepares its statements).
pub const DOCUMENTED_RUNS: usize = 3;

/// A row of a statements table: `label`, then the statements and round trips every one of
/// `costs` has (they must agree).
pub fn table_row<'a>(label: &str, costs: impl IntoIterator<Item = &'a DbCost>) -> Vec<String> {
    let costs: Vec<&DbCost> = costs.into_iter().collect();
    let one = costs
        .first()
        .unwrap_or_else(|| panic!("{label}: nothing measured"));
    assert!(
        costs.iter().all(|c| c.same_counts(one)),
        "{label}: the runs disagree: {costs:#?}"
    );
    vec![
        label.to_owned(),
        one.statements.to_string(),
        one.round_trips.to_string(),
    ]
}

pub fn documented_table_is(
    doc: &std::path::Path,
    block: &str,
    table: &[Vec<String>],
    update: &str,
) {
    let text =
        std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("reading {}: {e}", doc.display()));
    let (begin, end) = (
        format!("<!-- {block}:begin -->\n"),
        format!("<!-- {block}:end -->"),
    );
    let (Some(start), Some(stop)) = (text.find(&begin), text.find(&end)) else {
        panic!("{} has no block {begin:?} … {end:?}", doc.display());
    };
    let start = start + begin.len();
    assert!(
        start <= stop,
        "{}: {block}:end before its begin",
        doc.display()
    );
    let cells = |line: &str| -> Vec<String> {
        let line = line.trim().trim_start_matches('|').trim_end_matches('|');
        line.split('|').map(|c| c.trim().to_owned()).collect()
    };
    let documented: Vec<Vec<String>> = text[start..stop]
        .lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .map(cells)
        .filter(|row| !row.iter().all(|c| c.chars().all(|ch| "-: ".contains(ch))))
        .collect();
    let mut rendered = String::new();
    for (i, row) in table.iter().enumerate() {
        rendered.push_str(&format!("| {} |\n", row.join(" | ")));
        if i == 0 {
            let rule: Vec<&str> = (0..row.len())
                .map(|c| if c == 0 { "---" } else { "---:" })
                .collect();
            rendered.push_str(&format!("| {} |\n", rule.join(" | ")));
        }
    }
    if std::env::var_os(update).is_some() {
        let updated = format!("{}{rendered}{}", &text[..start], &text[stop..]);
        std::fs::write(doc, updated).unwrap_or_else(|e| panic!("writing {}: {e}", doc.display()));
        return;
    }
    assert!(
        documented == table,
        "{} ({block}) differs from what was measured:\n\n{rendered}\nif the change is meant, run \
         the test again with {update}=1 and commit the document",
        doc.display()
    );
}

/// A NATS server of a test's own (so the test may stop and restart it), on a free port with its
/// own JetStream directory. The binary comes from `NATS_SERVER_BIN` (set by `scripts/test.sh`).
pub struct OwnNats {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl OwnNats {
    pub async fn start() -> OwnNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let dir = std::env::temp_dir().join(format!("sf-nats-{}", random_suffix()));
        let mut nats = OwnNats {
            port,
            dir,
            child: None,
        };
        nats.launch().await;
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) {
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
        let child = std::process::Command::new(&bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin} (set NATS_SERVER_BIN): {e}"));
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        let up = eventually(Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(&addr).await.is_ok()
        })
        .await;
        assert!(up, "nats-server did not come up on {addr}");
    }

    /// Stop the server gracefully (SIGTERM, as an orchestrator would), wait for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }

    /// Start it again on the same port and data.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A minimal SMTP server that keeps what it receives, for tests of e-mail delivery (the worker's
/// `smtp` transport talks real SMTP to it). While [`SmtpSink::stall`] is set it accepts
/// connections and never answers, like a mail server that hangs.
pub struct SmtpSink {
    pub port: u16,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding the SMTP sink: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("SMTP sink address: {e}"))
            .port();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (inbox, stall) = (received.clone(), stalled.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (inbox, stall) = (inbox.clone(), stall.clone());
                tokio::spawn(async move {
                    if stall.load(std::sync::atomic::Ordering::SeqCst) {
                        // Hold the connection open, silent, until the client gives up.
                        let _keep = socket;
                        tokio::time::sleep(Duration::from_secs(600)).await;
                        return;
                    }
                    let _ = smtp_session(socket, &inbox).await;
                });
            }
        });
        SmtpSink {
            port,
            received,
            stalled,
            task,
        }
    }

    /// `smtp://127.0.0.1:PORT` (plain, no TLS: it is a local test server).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message's DATA, in arrival order.
    pub fn messages(&self) -> Vec<String> {
        self.received.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn stall(&self, on: bool) {
        self.stalled.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn smtp_session(
    socket: tokio::net::TcpStream,
    inbox: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink ESMTP\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?,
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => write.write_all(b"250 OK\r\n").await?,
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                while let Some(line) = lines.next_line().await? {
                    if line == "." {
                        break;
                    }
                    data.push_str(&line);
                    data.push('\n');
                }
                if let Ok(mut inbox) = inbox.lock() {
                    inbox.push(data);
                }
                write.write_all(b"250 queued\r\n").await?;
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"502 not implemented\r\n").await?,
        }
    }
    Ok(())
}

/// What a test must pass on to a child process it starts with a cleared environment: the
/// coverage run's `LLVM_PROFILE_FILE` (so the child's profile lands with the others).
pub fn coverage_env() -> Vec<(String, String)> {
    std::env::var("LLVM_PROFILE_FILE")
        .map(|v| vec![("LLVM_PROFILE_FILE".to_owned(), v)])
        .unwrap_or_default()
}

/// A fake Kubernetes API server holding Leases, with the API server's optimistic concurrency
/// (`resourceVersion` conflicts → 409), for testing Lease election where no cluster can run.
#[cfg(feature = "lease")]
pub struct FakeLeaseApi {
    pub url: String,
    leases: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, serde_json::Value>>>,
    task: tokio::task::JoinHandle<()>,
}

#[cfg(feature = "lease")]
impl FakeLeaseApi {
    pub async fn start() -> FakeLeaseApi {
        use axum::extract::{Path, State};
        use axum::http::StatusCode;
        use axum::routing::{get, post};
        use serde_json::{Value, json};

        type Leases = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Value>>>;
        fn status(code: StatusCode, reason: &str) -> (StatusCode, axum::Json<Value>) {
            (
                code,
                axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": reason, "reason": reason,
                    "code": code.as_u16()})),
            )
        }
        async fn read(
            State(leases): State<Leases>,
            Path((_ns, name)): Path<(String, String)>,
        ) -> (StatusCode, axum::Json<Value>) {
            let leases = leases.lock().unwrap_or_else(|e| e.into_inner());
            match leases.get(&name) {
                Some(lease) => (StatusCode::OK, axum::Json(lease.clone())),
                None => status(StatusCode::NOT_FOUND, "NotFound"),
            }
        }
        async fn create(
            State(leases): State<Leases>,
            Path(_ns): Path<String>,
            axum::Json(mut lease): axum::Json<Value>,
        ) -> (StatusCode, axum::Json<Value>) {
            let mut leases = leases.lock().unwrap_or_else(|e| e.into_inner());
            let name = lease["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if leases.contains_key(&name) {
                return status(StatusCode::CONFLICT, "AlreadyExists");
            }
            lease["metadata"]["resourceVersion"] = json!("1");
            leases.insert(name, lease.clone());
            (StatusCode::CREATED, axum::Json(lease))
        }
        async fn replace(
            State(leases): State<Leases>,
            Path((_ns, name)): Path<(String, String)>,
            axum::Json(mut lease): axum::Json<Value>,
        ) -> (StatusCode, axum::Json<Value>) {
            let mut leases = leases.lock().unwrap_or_else(|e| e.into_inner());
            let Some(current) = leases.get(&name) else {
                return status(StatusCode::NOT_FOUND, "NotFound");
            };
            let version = current["metadata"]["resourceVersion"].clone();
            if lease["metadata"]["resourceVersion"] != version {
                return status(StatusCode::CONFLICT, "Conflict");
            }
            let next: u64 = version.as_str().and_then(|v| v.parse().ok()).unwrap_or(0) + 1;
            lease["metadata"]["resourceVersion"] = json!(next.to_string());
            leases.insert(name, lease.clone());
            (StatusCode::OK, axum::Json(lease))
        }

        let leases: Leases = Default::default();
        let app = axum::Router::new()
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
                post(create),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}",
                get(read).put(replace),
            )
            .with_state(leases.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding the fake API server: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake API server address: {e}"))
            .port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeLeaseApi {
            url: format!("http://127.0.0.1:{port}"),
            leases,
            task,
        }
    }

    /// A client of this server, as a pod in `namespace` would have.
    pub fn client(&self, namespace: &str) -> kube::Client {
        let mut config = kube::Config::new(
            self.url
                .parse()
                .unwrap_or_else(|e| panic!("fake API server URL: {e}")),
        );
        config.default_namespace = namespace.to_owned();
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("kube client: {e}"))
    }

    /// Another candidate takes Lease `name` now (as after this one's lost renewals).
    pub fn steal(&self, name: &str, holder: &str) {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lease) = leases.get_mut(name) {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            lease["spec"]["holderIdentity"] = serde_json::json!(holder);
            lease["spec"]["renewTime"] = serde_json::json!(now);
            let next: u64 = lease["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
                + 1;
            lease["metadata"]["resourceVersion"] = serde_json::json!(next.to_string());
        }
    }

    /// The holder of Lease `name`, if any.
    pub fn holder(&self, name: &str) -> Option<String> {
        let leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        leases
            .get(name)
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
    }
}

#[cfg(feature = "lease")]
impl Drop for FakeLeaseApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain reqwest client for tests. reqwest is built with `rustls-no-provider`: a client needs
/// the process's crypto provider installed first, which this does.
pub fn http_client() -> reqwest::Client {
    platform::http_client::install_crypto_provider();
    reqwest::Client::new()
}

/// `reqwest::get` with the crypto provider installed (see [`http_client`]).
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http_client().get(url).send().await
}
