//! The `catalog-order` binary's maintenance commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use platform::testing::{TestDb, nats_url};

#[tokio::test]
async fn seed_demo_loads_a_catalog_once() {
    let db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_catalog-order"))
            .arg("seed-demo")
            .env_clear()
            .envs(platform::testing::coverage_env())
            .env("APP_ENV", "test")
            .env("DATABASE_URL", &db.url)
            .env("NATS_URL", nats_url())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{first:?}");
    assert!(String::from_utf8_lossy(&first.stdout).contains("seeded 8 categories and 320 items"));
    let again = run();
    assert!(String::from_utf8_lossy(&again.stdout).contains("seeded 0 categories and 0 items"));
    let (items, in_stock, priced): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE stock > 0), count(*) FILTER (WHERE price_cents % 100 = 99) FROM items",
    )
    .fetch_one(&db.pool().await)
    .await
    .unwrap();
    assert_eq!(items, 320);
    assert!(in_stock > 250, "{in_stock}");
    assert_eq!(priced, 320);
}

#[tokio::test]
async fn the_catalog_schema_goes_down_and_up_again_with_data_in_it() {
    let db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_catalog-order"))
            .args(args)
            .env_clear()
            .envs(platform::testing::coverage_env())
            .env("APP_ENV", "test")
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    assert!(run(&["seed-demo"]).status.success());
    let migrations = catalog_order::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .count();
    let down = run(&["migrate", "down", "99"]);
    assert!(down.status.success());
    assert_eq!(
        String::from_utf8_lossy(&down.stdout).trim(),
        format!("reverted {migrations} migration(s)")
    );
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_one(&db.pool().await)
    .await
    .unwrap();
    assert_eq!(tables, 0);
    let up = run(&["migrate", "up"]);
    assert_eq!(
        String::from_utf8_lossy(&up.stdout).trim(),
        format!("applied {migrations} migration(s); the database is up to date")
    );
    let seeded = run(&["seed-demo"]);
    assert!(String::from_utf8_lossy(&seeded.stdout).contains("seeded 8 categories and 320 items"));
}
