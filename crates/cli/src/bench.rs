//! `trailhose bench`: end-to-end throughput next to `zcat` of the same files, measured in the
//! same run so the ratio means something on a noisy machine.

use crate::cat::{cat, expand};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use trailhose_core::Limits;

thread_local! {
    /// Progress of the whole benchmark (compressed bytes processed across every timed run);
    /// updated between runs only, so it never weighs on what is measured.
    static PROGRESS: std::cell::RefCell<Option<(std::sync::Arc<trailhose_ops::progress::Progress>, u64)>> =
        const { std::cell::RefCell::new(None) };
}

fn best_of<T>(runs: u32, mut f: impl FnMut() -> Result<T>) -> Result<(Duration, T)> {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let v = f()?;
        let d = t.elapsed();
        PROGRESS.with(|p| {
            if let Some((p, bytes)) = p.borrow().as_ref() {
                p.inc(*bytes);
            }
        });
        if best.as_ref().is_none_or(|(b, _)| d < *b) {
            best = Some((d, v));
        }
    }
    best.context("no runs")
}

fn zcat(files: &[PathBuf]) -> Result<()> {
    // Batches keep the argument list under the OS limit.
    for batch in files.chunks(500) {
        let status = Command::new("zcat")
            .args(batch)
            .stdout(Stdio::null())
            .status()
            .context("running zcat (is gzip installed?)")?;
        if !status.success() {
            bail!("zcat failed: {status}");
        }
    }
    Ok(())
}

pub fn bench(dir: Option<PathBuf>, events: u64, runs: u32) -> Result<ExitCode> {
    let temp;
    let corpus: PathBuf = match dir {
        Some(d) => d,
        None => {
            temp = tempfile::Builder::new()
                .prefix("trailhose-bench-")
                .tempdir()?;
            let opts = trailhose_gen::GenOptions {
                events,
                ..Default::default()
            };
            eprintln!(
                "generating {events} events in {} ...",
                temp.path().display()
            );
            trailhose_gen::generate(temp.path(), &opts)?;
            temp.path().to_path_buf()
        }
    };
    let (files, _) = expand(std::slice::from_ref(&corpus))?;
    let files: Vec<PathBuf> = files.into_iter().filter(|f| is_gz(f)).collect();
    if files.is_empty() {
        bail!("no .gz files under {}", corpus.display());
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let limits = Limits::default();

    let corpus_bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let progress = trailhose_ops::progress::Progress::new(
        "bench",
        Some(corpus_bytes * 4 * u64::from(runs.max(1))),
        true,
    );
    PROGRESS.with(|p| *p.borrow_mut() = Some((progress.clone(), corpus_bytes)));
    // Warm the page cache so the first contender does not pay for the disk.
    zcat(&files)?;
    let (t_zcat, ()) = best_of(runs, || zcat(&files))?;
    let (t_cat_n, rep) = best_of(runs, || {
        Ok(cat(&files, &limits, cores, &mut std::io::sink(), None)?)
    })?;
    let (t_cat_1, _) = best_of(runs, || {
        Ok(cat(&files, &limits, 1, &mut std::io::sink(), None)?)
    })?;
    let cfg = trailhose_config::Config::from_toml(
        &format!(
            "[source]\ntype = \"dir\"\npath = {:?}\nlayout = \"any\"\n[[sinks]]\ntype = \"discard\"\nname = \"null\"\n",
            corpus.display().to_string()
        ),
        "bench config",
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (t_run, run_rep) = best_of(runs, || rt.block_on(crate::run::run_config(&cfg)))?;
    progress.finish();
    if !rep.failures.is_empty() || run_rep.source.files_failed > 0 {
        bail!("the corpus has broken files; benchmark needs a clean corpus");
    }

    let mb = rep.decompressed_bytes as f64 / 1e6;
    let rate = |d: Duration| mb / d.as_secs_f64().max(1e-9);
    let base = rate(t_zcat);
    println!(
        "corpus: {} files, {} records, {:.1} MB uncompressed, {:.1} MB gzip; {cores} cores; best of {runs}",
        files.len(),
        rep.records,
        mb,
        rep.compressed_bytes as f64 / 1e6
    );
    println!(
        "{:<44} {:>10} {:>12} {:>10}",
        "contender", "seconds", "MB/s (unc.)", "vs zcat"
    );
    for (name, d) in [
        ("zcat (single-threaded, to /dev/null)".to_string(), t_zcat),
        (format!("trailhose cat, {cores} threads"), t_cat_n),
        ("trailhose cat, 1 thread".to_string(), t_cat_1),
        ("trailhose run, dir → discard sink".to_string(), t_run),
    ] {
        println!(
            "{:<44} {:>10.3} {:>12.1} {:>9.2}x",
            name,
            d.as_secs_f64(),
            rate(d),
            rate(d) / base
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn is_gz(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gz")
}
