//! The `trailhose` command line.

mod backfill;
mod bench;
mod cat;
mod check;
mod demo;
mod generate;
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
use std::path::PathBuf;
use std::process::ExitCode;
use trailhose_config::Config;

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
    Cat(cat::CatArgs),
    /// Generate a deterministic synthetic org-trail corpus in S3 key layout.
    Generate(generate::GenerateArgs),
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
    CheckConfig(check::CheckArgs),
    /// Ship history older than the queue: list the trail's key layout by date (accounts ×
    /// regions × days, in parallel) and run the objects through the sinks of a config.
    Backfill(backfill::Args),
    /// Ship dead-lettered records again: every NDJSON(.gz) object under an s3:// prefix (or a
    /// local dead-letter file) goes, record by record, to the sink its line names (or
    /// --sink) of a config; prints counts; exit 1 unless everything was acknowledged.
    Replay(replay::Args),
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

pub(crate) fn default_jobs() -> usize {
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
        Command::Cat(args) => cat::run(&args),
        Command::Generate(args) => generate::run(&args),
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
        Command::CheckConfig(args) => check::run(&args),
        Command::Replay(args) => replay::replay(args),
        Command::Rules { cmd } => rules::run(cmd),
        Command::Bench { dir, events, runs } => bench::bench(dir, events, runs),
        Command::Backfill(args) => backfill::backfill(args),
    }
}
