//! The `auth` binary's maintenance commands and its start-up refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use platform::testing::{TestDb, nats_url};

fn auth(db: &TestDb, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auth"))
        .args(args)
        .env_clear()
        .envs(platform::testing::coverage_env())
        .env("APP_ENV", "test")
        .env("DATABASE_URL", &db.url)
        .env("NATS_URL", nats_url())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn create_admin_reads_the_password_from_stdin() {
    let db = TestDb::new("auth", &auth::MIGRATOR).await;
    let out = auth(
        &db,
        &["create-admin", "--email", "Boss@Example.com"],
        "a long admin password\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin boss@example.com"));
    let (role, hash): (String, String) =
        sqlx::query_as("SELECT role, password_hash FROM users WHERE email = 'boss@example.com'")
            .fetch_one(&db.pool().await)
            .await
            .unwrap();
    assert_eq!(role, "admin");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("a long admin password"));

    // Twice is an error, and so is a weak password; neither writes anything.
    let again = auth(
        &db,
        &["create-admin", "--email", "boss@example.com"],
        "a long admin password\n",
    );
    assert!(!again.status.success());
    let weak = auth(
        &db,
        &["create-admin", "--email", "other@example.com"],
        "short\n",
    );
    assert!(!weak.status.success());
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&db.pool().await)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn purge_sessions_reports_what_it_removed() {
    let db = TestDb::new("auth", &auth::MIGRATOR).await;
    let out = auth(&db, &["purge-sessions"], "");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("purged 0 session(s)"));
}

#[test]
fn prod_refuses_to_start_without_signing_keys_or_cursor_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_auth"))
        .env_clear()
        .envs(platform::testing::coverage_env())
        .env("APP_ENV", "prod")
        .env("DATABASE_URL", "postgres://auth:Long-Random-1@db/auth")
        .env("NATS_URL", "nats://nats:4222")
        .env("ARGON2_MEMORY_KIB", "4096")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for setting in ["AUTH_SIGNING_KEYS", "CURSOR_SECRET", "ARGON2_MEMORY_KIB"] {
        assert!(
            stderr.contains(&format!("- {setting}:")),
            "{setting}: {stderr}"
        );
    }
}

#[test]
fn a_signing_key_that_is_not_ed25519_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_auth"))
        .env_clear()
.envs(platform::testing::coverage_env())
        .env("APP_ENV", "test")
        .env(
            "AUTH_SIGNING_KEYS",
            "-----BEGIN PRIVATE KEY-----\nMIIBVAIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AUTH_SIGNING_KEYS"));
}

#[tokio::test]
async fn the_auth_schema_goes_down_and_up_again_with_data_in_it() {
    let db = TestDb::new("auth", &auth::MIGRATOR).await;
    let pool = db.pool().await;
    let out = auth(
        &db,
        &["create-admin", "--email", "keep@example.com"],
        "a long admin password\n",
    );
    assert!(out.status.success());
    let down = auth(&db, &["migrate", "down", "99"], "");
    assert!(down.status.success(), "{down:?}");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 0);
    let up = auth(&db, &["migrate", "up"], "");
    assert!(up.status.success(), "{up:?}");
    let status = auth(&db, &["migrate", "status"], "");
    assert!(!String::from_utf8_lossy(&status.stdout).contains("pending"));
}
