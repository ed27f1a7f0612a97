//! `trailhose generate`: a deterministic synthetic org trail in S3 key layout, optionally
//! with injected detections and a signed digest chain.

use crate::{generate_digests, rules};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct GenerateArgs {
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    pub events: u64,
    #[arg(long, default_value_t = 3)]
    pub accounts: u32,
    #[arg(long, default_value_t = 2)]
    pub regions: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 1000)]
    pub events_per_file: u32,
    /// gzip level 0–9 (lower is faster to generate).
    #[arg(long, default_value_t = 6)]
    pub gzip_level: u32,
    /// Inject known detections, comma-separated: `violations` (one record per rule of the
    /// built-in pack), `anomalies` (an API call burst and an error-rate spike).
    #[arg(long, value_delimiter = ',', value_parser = ["violations", "anomalies"])]
    pub inject: Vec<String>,
    /// Write what was injected (event ids, expected rules, expected Insights) as JSON here.
    #[arg(long, requires = "inject")]
    pub inject_manifest: Option<PathBuf>,
    /// Also write a signed hourly digest chain per account/region (`.sig` sidecars hold
    /// the signatures) and the public key, for `trailhose validate`.
    #[arg(long, requires = "signing_key")]
    pub digests: bool,
    /// RSA private key (PEM) that signs the digests; created (2048-bit) when missing.
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// Where the public key `<fingerprint>.der` goes (default: `public-keys/` next to the
    /// signing key).
    #[arg(long)]
    pub public_key_dir: Option<PathBuf>,
    /// Bucket name the digests record.
    #[arg(long, default_value = "trailhose-sample")]
    pub digest_bucket: String,
    /// Trail name in the digest keys.
    #[arg(long, default_value = "org-trail")]
    pub trail_name: String,
}

pub fn run(args: &GenerateArgs) -> Result<ExitCode> {
    let out = &args.out;
    let opts = trailhose_gen::GenOptions {
        events: args.events,
        accounts: args.accounts,
        regions: args.regions,
        seed: args.seed,
        events_per_file: args.events_per_file,
        gzip_level: args.gzip_level,
        inject: rules::inject_options(&args.inject),
        ..Default::default()
    };
    let s = trailhose_gen::generate(out, &opts)
        .with_context(|| format!("generating into {}", out.display()))?;
    println!(
        "generated {} records in {} files under {} ({:.1} MB uncompressed, {:.1} MB compressed)",
        s.records,
        s.files.len(),
        out.display(),
        s.uncompressed_bytes as f64 / 1e6,
        s.compressed_bytes as f64 / 1e6
    );
    rules::report_injected(&s, args.inject_manifest.as_deref())?;
    if let (true, Some(signing_key)) = (args.digests, &args.signing_key) {
        let o = generate_digests::DigestOptions {
            signing_key: signing_key.clone(),
            public_key_dir: args.public_key_dir.clone(),
            bucket: args.digest_bucket.clone(),
            trail_name: args.trail_name.clone(),
        };
        let w = generate_digests::write_digests(out, &s, &o)?;
        generate_digests::print(&w, &o);
    }
    Ok(ExitCode::SUCCESS)
}
