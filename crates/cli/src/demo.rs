//! `trailhose demo`: what a newcomer runs first. Generates a sample org trail, adds one broken
//! file to show that faults are reported and nothing else is lost, ships it all through the
//! local pipeline, and checks the output against the input.

use crate::run::{print_report, run_config};
use anyhow::{bail, Context, Result};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trailhose_config::Config;

pub fn demo(dir: Option<PathBuf>, events: u64) -> Result<ExitCode> {
    let temp;
    let root = match dir {
        Some(d) => d,
        None => {
            temp = tempfile::Builder::new()
                .prefix("trailhose-demo-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let sample = root.join("sample");
    let out = root.join("out");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    println!(
        "1. generating {events} CloudTrail events (org trail, S3 layout) in {}",
        sample.display()
    );
    let opts = trailhose_gen::GenOptions {
        events,
        gzip_level: 1,
        inject: trailhose_gen::Inject {
            violations: true,
            anomalies: false,
        },
        ..Default::default()
    };
    let generated = trailhose_gen::generate(&sample, &opts)?;
    let broken = add_truncated_copy(&sample, &generated)?;
    println!(
        "   {} files, {:.1} MB uncompressed; plus one deliberately truncated file: {}",
        generated.files.len(),
        generated.uncompressed_bytes as f64 / 1e6,
        broken.display()
    );

    let cfg_text = format!(
        r#"
[source]
type = "dir"
path = {sample:?}

[dead_letter]
path = {dlq:?}

[[sinks]]
type = "ndjson"
name = "records"
dir = {records:?}

[[sinks]]
type = "archive"
name = "archive"
location = {archive:?}
max_file_seconds = 60

[detection]
failed_alerts_path = {failed:?}

[[detection.outputs]]
type = "ndjson"
path = {alerts:?}
"#,
        failed = out.join("failed-alerts.ndjson").display().to_string(),
        alerts = out.join("alerts.ndjson").display().to_string(),
        sample = sample.display().to_string(),
        dlq = out.join("dead-letter.ndjson").display().to_string(),
        records = out.join("records").display().to_string(),
        archive = out.join("archive").display().to_string(),
    );
    let cfg = Config::from_toml(&cfg_text, "demo config")?;
    println!(
        "2. running the local pipeline (directory → NDJSON files in {})",
        out.join("records").display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run_config(&cfg))?;
    print_report(&report);

    println!("3. checking the output");
    let written = count_lines(&out.join("records"))?;
    // The `records` sink only: the detection stage sees every record too.
    let delivered = report
        .sinks
        .iter()
        .filter(|s| s.name == "records")
        .map(|s| s.records)
        .sum::<u64>();
    println!(
        "   {written} lines written = {delivered} records delivered; {} generated, {} read before the truncation fault",
        generated.records,
        report.source.records.saturating_sub(generated.records)
    );
    if written != delivered || report.source.records < generated.records {
        bail!(
            "output does not match input: {written} lines, {delivered} delivered, {} generated",
            generated.records
        );
    }
    if report.source.files_failed != 1 || report.dead_letters != 1 {
        bail!(
            "expected exactly the one truncated file to be dead-lettered, got {} failed files and {} dead letters",
            report.source.files_failed,
            report.dead_letters
        );
    }
    println!("   ok: every record of every good file delivered once; the truncated file was dead-lettered with its reason");
    crate::rules::demo_detection(&out.join("alerts.ndjson"), &generated)?;
    crate::validate::demo_steps(&root, &sample, &generated)?;
    #[cfg(feature = "query")]
    crate::query::demo_steps(&out.join("archive"), &out.join("records"))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the first half of a generated file under a new, valid log key.
fn add_truncated_copy(sample: &Path, g: &trailhose_gen::GenSummary) -> Result<PathBuf> {
    let Some(first) = g.files.first() else {
        bail!("the generator produced no files");
    };
    let src = sample.join(&first.path);
    let bytes = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // Same account/region/minute, another unique id: a legal key for a different object.
    let Some(stem) = name
        .strip_suffix(".json.gz")
        .and_then(|s| s.rsplit_once('_'))
        .map(|(a, _)| a)
    else {
        bail!("unexpected generated file name {name}");
    };
    let dst = src.with_file_name(format!("{stem}_TRUNCATEDDEMO000.json.gz"));
    std::fs::write(&dst, &bytes[..bytes.len() / 2])
        .with_context(|| format!("writing {}", dst.display()))?;
    Ok(dst)
}

fn count_lines(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for f in trailhose_pipeline::dir_source::list_files(dir)? {
        let r = std::io::BufReader::new(std::fs::File::open(&f)?);
        for line in r.split(b'\n') {
            line?;
            n += 1;
        }
    }
    Ok(n)
}
