//! The SIEM sinks' dead-letter file: one JSON line per record the destination permanently
//! refused (or that could not be shaped), with the reason, the original record embedded
//! untouched. A record counts as dead-lettered only once its line is synced to disk.

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

pub struct Entry<'a> {
    pub reason: &'a str,
    /// A stable category: `rejected`, `format`, `too_large`.
    pub label: &'a str,
    /// Index, topic, … when the sink has several.
    pub destination: &'a str,
    /// The object the record came from.
    pub source: &'a str,
    pub record_index: u64,
    /// The original record (one line).
    pub record: &'a [u8],
}

pub struct DeadLetterWriter {
    sink: String,
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl DeadLetterWriter {
    /// The file is created on the first entry.
    pub fn new(sink: &str, path: &Path) -> Self {
        DeadLetterWriter {
            sink: sink.to_string(),
            path: path.to_path_buf(),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the entries and syncs them before returning.
    pub fn write_all(&self, entries: &[Entry<'_>]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let time = trailhose_pipeline::deadletter::now_rfc3339();
        let mut buf = Vec::new();
        for e in entries {
            buf.extend_from_slice(b"{\"dead_letter\":");
            serde_json::to_writer(
                &mut buf,
                &Header {
                    sink: &self.sink,
                    reason: e.reason,
                    label: e.label,
                    destination: e.destination,
                    source: e.source,
                    record_index: e.record_index,
                    time: &time,
                },
            )
            .map_err(io::Error::other)?;
            buf.extend_from_slice(b",\"record\":");
            buf.extend_from_slice(e.record);
            buf.extend_from_slice(b"}\n");
        }
        let mut guard = match self.file.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.is_none() {
            if let Some(parent) = self.path.parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent)?;
                }
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
            *guard = Some(f);
        }
        match guard.as_mut() {
            Some(f) => {
                f.write_all(&buf)?;
                f.sync_data()
            }
            None => Err(io::Error::other("dead-letter file not open")),
        }
    }
}
