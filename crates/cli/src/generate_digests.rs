//! `trailhose generate --digests --signing-key KEY`: a consistent, signed hourly digest chain
//! per account and Region of the generated corpus, with signature sidecars and the public key,
//! so that `trailhose validate` (and aws-cli's validator) can be exercised locally.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use trailhose_validate::{write_digest_chains, ChainSpec, LogFileSpec, SigningKey};

#[derive(Debug, Clone)]
pub struct DigestOptions {
    /// PEM (PKCS#8 or PKCS#1) private key; generated (2048-bit) and saved when missing.
    pub signing_key: PathBuf,
    /// Where `<fingerprint>.der` goes (default: `public-keys/` next to the signing key, so
    /// that the log tree holds only S3 objects and their signature sidecars).
    pub public_key_dir: Option<PathBuf>,
    pub bucket: String,
    pub trail_name: String,
}

impl Default for DigestOptions {
    fn default() -> Self {
        let spec = ChainSpec::default();
        DigestOptions {
            signing_key: PathBuf::from("signing-key.pem"),
            public_key_dir: None,
            bucket: spec.bucket,
            trail_name: spec.trail_name,
        }
    }
}

pub struct DigestsWritten {
    pub digests: usize,
    pub chains: usize,
    pub public_key: PathBuf,
    pub fingerprint: String,
    pub key_created: bool,
}

pub fn write_digests(
    out: &Path,
    generated: &trailhose_gen::GenSummary,
    opts: &DigestOptions,
) -> Result<DigestsWritten> {
    let (key, key_created) = SigningKey::load_or_generate(&opts.signing_key)
        .with_context(|| format!("signing key {}", opts.signing_key.display()))?;
    let logs: Vec<LogFileSpec> = generated
        .files
        .iter()
        .map(|f| LogFileSpec {
            key: f.key.clone(),
            delivery_ms: f.delivery_time_ms,
        })
        .collect();
    let spec = ChainSpec {
        bucket: opts.bucket.clone(),
        trail_name: opts.trail_name.clone(),
        // The generator's first Region is us-east-1: the organization trail's home Region.
        home_region: generated
            .regions
            .first()
            .cloned()
            .unwrap_or_else(|| "us-east-1".into()),
        jobs: crate::default_jobs(),
        ..ChainSpec::default()
    };
    let w = write_digest_chains(out, &logs, &spec, &key)
        .with_context(|| format!("writing digests under {}", out.display()))?;
    let dir = opts.public_key_dir.clone().unwrap_or_else(|| {
        opts.signing_key
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("public-keys")
    });
    let public_key = key
        .write_public_key(&dir)
        .with_context(|| format!("writing the public key to {}", dir.display()))?;
    Ok(DigestsWritten {
        digests: w.digests.len(),
        chains: w.chains,
        public_key,
        fingerprint: key.fingerprint().to_owned(),
        key_created,
    })
}

/// Prints what [`write_digests`] did, for `generate`.
pub fn print(w: &DigestsWritten, opts: &DigestOptions) {
    println!(
        "signed {} digests in {} chains (bucket {}, trail {}) with {}{}; public key {} (fingerprint {})",
        w.digests,
        w.chains,
        opts.bucket,
        opts.trail_name,
        opts.signing_key.display(),
        if w.key_created { " (new 2048-bit key)" } else { "" },
        w.public_key.display(),
        w.fingerprint
    );
}
