//! `trailhose run`: build the pipeline a config describes, run its source to the end, report.

use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trailhose_config::{Config, SinkConfig, SourceConfig};
use trailhose_pipeline::deadletter::DeadLetterFile;
use trailhose_pipeline::delivery::{DeadLetterPlace, DeliveryControl, LocalDeadLetters};
use trailhose_pipeline::dir_source::{run_dir_source, DirSource, SourceReport};
use trailhose_pipeline::emit::ChunkLimits;
use trailhose_pipeline::filter::{CompiledFilter, RecordFilter};
use trailhose_pipeline::sinks::discard::DiscardSink;
use trailhose_pipeline::sinks::ndjson::{FileTarget, NdjsonSink, Target};
use trailhose_pipeline::{Pipeline, SinkReport, SinkSpec};

/// The top-level `[dead_letter]` place: a local file, or an `s3://` prefix reached with the
/// place's own region/endpoint, else `fallback`'s (the SQS source's, or the command line's).
pub async fn source_dead_letters(
    cfg: &Config,
    fallback: &trailhose_aws::AwsSettings,
) -> Result<Arc<DeadLetterFile>> {
    let dl = &cfg.dead_letter;
    if !dl.is_s3() {
        return Ok(Arc::new(DeadLetterFile::new(&dl.path)));
    }
    let sdk = trailhose_aws::load_sdk_config(&trailhose_aws::AwsSettings {
        region: dl.region.clone().or_else(|| fallback.region.clone()),
        endpoint_url: dl
            .endpoint_url
            .clone()
            .or_else(|| fallback.endpoint_url.clone()),
    })
    .await;
    let sse = trailhose_aws::SseOptions {
        sse: dl.sse.clone(),
        kms_key_id: dl.kms_key_id.clone(),
    };
    Ok(trailhose_aws::open_source_dead_letters(
        &dl.target(),
        &sse,
        &sdk,
    )?)
}

/// Region and endpoint of the SQS source after its `TRAILHOSE_…` overrides, which an S3
/// dead-letter place without its own uses.
fn source_settings(cfg: &Config) -> trailhose_aws::AwsSettings {
    match &cfg.source {
        SourceConfig::Sqs(s) => {
            let mut s = s.clone();
            // A bad override is reported by the worker itself.
            let _ = s.apply_env(|k| std::env::var(k).ok());
            trailhose_aws::AwsSettings {
                region: s.region,
                endpoint_url: s.endpoint_url,
            }
        }
        SourceConfig::Dir(_) => trailhose_aws::AwsSettings::default(),
    }
}

pub struct RunReport {
    pub source: SourceReport,
    pub sinks: Vec<SinkReport>,
    pub by_key: std::collections::BTreeMap<(String, String, String), u64>,
    pub unrouted: u64,
    /// Records a named filter (drop rule) kept from a sink, by rule name.
    pub dropped_by_rule: std::collections::BTreeMap<String, u64>,
    pub dead_letters: u64,
    pub dead_letter_path: std::path::PathBuf,
    pub elapsed: Duration,
    /// How the SQS worker's graceful shutdown went; `None` for a source that ends on its own.
    pub shutdown: Option<Shutdown>,
}

/// The end of a run that only a signal stops (the SQS worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    /// Every message in flight was settled (deleted, dead-lettered, left for retry or released)
    /// and the sinks flushed, within `shutdown_grace_seconds`.
    pub clean: bool,
    /// What lost the race, when not clean.
    pub problems: Vec<&'static str>,
    pub took: Duration,
}

impl RunReport {
    /// Whether `trailhose run` exits 0 (README, "Exit status"). A source that ends on its own
    /// (a directory) is clean when every object was read and delivered. The SQS worker runs
    /// until a signal, and what failed before it is already settled (the message came back to
    /// the queue or went to the dead-letter place), so only its graceful shutdown counts: clean
    /// unless it ran out of grace.
    pub fn is_clean(&self) -> bool {
        match &self.shutdown {
            Some(s) => s.clean,
            None => {
                self.source.files_failed == 0
                    && self.source.objects_undelivered == 0
                    && self.sinks.iter().all(|s| s.failed_deliveries == 0)
            }
        }
    }
}

/// Opens the dead-letter places sinks name (records their destination can never take): a
/// local file, or an `s3://` prefix reached with `[dead_letter]`'s region, endpoint and SSE
/// settings (else the SQS source's).
struct SinkDeadLetters {
    sdk: Option<trailhose_aws::SdkConfig>,
    sse: trailhose_aws::SseOptions,
}

impl SinkDeadLetters {
    async fn new(cfg: &Config) -> SinkDeadLetters {
        let any_s3 = cfg
            .sinks
            .iter()
            .filter_map(|s| s.dead_letter())
            .any(trailhose_config::is_s3_url);
        let sdk = if any_s3 {
            let fallback = source_settings(cfg);
            let dl = &cfg.dead_letter;
            Some(
                trailhose_aws::load_sdk_config(&trailhose_aws::AwsSettings {
                    region: dl.region.clone().or(fallback.region),
                    endpoint_url: dl.endpoint_url.clone().or(fallback.endpoint_url),
                })
                .await,
            )
        } else {
            None
        };
        SinkDeadLetters {
            sdk,
            sse: trailhose_aws::SseOptions {
                sse: cfg.dead_letter.sse.clone(),
                kms_key_id: cfg.dead_letter.kms_key_id.clone(),
            },
        }
    }

    fn open(&self, sink: &str, target: &str) -> Result<Arc<dyn DeadLetterPlace>> {
        if !trailhose_config::is_s3_url(target) {
            return Ok(LocalDeadLetters::new(std::path::Path::new(target)));
        }
        let Some(sdk) = &self.sdk else {
            anyhow::bail!("sink {sink}: dead_letter {target}: no S3 client configured");
        };
        trailhose_aws::open_dead_letters(target, &self.sse, sdk)
            .map_err(|e| anyhow::anyhow!("sink {sink}: dead_letter: {e}"))
    }
}

/// A sink's `[sinks.filter]`, its `pattern` compiled by the detection engine.
pub fn compile_filter(sink: &str, spec: &RecordFilter) -> Result<CompiledFilter> {
    trailhose_siem::routing::compile(spec.clone()).map_err(|e| anyhow::anyhow!("sink {sink}: {e}"))
}

pub async fn build_sinks(cfg: &Config) -> Result<Vec<SinkSpec>> {
    let mut specs = Vec::with_capacity(cfg.sinks.len());
    let places = SinkDeadLetters::new(cfg).await;
    for s in &cfg.sinks {
        let spec = match s {
            SinkConfig::Ndjson(c) => SinkSpec {
                sink: Box::new(NdjsonSink {
                    name: c.name.clone(),
                    target: Target::Files(FileTarget::new(
                        c.dir.clone(),
                        c.prefix.clone(),
                        c.max_file_bytes,
                        c.fsync,
                        c.delivery.clone(),
                    )),
                    shape: c.shape,
                }),
                filter: compile_filter(&c.name, &c.filter)?,
            },
            SinkConfig::Stdout(c) => SinkSpec {
                sink: Box::new(NdjsonSink {
                    name: c.name.clone(),
                    target: Target::Stdout,
                    shape: c.shape,
                }),
                filter: compile_filter(&c.name, &c.filter)?,
            },
            SinkConfig::Discard(c) => SinkSpec {
                sink: Box::new(DiscardSink {
                    name: c.name.clone(),
                }),
                filter: compile_filter(&c.name, &c.filter)?,
            },
            SinkConfig::CloudwatchLogs(c) => {
                let client = trailhose_cwl::client_for(c).await;
                let sink = trailhose_cwl::sink(
                    c.clone(),
                    client,
                    places.open(&c.name, &c.dead_letter)?,
                    trailhose_cwl::system_now_ms,
                )
                .map_err(|e| anyhow::anyhow!("sink {}: {e}", c.name))?;
                SinkSpec {
                    sink: Box::new(sink),
                    filter: compile_filter(&c.name, &c.filter)?,
                }
            }
            SinkConfig::Archive(c) => {
                let client = trailhose_archive::s3_client(c).await;
                SinkSpec {
                    sink: Box::new(
                        trailhose_archive::ArchiveSink::new(c.clone(), client)
                            .map_err(anyhow::Error::msg)?,
                    ),
                    filter: compile_filter(&c.name, &c.filter)?,
                }
            }
            SinkConfig::SplunkHec(_)
            | SinkConfig::Opensearch(_)
            | SinkConfig::Http(_)
            | SinkConfig::Kafka(_) => {
                let place = places.open(s.name(), s.dead_letter().unwrap_or_default())?;
                trailhose_siem::spec(s, place)
                    .map_err(|e| anyhow::anyhow!("sink {}: {e}", s.name()))?
            }
        };
        specs.push(spec);
    }
    if let Some(d) = &cfg.detection {
        specs.push(crate::rules::detect_sink(d).await?);
    }
    Ok(specs)
}

/// Starts the `[ops]` listener (`/metrics`, `/healthz`, `/readyz`) and OTLP export when
/// configured, with the pipeline's counters mirrored into the registry.
async fn start_ops(
    cfg: &Config,
    pipeline: &Pipeline,
) -> Result<(
    Option<trailhose_worker::Ops>,
    Option<trailhose_ops::otel::OtelGuard>,
)> {
    if cfg.ops.listen.is_empty() && cfg.ops.otlp_endpoint.is_empty() {
        return Ok((None, None));
    }
    let registry = trailhose_ops::Registry::new();
    let health = trailhose_ops::Health::new();
    let stats = pipeline.stats.clone();
    registry.add_collector(move |r| {
        use std::sync::atomic::Ordering::Relaxed;
        r.counter(
            "trailhose_pipeline_records",
            "records routed to sinks",
            vec![],
        )
        .set_total(stats.records.load(Relaxed));
        r.counter(
            "trailhose_pipeline_bytes",
            "record bytes routed to sinks",
            vec![],
        )
        .set_total(stats.record_bytes.load(Relaxed));
        r.counter(
            "trailhose_pipeline_unrouted",
            "records no sink filter took",
            vec![],
        )
        .set_total(stats.unrouted.load(Relaxed));
        mirror_sinks_and_detection(r);
    });
    watch_sinks(&registry, &health, pipeline.control());
    if !cfg.ops.listen.is_empty() {
        let addr = trailhose_ops::serve(&cfg.ops.listen, registry.clone(), health.clone())
            .await
            .with_context(|| format!("ops listener on {}", cfg.ops.listen))?;
        tracing::info!(%addr, "ops listener: /metrics /healthz /readyz");
    }
    let otel = if cfg.ops.otlp_endpoint.is_empty() {
        None
    } else {
        let (guard, tracer) = trailhose_ops::otel::init(
            &cfg.ops.otlp_endpoint,
            &cfg.ops.service_name,
            registry.clone(),
            Duration::from_secs(cfg.ops.export_interval_seconds),
        )
        .map_err(anyhow::Error::msg)?;
        crate::install_tracer(tracer);
        Some(guard)
    };
    if !matches!(cfg.source, SourceConfig::Sqs(_)) {
        health.set_started();
    }
    Ok((Some(trailhose_worker::Ops { registry, health }), otel))
}

/// Sinks' breakers as a readiness check (not ready while one is open, naming the sink and the
/// reason) and as a gauge.
fn watch_sinks(
    registry: &Arc<trailhose_ops::Registry>,
    health: &Arc<trailhose_ops::Health>,
    control: DeliveryControl,
) {
    let check = control.clone();
    health.add_check(
        "sinks",
        Arc::new(move || {
            let open = check.open_breakers();
            Box::pin(async move {
                if open.is_empty() {
                    return Ok(());
                }
                Err(open
                    .iter()
                    .map(|b| {
                        format!(
                            "sink {} failing for {} s ({}): {}",
                            b.sink,
                            b.open_for.as_secs(),
                            b.class.as_str(),
                            b.reason
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "))
            })
        }),
    );
    registry.add_collector(move |r| {
        for (sink, state) in control.states() {
            r.gauge(
                "trailhose_sink_circuit_open",
                "1 while a sink's breaker is open (refused or down); the source is paused",
                vec![("sink", sink)],
            )
            .set(i64::from(state.is_some()));
        }
    });
}

/// Live sink counters and per-rule alert counts, copied into the registry at scrape time.
fn mirror_sinks_and_detection(r: &trailhose_ops::Registry) {
    use std::sync::atomic::Ordering::Relaxed;
    let sinks: Vec<_> = match trailhose_pipeline::sink::live_sinks().lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for c in sinks {
        let l = || vec![("sink", c.name.clone())];
        let series: [(&'static str, &'static str, u64); 7] = [
            (
                "trailhose_sink_records",
                "records accepted by a sink",
                c.records.load(Relaxed),
            ),
            (
                "trailhose_sink_bytes",
                "bytes of records accepted by a sink",
                c.bytes.load(Relaxed),
            ),
            (
                "trailhose_sink_failed_deliveries",
                "deliveries a sink failed (transient or refused; the object comes back)",
                c.failed_deliveries.load(Relaxed),
            ),
            (
                "trailhose_sink_dead_lettered",
                "records a sink put in its overflow/dead-letter place",
                c.dead_lettered.load(Relaxed),
            ),
            (
                "trailhose_sink_batches",
                "requests made by a sink",
                c.batches.load(Relaxed),
            ),
            (
                "trailhose_sink_throttled",
                "throttling/unavailable answers to a sink",
                c.throttled.load(Relaxed),
            ),
            (
                "trailhose_sink_retries",
                "requests a sink retried",
                c.retries.load(Relaxed),
            ),
        ];
        for (name, help, v) in series {
            r.counter(name, help, l()).set_total(v);
        }
    }
    let detectors: Vec<_> = match trailhose_detect::sink::registry().lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for d in detectors {
        for (rule, n) in &d.per_rule {
            r.counter(
                "trailhose_detection_alerts",
                "alerts raised, per rule",
                vec![("rule", rule.clone())],
            )
            .set_total(n.load(Relaxed));
        }
    }
}

pub async fn run_config(cfg: &Config) -> Result<RunReport> {
    let started = Instant::now();
    let mut pipeline = Pipeline::start(build_sinks(cfg).await?, cfg.pipeline.channel_capacity);
    let stats = pipeline.stats.clone();
    let dlq = source_dead_letters(cfg, &source_settings(cfg)).await?;
    let (ops, _otel) = start_ops(cfg, &pipeline).await?;
    let source = match &cfg.source {
        SourceConfig::Dir(d) => {
            let src = DirSource {
                path: d.path.clone(),
                layout: d.layout,
                parse_workers: cfg.pipeline.workers(),
                limits: cfg.limits.to_limits(),
                chunking: ChunkLimits {
                    max_records: cfg.pipeline.chunk_records,
                    max_bytes: cfg.pipeline.chunk_bytes,
                },
            };
            run_dir_source(src, pipeline.take_input(), dlq.clone())
                .await
                .with_context(|| format!("reading {}", d.path.display()))?
        }
        SourceConfig::Sqs(s) => {
            // The worker owns the pipeline: it flushes the sinks before its last deletes.
            let w = trailhose_worker::run(cfg, s, pipeline, dlq.clone(), ops.clone()).await?;
            eprintln!("{}", w.stats);
            let shutdown = Shutdown {
                clean: w.shutdown_clean(),
                problems: w.shutdown_problems(),
                took: w.shutdown_took,
            };
            return Ok(RunReport {
                source: w.source_report(),
                sinks: w.sinks,
                by_key: w.by_key,
                unrouted: w.unrouted,
                dropped_by_rule: stats.snapshot_dropped_by_rule(),
                dead_letters: dlq.count(),
                dead_letter_path: cfg.dead_letter.path.clone(),
                elapsed: started.elapsed(),
                shutdown: Some(shutdown),
            });
        }
    };
    let sinks = pipeline.shutdown().await;
    Ok(RunReport {
        source,
        sinks,
        by_key: stats.snapshot_by_key(),
        unrouted: stats.unrouted.load(std::sync::atomic::Ordering::Relaxed),
        dropped_by_rule: stats.snapshot_dropped_by_rule(),
        dead_letters: dlq.count(),
        dead_letter_path: cfg.dead_letter.path.clone(),
        elapsed: started.elapsed(),
        shutdown: None,
    })
}

pub fn print_report(r: &RunReport) {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let mb = r.source.decompressed_bytes as f64 / 1e6;
    eprintln!(
        "files read: {} ({} failed, {} objects delivered, {} not delivered)",
        r.source.files_read,
        r.source.files_failed,
        r.source.objects_delivered,
        r.source.objects_undelivered
    );
    for (reason, n) in &r.source.files_skipped {
        eprintln!("files skipped: {n} ({reason})");
    }
    eprintln!(
        "records: {}  uncompressed: {:.1} MB  compressed: {:.1} MB  time: {:.2} s  throughput: {:.1} MB/s, {:.0} records/s",
        r.source.records,
        mb,
        r.source.compressed_bytes as f64 / 1e6,
        secs,
        mb / secs,
        r.source.records as f64 / secs
    );
    for s in &r.sinks {
        eprintln!(
            "sink {}: {} records, {:.1} MB written, {} dead-lettered, {} failed deliveries",
            s.name,
            s.records,
            s.bytes as f64 / 1e6,
            s.dead_lettered,
            s.failed_deliveries
        );
        for e in &s.errors {
            eprintln!("  error: {e}");
        }
    }
    if r.unrouted > 0 {
        eprintln!(
            "records matched by no sink filter (dropped by routing): {}",
            r.unrouted
        );
    }
    for (rule, n) in &r.dropped_by_rule {
        eprintln!("records dropped by rule {rule}: {n}");
    }
    if !r.by_key.is_empty() {
        eprintln!("events by account / region / category:");
        for ((a, g, c), n) in &r.by_key {
            eprintln!("  {a:<14} {g:<16} {c:<12} {n:>10}");
        }
    }
    for f in &r.source.failures {
        eprintln!("error: {f}");
    }
    if r.dead_letters > 0 {
        eprintln!(
            "dead letters: {} (written to {})",
            r.dead_letters,
            r.dead_letter_path.display()
        );
    }
    crate::rules::print_detection_summary();
    if let Some(s) = &r.shutdown {
        if s.clean {
            eprintln!(
                "shutdown: clean in {:.1} s (every message in flight settled, sinks flushed)",
                s.took.as_secs_f64()
            );
        } else {
            eprintln!(
                "shutdown: ran out of grace after {:.1} s: {}",
                s.took.as_secs_f64(),
                s.problems.join("; ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(failed: u64, undelivered: u64, sink_failures: u64) -> RunReport {
        RunReport {
            source: SourceReport {
                files_read: 10,
                files_failed: failed,
                objects_undelivered: undelivered,
                ..SourceReport::default()
            },
            sinks: vec![SinkReport {
                name: "s".into(),
                failed_deliveries: sink_failures,
                ..SinkReport::default()
            }],
            by_key: Default::default(),
            unrouted: 0,
            dropped_by_rule: Default::default(),
            dead_letters: failed,
            dead_letter_path: "dl.ndjson".into(),
            elapsed: Duration::from_secs(1),
            shutdown: None,
        }
    }

    #[test]
    fn a_directory_run_is_clean_only_when_everything_was_delivered() {
        assert!(report(0, 0, 0).is_clean());
        assert!(!report(1, 0, 0).is_clean(), "a failed file");
        assert!(!report(0, 1, 0).is_clean(), "an undelivered object");
        assert!(!report(0, 0, 1).is_clean(), "a failed delivery");
    }

    #[test]
    fn the_worker_is_judged_by_its_shutdown_alone() {
        let stopped = |clean: bool| Shutdown {
            clean,
            problems: if clean {
                vec![]
            } else {
                vec!["the sinks did not flush within the grace period"]
            },
            took: Duration::from_secs(2),
        };
        // Objects that failed earlier (dead-lettered, retried) do not fail a clean stop.
        let mut r = report(3, 2, 1);
        r.shutdown = Some(stopped(true));
        assert!(r.is_clean());
        r.shutdown = Some(stopped(false));
        assert!(!r.is_clean());
        let mut r = report(0, 0, 0);
        r.shutdown = Some(stopped(false));
        assert!(
            !r.is_clean(),
            "a shutdown out of grace, even with nothing failed"
        );
    }
}
