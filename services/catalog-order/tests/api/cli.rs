//! The `catalog-order` binary's maintenance commands.

use std::process::Command;

use testkit::{ProdDb, TestDb, assert_ran, nats_url, prod_command};

#[tokio::test]
async fn seed_demo_loads_a_catalog_once() {
    let db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_catalog-order"))
            .arg("seed-demo")
            .env_clear()
            .envs(testkit::coverage_env())
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
            .envs(testkit::coverage_env())
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

/// The binary in prod with exactly these variables (and nothing for NATS, tokens or cursors).
fn catalog_prod(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    prod_command(env!("CARGO_BIN_EXE_catalog-order"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test]
async fn maintenance_commands_in_prod_need_only_the_database() {
    let prod = ProdDb::new("catalog").await;
    // What the chart's migration Job gives the binary, and nothing else.
    let env = [("DATABASE_URL_FILE", prod.url_file.to_str().unwrap())];
    assert_ran(&catalog_prod(&env, &["migrate", "up"]), "migrate up");
    let status = catalog_prod(&env, &["migrate", "status"]);
    assert_ran(&status, "migrate status");
    assert!(!String::from_utf8_lossy(&status.stdout).contains("pending"));
    let seeded = catalog_prod(&env, &["seed-demo"]);
    assert_ran(&seeded, "seed-demo");
    assert!(String::from_utf8_lossy(&seeded.stdout).contains("seeded 8 categories and 320 items"));
    assert_ran(
        &catalog_prod(&env, &["migrate", "down", "99"]),
        "migrate down",
    );
}

#[test]
fn prod_serve_with_only_the_database_is_refused_and_lists_what_is_missing() {
    let url = "postgres://catalog:Long-Random-Password-1@127.0.0.1:1/catalog"; // secret-scan: allow (test value)
    let out = catalog_prod(&[("DATABASE_URL", url)], &[]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for setting in [
        "NATS_URL",
        "CURSOR_SECRET",
        "AUTH_JWKS_URL",
        "PAYMENT_PROVIDER",
        "PAYMENT_WEBHOOK_SECRETS",
    ] {
        assert!(
            stderr.contains(&format!("- {setting}:")),
            "{setting}: {stderr}"
        );
    }
    assert!(!stderr.contains("- DATABASE_URL:"), "{stderr}");
    let out = catalog_prod(&[], &["seed-demo"]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("- DATABASE_URL:") && !stderr.contains("NATS_URL"),
        "{stderr}"
    );
}
