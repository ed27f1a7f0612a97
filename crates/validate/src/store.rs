//! The object store the validator reads: listing, digest objects with their user metadata,
//! and streamed log-file hashes. Implemented by [`crate::LocalStore`] and [`crate::S3Store`];
//! tests can implement it in memory.

use crate::loghash::{LogFormatError, LogHash};
use std::collections::BTreeMap;
use std::future::Future;

/// A digest object as fetched: the stored (gzip) bytes and the S3 user metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredDigest {
    pub body: Vec<u8>,
    /// User metadata keys without `x-amz-meta-` (`signature`, `signature-algorithm`, …).
    pub metadata: BTreeMap<String, String>,
    /// Set when the metadata could not be read (e.g. a malformed local sidecar).
    pub metadata_error: Option<String>,
}

/// Failure to read an object or a listing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// `NoSuchKey` / no such file.
    #[error("not found")]
    NotFound,
    /// The key cannot name an object of this store (e.g. `..` segments for a directory).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Anything else (access denied, network, …): the run cannot be trusted to go on.
    #[error("{0}")]
    Other(String),
}

/// Failure to hash a log file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("not found")]
    NotFound,
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error(transparent)]
    Format(#[from] LogFormatError),
    #[error("{0}")]
    Other(String),
}

/// Read access to a bucket (or a directory standing in for one).
pub trait Store: Send + Sync + 'static {
    /// Human-readable location of the store (`s3://bucket/prefix`, a directory).
    fn describe(&self) -> String;

    /// The bucket the store starts in, when it knows one.
    fn bucket(&self) -> Option<&str>;

    /// Names of the immediate "directories" under `prefix` (which ends with `/`), sorted.
    fn list_dirs(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Every key under `prefix` (which ends with `/`) greater than `start_after`, sorted.
    fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// A digest object and its user metadata.
    fn get_digest(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<StoredDigest, StoreError>> + Send;

    /// Streams a log file through [`crate::GzipSha256`].
    fn hash_log(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<LogHash, LogError>> + Send;
}
