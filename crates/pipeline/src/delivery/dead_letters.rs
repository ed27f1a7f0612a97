//! Where a sink puts the records its destination can *never* take (too old, too large, refused
//! per record), with the reason. A place is a local file (the local default) or, for a fleet
//! whose disks are not durable, an S3 prefix (`trailhose-aws` implements that one). Either way
//! a write returns only once the lines are durable, so a record is acknowledged as
//! dead-lettered only after it is safe.
//!
//! One line per record: `{"dead_letter":{sink,reason,label,destination,source,record_index,
//! time},"record":<the record's bytes, on one line>}` — the shape `trailhose replay` reads.

use crate::deadletter::SyncedAppendFile;
use serde::Serialize;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One record refused for good.
#[derive(Debug, Clone, Copy)]
pub struct RefusedRecord<'a> {
    pub reason: &'a str,
    /// A stable category: `rejected`, `format`, `too_large`, `too_old`, …
    pub label: &'a str,
    /// Log group/stream, index, topic, … when the sink has several.
    pub destination: &'a str,
    /// The object the record came from.
    pub source: &'a str,
    pub record_index: u64,
    /// The record, on one line (pretty-printed sources are compacted first).
    pub record: &'a [u8],
}

#[derive(Serialize)]
struct Header<'a> {
    sink: &'a str,
    reason: &'a str,
    label: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    destination: &'a str,
    source: &'a str,
    record_index: u64,
    time: &'a str,
}

/// Appends the dead-letter lines of `entries` to `out`.
pub fn encode_lines(sink: &str, entries: &[RefusedRecord<'_>], out: &mut Vec<u8>) {
    let time = crate::deadletter::now_rfc3339();
    for e in entries {
        out.extend_from_slice(b"{\"dead_letter\":");
        // Serialising plain strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(
            &mut *out,
            &Header {
                sink,
                reason: e.reason,
                label: e.label,
                destination: e.destination,
                source: e.source,
                record_index: e.record_index,
                time: &time,
            },
        );
        out.extend_from_slice(b",\"record\":");
        let start = out.len();
        trailhose_core::splitter::compact_json_into(e.record, out);
        if out.len() == start {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b"}\n");
    }
}

pub type WriteFuture<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;

/// A durable place for refused records.
pub trait DeadLetterPlace: Send + Sync + 'static {
    /// Stores every entry durably before it returns `Ok`.
    fn write<'a>(&'a self, sink: &'a str, entries: &'a [RefusedRecord<'a>]) -> WriteFuture<'a>;

    /// Where, for messages (`/var/…/dl.ndjson`, `s3://bucket/prefix/`).
    fn describe(&self) -> String;

    /// Lines written by this process.
    fn count(&self) -> u64;
}

/// A local NDJSON file, synced on every write.
pub struct LocalDeadLetters {
    file: SyncedAppendFile,
    count: AtomicU64,
}

impl LocalDeadLetters {
    pub fn new(path: &Path) -> Arc<LocalDeadLetters> {
        Arc::new(LocalDeadLetters {
            file: SyncedAppendFile::new(path),
            count: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl DeadLetterPlace for LocalDeadLetters {
    fn write<'a>(&'a self, sink: &'a str, entries: &'a [RefusedRecord<'a>]) -> WriteFuture<'a> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(());
            }
            let mut buf = Vec::new();
            encode_lines(sink, entries, &mut buf);
            // A short synced append, and only for refused records: not worth a thread hop.
            self.file.append(&buf)?;
            self.count
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
            Ok(())
        })
    }

    fn describe(&self) -> String {
        self.file.path().display().to_string()
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_hold_reason_and_the_record_on_one_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let place = LocalDeadLetters::new(&dir.path().join("sub/dl.ndjson"));
        let pretty = b"{\n  \"eventID\": \"e1\",\n  \"a\": [1, 2]\n}";
        place
            .write(
                "cwl",
                &[RefusedRecord {
                    reason: "older than 14 days",
                    label: "too_old",
                    destination: "/g/s",
                    source: "s3://b/k.json.gz",
                    record_index: 7,
                    record: pretty,
                }],
            )
            .await
            .expect("write");
        assert_eq!(place.count(), 1);
        let text = std::fs::read_to_string(place.path()).expect("read");
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).expect("json line");
        assert_eq!(v["dead_letter"]["sink"], "cwl");
        assert_eq!(v["dead_letter"]["label"], "too_old");
        assert_eq!(v["dead_letter"]["record_index"], 7);
        assert_eq!(v["record"]["eventID"], "e1");
        assert_eq!(v["record"]["a"][1], 2);
    }
}
