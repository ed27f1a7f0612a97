//! `trailhose bench-validate`: validation throughput of a generated day of logs (hourly signed
//! digests, every log file hashed) next to `zcat FILES | sha256sum` of the same files, measured
//! in the same run so the ratio means something on a noisy machine.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// CloudTrail delivers about one file per account/Region every 5 minutes: 288 a day.
const FILES_PER_STREAM_PER_DAY: u64 = 288;

fn best_of<T>(runs: u32, mut f: impl FnMut() -> Result<T>) -> Result<(Duration, T)> {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let v = f()?;
        let d = t.elapsed();
        if best.as_ref().is_none_or(|(b, _)| d < *b) {
            best = Some((d, v));
        }
    }
    best.context("no runs")
}

/// `zcat` of every file into one `sha256sum`, in argument batches.
fn zcat_sha256sum(files: &[PathBuf]) -> Result<()> {
    for batch in files.chunks(500) {
        let mut zcat = Command::new("zcat")
            .args(batch)
            .stdout(Stdio::piped())
            .spawn()
            .context("running zcat (is gzip installed?)")?;
        let Some(pipe) = zcat.stdout.take() else {
            bail!("zcat has no stdout");
        };
        let sum = Command::new("sha256sum")
            .stdin(Stdio::from(pipe))
            .stdout(Stdio::null())
            .status()
            .context("running sha256sum (is coreutils installed?)")?;
        let z = zcat.wait()?;
        if !z.success() || !sum.success() {
            bail!("zcat | sha256sum failed: {z}, {sum}");
        }
    }
    Ok(())
}

fn log_files(root: &Path, g: &trailhose_gen::GenSummary) -> Vec<PathBuf> {
    g.files.iter().map(|f| root.join(&f.path)).collect()
}

pub fn bench_validate(dir: Option<PathBuf>, events: u64, runs: u32) -> Result<ExitCode> {
    let temp;
    let root: PathBuf = match dir {
        Some(d) => d,
        None => {
            temp = tempfile::Builder::new()
                .prefix("trailhose-bench-validate-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let opts = trailhose_gen::GenOptions::default();
    let streams = u64::from(opts.accounts) * u64::from(opts.regions);
    let per_file = events.div_ceil(streams * FILES_PER_STREAM_PER_DAY).max(1);
    let opts = trailhose_gen::GenOptions {
        events,
        events_per_file: u32::try_from(per_file).unwrap_or(u32::MAX),
        ..opts
    };
    let corpus = root.join("corpus");
    eprintln!(
        "generating a day of logs ({events} events, {per_file} per file) in {} ...",
        corpus.display()
    );
    let g = trailhose_gen::generate(&corpus, &opts)?;
    let digest_opts = crate::generate_digests::DigestOptions {
        signing_key: root.join("signing-key.pem"),
        public_key_dir: Some(root.join("public-keys")),
        ..Default::default()
    };
    eprintln!("signing digests ...");
    let w = crate::generate_digests::write_digests(&corpus, &g, &digest_opts)?;
    let files = log_files(&corpus, &g);

    let mut args = crate::validate::ValidateArgs::local(&corpus, &root.join("public-keys"));
    let cores = crate::default_jobs();
    // Warm the page cache so the first contender does not pay for the disk.
    zcat_sha256sum(&files)?;
    let (t_base, ()) = best_of(runs, || zcat_sha256sum(&files))?;
    args.jobs = Some(cores);
    let (t_n, rep) = best_of(runs, || crate::validate::validate(&args))?;
    args.jobs = Some(1);
    let (t_1, rep1) = best_of(runs, || crate::validate::validate(&args))?;
    if !rep.ok || !rep1.ok {
        bail!("the generated corpus did not validate:\n{}", rep.to_text());
    }

    let mb = rep.uncompressed_bytes_hashed as f64 / 1e6;
    let rate = |d: Duration| mb / d.as_secs_f64().max(1e-9);
    let base = rate(t_base);
    println!(
        "a day of logs: {} log files, {} digests in {} chains, {:.1} MB uncompressed, {:.1} MB gzip; {cores} cores; best of {runs}",
        rep.log_files.valid,
        w.digests,
        w.chains,
        mb,
        rep.compressed_bytes_hashed as f64 / 1e6
    );
    println!(
        "{:<52} {:>10} {:>12} {:>12}",
        "contender", "seconds", "MB/s (unc.)", "vs baseline"
    );
    for (name, d) in [
        ("zcat FILES | sha256sum (baseline)".to_string(), t_base),
        (format!("trailhose validate, {cores} in flight"), t_n),
        ("trailhose validate, 1 in flight".to_string(), t_1),
    ] {
        println!(
            "{:<52} {:>10.3} {:>12.1} {:>11.2}x",
            name,
            d.as_secs_f64(),
            rate(d),
            rate(d) / base
        );
    }
    Ok(ExitCode::SUCCESS)
}
