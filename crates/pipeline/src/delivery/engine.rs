//! The one delivery engine of every batched network sink (CloudWatch Logs, Splunk HEC,
//! OpenSearch `_bulk`, HTTP, Kafka). A sink supplies a [`Transport`] (how to send a batch and
//! read the answer, the destination's batch rules) and a [`Prepare`] function (how one record
//! becomes a document, or why the destination can never take it); the engine does the rest:
//!
//! - buffers documents per request key (one buffer, or one per destination), cuts requests by
//!   count, bytes and linger, bounds the bytes buffered across destinations;
//! - sends with at most `max_in_flight` requests at once under the `governor` rate limits,
//!   slowing down (AIMD) when throttled;
//! - retries what is transient with jittered exponential backoff, honouring `Retry-After`, for
//!   up to `max_retry_duration`; splits batches the destination refuses as a whole;
//! - opens the sink's [`Breaker`] when the destination refuses the sink itself or keeps
//!   failing, holds deliveries behind it and lets one probe through at a time; retries end at
//!   `max_retry_duration`, except behind an open breaker when the source can wait
//!   ([`DeliveryControl::hold_while_open`]: the SQS worker);
//! - dead-letters only what the destination can never take, durably, before acknowledging;
//! - answers every delivery's token: **ack** when every record was accepted,
//!   **dead_lettered(n)** when the rest are in the dead-letter place, **fail** otherwise (the
//!   source brings the object back; nothing is dead-lettered for a transient or sink-wide
//!   reason).

use super::breaker::{far_future, pause, Admission, Breaker, DeliveryControl, FailureClass};
use super::config::DeliveryConfig;
use super::dead_letters::{DeadLetterPlace, RefusedRecord};
use crate::ack::AckToken;
use crate::chunk::{ObjectMeta, RecordChunk, RecordMeta};
use crate::rate::{backoff, RateControl};
use crate::sink::{register_sink_counters, Delivery, Sink, SinkCounters, SinkFuture, SinkReport};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use trailhose_core::sync::lock;
use trailhose_core::KeyFields;

/// What the destination said about one document (or, as the `Err` of a send, the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Transient: try again later; `throttled` slows the sink down (AIMD).
    Retry {
        reason: String,
        throttled: bool,
        /// The destination's `Retry-After`: the next attempt waits at least this long.
        after: Option<Duration>,
    },
    /// The destination can never take this document: it goes to the dead-letter place.
    Reject {
        reason: String,
    },
    /// Refused as a batch (too large, or one bad document in it): sent again in halves; a
    /// single document refused this way is rejected.
    Split {
        reason: String,
    },
    /// The destination refuses the sink itself (credentials, IAM, a destination that cannot
    /// be created): the breaker opens and the documents wait for it.
    SinkRefused {
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

    pub fn refused(reason: impl Into<String>) -> Verdict {
        Verdict::SinkRefused {
            reason: reason.into(),
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

    /// Whether one request may only carry documents of one destination (CloudWatch Logs: one
    /// log stream per PutLogEvents).
    fn one_destination_per_request(&self) -> bool {
        false
    }

    /// Cuts one buffer into requests that keep the destination's rules (order, time span);
    /// by default the buffer is one request.
    fn cut(&self, docs: Vec<Doc>) -> Vec<Vec<Doc>> {
        vec![docs]
    }
}

/// One record shaped for the destination.
pub struct Prepared {
    /// The document (one line, no newline).
    pub body: Vec<u8>,
    /// Log group/stream, index, topic; empty for single-destination sinks.
    pub dest: String,
    /// The time the destination files the record under (ms since the epoch).
    pub time_ms: Option<i64>,
}

/// Why the destination can never take a record (it is dead-lettered with this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub label: &'static str,
    pub reason: String,
    /// Where it would have gone, when known.
    pub dest: String,
}

/// Shapes one record: a document, or the reason it can never be delivered.
pub type Prepare =
    Box<dyn Fn(&RecordChunk, &RecordMeta) -> Result<Prepared, Refusal> + Send + Sync + 'static>;

/// One record, shaped, on its way to the destination.
pub struct Doc {
    pub body: Vec<u8>,
    /// `eventID`, or a hash of the record when it has none: the idempotency key.
    pub id: String,
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

/// One delivery's obligation, shared by all of its documents wherever they are.
struct DeliveryState {
    remaining: AtomicUsize,
    dead_lettered: AtomicU64,
    failure: Mutex<Option<String>>,
    token: Mutex<Option<AckToken>>,
    counters: Arc<SinkCounters>,
}

impl DeliveryState {
    fn new(token: AckToken, records: usize, counters: Arc<SinkCounters>) -> Arc<Self> {
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

/// A batched sink: the engine around a [`Transport`].
pub struct BatchSink<T: Transport> {
    name: String,
    delivery: DeliveryConfig,
    transport: Arc<T>,
    prepare: Prepare,
    dead_letters: Arc<dyn DeadLetterPlace>,
    rate: Arc<RateControl>,
    control: DeliveryControl,
    breaker: Arc<Breaker>,
}

impl<T: Transport> BatchSink<T> {
    pub fn new(
        name: &str,
        delivery: &DeliveryConfig,
        transport: T,
        prepare: Prepare,
        dead_letters: Arc<dyn DeadLetterPlace>,
    ) -> Self {
        let control = DeliveryControl::new();
        BatchSink {
            name: name.to_string(),
            breaker: control.breaker(name, delivery.probe_schedule()),
            control,
            delivery: delivery.clone(),
            transport: Arc::new(transport),
            prepare,
            dead_letters,
            rate: Arc::new(RateControl::new(
                delivery.requests_per_second,
                delivery.bytes_per_second,
            )),
        }
    }

    pub fn transport(&self) -> Arc<T> {
        self.transport.clone()
    }

    pub fn breaker(&self) -> Arc<Breaker> {
        self.breaker.clone()
    }
}

impl<T: Transport> Sink for BatchSink<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn attach(&mut self, control: &DeliveryControl) {
        self.breaker = control.breaker(&self.name, self.delivery.probe_schedule());
        self.control = control.clone();
    }

    fn run(self: Box<Self>, rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        Box::pin(run(*self, rx))
    }
}

struct Shared<T: Transport> {
    name: String,
    transport: Arc<T>,
    rate: Arc<RateControl>,
    dead_letters: Arc<dyn DeadLetterPlace>,
    delivery: DeliveryConfig,
    counters: Arc<SinkCounters>,
    breaker: Arc<Breaker>,
    control: DeliveryControl,
}

#[derive(Default)]
struct Buffer {
    docs: Vec<Doc>,
    bytes: usize,
    since: Option<Instant>,
}

struct Buffers {
    by_key: HashMap<Arc<str>, Buffer>,
    bytes: usize,
}

async fn run<T: Transport>(sink: BatchSink<T>, mut rx: mpsc::Receiver<Delivery>) -> SinkReport {
    let counters = register_sink_counters(&sink.name);
    let shared = Arc::new(Shared {
        name: sink.name.clone(),
        transport: sink.transport.clone(),
        rate: sink.rate.clone(),
        dead_letters: sink.dead_letters.clone(),
        delivery: sink.delivery.clone(),
        counters: counters.clone(),
        breaker: sink.breaker.clone(),
        control: sink.control.clone(),
    });
    let in_flight = sink.delivery.max_in_flight.max(1);
    let (batch_tx, batch_rx) = mpsc::channel::<Vec<Doc>>(in_flight);
    let dispatcher = tokio::spawn(dispatch(batch_rx, shared.clone()));
    let linger = Duration::from_millis(sink.delivery.linger_ms.max(1));
    let mut tick = tokio::time::interval((linger / 4).max(Duration::from_millis(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buffers = Buffers {
        by_key: HashMap::new(),
        bytes: 0,
    };
    let mut names: HashMap<String, Arc<str>> = HashMap::new();
    loop {
        tokio::select! {
            d = rx.recv() => match d {
                Some(d) => accept(&sink, &shared, d, &mut buffers, &mut names, &batch_tx).await,
                None => break,
            },
            _ = tick.tick() => {
                let due: Vec<Arc<str>> = buffers
                    .by_key
                    .iter()
                    .filter(|(_, b)| b.since.is_some_and(|s| s.elapsed() >= linger))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in due {
                    flush(&shared, &mut buffers, &key, &batch_tx).await;
                }
            }
        }
    }
    let all: Vec<Arc<str>> = buffers.by_key.keys().cloned().collect();
    for key in all {
        flush(&shared, &mut buffers, &key, &batch_tx).await;
    }
    drop(batch_tx);
    if let Err(e) = dispatcher.await {
        counters.note(&format!("{}: dispatcher failed: {e}", sink.name));
    }
    counters.report()
}

fn intern(names: &mut HashMap<String, Arc<str>>, name: String) -> Arc<str> {
    if let Some(a) = names.get(&name) {
        return a.clone();
    }
    let a: Arc<str> = Arc::from(name.as_str());
    // Bounded: template fields come from records, so a hostile stream could name many.
    if names.len() < 10_000 {
        names.insert(name, a.clone());
    }
    a
}

async fn accept<T: Transport>(
    sink: &BatchSink<T>,
    shared: &Arc<Shared<T>>,
    d: Delivery,
    buffers: &mut Buffers,
    names: &mut HashMap<String, Arc<str>>,
    batch_tx: &mpsc::Sender<Vec<Doc>>,
) {
    let indices: Vec<u32> = match &d.selection {
        Some(s) => s.to_vec(),
        None => (0..d.chunk.records.len() as u32).collect(),
    };
    let state = DeliveryState::new(d.token, indices.len(), shared.counters.clone());
    let overhead = shared.transport.overhead();
    let per_dest = shared.transport.one_destination_per_request();
    let max_events = shared.delivery.max_events.max(1);
    let max_bytes = shared.delivery.max_bytes.max(1);
    let mut refused: Vec<(u32, Refusal)> = Vec::new();
    let empty: Arc<str> = Arc::from("");
    for i in indices {
        let Some(r) = d.chunk.records.get(i as usize) else {
            state.failed("delivery selects a record its chunk does not have");
            continue;
        };
        let prepared = match (sink.prepare)(&d.chunk, r) {
            Ok(p) => p,
            Err(refusal) => {
                refused.push((i, refusal));
                continue;
            }
        };
        let dest = if prepared.dest.is_empty() {
            empty.clone()
        } else {
            intern(names, prepared.dest)
        };
        let id = match r.fields.event_id() {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => content_id(d.chunk.bytes_of(r)),
        };
        let size = prepared.body.len() + overhead;
        let key = if per_dest {
            dest.clone()
        } else {
            empty.clone()
        };
        let full = buffers.by_key.get(&key).is_some_and(|b| {
            !b.docs.is_empty() && (b.docs.len() >= max_events || b.bytes + size > max_bytes)
        });
        if full {
            flush(shared, buffers, &key, batch_tx).await;
        }
        let buf = buffers.by_key.entry(key).or_default();
        buf.since.get_or_insert_with(Instant::now);
        buf.bytes += size;
        buffers.bytes += size;
        buf.docs.push(Doc {
            body: prepared.body,
            id,
            dest,
            time_ms: prepared.time_ms,
            chunk: d.chunk.clone(),
            index: i,
            state: state.clone(),
        });
    }
    if !refused.is_empty() {
        let lines: Vec<RefusedRecord<'_>> = refused
            .iter()
            .filter_map(|(i, f)| {
                let r = d.chunk.records.get(*i as usize)?;
                Some(RefusedRecord {
                    reason: &f.reason,
                    label: f.label,
                    destination: &f.dest,
                    source: &d.chunk.object.source,
                    record_index: r.index,
                    record: d.chunk.bytes_of(r),
                })
            })
            .collect();
        let states = vec![&state; lines.len()];
        dead_letter(shared, &lines, &states).await;
    }
    if buffers.bytes > shared.delivery.max_buffered_bytes {
        let all: Vec<Arc<str>> = buffers.by_key.keys().cloned().collect();
        for key in all {
            flush(shared, buffers, &key, batch_tx).await;
        }
    }
}

/// Sends everything buffered under `key`, cut into requests by the transport.
async fn flush<T: Transport>(
    shared: &Shared<T>,
    buffers: &mut Buffers,
    key: &Arc<str>,
    batch_tx: &mpsc::Sender<Vec<Doc>>,
) {
    let Some(buf) = buffers.by_key.get_mut(key) else {
        return;
    };
    let docs = std::mem::take(&mut buf.docs);
    buffers.bytes = buffers.bytes.saturating_sub(buf.bytes);
    buf.bytes = 0;
    buf.since = None;
    if docs.is_empty() {
        return;
    }
    for batch in shared.transport.cut(docs) {
        if batch.is_empty() {
            continue;
        }
        if let Err(mpsc::error::SendError(docs)) = batch_tx.send(batch).await {
            let msg = format!("{}: dispatcher stopped", shared.name);
            shared.counters.note(&msg);
            for d in docs {
                d.state.failed(&msg);
            }
        }
    }
}

/// Writes refused records to the dead-letter place, then settles each with its delivery: as
/// dead-lettered once durable, as failed (the object comes back) if the place cannot be
/// written.
async fn dead_letter<T: Transport>(
    shared: &Shared<T>,
    lines: &[RefusedRecord<'_>],
    states: &[&Arc<DeliveryState>],
) {
    if lines.is_empty() {
        return;
    }
    let c = &shared.counters;
    match shared.dead_letters.write(&shared.name, lines).await {
        Ok(()) => {
            c.dead_lettered
                .fetch_add(lines.len() as u64, Ordering::Relaxed);
            if let Some(first) = lines.first() {
                c.note(&format!(
                    "{}: dead-lettered to {}: {}",
                    shared.name,
                    shared.dead_letters.describe(),
                    first.reason
                ));
            }
            for s in states {
                s.dead_lettered();
            }
        }
        Err(e) => {
            let msg = format!(
                "{}: dead-letter place {}: {e}",
                shared.name,
                shared.dead_letters.describe()
            );
            c.note(&msg);
            for s in states {
                s.failed(&msg);
            }
        }
    }
}

async fn dispatch<T: Transport>(rx: mpsc::Receiver<Vec<Doc>>, shared: Arc<Shared<T>>) {
    let limit = shared.delivery.max_in_flight;
    let name = shared.name.clone();
    crate::dispatch::bounded(rx, limit, &name, |batch| {
        let shared = shared.clone();
        async move { send_batch(&shared, batch).await }
    })
    .await;
}

/// A document's final verdict.
enum Final {
    Accepted,
    Rejected(String),
    Failed(String),
}

async fn send_batch<T: Transport>(shared: &Shared<T>, docs: Vec<Doc>) {
    let c = &shared.counters;
    let cfg = &shared.delivery;
    let deadline = Instant::now() + cfg.max_retry_duration();
    let mut stop = shared.control.stop_signal();
    let mut finals: Vec<Option<Final>> = docs.iter().map(|_| None).collect();
    // Work items: (document indices, attempt, the destination's Retry-After). Splits keep
    // their attempt count.
    let mut work: Vec<(Vec<usize>, u32, Option<Duration>)> =
        vec![((0..docs.len()).collect(), 0, None)];
    let give_up =
        |finals: &mut Vec<Option<Final>>, idx: &[usize], class: FailureClass, why: &str| {
            let msg = format!("{}: not delivered ({}): {why}", shared.name, class.as_str());
            c.note(&msg);
            for &i in idx {
                if let Some(f) = finals.get_mut(i) {
                    *f = Some(Final::Failed(msg.clone()));
                }
            }
        };
    let mut last_failure = String::new();
    while let Some((idx, attempt, retry_after)) = work.pop() {
        if idx.is_empty() {
            continue;
        }
        if attempt > 0 && !shared.breaker.is_open() {
            let ours = backoff(
                attempt - 1,
                Duration::from_millis(cfg.backoff_ms.max(1)),
                Duration::from_millis(cfg.max_backoff_ms.max(cfg.backoff_ms.max(1))),
                rand::random(),
            );
            // Honour the destination's hint, but never wait unboundedly on it.
            let theirs = retry_after.unwrap_or_default().min(MAX_RETRY_AFTER);
            if !pause(ours.max(theirs), deadline, &mut stop).await {
                let why = if *stop.borrow() {
                    format!("shutting down while retrying: {last_failure}")
                } else {
                    format!(
                        "still failing after {} s (max_retry_duration): {last_failure}",
                        cfg.max_retry_duration_seconds
                    )
                };
                give_up(&mut finals, &idx, FailureClass::Transient, &why);
                continue;
            }
        }
        // Behind an open breaker a held batch is the breaker's probe material. When the source
        // can wait (the SQS worker: heartbeats keep the message invisible) it waits however
        // long that takes, so a long outage neither releases messages to be received again and
        // again nor leaves the breaker with nothing to probe with; only shutdown ends the wait.
        let hold = shared.control.holds_while_open();
        let until = if hold { far_future() } else { deadline };
        let probe = match shared.breaker.admit(until, &mut stop).await {
            Admission::Go { probe } => probe,
            Admission::GiveUp { class, reason } => {
                let why = if *stop.borrow() {
                    format!("shutting down while the sink is failing: {reason}")
                } else {
                    format!(
                        "the sink kept failing for {} s (max_retry_duration): {reason}",
                        cfg.max_retry_duration_seconds
                    )
                };
                give_up(&mut finals, &idx, class, &why);
                continue;
            }
        };
        let refs: Vec<&Doc> = idx.iter().filter_map(|&i| docs.get(i)).collect();
        let bytes: usize = refs.iter().map(|d| d.body.len()).sum();
        shared.rate.acquire(bytes).await;
        c.batches.fetch_add(1, Ordering::Relaxed);
        let result = shared.transport.send(&refs).await;
        match &result {
            // Throttling says the destination is there and working; AIMD slows us down.
            Err(Verdict::Retry {
                reason,
                throttled: false,
                ..
            }) => shared
                .breaker
                .failed(FailureClass::Transient, reason, probe),
            Err(Verdict::SinkRefused { reason }) => {
                shared
                    .breaker
                    .failed(FailureClass::SinkRefused, reason, probe)
            }
            // Any other answer means the destination works.
            _ => shared.breaker.succeeded(),
        }
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
        let mut again = Vec::new();
        let mut split = Vec::new();
        let mut last_reason = String::new();
        let mut refused = false;
        let mut throttled = false;
        let mut wait_hint: Option<Duration> = None;
        for (&i, v) in idx.iter().zip(verdicts) {
            match v {
                Verdict::Accepted => finals[i] = Some(Final::Accepted),
                Verdict::Reject { reason } => finals[i] = Some(Final::Rejected(reason)),
                Verdict::Split { reason } => split.push((i, reason)),
                Verdict::SinkRefused { reason } => {
                    refused = true;
                    last_reason = reason;
                    again.push(i);
                }
                Verdict::Retry {
                    reason,
                    throttled: t,
                    after,
                } => {
                    throttled |= t;
                    wait_hint = wait_hint.max(after);
                    last_reason = reason;
                    again.push(i);
                }
            }
        }
        if throttled {
            c.throttled.fetch_add(1, Ordering::Relaxed);
            shared.rate.throttled();
        } else if again.is_empty() {
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
        if !again.is_empty() {
            last_failure.clone_from(&last_reason);
            let class = if refused {
                FailureClass::SinkRefused
            } else {
                FailureClass::Transient
            };
            if *stop.borrow() {
                give_up(
                    &mut finals,
                    &again,
                    class,
                    &format!("shutting down while retrying: {last_reason}"),
                );
            } else if Instant::now() >= deadline
                && !(shared.control.holds_while_open() && shared.breaker.is_open())
            {
                give_up(
                    &mut finals,
                    &again,
                    class,
                    &format!(
                        "still failing after {} s (max_retry_duration): {last_reason}",
                        cfg.max_retry_duration_seconds
                    ),
                );
            } else {
                c.retries.fetch_add(1, Ordering::Relaxed);
                work.push((again, attempt + 1, wait_hint));
            }
        }
    }
    settle(shared, &docs, finals).await;
}

async fn settle<T: Transport>(shared: &Shared<T>, docs: &[Doc], finals: Vec<Option<Final>>) {
    let c = &shared.counters;
    let mut rejected: Vec<(usize, String)> = Vec::new();
    for (i, f) in finals.into_iter().enumerate() {
        let Some(doc) = docs.get(i) else { continue };
        match f {
            Some(Final::Accepted) => {
                c.records.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(doc.body.len() as u64, Ordering::Relaxed);
                doc.state.accepted();
            }
            Some(Final::Failed(reason)) => doc.state.failed(&reason),
            Some(Final::Rejected(reason)) => rejected.push((i, reason)),
            None => doc
                .state
                .failed(&format!("{}: document left without a verdict", shared.name)),
        }
    }
    if rejected.is_empty() {
        return;
    }
    let lines: Vec<RefusedRecord<'_>> = rejected
        .iter()
        .filter_map(|(i, reason)| {
            let doc = docs.get(*i)?;
            Some(RefusedRecord {
                reason,
                label: "rejected",
                destination: &doc.dest,
                source: &doc.object().source,
                record_index: doc.record().map_or(0, |r| r.index),
                record: doc.original(),
            })
        })
        .collect();
    let states: Vec<&Arc<DeliveryState>> = rejected
        .iter()
        .filter_map(|(i, _)| docs.get(*i).map(|d| &d.state))
        .collect();
    dead_letter(shared, &lines, &states).await;
}

#[cfg(test)]
mod tests;
