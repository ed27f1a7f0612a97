//! `trailhose backfill`: ships CloudTrail history older than the queue through the same
//! pipeline and sinks as the worker.
//!
//! Listing follows the key layout (accounts × regions × days, in parallel), never a full bucket
//! walk. Keys stream from the listers to the readers through a bounded channel, so a month of
//! an organization's trail never sits in memory. Each delivered object is recorded in the
//! [`checkpoint::Checkpoint`]; a rerun skips what it recorded.

pub mod checkpoint;
pub mod plan;

use checkpoint::Checkpoint;
use plan::Target;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use trailhose_core::keys::{classify_key, KeyClass, KeyKind};
use trailhose_core::sync::lock;
use trailhose_core::Limits;
use trailhose_pipeline::deadletter::{now_rfc3339, DeadLetter, DeadLetterFile};
use trailhose_pipeline::emit::ChunkLimits;
use trailhose_pipeline::settle::{settle, Settlement};
use trailhose_pipeline::{ObjectAck, ObjectMeta, Routed};

#[derive(Debug, Clone)]
pub struct BackfillOptions {
    pub target: Target,
    pub days: Vec<(u16, u8, u8)>,
    /// Restrict to these accounts / regions (default: whatever the bucket holds).
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub list_concurrency: usize,
    pub objects_in_flight: usize,
    pub limits: Limits,
    pub chunking: ChunkLimits,
}

#[derive(Debug, Default)]
pub struct BackfillReport {
    pub accounts: u64,
    pub prefixes_listed: u64,
    pub objects_listed: u64,
    pub skipped_checkpoint: u64,
    pub skipped_not_log: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
    pub failed: u64,
    pub records: u64,
    pub compressed_bytes: u64,
    pub failures: Vec<String>,
}

#[derive(Default)]
struct Counters {
    prefixes: AtomicU64,
    listed: AtomicU64,
    skipped_checkpoint: AtomicU64,
    skipped_not_log: AtomicU64,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
    failed: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
}

/// Lists `prefix` with `/` as delimiter and returns the child segments (without slashes).
async fn children(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .delimiter("/")
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| format!("listing s3://{bucket}/{prefix}: {}", aws_error(&e)))?;
        for p in page.common_prefixes() {
            if let Some(seg) = p.prefix().and_then(|p| p.strip_prefix(prefix)) {
                out.push(seg.trim_end_matches('/').to_string());
            }
        }
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

fn aws_error<E: std::fmt::Display>(e: &aws_sdk_s3::error::SdkError<E>) -> String {
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(se) => se.err().to_string(),
        other => other.to_string(),
    }
}

/// Account prefixes (`AWSLogs/[o-id/]ACCOUNT/`) under the target.
async fn account_prefixes(
    s3: &aws_sdk_s3::Client,
    t: &Target,
    only: &[String],
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for seg in children(s3, &t.bucket, &t.logs_prefix).await? {
        if plan::is_org(&seg) {
            let org_prefix = format!("{}{seg}/", t.logs_prefix);
            for acct in children(s3, &t.bucket, &org_prefix).await? {
                if plan::is_account(&acct) {
                    out.push((acct.clone(), format!("{org_prefix}{acct}/")));
                }
            }
        } else if plan::is_account(&seg) {
            out.push((seg.clone(), format!("{}{seg}/", t.logs_prefix)));
        }
    }
    Ok(out
        .into_iter()
        .filter(|(a, _)| only.is_empty() || only.contains(a))
        .map(|(_, p)| p)
        .collect())
}

/// Runs a backfill to the end. Objects whose records every sink acknowledged are checkpointed;
/// objects that cannot be read go to the dead-letter file and are checkpointed too (they were
/// dealt with); transient failures are left for the next run.
pub async fn run_backfill(
    s3: aws_sdk_s3::Client,
    opts: BackfillOptions,
    checkpoint: Arc<Checkpoint>,
    input: mpsc::Sender<Routed>,
    dead_letter: Arc<DeadLetterFile>,
    progress: Option<Arc<trailhose_ops::progress::Progress>>,
) -> Result<BackfillReport, String> {
    let accounts = account_prefixes(&s3, &opts.target, &opts.accounts).await?;
    let counters = Arc::new(Counters::default());
    let (key_tx, mut key_rx) = mpsc::channel::<(String, Option<i64>)>(1000);
    let bucket = opts.target.bucket.clone();

    // Listers: one task per (account, region), days in order, bounded concurrency.
    let mut listers = JoinSet::new();
    let list_permits = Arc::new(Semaphore::new(opts.list_concurrency.max(1)));
    let mut pairs = Vec::new();
    for acct in &accounts {
        let regions = children(&s3, &bucket, &format!("{acct}CloudTrail/")).await?;
        for r in regions {
            if opts.regions.is_empty() || opts.regions.contains(&r) {
                pairs.push((acct.clone(), r));
            }
        }
    }
    for (acct, region) in pairs {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        let days = opts.days.clone();
        let tx = key_tx.clone();
        let permits = list_permits.clone();
        let counters = counters.clone();
        listers.spawn(async move {
            for day in days {
                let Ok(_permit) = permits.acquire().await else {
                    return Ok(());
                };
                let prefix = plan::day_prefix(&acct, &region, day);
                counters.prefixes.fetch_add(1, Ordering::Relaxed);
                let mut token: Option<String> = None;
                loop {
                    let page = s3
                        .list_objects_v2()
                        .bucket(&bucket)
                        .prefix(&prefix)
                        .set_continuation_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| {
                            format!("listing s3://{bucket}/{prefix}: {}", aws_error(&e))
                        })?;
                    for o in page.contents() {
                        if let Some(k) = o.key() {
                            if tx.send((k.to_string(), o.size())).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                    token = page.next_continuation_token().map(str::to_string);
                    if token.is_none() {
                        break;
                    }
                }
            }
            Ok::<(), String>(())
        });
    }
    drop(key_tx);

    // Readers: bounded objects in flight, each awaited to its acknowledgement.
    let read_permits = Arc::new(Semaphore::new(opts.objects_in_flight.max(1)));
    let mut readers = JoinSet::new();
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    while let Some((key, size)) = key_rx.recv().await {
        counters.listed.fetch_add(1, Ordering::Relaxed);
        match classify_key(&key) {
            KeyClass::CloudTrail(k) if k.kind == KeyKind::Log => {}
            _ => {
                counters.skipped_not_log.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        if checkpoint.is_done(&key) {
            counters.skipped_checkpoint.fetch_add(1, Ordering::Relaxed);
            if let (Some(p), Some(n)) = (&progress, size) {
                p.inc(n.max(0) as u64);
            }
            continue;
        }
        let Ok(permit) = read_permits.clone().acquire_owned().await else {
            break;
        };
        let s3 = s3.clone();
        let bucket = bucket.clone();
        let tx = input.clone();
        let cp = checkpoint.clone();
        let dlq = dead_letter.clone();
        let counters = counters.clone();
        let failures = failures.clone();
        let limits = opts.limits.clone();
        let chunking = opts.chunking;
        let progress = progress.clone();
        readers.spawn(async move {
            let meta = Arc::new(ObjectMeta::for_s3(&bucket, &key));
            let (ack, outcome) = ObjectAck::new();
            let (report, result) = trailhose_aws::s3read::stream_object(
                &s3,
                &bucket,
                &key,
                meta.clone(),
                &limits,
                chunking,
                &ack,
                &tx,
            )
            .await;
            drop(ack);
            // Not needed while waiting for the acknowledgement; holding it would keep the
            // pipeline's input open.
            drop(tx);
            counters
                .records
                .fetch_add(report.records, Ordering::Relaxed);
            counters
                .bytes
                .fetch_add(report.compressed_bytes, Ordering::Relaxed);
            if let Some(p) = &progress {
                p.inc(report.compressed_bytes);
            }
            let outcome = outcome.await.ok();
            let note = |msg: String| {
                let mut f = lock(&failures);
                if f.len() < 100 {
                    f.push(msg);
                }
            };
            match settle(
                result.as_ref().map(|_| ()),
                report.records,
                outcome.as_ref(),
            ) {
                Settlement::Delivered { .. } => {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = cp.mark_done(&key) {
                        note(format!("checkpoint {}: {e}", cp.path().display()));
                    }
                }
                Settlement::DeadLetter {
                    kind,
                    reason,
                    records_before_fault,
                } => {
                    // Records before the fault were delivered; the rest cannot be read.
                    let entry = DeadLetter {
                        source: &meta.source,
                        kind,
                        reason: &reason,
                        records_before_fault,
                        time: now_rfc3339(),
                    };
                    match dlq.write(&entry).await {
                        Ok(()) => {
                            counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                            if let Err(e) = cp.mark_done(&key) {
                                note(format!("checkpoint {}: {e}", cp.path().display()));
                            }
                        }
                        Err(we) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            note(format!(
                                "{}: {reason}; dead-letter write failed: {we}",
                                meta.source
                            ));
                        }
                    }
                    note(format!("{}: {reason}", meta.source));
                }
                Settlement::Retry { reason, .. } => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    note(format!("{}: {reason} (left for the next run)", meta.source));
                }
            }
            drop(permit);
        });
        while readers.try_join_next().is_some() {}
    }
    // Every object is started and each reader holds its own sender: closing ours lets
    // batching sinks flush as soon as the last one is read.
    drop(input);
    while readers.join_next().await.is_some() {}
    let mut list_errors = Vec::new();
    while let Some(r) = listers.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => list_errors.push(e),
            Err(e) => list_errors.push(format!("lister task: {e}")),
        }
    }
    let c = &counters;
    let mut report = BackfillReport {
        accounts: accounts.len() as u64,
        prefixes_listed: c.prefixes.load(Ordering::Relaxed),
        objects_listed: c.listed.load(Ordering::Relaxed),
        skipped_checkpoint: c.skipped_checkpoint.load(Ordering::Relaxed),
        skipped_not_log: c.skipped_not_log.load(Ordering::Relaxed),
        delivered: c.delivered.load(Ordering::Relaxed),
        dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed) + list_errors.len() as u64,
        records: c.records.load(Ordering::Relaxed),
        compressed_bytes: c.bytes.load(Ordering::Relaxed),
        failures: lock(&failures).clone(),
    };
    report.failures.extend(list_errors);
    Ok(report)
}
