//! The local dead-letter place: one JSON line per object or record that could not be
//! processed, with the reason. Nothing leaves the pipeline without a trace here or in a sink.

use crate::linefile::AppendFile;
use serde::Serialize;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

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

pub struct DeadLetterFile {
    file: SyncedAppendFile,
    count: AtomicU64,
}

impl DeadLetterFile {
    /// The file is created on the first entry, so a clean run leaves none behind.
    pub fn new(path: &Path) -> Self {
        DeadLetterFile {
            file: SyncedAppendFile::new(path),
            count: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn write(&self, entry: &DeadLetter<'_>) -> io::Result<()> {
        self.write_json(entry)
    }

    /// Appends any serialisable entry as one line (sources with richer entries, e.g. the SQS
    /// worker's message-level dead letters, use this).
    pub fn write_json<T: Serialize + ?Sized>(&self, entry: &T) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.append(&line)?;
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
