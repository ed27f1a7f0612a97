//! `trailhose cat`: local CloudTrail files to NDJSON, one record per line, byte-identical to
//! the source record. Files are parsed in parallel; output keeps the order of the files and of
//! the records within each, with a bounded amount of output in flight per file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use trailhose_core::keys::{classify_key, KeyClass, KeyKind};
use trailhose_core::splitter::compact_json_into;
use trailhose_core::{read_records, FieldMode, FileStats, Limits, ParseError};

/// Output handed from a parsing thread to the writer, in blocks of about this size.
const BLOCK: usize = 256 * 1024;
/// Blocks queued per file before its parser waits for the writer.
const BLOCKS_IN_FLIGHT: usize = 4;

#[derive(Debug, Default)]
pub struct CatReport {
    pub files: u64,
    pub records: u64,
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    pub failures: Vec<(PathBuf, ParseError, u64)>,
}

enum Block {
    Data(Vec<u8>),
    Done(FileStats, Result<(), ParseError>),
}

/// Expands directories (recursively, sorted) and drops digest files, which hold no records.
pub fn expand(paths: &[PathBuf]) -> io::Result<(Vec<PathBuf>, u64)> {
    let mut out = Vec::new();
    let mut digests = 0;
    for p in paths {
        if p.is_dir() {
            for f in trailhose_pipeline::dir_source::list_files(p)? {
                // Digest signature sidecars (`trailhose generate --digests`) hold no records.
                if f.extension().is_some_and(|e| e == "sig") {
                    digests += 1;
                    continue;
                }
                let key = f
                    .strip_prefix(p)
                    .unwrap_or(&f)
                    .to_string_lossy()
                    .replace('\\', "/");
                if let KeyClass::CloudTrail(k) = classify_key(&key) {
                    if k.kind == KeyKind::Digest {
                        digests += 1;
                        continue;
                    }
                }
                out.push(f);
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok((out, digests))
}

fn parse_one(path: &Path, limits: &Limits, tx: &SyncSender<Block>) {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Block::Done(
                FileStats::default(),
                Err(ParseError::Io {
                    decompressed_offset: 0,
                    reason: e.to_string(),
                }),
            ));
            return;
        }
    };
    let mut buf = Vec::with_capacity(BLOCK + 4096);
    let mut writer_gone = false;
    let (stats, result) = read_records(file, limits, FieldMode::ValidateOnly, |rec| {
        if writer_gone {
            return;
        }
        if rec.raw.has_line_break {
            compact_json_into(rec.raw.bytes, &mut buf);
        } else {
            buf.extend_from_slice(rec.raw.bytes);
        }
        buf.push(b'\n');
        if buf.len() >= BLOCK {
            let full = std::mem::replace(&mut buf, Vec::with_capacity(BLOCK + 4096));
            writer_gone = tx.send(Block::Data(full)).is_err();
        }
    });
    if !buf.is_empty() && !writer_gone {
        let _ = tx.send(Block::Data(buf));
    }
    let _ = tx.send(Block::Done(stats, result));
}

/// Runs `cat` over `files` with `jobs` parsing threads, writing to `out`. An error writing
/// `out` (e.g. a closed pipe) stops the run and is returned; file errors are in the report.
pub fn cat(
    files: &[PathBuf],
    limits: &Limits,
    jobs: usize,
    out: &mut dyn Write,
    progress: Option<&trailhose_ops::progress::Progress>,
) -> io::Result<CatReport> {
    let n = files.len();
    let mut senders: Vec<Mutex<Option<SyncSender<Block>>>> = Vec::with_capacity(n);
    let mut receivers: Vec<Receiver<Block>> = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = sync_channel(BLOCKS_IN_FLIGHT);
        senders.push(Mutex::new(Some(tx)));
        receivers.push(rx);
    }
    let next = AtomicUsize::new(0);
    let mut report = CatReport::default();
    std::thread::scope(|s| -> io::Result<()> {
        for _ in 0..jobs.max(1).min(n.max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let tx = match senders[i].lock() {
                    Ok(mut g) => g.take(),
                    Err(p) => p.into_inner().take(),
                };
                if let Some(tx) = tx {
                    parse_one(&files[i], limits, &tx);
                }
            });
        }
        let receivers = std::mem::take(&mut receivers);
        let mut result = Ok(());
        for (i, rx) in receivers.iter().enumerate() {
            for block in rx.iter() {
                match block {
                    Block::Data(d) => {
                        if let Err(e) = out.write_all(&d) {
                            result = Err(e);
                            break;
                        }
                    }
                    Block::Done(stats, r) => {
                        if let Some(p) = progress {
                            p.inc(stats.compressed_bytes);
                        }
                        report.files += 1;
                        report.records += stats.records;
                        report.compressed_bytes += stats.compressed_bytes;
                        report.decompressed_bytes += stats.decompressed_bytes;
                        if let Err(e) = r {
                            report.failures.push((files[i].clone(), e, stats.records));
                        }
                    }
                }
            }
            if result.is_err() {
                break;
            }
        }
        // Dropping the receivers unblocks parsers still sending after a write error.
        drop(receivers);
        result
    })?;
    out.flush()?;
    Ok(report)
}

/// `trailhose cat`.
#[derive(clap::Args)]
pub struct CatArgs {
    #[arg(required = true)]
    paths: Vec<std::path::PathBuf>,
    /// Files parsed in parallel (default: one per core).
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Largest record accepted, in bytes.
    #[arg(long, default_value_t = trailhose_core::Limits::default().max_record_bytes)]
    max_record_bytes: usize,
}

pub fn run(args: &CatArgs) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    use std::process::ExitCode;
    let limits = trailhose_core::Limits {
        max_record_bytes: args.max_record_bytes,
        ..trailhose_core::Limits::default()
    };
    let paths = &args.paths;
    let jobs = args.jobs;
    let (files, _digests) = expand(paths)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let progress = trailhose_ops::progress::Progress::new("cat", Some(total), true);
    let result = cat(
        &files,
        &limits,
        jobs.unwrap_or_else(crate::default_jobs),
        &mut out,
        Some(&progress),
    );
    progress.finish();
    let report = match result {
        Ok(r) => r,
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e).context("writing stdout"),
    };
    drop(out);
    for (path, err, before) in &report.failures {
        eprintln!(
            "trailhose: {}: {err} ({before} records before the fault were written)",
            path.display()
        );
    }
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
