//! Where finished archive files go: renamed into place in a local directory (after fsync), or
//! uploaded to S3 (PutObject, or a multipart upload for large files; SSE-KMS or SSE-S3 when
//! configured). Files are written to a staging path first, so a reader never sees a partial
//! file: locally a hidden `.…inprogress` name beside the target, for S3 a local staging dir.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use std::io::Read;
use std::path::{Path, PathBuf};

pub enum Store {
    Local { root: PathBuf, fsync: bool },
    S3(S3Target),
}

/// An S3 archive location and how files are uploaded to it.
pub struct S3Target {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
    /// Local directory the files are written to before upload.
    pub staging: PathBuf,
    pub sse: Option<String>,
    pub kms_key_id: Option<String>,
    pub multipart_threshold: u64,
    pub part_bytes: u64,
    /// The runtime the blocking sink thread uploads on.
    pub handle: tokio::runtime::Handle,
}

/// `s3://bucket/prefix` → (bucket, prefix without surrounding slashes).
pub fn split_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

impl Store {
    /// Where to write the file that will become `rel`.
    pub fn staging_path(&self, rel: &str) -> PathBuf {
        match self {
            Store::Local { root, .. } => {
                let target = root.join(rel);
                let name = target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                target.with_file_name(format!(".{name}.inprogress"))
            }
            Store::S3(t) => t.staging.join(rel.replace('/', "%2F")),
        }
    }

    /// Where `rel` ends up, for messages.
    pub fn describe(&self, rel: &str) -> String {
        match self {
            Store::Local { root, .. } => root.join(rel).display().to_string(),
            Store::S3(t) => format!("s3://{}/{}", t.bucket, key_of(&t.prefix, rel)),
        }
    }

    /// Makes the staged file durable at its final place. Blocking (call from the sink thread).
    pub fn commit(&self, staged: &Path, rel: &str) -> Result<(), String> {
        match self {
            Store::Local { root, fsync } => {
                let target = root.join(rel);
                std::fs::rename(staged, &target)
                    .map_err(|e| format!("renaming {} into place: {e}", staged.display()))?;
                if *fsync {
                    // The rename is durable only once the directory entry is.
                    if let Some(dir) = target.parent() {
                        std::fs::File::open(dir)
                            .and_then(|d| d.sync_all())
                            .map_err(|e| format!("syncing {}: {e}", dir.display()))?;
                    }
                }
                Ok(())
            }
            Store::S3(t) => {
                let key = key_of(&t.prefix, rel);
                let result = t.handle.block_on(t.upload(staged, &key));
                // The staged copy is no longer needed either way: on failure the records are
                // not acknowledged and come back from the source.
                let _ = std::fs::remove_file(staged);
                result
            }
        }
    }

    /// Deletes a staged file whose records were not acknowledged (a failed write).
    pub fn discard(&self, staged: &Path) {
        let _ = std::fs::remove_file(staged);
    }
}

impl S3Target {
    async fn upload(&self, staged: &Path, key: &str) -> Result<(), String> {
        let S3Target {
            client,
            bucket,
            sse,
            kms_key_id,
            multipart_threshold,
            part_bytes,
            ..
        } = self;
        let sse = sse.as_deref().map(ServerSideEncryption::from);
        let size = std::fs::metadata(staged)
            .map_err(|e| format!("{}: {e}", staged.display()))?
            .len();
        let dest = format!("s3://{bucket}/{key}");
        if size <= *multipart_threshold {
            let body = ByteStream::from_path(staged)
                .await
                .map_err(|e| format!("{}: {e}", staged.display()))?;
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body)
                .set_server_side_encryption(sse)
                .set_ssekms_key_id(kms_key_id.clone())
                .send()
                .await
                .map_err(|e| format!("PutObject {dest}: {}", aws_error(&e)))?;
            return Ok(());
        }
        let created = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key_id.clone())
            .send()
            .await
            .map_err(|e| format!("CreateMultipartUpload {dest}: {}", aws_error(&e)))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| format!("CreateMultipartUpload {dest}: no UploadId in the answer"))?
            .to_owned();
        let parts = self
            .upload_parts(staged, key, &upload_id, *part_bytes)
            .await;
        let completed = match parts {
            Ok(parts) => client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ()),
            Err(e) => return self.abort(key, &upload_id, Err(e)).await,
        };
        let completed = match completed {
            Ok(()) => Ok(()),
            // A 200 whose body the SDK cannot read (moto answers with another XML root than
            // S3's): the object counts as written only if it is there with our size.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => {
                self.verify_size(key, size, &dest, &aws_error(&e)).await
            }
            Err(e) => Err(format!("CompleteMultipartUpload {dest}: {}", aws_error(&e))),
        };
        self.abort(key, &upload_id, completed).await
    }

    /// Aborts the upload when `result` is a failure, so no billable orphan parts stay behind.
    async fn abort(
        &self,
        key: &str,
        upload_id: &str,
        result: Result<(), String>,
    ) -> Result<(), String> {
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await;
        }
        result
    }

    async fn verify_size(&self, key: &str, size: u64, dest: &str, why: &str) -> Result<(), String> {
        let S3Target { client, bucket, .. } = self;
        let head = client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "CompleteMultipartUpload {dest}: {why}; HeadObject: {}",
                    aws_error(&e)
                )
            })?;
        match head.content_length() {
            Some(n) if n >= 0 && n as u64 == size => Ok(()),
            other => Err(format!(
                "CompleteMultipartUpload {dest}: {why}; the object has {other:?} bytes, expected {size}"
            )),
        }
    }

    /// Uploads the file in parts, one part in memory at a time.
    async fn upload_parts(
        &self,
        staged: &Path,
        key: &str,
        upload_id: &str,
        part_bytes: u64,
    ) -> Result<Vec<CompletedPart>, String> {
        let S3Target { client, bucket, .. } = self;
        let mut file =
            std::fs::File::open(staged).map_err(|e| format!("{}: {e}", staged.display()))?;
        let mut parts = Vec::new();
        let mut number = 1;
        loop {
            let mut buf = Vec::with_capacity(part_bytes as usize);
            (&mut file)
                .take(part_bytes)
                .read_to_end(&mut buf)
                .map_err(|e| format!("{}: {e}", staged.display()))?;
            if buf.is_empty() {
                break;
            }
            let out = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "UploadPart {number} of s3://{bucket}/{key}: {}",
                        aws_error(&e)
                    )
                })?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            );
            number += 1;
        }
        Ok(parts)
    }
}

fn key_of(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() {
        rel.to_owned()
    } else {
        format!("{prefix}/{rel}")
    }
}

/// The SDK error's code and message (never credentials).
fn aws_error<E: std::error::Error + 'static>(e: &aws_sdk_s3::error::SdkError<E>) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            split_s3_url("s3://b/archive/ct/"),
            Some(("b".into(), "archive/ct".into()))
        );
        assert_eq!(split_s3_url("s3://b"), Some(("b".into(), String::new())));
        assert_eq!(split_s3_url("s3:///x"), None);
        assert_eq!(split_s3_url("/tmp/x"), None);
        assert_eq!(key_of("", "a/b.parquet"), "a/b.parquet");
        assert_eq!(key_of("p/q", "a/b.parquet"), "p/q/a/b.parquet");
    }

    #[test]
    fn local_staging_is_hidden_beside_the_target() {
        let s = Store::Local {
            root: PathBuf::from("/arch"),
            fsync: false,
        };
        assert_eq!(
            s.staging_path("account=1/region=r/dt=d/part-1.parquet"),
            PathBuf::from("/arch/account=1/region=r/dt=d/.part-1.parquet.inprogress")
        );
    }
}
