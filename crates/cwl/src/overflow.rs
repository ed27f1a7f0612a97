//! Where records CloudWatch Logs cannot take go, with the reason: one JSON line each, the
//! record embedded untouched. Records are acknowledged only once their overflow line is synced.

use serde::Serialize;
use std::io;
use std::path::Path;
use trailhose_pipeline::deadletter::SyncedAppendFile;

#[derive(Serialize)]
struct Header<'a> {
    reason: &'a str,
    label: &'a str,
    log_group: &'a str,
    log_stream: &'a str,
    source: &'a str,
}

pub struct OverflowEntry<'a> {
    pub reason: &'a str,
    pub label: &'a str,
    pub log_group: &'a str,
    pub log_stream: &'a str,
    pub source: &'a str,
    pub record: &'a [u8],
}

pub struct OverflowFile {
    file: SyncedAppendFile,
}

impl OverflowFile {
    pub fn new(path: &Path) -> Self {
        OverflowFile {
            file: SyncedAppendFile::new(path),
        }
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Appends entries and syncs them to disk before returning.
    pub fn write_all(&self, entries: &[OverflowEntry<'_>]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in entries {
            // `{"overflow":{...},"record":<original bytes>}`
            buf.extend_from_slice(b"{\"overflow\":");
            serde_json::to_writer(
                &mut buf,
                &Header {
                    reason: e.reason,
                    label: e.label,
                    log_group: e.log_group,
                    log_stream: e.log_stream,
                    source: e.source,
                },
            )
            .map_err(io::Error::other)?;
            buf.extend_from_slice(b",\"record\":");
            buf.extend_from_slice(e.record);
            buf.extend_from_slice(b"}\n");
        }
        self.file.append(&buf)
    }
}
