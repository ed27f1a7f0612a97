//! `trailhose backfill`: history older than the queue, through the sinks of a config.

use crate::run::build_sinks;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use trailhose_backfill::checkpoint::Checkpoint;
use trailhose_backfill::plan::{days, parse_target};
use trailhose_backfill::{run_backfill, BackfillOptions};
use trailhose_config::Config;
use trailhose_pipeline::emit::ChunkLimits;
use trailhose_pipeline::Pipeline;

#[derive(clap::Args)]
pub struct Args {
    /// s3://bucket[/prefix][/AWSLogs/[o-id/]]
    pub target: String,
    /// First day, YYYY-MM-DD (UTC).
    #[arg(long)]
    pub start: String,
    /// Last day, YYYY-MM-DD (UTC), inclusive.
    #[arg(long)]
    pub end: String,
    /// Config whose [[sinks]] receive the records (its [source] is not used).
    #[arg(long, short = 'c', default_value = "config/local.toml")]
    pub config: PathBuf,
    /// Resumable checkpoint: objects already delivered are skipped.
    #[arg(long, default_value = "trailhose-backfill.checkpoint")]
    pub checkpoint: PathBuf,
    #[arg(long)]
    pub region: Option<String>,
    /// Endpoint override (e.g. an S3-compatible store or an emulator).
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Only these accounts (repeatable).
    #[arg(long = "account")]
    pub accounts: Vec<String>,
    /// Only these regions (repeatable).
    #[arg(long = "only-region")]
    pub regions: Vec<String>,
    #[arg(long, default_value_t = 8)]
    pub objects_in_flight: usize,
}

pub fn backfill(a: Args) -> Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    let target = parse_target(&a.target).map_err(anyhow::Error::msg)?;
    let day_list = days(&a.start, &a.end).map_err(anyhow::Error::msg)?;
    let checkpoint = Arc::new(
        Checkpoint::open(&a.checkpoint)
            .with_context(|| format!("checkpoint {}", a.checkpoint.display()))?,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let s3 = trailhose_aws::s3_client(&trailhose_aws::AwsSettings {
            region: a.region.clone(),
            endpoint_url: a.endpoint_url.clone(),
        })
        .await;
        let mut pipeline = Pipeline::start(build_sinks(&cfg).await?, cfg.pipeline.channel_capacity);
        let dlq = crate::run::source_dead_letters(
            &cfg,
            &trailhose_aws::AwsSettings {
                region: a.region.clone(),
                endpoint_url: a.endpoint_url.clone(),
            },
        )
        .await?;
        let progress = trailhose_ops::progress::Progress::new("backfill", None, true);
        let already = checkpoint.len();
        let opts = BackfillOptions {
            target,
            days: day_list,
            accounts: a.accounts,
            regions: a.regions,
            list_concurrency: 16,
            objects_in_flight: a.objects_in_flight,
            limits: cfg.limits.to_limits(),
            chunking: ChunkLimits {
                max_records: cfg.pipeline.chunk_records,
                max_bytes: cfg.pipeline.chunk_bytes,
            },
        };
        let report = run_backfill(s3, opts, checkpoint, pipeline.take_input(), dlq, Some(progress.clone()))
            .await
            .map_err(anyhow::Error::msg)?;
        progress.finish();
        let sinks = pipeline.shutdown().await;
        eprintln!(
            "backfill: {} accounts, {} day prefixes listed, {} objects listed; {} delivered, {} skipped (checkpoint had {already}), {} dead-lettered, {} failed; {} records, {:.1} MB compressed",
            report.accounts,
            report.prefixes_listed,
            report.objects_listed,
            report.delivered,
            report.skipped_checkpoint,
            report.dead_lettered,
            report.failed,
            report.records,
            report.compressed_bytes as f64 / 1e6
        );
        for s in &sinks {
            eprintln!("sink {}: {} records, {} dead-lettered, {} failed deliveries", s.name, s.records, s.dead_lettered, s.failed_deliveries);
        }
        for f in &report.failures {
            eprintln!("error: {f}");
        }
        Ok(if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}
