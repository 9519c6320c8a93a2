//! `migrate up|down [N]|status` on a database holding data: every step reversible.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use platform::db::{applied_versions, check_ready, migrate_down, migrate_up, migration_status};
use sqlx::migrate::Migrator;
use testkit::TestDb;

static FIXTURES: Migrator = sqlx::migrate!("tests/fixtures/migrations");

async fn columns(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_name = 'widgets' ORDER BY ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn up_down_and_up_again_keep_data_where_the_schema_allows() {
    let db = TestDb::empty("migrations").await;
    let pool = db.pool().await;

    let status = migration_status(&pool, &FIXTURES).await.unwrap();
    assert!(status.iter().all(|l| l.contains("pending")), "{status:?}");
    assert!(check_ready(&pool, &FIXTURES).await.is_err());

    migrate_up(&pool, &FIXTURES).await.unwrap();
    assert_eq!(columns(&pool).await, ["id", "name", "colour"]);
    assert!(check_ready(&pool, &FIXTURES).await.is_ok());
    sqlx::query("INSERT INTO widgets (name, colour) VALUES ('a', 'red'), ('b', 'blue')")
        .execute(&pool)
        .await
        .unwrap();

    // down 1 reverts only the newest; the rows stay.
    migrate_down(&pool, &FIXTURES, 1).await.unwrap();
    assert_eq!(columns(&pool).await, ["id", "name"]);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM widgets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 2);
    let err = check_ready(&pool, &FIXTURES).await.unwrap_err();
    assert!(err.contains("behind"), "{err}");
    let status = migration_status(&pool, &FIXTURES).await.unwrap();
    assert!(
        status[0].contains("applied") && status[1].contains("pending"),
        "{status:?}"
    );

    migrate_up(&pool, &FIXTURES).await.unwrap();
    assert_eq!(columns(&pool).await, ["id", "name", "colour"]);

    // down 5 reverts what there is and no more.
    migrate_down(&pool, &FIXTURES, 5).await.unwrap();
    assert!(columns(&pool).await.is_empty());
    assert!(applied_versions(&pool).await.unwrap().is_empty());

    migrate_up(&pool, &FIXTURES).await.unwrap();
    assert!(check_ready(&pool, &FIXTURES).await.is_ok());
}

#[tokio::test]
async fn a_database_ahead_of_the_build_is_reported() {
    let db = TestDb::new("fixture", &FIXTURES).await;
    let pool = db.pool().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (20990101000000, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = check_ready(&pool, &FIXTURES).await.unwrap_err();
    assert!(err.contains("ahead"), "{err}");
    let status = migration_status(&pool, &FIXTURES).await.unwrap();
    assert!(status.last().unwrap().contains("unknown"), "{status:?}");
}

#[tokio::test]
async fn each_test_database_is_its_own_and_is_dropped_afterwards() {
    let a = TestDb::new("fixture", &FIXTURES).await;
    let b = TestDb::new("fixture", &FIXTURES).await;
    assert_ne!(a.name, b.name);
    sqlx::query("INSERT INTO widgets (name) VALUES ('only in a')")
        .execute(&a.pool().await)
        .await
        .unwrap();
    let in_b: i64 = sqlx::query_scalar("SELECT count(*) FROM widgets")
        .fetch_one(&b.pool().await)
        .await
        .unwrap();
    assert_eq!(in_b, 0);

    let name = a.name.clone();
    drop(a);
    let admin = sqlx::PgPool::connect(&testkit::admin_url()).await.unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(!exists, "{name} was not dropped");
}
