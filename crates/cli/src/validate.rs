//! `trailhose validate`: CloudTrail log file integrity validation (digest chains, RSA
//! signatures, SHA-256 of every log file) of a local S3-layout directory or `s3://bucket/prefix`,
//! plus the validation steps of `trailhose demo`.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use trailhose_core::timefmt::parse_rfc3339_ms;
use trailhose_validate::s3::S3Settings;
use trailhose_validate::walk::parse_key_stamp;
use trailhose_validate::{KeyRing, LocalStore, Options, Report, S3Store};

#[derive(clap::Args, Debug, Clone)]
pub struct ValidateArgs {
    /// A local directory in S3 key layout (signatures in `<digest>.sig` sidecars), or
    /// `s3://bucket[/prefix]`.
    pub source: String,
    /// Public keys: a directory of DER/PEM files, a key file, or the JSON output of
    /// `aws cloudtrail list-public-keys` (repeatable). `generate --digests` writes its key to
    /// `public-keys/` next to the signing key.
    #[arg(long = "public-keys", value_name = "PATH")]
    pub public_keys: Vec<PathBuf>,
    /// Validate digests delivered from this time (RFC 3339 or YYYY-MM-DD; default: all).
    #[arg(long)]
    pub start_time: Option<String>,
    /// … up to this time (default: now). Digests up to one hour later are read.
    #[arg(long)]
    pub end_time: Option<String>,
    /// Account(s) to validate (default: every account found; with --trail-arn, its account).
    #[arg(long = "account-id", value_name = "ID")]
    pub account_id: Vec<String>,
    /// Source Region(s) to validate (default: every Region found).
    #[arg(long, value_name = "REGION")]
    pub region: Vec<String>,
    /// Organization id of an organization trail's layout (default: any).
    #[arg(long)]
    pub org_id: Option<String>,
    /// The trail (`arn:aws:cloudtrail:HOME:ACCOUNT:trail/NAME`): sets the trail name, home
    /// Region and, unless --account-id is given, the account, as aws-cli does.
    #[arg(long, conflicts_with = "trail_name")]
    pub trail_arn: Option<String>,
    /// Only digests of this trail name (default: every trail found).
    #[arg(long)]
    pub trail_name: Option<String>,
    /// Local source: the bucket the directory is a copy of (default: taken from the digests).
    #[arg(long)]
    pub bucket: Option<String>,
    /// Local source: key prefix before `AWSLogs/` (an S3 source takes it from the URL).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Also check each link's previous hash, previous signature and time continuity, the
    /// algorithms, digests no chain reaches, and log files no digest lists.
    #[arg(long)]
    pub strict: bool,
    /// Report chain gaps (logging or validation was off) without failing.
    #[arg(long)]
    pub allow_gaps: bool,
    /// Skip backfill digests.
    #[arg(long)]
    pub no_backfill: bool,
    /// Log files hashed at once (default: cores for a directory, 16 for S3).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// List every valid digest and log file too.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// S3 endpoint override (emulators); AWS_ENDPOINT_URL works too.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// CloudTrail endpoint override for `ListPublicKeys` (used when an s3:// source is given
    /// without --public-keys; the keys of the trail's home Region, every --region and
    /// --aws-region are fetched).
    #[arg(long)]
    pub cloudtrail_endpoint_url: Option<String>,
    /// Region of the first S3 request (the bucket's own Region is then looked up).
    #[arg(long)]
    pub aws_region: Option<String>,
}

/// RFC 3339, `YYYY-MM-DD`, or a key stamp (`YYYYMMDDTHHMMSSZ`).
pub fn parse_time(s: &str) -> Result<i64> {
    let t = s.trim();
    parse_rfc3339_ms(t)
        .or_else(|| parse_rfc3339_ms(&format!("{t}T00:00:00Z")))
        .or_else(|| parse_key_stamp(t))
        .with_context(|| {
            format!("{s:?} is not a time (use e.g. 2026-11-01T00:00:00Z or 2026-11-01)")
        })
}

/// `(home region, account, trail name)` of a trail ARN, checked like aws-cli
/// (`arn:.+:cloudtrail:.+:\d{12}:trail/.+`).
pub fn parse_trail_arn(arn: &str) -> Result<(String, String, String)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "cloudtrail"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5]
            .strip_prefix("trail/")
            .is_some_and(|n| !n.is_empty());
    if !ok {
        bail!("Invalid trail ARN provided: {arn}");
    }
    let name = arn.rsplit('/').next().unwrap_or_default();
    Ok((parts[3].to_owned(), parts[4].to_owned(), name.to_owned()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Regions whose public keys validate the digests asked for: the trail's home Region, every
/// `--region`, and the client Region; us-east-1 when nothing names one.
fn key_regions(args: &ValidateArgs, home: Option<&str>) -> Vec<String> {
    let mut regions: Vec<String> = home.into_iter().map(str::to_owned).collect();
    regions.extend(args.region.iter().cloned());
    regions.extend(args.aws_region.iter().cloned());
    if regions.is_empty() {
        regions.push("us-east-1".into());
    }
    regions.sort();
    regions.dedup();
    regions
}

/// `ListPublicKeys` in each Region for the validated time range.
async fn fetch_public_keys(
    args: &ValidateArgs,
    opts: &Options,
    regions: &[String],
    ring: &mut KeyRing,
) -> Result<()> {
    for region in regions {
        let sdk = trailhose_aws::load_sdk_config(&trailhose_aws::AwsSettings {
            region: Some(region.clone()),
            endpoint_url: args.cloudtrail_endpoint_url.clone(),
        })
        .await;
        let client = aws_sdk_cloudtrail::Client::new(&sdk);
        let n = trailhose_validate::listkeys::add_listed_keys(
            &client,
            region,
            opts.start_ms,
            Some(opts.end_ms),
            ring,
        )
        .await
        .map_err(anyhow::Error::msg)?;
        tracing::info!(region = %region, keys = n, "public keys from ListPublicKeys");
    }
    if ring.is_empty() {
        bail!(
            "ListPublicKeys returned no keys in {} for the time range; pass --public-keys or \
             --region for the Regions of the digests",
            regions.join(", ")
        );
    }
    Ok(())
}

/// Builds the options and runs; returns the report.
pub fn validate(args: &ValidateArgs) -> Result<Report> {
    let s3 = S3Store::parse_url(&args.source);
    if args.source.starts_with("s3://") && s3.is_none() {
        bail!("{}: expected s3://bucket[/prefix]", args.source);
    }
    let mut opts = Options {
        start_ms: args.start_time.as_deref().map(parse_time).transpose()?,
        end_ms: match &args.end_time {
            Some(t) => parse_time(t)?,
            None => now_ms(),
        },
        account_ids: args.account_id.clone(),
        regions: args.region.clone(),
        org_id: args.org_id.clone(),
        trail_name: args.trail_name.clone(),
        strict: args.strict,
        allow_gaps: args.allow_gaps,
        backfill: !args.no_backfill,
        verbose: args.verbose,
        ..Options::default()
    };
    if let Some(arn) = &args.trail_arn {
        let (home, account, name) = parse_trail_arn(arn)?;
        opts.home_region = Some(home);
        opts.trail_name = Some(name);
        if opts.account_ids.is_empty() {
            opts.account_ids = vec![account];
        }
    }

    let mut ring = KeyRing::new();
    let key_paths = &args.public_keys;
    if key_paths.is_empty() && s3.is_none() {
        bail!(
            "no public keys: pass --public-keys (a directory of DER/PEM keys named by fingerprint, \
             or the output of `aws cloudtrail list-public-keys --region HOME_REGION > keys.json`); \
             a local directory has no AWS account to ask (an s3:// source calls ListPublicKeys)"
        );
    }
    for p in key_paths {
        ring.load(p)
            .with_context(|| format!("loading public keys from {}", p.display()))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if key_paths.is_empty() {
        let regions = key_regions(args, opts.home_region.as_deref());
        rt.block_on(fetch_public_keys(args, &opts, &regions, &mut ring))?;
    }
    let ring = Arc::new(ring);
    let progress = trailhose_ops::progress::Progress::new("validate", None, true);
    let p = progress.clone();
    opts.on_hashed = trailhose_validate::walk::OnHashed(Some(Arc::new(move |bytes| p.inc(bytes))));

    let report = match s3 {
        Some((bucket, prefix)) => {
            opts.prefix = prefix.clone();
            opts.jobs = args.jobs.unwrap_or(16);
            let settings = S3Settings {
                region: args.aws_region.clone(),
                endpoint_url: args.endpoint_url.clone(),
            };
            rt.block_on(async {
                let store = Arc::new(S3Store::connect(&settings, bucket, prefix).await);
                trailhose_validate::validate(store, ring, &opts).await
            })?
        }
        None => {
            let root = PathBuf::from(&args.source);
            if !root.is_dir() {
                bail!(
                    "{}: not a directory (or use s3://bucket/prefix)",
                    root.display()
                );
            }
            opts.prefix = args.prefix.clone().unwrap_or_default();
            opts.jobs = args.jobs.unwrap_or_else(crate::default_jobs);
            let store = Arc::new(LocalStore::new(root, args.bucket.clone()));
            rt.block_on(trailhose_validate::validate(store, ring, &opts))?
        }
    };
    progress.finish();
    Ok(report)
}

pub fn run(args: &ValidateArgs) -> Result<ExitCode> {
    let report = validate(args)?;
    let text = if args.format == "json" {
        report.to_json() + "\n"
    } else {
        report.to_text()
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e).context("writing stdout"),
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .context("gunzip")?;
    Ok(out)
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    e.write_all(bytes)?;
    Ok(e.finish()?)
}

impl ValidateArgs {
    /// Defaults for a local directory and a key path (the demo and the benchmark).
    pub fn local(sample: &Path, keys: &Path) -> ValidateArgs {
        ValidateArgs {
            source: sample.display().to_string(),
            public_keys: vec![keys.to_path_buf()],
            start_time: None,
            end_time: None,
            account_id: Vec::new(),
            region: Vec::new(),
            org_id: None,
            trail_arn: None,
            trail_name: None,
            bucket: None,
            prefix: None,
            strict: false,
            allow_gaps: false,
            no_backfill: false,
            jobs: None,
            format: "text".into(),
            verbose: false,
            endpoint_url: None,
            cloudtrail_endpoint_url: None,
            aws_region: None,
        }
    }
}

/// The demo's validation steps: sign a digest chain for the sample, validate it, change one
/// byte of one log file, validate again and show that it is caught. The sample is restored.
pub fn demo_steps(root: &Path, sample: &Path, generated: &trailhose_gen::GenSummary) -> Result<()> {
    let key_path = root.join("signing-key.pem");
    let keys_dir = root.join("public-keys");
    println!(
        "4. signing an hourly digest chain for the sample, as CloudTrail log file validation does"
    );
    let w = crate::generate_digests::write_digests(
        sample,
        generated,
        &crate::generate_digests::DigestOptions {
            signing_key: key_path.clone(),
            public_key_dir: Some(keys_dir.clone()),
            ..Default::default()
        },
    )?;
    println!(
        "   {} digests in {} chains, signed with {}; public key {}",
        w.digests,
        w.chains,
        key_path.display(),
        w.public_key.display()
    );

    println!(
        "5. trailhose validate {} --public-keys {}",
        sample.display(),
        keys_dir.display()
    );
    let args = ValidateArgs::local(sample, &keys_dir);
    let r = validate(&args)?;
    println!(
        "   {}/{} digests valid, {}/{} log files valid ({:.1} MB uncompressed hashed, {:.0} MB/s)",
        r.digests.valid,
        r.digests.total(),
        r.log_files.valid,
        r.log_files.total(),
        r.uncompressed_bytes_hashed as f64 / 1e6,
        r.mb_per_second()
    );
    if !r.ok {
        bail!(
            "the freshly signed sample did not validate:\n{}",
            r.to_text()
        );
    }

    let Some(victim) = generated.files.get(generated.files.len() / 2) else {
        bail!("the generator produced no files");
    };
    let path = sample.join(&victim.path);
    let original = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut raw = gunzip(&original)?;
    let i = raw.len() / 2;
    raw[i] = if raw[i] == b'x' { b'y' } else { b'x' };
    std::fs::write(&path, gzip(&raw)?).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "6. changing one byte of {} and validating again",
        victim.key
    );
    let tampered = validate(&args);
    std::fs::write(&path, &original).with_context(|| format!("restoring {}", path.display()))?;
    let r = tampered?;
    let caught: Vec<_> = r.problems.iter().filter(|p| p.fails).collect();
    match caught.as_slice() {
        [p] if p.key == victim.key => {
            println!("   caught: {} {} ({})", p.kind.as_str(), p.key, p.reason)
        }
        _ => bail!(
            "expected exactly the tampered file to be flagged:\n{}",
            r.to_text()
        ),
    }
    println!(
        "   ok: the intact chain validates and a one-byte change is named; the file is restored"
    );
    Ok(())
}
