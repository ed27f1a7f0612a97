//! The local source: a directory tree in S3 key layout (what `aws s3 sync` of a CloudTrail
//! bucket produces), read in parallel on blocking threads.

use crate::ack::ObjectAck;
use crate::chunk::ObjectMeta;
use crate::deadletter::{now_rfc3339, DeadLetter, DeadLetterFile};
use crate::emit::{emit_reader, ChunkLimits};
use crate::router::Routed;
use crate::settle::{settle, Settlement};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use trailhose_core::keys::{classify_key, KeyClass, KeyKind};
use trailhose_core::Limits;

/// Which files of the tree are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Only CloudTrail log and Insights files by their S3 key; digests and others are skipped
    /// and counted.
    #[default]
    S3,
    /// Every regular file.
    Any,
}

#[derive(Debug, Clone)]
pub struct DirSource {
    pub path: PathBuf,
    pub layout: Layout,
    pub parse_workers: usize,
    pub limits: Limits,
    pub chunking: ChunkLimits,
}

#[derive(Debug, Clone, Default)]
pub struct SourceReport {
    pub files_read: u64,
    pub files_failed: u64,
    /// Skip reason → files.
    pub files_skipped: BTreeMap<String, u64>,
    pub objects_delivered: u64,
    pub objects_undelivered: u64,
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    pub records: u64,
    /// `path: reason`, the first few.
    pub failures: Vec<String>,
}

/// Lists regular files under `root`, sorted, so runs are reproducible.
pub fn list_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        for entry in rd {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Builds the object metadata from a path relative to the tree root, read as an S3 key.
pub fn object_meta(root: &Path, path: &Path) -> (ObjectMeta, Option<KeyKind>, Option<String>) {
    let key = path
        .strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/");
    let mut meta = ObjectMeta {
        source: path.display().to_string(),
        bucket: None,
        key: key.clone(),
        ..Default::default()
    };
    match classify_key(&key) {
        KeyClass::CloudTrail(k) => {
            meta.account = Some(k.account.to_string());
            meta.region = Some(k.region.to_string());
            meta.org_id = k.org_id.map(str::to_string);
            (meta, Some(k.kind), None)
        }
        KeyClass::Other { reason } => (meta, None, Some(reason.to_string())),
    }
}

pub async fn run_dir_source(
    src: DirSource,
    input: mpsc::Sender<Routed>,
    dead_letter: Arc<DeadLetterFile>,
) -> std::io::Result<SourceReport> {
    let root = src.path.clone();
    let files = tokio::task::spawn_blocking(move || list_files(&root))
        .await
        .map_err(std::io::Error::other)??;
    let mut report = SourceReport::default();
    let permits = Arc::new(Semaphore::new(src.parse_workers.max(1)));
    let mut tasks = JoinSet::new();
    for path in files {
        let (meta, kind, skip) = object_meta(&src.path, &path);
        if src.layout == Layout::S3 {
            match kind {
                Some(KeyKind::Log | KeyKind::Insight) => {}
                Some(KeyKind::Digest) => {
                    *report.files_skipped.entry("digest".into()).or_default() += 1;
                    continue;
                }
                None => {
                    let reason = skip.unwrap_or_else(|| "not a CloudTrail key".into());
                    *report.files_skipped.entry(reason).or_default() += 1;
                    continue;
                }
            }
        }
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(std::io::Error::other)?;
        let tx = input.clone();
        let limits = src.limits.clone();
        let chunking = src.chunking;
        let dlq = dead_letter.clone();
        tasks.spawn(async move {
            let meta = Arc::new(meta);
            let (ack, outcome) = ObjectAck::new();
            let m = meta.clone();
            let parsed = tokio::task::spawn_blocking(move || {
                let r = match std::fs::File::open(&path) {
                    Ok(f) => emit_reader(f, m, &limits, chunking, &ack, &tx),
                    Err(e) => (
                        Default::default(),
                        Err(trailhose_core::ParseError::Io {
                            decompressed_offset: 0,
                            reason: e.to_string(),
                        }),
                    ),
                };
                drop(ack);
                drop(permit);
                r
            })
            .await;
            let (stats, result) = match parsed {
                Ok(r) => r,
                Err(e) => (
                    Default::default(),
                    Err(trailhose_core::ParseError::Io {
                        decompressed_offset: 0,
                        reason: format!("reader task failed: {e}"),
                    }),
                ),
            };
            let outcome = outcome.await.ok();
            let read = result.as_ref().map(|_| ());
            let unreadable = result.as_ref().err().map(|e| format!("{}: {e}", meta.source));
            let delivered = match settle(read, stats.records, outcome.as_ref()) {
                Settlement::Delivered { .. } => true,
                Settlement::DeadLetter {
                    kind,
                    reason,
                    records_before_fault,
                } => {
                    let entry = DeadLetter {
                        source: &meta.source,
                        kind,
                        reason: &reason,
                        records_before_fault,
                        time: now_rfc3339(),
                    };
                    if let Err(we) = dlq.write(&entry).await {
                        tracing::error!(place = %dlq.describe(), error = %we, "cannot write dead letter");
                    }
                    true
                }
                // A local run cannot come back to the file: it counts as not delivered.
                Settlement::Retry { .. } => false,
            };
            let failure = unreadable;
            (stats, failure, delivered)
        });
        // Reap finished files as we go so the set does not grow with the tree.
        while let Some(done) = tasks.try_join_next() {
            tally(&mut report, done);
        }
    }
    // Every file is listed and its reader holds its own sender: closing ours lets the input
    // end as soon as the last file is parsed, so batching sinks (the archive) flush and
    // acknowledge now rather than on their age limit while we wait for the outcomes.
    drop(input);
    while let Some(done) = tasks.join_next().await {
        tally(&mut report, done);
    }
    Ok(report)
}

type FileResult = (trailhose_core::FileStats, Option<String>, bool);

fn tally(report: &mut SourceReport, done: Result<FileResult, tokio::task::JoinError>) {
    match done {
        Ok((stats, failure, delivered)) => {
            report.files_read += 1;
            report.compressed_bytes += stats.compressed_bytes;
            report.decompressed_bytes += stats.decompressed_bytes;
            report.records += stats.records;
            if delivered {
                report.objects_delivered += 1;
            } else {
                report.objects_undelivered += 1;
            }
            if let Some(f) = failure {
                report.files_failed += 1;
                if report.failures.len() < 100 {
                    report.failures.push(f);
                }
            }
        }
        Err(e) => {
            report.files_failed += 1;
            report.failures.push(format!("file task failed: {e}"));
        }
    }
}
