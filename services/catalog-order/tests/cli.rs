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

/// A fresh, empty database owned by a new login role with a long random password, as in prod
/// (a role `migrate up` may create tables as). The database goes first, then the role.
struct ProdDb {
    db: Option<TestDb>,
    role: String,
    /// `DATABASE_URL_FILE`, as the chart mounts it.
    url_file: std::path::PathBuf,
}

impl ProdDb {
    async fn new() -> ProdDb {
        use sqlx::Connection;
        let db = TestDb::empty("catalog").await;
        let role = format!("sf_test_role_{}", uuid::Uuid::new_v4().simple());
        let password = format!("{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&platform::testing::admin_url())
            .await
            .unwrap();
        for sql in [
            format!(r#"CREATE ROLE "{role}" LOGIN PASSWORD '{password}'"#),
            format!(r#"ALTER DATABASE "{}" OWNER TO "{role}""#, db.name),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await
                .unwrap();
        }
        let _ = admin.close().await;
        let host = platform::testing::host_port(&platform::testing::admin_url());
        let url_file = std::env::temp_dir().join(format!("sf-database-url-{role}"));
        std::fs::write(
            &url_file,
            format!("postgres://{role}:{password}@{host}/{}\n", db.name),
        )
        .unwrap();
        ProdDb {
            db: Some(db),
            role,
            url_file,
        }
    }
}

impl Drop for ProdDb {
    fn drop(&mut self) {
        drop(self.db.take());
        let _ = std::fs::remove_file(&self.url_file);
        let role = self.role.clone();
        let _ = std::thread::spawn(move || {
            use sqlx::Connection;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(mut admin) =
                    sqlx::PgConnection::connect(&platform::testing::admin_url()).await
                {
                    let sql = format!(r#"DROP ROLE IF EXISTS "{role}""#);
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// The binary in prod with exactly these variables (and nothing for NATS, tokens or cursors).
fn catalog_prod(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_catalog-order"))
        .args(args)
        .env_clear()
        .envs(platform::testing::coverage_env())
        .env("APP_ENV", "prod")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn assert_ran(out: &std::process::Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("invalid configuration"),
        "{what} refused for its settings: {stderr}"
    );
    assert!(out.status.success(), "{what}: {out:?}");
}

#[tokio::test]
async fn maintenance_commands_in_prod_need_only_the_database() {
    let prod = ProdDb::new().await;
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
    for setting in ["NATS_URL", "CURSOR_SECRET", "AUTH_JWKS_URL"] {
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
