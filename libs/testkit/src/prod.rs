//! Running a service binary as production runs it: `APP_ENV=prod`, only the variables the
//! deployment gives it, and a database owned by its own role rather than the admin.

use std::path::PathBuf;
use std::process::{Command, Output};

use sqlx::{Connection, PgConnection};

use super::{TestDb, admin_url, exec, host_port};

/// A fresh, empty database owned by a new login role with a long random password, as in prod
/// (a role `migrate up` may create tables as). The database goes first, then the role.
pub struct ProdDb {
    db: Option<TestDb>,
    role: String,
    /// `postgres://role:password@host/db`, for `DATABASE_URL`.
    pub url: String,
    /// A file holding [`ProdDb::url`], for `DATABASE_URL_FILE` as the chart mounts it.
    pub url_file: PathBuf,
}

impl ProdDb {
    /// Empty, not migrated: the tests run `migrate up` themselves, as the chart's Job does.
    pub async fn new(label: &str) -> ProdDb {
        let db = TestDb::empty(label).await;
        let role = format!("sf_test_role_{}", uuid::Uuid::new_v4().simple());
        let password = uuid::Uuid::new_v4().simple().to_string();
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .unwrap_or_else(|e| panic!("connecting to TEST_DATABASE_URL: {e}"));
        for sql in [
            format!(r#"CREATE ROLE "{role}" LOGIN PASSWORD '{password}'"#),
            format!(r#"ALTER DATABASE "{}" OWNER TO "{role}""#, db.name),
        ] {
            exec(&mut admin, sql)
                .await
                .unwrap_or_else(|e| panic!("creating role {role}: {e}"));
        }
        let _ = admin.close().await;
        let url = format!(
            "postgres://{role}:{password}@{}/{}",
            host_port(&admin_url()),
            db.name
        );
        let url_file = std::env::temp_dir().join(format!("sf-database-url-{role}"));
        std::fs::write(&url_file, format!("{url}\n"))
            .unwrap_or_else(|e| panic!("writing {}: {e}", url_file.display()));
        ProdDb {
            db: Some(db),
            role,
            url,
            url_file,
        }
    }
}

impl Drop for ProdDb {
    fn drop(&mut self) {
        // The role owns the database, so the database must go first.
        drop(self.db.take());
        let _ = std::fs::remove_file(&self.url_file);
        let role = self.role.clone();
        // Drop runs outside async; as in `TestDb`, a thread with its own runtime does the DROP.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = exec(&mut admin, format!(r#"DROP ROLE IF EXISTS "{role}""#)).await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// `binary` with a cleared environment and prod's settings, so that whatever the caller adds
/// with `.env`/`.envs` is exactly what the deployment would give it.
pub fn prod_command(binary: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(super::coverage_env())
        .env("APP_ENV", "prod")
        // The tests' NATS is one server: its operator says so (prod assumes a cluster of three).
        .env("NATS_REPLICAS", "1")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn");
    command
}

/// The command succeeded; a refusal of its settings fails with its own message, since that is
/// what these tests are about.
pub fn assert_ran(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("invalid configuration"),
        "{what} refused for its settings: {stderr}"
    );
    assert!(out.status.success(), "{what}: {out:?}");
}
