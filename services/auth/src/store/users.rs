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
}

const COLUMNS: &str = "id, email, password_hash, role, disabled, created_at, updated_at";

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

/// What a login needs in one round trip: the account (if any) and the email's throttle state.
#[derive(Debug, Clone, FromRow)]
pub struct LoginCandidate {
    pub id: Option<Uuid>,
    pub password_hash: Option<String>,
    pub role: Option<String>,
    pub disabled: Option<bool>,
    /// Set while further attempts for this email must wait.
    pub locked_until: Option<OffsetDateTime>,
    /// Whether failures are on record (cleared by a successful login).
    pub has_failures: bool,
}

#[tracing::instrument(name = "db users.login_candidate", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn login_candidate(
    db: impl PgExecutor<'_>,
    email: &str,
) -> Result<LoginCandidate, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.password_hash, u.role, u.disabled,
                CASE WHEN t.locked_until > now() THEN t.locked_until END AS locked_until,
                t.email IS NOT NULL AS has_failures
         FROM (SELECT $1::text AS email) k
         LEFT JOIN users u ON u.email = k.email
         LEFT JOIN login_throttle t ON t.email = k.email",
    )
    .bind(email)
    .fetch_one(db)
    .await
}
