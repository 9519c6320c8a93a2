//! PostgreSQL: the pool, readiness, pool metrics and the `migrate` command.
//!
//! Migrations live in `migrations/<db>/` as reversible pairs (`<version>_<name>.up.sql` /
//! `.down.sql`) and are embedded in the service binary with `sqlx::migrate!`.

use std::collections::BTreeSet;

use anyhow::Context;
use clap::Subcommand;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use sqlx::PgPool;
use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::{DatabaseSettings, Secret};

/// A pool that connects lazily: the service starts (unready) while the database is down and
/// recovers by itself when it returns.
pub fn pool(settings: &DatabaseSettings, application_name: &str) -> anyhow::Result<PgPool> {
    pool_with_timeout(settings, application_name, settings.db_statement_timeout)
}

fn pool_with_timeout(
    settings: &DatabaseSettings,
    application_name: &str,
    statement_timeout: std::time::Duration,
) -> anyhow::Result<PgPool> {
    let url = settings
        .database_url
        .as_ref()
        .context("DATABASE_URL is not set")?;
    pool_of(
        url,
        "DATABASE_URL",
        settings,
        application_name,
        statement_timeout,
    )
}

/// A pool like [`pool`]'s to another database: a read replica's (`setting` names its URL).
pub fn pool_for(
    url: &Secret,
    setting: &str,
    settings: &DatabaseSettings,
    application_name: &str,
) -> anyhow::Result<PgPool> {
    pool_of(
        url,
        setting,
        settings,
        application_name,
        settings.db_statement_timeout,
    )
}

fn pool_of(
    url: &Secret,
    setting: &str,
    settings: &DatabaseSettings,
    application_name: &str,
    statement_timeout: std::time::Duration,
) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .expose()
        .parse::<PgConnectOptions>()
        .with_context(|| format!("{setting} is not a valid postgres:// URL"))?
        .application_name(application_name)
        // Sent with the start-up packet: no round trip of its own. 0 is PostgreSQL's "none".
        .options([(
            "statement_timeout",
            statement_timeout.as_millis().to_string(),
        )]);
    Ok(PgPoolOptions::new()
        .max_connections(settings.db_max_connections)
        // Kept open when idle (`AppBuilder::postgres` opens it at start-up).
        .min_connections(1)
        .acquire_timeout(settings.db_acquire_timeout)
        // No ping before every use: it doubled the round trips of a simple read (measured in
        // bench/items.sh). A connection broken by a database restart fails its next query,
        // which answers 503 (see `ApiError::from`) and is dropped from the pool.
        .test_before_acquire(false)
        .connect_lazy_with(options))
}

/// Versions of the migrations this build embeds (up steps only).
fn expected_versions(migrator: &Migrator) -> BTreeSet<i64> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect()
}

/// The table sqlx's migrator records applied migrations in.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Versions applied successfully to the database, as sqlx's migrator lists them.
pub async fn applied_versions(pool: &PgPool) -> Result<BTreeSet<i64>, MigrateError> {
    let mut conn = pool.acquire().await?;
    // A database never migrated has no table, and readiness must not create one (sqlx's
    // `ensure_migrations_table` would).
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(MIGRATIONS_TABLE)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(BTreeSet::new());
    }
    // A migration that failed outside a transaction stays recorded, unsuccessful.
    let dirty = conn.dirty_version(MIGRATIONS_TABLE).await?;
    Ok(conn
        .list_applied_migrations(MIGRATIONS_TABLE)
        .await?
        .into_iter()
        .map(|m| m.version)
        .filter(|v| Some(*v) != dirty)
        .collect())
}

/// Readiness: the database answers and its schema is the one this build expects.
pub async fn check_ready(pool: &PgPool, migrator: &Migrator) -> Result<(), String> {
    let applied = applied_versions(pool)
        .await
        .map_err(|e| format!("database unreachable: {e}"))?;
    let expected = expected_versions(migrator);
    let missing: Vec<i64> = expected.difference(&applied).copied().collect();
    if !missing.is_empty() {
        return Err(format!(
            "database schema is behind: migrations {missing:?} not applied (run `migrate up`)"
        ));
    }
    let unknown: Vec<i64> = applied.difference(&expected).copied().collect();
    if !unknown.is_empty() {
        return Err(format!(
            "database schema is ahead of this build: unknown migrations {unknown:?}"
        ));
    }
    Ok(())
}

/// `<service> migrate …`
#[derive(Debug, Clone, Subcommand)]
pub enum MigrateCommand {
    /// Apply every pending migration.
    Up,
    /// Revert the newest N applied migrations (default 1).
    Down {
        #[arg(default_value_t = 1)]
        n: usize,
    },
    /// List migrations and whether each is applied.
    Status,
}

pub async fn migrate_up(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<()> {
    migrator.run(pool).await.context("applying migrations")?;
    Ok(())
}

/// Revert the newest `n` applied migrations.
pub async fn migrate_down(pool: &PgPool, migrator: &Migrator, n: usize) -> anyhow::Result<()> {
    let applied: Vec<i64> = applied_versions(pool).await?.into_iter().rev().collect();
    // Revert everything newer than the (n+1)-th newest applied version.
    let target = applied.get(n).copied().unwrap_or(0);
    migrator
        .undo(pool, target)
        .await
        .context("reverting migrations")?;
    Ok(())
}

/// One line per migration: version, applied or pending, description.
pub async fn migration_status(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<Vec<String>> {
    let applied = applied_versions(pool).await?;
    let mut lines: Vec<String> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| {
            let state = if applied.contains(&m.version) {
                "applied"
            } else {
                "pending"
            };
            format!("{:>14}  {state:<8} {}", m.version, m.description)
        })
        .collect();
    let expected = expected_versions(migrator);
    for unknown in applied.difference(&expected) {
        lines.push(format!(
            "{unknown:>14}  unknown  (applied, not in this build)"
        ));
    }
    Ok(lines)
}

/// Run a `migrate` subcommand and print its result on stdout.
pub async fn run_migrate_command(
    settings: &DatabaseSettings,
    migrator: &Migrator,
    command: MigrateCommand,
) -> anyhow::Result<()> {
    // A migration may rewrite a large table (the search vectors): no statement timeout.
    let pool = pool_with_timeout(settings, "migrate", std::time::Duration::ZERO)?;
    match command {
        // Say what changed, so an operator following a rollback checklist sees it happen.
        MigrateCommand::Up => {
            let before = applied_versions(&pool).await?.len();
            migrate_up(&pool, migrator).await?;
            let applied = applied_versions(&pool).await?.len().saturating_sub(before);
            println!("applied {applied} migration(s); the database is up to date");
        }
        MigrateCommand::Down { n } => {
            let before = applied_versions(&pool).await?.len();
            migrate_down(&pool, migrator, n).await?;
            let reverted = before.saturating_sub(applied_versions(&pool).await?.len());
            println!("reverted {reverted} migration(s)");
        }
        MigrateCommand::Status => {
            for line in migration_status(&pool, migrator).await? {
                println!("{line}");
            }
        }
    }
    pool.close().await;
    Ok(())
}

/// Rows one purge statement deletes at most. Each batch is a statement of its own (its own short
/// transaction), so a large backlog is worked off in steps that never hold many row locks, or one
/// snapshot, for long.
pub const PURGE_BATCH: i64 = 1000;

/// Run a bounded `DELETE` (`… WHERE key IN (SELECT key … LIMIT $batch)`; it is given the batch
/// size) until a batch deletes less than a full one; the rows deleted in all.
pub async fn delete_in_batches<F, Fut>(mut delete_batch: F) -> Result<u64, sqlx::Error>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let full = u64::try_from(PURGE_BATCH).unwrap_or(u64::MAX);
    let mut total = 0;
    loop {
        let deleted = delete_batch(PURGE_BATCH).await?;
        total += deleted;
        if deleted < full {
            return Ok(total);
        }
        // Let requests on this runtime in between batches.
        tokio::task::yield_now().await;
    }
}

/// Where [`delete_before`] deletes: a table, its key column and the timestamp column compared
/// with the cutoff. Constants of the calling service, never input (they are spliced into SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aged {
    pub table: &'static str,
    pub key: &'static str,
    pub at: &'static str,
}

/// Delete the rows of `aged.table` whose `aged.at` is before `cutoff` (a NULL is never before),
/// in batches ([`delete_in_batches`]), skipping rows another transaction holds; the rows deleted.
pub async fn delete_before(
    db: &PgPool,
    aged: Aged,
    cutoff: time::OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let Aged { table, key, at } = aged;
    let sql = format!(
        "DELETE FROM {table} WHERE {key} IN (
             SELECT {key} FROM {table} WHERE {at} < $1
             LIMIT $2
             FOR UPDATE SKIP LOCKED)"
    );
    let sql = &sql;
    delete_in_batches(|batch| async move {
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(cutoff)
            .bind(batch)
            .execute(db)
            .await
            .map(|r| r.rows_affected())
    })
    .await
}

/// `retention_purged_rows_total{kind}`: rows deleted because their retention period was over.
#[derive(Clone)]
pub struct PurgeMetrics {
    purged: IntCounterVec,
}

impl PurgeMetrics {
    /// The series of `kinds` exist (at 0) from the start, so a rate over them is 0, not absent.
    pub fn register(
        metrics: &crate::metrics::Metrics,
        kinds: &[&str],
    ) -> Result<Self, prometheus::Error> {
        let purged = IntCounterVec::new(
            Opts::new(
                "retention_purged_rows_total",
                "Rows deleted after their retention period, by kind of row.",
            ),
            &["kind"],
        )?;
        for kind in kinds {
            purged.with_label_values(&[*kind]);
        }
        metrics.register(Box::new(purged.clone()))?;
        Ok(PurgeMetrics { purged })
    }

    pub fn record(&self, kind: &str, rows: u64) {
        self.purged.with_label_values(&[kind]).inc_by(rows);
    }
}

/// `db_pool_connections{state="idle"|"active"}`, read from the pool at scrape time.
pub struct PoolMetrics {
    pool: PgPool,
    gauge: IntGaugeVec,
}

impl PoolMetrics {
    pub fn new(pool: PgPool) -> Result<Self, prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Connections held by the database pool, by state.",
            ),
            &["state"],
        )?;
        Ok(PoolMetrics { pool, gauge })
    }
}

impl Collector for PoolMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let size = i64::from(self.pool.size());
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX);
        self.gauge.with_label_values(&["idle"]).set(idle);
        self.gauge
            .with_label_values(&["active"])
            .set((size - idle).max(0));
        self.gauge.collect()
    }
}
