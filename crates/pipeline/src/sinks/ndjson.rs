//! NDJSON: one record per line, the original bytes (or an enrichment envelope around them).
//! Writes happen on a blocking thread; a delivery is acknowledged once its lines are flushed
//! to the OS (and, with `fsync`, once files are synced at rotation and close).

use crate::chunk::{ObjectMeta, RecordChunk, RecordMeta};
use crate::sink::{Delivery, Sink, SinkFuture, SinkReport};
use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;
use trailhose_core::splitter::compact_json_into;

/// How a record is written.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// The record's original bytes, untouched.
    #[default]
    Raw,
    /// `{"trailhose":{account,region,orgId,bucket,key},"record":<original bytes>}`: enrichment
    /// without altering the record.
    Envelope,
}

/// Writes one record as one line into `out`.
pub fn write_line(
    out: &mut Vec<u8>,
    shape: Shape,
    object: &ObjectMeta,
    chunk: &RecordChunk,
    r: &RecordMeta,
) {
    if shape == Shape::Envelope {
        out.extend_from_slice(b"{\"trailhose\":");
        let meta = serde_json::json!({
            "account": object.account,
            "region": object.region,
            "orgId": object.org_id,
            "bucket": object.bucket,
            "key": object.key,
        });
        // Serialising a json! value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &meta);
        out.extend_from_slice(b",\"record\":");
    }
    let bytes = chunk.bytes_of(r);
    if r.has_line_break {
        compact_json_into(bytes, out);
    } else {
        out.extend_from_slice(bytes);
    }
    if shape == Shape::Envelope {
        out.push(b'}');
    }
    out.push(b'\n');
}

/// Writes a block of lines; an empty block closes the current file.
type LineWriter = Box<dyn FnMut(&[u8]) -> io::Result<()> + Send>;

pub enum Target {
    Stdout,
    /// Rotating files `PREFIX-NNNNNN.ndjson` in a directory.
    Dir {
        dir: PathBuf,
        prefix: String,
        max_file_bytes: u64,
        fsync: bool,
    },
}

pub struct NdjsonSink {
    pub name: String,
    pub target: Target,
    pub shape: Shape,
}

struct Rotating {
    dir: PathBuf,
    prefix: String,
    max: u64,
    fsync: bool,
    seq: u64,
    written: u64,
    file: Option<BufWriter<File>>,
}

impl Rotating {
    fn new(dir: &Path, prefix: &str, max: u64, fsync: bool) -> io::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
        // Continue numbering after existing files, so a restart never overwrites output.
        let mut seq = 0;
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_prefix(&format!("{prefix}-"))
                .and_then(|r| r.strip_suffix(".ndjson"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                seq = seq.max(n + 1);
            }
        }
        Ok(Rotating {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            max: max.max(1),
            fsync,
            seq,
            written: 0,
            file: None,
        })
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.file.is_some() && self.written + buf.len() as u64 > self.max {
            self.close()?;
        }
        if self.file.is_none() {
            let path = self
                .dir
                .join(format!("{}-{:06}.ndjson", self.prefix, self.seq));
            self.seq += 1;
            let f = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            self.file = Some(BufWriter::with_capacity(1 << 20, f));
            self.written = 0;
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(buf)?;
            f.flush()?;
        }
        self.written += buf.len() as u64;
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        if let Some(f) = self.file.take() {
            let f = f.into_inner().map_err(|e| e.into_error())?;
            if self.fsync {
                f.sync_all()?;
            }
        }
        Ok(())
    }
}

impl Sink for NdjsonSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, mut rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        let this = *self;
        Box::pin(async move {
            let name = this.name.clone();
            let joined = tokio::task::spawn_blocking(move || {
                let mut report = SinkReport {
                    name: this.name.clone(),
                    ..Default::default()
                };
                let mut out: LineWriter = match &this.target {
                    Target::Stdout => {
                        let stdout = io::stdout();
                        Box::new(move |b: &[u8]| {
                            let mut l = stdout.lock();
                            l.write_all(b)?;
                            l.flush()
                        })
                    }
                    Target::Dir {
                        dir,
                        prefix,
                        max_file_bytes,
                        fsync,
                    } => match Rotating::new(dir, prefix, *max_file_bytes, *fsync) {
                        Ok(mut r) => Box::new(
                            move |b: &[u8]| {
                                if b.is_empty() {
                                    r.close()
                                } else {
                                    r.write(b)
                                }
                            },
                        ),
                        Err(e) => {
                            report.errors.push(e.to_string());
                            Box::new(move |_: &[u8]| Err(io::Error::other(e.to_string())))
                        }
                    },
                };
                let live = crate::sink::register_sink_counters(&this.name);
                let mut buf = Vec::with_capacity(1 << 20);
                while let Some(d) = rx.blocking_recv() {
                    buf.clear();
                    let mut n = 0u64;
                    for r in d.records() {
                        write_line(&mut buf, this.shape, &d.chunk.object, &d.chunk, r);
                        n += 1;
                    }
                    match out(&buf) {
                        Ok(()) => {
                            report.records += n;
                            report.bytes += buf.len() as u64;
                            live.records
                                .store(report.records, std::sync::atomic::Ordering::Relaxed);
                            d.token.ack();
                        }
                        Err(e) => {
                            report.failed_deliveries += 1;
                            let msg = format!("{}: write failed: {e}", this.name);
                            if report.errors.len() < 8 {
                                report.errors.push(msg.clone());
                            }
                            d.token.fail(msg);
                        }
                    }
                }
                // An empty write closes (and syncs) the current file.
                if let Err(e) = out(&[]) {
                    report
                        .errors
                        .push(format!("{}: close failed: {e}", this.name));
                }
                report
            })
            .await;
            joined.unwrap_or_else(|e| SinkReport {
                name,
                errors: vec![format!("sink task panicked: {e}")],
                ..Default::default()
            })
        })
    }
}
