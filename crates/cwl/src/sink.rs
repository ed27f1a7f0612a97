//! The CloudWatch Logs sink. Records are routed to a destination (group, stream) by template,
//! checked against the service's time and size rules, buffered per destination, cut into
//! batches by [`crate::batch`], and sent under [`RateControl`] with bounded concurrency. A
//! delivery is acknowledged only when every one of its records was accepted by the service or
//! written to the overflow file with its reason.

use crate::batch::{admit, cut_batches, event_cost, rejected_indices, BatchRules, Reject};
use crate::overflow::{OverflowEntry, OverflowFile};
use crate::rate::{backoff, RateControl};
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::{InputLogEvent, LogGroupClass};
use aws_sdk_cloudwatchlogs::Client;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OnceCell};
use trailhose_config::cwl::CloudWatchLogsSinkConfig;
use trailhose_pipeline::template::{NameKind, Template};
use trailhose_pipeline::{AckToken, Delivery, RecordChunk, Sink, SinkFuture, SinkReport};

/// Builds the CloudWatch Logs client for a sink. SDK retries are off: this sink retries itself
/// so that backoff, AIMD and the per-batch retry bound are under its control.
pub async fn client_for(cfg: &CloudWatchLogsSinkConfig) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = &cfg.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(e) = &cfg.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    let sdk = loader.load().await;
    client_from(&sdk)
}

pub fn client_from(sdk: &aws_config::SdkConfig) -> Client {
    let conf = aws_sdk_cloudwatchlogs::config::Builder::from(sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// One delivery's obligation, shared by all of its records wherever they are buffered.
struct DeliveryState {
    remaining: AtomicUsize,
    overflowed: AtomicU64,
    failure: Mutex<Option<String>>,
    token: Mutex<Option<AckToken>>,
}

impl DeliveryState {
    fn new(token: AckToken, records: usize) -> Arc<Self> {
        let s = Arc::new(DeliveryState {
            remaining: AtomicUsize::new(records),
            overflowed: AtomicU64::new(0),
            failure: Mutex::new(None),
            token: Mutex::new(Some(token)),
        });
        if records == 0 {
            s.finish();
        }
        s
    }

    fn fail(&self, reason: String) {
        let mut f = lock(&self.failure);
        f.get_or_insert(reason);
    }

    /// `n` records are settled, `overflowed` of them through the overflow file.
    fn settle(&self, n: usize, overflowed: u64) {
        self.overflowed.fetch_add(overflowed, Ordering::Relaxed);
        if n > 0 && self.remaining.fetch_sub(n, Ordering::AcqRel) == n {
            self.finish();
        }
    }

    fn finish(&self) {
        let Some(token) = lock(&self.token).take() else {
            return;
        };
        if let Some(reason) = lock(&self.failure).take() {
            token.fail(reason);
        } else {
            match self.overflowed.load(Ordering::Relaxed) {
                0 => token.ack(),
                n => token.dead_lettered(n),
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A record waiting for its batch.
struct Pending {
    chunk: Arc<RecordChunk>,
    index: u32,
    state: Arc<DeliveryState>,
}

impl Pending {
    fn bytes(&self) -> &[u8] {
        match self.chunk.records.get(self.index as usize) {
            Some(r) => self.chunk.bytes_of(r),
            None => &[],
        }
    }
}

type Dest = (Arc<str>, Arc<str>);

/// A record bound for the overflow file: reason, label, destination, source object, bytes.
type OverflowItem<'a> = (String, &'static str, Dest, &'a str, &'a [u8]);

struct Buffer {
    events: Vec<(i64, usize, Pending)>,
    bytes: usize,
    since: Instant,
}

struct OutBatch {
    dest: Dest,
    events: Vec<(i64, usize, Pending)>,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    bytes: AtomicU64,
    overflowed: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
    throttled: AtomicU64,
    retries: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Counters {
    fn note(&self, e: String) {
        let mut v = lock(&self.errors);
        if v.len() < 8 && !v.contains(&e) {
            v.push(e);
        }
    }
}

pub struct CloudWatchLogsSink {
    name: String,
    client: Client,
    cfg: CloudWatchLogsSinkConfig,
    group: Template,
    stream: Template,
    rules: BatchRules,
    overflow: Arc<OverflowFile>,
    rate: Arc<RateControl>,
    /// Wall clock in epoch ms; replaceable so tests can pin "now".
    now_ms: fn() -> i64,
}

pub fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl CloudWatchLogsSink {
    pub fn new(cfg: CloudWatchLogsSinkConfig, client: Client) -> Result<Self, String> {
        let group = Template::parse(&cfg.log_group, NameKind::Group)?;
        let stream = Template::parse(&cfg.log_stream, NameKind::Stream)?;
        Ok(CloudWatchLogsSink {
            name: cfg.name.clone(),
            client,
            rules: BatchRules {
                max_event_bytes: cfg.max_event_bytes,
                ..BatchRules::default()
            },
            overflow: Arc::new(OverflowFile::new(&cfg.overflow_path)),
            rate: Arc::new(RateControl::new(
                cfg.requests_per_second,
                cfg.bytes_per_second,
            )),
            group,
            stream,
            cfg,
            now_ms: system_now_ms,
        })
    }

    pub fn with_clock(mut self, now_ms: fn() -> i64) -> Self {
        self.now_ms = now_ms;
        self
    }
}

impl Sink for CloudWatchLogsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        Box::pin(run(*self, rx))
    }
}

struct Shared {
    client: Client,
    cfg: CloudWatchLogsSinkConfig,
    rules: BatchRules,
    overflow: Arc<OverflowFile>,
    rate: Arc<RateControl>,
    counters: Counters,
    /// Destinations known to exist. Creation is attempted once per destination, never a
    /// Describe call per batch.
    created_groups: Mutex<HashMap<Arc<str>, Arc<OnceCell<()>>>>,
    created_streams: Mutex<HashMap<Dest, Arc<OnceCell<()>>>>,
    live: Arc<trailhose_pipeline::sink::SinkCounters>,
}

impl Shared {
    /// Publishes the counters to the live view the metrics endpoint reads.
    fn publish(&self) {
        let c = &self.counters;
        let l = &self.live;
        l.records
            .store(c.accepted.load(Ordering::Relaxed), Ordering::Relaxed);
        l.dead_lettered
            .store(c.overflowed.load(Ordering::Relaxed), Ordering::Relaxed);
        l.batches
            .store(c.batches.load(Ordering::Relaxed), Ordering::Relaxed);
        l.throttled
            .store(c.throttled.load(Ordering::Relaxed), Ordering::Relaxed);
        l.retries
            .store(c.retries.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

async fn run(sink: CloudWatchLogsSink, mut rx: mpsc::Receiver<Delivery>) -> SinkReport {
    let linger = Duration::from_millis(sink.cfg.linger_ms);
    let shared = Arc::new(Shared {
        client: sink.client.clone(),
        cfg: sink.cfg.clone(),
        rules: sink.rules,
        overflow: sink.overflow.clone(),
        rate: sink.rate.clone(),
        counters: Counters::default(),
        created_groups: Mutex::new(HashMap::new()),
        created_streams: Mutex::new(HashMap::new()),
        live: trailhose_pipeline::sink::register_sink_counters(&sink.name),
    });
    let (batch_tx, batch_rx) = mpsc::channel::<OutBatch>(sink.cfg.max_in_flight.max(1));
    let dispatcher = tokio::spawn(dispatch(batch_rx, shared.clone()));
    let mut buffers: HashMap<Dest, Buffer> = HashMap::new();
    let mut names: HashMap<(String, String), Dest> = HashMap::new();
    let mut tick = tokio::time::interval((linger / 4).max(Duration::from_millis(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            d = rx.recv() => match d {
                Some(d) => accept(&sink, &shared, d, &mut buffers, &mut names, &batch_tx).await,
                None => break,
            },
            _ = tick.tick() => {
                let due: Vec<Dest> = buffers
                    .iter()
                    .filter(|(_, b)| !b.events.is_empty() && b.since.elapsed() >= linger)
                    .map(|(k, _)| k.clone())
                    .collect();
                for dest in due {
                    flush(&shared, &dest, &mut buffers, true, &batch_tx).await;
                }
            }
        }
    }
    let all: Vec<Dest> = buffers.keys().cloned().collect();
    for dest in all {
        flush(&shared, &dest, &mut buffers, true, &batch_tx).await;
    }
    drop(batch_tx);
    if let Err(e) = dispatcher.await {
        shared.counters.note(format!("dispatcher failed: {e}"));
    }
    let c = &shared.counters;
    let errors = lock(&c.errors).clone();
    SinkReport {
        name: sink.name.clone(),
        records: c.accepted.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        dead_lettered: c.overflowed.load(Ordering::Relaxed),
        failed_deliveries: c.failed.load(Ordering::Relaxed),
        batches: c.batches.load(Ordering::Relaxed),
        throttled: c.throttled.load(Ordering::Relaxed),
        retries: c.retries.load(Ordering::Relaxed),
        errors,
    }
}

async fn accept(
    sink: &CloudWatchLogsSink,
    shared: &Arc<Shared>,
    d: Delivery,
    buffers: &mut HashMap<Dest, Buffer>,
    names: &mut HashMap<(String, String), Dest>,
    batch_tx: &mpsc::Sender<OutBatch>,
) {
    let now = (sink.now_ms)();
    let chunk = d.chunk.clone();
    let selected: Vec<u32> = match d.selection.as_deref() {
        Some(s) => s
            .iter()
            .copied()
            .filter(|&i| (i as usize) < chunk.records.len())
            .collect(),
        None => (0..chunk.records.len() as u32).collect(),
    };
    let state = DeliveryState::new(d.token.split(), selected.len());
    // The delivery's own token is now represented by `state`.
    d.token.ack();
    let mut rejected: Vec<(u32, Reject, Dest)> = Vec::new();
    let mut touched: Vec<Dest> = Vec::new();
    for idx in selected {
        let Some(r) = chunk.records.get(idx as usize) else {
            continue;
        };
        let g = sink.group.render(&r.fields, &chunk.object);
        let s = sink.stream.render(&r.fields, &chunk.object);
        let dest = names
            .entry((g, s))
            .or_insert_with_key(|(g, s)| (Arc::from(g.as_str()), Arc::from(s.as_str())))
            .clone();
        let size = r.range.len();
        match admit(
            r.fields.event_time_ms,
            size,
            now,
            shared.cfg.retention_days,
            &shared.rules,
        ) {
            Ok(ts) => {
                let buf = buffers.entry(dest.clone()).or_insert_with(|| Buffer {
                    events: Vec::new(),
                    bytes: 0,
                    since: Instant::now(),
                });
                if buf.events.is_empty() {
                    buf.since = Instant::now();
                }
                buf.bytes += event_cost(size);
                buf.events.push((
                    ts,
                    size,
                    Pending {
                        chunk: chunk.clone(),
                        index: idx,
                        state: state.clone(),
                    },
                ));
                if buf.bytes >= shared.rules.max_bytes
                    || buf.events.len() >= shared.rules.max_events
                {
                    touched.push(dest);
                }
            }
            Err(reason) => rejected.push((idx, reason, dest)),
        }
    }
    if !rejected.is_empty() {
        let entries: Vec<OverflowItem<'_>> = rejected
            .iter()
            .map(|(idx, reason, dest)| {
                let bytes = chunk
                    .records
                    .get(*idx as usize)
                    .map_or(&[][..], |r| chunk.bytes_of(r));
                (
                    reason.to_string(),
                    reason.label(),
                    dest.clone(),
                    chunk.object.source.as_str(),
                    bytes,
                )
            })
            .collect();
        let states = vec![&state; entries.len()];
        overflow_each(shared, &entries, &states);
    }
    shared.publish();
    touched.dedup();
    for dest in touched {
        flush(shared, &dest, buffers, false, batch_tx).await;
    }
    let buffered: usize = buffers.values().map(|b| b.bytes).sum();
    if buffered > shared.cfg.max_buffered_bytes {
        let all: Vec<Dest> = buffers.keys().cloned().collect();
        for dest in all {
            flush(shared, &dest, buffers, true, batch_tx).await;
        }
    }
}

/// Cuts a destination's buffer into batches. Unless `all`, the last (partial) batch stays to
/// fill up; it leaves on the linger tick.
async fn flush(
    shared: &Shared,
    dest: &Dest,
    buffers: &mut HashMap<Dest, Buffer>,
    all: bool,
    batch_tx: &mpsc::Sender<OutBatch>,
) {
    let Some(buf) = buffers.get_mut(dest) else {
        return;
    };
    if buf.events.is_empty() {
        return;
    }
    let events = std::mem::take(&mut buf.events);
    buf.bytes = 0;
    let mut batches = cut_batches(events, &shared.rules);
    if !all {
        if let Some(last) = batches.pop() {
            buf.bytes = last.iter().map(|e| event_cost(e.1)).sum();
            buf.events = last;
            buf.since = Instant::now();
        }
    }
    for events in batches {
        let batch = OutBatch {
            dest: dest.clone(),
            events,
        };
        // The dispatcher only stops when this sender is dropped, so a send error cannot happen
        // while we hold it; settle the records as failed if it ever does.
        if let Err(mpsc::error::SendError(b)) = batch_tx.send(batch).await {
            for (_, _, p) in b.events {
                p.state.fail("CloudWatch Logs dispatcher stopped".into());
                p.state.settle(1, 0);
            }
        }
    }
}

async fn dispatch(rx: mpsc::Receiver<OutBatch>, shared: Arc<Shared>) {
    let limit = shared.cfg.max_in_flight;
    let name = shared.cfg.name.clone();
    trailhose_pipeline::dispatch::bounded(rx, limit, &name, |batch| {
        let shared = shared.clone();
        async move { send_batch(&shared, batch).await }
    })
    .await;
}

enum Failure {
    Retry(String, bool),
    Missing(String),
    Permanent(String),
}

fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: &SdkError<E, R>,
) -> Failure {
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("");
            let msg = format!("{code}: {}", err.message().unwrap_or(""));
            match code {
                "ThrottlingException"
                | "ServiceUnavailableException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException" => Failure::Retry(msg, true),
                "ResourceNotFoundException" => Failure::Missing(msg),
                "InternalFailure" | "InternalServerError" | "" => Failure::Retry(msg, false),
                _ => Failure::Permanent(msg),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Retry(format!("{e:?}").chars().take(300).collect(), false)
        }
        other => Failure::Permanent(format!("{other:?}").chars().take(300).collect()),
    }
}

async fn ensure_destination(shared: &Shared, dest: &Dest) -> Result<(), String> {
    let group_cell = lock(&shared.created_groups)
        .entry(dest.0.clone())
        .or_default()
        .clone();
    group_cell
        .get_or_try_init(|| create_group(shared, &dest.0))
        .await?;
    let stream_cell = lock(&shared.created_streams)
        .entry(dest.clone())
        .or_default()
        .clone();
    stream_cell
        .get_or_try_init(|| async {
            match shared
                .client
                .create_log_stream()
                .log_group_name(&*dest.0)
                .log_stream_name(&*dest.1)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("ResourceAlreadyExistsException") => Ok(()),
                Err(e) => Err(format!(
                    "CreateLogStream {}/{}: {}",
                    dest.0,
                    dest.1,
                    e.message().unwrap_or(e.code().unwrap_or("error"))
                )),
            }
        })
        .await?;
    Ok(())
}

async fn create_group(shared: &Shared, group: &str) -> Result<(), String> {
    let cfg = &shared.cfg;
    let mut req = shared.client.create_log_group().log_group_name(group);
    if let Some(k) = &cfg.kms_key_id {
        req = req.kms_key_id(k);
    }
    if let Some(c) = &cfg.log_group_class {
        req = req.log_group_class(LogGroupClass::from(c.as_str()));
    }
    for (k, v) in &cfg.tags {
        req = req.tags(k, v);
    }
    let created = match req.send().await {
        Ok(_) => true,
        Err(e) if e.code() == Some("ResourceAlreadyExistsException") => false,
        Err(e) => {
            return Err(format!(
                "CreateLogGroup {group}: {}",
                e.message().unwrap_or(e.code().unwrap_or("error"))
            ))
        }
    };
    if let (true, Some(days)) = (created, cfg.retention_days) {
        shared
            .client
            .put_retention_policy()
            .log_group_name(group)
            .retention_in_days(days)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "PutRetentionPolicy {group}: {}",
                    e.message().unwrap_or("error")
                )
            })?;
    }
    Ok(())
}

fn forget_destination(shared: &Shared, dest: &Dest) {
    lock(&shared.created_groups).remove(&dest.0);
    lock(&shared.created_streams).remove(dest);
}

async fn send_batch(shared: &Shared, batch: OutBatch) {
    send_batch_inner(shared, batch).await;
    shared.publish();
}

async fn send_batch_inner(shared: &Shared, batch: OutBatch) {
    let OutBatch { dest, events } = batch;
    let mut log_events = Vec::with_capacity(events.len());
    let mut bytes = 0usize;
    for (ts, size, p) in &events {
        bytes += event_cost(*size);
        // Records passed simd-json, so they are UTF-8; lossy conversion is a no-op kept only
        // so a bug elsewhere cannot panic here.
        let message = String::from_utf8_lossy(p.bytes()).into_owned();
        log_events.push(
            InputLogEvent::builder()
                .timestamp(*ts)
                .message(message)
                .build(),
        );
    }
    let log_events: Vec<InputLogEvent> = log_events.into_iter().filter_map(Result::ok).collect();
    let c = &shared.counters;
    let mut attempt = 0u32;
    let outcome: Result<Vec<(usize, Reject)>, String> = loop {
        if let Err(e) = ensure_destination(shared, &dest).await {
            if attempt + 1 >= shared.cfg.max_retries.max(1) {
                break Err(e);
            }
            c.note(e);
            attempt += 1;
            c.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff(
                attempt,
                Duration::from_millis(100),
                Duration::from_secs(10),
                rand::random(),
            ))
            .await;
            continue;
        }
        shared.rate.acquire(bytes).await;
        c.batches.fetch_add(1, Ordering::Relaxed);
        let result = shared
            .client
            .put_log_events()
            .log_group_name(&*dest.0)
            .log_stream_name(&*dest.1)
            .set_log_events(Some(log_events.clone()))
            .send()
            .await;
        match result {
            Ok(resp) => {
                shared.rate.succeeded();
                let rejected = resp
                    .rejected_log_events_info()
                    .map(|r| {
                        rejected_indices(
                            events.len(),
                            r.too_new_log_event_start_index(),
                            r.too_old_log_event_end_index(),
                            r.expired_log_event_end_index(),
                        )
                    })
                    .unwrap_or_default();
                break Ok(rejected);
            }
            Err(e) => {
                let failure = classify(&e);
                attempt += 1;
                let (msg, retry) = match failure {
                    Failure::Retry(m, throttled) => {
                        if throttled {
                            c.throttled.fetch_add(1, Ordering::Relaxed);
                            shared.rate.throttled();
                        }
                        (m, true)
                    }
                    Failure::Missing(m) => {
                        forget_destination(shared, &dest);
                        (m, true)
                    }
                    Failure::Permanent(m) => (m, false),
                };
                if !retry || attempt >= shared.cfg.max_retries.max(1) {
                    break Err(format!(
                        "PutLogEvents to {}/{} failed after {attempt} attempt(s): {msg}",
                        dest.0, dest.1
                    ));
                }
                c.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff(
                    attempt,
                    Duration::from_millis(100),
                    Duration::from_secs(10),
                    rand::random(),
                ))
                .await;
            }
        }
    };
    match outcome {
        Ok(rejected) => {
            let mut is_rejected = vec![None; events.len()];
            for (i, r) in rejected {
                if let Some(slot) = is_rejected.get_mut(i) {
                    *slot = Some(r);
                }
            }
            let mut overflow: Vec<OverflowItem<'_>> = Vec::new();
            let mut overflow_states = Vec::new();
            for ((_, size, p), rej) in events.iter().zip(&is_rejected) {
                match rej {
                    None => {
                        c.accepted.fetch_add(1, Ordering::Relaxed);
                        c.bytes.fetch_add(*size as u64, Ordering::Relaxed);
                        p.state.settle(1, 0);
                    }
                    Some(r) => {
                        overflow.push((
                            format!("{r} (rejectedLogEventsInfo)"),
                            r.label(),
                            dest.clone(),
                            p.chunk.object.source.as_str(),
                            p.bytes(),
                        ));
                        overflow_states.push(&p.state);
                    }
                }
            }
            overflow_each(shared, &overflow, &overflow_states);
        }
        Err(msg) => {
            c.note(msg.clone());
            let overflow: Vec<OverflowItem<'_>> = events
                .iter()
                .map(|(_, _, p)| {
                    (
                        msg.clone(),
                        Reject::Service.label(),
                        dest.clone(),
                        p.chunk.object.source.as_str(),
                        p.bytes(),
                    )
                })
                .collect();
            let states: Vec<&Arc<DeliveryState>> =
                events.iter().map(|(_, _, p)| &p.state).collect();
            overflow_each(shared, &overflow, &states);
        }
    }
}

/// Writes overflow lines for records that may belong to different deliveries, then settles
/// each record with its own delivery.
fn overflow_each(shared: &Shared, entries: &[OverflowItem<'_>], states: &[&Arc<DeliveryState>]) {
    if entries.is_empty() {
        return;
    }
    let lines: Vec<OverflowEntry<'_>> = entries
        .iter()
        .map(|(reason, label, dest, source, bytes)| OverflowEntry {
            reason,
            label,
            log_group: &dest.0,
            log_stream: &dest.1,
            source,
            record: bytes,
        })
        .collect();
    match shared.overflow.write_all(&lines) {
        Ok(()) => {
            shared
                .counters
                .overflowed
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
            for s in states {
                s.settle(1, 1);
            }
        }
        Err(e) => {
            let msg = format!("overflow file {}: {e}", shared.overflow.path().display());
            shared.counters.note(msg.clone());
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            for s in states {
                s.fail(msg.clone());
                s.settle(1, 0);
            }
        }
    }
}
