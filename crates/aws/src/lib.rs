//! AWS plumbing for trailhose: SDK configuration from settings (region, endpoint override for
//! emulators), S3 clients per region and per assumed role, and the streaming S3 object reader
//! that feeds the parser core without ever holding a whole object.
//!
//! - SDK setup comes from the leaf crate `trailhose-awsconf` ([`AwsSettings`],
//!   [`load_sdk_config`], [`s3_client`], [`S3Clients`]), re-exported here.
//! - [`s3read`]: GetObject → decompress → split → chunks on the pipeline, with error
//!   classification ([`ReadError::is_retryable`]).
//! - [`dead_letters`]: dead letters as NDJSON.gz objects under `s3://bucket/prefix/`
//!   ([`S3DeadLetters`], durable before the acknowledgement), and [`open_dead_letters`] /
//!   [`open_source_dead_letters`]: a config string (a path or `s3://…`) → a place.
//! - [`replay`]: `trailhose replay`: dead-letter lines (S3 prefix or local file) back through
//!   the sinks they were refused by, with `--delete` only after acknowledgement.
//! - [`budget`]: the byte budget the object readers of a worker share ([`ReadBudget`]).
//!
//! Nothing here logs credentials: errors are rendered from the SDK's error context, which
//! holds codes and messages, never keys.

pub mod budget;
pub mod dead_letters;
pub mod replay;
pub mod s3read;

pub use budget::{Grant, ReadBudget};
pub use dead_letters::{open_dead_letters, open_source_dead_letters, S3DeadLetters, SseOptions};
pub use s3read::{
    read_into_pipeline, read_into_pipeline_within, stream_object, stream_object_within, ReadError,
    ReadReport,
};
pub use trailhose_awsconf::{
    load_sdk_config, s3_client, s3_client_in, AwsSettings, S3Clients, SdkConfig,
};
