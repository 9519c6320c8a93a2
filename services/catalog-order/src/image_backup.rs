//! Backup and restore of the image store (`catalog-order images backup|restore DIR`): the
//! originals and sizes live only in the NATS object store, so losing its volume loses them unless
//! they are copied out.
//!
//! A backup folder holds `objects/<object name>` (one file per object, written atomically) and
//! `manifest.json` (name → size and digest). A backup copies what is new or changed since the
//! last one and never deletes: a backup taken after the store was lost must not empty the copy
//! that would restore it, so the manifest only grows (an object the store no longer has stays,
//! and a restore puts it back; the orphan sweep removes it again if no image refers to it).
//! A restore puts back every object the store lacks or holds with another digest, after checking
//! each file against the manifest, and then checks the store against the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use jobs::images::{ImageStore, PutError, digest};
use serde::{Deserialize, Serialize};

const MANIFEST: &str = "manifest.json";

/// What a backup recorded about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub size: usize,
    /// `SHA-256=…` as the object store records it.
    pub digest: String,
}

type Manifest = BTreeMap<String, Entry>;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// Objects in the store now.
    pub objects: usize,
    /// Copied by this run (new or changed).
    pub written: usize,
    /// Already in the backup with the same digest.
    pub unchanged: usize,
    /// Bytes copied by this run.
    pub bytes: u64,
    /// Objects in the backup (it keeps what the store no longer has).
    pub kept: usize,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Objects in the backup.
    pub objects: usize,
    /// Put back by this run.
    pub restored: usize,
    /// Already in the store with the same digest.
    pub present: usize,
}

/// Copy every object of `store` that the backup in `dir` lacks or holds with another digest.
pub async fn backup(store: &ImageStore, dir: &Path) -> anyhow::Result<BackupReport> {
    let mut manifest = read_manifest(dir)?.unwrap_or_default();
    let mut report = BackupReport::default();
    for object in store.list().await? {
        report.objects += 1;
        let path = object_path(dir, &object.name)?;
        let known = manifest.get(&object.name);
        if known.is_some_and(|e| Some(&e.digest) == object.digest.as_ref()) && path.exists() {
            report.unchanged += 1;
            continue;
        }
        // Gone between the listing and now (deleted, or replaced and listed again next run).
        let Some(bytes) = store.get(&object.name).await? else {
            continue;
        };
        let actual = digest(&bytes);
        if let Some(recorded) = &object.digest
            && *recorded != actual
        {
            // Replaced between the listing and the read: the next run copies the new one.
            tracing::warn!(object = %object.name, "changed while being copied; next run");
            continue;
        }
        write_atomically(&path, &bytes)?;
        report.written += 1;
        report.bytes += bytes.len() as u64;
        manifest.insert(
            object.name,
            Entry {
                size: bytes.len(),
                digest: actual,
            },
        );
    }
    report.kept = manifest.len();
    write_atomically(&dir.join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?)?;
    Ok(report)
}

/// Put back every object of the backup in `dir` that `store` lacks or holds with another
/// digest; then every object of the backup must be in the store with its digest.
pub async fn restore(store: &ImageStore, dir: &Path) -> anyhow::Result<RestoreReport> {
    let manifest = read_manifest(dir)?
        .with_context(|| format!("{} has no {MANIFEST}: not an image backup", dir.display()))?;
    let stored = digests(store).await?;
    let mut report = RestoreReport {
        objects: manifest.len(),
        ..Default::default()
    };
    for (name, entry) in &manifest {
        if stored.get(name) == Some(&entry.digest) {
            report.present += 1;
            continue;
        }
        let path = object_path(dir, name)?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        anyhow::ensure!(
            digest(&bytes) == entry.digest,
            "{} does not match its digest in {MANIFEST}: the backup is damaged",
            path.display()
        );
        store.put(name, &bytes).await.map_err(|e| match e {
            PutError::Full { .. } => anyhow::anyhow!(
                "restoring {name}: {e}; raise NATS_IMAGES_MAX_BYTES (nats.imagesMaxBytes)"
            ),
            PutError::Unavailable(e) => e.context(format!("restoring {name}")),
        })?;
        report.restored += 1;
    }
    let stored = digests(store).await?;
    let missing: Vec<&String> = manifest
        .iter()
        .filter(|(name, entry)| stored.get(*name) != Some(&entry.digest))
        .map(|(name, _)| name)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "after the restore the store still lacks {} object(s), e.g. {}",
        missing.len(),
        missing[0]
    );
    Ok(report)
}

async fn digests(store: &ImageStore) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(store
        .list()
        .await?
        .into_iter()
        .filter_map(|o| Some((o.name, o.digest?)))
        .collect())
}

fn read_manifest(dir: &Path) -> anyhow::Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `objects/<name>` under `dir`. Names are ours (`items/<uuid>/<uuid>/<size>`); anything that
/// could leave the folder is refused rather than trusted.
fn object_path(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let safe = !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    anyhow::ensure!(safe, "object name {name:?} is not a safe file name");
    Ok(dir.join("objects").join(name))
}

/// Write to a temporary file beside `path` and rename it over: a run killed halfway leaves the
/// old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let parent = path.parent().context("a backup path has a parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_cannot_leave_the_backup_folder() {
        let dir = Path::new("/backups/images");
        assert_eq!(
            object_path(dir, "items/a-1/b_2/original").unwrap(),
            Path::new("/backups/images/objects/items/a-1/b_2/original")
        );
        for bad in [
            "",
            "../etc/passwd",
            "items/../../x",
            "/abs",
            "a//b",
            "a/./b",
            "a b",
        ] {
            assert!(object_path(dir, bad).is_err(), "{bad:?}");
        }
    }
}
