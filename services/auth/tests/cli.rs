//! The `auth` binary's maintenance commands and its start-up refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use testkit::{ProdDb, TestDb, assert_ran, nats_url, prod_command};

fn auth(db: &TestDb, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auth"))
        .args(args)
        .env_clear()
        .envs(testkit::coverage_env())
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
        .envs(testkit::coverage_env())
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
        .envs(testkit::coverage_env())
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

/// The binary in prod with exactly these variables (and nothing for NATS, keys or cursors).
fn auth_prod(env: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
    let mut child = prod_command(env!("CARGO_BIN_EXE_auth"))
        .args(args)
        .envs(env.iter().copied())
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
async fn maintenance_commands_in_prod_need_only_the_database() {
    let prod = ProdDb::new("auth").await;
    // What the chart's migration Job gives the binary, and nothing else.
    let file = prod.url_file.to_str().unwrap();
    let env = [("DATABASE_URL_FILE", file)];

    let status = auth_prod(&env, &["migrate", "status"], "");
    assert_ran(&status, "migrate status");
    assert!(String::from_utf8_lossy(&status.stdout).contains("pending"));
    assert_ran(&auth_prod(&env, &["migrate", "up"], ""), "migrate up");
    let status = auth_prod(&env, &["migrate", "status"], "");
    assert_ran(&status, "migrate status");
    assert!(!String::from_utf8_lossy(&status.stdout).contains("pending"));

    let admin = auth_prod(
        &env,
        &["create-admin", "--email", "root@example.com"],
        "a long admin password\n",
    );
    assert_ran(&admin, "create-admin");
    assert!(String::from_utf8_lossy(&admin.stdout).contains("created admin root@example.com"));
    let purge = auth_prod(&[("DATABASE_URL", &prod.url)], &["purge-sessions"], "");
    assert_ran(&purge, "purge-sessions");
    assert_ran(
        &auth_prod(&env, &["migrate", "down", "1"], ""),
        "migrate down",
    );
}

#[test]
fn prod_commands_are_refused_only_for_the_settings_they_use() {
    let url = "postgres://auth:Long-Random-Password-1@127.0.0.1:1/auth"; // secret-scan: allow (test value)
    // serve still needs everything, and lists what is missing.
    let out = auth_prod(&[("DATABASE_URL", url)], &["serve"], "");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for setting in ["NATS_URL", "AUTH_SIGNING_KEYS", "CURSOR_SECRET"] {
        assert!(
            stderr.contains(&format!("- {setting}:")),
            "{setting}: {stderr}"
        );
    }
    assert!(!stderr.contains("- DATABASE_URL:"), "{stderr}");

    // create-admin hashes passwords, so weak argon2 settings stop it; migrate does not hash.
    let weak = [("DATABASE_URL", url), ("ARGON2_MEMORY_KIB", "4096")];
    let out = auth_prod(&weak, &["create-admin", "--email", "a@example.com"], "x\n");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("- ARGON2_MEMORY_KIB:"), "{stderr}");
    assert!(!stderr.contains("NATS_URL"), "{stderr}");
    // (port 1: the database is unreachable, so the command fails, but not for its settings.)
    let out = auth_prod(&weak, &["migrate", "status"], "");
    assert_ne!(out.status.code(), Some(78), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("invalid configuration"));

    // Every command still needs its own settings.
    let out = auth_prod(&[], &["purge-sessions"], "");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("- DATABASE_URL:"));
}
