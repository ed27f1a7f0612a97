//! The SQS → S3 worker: consumes S3 notifications from an SQS queue, streams every CloudTrail
//! object they name through the pipeline, and deletes a message only when every record of
//! every object it names has been acknowledged by every sink.
//!
//! # Structure
//!
//! Pure decisions, tested without AWS:
//! - [`lifecycle`]: body → plan (read / test event / refuse), key filters, and the per-message
//!   decision (delete / dead-letter then delete / release / leave for retry), with the
//!   `ApproximateReceiveCount` poison guard.
//! - [`heartbeat`]: the visibility renewal schedule (never lapses, stays within 12 h).
//! - [`allow`]: the bucket/prefix allow-list.
//! - [`dedup`]: the LRU of recently delivered objects.
//! - [`batch`]: DeleteMessageBatch bookkeeping (≤ 10 entries, `Failed[]` read on success).
//!
//! I/O: [`worker`] (receivers, message and object tasks, deleter, shutdown),
//! [`deadletter`] (SQS DLQ, local file or S3 prefix), [`stats`] (counters for the CLI and
//! metrics).
//!
//! Memory: every object read draws on one byte budget (`source.memory_budget_bytes`,
//! [`trailhose_aws::budget`]); large records wait for it instead of piling up, and one of them
//! always makes progress. `check-config` prints the worker's worst case term by term.
//!
//! # Exit status
//!
//! [`WorkerReport::shutdown_clean`]: the graceful shutdown settled every message in flight and
//! flushed the sinks within the grace; `trailhose run` then exits 0, whatever failed earlier.
//!
//! # Lifecycle of a message
//!
//! Receive (long poll, up to 10, only while there is capacity: slow sinks stop the receivers)
//! → heartbeat starts (ChangeMessageVisibility every `heartbeat_seconds`) → body parsed; a
//! test event or a message naming nothing is deleted; a garbage body or a bucket outside the
//! allow-list is dead-lettered then deleted → each object: key filter (digests and non-CloudTrail
//! keys skipped, counted), dedup check, GetObject streamed into the pipeline, wait for every
//! sink's acknowledgement → all delivered/skipped/duplicate: delete; a permanent failure
//! (corrupt file, not CloudTrail, NoSuchKey): dead-letter then delete; a retryable failure of
//! the message's own (S3 throttling, 5xx, network, access denied): leave it with a backoff
//! visibility, until `max_receive_count` receives, then dead-letter; a failure of a *sink*
//! (its retry time ran out, or shutdown stopped its retries): leave it with the same backoff
//! visibility (release it at once when shutting down), never dead-letter it, and do not count
//! that receive toward `max_receive_count`.
//!
//! While any sink's breaker is open (the destination refuses the sink or keeps failing), the
//! receivers take no new messages; messages already in flight keep their heartbeat while the
//! sink holds their records, so they consume no receive. The worker resumes on its own when
//! the breaker closes.
//!
//! # The remaining at-least-once window
//!
//! A record is never lost by the worker: a message is deleted only after its objects are
//! delivered or recorded in the dead-letter place. Records can be shipped twice when:
//!
//! - **a retryable failure happens part-way through an object** (connection reset mid-stream,
//!   a sink failing one chunk): the records sent before it are delivered, and the whole object
//!   is read again on the next receive;
//! - **the worker dies** (SIGKILL, OOM, a second signal) after delivering records but before
//!   the delete: the message returns after its visibility timeout and another worker ships the
//!   object again — the dedup cache lives in one process only;
//! - **a delete fails** (DeleteMessageBatch entry and the single retry both fail, or the receipt
//!   handle expired because heartbeats failed): the message comes back; the dedup cache
//!   suppresses it *in this process* while the object is still among the last
//!   `dedup_cache_size` delivered ones;
//! - **the same object is named by two notifications at once** (e.g. an S3 event and an
//!   EventBridge event in flight together): the cache only holds completed objects, and
//!   notifications of different shapes may identify the object differently (CloudTrail's own
//!   notification carries no ETag);
//! - **graceful shutdown runs out of time**: objects whose reading was cut short, or whose
//!   acknowledgements did not arrive before the grace ended, are released (visibility 0) and
//!   shipped again by the next worker — including the chunks already delivered;
//! - **a sink fails part-way through an object** (its `max_retry_duration` runs out, or
//!   shutdown stops its retries): the records other sinks (or earlier batches) accepted are
//!   shipped again with the whole object when the message comes back;
//! - **a destination accepted a request whose answer was lost** (timeout after the write):
//!   the engine retries the batch; idempotent sinks (`_id`, Kafka key) absorb it, CloudWatch
//!   Logs and HEC store the records twice.
//!
//! Records before a *permanent* fault in a file are delivered once and the file goes to the
//! dead-letter place with the count of those records; redriving that message ships them again.

pub mod allow;
pub mod batch;
pub mod deadletter;
pub mod dedup;
pub mod heartbeat;
pub mod lifecycle;
pub mod metrics;
pub mod stats;
pub mod worker;

pub use allow::AllowList;
pub use deadletter::DeadLetterTarget;
pub use stats::{WorkerStats, WorkerStatsSnapshot};
pub use worker::{Phase, Worker, WorkerReport, WorkerSettings};

use anyhow::Context;
use std::sync::Arc;
use trailhose_aws::{load_sdk_config, open_source_dead_letters, AwsSettings, SseOptions};
use trailhose_config::{Config, SqsDeadLetterConfig, SqsSourceConfig};
use trailhose_pipeline::deadletter::DeadLetterFile;
use trailhose_pipeline::Pipeline;

/// Runs the worker a config describes until SIGTERM/SIGINT, then shuts down gracefully; a
/// second signal exits at once (code 130). `TRAILHOSE_…` environment variables override the
/// file (see [`trailhose_config::sqs::ENV_OVERRIDES`]). `file_dead_letter` is the top-level
/// `[dead_letter]` place (a file or an S3 prefix), used unless the source names its own.
pub async fn run(
    cfg: &Config,
    source: &SqsSourceConfig,
    pipeline: Pipeline,
    file_dead_letter: Arc<DeadLetterFile>,
    ops: Option<Ops>,
) -> anyhow::Result<WorkerReport> {
    let mut source = source.clone();
    let applied = source
        .apply_env(|k| std::env::var(k).ok())
        .map_err(anyhow::Error::msg)
        .context("environment overrides")?;
    if !applied.is_empty() {
        tracing::info!(?applied, "configuration overridden from the environment");
    }
    let problems = source.problems();
    if !problems.is_empty() {
        anyhow::bail!("invalid sqs source: {}", problems.join("; "));
    }
    let sdk = load_sdk_config(&AwsSettings {
        region: source.region.clone(),
        endpoint_url: source.endpoint_url.clone(),
    })
    .await;
    let dead_letter = match &source.dead_letter {
        Some(SqsDeadLetterConfig::Sqs { queue_url }) => DeadLetterTarget::Sqs {
            client: aws_sdk_sqs::Client::new(&sdk),
            queue_url: queue_url.clone(),
        },
        Some(SqsDeadLetterConfig::File { path }) => {
            DeadLetterTarget::File(Arc::new(DeadLetterFile::new(path)))
        }
        Some(SqsDeadLetterConfig::S3 {
            url,
            sse,
            kms_key_id,
        }) => {
            let sse = SseOptions {
                sse: sse.clone(),
                kms_key_id: kms_key_id.clone(),
            };
            DeadLetterTarget::File(open_source_dead_letters(url, &sse, &sdk)?)
        }
        None => DeadLetterTarget::File(file_dead_letter),
    };
    if let DeadLetterTarget::File(f) = &dead_letter {
        if !f.is_remote() {
            tracing::warn!(
                place = %f.describe(),
                "dead letters go to local disk, which is not durable in a container; use s3://bucket/prefix/"
            );
        }
    }
    let worker = Worker::new(
        WorkerSettings::from_config(cfg, &source),
        &sdk,
        AllowList::new(&source.buckets),
        dead_letter,
    );
    let Some(ops) = ops else {
        return Ok(worker.run(pipeline, shutdown_signal()).await);
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    metrics::export(&ops.registry, worker.stats(), &source.queue_url);
    metrics::watch_queue(&ops.registry, &ops.health, sqs, source.queue_url.clone());
    ops.health.set_started();
    let health = ops.health.clone();
    let shutdown = async move {
        shutdown_signal().await;
        // Not ready from the first signal on, so load balancers and probes stop sending work.
        health.set_shutting_down();
    };
    Ok(worker.run(pipeline, shutdown).await)
}

/// The operations surface a worker reports into: metrics registry and health state.
#[derive(Clone)]
pub struct Ops {
    pub registry: Arc<trailhose_ops::Registry>,
    pub health: Arc<trailhose_ops::Health>,
}

/// Completes on the first SIGTERM or SIGINT; a second one exits the process at once.
pub async fn shutdown_signal() {
    wait_for_signal().await;
    eprintln!("trailhose: shutting down gracefully (send the signal again to abort)");
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("trailhose: second signal: aborting; in-flight messages return after their visibility timeout");
        std::process::exit(130);
    });
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
