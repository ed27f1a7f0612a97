//! `[[sinks]] type = "archive"`: Parquet (or NDJSON.gz) files partitioned as Athena's CloudTrail
//! tables are, in a local directory or an S3 prefix — what `trailhose query` and
//! `trailhose lookup` read.

use serde::Deserialize;
use trailhose_pipeline::filter::RecordFilter;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveFormat {
    /// Columnar, typed, what `query`/`lookup` read.
    #[default]
    Parquet,
    /// Gzip-compressed NDJSON of the original record bytes (for tools that want lines).
    NdjsonGz,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ParquetCompression {
    #[default]
    Zstd,
    Snappy,
    Gzip,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSinkConfig {
    pub name: String,
    /// A local directory, or `s3://bucket/prefix`.
    pub location: String,
    #[serde(default)]
    pub format: ArchiveFormat,
    #[serde(default)]
    pub compression: ParquetCompression,
    /// Roll a file once this many record bytes went into it.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Roll a file this long after its first record, even if small. This is also the longest a
    /// record waits for its acknowledgement, so the SQS worker's `max_messages_in_flight` must
    /// cover what arrives in this time.
    #[serde(default = "default_max_file_seconds")]
    pub max_file_seconds: u64,
    /// Partitions with a file open at once; opening one more rolls the least recently written.
    /// Together with `row_group_bytes` this bounds the memory the sink holds.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// Parquet row groups are flushed from memory at this many buffered bytes.
    #[serde(default = "default_row_group_bytes")]
    pub row_group_bytes: usize,
    /// fsync each file and its directory before acknowledging (local archives).
    #[serde(default = "default_true")]
    pub fsync: bool,
    /// S3 only: region and endpoint (tests, S3-compatible stores).
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// S3 only: `"aws:kms"` (with `kms_key_id`, or the bucket's AWS managed key) or `"AES256"`.
    #[serde(default)]
    pub sse: Option<String>,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// S3 only: files larger than this are uploaded in parts of `part_bytes`.
    #[serde(default = "default_multipart_threshold")]
    pub multipart_threshold_bytes: u64,
    #[serde(default = "default_part_bytes")]
    pub part_bytes: u64,
    #[serde(default)]
    pub filter: RecordFilter,
}

fn default_max_file_bytes() -> u64 {
    256 << 20
}
fn default_max_file_seconds() -> u64 {
    300
}
fn default_max_open_files() -> usize {
    16
}
fn default_row_group_bytes() -> usize {
    16 << 20
}
fn default_true() -> bool {
    true
}
fn default_multipart_threshold() -> u64 {
    64 << 20
}
fn default_part_bytes() -> u64 {
    16 << 20
}

impl ArchiveSinkConfig {
    pub fn is_s3(&self) -> bool {
        self.location.starts_with("s3://")
    }

    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let at = format!("sinks.{}", self.name);
        if self.location.trim().is_empty() {
            p.push(format!(
                "{at}: location is empty (a directory or s3://bucket/prefix)"
            ));
        }
        if self.is_s3() {
            let rest = &self.location["s3://".len()..];
            if rest.split('/').next().unwrap_or("").is_empty() {
                p.push(format!(
                    "{at}: location `{}` names no bucket",
                    self.location
                ));
            }
            // S3 parts: at least 5 MiB (but the last), at most 10,000 of them.
            if self.part_bytes < 5 << 20 {
                p.push(format!(
                    "{at}: part_bytes = {} is below S3's 5 MiB minimum",
                    self.part_bytes
                ));
            }
            if self.multipart_threshold_bytes < self.part_bytes {
                p.push(format!(
                    "{at}: multipart_threshold_bytes must be ≥ part_bytes"
                ));
            }
        } else if self.sse.is_some() || self.kms_key_id.is_some() {
            p.push(format!(
                "{at}: sse/kms_key_id apply to s3:// locations only"
            ));
        }
        if let Some(s) = &self.sse {
            if s != "aws:kms" && s != "AES256" {
                p.push(format!(
                    "{at}: sse = `{s}`: expected \"aws:kms\" or \"AES256\""
                ));
            }
        }
        if self.kms_key_id.is_some() && self.sse.as_deref() != Some("aws:kms") {
            p.push(format!("{at}: kms_key_id needs sse = \"aws:kms\""));
        }
        if self.max_file_bytes < 1024 {
            p.push(format!(
                "{at}: max_file_bytes = {} is below 1024",
                self.max_file_bytes
            ));
        }
        if self.max_file_seconds == 0 {
            p.push(format!("{at}: max_file_seconds must be at least 1"));
        }
        if self.max_open_files == 0 || self.max_open_files > 4096 {
            p.push(format!(
                "{at}: max_open_files = {} must be 1..=4096",
                self.max_open_files
            ));
        }
        if self.row_group_bytes < 64 << 10 {
            p.push(format!(
                "{at}: row_group_bytes = {} is below 64 KiB",
                self.row_group_bytes
            ));
        }
        if self.format == ArchiveFormat::NdjsonGz && self.compression != ParquetCompression::Zstd {
            p.push(format!(
                "{at}: compression applies to format = \"parquet\" only"
            ));
        }
        p
    }

    /// The memory the sink may hold at most, for `check-config`'s budget.
    pub fn memory_bound_bytes(&self) -> u64 {
        // Per open file: the row group being built plus the Arrow batch being filled (about the
        // same again), plus one upload part for S3.
        let per_file = 2 * self.row_group_bytes as u64;
        let upload = if self.is_s3() { self.part_bytes } else { 0 };
        per_file * self.max_open_files as u64 + upload
    }
}
