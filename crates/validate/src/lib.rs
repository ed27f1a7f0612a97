//! CloudTrail log file integrity validation, following the digest-file design exactly (the
//! facts are in `shared/specs.md` §3; the reference implementation is aws-cli's
//! `awscli/customizations/cloudtrail/validation.py`).
//!
//! - [`digest`]: digest JSON, the string that is signed, RSA PKCS#1 v1.5 SHA-256 verification.
//!   Pure.
//! - [`pubkey`]: public keys (PKCS#1 DER, fingerprint = MD5 of the DER bytes) from DER/PEM files
//!   or the JSON output of `aws cloudtrail list-public-keys`; signing keys for generation.
//! - [`loghash`]: SHA-256 of the *uncompressed* bytes of a single-member gzip stream, pushed in
//!   pieces, failing on trailing data. Pure.
//! - [`store`]: the abstract object store the walk reads from; [`local`] (a directory in S3
//!   layout, signatures in sidecar files) and [`s3`] (S3 through the AWS SDK) implement it.
//! - [`walk`]: discovery of chains, the backwards walk of each chain, stricter optional checks,
//!   bounded parallel log hashing; produces a [`report::Report`].
//! - [`chain`]: writes consistent, signed hourly digest chains for a set of log files (for
//!   generated corpora, tests and the demo).
//!
//! ## Local signature sidecars
//!
//! Files on disk have no S3 metadata, so next to each digest `K.json.gz` the local store reads
//! `K.json.gz.sig`: a JSON object holding the object's S3 user metadata exactly as the SDKs
//! expose it (`Metadata`), e.g.
//!
//! ```json
//! {"signature": "<hex RSA signature>", "signature-algorithm": "SHA256withRSA"}
//! ```
//!
//! A backfill digest's sidecar also holds `"backfill-generation-timestamp"`. A missing sidecar
//! is a digest without signature metadata, which fails validation as in aws-cli.

pub mod chain;
pub mod digest;
pub mod listkeys;
pub mod local;
pub mod loghash;
pub mod pubkey;
pub mod report;
pub mod s3;
pub mod store;
pub mod walk;

pub use chain::{write_digest_chains, ChainSpec, ChainsWritten, LogFileSpec};
pub use digest::{string_to_sign, DigestFile, LogFileEntry};
pub use local::LocalStore;
pub use loghash::{GzipSha256, LogFormatError, LogHash};
pub use pubkey::{fingerprint, KeyRing, SigningKey};
pub use report::{Problem, ProblemKind, Report};
pub use s3::S3Store;
pub use store::{LogError, Store, StoreError, StoredDigest};
pub use walk::{validate, Options, ValidateError};

/// Metadata key of the hex signature (`x-amz-meta-signature`).
pub const META_SIGNATURE: &str = "signature";
/// Metadata key of the signature algorithm (`x-amz-meta-signature-algorithm`).
pub const META_SIGNATURE_ALGORITHM: &str = "signature-algorithm";
/// Metadata key carried by backfill digests.
pub const META_BACKFILL_TIMESTAMP: &str = "backfill-generation-timestamp";
/// The only algorithm CloudTrail uses.
pub const SIGNATURE_ALGORITHM: &str = "SHA256withRSA";
/// `hashAlgorithm` / `previousDigestHashAlgorithm` value.
pub const HASH_ALGORITHM: &str = "SHA-256";
/// Suffix of a local signature sidecar.
pub const SIDECAR_SUFFIX: &str = ".sig";
