//! Writes consistent, signed, hourly digest chains for log files already in a local S3-layout
//! tree, the way CloudTrail would have: one chain per (organization, account, source Region),
//! one digest per hour window whether or not files were delivered in it, each linking to the
//! previous one (`previousDigestS3Object`, `previousDigestHashValue` = SHA-256 of its
//! uncompressed bytes, `previousDigestSignature`), signed with one RSA key (real CloudTrail
//! uses one key per Region). Signatures go to `.sig` sidecars (see the crate docs).

use crate::digest::{string_to_sign, DigestJson, LogFileEntry};
use crate::local::LocalStore;
use crate::loghash::{gunzip_one, sha256_hex};
use crate::pubkey::{KeyError, SigningKey};
use crate::{HASH_ALGORITHM, META_SIGNATURE, META_SIGNATURE_ALGORITHM, SIGNATURE_ALGORITHM};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use trailhose_core::keys::{classify_key, KeyClass, KeyKind};
use trailhose_core::timefmt::format_rfc3339_s;
use trailhose_core::{read_records, FieldMode, Limits};

const HOUR_MS: i64 = 3_600_000;
/// CloudTrail's digest windows are offset from the hour; the documentation's examples end at
/// `…:01:31`.
const WINDOW_OFFSET_MS: i64 = 91_000;

/// A log file to put in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileSpec {
    /// S3 key (`/`-separated) relative to the tree root; account, Region and organization are
    /// read from it.
    pub key: String,
    /// Delivery instant (epoch ms); decides the digest window.
    pub delivery_ms: i64,
}

/// How to write the chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    /// The bucket the tree stands for (`digestS3Bucket`, `s3Bucket`).
    pub bucket: String,
    pub trail_name: String,
    pub home_region: String,
    /// Window indexes (0 = the first hour) during which logging was stopped: no digest is
    /// written and the next digest starts a new chain (its `previousDigest*` fields are null).
    /// Files delivered then are listed by no digest.
    pub stopped_windows: Vec<usize>,
    /// Threads hashing log files.
    pub jobs: usize,
}

impl Default for ChainSpec {
    fn default() -> Self {
        ChainSpec {
            bucket: "trailhose-sample".into(),
            trail_name: "org-trail".into(),
            home_region: "us-east-1".into(),
            stopped_windows: Vec::new(),
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainsWritten {
    /// Digest keys in write order (per chain, oldest first).
    pub digests: Vec<String>,
    pub chains: usize,
    pub log_files: usize,
    /// Files delivered while logging was stopped (listed by no digest).
    pub undigested: Vec<String>,
    pub first_start_ms: i64,
    pub last_end_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("{0}")]
    Io(String),
    #[error("{key}: {reason}")]
    Log { key: String, reason: String },
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A digest ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDigest {
    pub inflated: Vec<u8>,
    pub gz: Vec<u8>,
    pub sha256: String,
    pub signature: String,
}

/// Serialises (compact JSON), hashes, signs and compresses a digest.
pub fn sign_digest(json: &DigestJson, key: &SigningKey) -> Result<SignedDigest, ChainError> {
    let inflated = serde_json::to_vec(json).map_err(|e| ChainError::Io(e.to_string()))?;
    sign_inflated(inflated, json, key)
}

fn sign_inflated(
    inflated: Vec<u8>,
    json: &DigestJson,
    key: &SigningKey,
) -> Result<SignedDigest, ChainError> {
    let sha256 = sha256_hex(&inflated);
    let to_sign = string_to_sign(
        &json.digest_end_time,
        &json.digest_s3_bucket,
        &json.digest_s3_object,
        &sha256,
        json.previous_digest_signature.as_deref(),
    );
    let signature = key.sign_hex(to_sign.as_bytes())?;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(&inflated)
        .and_then(|()| enc.finish())
        .map(|gz| SignedDigest {
            sha256,
            signature,
            gz,
            inflated,
        })
        .map_err(|e| ChainError::Io(format!("compressing a digest: {e}")))
}

impl SignedDigest {
    /// Writes `<root>/<key>` and its sidecar (signature, algorithm and `extra` metadata).
    pub fn write(
        &self,
        root: &Path,
        key: &str,
        extra: &BTreeMap<String, String>,
    ) -> Result<(), ChainError> {
        let store = LocalStore::new(root, None);
        let path = store.path_of(key).map_err(ChainError::Io)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ChainError::Io(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&path, &self.gz)
            .map_err(|e| ChainError::Io(format!("{}: {e}", path.display())))?;
        let mut meta = extra.clone();
        meta.insert(META_SIGNATURE.into(), self.signature.clone());
        meta.insert(META_SIGNATURE_ALGORITHM.into(), SIGNATURE_ALGORITHM.into());
        store
            .write_sidecar(key, &meta)
            .map_err(|e| ChainError::Io(format!("{key}.sig: {e}")))
    }
}

/// Signs the digest stored at `<root>/<key>` again with `key`, rewriting its sidecar only:
/// what an attacker holding another key could do.
pub fn resign_digest_file(
    root: &Path,
    digest_key: &str,
    key: &SigningKey,
) -> Result<(), ChainError> {
    let store = LocalStore::new(root, None);
    let path = store.path_of(digest_key).map_err(ChainError::Io)?;
    let gz =
        std::fs::read(&path).map_err(|e| ChainError::Io(format!("{}: {e}", path.display())))?;
    let (_, inflated) = gunzip_one(&gz, 1 << 30).map_err(|e| ChainError::Io(e.to_string()))?;
    let d = crate::digest::parse_digest(&inflated).map_err(|e| ChainError::Io(e.to_string()))?;
    let signature = key.sign_hex(d.string_to_sign().as_bytes())?;
    let mut sidecar = path.into_os_string();
    sidecar.push(crate::SIDECAR_SUFFIX);
    let mut meta = LocalStore::read_sidecar(Path::new(&sidecar))
        .map_err(ChainError::Io)?
        .unwrap_or_default();
    meta.insert(META_SIGNATURE.into(), signature);
    meta.insert(META_SIGNATURE_ALGORITHM.into(), SIGNATURE_ALGORITHM.into());
    store
        .write_sidecar(digest_key, &meta)
        .map_err(|e| ChainError::Io(e.to_string()))
}

struct Hashed {
    sha256: String,
    oldest: Option<i64>,
    newest: Option<i64>,
}

fn hash_log(root: &Path, key: &str) -> Result<Hashed, ChainError> {
    let err = |reason: String| ChainError::Log {
        key: key.to_owned(),
        reason,
    };
    let path = LocalStore::new(root, None).path_of(key).map_err(&err)?;
    let gz = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
    let (h, bytes) = gunzip_one(&gz, 4 << 30).map_err(|e| err(e.to_string()))?;
    let (mut oldest, mut newest) = (None::<i64>, None::<i64>);
    // Event times are informational; a file that does not parse still gets its hash listed.
    let _ = read_records(&bytes[..], &Limits::default(), FieldMode::Extract, |r| {
        if let Some(t) = r.fields.and_then(|f| f.event_time_ms) {
            oldest = Some(oldest.map_or(t, |o| o.min(t)));
            newest = Some(newest.map_or(t, |n| n.max(t)));
        }
    });
    Ok(Hashed {
        sha256: h.sha256_hex,
        oldest,
        newest,
    })
}

/// Stream identity: (prefix, org, account, region).
type Stream = (String, Option<String>, String, String);

/// Writes one digest chain per (prefix, organization, account, source Region) of `logs`,
/// covering every hour from the first delivery to the last.
pub fn write_digest_chains(
    root: &Path,
    logs: &[LogFileSpec],
    spec: &ChainSpec,
    key: &SigningKey,
) -> Result<ChainsWritten, ChainError> {
    let mut out = ChainsWritten::default();
    let (Some(min_d), Some(max_d)) = (
        logs.iter().map(|l| l.delivery_ms).min(),
        logs.iter().map(|l| l.delivery_ms).max(),
    ) else {
        return Ok(out);
    };
    let mut first = min_d - min_d.rem_euclid(HOUR_MS) + WINDOW_OFFSET_MS;
    if min_d < first {
        first -= HOUR_MS;
    }
    let windows = ((max_d - first) / HOUR_MS + 1) as usize;
    out.first_start_ms = first;
    out.last_end_ms = first + windows as i64 * HOUR_MS;

    // Streams and their files by window.
    let mut streams: BTreeMap<Stream, BTreeMap<usize, Vec<&LogFileSpec>>> = BTreeMap::new();
    for l in logs {
        let KeyClass::CloudTrail(k) = classify_key(&l.key) else {
            return Err(ChainError::Log {
                key: l.key.clone(),
                reason: "not a CloudTrail key".into(),
            });
        };
        if k.kind != KeyKind::Log {
            continue;
        }
        let s = (
            k.prefix.to_owned(),
            k.org_id.map(str::to_owned),
            k.account.to_owned(),
            k.region.to_owned(),
        );
        let w = ((l.delivery_ms - first) / HOUR_MS) as usize;
        streams.entry(s).or_default().entry(w).or_default().push(l);
    }

    // Hash every file that a digest will list, in parallel.
    let wanted: Vec<&str> = streams
        .values()
        .flat_map(|ws| ws.iter())
        .filter(|(w, _)| !spec.stopped_windows.contains(w))
        .flat_map(|(_, ls)| ls.iter().map(|l| l.key.as_str()))
        .collect();
    let hashes: Mutex<BTreeMap<String, Hashed>> = Mutex::new(BTreeMap::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure: Mutex<Option<ChainError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..spec.jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(k) = wanted.get(i) else { break };
                match hash_log(root, k) {
                    Ok(h) => {
                        if let Ok(mut m) = hashes.lock() {
                            m.insert((*k).to_owned(), h);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let hashes = hashes
        .into_inner()
        .map_err(|_| ChainError::Io("a hashing thread panicked".into()))?;

    for ((prefix, org, account, region), by_window) in &streams {
        out.chains += 1;
        let mut prev: Option<(String, String, String)> = None; // key, sha256, signature
        for w in 0..windows {
            let files = by_window.get(&w).map(Vec::as_slice).unwrap_or_default();
            if spec.stopped_windows.contains(&w) {
                prev = None;
                out.undigested.extend(files.iter().map(|l| l.key.clone()));
                continue;
            }
            let start = first + w as i64 * HOUR_MS;
            let end = start + HOUR_MS;
            let mut entries: Vec<LogFileEntry> = Vec::with_capacity(files.len());
            let (mut oldest, mut newest) = (None::<i64>, None::<i64>);
            let mut sorted: Vec<&&LogFileSpec> = files.iter().collect();
            sorted.sort_by(|a, b| a.key.cmp(&b.key));
            for l in sorted {
                let Some(h) = hashes.get(&l.key) else {
                    return Err(ChainError::Log {
                        key: l.key.clone(),
                        reason: "not hashed".into(),
                    });
                };
                if let Some(t) = h.oldest {
                    oldest = Some(oldest.map_or(t, |o| o.min(t)));
                }
                if let Some(t) = h.newest {
                    newest = Some(newest.map_or(t, |n| n.max(t)));
                }
                entries.push(LogFileEntry {
                    s3_bucket: spec.bucket.clone(),
                    s3_object: l.key.clone(),
                    hash_value: h.sha256.clone(),
                    hash_algorithm: Some(HASH_ALGORITHM.into()),
                    newest_event_time: h.newest.map(format_rfc3339_s),
                    oldest_event_time: h.oldest.map(format_rfc3339_s),
                });
            }
            out.log_files += entries.len();
            let stamp = crate::walk::format_key_stamp(end);
            let ymd = format!("{}/{}/{}", &stamp[0..4], &stamp[4..6], &stamp[6..8]);
            let head = match (prefix.is_empty(), org) {
                (true, None) => format!("AWSLogs/{account}"),
                (true, Some(o)) => format!("AWSLogs/{o}/{account}"),
                (false, None) => format!("{prefix}/AWSLogs/{account}"),
                (false, Some(o)) => format!("{prefix}/AWSLogs/{o}/{account}"),
            };
            let digest_key = format!(
                "{head}/CloudTrail-Digest/{region}/{ymd}/{account}_CloudTrail-Digest_{region}_{}_{}_{stamp}.json.gz",
                spec.trail_name, spec.home_region
            );
            let json = DigestJson {
                aws_account_id: account.clone(),
                digest_start_time: format_rfc3339_s(start),
                digest_end_time: format_rfc3339_s(end),
                digest_s3_bucket: spec.bucket.clone(),
                digest_s3_object: digest_key.clone(),
                digest_public_key_fingerprint: key.fingerprint().to_owned(),
                digest_signature_algorithm: SIGNATURE_ALGORITHM.into(),
                newest_event_time: newest.map(format_rfc3339_s),
                oldest_event_time: oldest.map(format_rfc3339_s),
                previous_digest_s3_bucket: prev.as_ref().map(|_| spec.bucket.clone()),
                previous_digest_s3_object: prev.as_ref().map(|p| p.0.clone()),
                previous_digest_hash_value: prev.as_ref().map(|p| p.1.clone()),
                previous_digest_hash_algorithm: prev.as_ref().map(|_| HASH_ALGORITHM.into()),
                previous_digest_signature: prev.as_ref().map(|p| p.2.clone()),
                log_files: entries,
            };
            let signed = sign_digest(&json, key)?;
            signed.write(root, &digest_key, &BTreeMap::new())?;
            prev = Some((digest_key.clone(), signed.sha256, signed.signature));
            out.digests.push(digest_key);
        }
    }
    Ok(out)
}
