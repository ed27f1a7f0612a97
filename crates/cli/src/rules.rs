//! `trailhose rules ...` and the glue that adds the detection stage to a run.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trailhose_config::detect::DetectionConfig;
use trailhose_core::{read_records, FieldMode, FieldParser, KeyFields, Limits};
use trailhose_detect::engine::Scratch;
use trailhose_detect::rules::{Rule, RuleSet, RuleSources, Severity};
use trailhose_detect::{DetectSink, FilterPattern};
use trailhose_pipeline::filter::CompiledFilter;
use trailhose_pipeline::SinkSpec;

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Print which records of local files match a filter pattern (like CloudWatch Logs'
    /// TestMetricFilter), or the rules of the pack.
    Test {
        /// A CloudWatch Logs filter pattern, e.g. '{ $.eventName = "ConsoleLogin" }'.
        /// Repeatable. Without --rule and --id every rule of the pack is tested.
        #[arg(long)]
        rule: Vec<String>,
        /// A rule id of the pack (see `rules list`). Repeatable.
        #[arg(long)]
        id: Vec<String>,
        /// Also load the rule files of this directory.
        #[arg(long)]
        rules_dir: Option<PathBuf>,
        /// Leave the built-in pack out.
        #[arg(long)]
        no_builtin: bool,
        /// Print each matching record (one JSON line) instead of a summary line.
        #[arg(long)]
        records: bool,
        /// CloudTrail log files (gzip, zstd or plain) or directories of them, or NDJSON files
        /// with one record per line (as `trailhose cat` writes).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the rules: the built-in pack and, with --rules-dir, your own.
    List {
        #[arg(long)]
        rules_dir: Option<PathBuf>,
        #[arg(long)]
        no_builtin: bool,
        /// Also print each rule's pattern.
        #[arg(long)]
        patterns: bool,
    },
}

pub fn run(cmd: RulesCommand) -> Result<ExitCode> {
    match cmd {
        RulesCommand::List {
            rules_dir,
            no_builtin,
            patterns,
        } => {
            let set = RuleSet::load(&RuleSources {
                builtin: !no_builtin,
                dir: rules_dir,
                disable: Vec::new(),
            })?;
            let mut out = std::io::stdout().lock();
            for r in set.rules() {
                writeln!(
                    out,
                    "{:<40} {:<9} {:<22} {}",
                    r.id, r.severity, r.pack, r.title
                )?;
                if patterns {
                    writeln!(out, "    {}", r.pattern)?;
                }
            }
            writeln!(
                out,
                "{} rules ({} need no key-field index: evaluated on every record)",
                set.len(),
                set.engine().unindexed()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Test {
            rule,
            id,
            rules_dir,
            no_builtin,
            records,
            files,
        } => test(rule, id, rules_dir, no_builtin, records, &files),
    }
}

fn ad_hoc(i: usize, text: &str) -> Result<Rule> {
    let pattern = match FilterPattern::parse(text) {
        Ok(p) => p,
        Err(e) => bail!("--rule {}: {}", i + 1, e.render(text)),
    };
    Ok(Rule {
        id: format!("pattern-{}", i + 1),
        title: text.to_owned(),
        severity: Severity::Info,
        pack: "command line".into(),
        description: None,
        controls: Vec::new(),
        pattern,
        origin: "--rule".into(),
    })
}

fn test(
    patterns: Vec<String>,
    ids: Vec<String>,
    rules_dir: Option<PathBuf>,
    no_builtin: bool,
    print_records: bool,
    files: &[PathBuf],
) -> Result<ExitCode> {
    let mut rules = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        rules.push(ad_hoc(i, p)?);
    }
    if !ids.is_empty() || patterns.is_empty() {
        let pack = RuleSet::load(&RuleSources {
            builtin: !no_builtin,
            dir: rules_dir,
            disable: Vec::new(),
        })?;
        for id in &ids {
            if !pack.rules().iter().any(|r| &r.id == id) {
                bail!("no rule `{id}` (see `trailhose rules list`)");
            }
        }
        rules.extend(
            pack.rules()
                .iter()
                .filter(|r| ids.is_empty() || ids.contains(&r.id))
                .cloned(),
        );
    }
    let single = rules.len() == 1;
    let set = RuleSet::new(rules)?;
    let (paths, _) = crate::cat::expand(files)?;
    let mut scratch = Scratch::new();
    let mut counts = vec![0u64; set.len()];
    let mut total = 0u64;
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut hits = Vec::new();
    for path in &paths {
        let shown = path.display().to_string();
        let mut on_record = |index: u64, bytes: &[u8], fields: Option<&KeyFields>| {
            total += 1;
            set.matching(&mut scratch, bytes, fields, &mut hits);
            for &h in &hits {
                counts[h as usize] += 1;
                let r = &set.rules()[h as usize];
                let line = if print_records {
                    let mut l = Vec::with_capacity(bytes.len() + 1);
                    trailhose_core::splitter::compact_json_into(bytes, &mut l);
                    l.push(b'\n');
                    l
                } else {
                    let f = fields.cloned().unwrap_or_default();
                    let who = if single {
                        String::new()
                    } else {
                        format!("{} ", r.id)
                    };
                    format!(
                        "{who}{shown}#{index} {} {} {} {}\n",
                        f.event_time().unwrap_or("-"),
                        f.event_source().unwrap_or("-"),
                        f.event_name().unwrap_or("-"),
                        f.event_id().unwrap_or("-"),
                    )
                    .into_bytes()
                };
                if out.write_all(&line).is_err() {
                    return;
                }
            }
        };
        if let Err(e) = read_any(path, &mut on_record) {
            eprintln!("trailhose: {shown}: {e}");
            failed = true;
        }
    }
    out.flush().context("writing stdout")?;
    drop(out);
    let matched: u64 = counts.iter().sum();
    if single {
        eprintln!("{matched} of {total} records matched");
    } else {
        eprintln!("{matched} matches in {total} records:");
        for (r, n) in set.rules().iter().zip(&counts) {
            if *n > 0 {
                eprintln!("  {:<40} {n:>8}", r.id);
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Called with (record index, bytes, key fields) for every record of a file.
type OnRecord<'a> = dyn FnMut(u64, &[u8], Option<&KeyFields>) + 'a;

/// Reads a CloudTrail file (any compression), or NDJSON (plain text, one record per line).
fn read_any(path: &Path, on: &mut OnRecord<'_>) -> Result<()> {
    let mut head = [0u8; 64];
    let n = {
        let mut f = std::fs::File::open(path)?;
        let mut n = 0;
        while n < head.len() {
            let k = f.read(&mut head[n..])?;
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    };
    let text = String::from_utf8_lossy(&head[..n]);
    let trimmed = text.trim_start();
    let ndjson = trimmed.starts_with('{') && !trimmed.starts_with("{\"Records\"");
    if !ndjson {
        let file = std::fs::File::open(path)?;
        let (_, r) = read_records(file, &Limits::default(), FieldMode::Extract, |rec| {
            on(rec.raw.index, rec.raw.bytes, rec.fields.as_ref());
        });
        return r.map_err(|e| anyhow::anyhow!("{e}"));
    }
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut parser = FieldParser::new();
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parser.parse(line, i as u64, 0) {
            Ok(f) => on(i as u64 + 1, line, Some(&f)),
            Err(e) => bail!("line {}: {e}", i + 1),
        }
    }
    Ok(())
}

/// The `detect` stage for `trailhose run`.
pub async fn detect_sink(cfg: &DetectionConfig) -> Result<SinkSpec> {
    let sink = DetectSink::from_config("detect", cfg)
        .await
        .map_err(|e| anyhow::anyhow!("detection: {e}"))?;
    Ok(SinkSpec {
        sink: Box::new(sink),
        filter: CompiledFilter::pass_all(),
    })
}

/// What `check-config` adds for a `[detection]` section: the rules compile and the anomaly
/// settings are sound.
pub fn check(cfg: &DetectionConfig) -> Result<String> {
    let set = RuleSet::load(&RuleSources {
        builtin: cfg.builtin_rules,
        dir: cfg.rules_dir.clone(),
        disable: cfg.disable.clone(),
    })?;
    let mut s = format!("detection: {} rules", set.len());
    if let Some(a) = cfg.anomaly.as_ref().filter(|a| a.enabled) {
        let opts = trailhose_detect::sink::anomaly_options(a);
        let problems = opts.problems();
        if !problems.is_empty() {
            bail!("detection.anomaly: {}", problems.join("; "));
        }
        s.push_str(&format!(
            ", anomaly detection over {} min baselines (state {})",
            opts.baseline_window_minutes,
            a.state_path.display()
        ));
    }
    Ok(s)
}

/// Per-rule match counts of the detection stages of this run, for the run summary.
pub fn print_detection_summary() {
    let stages = match trailhose_detect::sink::registry().lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for s in stages {
        use std::sync::atomic::Ordering::Relaxed;
        eprintln!(
            "detection {}: {} records, {} rule alerts, {} Insights events, {} full parses, {} alerts kept in the failed-alerts file",
            s.name,
            s.records.load(Relaxed),
            s.rule_alerts.load(Relaxed),
            s.insight_events.load(Relaxed),
            s.full_parses.load(Relaxed),
            s.failed_alerts.load(Relaxed),
        );
        for (id, n) in s.rule_counts() {
            if n > 0 {
                eprintln!("  {id:<40} {n:>10}");
            }
        }
        if let Some(a) = s.anomaly_stats() {
            eprintln!(
                "  anomaly: {} events analysed, {} late, {} skipped, {} keys evicted, {} Start / {} End",
                a.events, a.late, a.skipped, a.evicted_keys, a.starts, a.ends
            );
        }
    }
}

/// `generate --inject violations,anomalies`.
pub fn inject_options(list: &[String]) -> trailhose_gen::Inject {
    trailhose_gen::Inject {
        violations: list.iter().any(|s| s == "violations"),
        anomalies: list.iter().any(|s| s == "anomalies"),
    }
}

/// Prints what `generate` injected and writes the manifest.
pub fn report_injected(s: &trailhose_gen::GenSummary, manifest: Option<&Path>) -> Result<()> {
    if s.injected.is_empty() && s.anomalies.is_empty() {
        return Ok(());
    }
    println!(
        "injected {} violations (one per rule of the built-in pack) and {} anomalies",
        s.injected.len(),
        s.anomalies.len()
    );
    for a in &s.anomalies {
        println!(
            "  {}: {} {} calls of {} by {} from {} to {}",
            a.insight_type,
            a.records,
            a.event_source,
            a.event_name,
            a.user_arn,
            trailhose_core::timefmt::format_rfc3339_s(a.start_ms),
            trailhose_core::timefmt::format_rfc3339_s(a.end_ms)
        );
    }
    if let Some(path) = manifest {
        let v = serde_json::json!({
            "violations": s.injected.iter().map(|e| serde_json::json!({
                "label": e.label,
                "eventID": e.event_id,
                "eventSource": e.event_source,
                "eventName": e.event_name,
                "account": e.account_id,
                "region": e.region,
                "eventTime": trailhose_core::timefmt::format_rfc3339_s(e.event_time_ms),
                "expectedRules": e.expected_rules,
            })).collect::<Vec<_>>(),
            "anomalies": s.anomalies.iter().map(|a| serde_json::json!({
                "insightType": a.insight_type,
                "account": a.account_id,
                "region": a.region,
                "eventSource": a.event_source,
                "eventName": a.event_name,
                "userIdentityArn": a.user_arn,
                "start": trailhose_core::timefmt::format_rfc3339_s(a.start_ms),
                "end": trailhose_core::timefmt::format_rfc3339_s(a.end_ms),
                "records": a.records,
            })).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&v)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("manifest: {}", path.display());
    }
    Ok(())
}

/// The detection part of `trailhose demo`: every violation the generator injected must be in
/// the alerts file.
pub fn demo_detection(alerts: &Path, g: &trailhose_gen::GenSummary) -> Result<()> {
    let text =
        std::fs::read_to_string(alerts).with_context(|| format!("reading {}", alerts.display()))?;
    let mut found = std::collections::BTreeSet::new();
    let mut n = 0u64;
    for line in text.lines() {
        n += 1;
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: line {n}", alerts.display()))?;
        if let (Some(id), Some(rule)) = (v["eventID"].as_str(), v["ruleId"].as_str()) {
            found.insert((id.to_owned(), rule.to_owned()));
        }
    }
    let missing: Vec<String> = g
        .injected
        .iter()
        .flat_map(|e| {
            e.expected_rules
                .iter()
                .filter(|r| !found.contains(&(e.event_id.clone(), (**r).to_owned())))
                .map(move |r| format!("{} ({r})", e.label))
        })
        .collect();
    println!(
        "   detection (CIS pack + essentials): {n} alerts in {}, {} of them the {} violations injected into the sample",
        alerts.display(),
        g.injected.iter().map(|e| e.expected_rules.len()).sum::<usize>(),
        g.injected.len()
    );
    if !missing.is_empty() {
        bail!("injected violations not alerted: {}", missing.join(", "));
    }
    println!("   ok: every injected violation raised the alerts it was built for");
    Ok(())
}
