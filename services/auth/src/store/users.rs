use platform::pagination::limit_sql;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When the owner proved the address (a verification or reset link); NULL until then.
    pub email_verified_at: Option<OffsetDateTime>,
}

const COLUMNS: &str =
    "id, email, password_hash, role, disabled, created_at, updated_at, email_verified_at";

#[tracing::instrument(name = "db users.insert", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert(
    db: impl PgExecutor<'_>,
    email: &str,
    password_hash: &str,
    role: &str,
) -> Result<UserRow, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, $3, $4)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(password_hash)
    .bind(role)
    .fetch_one(db)
    .await
}

#[tracing::instrument(name = "db users.by_id", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The user, locked until the transaction ends (account deletion).
#[tracing::instrument(name = "db users.lock", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Lock every enabled admin, in id order, until the transaction ends; returns their ids. Taken
/// before the user row itself, always in this order, so concurrent deletions of admins wait on
/// one another instead of deadlocking, and each sees the others' outcome.
#[tracing::instrument(name = "db users.lock_admins", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock_admins(db: impl PgExecutor<'_>) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM users WHERE role = 'admin' AND NOT disabled ORDER BY id FOR UPDATE",
    )
    .fetch_all(db)
    .await
}

/// Delete the user with everything keyed by them: sessions and refresh tokens go with the row
/// (`ON DELETE CASCADE`), failed-login counters of their email are deleted here.
#[tracing::instrument(name = "db users.delete", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn delete(db: &mut sqlx::PgConnection, id: Uuid, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_throttle_pairs WHERE email = $1")
        .bind(email)
        .execute(&mut *db)
        .await?;
    // The previous release's per-email counter, until a later release drops the table.
    sqlx::query("DELETE FROM login_throttle WHERE email = $1")
        .bind(email)
        .execute(&mut *db)
        .await?;
    sqlx::query("DELETE FROM login_account_failures WHERE email = $1")
        .bind(email)
        .execute(&mut *db)
        .await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *db)
        .await
        .map(|_| ())
}

/// Replace the password hash of `id` (a reset or a change); the caller revokes sessions.
#[tracing::instrument(name = "db users.set_password", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn set_password(
    db: impl PgExecutor<'_>,
    id: Uuid,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .execute(db)
        .await
        .map(|_| ())
}

/// Record that the owner of `id` proved `email`, if it is still the account's address (the first
/// proof's time is kept).
#[tracing::instrument(name = "db users.mark_verified", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn mark_verified(
    db: impl PgExecutor<'_>,
    id: Uuid,
    email: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, now())
         WHERE id = $1 AND email = $2",
    )
    .bind(id)
    .bind(email)
    .execute(db)
    .await
    .map(|_| ())
}

/// Users after `after` in (created_at, id) order; `limit + 1` rows so the caller knows if more exist.
#[tracing::instrument(name = "db users.page", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn page(
    db: impl PgExecutor<'_>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: u32,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users
         WHERE $1::timestamptz IS NULL OR (created_at, id) > ($1, $2)
         ORDER BY created_at, id{}",
        limit_sql(limit)
    )))
    .bind(after_at)
    .bind(after_id)
    .fetch_all(db)
    .await
}

/// Change role and/or disabled; `None` leaves a field as it is.
#[tracing::instrument(name = "db users.update", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    role: Option<&str>,
    disabled: Option<bool>,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET role = coalesce($2, role), disabled = coalesce($3, disabled),
                          updated_at = now()
         WHERE id = $1
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(role)
    .bind(disabled)
    .fetch_optional(db)
    .await
}

/// What a login needs in one round trip: the account (if any) and the throttle state of this
/// email from this client address, and of the email from anywhere.
#[derive(Debug, Clone, FromRow)]
pub struct LoginCandidate {
    pub id: Option<Uuid>,
    pub password_hash: Option<String>,
    pub role: Option<String>,
    pub disabled: Option<bool>,
    pub email_verified: bool,
    /// Set while this address must wait before trying this email again.
    pub locked_until: Option<OffsetDateTime>,
    /// Whether this address has failures on record for the email (cleared by a success).
    pub has_failures: bool,
    /// Recent failures at this email from any address (0 once its window has passed).
    pub account_failures: i32,
}

#[tracing::instrument(name = "db users.login_candidate", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn login_candidate(
    db: impl PgExecutor<'_>,
    email: &str,
    client: std::net::IpAddr,
) -> Result<LoginCandidate, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT u.id, u.password_hash, u.role, u.disabled,
                u.email_verified_at IS NOT NULL AS email_verified,
                CASE WHEN t.locked_until > now() THEN t.locked_until END AS locked_until,
                t.email IS NOT NULL AS has_failures,
                CASE WHEN a.updated_at >= now() - {window} THEN a.failures ELSE 0 END
                    AS account_failures
         FROM (SELECT $1::text AS email) k
         LEFT JOIN users u ON u.email = k.email
         LEFT JOIN login_throttle_pairs t ON t.email = k.email AND t.client = $2::inet
         LEFT JOIN login_account_failures a ON a.email = k.email",
        window = crate::store::throttle::ACCOUNT_WINDOW_SQL
    )))
    .bind(email)
    .bind(platform::ratelimit::client_key(client))
    .fetch_one(db)
    .await
}
