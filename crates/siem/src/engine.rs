//! What every SIEM sink does the same way: shape each record ([`crate::format`]), buffer
//! documents into batches (count, bytes, linger), send batches with bounded concurrency under
//! a `governor` rate limit with AIMD on throttling, retry what the destination says is
//! retryable with jittered exponential backoff, split batches the destination refuses as a
//! whole, dead-letter what it refuses permanently, and answer every delivery's token:
//!
//! - **ack** when every one of its records was accepted by the destination;
//! - **dead_lettered(n)** when the rest went to the dead-letter file (synced) with a reason;
//! - **fail** when any record could not be delivered within `max_attempts` or the destination
//!   refused the sink itself (authentication, a missing endpoint): the source brings the object
//!   back, so nothing is lost; a retried object may re-send records the destination already has,
//!   which the idempotent sinks (`_id`, Kafka key) absorb.
//!
//! A destination is a [`Transport`]: it turns a batch into one request and reports a
//! [`Verdict`] per document or for the whole request.

use crate::deadletter::{DeadLetterWriter, Entry};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use trailhose_config::siem::{DeliveryConfig, OutputFormat};
use trailhose_core::KeyFields;
use trailhose_pipeline::rate::{backoff, RateControl};
use trailhose_pipeline::template::Template;
use trailhose_pipeline::{
    AckToken, Delivery, ObjectMeta, RecordChunk, RecordMeta, Sink, SinkFuture, SinkReport,
};

/// What the destination said about one document (or, as the `Err` of a send, the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Try again later; `throttled` slows the sink down (AIMD).
    Retry {
        reason: String,
        throttled: bool,
        /// The destination's `Retry-After`: the next attempt waits at least this long.
        after: Option<Duration>,
    },
    /// Permanently refused: goes to the dead-letter file.
    Reject {
        reason: String,
    },
    /// Refused as a batch (too large, or one bad document in it): sent again in halves; a
    /// single document refused this way is rejected.
    Split {
        reason: String,
    },
    /// The destination refuses this sink (authentication, missing endpoint): the deliveries
    /// fail at once, without dead-lettering, so the source retries them later.
    Fail {
        reason: String,
    },
}

impl Verdict {
    pub fn retry(reason: impl Into<String>) -> Verdict {
        Verdict::Retry {
            reason: reason.into(),
            throttled: false,
            after: None,
        }
    }

    pub fn throttled(reason: impl Into<String>) -> Verdict {
        Self::throttled_after(reason, None)
    }

    /// Throttled, with the destination's `Retry-After` when it sent one.
    pub fn throttled_after(reason: impl Into<String>, after: Option<Duration>) -> Verdict {
        Verdict::Retry {
            reason: reason.into(),
            throttled: true,
            after,
        }
    }
}

/// The longest a `Retry-After` from a destination is honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

pub type SendResult = Result<Vec<Verdict>, Verdict>;
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = SendResult> + Send + 'a>>;

/// A destination.
pub trait Transport: Send + Sync + 'static {
    /// Sends `docs` as one request. `Ok` holds one verdict per document, in order; `Err` is a
    /// verdict for all of them.
    fn send<'a>(&'a self, docs: &'a [&'a Doc]) -> SendFuture<'a>;

    /// Request bytes a document adds beyond its body (envelopes, action lines), for sizing
    /// batches.
    fn overhead(&self) -> usize {
        0
    }
}

/// One record, shaped, on its way to the destination.
pub struct Doc {
    /// The document (one line of JSON, no newline).
    pub body: Vec<u8>,
    /// `eventID`, or a hash of the record when it has none: the idempotency key.
    pub id: String,
    /// Index or topic; empty for single-destination sinks.
    pub dest: Arc<str>,
    pub time_ms: Option<i64>,
    chunk: Arc<RecordChunk>,
    index: u32,
    state: Arc<DeliveryState>,
}

impl Doc {
    pub fn object(&self) -> &ObjectMeta {
        &self.chunk.object
    }

    pub fn record(&self) -> Option<&RecordMeta> {
        self.chunk.records.get(self.index as usize)
    }

    pub fn fields(&self) -> Option<&KeyFields> {
        self.record().map(|r| &r.fields)
    }

    /// The record's original bytes.
    pub fn original(&self) -> &[u8] {
        self.record().map_or(&[], |r| self.chunk.bytes_of(r))
    }
}

/// A stable id for a record without `eventID`: FNV-1a (64 bit) of its bytes and its length.
pub fn content_id(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("th-{h:016x}-{:x}", bytes.len())
}

#[derive(Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    bytes: AtomicU64,
    dead_lettered: AtomicU64,
    failed_deliveries: AtomicU64,
    batches: AtomicU64,
    throttled: AtomicU64,
    retries: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Counters {
    fn note(&self, e: &str) {
        let mut v = lock(&self.errors);
        if v.len() < 8 && !v.iter().any(|x| x == e) {
            v.push(e.to_string());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// One delivery's obligation, shared by all of its documents wherever they are.
struct DeliveryState {
    remaining: AtomicUsize,
    dead_lettered: AtomicU64,
    failure: Mutex<Option<String>>,
    token: Mutex<Option<AckToken>>,
    counters: Arc<Counters>,
}

impl DeliveryState {
    fn new(token: AckToken, records: usize, counters: Arc<Counters>) -> Arc<Self> {
        let s = Arc::new(DeliveryState {
            remaining: AtomicUsize::new(records),
            dead_lettered: AtomicU64::new(0),
            failure: Mutex::new(None),
            token: Mutex::new(Some(token)),
            counters,
        });
        if records == 0 {
            s.finish();
        }
        s
    }

    fn accepted(&self) {
        self.settle();
    }

    fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        self.settle();
    }

    fn failed(&self, reason: &str) {
        lock(&self.failure).get_or_insert_with(|| reason.to_string());
        self.settle();
    }

    fn settle(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    fn finish(&self) {
        let Some(token) = lock(&self.token).take() else {
            return;
        };
        if let Some(reason) = lock(&self.failure).take() {
            self.counters
                .failed_deliveries
                .fetch_add(1, Ordering::Relaxed);
            token.fail(reason);
        } else {
            match self.dead_lettered.load(Ordering::Relaxed) {
                0 => token.ack(),
                n => token.dead_lettered(n),
            }
        }
    }
}

/// How a sink names the destination of each record (index, topic).
pub struct Router {
    pub template: Template,
    /// Makes a rendered name legal for the destination (lower-case index names, …).
    pub sanitize: fn(String) -> String,
}

/// A batched sink over a [`Transport`].
pub struct BatchSink<T: Transport> {
    pub name: String,
    pub format: OutputFormat,
    pub delivery: DeliveryConfig,
    pub router: Option<Router>,
    pub transport: Arc<T>,
    pub dead_letter: Arc<DeadLetterWriter>,
    pub rate: Arc<RateControl>,
}

impl<T: Transport> BatchSink<T> {
    pub fn new(
        name: &str,
        format: OutputFormat,
        delivery: &DeliveryConfig,
        dead_letter_path: &std::path::Path,
        transport: T,
    ) -> Self {
        BatchSink {
            name: name.to_string(),
            format,
            delivery: delivery.clone(),
            router: None,
            transport: Arc::new(transport),
            dead_letter: Arc::new(DeadLetterWriter::new(name, dead_letter_path)),
            rate: Arc::new(RateControl::new(
                delivery.requests_per_second,
                delivery.bytes_per_second,
            )),
        }
    }

    pub fn with_router(mut self, router: Router) -> Self {
        self.router = Some(router);
        self
    }
}

impl<T: Transport> Sink for BatchSink<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        Box::pin(run(*self, rx))
    }
}

struct Shared<T: Transport> {
    name: String,
    transport: Arc<T>,
    rate: Arc<RateControl>,
    dead_letter: Arc<DeadLetterWriter>,
    delivery: DeliveryConfig,
    counters: Arc<Counters>,
}

struct Buffer {
    docs: Vec<Doc>,
    bytes: usize,
    since: Instant,
}

impl Buffer {
    fn new() -> Self {
        Buffer {
            docs: Vec::new(),
            bytes: 0,
            since: Instant::now(),
        }
    }

    fn take(&mut self) -> Vec<Doc> {
        self.bytes = 0;
        std::mem::take(&mut self.docs)
    }
}

async fn run<T: Transport>(sink: BatchSink<T>, mut rx: mpsc::Receiver<Delivery>) -> SinkReport {
    let counters = Arc::new(Counters::default());
    let shared = Arc::new(Shared {
        name: sink.name.clone(),
        transport: sink.transport.clone(),
        rate: sink.rate.clone(),
        dead_letter: sink.dead_letter.clone(),
        delivery: sink.delivery.clone(),
        counters: counters.clone(),
    });
    // The metrics endpoint reads live counters; copy ours there every second and at the end.
    let live = trailhose_pipeline::sink::register_sink_counters(&sink.name);
    let publish = {
        let c = counters.clone();
        let live = live.clone();
        move || {
            live.records
                .store(c.accepted.load(Ordering::Relaxed), Ordering::Relaxed);
            live.dead_lettered
                .store(c.dead_lettered.load(Ordering::Relaxed), Ordering::Relaxed);
            live.batches
                .store(c.batches.load(Ordering::Relaxed), Ordering::Relaxed);
            live.throttled
                .store(c.throttled.load(Ordering::Relaxed), Ordering::Relaxed);
            live.retries
                .store(c.retries.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    };
    let publisher = {
        let publish = publish.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                publish();
            }
        })
    };
    let in_flight = sink.delivery.max_in_flight.max(1);
    let (batch_tx, batch_rx) = mpsc::channel::<Vec<Doc>>(in_flight);
    let dispatcher = tokio::spawn(dispatch(batch_rx, shared.clone()));
    let linger = Duration::from_millis(sink.delivery.linger_ms.max(1));
    let mut tick = tokio::time::interval((linger / 4).max(Duration::from_millis(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = Buffer::new();
    let mut names: HashMap<String, Arc<str>> = HashMap::new();
    let empty: Arc<str> = Arc::from("");
    loop {
        tokio::select! {
            d = rx.recv() => match d {
                Some(d) => {
                    accept(&sink, &shared, d, &mut buf, &mut names, &empty, &batch_tx).await;
                }
                None => break,
            },
            _ = tick.tick() => {
                if !buf.docs.is_empty() && buf.since.elapsed() >= linger {
                    send_buffer(&mut buf, &batch_tx, &shared).await;
                }
            }
        }
    }
    if !buf.docs.is_empty() {
        send_buffer(&mut buf, &batch_tx, &shared).await;
    }
    drop(batch_tx);
    if let Err(e) = dispatcher.await {
        counters.note(&format!("dispatcher failed: {e}"));
    }
    publisher.abort();
    publish();
    let c = &counters;
    let errors = lock(&c.errors).clone();
    SinkReport {
        name: sink.name.clone(),
        records: c.accepted.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
        failed_deliveries: c.failed_deliveries.load(Ordering::Relaxed),
        batches: c.batches.load(Ordering::Relaxed),
        throttled: c.throttled.load(Ordering::Relaxed),
        retries: c.retries.load(Ordering::Relaxed),
        errors,
    }
}

#[allow(clippy::too_many_arguments)]
async fn accept<T: Transport>(
    sink: &BatchSink<T>,
    shared: &Arc<Shared<T>>,
    d: Delivery,
    buf: &mut Buffer,
    names: &mut HashMap<String, Arc<str>>,
    empty: &Arc<str>,
    batch_tx: &mpsc::Sender<Vec<Doc>>,
) {
    let indices: Vec<u32> = match &d.selection {
        Some(s) => s.to_vec(),
        None => (0..d.chunk.records.len() as u32).collect(),
    };
    let state = DeliveryState::new(d.token, indices.len(), shared.counters.clone());
    let overhead = shared.transport.overhead();
    let max_events = shared.delivery.max_events.max(1);
    let max_bytes = shared.delivery.max_bytes.max(1);
    for i in indices {
        let Some(r) = d.chunk.records.get(i as usize) else {
            state.failed("delivery selects a record its chunk does not have");
            continue;
        };
        let mut body = Vec::with_capacity(r.range.len() + 64);
        if let Err(reason) = crate::format::render(sink.format, &d.chunk, r, &mut body) {
            dead_letter_one(shared, &d.chunk, i, "format", &reason, &state);
            continue;
        }
        let dest = match &sink.router {
            Some(router) => {
                let name = (router.sanitize)(router.template.render(&r.fields, &d.chunk.object));
                match names.get(&name) {
                    Some(a) => a.clone(),
                    None => {
                        let a: Arc<str> = Arc::from(name.as_str());
                        if names.len() < 10_000 {
                            names.insert(name, a.clone());
                        }
                        a
                    }
                }
            }
            None => empty.clone(),
        };
        let id = match r.fields.event_id() {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => content_id(d.chunk.bytes_of(r)),
        };
        let size = body.len() + overhead;
        if !buf.docs.is_empty() && (buf.docs.len() >= max_events || buf.bytes + size > max_bytes) {
            send_buffer(buf, batch_tx, shared).await;
        }
        if buf.docs.is_empty() {
            buf.since = Instant::now();
        }
        buf.bytes += size;
        buf.docs.push(Doc {
            body,
            id,
            dest,
            time_ms: r.fields.event_time_ms,
            chunk: d.chunk.clone(),
            index: i,
            state: state.clone(),
        });
    }
}

async fn send_buffer<T: Transport>(
    buf: &mut Buffer,
    batch_tx: &mpsc::Sender<Vec<Doc>>,
    shared: &Shared<T>,
) {
    let docs = buf.take();
    if let Err(mpsc::error::SendError(docs)) = batch_tx.send(docs).await {
        let msg = format!("{}: dispatcher stopped", shared.name);
        shared.counters.note(&msg);
        for d in docs {
            d.state.failed(&msg);
        }
    }
}

fn dead_letter_one<T: Transport>(
    shared: &Shared<T>,
    chunk: &Arc<RecordChunk>,
    index: u32,
    label: &str,
    reason: &str,
    state: &Arc<DeliveryState>,
) {
    let Some(r) = chunk.records.get(index as usize) else {
        state.failed(reason);
        return;
    };
    let mut record = Vec::new();
    let bytes: &[u8] = if r.has_line_break {
        trailhose_core::splitter::compact_json_into(chunk.bytes_of(r), &mut record);
        &record
    } else {
        chunk.bytes_of(r)
    };
    let entry = Entry {
        reason,
        label,
        destination: "",
        source: &chunk.object.source,
        record_index: r.index,
        record: bytes,
    };
    match shared.dead_letter.write_all(&[entry]) {
        Ok(()) => {
            shared
                .counters
                .dead_lettered
                .fetch_add(1, Ordering::Relaxed);
            state.dead_lettered();
        }
        Err(e) => {
            let msg = format!(
                "{}: dead-letter file {}: {e}",
                shared.name,
                shared.dead_letter.path().display()
            );
            shared.counters.note(&msg);
            state.failed(&msg);
        }
    }
}

async fn dispatch<T: Transport>(rx: mpsc::Receiver<Vec<Doc>>, shared: Arc<Shared<T>>) {
    let limit = shared.delivery.max_in_flight;
    let name = shared.name.clone();
    trailhose_pipeline::dispatch::bounded(rx, limit, &name, |batch| {
        let shared = shared.clone();
        async move { send_batch(&shared, batch).await }
    })
    .await;
}

/// A batch's final verdicts, per document.
enum Final {
    Accepted,
    Rejected(String),
    Failed(String),
}

async fn send_batch<T: Transport>(shared: &Shared<T>, docs: Vec<Doc>) {
    let c = &shared.counters;
    let cfg = &shared.delivery;
    let mut finals: Vec<Option<Final>> = docs.iter().map(|_| None).collect();
    // Work items: (document indices, attempt, the destination's Retry-After). Splits keep
    // their attempt count.
    let mut work: Vec<(Vec<usize>, u32, Option<Duration>)> =
        vec![((0..docs.len()).collect(), 0, None)];
    while let Some((idx, attempt, retry_after)) = work.pop() {
        if idx.is_empty() {
            continue;
        }
        if attempt > 0 {
            let ours = backoff(
                attempt - 1,
                Duration::from_millis(cfg.backoff_ms.max(1)),
                Duration::from_millis(cfg.max_backoff_ms.max(cfg.backoff_ms.max(1))),
                rand::random(),
            );
            // Honour the destination's hint, but never wait unboundedly on it.
            let theirs = retry_after.unwrap_or_default().min(MAX_RETRY_AFTER);
            tokio::time::sleep(ours.max(theirs)).await;
        }
        let refs: Vec<&Doc> = idx.iter().filter_map(|&i| docs.get(i)).collect();
        let bytes: usize = refs.iter().map(|d| d.body.len()).sum();
        shared.rate.acquire(bytes).await;
        c.batches.fetch_add(1, Ordering::Relaxed);
        let result = shared.transport.send(&refs).await;
        let verdicts: Vec<Verdict> = match result {
            Ok(v) if v.len() == idx.len() => v,
            Ok(v) => {
                let msg = format!(
                    "{}: destination answered {} results for {} documents",
                    shared.name,
                    v.len(),
                    idx.len()
                );
                vec![Verdict::retry(msg); idx.len()]
            }
            Err(whole) => vec![whole; idx.len()],
        };
        let mut retry = Vec::new();
        let mut split = Vec::new();
        let mut last_retry_reason = String::new();
        let mut throttled = false;
        let mut wait_hint: Option<Duration> = None;
        for (&i, v) in idx.iter().zip(verdicts) {
            match v {
                Verdict::Accepted => finals[i] = Some(Final::Accepted),
                Verdict::Reject { reason } => finals[i] = Some(Final::Rejected(reason)),
                Verdict::Fail { reason } => finals[i] = Some(Final::Failed(reason)),
                Verdict::Split { reason } => split.push((i, reason)),
                Verdict::Retry {
                    reason,
                    throttled: t,
                    after,
                } => {
                    throttled |= t;
                    wait_hint = wait_hint.max(after);
                    last_retry_reason = reason;
                    retry.push(i);
                }
            }
        }
        if throttled {
            c.throttled.fetch_add(1, Ordering::Relaxed);
            shared.rate.throttled();
        } else if retry.is_empty() {
            shared.rate.succeeded();
        }
        if split.len() == 1 {
            let (i, reason) = split.remove(0);
            finals[i] = Some(Final::Rejected(reason));
        } else if !split.is_empty() {
            let right: Vec<usize> = split
                .split_off(split.len() / 2)
                .into_iter()
                .map(|(i, _)| i)
                .collect();
            let left: Vec<usize> = split.into_iter().map(|(i, _)| i).collect();
            work.push((right, attempt, None));
            work.push((left, attempt, None));
        }
        if !retry.is_empty() {
            if attempt + 1 >= cfg.max_attempts.max(1) {
                let msg = format!(
                    "{}: not accepted after {} attempt(s): {last_retry_reason}",
                    shared.name,
                    attempt + 1
                );
                c.note(&msg);
                for i in retry {
                    finals[i] = Some(Final::Failed(msg.clone()));
                }
            } else {
                c.retries.fetch_add(1, Ordering::Relaxed);
                work.push((retry, attempt + 1, wait_hint));
            }
        }
    }
    settle(shared, &docs, finals);
}

fn settle<T: Transport>(shared: &Shared<T>, docs: &[Doc], finals: Vec<Option<Final>>) {
    let c = &shared.counters;
    let mut rejected: Vec<(usize, String)> = Vec::new();
    for (i, f) in finals.into_iter().enumerate() {
        let Some(doc) = docs.get(i) else { continue };
        match f {
            Some(Final::Accepted) => {
                c.accepted.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(doc.body.len() as u64, Ordering::Relaxed);
                doc.state.accepted();
            }
            Some(Final::Failed(reason)) => {
                c.note(&reason);
                doc.state.failed(&reason);
            }
            Some(Final::Rejected(reason)) => rejected.push((i, reason)),
            None => doc
                .state
                .failed(&format!("{}: document left without a verdict", shared.name)),
        }
    }
    if rejected.is_empty() {
        return;
    }
    let mut compacted: Vec<Vec<u8>> = Vec::new();
    for (i, _) in &rejected {
        let mut v = Vec::new();
        if let Some(doc) = docs.get(*i) {
            if doc.record().is_some_and(|r| r.has_line_break) {
                trailhose_core::splitter::compact_json_into(doc.original(), &mut v);
            } else {
                v.extend_from_slice(doc.original());
            }
        }
        compacted.push(v);
    }
    let entries: Vec<Entry<'_>> = rejected
        .iter()
        .zip(&compacted)
        .filter_map(|((i, reason), record)| {
            let doc = docs.get(*i)?;
            Some(Entry {
                reason,
                label: "rejected",
                destination: &doc.dest,
                source: &doc.object().source,
                record_index: doc.record().map_or(0, |r| r.index),
                record,
            })
        })
        .collect();
    match shared.dead_letter.write_all(&entries) {
        Ok(()) => {
            c.dead_lettered
                .fetch_add(rejected.len() as u64, Ordering::Relaxed);
            if let Some((_, reason)) = rejected.first() {
                c.note(&format!("{}: dead-lettered: {reason}", shared.name));
            }
            for (i, _) in &rejected {
                if let Some(doc) = docs.get(*i) {
                    doc.state.dead_lettered();
                }
            }
        }
        Err(e) => {
            let msg = format!(
                "{}: dead-letter file {}: {e}",
                shared.name,
                shared.dead_letter.path().display()
            );
            c.note(&msg);
            for (i, _) in &rejected {
                if let Some(doc) = docs.get(*i) {
                    doc.state.failed(&msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use trailhose_pipeline::{ObjectAck, ObjectOutcome};

    /// Accepts documents whose id is in `accepted_after` only from the given attempt, rejects
    /// ids starting with `bad`, splits batches above `max`, and records what it accepted.
    struct Scripted {
        calls: AtomicU64,
        max: usize,
        fail_first: u64,
        accepted: Mutex<Vec<String>>,
    }

    impl Transport for Scripted {
        fn send<'a>(&'a self, docs: &'a [&'a Doc]) -> SendFuture<'a> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::Relaxed);
                if n < self.fail_first {
                    return Err(Verdict::throttled("busy"));
                }
                if docs.len() > self.max {
                    return Err(Verdict::Split {
                        reason: "too large".into(),
                    });
                }
                let mut out = Vec::new();
                for d in docs {
                    if d.id.starts_with("bad") {
                        out.push(Verdict::Reject {
                            reason: "bad document".into(),
                        });
                    } else {
                        lock(&self.accepted).push(d.id.clone());
                        out.push(Verdict::Accepted);
                    }
                }
                Ok(out)
            })
        }
    }

    fn chunk(ids: &[&str]) -> Arc<RecordChunk> {
        let mut c = RecordChunk::new(Arc::new(ObjectMeta::default()), 1024);
        let mut p = trailhose_core::FieldParser::new();
        for (i, id) in ids.iter().enumerate() {
            let rec = format!(r#"{{"eventID":"{id}","eventTime":"2026-11-01T00:00:00Z"}}"#);
            let f = p.parse(rec.as_bytes(), i as u64, 0).expect("valid");
            c.push(rec.as_bytes(), i as u64, f, false);
        }
        Arc::new(c)
    }

    fn delivery_cfg() -> DeliveryConfig {
        DeliveryConfig {
            max_events: 8,
            linger_ms: 5,
            backoff_ms: 1,
            max_backoff_ms: 2,
            requests_per_second: 10_000,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn retries_splits_rejects_and_acks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let transport = Scripted {
            calls: AtomicU64::new(0),
            max: 3,
            fail_first: 2,
            accepted: Mutex::new(Vec::new()),
        };
        let sink = BatchSink::new(
            "t",
            OutputFormat::Raw,
            &delivery_cfg(),
            &dir.path().join("dl.ndjson"),
            transport,
        );
        let transport = sink.transport.clone();
        let (tx, rx) = mpsc::channel(4);
        let handle = tokio::spawn(Box::new(sink).run(rx));
        let ids: Vec<String> = (0..20)
            .map(|i| {
                if i % 7 == 3 {
                    format!("bad-{i}")
                } else {
                    format!("ok-{i}")
                }
            })
            .collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (ack, outcome) = ObjectAck::new();
        tx.send(Delivery {
            chunk: chunk(&id_refs),
            selection: None,
            token: ack.token(),
        })
        .await
        .expect("send");
        drop(ack);
        drop(tx);
        let report = handle.await.expect("sink task");
        let bad = ids.iter().filter(|i| i.starts_with("bad")).count();
        assert_eq!(
            outcome.await.ok(),
            Some(ObjectOutcome::Delivered {
                dead_lettered: bad as u64
            })
        );
        assert_eq!(report.records as usize, ids.len() - bad, "{report:?}");
        assert_eq!(report.dead_lettered as usize, bad);
        assert!(report.throttled >= 1 && report.retries >= 1, "{report:?}");
        let accepted = lock(&transport.accepted).clone();
        let unique: HashSet<&String> = accepted.iter().collect();
        assert_eq!(unique.len(), accepted.len(), "no document sent twice");
        let dl = std::fs::read_to_string(dir.path().join("dl.ndjson")).expect("dead letters");
        assert_eq!(dl.lines().count(), bad);
        assert!(dl.contains("\"reason\":\"bad document\""));
    }

    #[tokio::test]
    async fn exhausted_retries_fail_the_delivery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let transport = Scripted {
            calls: AtomicU64::new(0),
            max: 100,
            fail_first: u64::MAX,
            accepted: Mutex::new(Vec::new()),
        };
        let mut cfg = delivery_cfg();
        cfg.max_attempts = 3;
        let sink = BatchSink::new(
            "t",
            OutputFormat::Raw,
            &cfg,
            &dir.path().join("dl.ndjson"),
            transport,
        );
        let (tx, rx) = mpsc::channel(4);
        let handle = tokio::spawn(Box::new(sink).run(rx));
        let (ack, outcome) = ObjectAck::new();
        tx.send(Delivery {
            chunk: chunk(&["a", "b"]),
            selection: Some(Arc::from(vec![1u32])),
            token: ack.token(),
        })
        .await
        .expect("send");
        drop(ack);
        drop(tx);
        let report = handle.await.expect("sink task");
        match outcome.await {
            Ok(ObjectOutcome::Failed { reasons }) => {
                assert!(reasons[0].contains("after 3 attempt(s)"), "{reasons:?}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(report.failed_deliveries, 1);
        assert_eq!(report.batches, 3);
        assert!(!dir.path().join("dl.ndjson").exists());
    }

    #[test]
    fn content_ids_are_stable() {
        assert_eq!(content_id(b"abc"), content_id(b"abc"));
        assert_ne!(content_id(b"abc"), content_id(b"abd"));
        assert!(content_id(b"").starts_with("th-cbf29ce484222325"));
    }
}
