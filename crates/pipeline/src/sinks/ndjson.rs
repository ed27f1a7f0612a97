//! NDJSON: one record per line, the original bytes (or an enrichment envelope around them).
//!
//! **Files** rotate as `PREFIX-<host>-<pid>-<random>-NNNNNN.ndjson` (several workers may share a
//! directory) and are written through [`RotatingLines`]: each delivery's lines go in as one
//! block, whole or not at all, so no file holds a torn or a doubled line, and a file is cut
//! at `max_file_bytes`. Deliveries are drained from the channel in groups: without `fsync` a
//! delivery is acknowledged once its lines reached the OS; with `fsync` the group is synced
//! once and then every delivery of it is acknowledged (group commit).
//!
//! A write, open or sync error (disk full, EACCES, EROFS, EIO, …) does not fail a delivery at
//! once: it opens the sink's [`Breaker`] (`transient` for disk full and I/O errors,
//! `sink_refused` for permissions and read-only file systems) and the group is held — the
//! source pauses — and written again on the breaker's probe schedule, until
//! `max_retry_duration` runs out or the pipeline stops retrying (shutdown); only then do the
//! deliveries not written fail (the object comes back; nothing is dead-lettered). A directory
//! that cannot be created or written at start is retried the same way, so the sink recovers
//! on its own once it can write.
//!
//! **Stdout** is written as delivered; a broken pipe fails the delivery.

use crate::ack::AckToken;
use crate::chunk::{ObjectMeta, RecordChunk, RecordMeta};
use crate::delivery::breaker::pause;
use crate::delivery::{
    Admission, Breaker, DeliveryConfig, DeliveryControl, DeliveryOverrides, FailureClass,
};
use crate::linefile::{push_json, RotatingLines};
use crate::rate::backoff;
use crate::sink::{register_sink_counters, Delivery, Sink, SinkCounters, SinkFuture, SinkReport};
use serde::{Deserialize, Deserializer};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

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
    push_json(out, chunk.bytes_of(r), r.has_line_break);
    if shape == Shape::Envelope {
        out.push(b'}');
    }
    out.push(b'\n');
}

pub enum Target {
    Stdout,
    /// Rotating files with the default delivery settings (see [`FileTarget`] for all of them).
    Dir {
        dir: PathBuf,
        prefix: String,
        max_file_bytes: u64,
        fsync: bool,
    },
    /// Rotating files `PREFIX-<host>-<pid>-<random>-NNNNNN.ndjson` in a directory.
    Files(FileTarget),
}

/// Where and how an NDJSON file sink writes.
pub struct FileTarget {
    pub dir: PathBuf,
    pub prefix: String,
    pub max_file_bytes: u64,
    /// Acknowledge a delivery only once its lines are synced (group commit).
    pub fsync: bool,
    /// `max_retry_duration_seconds`, `backoff_ms`/`max_backoff_ms` (before the breaker opens),
    /// `probe_interval_ms`/`max_probe_interval_ms` (while it is open).
    pub delivery: DeliveryConfig,
    attached: Option<Attached>,
}

impl FileTarget {
    pub fn new(
        dir: PathBuf,
        prefix: String,
        max_file_bytes: u64,
        fsync: bool,
        delivery: DeliveryConfig,
    ) -> FileTarget {
        FileTarget {
            dir,
            prefix,
            max_file_bytes,
            fsync,
            delivery,
            attached: None,
        }
    }
}

#[derive(Clone)]
struct Attached {
    control: DeliveryControl,
    breaker: Arc<Breaker>,
}

/// `[sinks.delivery]` of an `ndjson` sink: only the keys that mean something for local files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDeliveryOverrides {
    pub max_retry_duration_seconds: Option<u64>,
    pub backoff_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
    pub probe_interval_ms: Option<u64>,
    pub max_probe_interval_ms: Option<u64>,
}

impl FileDeliveryOverrides {
    pub fn over(&self, base: DeliveryConfig) -> DeliveryConfig {
        DeliveryOverrides {
            max_retry_duration_seconds: self.max_retry_duration_seconds,
            backoff_ms: self.backoff_ms,
            max_backoff_ms: self.max_backoff_ms,
            probe_interval_ms: self.probe_interval_ms,
            max_probe_interval_ms: self.max_probe_interval_ms,
            ..DeliveryOverrides::default()
        }
        .over(base)
    }
}

/// The file sink's delivery defaults: retried for 15 minutes (the SQS worker keeps a held
/// message invisible meanwhile), first probe after about 1 s, at most every 30 s.
pub fn file_delivery_defaults() -> DeliveryConfig {
    DeliveryConfig::default()
}

/// `deserialize_with` for an `ndjson` sink's `delivery` table.
pub fn file_delivery<'de, D: Deserializer<'de>>(d: D) -> Result<DeliveryConfig, D::Error> {
    FileDeliveryOverrides::deserialize(d).map(|o| o.over(file_delivery_defaults()))
}

pub struct NdjsonSink {
    pub name: String,
    pub target: Target,
    pub shape: Shape,
}

impl Sink for NdjsonSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn attach(&mut self, control: &DeliveryControl) {
        let mut ft = match std::mem::replace(&mut self.target, Target::Stdout) {
            Target::Stdout => return,
            Target::Dir {
                dir,
                prefix,
                max_file_bytes,
                fsync,
            } => FileTarget::new(dir, prefix, max_file_bytes, fsync, file_delivery_defaults()),
            Target::Files(ft) => ft,
        };
        ft.attached = Some(Attached {
            breaker: control.breaker(&self.name, ft.delivery.probe_schedule()),
            control: control.clone(),
        });
        self.target = Target::Files(ft);
    }

    fn run(self: Box<Self>, rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        let NdjsonSink {
            name,
            target,
            shape,
        } = *self;
        match target {
            Target::Stdout => Box::pin(run_stdout(name, shape, rx)),
            Target::Dir {
                dir,
                prefix,
                max_file_bytes,
                fsync,
            } => {
                let ft =
                    FileTarget::new(dir, prefix, max_file_bytes, fsync, file_delivery_defaults());
                Box::pin(run_files(name, shape, ft, rx))
            }
            Target::Files(ft) => Box::pin(run_files(name, shape, ft, rx)),
        }
    }
}

async fn run_stdout(name: String, shape: Shape, mut rx: mpsc::Receiver<Delivery>) -> SinkReport {
    let task_name = name.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let name = task_name;
        let mut report = SinkReport {
            name: name.clone(),
            ..Default::default()
        };
        let live = register_sink_counters(&name);
        let stdout = io::stdout();
        let mut buf = Vec::with_capacity(1 << 20);
        while let Some(d) = rx.blocking_recv() {
            buf.clear();
            let mut n = 0u64;
            for r in d.records() {
                write_line(&mut buf, shape, &d.chunk.object, &d.chunk, r);
                n += 1;
            }
            let written = {
                let mut l = stdout.lock();
                l.write_all(&buf).and_then(|()| l.flush())
            };
            match written {
                Ok(()) => {
                    report.records += n;
                    report.bytes += buf.len() as u64;
                    live.records.store(report.records, Ordering::Relaxed);
                    d.token.ack();
                }
                Err(e) => {
                    report.failed_deliveries += 1;
                    let msg = format!("{name}: write failed: {e}");
                    if report.errors.len() < 8 {
                        report.errors.push(msg.clone());
                    }
                    d.token.fail(msg);
                }
            }
        }
        report
    })
    .await;
    joined.unwrap_or_else(|e| SinkReport {
        name,
        errors: vec![format!("sink task panicked: {e}")],
        ..Default::default()
    })
}

/// Deliveries drained from the channel into one group commit, at most.
const GROUP_DELIVERIES: usize = 64;
/// Line bytes of one group commit, at most (a single delivery may be larger).
const GROUP_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    /// In file number `file`, not known durable.
    Written {
        file: u64,
    },
    Synced,
}

/// One delivery's lines, waiting for its answer.
struct Block {
    token: Option<AckToken>,
    bytes: Vec<u8>,
    records: u64,
    state: State,
}

struct FileSink {
    name: String,
    target: FileTarget,
    counters: Arc<SinkCounters>,
    control: DeliveryControl,
    breaker: Arc<Breaker>,
    /// `None` only while a blocking step has it.
    writer: Option<RotatingLines>,
}

/// What an I/O error says about the sink: the directory refuses us (permissions, read-only
/// file system, a path that is not a directory) or something that may pass (disk full, I/O
/// errors, a directory removed and created again).
pub fn failure_class(e: &io::Error) -> FailureClass {
    match e.kind() {
        io::ErrorKind::PermissionDenied
        | io::ErrorKind::ReadOnlyFilesystem
        | io::ErrorKind::NotADirectory
        | io::ErrorKind::IsADirectory => FailureClass::SinkRefused,
        _ => FailureClass::Transient,
    }
}

/// Writes every pending block, then (with `fsync`) syncs; on error the blocks a failed sync
/// cut are pending again.
fn write_group(w: &mut RotatingLines, blocks: &mut [Block], fsync: bool) -> io::Result<()> {
    fn unmark(blocks: &mut [Block], cut: Option<u64>) {
        if let Some(cut) = cut {
            for b in blocks.iter_mut() {
                if b.state == (State::Written { file: cut }) {
                    b.state = State::Pending;
                }
            }
        }
    }
    for i in 0..blocks.len() {
        let Some(b) = blocks.get(i) else { continue };
        if b.state != State::Pending || b.token.is_none() {
            continue;
        }
        match w.write(&b.bytes, fsync) {
            Ok(file) => {
                if let Some(b) = blocks.get_mut(i) {
                    b.state = State::Written { file };
                }
            }
            Err(e) => {
                unmark(blocks, e.cut_unsynced_of);
                return Err(e.error);
            }
        }
    }
    if fsync {
        sync_group(w, blocks)?;
    }
    Ok(())
}

fn sync_group(w: &mut RotatingLines, blocks: &mut [Block]) -> io::Result<()> {
    if let Err(e) = w.sync() {
        if let Some(cut) = e.cut_unsynced_of {
            for b in blocks.iter_mut() {
                if b.state == (State::Written { file: cut }) {
                    b.state = State::Pending;
                }
            }
        }
        return Err(e.error);
    }
    for b in blocks.iter_mut() {
        if matches!(b.state, State::Written { .. }) {
            b.state = State::Synced;
        }
    }
    Ok(())
}

impl FileSink {
    fn new_writer(&self) -> RotatingLines {
        RotatingLines::new(
            &self.target.dir,
            &self.target.prefix,
            self.target.max_file_bytes,
        )
    }

    /// Runs `f` on the writer and the blocks on a blocking thread. A panic there drops the
    /// blocks' tokens, which fails their deliveries.
    async fn blocking<F>(&mut self, blocks: &mut Vec<Block>, f: F) -> io::Result<()>
    where
        F: FnOnce(&mut RotatingLines, &mut [Block]) -> io::Result<()> + Send + 'static,
    {
        let mut w = match self.writer.take() {
            Some(w) => w,
            None => self.new_writer(),
        };
        let mut owned = std::mem::take(blocks);
        let joined = tokio::task::spawn_blocking(move || {
            let r = f(&mut w, &mut owned);
            (w, owned, r)
        })
        .await;
        match joined {
            Ok((w, owned, r)) => {
                self.writer = Some(w);
                *blocks = owned;
                r
            }
            Err(e) => {
                self.writer = Some(self.new_writer());
                Err(io::Error::other(format!("writer thread failed: {e}")))
            }
        }
    }

    /// Acknowledges the blocks that are where they must be: written (without `fsync`) or
    /// synced.
    fn answer(&self, blocks: &mut [Block]) {
        for b in blocks.iter_mut() {
            let done = match b.state {
                State::Synced => true,
                State::Written { .. } => !self.target.fsync,
                State::Pending => false,
            };
            if done {
                if let Some(t) = b.token.take() {
                    self.counters
                        .records
                        .fetch_add(b.records, Ordering::Relaxed);
                    self.counters
                        .bytes
                        .fetch_add(b.bytes.len() as u64, Ordering::Relaxed);
                    t.ack();
                }
            }
        }
    }

    /// Writes a group, holding it behind the breaker while the directory cannot be written.
    async fn commit(&mut self, mut blocks: Vec<Block>) {
        let cfg = self.target.delivery.clone();
        let deadline = Instant::now() + cfg.max_retry_duration();
        let mut stop = self.control.stop_signal();
        let mut attempt = 0u32;
        let mut last_class = FailureClass::Transient;
        loop {
            if attempt > 0 && !self.breaker.is_open() {
                let wait = backoff(
                    attempt - 1,
                    Duration::from_millis(cfg.backoff_ms.max(1)),
                    Duration::from_millis(cfg.max_backoff_ms.max(cfg.backoff_ms.max(1))),
                    rand::random(),
                );
                if !pause(wait, deadline, &mut stop).await {
                    let why = if *stop.borrow() {
                        "shutting down while retrying"
                    } else {
                        "max_retry_duration ran out"
                    };
                    return self.give_up(blocks, last_class, why).await;
                }
            }
            let probe = match self.breaker.admit(deadline, &mut stop).await {
                Admission::Go { probe } => probe,
                Admission::GiveUp { class, reason } => {
                    let why = if *stop.borrow() {
                        format!("shutting down while the sink is failing: {reason}")
                    } else {
                        format!("max_retry_duration ran out while the sink is failing: {reason}")
                    };
                    return self.give_up(blocks, class, &why).await;
                }
            };
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
            let fsync = self.target.fsync;
            let result = self
                .blocking(&mut blocks, move |w, b| write_group(w, b, fsync))
                .await;
            self.answer(&mut blocks);
            let e = match result {
                Ok(()) => {
                    self.breaker.succeeded();
                    return;
                }
                Err(e) => e,
            };
            let reason = format!("{}: {e}", self.name);
            self.counters.note(&reason);
            if e.kind() == io::ErrorKind::InvalidInput {
                // Not the directory's fault: retrying cannot help.
                return self.give_up(blocks, FailureClass::Transient, &reason).await;
            }
            let class = failure_class(&e);
            last_class = class;
            self.breaker.failed(class, &reason, probe);
            if *stop.borrow() {
                let why = format!("shutting down while retrying: {reason}");
                return self.give_up(blocks, class, &why).await;
            }
            if Instant::now() >= deadline {
                let why = format!(
                    "still failing after {} s (max_retry_duration): {reason}",
                    cfg.max_retry_duration_seconds
                );
                return self.give_up(blocks, class, &why).await;
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            attempt += 1;
        }
    }

    /// Fails what is not written; with `fsync`, what is written but not synced gets one last
    /// sync (and fails too, cut from its file, if that fails).
    async fn give_up(&mut self, mut blocks: Vec<Block>, class: FailureClass, why: &str) {
        let unsynced = blocks
            .iter()
            .any(|b| b.token.is_some() && matches!(b.state, State::Written { .. }));
        if self.target.fsync && unsynced {
            if let Err(e) = self.blocking(&mut blocks, sync_group).await {
                self.counters.note(&format!("{}: {e}", self.name));
            }
        }
        self.answer(&mut blocks);
        let msg = format!("{}: not delivered ({}): {why}", self.name, class.as_str());
        self.counters.note(&msg);
        for b in blocks.iter_mut() {
            if let Some(t) = b.token.take() {
                self.counters
                    .failed_deliveries
                    .fetch_add(1, Ordering::Relaxed);
                t.fail(msg.clone());
            }
        }
    }
}

fn encode(d: Delivery, shape: Shape) -> Block {
    let mut bytes = Vec::with_capacity(d.chunk.data.len() + d.record_count() + 64);
    let mut records = 0u64;
    for r in d.records() {
        write_line(&mut bytes, shape, &d.chunk.object, &d.chunk, r);
        records += 1;
    }
    Block {
        token: Some(d.token),
        bytes,
        records,
        state: State::Pending,
    }
}

async fn run_files(
    name: String,
    shape: Shape,
    mut target: FileTarget,
    mut rx: mpsc::Receiver<Delivery>,
) -> SinkReport {
    let attached = target.attached.take().unwrap_or_else(|| {
        let control = DeliveryControl::new();
        Attached {
            breaker: control.breaker(&name, target.delivery.probe_schedule()),
            control,
        }
    });
    let mut sink = FileSink {
        counters: register_sink_counters(&name),
        writer: Some(RotatingLines::new(
            &target.dir,
            &target.prefix,
            target.max_file_bytes,
        )),
        name,
        target,
        control: attached.control,
        breaker: attached.breaker,
    };
    while let Some(first) = rx.recv().await {
        let mut blocks = vec![encode(first, shape)];
        let mut bytes = blocks.iter().map(|b| b.bytes.len()).sum::<usize>();
        while blocks.len() < GROUP_DELIVERIES && bytes < GROUP_BYTES {
            match rx.try_recv() {
                Ok(d) => {
                    let b = encode(d, shape);
                    bytes += b.bytes.len();
                    blocks.push(b);
                }
                Err(_) => break,
            }
        }
        // A delivery without records has nothing to write.
        for b in blocks.iter_mut().filter(|b| b.records == 0) {
            b.state = State::Synced;
        }
        sink.commit(blocks).await;
    }
    let fsync = sink.target.fsync;
    let mut none = Vec::new();
    if let Err(e) = sink
        .blocking(&mut none, move |w, _| w.close(fsync).map_err(|e| e.error))
        .await
    {
        sink.counters
            .note(&format!("{}: close failed: {e}", sink.name));
    }
    sink.counters.report()
}
