//! Backups against the local PostgreSQL: data → backup → verify → wipe → restore → identical
//! data; a corrupted dump fails verification; retention keeps what it should.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::bin;
use testkit::{TestDb, admin_url};

/// Runs a script the way the chart's CronJobs do, in the official postgres image: with a PATH that
/// holds only bash, coreutils, findutils, grep and the PostgreSQL client tools — so a script that
/// starts needing python3 or jq fails here, not in the cluster.
fn script(name: &str) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../scripts")
                .join(name),
        )
        .env("PATH", image_path());
    command
}

/// What the postgres image (Debian) offers the scripts.
const IMAGE_TOOLS: &str = "bash basename cat cut date dirname du find grep head ls mkdir mv rm \
    sha256sum sort tail pg_dump pg_restore psql";

fn image_path() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sf-image-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Debian's /usr/bin/pg_dump is a Perl wrapper; the image puts the real binaries on PATH.
        let postgres_bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).max())
            .map(|p| p.join("bin"));
        let search: Vec<PathBuf> = postgres_bin
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap()))
            .collect();
        for tool in IMAGE_TOOLS.split_whitespace() {
            let found = search
                .iter()
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
                .unwrap_or_else(|| panic!("{tool} is not installed"));
            let link = dir.join(tool);
            if !link.exists() {
                std::os::unix::fs::symlink(found, link).unwrap();
            }
        }
        dir
    })
    .clone()
}

/// An empty database migrated by `catalog-order migrate up`, then each of `commands` run on it.
async fn catalog_db(name: &str, commands: &[&str]) -> TestDb {
    let db = TestDb::empty(name).await;
    for command in ["migrate up"].iter().chain(commands) {
        let out = Command::new(bin("catalog-order"))
            .args(command.split_whitespace())
            .env("APP_ENV", "test")
            .env("DATABASE_URL", &db.url)
            .env("NATS_URL", "nats://127.0.0.1:1")
            .envs(testkit::coverage_env())
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {out:?}");
    }
    db
}

/// A fingerprint of every row of every table.
async fn fingerprint(db: &TestDb) -> Vec<(String, i64, String)> {
    let pool = db.pool().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut out = Vec::new();
    for table in tables {
        let (n, md5): (i64, Option<String>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM public.\"{table}\" t"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        out.push((table, n, md5.unwrap_or_default()));
    }
    out
}

/// `restore-verify.sh catalog` over the backups in `dir`.
fn verify_catalog(dir: &Path) -> std::process::Output {
    script("restore-verify.sh")
        .arg("catalog")
        .env("BACKUP_DIR", dir)
        .env("BACKUP_ADMIN_URL", admin_url())
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_backup_restores_to_identical_data_and_a_corrupt_one_is_caught() {
    let db = catalog_db("backup", &["seed-demo"]).await;
    sqlx::query("INSERT INTO customers (id, full_name) VALUES (gen_random_uuid(), 'Ann O''Neil')")
        .execute(&db.pool().await)
        .await
        .unwrap();
    let before = fingerprint(&db).await;
    assert!(before.iter().any(|(t, n, _)| t == "items" && *n > 100));

    let dir = std::env::temp_dir().join(format!("sf-backups-{}", std::process::id()));
    // The URL from a file, as the chart's CronJob passes the mounted Secret.
    std::fs::create_dir_all(&dir).unwrap();
    let url_file = dir.join("catalog-database-url");
    std::fs::write(&url_file, &db.url).unwrap();
    let targets = format!("catalog={}", url_file.display());
    let backup = script("backup.sh")
        .env("BACKUP_DIR", &dir)
        .env("BACKUP_TARGETS", &targets)
        .output()
        .unwrap();
    assert!(backup.status.success(), "{backup:?}");

    let admin_file = dir.join("backup-admin-url");
    std::fs::write(&admin_file, admin_url()).unwrap();
    let verify = script("restore-verify.sh")
        .arg("catalog")
        .env("BACKUP_DIR", &dir)
        .env("BACKUP_ADMIN_URL_FILE", &admin_file)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verify.status.success(), "{verify:?}");
    assert!(line.starts_with("restore-verify db=catalog "), "{line}");
    // The restored schema is the newest migration's version.
    let newest = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/catalog"
    ))
    .unwrap()
    .filter_map(|e| {
        let name = e.unwrap().file_name().into_string().unwrap();
        name.ends_with(".up.sql")
            .then(|| name.split('_').next().unwrap().to_owned())
    })
    .max()
    .unwrap();
    assert!(
        line.contains("result=ok") && line.contains(&format!("schema={newest} ")),
        "{line}"
    );

    // Disaster: the schema is gone. Restore the dump over it.
    sqlx::query("DROP SCHEMA public CASCADE")
        .execute(&db.pool().await)
        .await
        .unwrap();
    sqlx::query("CREATE SCHEMA public")
        .execute(&db.pool().await)
        .await
        .unwrap();
    let dump = std::fs::read_dir(dir.join("catalog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "dump"))
        .unwrap();
    let restore = script("restore.sh")
        .arg(&dump)
        .arg(&db.url)
        .output()
        .unwrap();
    assert!(restore.status.success(), "{restore:?}");
    assert_eq!(
        fingerprint(&db).await,
        before,
        "the restored data is identical"
    );

    // A manifest that disagrees with the restored rows (re-checksummed, so only the comparison can
    // catch it) fails verification and names the table.
    let manifest = dump.with_extension("manifest.json");
    let original = std::fs::read_to_string(&manifest).unwrap();
    let mut doctored: serde_json::Value = serde_json::from_str(&original).unwrap();
    let items = doctored["tables"]["items"].as_i64().unwrap();
    doctored["tables"]["items"] = (items + 1).into();
    std::fs::write(&manifest, doctored.to_string()).unwrap();
    let sums = dump.with_extension("sha256");
    let rehash = Command::new("sha256sum")
        .args([dump.file_name().unwrap(), manifest.file_name().unwrap()])
        .current_dir(dump.parent().unwrap())
        .output()
        .unwrap();
    let original_sums = std::fs::read(&sums).unwrap();
    std::fs::write(&sums, &rehash.stdout).unwrap();
    let verify = verify_catalog(&dir);
    let line = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(!verify.status.success(), "{line}");
    assert!(
        line.contains("result=failed")
            && line.contains(&format!("problems=items_{items}_!=_{}", items + 1)),
        "{line}"
    );
    std::fs::write(&manifest, original).unwrap();
    std::fs::write(&sums, original_sums).unwrap();

    // A damaged dump is refused by verification.
    let mut bytes = std::fs::read(&dump).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&dump, bytes).unwrap();
    let verify = verify_catalog(&dir);
    assert!(!verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stdout).contains("result=failed reason=checksum"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_failing_target_fails_the_run_and_leaves_no_dump_of_it() {
    let db = catalog_db("backup_fail", &[]).await;
    let dir = std::env::temp_dir().join(format!("sf-backup-fail-{}", std::process::id()));
    let missing = format!("{}_missing", db.url);
    let backup = script("backup.sh")
        .env("BACKUP_DIR", &dir)
        .env("BACKUP_TARGETS", format!("good={} gone={missing}", db.url))
        .output()
        .unwrap();
    assert!(!backup.status.success(), "{backup:?}");
    // The reachable database was dumped before the failing one stopped the run.
    let good: Vec<_> = std::fs::read_dir(dir.join("good"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        good.iter().any(|n| n.ends_with(".dump")),
        "{good:?} {backup:?}"
    );
    let gone: Vec<_> = std::fs::read_dir(dir.join("gone"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(gone.is_empty(), "{gone:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn retention_keeps_the_newest_dump_of_each_day_and_week() {
    let db = catalog_db("retention", &[]).await;
    let dir = std::env::temp_dir().join(format!("sf-retention-{}", std::process::id()));
    let folder = dir.join("catalog");
    std::fs::create_dir_all(&folder).unwrap();
    // Older dumps as they would have accumulated: two on one day, one each on other days.
    for stamp in [
        "20260101T010000Z",
        "20260101T020000Z",
        "20260102T010000Z",
        "20260110T010000Z",
        "20260120T010000Z",
    ] {
        for ext in ["dump", "manifest.json", "sha256"] {
            std::fs::write(folder.join(format!("catalog-{stamp}.{ext}")), b"old").unwrap();
        }
    }
    let backup = script("backup.sh")
        .env("BACKUP_DIR", &dir)
        .env("BACKUP_TARGETS", format!("catalog={}", db.url))
        .env("KEEP_DAILY", "2")
        .env("KEEP_WEEKLY", "3")
        .output()
        .unwrap();
    assert!(backup.status.success(), "{backup:?}");
    let mut kept: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dump"))
        .collect();
    kept.sort();
    // Days: today's and 2026-01-20. Weeks: today's, 2026-01-20's (week 4), 2026-01-10's (week 2).
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert_eq!(kept[0], "catalog-20260110T010000Z.dump");
    assert_eq!(kept[1], "catalog-20260120T010000Z.dump");
    std::fs::remove_dir_all(&dir).unwrap();
}
