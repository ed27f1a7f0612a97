//! The archive sink: groups each delivery's records by partition, appends them to that
//! partition's open file, and acknowledges a delivery's records only when every file holding
//! them is durably committed (fsynced and renamed into place, or uploaded to S3).
//!
//! Bounds: at most `max_open_files` files are open; opening another one commits the least
//! recently written first. A file is committed at `max_file_bytes` of records, or
//! `max_file_seconds` after it was opened, or when the input ends. The chunk bytes of a
//! delivery are released as soon as they are appended — only the acknowledgement tokens wait.

use crate::file::{extension, ArchiveFile};
use crate::partition::Partition;
use crate::store::{S3Target, Store};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use trailhose_config::archive::ArchiveSinkConfig;
use trailhose_pipeline::ack::AckToken;
use trailhose_pipeline::chunk::RecordMeta;
use trailhose_pipeline::sink::{register_sink_counters, SinkCounters};
use trailhose_pipeline::{Delivery, Sink, SinkFuture, SinkReport};

pub struct ArchiveSink {
    cfg: ArchiveSinkConfig,
    store: Store,
}

impl ArchiveSink {
    /// A sink for `cfg`; S3 locations need a client (from [`crate::s3_client`]).
    pub fn new(cfg: ArchiveSinkConfig, s3: Option<aws_sdk_s3::Client>) -> Result<Self, String> {
        let store = match crate::store::split_s3_url(&cfg.location) {
            Some((bucket, prefix)) => {
                let client = s3.ok_or_else(|| {
                    format!("sink {}: an s3:// location needs an S3 client", cfg.name)
                })?;
                let staging = std::env::temp_dir().join(format!(
                    "trailhose-archive-{}-{}",
                    std::process::id(),
                    sanitize(&cfg.name)
                ));
                std::fs::create_dir_all(&staging)
                    .map_err(|e| format!("sink {}: {}: {e}", cfg.name, staging.display()))?;
                let handle = tokio::runtime::Handle::try_current()
                    .map_err(|e| format!("sink {}: needs a tokio runtime: {e}", cfg.name))?;
                Store::S3(S3Target {
                    client,
                    bucket,
                    prefix,
                    staging,
                    sse: cfg.sse.clone(),
                    kms_key_id: cfg.kms_key_id.clone(),
                    multipart_threshold: cfg.multipart_threshold_bytes,
                    part_bytes: cfg.part_bytes,
                    handle,
                })
            }
            None => {
                let root = PathBuf::from(&cfg.location);
                std::fs::create_dir_all(&root)
                    .map_err(|e| format!("sink {}: {}: {e}", cfg.name, root.display()))?;
                Store::Local {
                    root,
                    fsync: cfg.fsync,
                }
            }
        };
        Ok(ArchiveSink { cfg, store })
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A random-enough instance id so files from many workers never collide (no RNG dependency:
/// std's hasher keys are randomly seeded per process).
fn instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

struct OpenFile {
    file: ArchiveFile,
    staged: PathBuf,
    rel: String,
    records: u64,
    bytes: u64,
    opened: Instant,
    last_write: Instant,
    tokens: Vec<AckToken>,
}

struct State {
    cfg: ArchiveSinkConfig,
    store: Store,
    open: HashMap<Partition, OpenFile>,
    instance: String,
    seq: u64,
    report: SinkReport,
    live: Arc<SinkCounters>,
}

impl State {
    fn accept(&mut self, d: Delivery) {
        let mut by_partition: BTreeMap<Partition, Vec<&RecordMeta>> = BTreeMap::new();
        for r in d.records() {
            by_partition
                .entry(Partition::of(&d.chunk.object, &r.fields))
                .or_default()
                .push(r);
        }
        for (partition, records) in by_partition {
            let token = d.token.split();
            if let Err(e) = self.append(&partition, &d, &records, token) {
                tracing::error!(sink = %self.cfg.name, partition = %partition.dir(), error = %e, "archive write failed");
            }
        }
        // The per-partition tokens carry the obligation now.
        d.token.ack();
    }

    fn append(
        &mut self,
        partition: &Partition,
        d: &Delivery,
        records: &[&RecordMeta],
        token: AckToken,
    ) -> Result<(), String> {
        if !self.open.contains_key(partition) {
            if self.open.len() >= self.cfg.max_open_files {
                if let Some(lru) = self
                    .open
                    .iter()
                    .min_by_key(|(_, f)| f.last_write)
                    .map(|(p, _)| p.clone())
                {
                    self.commit(&lru, "max_open_files");
                }
            }
            self.seq += 1;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let rel = format!(
                "{}/part-{now_ms}-{}-{:06}.{}",
                partition.dir(),
                self.instance,
                self.seq,
                extension(self.cfg.format)
            );
            let staged = self.store.staging_path(&rel);
            let file = match ArchiveFile::create(
                &staged,
                self.cfg.format,
                self.cfg.compression,
                self.cfg.row_group_bytes,
            ) {
                Ok(f) => f,
                Err(e) => {
                    let msg = format!("{}: creating {}: {e}", self.cfg.name, staged.display());
                    self.fail_tokens(vec![token], &msg);
                    return Err(msg);
                }
            };
            let now = Instant::now();
            self.open.insert(
                partition.clone(),
                OpenFile {
                    file,
                    staged,
                    rel,
                    records: 0,
                    bytes: 0,
                    opened: now,
                    last_write: now,
                    tokens: Vec::new(),
                },
            );
        }
        let Some(open) = self.open.get_mut(partition) else {
            return Err("partition vanished".into());
        };
        open.tokens.push(token);
        open.last_write = Instant::now();
        for r in records {
            if let Err(e) = open.file.append(&d.chunk, r) {
                let msg = format!(
                    "{}: writing {}: {e} (file abandoned; its records will be retried)",
                    self.cfg.name,
                    open.staged.display()
                );
                self.abandon(partition, &msg);
                return Err(msg);
            }
            open.records += 1;
            open.bytes += r.range.len() as u64;
        }
        if open.bytes >= self.cfg.max_file_bytes {
            self.commit(partition, "max_file_bytes");
        }
        Ok(())
    }

    /// Files past their age limit are committed; called between deliveries and on ticks.
    fn commit_due(&mut self) {
        let max_age = Duration::from_secs(self.cfg.max_file_seconds);
        let due: Vec<Partition> = self
            .open
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= max_age)
            .map(|(p, _)| p.clone())
            .collect();
        for p in due {
            self.commit(&p, "max_file_seconds");
        }
    }

    fn commit(&mut self, partition: &Partition, why: &str) {
        let Some(open) = self.open.remove(partition) else {
            return;
        };
        // An S3 upload reads the staged file back; only a local archive needs it on disk.
        let fsync = matches!(self.store, Store::Local { fsync: true, .. });
        let result = open
            .file
            .finish(fsync)
            .map_err(|e| format!("finishing {}: {e}", open.staged.display()))
            .and_then(|()| self.store.commit(&open.staged, &open.rel));
        match result {
            Ok(()) => {
                tracing::debug!(sink = %self.cfg.name, file = %self.store.describe(&open.rel), records = open.records, why, "archive file committed");
                self.report.records += open.records;
                self.report.bytes += open.bytes;
                self.report.batches += 1;
                self.live.records.fetch_add(open.records, Relaxed);
                self.live.batches.fetch_add(1, Relaxed);
                for t in open.tokens {
                    t.ack();
                }
            }
            Err(e) => {
                self.store.discard(&open.staged);
                let msg = format!(
                    "{}: {} not written: {e}",
                    self.cfg.name,
                    self.store.describe(&open.rel)
                );
                tracing::error!(sink = %self.cfg.name, error = %msg, "archive commit failed; records will be retried");
                self.fail_tokens(open.tokens, &msg);
            }
        }
    }

    fn abandon(&mut self, partition: &Partition, msg: &str) {
        if let Some(open) = self.open.remove(partition) {
            drop(open.file);
            self.store.discard(&open.staged);
            self.fail_tokens(open.tokens, msg);
        }
    }

    fn fail_tokens(&mut self, tokens: Vec<AckToken>, msg: &str) {
        self.report.failed_deliveries += tokens.len() as u64;
        if self.report.errors.len() < 8 {
            self.report.errors.push(msg.to_owned());
        }
        for t in tokens {
            t.fail(msg.to_owned());
        }
    }

    fn buffered_bytes(&self) -> usize {
        self.open.values().map(|f| f.file.buffered_bytes()).sum()
    }
}

impl Sink for ArchiveSink {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn run(self: Box<Self>, mut rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        let this = *self;
        Box::pin(async move {
            let name = this.cfg.name.clone();
            let handle = tokio::runtime::Handle::current();
            let joined = tokio::task::spawn_blocking(move || {
                let live = register_sink_counters(&this.cfg.name);
                let tick =
                    Duration::from_secs(this.cfg.max_file_seconds).min(Duration::from_millis(500));
                let mut st = State {
                    report: SinkReport {
                        name: this.cfg.name.clone(),
                        ..Default::default()
                    },
                    cfg: this.cfg,
                    store: this.store,
                    open: HashMap::new(),
                    instance: instance_id(),
                    seq: 0,
                    live,
                };
                loop {
                    // Waiting with a timeout, so age-based rolls happen with no input too.
                    match handle.block_on(tokio::time::timeout(tick, rx.recv())) {
                        Ok(Some(d)) => st.accept(d),
                        Ok(None) => break,
                        Err(_) => {}
                    }
                    st.commit_due();
                    tracing::trace!(buffered = st.buffered_bytes(), "archive buffers");
                }
                let open: Vec<Partition> = st.open.keys().cloned().collect();
                for p in open {
                    st.commit(&p, "input closed");
                }
                st.report
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
