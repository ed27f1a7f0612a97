//! The source's dead-letter place: one JSON line per object or message that could not be
//! processed, with the reason. Nothing leaves the pipeline without a trace here or in a sink.
//! The place is a local file (the default) or, for a fleet whose disks are not durable, a
//! [`RemoteLines`] store (an S3 prefix, built by `trailhose-aws`).

use crate::delivery::dead_letters::WriteFuture;
use crate::linefile::AppendFile;
use serde::Serialize;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where a remote dead-letter place keeps entries written outside a sink (the directory source,
/// backfill and the SQS worker): the `<sink>` part of its keys.
pub const SOURCE_GROUP: &str = "_source";

/// A remote place for dead-letter lines: every [`put`](Self::put) stores its lines as one
/// durable object (S3 in `trailhose-aws`).
pub trait RemoteLines: Send + Sync + 'static {
    /// Stores `lines` (complete NDJSON lines) under `group` (a sink name, or
    /// [`SOURCE_GROUP`]); returns `Ok` only once they are durable.
    fn put<'a>(&'a self, group: &'a str, lines: Vec<u8>) -> WriteFuture<'a>;

    /// Where, for messages (`s3://bucket/prefix/`).
    fn describe(&self) -> String;
}

#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    /// `s3://bucket/key` or a path.
    pub source: &'a str,
    /// A stable label (e.g. `corrupt_compression`).
    pub kind: &'a str,
    pub reason: &'a str,
    /// Records of the object that were delivered before the fault.
    pub records_before_fault: u64,
    pub time: String,
}

/// An append-only file of lines, created (with its directory) on the first write; every
/// append is synced before it returns, so whoever acknowledges after it knows the bytes are on
/// disk. Appends go through [`AppendFile`]: whole lines only, nothing left of a failed
/// append, a torn line left by a killed writer cut, safe to share between processes.
pub struct SyncedAppendFile {
    file: AppendFile,
}

impl SyncedAppendFile {
    pub fn new(path: &Path) -> Self {
        SyncedAppendFile {
            file: AppendFile::new(path),
        }
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Appends `bytes` (whole lines, ending with `\n`) and syncs them.
    pub fn append(&self, bytes: &[u8]) -> io::Result<()> {
        self.file.append(bytes, true)
    }
}

enum Place {
    Local(SyncedAppendFile),
    Remote {
        store: Arc<dyn RemoteLines>,
        /// The store's description, as a path for [`DeadLetterFile::path`].
        shown: PathBuf,
    },
}

/// The source's dead-letter place: a local file, or a remote store (one object per entry).
pub struct DeadLetterFile {
    place: Place,
    count: AtomicU64,
}

impl DeadLetterFile {
    /// A local file, created on the first entry, so a clean run leaves none behind.
    pub fn new(path: &Path) -> Self {
        DeadLetterFile {
            place: Place::Local(SyncedAppendFile::new(path)),
            count: AtomicU64::new(0),
        }
    }

    /// A remote place: every entry becomes one object of `store`, under [`SOURCE_GROUP`].
    pub fn remote(store: Arc<dyn RemoteLines>) -> Self {
        let shown = PathBuf::from(store.describe());
        DeadLetterFile {
            place: Place::Remote { store, shown },
            count: AtomicU64::new(0),
        }
    }

    /// The local file, or the remote place's description (`s3://bucket/prefix/`) as a path.
    pub fn path(&self) -> &Path {
        match &self.place {
            Place::Local(f) => f.path(),
            Place::Remote { shown, .. } => shown,
        }
    }

    /// Where entries go, for messages.
    pub fn describe(&self) -> String {
        self.path().display().to_string()
    }

    pub fn is_remote(&self) -> bool {
        matches!(self.place, Place::Remote { .. })
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Stores one entry; returns once it is durable (synced, or the object written).
    pub async fn write(&self, entry: &DeadLetter<'_>) -> io::Result<()> {
        self.write_json(entry).await
    }

    /// Stores any serialisable entry as one line (sources with richer entries, e.g. the SQS
    /// worker's message-level dead letters, use this).
    pub async fn write_json<T: Serialize + ?Sized>(&self, entry: &T) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        match &self.place {
            // A short synced append, and only for failed objects: not worth a thread hop.
            Place::Local(f) => f.append(&line)?,
            Place::Remote { store, .. } => store.put(SOURCE_GROUP, line).await?,
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

pub fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    trailhose_core::timefmt::format_rfc3339_s(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Keeps every put in memory.
    #[derive(Default)]
    struct Puts(Mutex<Vec<(String, Vec<u8>)>>);

    impl RemoteLines for Puts {
        fn put<'a>(&'a self, group: &'a str, lines: Vec<u8>) -> WriteFuture<'a> {
            Box::pin(async move {
                match self.0.lock() {
                    Ok(mut v) => v.push((group.to_owned(), lines)),
                    Err(p) => p.into_inner().push((group.to_owned(), lines)),
                }
                Ok(())
            })
        }

        fn describe(&self) -> String {
            "mem://dl/".into()
        }
    }

    #[tokio::test]
    async fn a_remote_place_gets_one_put_per_entry_under_the_source_group() {
        let puts = Arc::new(Puts::default());
        let dlq = DeadLetterFile::remote(puts.clone());
        assert!(dlq.is_remote());
        assert_eq!(dlq.describe(), "mem://dl/");
        for n in 0..2 {
            dlq.write(&DeadLetter {
                source: "s3://b/k.json.gz",
                kind: "corrupt_compression",
                reason: "bad gzip",
                records_before_fault: n,
                time: now_rfc3339(),
            })
            .await
            .expect("written");
        }
        assert_eq!(dlq.count(), 2);
        let puts = puts.0.lock().expect("lock");
        assert_eq!(puts.len(), 2);
        for (n, (group, lines)) in puts.iter().enumerate() {
            assert_eq!(group, SOURCE_GROUP);
            assert_eq!(lines.iter().filter(|b| **b == b'\n').count(), 1);
            let v: serde_json::Value = serde_json::from_slice(lines).expect("json line");
            assert_eq!(v["records_before_fault"], n);
            assert_eq!(v["kind"], "corrupt_compression");
        }
    }

    #[tokio::test]
    async fn a_local_place_appends_synced_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dlq = DeadLetterFile::new(&dir.path().join("d/dl.ndjson"));
        assert!(!dlq.is_remote());
        dlq.write_json(&serde_json::json!({"kind": "x"}))
            .await
            .expect("written");
        dlq.write_json(&serde_json::json!({"kind": "y"}))
            .await
            .expect("written");
        let text = std::fs::read_to_string(dlq.path()).expect("file");
        assert_eq!(text, "{\"kind\":\"x\"}\n{\"kind\":\"y\"}\n");
        assert_eq!(dlq.count(), 2);
    }
}
