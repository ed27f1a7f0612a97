//! Dead letters in S3, for a fleet whose local disks are not durable.
//!
//! [`S3DeadLetters`] is a [`DeadLetterPlace`] (records a sink refused for good) and a
//! [`RemoteLines`] store (the source's object and message entries). Every write puts one
//! NDJSON.gz object and returns only once PutObject succeeded, so whoever acknowledges after it
//! knows the lines are durable. Keys never collide across processes or writes:
//!
//! ```text
//! <prefix>/<sink>/dt=YYYY-MM-DD/<host>-<pid>-<nonce>-<YYYYMMDDTHHMMSS.mmmZ>-<seq>.ndjson.gz
//! ```
//!
//! `<sink>` is the sink's name, or `_source` for the entries of the source itself.
//! [`open_dead_letters`] turns a config string (a path or `s3://bucket/prefix/`) into a place.

use aws_config::SdkConfig;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use flate2::write::GzEncoder;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use trailhose_pipeline::deadletter::{DeadLetterFile, RemoteLines};
use trailhose_pipeline::delivery::dead_letters::{encode_lines, WriteFuture};
use trailhose_pipeline::delivery::{DeadLetterPlace, LocalDeadLetters, RefusedRecord};

/// Server-side encryption of the objects, named as the archive sink names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseOptions {
    /// `"aws:kms"` (with `kms_key_id`, or the bucket's AWS managed key) or `"AES256"`.
    pub sse: Option<String>,
    pub kms_key_id: Option<String>,
}

impl SseOptions {
    fn check(&self) -> Result<(), String> {
        match self.sse.as_deref() {
            None | Some("aws:kms") | Some("AES256") => {}
            Some(other) => {
                return Err(format!(
                    "sse = `{other}`: expected \"aws:kms\" or \"AES256\""
                ))
            }
        }
        if self.kms_key_id.is_some() && self.sse.as_deref() != Some("aws:kms") {
            return Err("kms_key_id needs sse = \"aws:kms\"".into());
        }
        Ok(())
    }

    fn is_set(&self) -> bool {
        self.sse.is_some() || self.kms_key_id.is_some()
    }
}

/// A dead-letter target that cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter place `{target}`: {reason}")]
pub struct DeadLetterError {
    pub target: String,
    pub reason: String,
}

fn bad(target: &str, reason: impl Into<String>) -> DeadLetterError {
    DeadLetterError {
        target: target.to_owned(),
        reason: reason.into(),
    }
}

/// `s3://bucket/prefix/` → (bucket, prefix without surrounding slashes).
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// Whether a dead-letter target names S3 rather than a local file.
pub fn is_s3_target(target: &str) -> bool {
    target.starts_with("s3://")
}

/// An S3 client for `sdk`, path-style when an endpoint override is set (emulators and
/// S3-compatible stores serve every bucket on one host).
pub fn s3_client_for(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(sdk);
    if sdk.endpoint_url().is_some() {
        builder = builder.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// The place a config string names: [`LocalDeadLetters`] for a path, [`S3DeadLetters`] for
/// `s3://bucket/prefix/` (its client built from `sdk`). SSE options apply to S3 only.
pub fn open_dead_letters(
    target: &str,
    sse: &SseOptions,
    sdk: &SdkConfig,
) -> Result<Arc<dyn DeadLetterPlace>, DeadLetterError> {
    if is_s3_target(target) {
        return Ok(S3DeadLetters::open(target, sse, s3_client_for(sdk))?);
    }
    if target.trim().is_empty() {
        return Err(bad(target, "empty: a file or s3://bucket/prefix/"));
    }
    if sse.is_set() {
        return Err(bad(target, "sse/kms_key_id apply to s3:// places only"));
    }
    Ok(LocalDeadLetters::new(Path::new(target)))
}

/// The source's dead-letter place (objects it cannot read, the worker's refused messages) a
/// config string names: a local file, or one object per entry under `s3://bucket/prefix/`
/// (in `_source/`).
pub fn open_source_dead_letters(
    target: &str,
    sse: &SseOptions,
    sdk: &SdkConfig,
) -> Result<Arc<DeadLetterFile>, DeadLetterError> {
    if is_s3_target(target) {
        let place = S3DeadLetters::open(target, sse, s3_client_for(sdk))?;
        return Ok(Arc::new(DeadLetterFile::remote(place)));
    }
    if target.trim().is_empty() {
        return Err(bad(target, "empty: a file or s3://bucket/prefix/"));
    }
    if sse.is_set() {
        return Err(bad(target, "sse/kms_key_id apply to s3:// places only"));
    }
    Ok(Arc::new(DeadLetterFile::new(Path::new(target))))
}

/// Dead letters as NDJSON.gz objects under an S3 prefix; see the module docs for the keys.
pub struct S3DeadLetters {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Without surrounding slashes; empty = the bucket's root.
    prefix: String,
    sse: Option<ServerSideEncryption>,
    kms_key_id: Option<String>,
    /// `<host>-<pid>-<nonce>`: unique to this process.
    stem: String,
    seq: AtomicU64,
    count: AtomicU64,
}

impl std::fmt::Debug for S3DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3DeadLetters")
            .field("place", &self.describe_place())
            .field("sse", &self.sse)
            .finish_non_exhaustive()
    }
}

impl S3DeadLetters {
    /// A place at `url` (`s3://bucket/prefix/`), written with `client`.
    pub fn open(
        url: &str,
        sse: &SseOptions,
        client: aws_sdk_s3::Client,
    ) -> Result<Arc<S3DeadLetters>, DeadLetterError> {
        let (bucket, prefix) =
            parse_s3_url(url).ok_or_else(|| bad(url, "expected s3://bucket/prefix/"))?;
        sse.check().map_err(|reason| bad(url, reason))?;
        Ok(Arc::new(S3DeadLetters {
            client,
            bucket,
            prefix,
            sse: sse.sse.as_deref().map(ServerSideEncryption::from),
            kms_key_id: sse.kms_key_id.clone(),
            stem: process_stem(),
            seq: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn describe_place(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}/", self.bucket)
        } else {
            format!("s3://{}/{}/", self.bucket, self.prefix)
        }
    }

    /// The key of the next object of `group` (a sink name, or `_source`) written at `now_ms`.
    pub fn next_key(&self, group: &str, now_ms: i64) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let stamp = trailhose_core::timefmt::format_rfc3339_s(now_ms);
        // `YYYY-MM-DDTHH:MM:SSZ` → dt and a compact time with milliseconds.
        let day = stamp.get(..10).unwrap_or("1970-01-01");
        let compact: String = stamp
            .trim_end_matches('Z')
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        let name = format!(
            "{group}/dt={day}/{}-{compact}.{:03}Z-{seq:06}.ndjson.gz",
            self.stem,
            now_ms.rem_euclid(1000),
            group = key_part(group),
        );
        if self.prefix.is_empty() {
            name
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// Gzips `lines` and puts them as one new object of `group`; returns its key once
    /// PutObject succeeded. The error names the bucket, the key and the reason (the SDK's error
    /// context: codes and messages, never credentials).
    pub async fn put_lines(&self, group: &str, lines: &[u8]) -> io::Result<String> {
        let mut gz = GzEncoder::new(
            Vec::with_capacity(lines.len() / 4 + 64),
            flate2::Compression::default(),
        );
        gz.write_all(lines)?;
        let body = gz.finish()?;
        let key = self.next_key(group, now_ms());
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/gzip")
            .body(ByteStream::from(body))
            .set_server_side_encryption(self.sse.clone())
            .set_ssekms_key_id(self.kms_key_id.clone())
            .send()
            .await
            .map_err(|e| {
                io::Error::other(format!(
                    "dead letters: PutObject s3://{}/{key}: {}",
                    self.bucket,
                    DisplayErrorContext(&e)
                ))
            })?;
        Ok(key)
    }
}

impl DeadLetterPlace for S3DeadLetters {
    fn write<'a>(&'a self, sink: &'a str, entries: &'a [RefusedRecord<'a>]) -> WriteFuture<'a> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(());
            }
            let mut buf = Vec::new();
            encode_lines(sink, entries, &mut buf);
            self.put_lines(sink, &buf).await?;
            self.count
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
            Ok(())
        })
    }

    fn describe(&self) -> String {
        self.describe_place()
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl RemoteLines for S3DeadLetters {
    fn put<'a>(&'a self, group: &'a str, lines: Vec<u8>) -> WriteFuture<'a> {
        Box::pin(async move {
            if lines.is_empty() {
                return Ok(());
            }
            self.put_lines(group, &lines).await?;
            let n = lines.iter().filter(|b| **b == b'\n').count() as u64;
            self.count.fetch_add(n.max(1), Ordering::Relaxed);
            Ok(())
        })
    }

    fn describe(&self) -> String {
        self.describe_place()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Keeps `[A-Za-z0-9._-]`, so a sink or host name cannot add a level or an odd character to
/// the key.
fn key_part(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out == "." || out == ".." {
        "_".into()
    } else {
        out
    }
}

/// `<host>-<pid>-<nonce>`. Containers often share a host name pattern and pid 1, so a random
/// nonce (from the standard library's randomly keyed hasher) makes the stem unique anyway.
fn process_stem() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "host".into());
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms() as u64);
    h.write_u32(std::process::id());
    format!(
        "{}-{}-{:08x}",
        key_part(&host),
        std::process::id(),
        h.finish() as u32
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::new()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .build(),
        )
    }

    #[test]
    fn urls_and_key_parts() {
        assert_eq!(
            parse_s3_url("s3://b/dead/letters/"),
            Some(("b".into(), "dead/letters".into()))
        );
        assert_eq!(parse_s3_url("s3://b"), Some(("b".into(), String::new())));
        assert_eq!(parse_s3_url("s3:///x"), None);
        assert_eq!(parse_s3_url("/var/dl.ndjson"), None);
        assert_eq!(key_part("siem/hec prod"), "siem_hec_prod");
        assert_eq!(key_part(".."), "_");
        assert_eq!(key_part(""), "_");
    }

    #[test]
    fn keys_are_partitioned_by_sink_and_day_and_never_repeat() {
        let place =
            S3DeadLetters::open("s3://b/dl/", &SseOptions::default(), client()).expect("valid url");
        assert_eq!(place.describe_place(), "s3://b/dl/");
        // 2024-02-29T23:59:58.007Z
        let ms = 1_709_251_198_007;
        let a = place.next_key("cwl", ms);
        let b = place.next_key("cwl", ms);
        assert_ne!(a, b);
        let file = a.rsplit('/').next().unwrap_or_default();
        assert!(
            a.starts_with("dl/cwl/dt=2024-02-29/") && a.ends_with("-000000.ndjson.gz"),
            "{a}"
        );
        assert!(a.contains("-20240229T235958.007Z-"), "{a}");
        assert!(file.contains(&format!("-{}-", std::process::id())), "{a}");
        let root =
            S3DeadLetters::open("s3://b", &SseOptions::default(), client()).expect("valid url");
        assert!(root.next_key("a/b", ms).starts_with("a_b/dt=2024-02-29/"));
    }

    #[test]
    fn bad_targets_are_refused_with_the_reason() {
        let sdk = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let e = open_dead_letters("s3:///p", &SseOptions::default(), &sdk)
            .err()
            .expect("no bucket");
        assert!(e.to_string().contains("s3:///p"), "{e}");
        let kms_only = SseOptions {
            sse: None,
            kms_key_id: Some("k".into()),
        };
        let e = open_dead_letters("s3://b/p/", &kms_only, &sdk)
            .err()
            .expect("kms without aws:kms");
        assert!(e.to_string().contains("needs sse"), "{e}");
        let aes = SseOptions {
            sse: Some("AES256".into()),
            kms_key_id: None,
        };
        let e = open_dead_letters("/tmp/dl.ndjson", &aes, &sdk)
            .err()
            .expect("sse on a file");
        assert!(e.to_string().contains("s3:// places only"), "{e}");
        assert!(open_dead_letters(" ", &SseOptions::default(), &sdk).is_err());
        let local =
            open_dead_letters("/tmp/x/dl.ndjson", &SseOptions::default(), &sdk).expect("a path");
        assert_eq!(local.describe(), "/tmp/x/dl.ndjson");
        let s3 = open_dead_letters("s3://b/p", &aes, &sdk).expect("an s3 url");
        assert_eq!(s3.describe(), "s3://b/p/");
    }
}
