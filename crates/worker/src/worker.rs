//! The I/O half of the worker: receivers, one task per message (with its heartbeat), one task
//! per object, the batching deleter, and the shutdown sequence. Every decision is taken by the
//! pure functions of [`crate::lifecycle`].

use crate::allow::AllowList;
use crate::batch;
use crate::deadletter::{DeadLetterTarget, MessageDeadLetter};
use crate::dedup::{Lru, ObjectIdentity};
use crate::heartbeat::Heartbeat;
use crate::lifecycle::{self, Decision, ObjectResult, Plan, Policy};
use crate::stats::{WorkerStats, WorkerStatsSnapshot};
use aws_config::SdkConfig;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;
use trailhose_aws::{stream_object_within, ReadBudget, ReadError, S3Clients};
use trailhose_config::{Config, SqsSourceConfig};
use trailhose_core::keys::KeyKind;
use trailhose_core::notify::{parse_notification, NotificationShape, ObjectRef};
use trailhose_core::sync::lock;
use trailhose_core::Limits;
use trailhose_pipeline::delivery::DeliveryControl;
use trailhose_pipeline::dir_source::SourceReport;
use trailhose_pipeline::emit::ChunkLimits;
use trailhose_pipeline::settle::{settle, Settlement};
use trailhose_pipeline::{ObjectAck, ObjectMeta, Pipeline, Routed, SinkReport};

/// Everything the worker needs from the configuration, in API units.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub queue_url: String,
    pub receivers: usize,
    pub max_messages: u32,
    pub wait_time_seconds: u32,
    pub visibility_timeout_seconds: u32,
    pub heartbeat: Heartbeat,
    pub policy: Policy,
    pub max_objects_in_flight: usize,
    /// 0 = as many as object slots (and at least one full receive).
    pub max_messages_in_flight: usize,
    pub shutdown_grace: Duration,
    pub dedup_cache_size: usize,
    pub kinds: Vec<KeyKind>,
    pub limits: Limits,
    pub chunking: ChunkLimits,
    /// Bytes all object readers may hold at once (`source.memory_budget_bytes`); `None` = the
    /// default derived from the object slots, `limits` and `chunking`.
    pub memory_budget_bytes: Option<u64>,
}

impl WorkerSettings {
    pub fn from_config(cfg: &Config, s: &SqsSourceConfig) -> Self {
        WorkerSettings {
            queue_url: s.queue_url.clone(),
            receivers: s.receivers.max(1),
            max_messages: s.max_messages.clamp(1, 10),
            wait_time_seconds: s.wait_time_seconds.min(20),
            visibility_timeout_seconds: s.visibility_timeout_seconds,
            heartbeat: Heartbeat::new(
                Duration::from_secs(u64::from(s.heartbeat_interval_seconds())),
                Duration::from_secs(u64::from(s.visibility_timeout_seconds)),
            ),
            policy: Policy {
                max_receive_count: s.max_receive_count.max(1),
                retry_visibility_seconds: s.retry_visibility_seconds,
            },
            max_objects_in_flight: s.max_objects_in_flight.max(1),
            max_messages_in_flight: s.max_messages_in_flight,
            shutdown_grace: Duration::from_secs(s.shutdown_grace_seconds),
            dedup_cache_size: s.dedup_cache_size,
            kinds: s.kinds.iter().map(|k| k.kind()).collect(),
            limits: cfg.limits.to_limits(),
            chunking: ChunkLimits {
                max_records: cfg.pipeline.chunk_records,
                max_bytes: cfg.pipeline.chunk_bytes,
            },
            memory_budget_bytes: Some(s.reader_budget_bytes(&cfg.limits, &cfg.pipeline)),
        }
    }

    /// The object readers' byte budget: the total (see `memory_budget_bytes`) and the reserve
    /// for one record of `limits.max_record_bytes` within it.
    pub fn read_budget(&self) -> ReadBudget {
        let record = self.limits.max_record_bytes;
        let total = self.memory_budget_bytes.unwrap_or_else(|| {
            trailhose_config::memory::default_reader_budget(
                self.max_objects_in_flight.max(1),
                record,
                self.chunking.max_bytes,
            )
        });
        let reserve =
            trailhose_config::memory::record_reserve_bytes(record, self.chunking.max_bytes);
        ReadBudget::new(total, reserve)
    }

    /// Messages held at once: enough for full receives, and at least one per object slot
    /// (or `max_messages_in_flight` when set).
    pub fn message_capacity(&self) -> usize {
        let wanted = if self.max_messages_in_flight > 0 {
            self.max_messages_in_flight
        } else {
            self.max_objects_in_flight
        };
        wanted.max(self.max_messages as usize).max(1)
    }
}

/// Where the worker is in its life. Ordered: each phase includes the ones before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    /// Shutdown requested: no new receives; in-flight messages finish.
    Draining,
    /// Grace nearly over: reads stop, their messages are released.
    Interrupt,
    /// Sinks flushed (or out of time): messages still waiting for acknowledgements are released.
    Abandon,
}

/// What a worker run did.
#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    pub stats: WorkerStatsSnapshot,
    pub sinks: Vec<SinkReport>,
    pub unrouted: u64,
    pub by_key: BTreeMap<(String, String, String), u64>,
    /// Every in-flight message finished before the drain deadline.
    pub drained_cleanly: bool,
    /// The sinks flushed (and answered every delivery) before the flush deadline.
    pub sinks_flushed: bool,
    /// Every message was deleted, dead-lettered, left for retry or released before the grace
    /// ended (none was still being settled).
    pub settled: bool,
    /// From the shutdown request to the end of the run.
    pub shutdown_took: Duration,
}

impl WorkerReport {
    /// The graceful shutdown won the race against its grace period: every message in flight
    /// finished, the sinks flushed, every message was settled. Failures of objects earlier in
    /// the run do not count: their messages went back to the queue or to the dead-letter place.
    pub fn shutdown_clean(&self) -> bool {
        self.drained_cleanly && self.sinks_flushed && self.settled
    }

    /// What lost the race, when [`shutdown_clean`](Self::shutdown_clean) is false.
    pub fn shutdown_problems(&self) -> Vec<&'static str> {
        let mut p = Vec::new();
        if !self.drained_cleanly {
            p.push("messages in flight did not finish before the drain deadline (released)");
        }
        if !self.sinks_flushed {
            p.push("the sinks did not flush within the grace period");
        }
        if !self.settled {
            p.push("messages were still being settled when the grace period ended");
        }
        p
    }

    /// The same facts in the shape the `run` command prints for every source.
    pub fn source_report(&self) -> SourceReport {
        let s = &self.stats;
        SourceReport {
            files_read: s.objects_read,
            files_failed: s.objects_failed_permanent,
            files_skipped: s.skipped.clone(),
            objects_delivered: s.objects_delivered,
            objects_undelivered: s.objects_failed_retryable,
            compressed_bytes: s.compressed_bytes,
            decompressed_bytes: s.decompressed_bytes,
            records: s.records,
            failures: Vec::new(),
        }
    }
}

struct DeleteRequest {
    receipt: String,
    done: oneshot::Sender<bool>,
}

struct Ctx {
    settings: WorkerSettings,
    sqs: aws_sdk_sqs::Client,
    s3: S3Clients,
    allow: AllowList,
    dead_letter: DeadLetterTarget,
    stats: Arc<WorkerStats>,
    dedup: std::sync::Mutex<Lru<ObjectIdentity>>,
    input: std::sync::Mutex<Option<mpsc::Sender<Routed>>>,
    phase: watch::Sender<Phase>,
    object_permits: Semaphore,
    message_permits: Arc<Semaphore>,
    /// Shared by every object read: the bytes their buffers may hold.
    budget: ReadBudget,
    deleter: std::sync::Mutex<Option<mpsc::Sender<DeleteRequest>>>,
    /// The sinks' breakers: receiving pauses while one is open.
    control: DeliveryControl,
    sink_failures: std::sync::Mutex<lifecycle::SinkFailures>,
}

impl Ctx {
    fn input(&self) -> Option<mpsc::Sender<Routed>> {
        lock(&self.input).clone()
    }

    fn seen(&self, id: &ObjectIdentity) -> bool {
        lock(&self.dedup).contains(id)
    }

    fn remember(&self, id: ObjectIdentity) {
        lock(&self.dedup).insert(id);
    }

    fn phase(&self) -> Phase {
        *self.phase.borrow()
    }
}

/// Aborts a task when dropped (the heartbeat of a finished message).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Adds one to a gauge for its lifetime.
struct GaugeGuard(
    Arc<WorkerStats>,
    fn(&WorkerStats) -> &std::sync::atomic::AtomicI64,
);

impl GaugeGuard {
    fn new(
        stats: &Arc<WorkerStats>,
        gauge: fn(&WorkerStats) -> &std::sync::atomic::AtomicI64,
    ) -> Self {
        gauge(stats).fetch_add(1, Ordering::Relaxed);
        GaugeGuard(stats.clone(), gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::Relaxed);
    }
}

/// The SQS client: its read timeout must outlast the long poll (SQS API guidance), and bounds
/// a connection that hangs.
fn sqs_client(sdk: &SdkConfig, wait_time_seconds: u32) -> aws_sdk_sqs::Client {
    let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(u64::from(wait_time_seconds) + 15))
        .build();
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .build(),
    )
}

/// The SQS → S3 worker. Build it with [`Worker::new`], run it with [`Worker::run`].
pub struct Worker {
    settings: WorkerSettings,
    sqs: aws_sdk_sqs::Client,
    s3: S3Clients,
    allow: AllowList,
    dead_letter: DeadLetterTarget,
    stats: Arc<WorkerStats>,
    budget: ReadBudget,
}

impl Worker {
    /// `sdk` configures the SQS client and is the base of every S3 client.
    pub fn new(
        settings: WorkerSettings,
        sdk: &SdkConfig,
        allow: AllowList,
        dead_letter: DeadLetterTarget,
    ) -> Worker {
        Worker {
            sqs: sqs_client(sdk, settings.wait_time_seconds),
            budget: settings.read_budget(),
            settings,
            s3: S3Clients::new(sdk.clone()),
            allow,
            dead_letter,
            stats: Arc::new(WorkerStats::default()),
        }
    }

    /// Live counters (for metrics while running).
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// The object readers' byte budget (held, peak, waits), shared with the running worker.
    pub fn read_budget(&self) -> ReadBudget {
        self.budget.clone()
    }

    /// Runs until `shutdown` completes, then shuts down gracefully within the grace period:
    /// stop receiving, let in-flight messages finish, release the rest (visibility 0), flush
    /// the sinks, delete what was delivered.
    pub async fn run(self, pipeline: Pipeline, shutdown: impl Future<Output = ()>) -> WorkerReport {
        let settings = self.settings;
        let capacity = settings.message_capacity();
        let (phase, _) = watch::channel(Phase::Running);
        let (del_tx, del_rx) = mpsc::channel(capacity.max(16));
        let deleter = tokio::spawn(deleter_task(
            self.sqs.clone(),
            settings.queue_url.clone(),
            self.stats.clone(),
            del_rx,
        ));
        let ctx = Arc::new(Ctx {
            dedup: std::sync::Mutex::new(Lru::new(settings.dedup_cache_size)),
            object_permits: Semaphore::new(settings.max_objects_in_flight),
            message_permits: Arc::new(Semaphore::new(capacity)),
            budget: self.budget,
            input: std::sync::Mutex::new(Some(pipeline.input())),
            deleter: std::sync::Mutex::new(Some(del_tx)),
            control: {
                // The heartbeat keeps a held message invisible: the worker can wait for a
                // failing sink, so held deliveries stay in flight instead of being released.
                let control = pipeline.control();
                control.hold_while_open(true);
                control
            },
            sink_failures: std::sync::Mutex::new(lifecycle::SinkFailures::new(100_000)),
            phase,
            settings,
            sqs: self.sqs,
            s3: self.s3,
            allow: self.allow,
            dead_letter: self.dead_letter,
            stats: self.stats,
        });
        tracing::info!(
            queue = %ctx.settings.queue_url,
            receivers = ctx.settings.receivers,
            capacity,
            read_budget = ?ctx.budget,
            "worker started"
        );
        let mut receivers = JoinSet::new();
        for _ in 0..ctx.settings.receivers {
            receivers.spawn(receive_loop(ctx.clone()));
        }

        shutdown.await;
        let started = Instant::now();
        let grace = ctx.settings.shutdown_grace;
        let reserve = (grace / 4).min(Duration::from_secs(5));
        let drain_deadline = tokio::time::Instant::from_std(started + grace - reserve);
        let flush_deadline = tokio::time::Instant::from_std(started + grace - reserve / 2);
        let final_deadline = tokio::time::Instant::from_std(started + grace);
        tracing::info!(grace = ?grace, "shutdown: no new receives, finishing in-flight messages");
        ctx.phase.send_replace(Phase::Draining);
        if !ctx.control.open_breakers().is_empty() {
            // A sink that is down will not take the held records within the grace: fail them
            // now so their messages are released for the next worker at once.
            tracing::warn!("shutdown while a sink is failing: releasing its messages");
            ctx.control.stop_retrying();
        }
        let all = u32::try_from(capacity).unwrap_or(u32::MAX);
        let drained_cleanly = matches!(
            tokio::time::timeout_at(drain_deadline, ctx.message_permits.acquire_many(all)).await,
            Ok(Ok(_))
        );

        ctx.phase.send_replace(Phase::Interrupt);
        ctx.control.stop_retrying();
        receivers.abort_all();
        while receivers.join_next().await.is_some() {}
        // The last pipeline sender of the worker; object reads hold the others and stop now.
        lock(&ctx.input).take();
        let pipeline_stats = pipeline.stats.clone();
        let (sinks, sinks_flushed) =
            match tokio::time::timeout_at(flush_deadline, pipeline.shutdown()).await {
                Ok(reports) => (reports, true),
                Err(_) => {
                    tracing::warn!("sinks did not flush within the grace period");
                    (Vec::new(), false)
                }
            };

        ctx.phase.send_replace(Phase::Abandon);
        let settled = matches!(
            tokio::time::timeout_at(final_deadline, ctx.message_permits.acquire_many(all)).await,
            Ok(Ok(_))
        );
        if !settled {
            tracing::warn!("some messages were still being settled at the end of the grace period");
        }
        lock(&ctx.deleter).take();
        let _ = tokio::time::timeout_at(final_deadline + Duration::from_secs(1), deleter).await;

        let stats = ctx.stats.snapshot();
        tracing::info!(
            deleted = stats.messages_deleted,
            released = stats.messages_released,
            took = ?started.elapsed(),
            "worker stopped"
        );
        WorkerReport {
            stats,
            sinks,
            unrouted: pipeline_stats.unrouted.load(Ordering::Relaxed),
            by_key: pipeline_stats.snapshot_by_key(),
            drained_cleanly,
            sinks_flushed,
            settled,
            shutdown_took: started.elapsed(),
        }
    }
}

async fn receive_loop(ctx: Arc<Ctx>) {
    let mut phase = ctx.phase.subscribe();
    let mut backoff = Duration::from_millis(200);
    let max_messages = ctx.settings.max_messages.clamp(1, 10) as usize;
    loop {
        if *phase.borrow() != Phase::Running {
            return;
        }
        // A sink refused or down: take no new work until its breaker closes (its held
        // deliveries stay invisible by heartbeat, new messages stay on the queue).
        if !pause_while_a_sink_fails(&ctx, &mut phase).await {
            return;
        }
        // Capacity first: when sinks are slow, messages stay in flight and this waits, so the
        // worker stops receiving instead of buffering.
        let first = tokio::select! {
            p = ctx.message_permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = phase.wait_for(|p| *p != Phase::Running) => return,
        };
        let mut permits = vec![first];
        // While a sink is failing, a receive is its probe: one message.
        let probing = !ctx.control.open_breakers().is_empty();
        while permits.len() < max_messages && !probing {
            match ctx.message_permits.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        WorkerStats::inc(&ctx.stats.receive_calls);
        let received = ctx
            .sqs
            .receive_message()
            .queue_url(&ctx.settings.queue_url)
            .max_number_of_messages(i32::try_from(permits.len()).unwrap_or(1))
            .wait_time_seconds(i32::try_from(ctx.settings.wait_time_seconds).unwrap_or(20))
            .visibility_timeout(
                i32::try_from(ctx.settings.visibility_timeout_seconds).unwrap_or(300),
            )
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        match received {
            Err(e) => {
                WorkerStats::inc(&ctx.stats.receive_errors);
                tracing::warn!(error = %DisplayErrorContext(&e), "ReceiveMessage failed");
                drop(permits);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = phase.wait_for(|p| *p != Phase::Running) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(20));
            }
            Ok(out) => {
                backoff = Duration::from_millis(200);
                for msg in out.messages.unwrap_or_default() {
                    let permit = permits.pop();
                    let running = *phase.borrow() == Phase::Running;
                    match permit {
                        Some(permit) if running => {
                            tokio::spawn(handle_message(ctx.clone(), msg, permit));
                        }
                        _ => {
                            // Received while stopping: hand it straight back.
                            WorkerStats::inc(&ctx.stats.messages_received);
                            if let Some(receipt) = msg.receipt_handle.as_deref() {
                                change_visibility(&ctx, receipt, 0).await;
                                WorkerStats::inc(&ctx.stats.messages_released);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Waits while any sink's breaker is open. False when the worker stops meanwhile.
async fn pause_while_a_sink_fails(ctx: &Ctx, phase: &mut watch::Receiver<Phase>) -> bool {
    let open = ctx.control.open_breakers();
    if open.is_empty() {
        return true;
    }
    if ctx.stats.receive_paused.fetch_add(1, Ordering::Relaxed) == 0 {
        for b in &open {
            tracing::warn!(
                sink = %b.sink,
                class = b.class.as_str(),
                reason = %b.reason,
                "receiving paused: a sink is failing; messages stay on the queue"
            );
        }
    }
    WorkerStats::inc(&ctx.stats.receive_pauses);
    // A breaker whose held deliveries ran out of time has nothing left to probe with: when
    // nothing is in flight, one receive goes ahead so its records are the probe.
    let starved = async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if ctx.control.starved() && ctx.stats.messages_in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
        }
    };
    let stopped = tokio::select! {
        _ = ctx.control.wait_until_closed() => false,
        _ = starved => false,
        _ = phase.wait_for(|p| *p != Phase::Running) => true,
    };
    if ctx.stats.receive_paused.fetch_sub(1, Ordering::Relaxed) == 1 && !stopped {
        if ctx.control.open_breakers().is_empty() {
            tracing::info!("sinks answer again: receiving resumed");
        } else {
            tracing::info!("a failing sink has nothing to probe with: one message goes ahead");
        }
    }
    !stopped
}

/// One trace per message: `sqs.message` (linked to the SQS message id) with an `object` span
/// per object (`fetch_parse`, `deliver`) and the final `delete`.
async fn handle_message(ctx: Arc<Ctx>, msg: Message, permit: OwnedSemaphorePermit) {
    let span = tracing::info_span!(
        "sqs.message",
        "messaging.system" = "aws_sqs",
        "messaging.message.id" = msg.message_id.as_deref().unwrap_or("")
    );
    handle_message_in_span(ctx, msg, permit)
        .instrument(span)
        .await
}

async fn handle_message_in_span(ctx: Arc<Ctx>, msg: Message, permit: OwnedSemaphorePermit) {
    let started = Instant::now();
    WorkerStats::inc(&ctx.stats.messages_received);
    let _gauge = GaugeGuard::new(&ctx.stats, |s| &s.messages_in_flight);
    let Some(receipt) = msg.receipt_handle.clone() else {
        tracing::warn!(message_id = ?msg.message_id, "message without a receipt handle");
        return;
    };
    let message_id = msg.message_id.clone().unwrap_or_default();
    let receive_count = msg
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    let body = msg.body.as_deref().unwrap_or("");

    let heartbeat = AbortOnDrop(tokio::spawn(heartbeat_loop(ctx.clone(), receipt.clone())));
    let sink_failures = lock(&ctx.sink_failures).get(&message_id);
    let decision = decide_message(&ctx, body, receive_count, sink_failures).await;
    drop(heartbeat);
    tracing::debug!(message_id, ?decision, "message settled");

    if !matches!(decision, Decision::SinkRetry { .. } | Decision::Release) {
        lock(&ctx.sink_failures).forget(&message_id);
    }
    match decision {
        Decision::Delete => {
            delete(&ctx, &receipt)
                .instrument(tracing::info_span!("delete"))
                .await;
        }
        Decision::DeadLetter { kind, reason } => {
            tracing::warn!(message_id, kind, reason, "dead-lettering message");
            let entry = MessageDeadLetter {
                kind: &kind,
                reason: &reason,
                queue_url: &ctx.settings.queue_url,
                message_id: &message_id,
                receive_count,
                body,
            };
            match ctx.dead_letter.send(&entry).await {
                Ok(()) => {
                    WorkerStats::inc(&ctx.stats.messages_dead_lettered);
                    delete(&ctx, &receipt).await;
                }
                Err(e) => {
                    WorkerStats::inc(&ctx.stats.dead_letter_failures);
                    tracing::error!(
                        message_id,
                        target = ?ctx.dead_letter,
                        error = %e,
                        "cannot record the dead letter; the message stays on the queue"
                    );
                }
            }
        }
        Decision::Release => {
            change_visibility(&ctx, &receipt, 0).await;
            WorkerStats::inc(&ctx.stats.messages_released);
        }
        Decision::Retry { visibility_seconds } => {
            WorkerStats::inc(&ctx.stats.messages_retried);
            if let Some(v) = visibility_seconds {
                change_visibility(&ctx, &receipt, v).await;
            }
        }
        Decision::SinkRetry {
            visibility_seconds,
            reason,
        } => {
            lock(&ctx.sink_failures).note(&message_id);
            WorkerStats::inc(&ctx.stats.messages_sink_retried);
            if ctx.phase() != Phase::Running {
                // Shutting down: the next worker takes it at once.
                change_visibility(&ctx, &receipt, 0).await;
                WorkerStats::inc(&ctx.stats.messages_released);
            } else {
                tracing::warn!(
                    message_id,
                    reason,
                    "a sink did not take the message; it comes back later"
                );
                WorkerStats::inc(&ctx.stats.messages_retried);
                if let Some(v) = visibility_seconds {
                    change_visibility(&ctx, &receipt, v).await;
                }
            }
        }
    }
    ctx.stats.latency_message.record(started.elapsed());
    drop(permit);
}

async fn decide_message(
    ctx: &Arc<Ctx>,
    body: &str,
    receive_count: u32,
    sink_failures: u32,
) -> Decision {
    let policy = ctx.settings.policy;
    if let Some(d) = lifecycle::poison_check(receive_count, sink_failures, &policy) {
        return d;
    }
    match lifecycle::plan(parse_notification(body), &ctx.allow) {
        Plan::TestEvent => {
            WorkerStats::inc(&ctx.stats.test_events);
            Decision::Delete
        }
        Plan::Ignored { reason } => {
            WorkerStats::inc(&ctx.stats.messages_ignored);
            tracing::debug!(reason, "message names no object");
            Decision::Delete
        }
        Plan::Refuse { kind, reason } => Decision::DeadLetter {
            kind: kind.to_owned(),
            reason,
        },
        Plan::Read {
            shape,
            objects,
            ignored_records,
        } => {
            ctx.stats
                .skip(lifecycle::skip::NOT_OBJECT_CREATED, ignored_records);
            let mut tasks = JoinSet::new();
            for (i, o) in objects.into_iter().enumerate() {
                let ctx = ctx.clone();
                tasks.spawn(async move {
                    let label = format!("s3://{}/{}", o.bucket, o.key);
                    (i, label, process_object(&ctx, &o, shape).await)
                });
            }
            let mut results = Vec::new();
            while let Some(done) = tasks.join_next().await {
                match done {
                    Ok(r) => results.push(r),
                    Err(e) => results.push((
                        usize::MAX,
                        "object task".to_owned(),
                        ObjectResult::Retryable {
                            kind: "worker_task".into(),
                            reason: e.to_string(),
                        },
                    )),
                }
            }
            results.sort_by_key(|r| r.0);
            let results: Vec<(String, ObjectResult)> =
                results.into_iter().map(|(_, l, r)| (l, r)).collect();
            lifecycle::decide(
                &results,
                receive_count.saturating_sub(sink_failures),
                &policy,
            )
        }
    }
}

/// Object metadata for enrichment and error messages, from the key layout.
pub fn object_meta(bucket: &str, key: &str) -> ObjectMeta {
    ObjectMeta::for_s3(bucket, key)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn process_object(ctx: &Arc<Ctx>, o: &ObjectRef, shape: NotificationShape) -> ObjectResult {
    let span = tracing::info_span!("object", "aws.s3.bucket" = %o.bucket, "aws.s3.key" = %o.key);
    process_object_in_span(ctx, o, shape).instrument(span).await
}

async fn process_object_in_span(
    ctx: &Arc<Ctx>,
    o: &ObjectRef,
    shape: NotificationShape,
) -> ObjectResult {
    let stats = &ctx.stats;
    if let Err(reason) =
        lifecycle::object_filter(&ctx.allow, &ctx.settings.kinds, &o.bucket, &o.key)
    {
        stats.skip(reason, 1);
        return ObjectResult::Skipped {
            reason: reason.to_owned(),
        };
    }
    let identity = ObjectIdentity::of(o);
    if ctx.seen(&identity) {
        WorkerStats::inc(&stats.duplicates);
        return ObjectResult::Duplicate;
    }
    let mut phase = ctx.phase.subscribe();
    let permit = tokio::select! {
        p = ctx.object_permits.acquire() => match p {
            Ok(p) => p,
            Err(_) => return ObjectResult::Interrupted,
        },
        _ = phase.wait_for(|p| *p >= Phase::Interrupt) => return ObjectResult::Interrupted,
    };
    // Another message may have delivered it while this one waited.
    if ctx.seen(&identity) {
        WorkerStats::inc(&stats.duplicates);
        return ObjectResult::Duplicate;
    }
    let Some(tx) = ctx.input() else {
        return ObjectResult::Interrupted;
    };
    let rule = ctx.allow.rule(&o.bucket);
    let region = rule
        .and_then(|r| r.region.as_deref())
        .or(o.region.as_deref());
    let role = rule.and_then(|r| r.role_arn.as_deref());
    let client = ctx.s3.client(region, role).await;

    let (ack, outcome) = ObjectAck::new();
    let gauge = GaugeGuard::new(stats, |s| &s.objects_in_flight);
    let read_started = Instant::now();
    let mut keys = vec![o.key.clone()];
    if shape == NotificationShape::EventBridge {
        keys.extend(lifecycle::form_decoded_key(&o.key));
    }
    let mut last = None;
    for key in &keys {
        WorkerStats::inc(&stats.objects_read);
        let meta = Arc::new(object_meta(&o.bucket, key));
        let read = tokio::select! {
            r = stream_object_within(
                &client,
                &o.bucket,
                key,
                meta,
                &ctx.settings.limits,
                ctx.settings.chunking,
                &ctx.budget,
                &ack,
                &tx,
            )
            .instrument(tracing::info_span!("fetch_parse")) => r,
            _ = phase.wait_for(|p| *p >= Phase::Interrupt) => return ObjectResult::Interrupted,
        };
        let missing = matches!(read.1, Err(ReadError::NoSuchKey));
        last = Some(read);
        if !missing {
            break;
        }
    }
    drop(tx);
    drop(permit);
    drop(gauge);
    drop(ack);
    let Some((report, result)) = last else {
        return ObjectResult::Retryable {
            kind: "worker".into(),
            reason: "no read attempted".into(),
        };
    };
    stats
        .compressed_bytes
        .fetch_add(report.compressed_bytes, Ordering::Relaxed);
    stats
        .decompressed_bytes
        .fetch_add(report.decompressed_bytes, Ordering::Relaxed);
    stats.records.fetch_add(report.records, Ordering::Relaxed);
    if let Some(fb) = report.first_byte {
        stats.latency_first_byte.record(fb);
    }
    stats.latency_read.record(read_started.elapsed());
    let label = format!("s3://{}/{}", o.bucket, o.key);
    let read = result.as_ref().map(|_| ());
    // A transient read fault is retried at once, without waiting for the acknowledgements.
    let settlement = if matches!(read, Err(e) if e.is_retryable()) {
        settle(read, report.records, None)
    } else {
        let ack_started = Instant::now();
        let outcome = tokio::select! {
            o = outcome.instrument(tracing::info_span!("deliver")) => o,
            _ = phase.wait_for(|p| *p >= Phase::Abandon) => return ObjectResult::Interrupted,
        };
        stats.latency_ack.record(ack_started.elapsed());
        settle(read, report.records, outcome.ok().as_ref())
    };
    match settlement {
        Settlement::Delivered { records } => {
            ctx.remember(identity);
            WorkerStats::inc(&stats.objects_delivered);
            if let Some(t) = lifecycle::key_time_ms(&o.key) {
                stats.lag(now_ms() - t);
            }
            ObjectResult::Delivered { records }
        }
        Settlement::DeadLetter {
            kind,
            reason,
            records_before_fault,
        } => {
            WorkerStats::inc(&stats.objects_failed_permanent);
            tracing::warn!(object = %label, kind, error = %reason, "object cannot be read");
            ObjectResult::Permanent {
                kind: kind.to_owned(),
                reason,
                records_before_fault,
            }
        }
        Settlement::Retry {
            kind,
            reason,
            sink_caused,
        } => {
            WorkerStats::inc(&stats.objects_failed_retryable);
            if sink_caused {
                tracing::warn!(object = %label, reasons = %reason, "a sink did not take the object");
            } else {
                tracing::warn!(object = %label, kind, error = %reason, "retryable failure");
            }
            ObjectResult::Retryable {
                kind: kind.to_owned(),
                reason,
            }
        }
    }
}

fn is_final_visibility_error(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ReceiptHandleIsInvalid"
                | "MessageNotInflight"
                | "AWS.SimpleQueueService.MessageNotInflight"
                | "InvalidParameterValue"
        )
    )
}

async fn heartbeat_loop(ctx: Arc<Ctx>, receipt: String) {
    let hb = ctx.settings.heartbeat;
    let received = Instant::now();
    loop {
        tokio::time::sleep(hb.interval).await;
        let Some(v) = hb.extension(received.elapsed()) else {
            tracing::warn!("message reached the 12 h visibility limit; it will be received again");
            return;
        };
        let secs = i32::try_from(v.as_secs()).unwrap_or(43_200);
        let r = ctx
            .sqs
            .change_message_visibility()
            .queue_url(&ctx.settings.queue_url)
            .receipt_handle(&receipt)
            .visibility_timeout(secs)
            .send()
            .await;
        match r {
            Ok(_) => WorkerStats::inc(&ctx.stats.heartbeats),
            Err(e) => {
                WorkerStats::inc(&ctx.stats.heartbeat_failures);
                let code = e
                    .as_service_error()
                    .and_then(|s| s.code())
                    .map(str::to_owned);
                tracing::warn!(error = %DisplayErrorContext(&e), "visibility heartbeat failed");
                if is_final_visibility_error(code.as_deref()) {
                    return;
                }
            }
        }
    }
}

async fn change_visibility(ctx: &Ctx, receipt: &str, seconds: u32) {
    let r = ctx
        .sqs
        .change_message_visibility()
        .queue_url(&ctx.settings.queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(i32::try_from(seconds).unwrap_or(0))
        .send()
        .await;
    if let Err(e) = r {
        tracing::warn!(seconds, error = %DisplayErrorContext(&e), "ChangeMessageVisibility failed");
    }
}

async fn delete(ctx: &Ctx, receipt: &str) -> bool {
    let sender = lock(&ctx.deleter).clone();
    if let Some(sender) = sender {
        let (done, rx) = oneshot::channel();
        let req = DeleteRequest {
            receipt: receipt.to_owned(),
            done,
        };
        if sender.send(req).await.is_ok() {
            return rx.await.unwrap_or(false);
        }
    }
    delete_one(&ctx.sqs, &ctx.settings.queue_url, &ctx.stats, receipt).await
}

async fn delete_one(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    stats: &WorkerStats,
    receipt: &str,
) -> bool {
    match sqs
        .delete_message()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .send()
        .await
    {
        Ok(_) => {
            WorkerStats::inc(&stats.messages_deleted);
            true
        }
        Err(e) => {
            WorkerStats::inc(&stats.delete_failures);
            tracing::warn!(error = %DisplayErrorContext(&e), "DeleteMessage failed; the message will come back");
            false
        }
    }
}

/// Collects delete requests into DeleteMessageBatch calls of up to 10 (waiting at most 20 ms
/// to fill one), then answers each request.
async fn deleter_task(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    stats: Arc<WorkerStats>,
    mut rx: mpsc::Receiver<DeleteRequest>,
) {
    while let Some(first) = rx.recv().await {
        let mut pending = vec![first];
        let linger = tokio::time::sleep(Duration::from_millis(20));
        tokio::pin!(linger);
        while pending.len() < batch::MAX_BATCH {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => pending.push(r),
                    None => break,
                },
                _ = &mut linger => break,
            }
        }
        delete_batch(&sqs, &queue_url, &stats, pending).await;
    }
}

async fn delete_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    stats: &WorkerStats,
    pending: Vec<DeleteRequest>,
) {
    let n = pending.len();
    let entries: Vec<DeleteMessageBatchRequestEntry> = pending
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(batch::entry_id(i))
                .receipt_handle(&r.receipt)
                .build()
                .ok()
        })
        .collect();
    let settled = if entries.len() != n {
        batch::settle(n, &[], &[])
    } else {
        match sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for f in out.failed() {
                    tracing::warn!(
                        id = f.id(),
                        code = f.code(),
                        message = f.message().unwrap_or(""),
                        sender_fault = f.sender_fault(),
                        "DeleteMessageBatch entry failed; retrying it alone"
                    );
                }
                let ok: Vec<&str> = out.successful().iter().map(|s| s.id()).collect();
                let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                batch::settle(n, &ok, &failed)
            }
            Err(e) => {
                tracing::warn!(error = %DisplayErrorContext(&e), "DeleteMessageBatch failed; deleting one by one");
                batch::settle(n, &[], &[])
            }
        }
    };
    let mut slots: Vec<Option<DeleteRequest>> = pending.into_iter().map(Some).collect();
    for i in settled.done {
        if let Some(r) = slots.get_mut(i).and_then(Option::take) {
            WorkerStats::inc(&stats.messages_deleted);
            let _ = r.done.send(true);
        }
    }
    for i in settled.retry_singly {
        if let Some(r) = slots.get_mut(i).and_then(Option::take) {
            let ok = delete_one(sqs, queue_url, stats, &r.receipt).await;
            let _ = r.done.send(ok);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_visibility_errors() {
        assert!(is_final_visibility_error(Some("ReceiptHandleIsInvalid")));
        assert!(is_final_visibility_error(Some("InvalidParameterValue")));
        assert!(!is_final_visibility_error(Some("ThrottlingException")));
        assert!(!is_final_visibility_error(None));
    }

    #[test]
    fn object_meta_from_key() {
        let m = object_meta(
            "b",
            "AWSLogs/o-abcdefghij/111122223333/CloudTrail/eu-west-1/2026/11/01/111122223333_CloudTrail_eu-west-1_20261101T0005Z_abcdefghijklmnop.json.gz",
        );
        assert_eq!(m.account.as_deref(), Some("111122223333"));
        assert_eq!(m.region.as_deref(), Some("eu-west-1"));
        assert_eq!(m.org_id.as_deref(), Some("o-abcdefghij"));
        assert!(m.source.starts_with("s3://b/AWSLogs/"));
    }
}
