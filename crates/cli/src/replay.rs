//! `trailhose replay`: the command-line wiring of [`trailhose_aws::replay`] — dead-lettered
//! records back through the sinks of a config, each to the sink that refused it (or `--sink`).

use crate::run::build_sinks;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use trailhose_aws::replay::{
    replay as run_replay, summary, BuildFuture, ReplayOptions, ReplaySource,
};
use trailhose_config::Config;
use trailhose_pipeline::emit::ChunkLimits;

#[derive(clap::Args)]
pub struct Args {
    /// s3://bucket/prefix/ of dead-letter objects, or a local dead-letter file.
    pub target: String,
    /// Config whose [[sinks]] receive the records (its [source] is not used).
    #[arg(long, short = 'c', default_value = "config/local.toml")]
    pub config: PathBuf,
    /// Send every record to this sink instead of the one its line names.
    #[arg(long)]
    pub sink: Option<String>,
    /// Delete each object (file) once all its records were acknowledged (delivered or
    /// dead-lettered again); objects with anything else in them are kept.
    #[arg(long)]
    pub delete: bool,
    /// Region of the bucket (default: `[dead_letter] region`, else the SDK's chain).
    #[arg(long)]
    pub region: Option<String>,
    /// Endpoint override (an S3-compatible store or an emulator).
    #[arg(long)]
    pub endpoint_url: Option<String>,
}

pub fn replay(a: Args) -> Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    if let Some(name) = &a.sink {
        if !cfg.sinks.iter().any(|s| s.name() == name) {
            anyhow::bail!("--sink {name}: {} has no such sink", a.config.display());
        }
    }
    let s3 = a.target.starts_with("s3://");
    if !s3 && !std::path::Path::new(&a.target).is_file() {
        anyhow::bail!("{}: not a file (nor an s3://bucket/prefix/)", a.target);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = if s3 {
            Some(
                trailhose_aws::s3_client(&trailhose_aws::AwsSettings {
                    region: a.region.or_else(|| cfg.dead_letter.region.clone()),
                    endpoint_url: a
                        .endpoint_url
                        .or_else(|| cfg.dead_letter.endpoint_url.clone()),
                })
                .await,
            )
        } else {
            None
        };
        let source = ReplaySource::parse(&a.target, client)?;
        let opts = ReplayOptions {
            sink_override: a.sink,
            delete: a.delete,
            chunking: ChunkLimits {
                max_records: cfg.pipeline.chunk_records,
                max_bytes: cfg.pipeline.chunk_bytes,
            },
            channel_capacity: cfg.pipeline.channel_capacity,
            max_line_bytes: cfg.limits.max_record_bytes + (64 << 10),
        };
        // Only the sinks records are replayed to are built, each alone (no detection stage).
        let mut build = |name: &str| -> BuildFuture {
            let mut one = cfg.clone();
            one.sinks.retain(|s| s.name() == name);
            one.detection = None;
            Box::pin(async move {
                if one.sinks.is_empty() {
                    return Ok(None);
                }
                let mut specs = build_sinks(&one).await.map_err(|e| format!("{e:#}"))?;
                Ok(specs.pop())
            })
        };
        let report = run_replay(&source, &mut build, &opts)
            .await
            .with_context(|| format!("replaying {}", a.target))?;
        for line in summary(&source, &report) {
            eprintln!("{line}");
        }
        Ok(if report.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}
