//! S3 through the AWS SDK: ListObjectsV2 for listings, GetObject for digests (body + user
//! metadata `signature`, `signature-algorithm`, `backfill-generation-timestamp`) and for log
//! files, whose body is streamed through the hasher without being held whole.
//!
//! Clients come from `trailhose-awsconf` (endpoint override ⇒ path-style addressing) and, like aws-cli's `S3ClientProvider`, asks GetBucketLocation for the bucket's
//! Region. Errors are rendered from the SDK's error metadata (code and message), never from
//! credentials.

use crate::loghash::{GzipSha256, LogHash};
use crate::store::{LogError, Store, StoreError, StoredDigest};
use aws_config::SdkConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use std::collections::BTreeMap;

/// Largest digest object accepted (real ones are kilobytes).
const MAX_DIGEST_BYTES: usize = 64 << 20;

/// Attempts to hash one log file when the body stream breaks mid-way.
const LOG_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

/// Where to connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// Region for the first request; default: the SDK's chain, else `us-east-1`.
    pub region: Option<String>,
    /// Endpoint override (emulators); forces path-style addressing.
    pub endpoint_url: Option<String>,
}

fn err_text<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("(no message)")
            )
        }
        SdkError::TimeoutError(_) => "request timed out".to_owned(),
        SdkError::DispatchFailure(d) => {
            if d.is_io() {
                "network error".to_owned()
            } else {
                "request could not be sent".to_owned()
            }
        }
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        _ => "request failed".to_owned(),
    }
}

fn client_for(base: &SdkConfig, region: &str) -> aws_sdk_s3::Client {
    trailhose_awsconf::s3_client_in(base, region)
}

impl S3Store {
    /// Parses `s3://bucket[/prefix]`.
    pub fn parse_url(url: &str) -> Option<(String, String)> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        Some((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
    }

    /// A store over a ready client.
    pub fn new(client: aws_sdk_s3::Client, bucket: String, prefix: String) -> Self {
        S3Store {
            client,
            bucket,
            prefix,
        }
    }

    /// A store from an SDK configuration, with the bucket's own Region (GetBucketLocation).
    pub async fn from_sdk_config(base: &SdkConfig, bucket: String, prefix: String) -> Self {
        let first = base
            .region()
            .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
        let client = client_for(base, &first);
        let located = client
            .get_bucket_location()
            .bucket(&bucket)
            .send()
            .await
            .ok()
            .and_then(|o| o.location_constraint().map(|c| c.as_str().to_owned()))
            .map(|c| {
                if c.is_empty() {
                    "us-east-1".to_owned()
                } else {
                    c
                }
            });
        let client = match located {
            Some(r) if r != first => client_for(base, &r),
            _ => client,
        };
        S3Store::new(client, bucket, prefix)
    }

    /// Loads the SDK configuration (default credential chain) and connects.
    pub async fn connect(settings: &S3Settings, bucket: String, prefix: String) -> Self {
        let cfg = trailhose_awsconf::load_sdk_config(&trailhose_awsconf::AwsSettings {
            region: settings.region.clone(),
            endpoint_url: settings.endpoint_url.clone(),
        })
        .await;
        Self::from_sdk_config(&cfg, bucket, prefix).await
    }

    /// The key prefix before `AWSLogs/` given in the URL (`""` when none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    async fn hash_once(&self, bucket: &str, key: &str) -> Result<LogHash, LogError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(GetObjectError::NoSuchKey(_)) => LogError::NotFound,
                _ if e.code() == Some("NoSuchKey") => LogError::NotFound,
                _ => LogError::Other(format!("GetObject s3://{bucket}/{key}: {}", err_text(&e))),
            })?;
        let mut body = out.body;
        let mut h = GzipSha256::new();
        loop {
            match body.next().await {
                None => break,
                Some(Ok(chunk)) => h.update(&chunk)?,
                Some(Err(e)) => {
                    return Err(LogError::Other(format!("reading s3://{bucket}/{key}: {e}")))
                }
            }
        }
        Ok(h.finish()?)
    }
}

impl Store for S3Store {
    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn bucket(&self) -> Option<&str> {
        Some(&self.bucket)
    }

    async fn list_dirs(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                StoreError::Other(format!(
                    "ListObjectsV2 s3://{bucket}/{prefix}: {}",
                    err_text(&e)
                ))
            })?;
            for cp in page.common_prefixes() {
                if let Some(name) = cp
                    .prefix()
                    .and_then(|p| p.strip_prefix(prefix))
                    .map(|p| p.trim_end_matches('/'))
                    .filter(|p| !p.is_empty())
                {
                    out.push(name.to_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut req = self.client.list_objects_v2().bucket(bucket).prefix(prefix);
        if let Some(sa) = start_after {
            req = req.start_after(sa);
        }
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                StoreError::Other(format!(
                    "ListObjectsV2 s3://{bucket}/{prefix}: {}",
                    err_text(&e)
                ))
            })?;
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        out.sort();
        Ok(out)
    }

    async fn get_digest(&self, bucket: &str, key: &str) -> Result<StoredDigest, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(GetObjectError::NoSuchKey(_)) => StoreError::NotFound,
                _ if e.code() == Some("NoSuchKey") => StoreError::NotFound,
                _ => StoreError::Other(format!("GetObject s3://{bucket}/{key}: {}", err_text(&e))),
            })?;
        let metadata: BTreeMap<String, String> = out
            .metadata()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut body = out.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| StoreError::Other(format!("reading s3://{bucket}/{key}: {e}")))?;
            if bytes.len() + chunk.len() > MAX_DIGEST_BYTES {
                return Err(StoreError::Other(format!(
                    "s3://{bucket}/{key} is larger than {MAX_DIGEST_BYTES} bytes; not a digest"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(StoredDigest {
            body: bytes,
            metadata,
            metadata_error: None,
        })
    }

    async fn hash_log(&self, bucket: &str, key: &str) -> Result<LogHash, LogError> {
        let mut attempt = 1;
        loop {
            match self.hash_once(bucket, key).await {
                Err(LogError::Other(e)) if attempt < LOG_ATTEMPTS => {
                    tracing::warn!(bucket, key, attempt, error = %e, "retrying log file read");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                        .await;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }
}

/// Uploads a local S3-layout tree (digests with their sidecar metadata, log files) to a
/// bucket, so local fixtures can be validated through S3 (tests, emulators, demos).
pub async fn upload_tree(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    root: &std::path::Path,
) -> Result<usize, StoreError> {
    let local = crate::LocalStore::new(root, None);
    let keys = local.list_keys(bucket, "", None).await?;
    let mut n = 0;
    for key in keys {
        if key.ends_with(crate::SIDECAR_SUFFIX) {
            continue;
        }
        let path = local.path_of(&key).map_err(StoreError::InvalidKey)?;
        let body = tokio::fs::read(&path)
            .await
            .map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?;
        let mut sidecar = path.clone().into_os_string();
        sidecar.push(crate::SIDECAR_SUFFIX);
        let meta = crate::LocalStore::read_sidecar(std::path::Path::new(&sidecar))
            .map_err(StoreError::Other)?
            .unwrap_or_default();
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{}/{key}", prefix.trim_end_matches('/'))
        };
        let mut req = client
            .put_object()
            .bucket(bucket)
            .key(&full)
            .body(body.into());
        for (k, v) in meta {
            req = req.metadata(k, v);
        }
        req.send().await.map_err(|e| {
            StoreError::Other(format!("PutObject s3://{bucket}/{full}: {}", err_text(&e)))
        })?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            S3Store::parse_url("s3://b/p/q/"),
            Some(("b".into(), "p/q".into()))
        );
        assert_eq!(S3Store::parse_url("s3://b"), Some(("b".into(), "".into())));
        assert_eq!(S3Store::parse_url("s3:///x"), None);
        assert_eq!(S3Store::parse_url("/tmp"), None);
    }
}
