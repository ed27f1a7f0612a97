//! The `trailhose` command line.

mod backfill;
mod bench;
mod cat;
mod demo;
mod generate_digests;
#[cfg(feature = "query")]
mod query;
mod replay;
mod rules;
mod run;
mod validate;
mod validate_bench;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use trailhose_config::Config;
use trailhose_core::Limits;

#[derive(Parser)]
#[command(
    name = "trailhose",
    version,
    about = "Ship CloudTrail logs from S3 to CloudWatch Logs and SIEMs, losslessly and fast"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Unroll local CloudTrail files or directories to NDJSON on stdout (one record per line,
    /// byte-identical to the source record).
    Cat {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Files parsed in parallel (default: one per core).
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Largest record accepted, in bytes.
        #[arg(long, default_value_t = Limits::default().max_record_bytes)]
        max_record_bytes: usize,
    },
    /// Generate a deterministic synthetic org-trail corpus in S3 key layout.
    Generate {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        #[arg(long, default_value_t = 3)]
        accounts: u32,
        #[arg(long, default_value_t = 2)]
        regions: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 1000)]
        events_per_file: u32,
        /// gzip level 0–9 (lower is faster to generate).
        #[arg(long, default_value_t = 6)]
        gzip_level: u32,
        /// Inject known detections, comma-separated: `violations` (one record per rule of the
        /// built-in pack), `anomalies` (an API call burst and an error-rate spike).
        #[arg(long, value_delimiter = ',', value_parser = ["violations", "anomalies"])]
        inject: Vec<String>,
        /// Write what was injected (event ids, expected rules, expected Insights) as JSON here.
        #[arg(long, requires = "inject")]
        inject_manifest: Option<PathBuf>,
        /// Also write a signed hourly digest chain per account/region (`.sig` sidecars hold
        /// the signatures) and the public key, for `trailhose validate`.
        #[arg(long, requires = "signing_key")]
        digests: bool,
        /// RSA private key (PEM) that signs the digests; created (2048-bit) when missing.
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// Where the public key `<fingerprint>.der` goes (default: `public-keys/` next to the
        /// signing key).
        #[arg(long)]
        public_key_dir: Option<PathBuf>,
        /// Bucket name the digests record.
        #[arg(long, default_value = "trailhose-sample")]
        digest_bucket: String,
        /// Trail name in the digest keys.
        #[arg(long, default_value = "org-trail")]
        trail_name: String,
    },
    /// Validate CloudTrail log file integrity (digest chains, signatures, log file hashes) of a
    /// local S3-layout directory or s3://bucket/prefix; exit 0 only when all is valid.
    Validate(validate::ValidateArgs),
    /// Measure `validate` on a generated day of logs against `zcat | sha256sum` of the same
    /// files, in the same run.
    BenchValidate {
        /// Where to generate (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Events in the day (~1.5 KB each uncompressed).
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// Repetitions of each measurement; the best is reported.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// SQL over an archive (table `cloudtrail_logs`, Athena's CloudTrail columns), with
    /// Apache DataFusion.
    #[cfg(feature = "query")]
    Query(query::QueryArgs),
    /// `aws cloudtrail lookup-events` over an archive: same attributes and answer shape, no
    /// 90-day window, data events included.
    #[cfg(feature = "query")]
    Lookup(query::LookupArgs),
    /// Run the pipeline a config file describes.
    Run {
        #[arg(long, short = 'c', default_value = "config/local.toml")]
        config: PathBuf,
    },
    /// Generate a sample org trail, ship it through the local pipeline and summarise.
    Demo {
        /// Where to put the sample and the output (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 20_000)]
        events: u64,
    },
    /// Validate a config file; prints every problem with its location.
    CheckConfig { file: PathBuf },
    /// Ship history older than the queue: list the trail's key layout by date (accounts ×
    /// regions × days, in parallel) and run the objects through the sinks of a config.
    Backfill {
        /// s3://bucket[/prefix][/AWSLogs/[o-id/]]
        target: String,
        /// First day, YYYY-MM-DD (UTC).
        #[arg(long)]
        start: String,
        /// Last day, YYYY-MM-DD (UTC), inclusive.
        #[arg(long)]
        end: String,
        /// Config whose [[sinks]] receive the records (its [source] is not used).
        #[arg(long, short = 'c', default_value = "config/local.toml")]
        config: PathBuf,
        /// Resumable checkpoint: objects already delivered are skipped.
        #[arg(long, default_value = "trailhose-backfill.checkpoint")]
        checkpoint: PathBuf,
        #[arg(long)]
        region: Option<String>,
        /// Endpoint override (e.g. an S3-compatible store or an emulator).
        #[arg(long)]
        endpoint_url: Option<String>,
        /// Only these accounts (repeatable).
        #[arg(long = "account")]
        accounts: Vec<String>,
        /// Only these regions (repeatable).
        #[arg(long = "only-region")]
        regions: Vec<String>,
        #[arg(long, default_value_t = 8)]
        objects_in_flight: usize,
    },
    /// Ship dead-lettered records again: every NDJSON(.gz) object under an s3:// prefix (or a
    /// local dead-letter file) goes, record by record, to the sink its line names (or
    /// --sink) of a config; prints counts; exit 1 unless everything was acknowledged.
    Replay {
        /// s3://bucket/prefix/ of dead-letter objects, or a local dead-letter file.
        target: String,
        /// Config whose [[sinks]] receive the records (its [source] is not used).
        #[arg(long, short = 'c', default_value = "config/local.toml")]
        config: PathBuf,
        /// Send every record to this sink instead of the one its line names.
        #[arg(long)]
        sink: Option<String>,
        /// Delete each object (file) once all its records were acknowledged (delivered or
        /// dead-lettered again); objects with anything else in them are kept.
        #[arg(long)]
        delete: bool,
        /// Region of the bucket (default: `[dead_letter] region`, else the SDK's chain).
        #[arg(long)]
        region: Option<String>,
        /// Endpoint override (an S3-compatible store or an emulator).
        #[arg(long)]
        endpoint_url: Option<String>,
    },
    /// Detection rules: test a filter pattern against local files, list the rule pack.
    Rules {
        #[command(subcommand)]
        cmd: rules::RulesCommand,
    },
    /// Measure end-to-end throughput against `zcat` of the same files, in the same run.
    Bench {
        /// An existing corpus (default: generate one in a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Events to generate when no --dir is given (~1.5 KB each uncompressed).
        #[arg(long, default_value_t = 300_000)]
        events: u64,
        /// Repetitions of each measurement; the best is reported.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
}

type OtelLayer = tracing_opentelemetry::OpenTelemetryLayer<
    tracing_subscriber::Registry,
    trailhose_ops::otel::Tracer,
>;

/// Filled in once a config with an OTLP endpoint is read: logging starts before the config.
static OTEL_LAYER: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<Option<OtelLayer>, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

/// Sends this process's spans (per SQS message and object) to the OTLP tracer.
pub fn install_tracer(tracer: trailhose_ops::otel::Tracer) {
    if let Some(h) = OTEL_LAYER.get() {
        let layer = tracing_opentelemetry::layer().with_tracer(tracer);
        if let Err(e) = h.modify(|l| *l = Some(layer)) {
            tracing::warn!(error = %e, "cannot install the OpenTelemetry tracing layer");
        }
    }
}

type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Applies `[ops] log_level` once the config is read (TRAILHOSE_LOG, when set, wins).
static SET_LOG_LEVEL: std::sync::OnceLock<SetLogLevel> = std::sync::OnceLock::new();

fn apply_config_log_level(cfg: &Config) -> Result<()> {
    if std::env::var_os("TRAILHOSE_LOG").is_some() || cfg.ops.log_level.is_empty() {
        return Ok(());
    }
    if let Some(set) = SET_LOG_LEVEL.get() {
        set(&cfg.ops.log_level).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

fn init_logging(format: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAILHOSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let (otel, handle) = tracing_subscriber::reload::Layer::new(None::<OtelLayer>);
    let _ = OTEL_LAYER.set(handle);
    // Traces carry our own spans only, whatever the log level.
    let otel = otel.with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target("trailhose_worker", tracing::Level::INFO)
            .with_target("trailhose", tracing::Level::INFO),
    );
    let (filter, filter_handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = SET_LOG_LEVEL.set(Box::new(move |level: &str| {
        let f = tracing_subscriber::EnvFilter::try_new(level)
            .map_err(|e| format!("log level {level:?}: {e}"))?;
        filter_handle.reload(f).map_err(|e| e.to_string())
    }));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format == "json" {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    tracing_subscriber::registry().with(otel).with(fmt).init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("trailhose: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Cat {
            paths,
            jobs,
            max_record_bytes,
        } => {
            let limits = Limits {
                max_record_bytes,
                ..Limits::default()
            };
            let (files, _digests) = cat::expand(&paths)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            let total: u64 = files
                .iter()
                .filter_map(|f| std::fs::metadata(f).ok())
                .map(|m| m.len())
                .sum();
            let progress = trailhose_ops::progress::Progress::new("cat", Some(total), true);
            let result = cat::cat(
                &files,
                &limits,
                jobs.unwrap_or_else(default_jobs),
                &mut out,
                Some(&progress),
            );
            progress.finish();
            let report = match result {
                Ok(r) => r,
                // A closed pipe (`| head`) is the reader's choice, not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS)
                }
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
        Command::Generate {
            out,
            events,
            accounts,
            regions,
            seed,
            events_per_file,
            gzip_level,
            inject,
            inject_manifest,
            digests,
            signing_key,
            public_key_dir,
            digest_bucket,
            trail_name,
        } => {
            let opts = trailhose_gen::GenOptions {
                events,
                accounts,
                regions,
                seed,
                events_per_file,
                gzip_level,
                inject: rules::inject_options(&inject),
                ..Default::default()
            };
            let s = trailhose_gen::generate(&out, &opts)
                .with_context(|| format!("generating into {}", out.display()))?;
            println!(
                "generated {} records in {} files under {} ({:.1} MB uncompressed, {:.1} MB compressed)",
                s.records,
                s.files.len(),
                out.display(),
                s.uncompressed_bytes as f64 / 1e6,
                s.compressed_bytes as f64 / 1e6
            );
            rules::report_injected(&s, inject_manifest.as_deref())?;
            if let (true, Some(signing_key)) = (digests, signing_key) {
                let o = generate_digests::DigestOptions {
                    signing_key,
                    public_key_dir,
                    bucket: digest_bucket,
                    trail_name,
                };
                let w = generate_digests::write_digests(&out, &s, &o)?;
                generate_digests::print(&w, &o);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(args) => validate::run(&args),
        Command::BenchValidate { dir, events, runs } => {
            validate_bench::bench_validate(dir, events, runs)
        }
        Command::Run { config } => {
            let cfg = Config::load(&config)?;
            apply_config_log_level(&cfg)?;
            let report = runtime()?.block_on(run::run_config(&cfg))?;
            run::print_report(&report);
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Demo { dir, events } => demo::demo(dir, events),
        #[cfg(feature = "query")]
        Command::Query(args) => query::query(&args),
        #[cfg(feature = "query")]
        Command::Lookup(args) => query::lookup(&args),
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(mut cfg) => {
                let sinks: Vec<&str> = cfg.sinks.iter().map(|s| s.name()).collect();
                println!(
                    "{}: ok ({} sinks: {})",
                    file.display(),
                    sinks.len(),
                    sinks.join(", "),
                );
                // The worker applies these at start, so the bound is the one `run` would have.
                if let trailhose_config::SourceConfig::Sqs(s) = &mut cfg.source {
                    match s.apply_env(|k| std::env::var(k).ok()) {
                        Ok(applied) if !applied.is_empty() => {
                            println!("  with environment overrides: {}", applied.join(", "))
                        }
                        Ok(_) => {}
                        Err(e) => {
                            let _ = writeln!(std::io::stderr(), "{}: {e}", file.display());
                            return Ok(ExitCode::from(1));
                        }
                    }
                    let problems = cfg.problems();
                    if !problems.is_empty() {
                        let _ = writeln!(
                            std::io::stderr(),
                            "{}: with the environment overrides: {}",
                            file.display(),
                            problems.join("; ")
                        );
                        return Ok(ExitCode::from(1));
                    }
                }
                print!("{}", cfg.memory_bound(default_jobs()).render());
                for w in cfg.warnings() {
                    let _ = writeln!(std::io::stderr(), "{}: warning: {w}", file.display());
                }
                // Filter patterns compile now, not when `run` starts.
                for s in &cfg.sinks {
                    if let Err(e) = run::compile_filter(s.name(), s.filter()) {
                        let _ = writeln!(std::io::stderr(), "{}: {e:#}", file.display());
                        return Ok(ExitCode::from(1));
                    }
                }
                if let Some(d) = &cfg.detection {
                    match rules::check(d) {
                        Ok(s) => println!("  {s}"),
                        Err(e) => {
                            let _ = writeln!(std::io::stderr(), "{}: {e:#}", file.display());
                            return Ok(ExitCode::from(1));
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "{e}");
                Ok(ExitCode::from(1))
            }
        },
        Command::Replay {
            target,
            config,
            sink,
            delete,
            region,
            endpoint_url,
        } => replay::replay(replay::Args {
            target,
            config,
            sink,
            delete,
            region,
            endpoint_url,
        }),
        Command::Rules { cmd } => rules::run(cmd),
        Command::Bench { dir, events, runs } => bench::bench(dir, events, runs),
        Command::Backfill {
            target,
            start,
            end,
            config,
            checkpoint,
            region,
            endpoint_url,
            accounts,
            regions,
            objects_in_flight,
        } => backfill::backfill(backfill::Args {
            target,
            start,
            end,
            config,
            checkpoint,
            region,
            endpoint_url,
            accounts,
            regions,
            objects_in_flight,
        }),
    }
}
