//! The archive: CloudTrail records as Parquet (or NDJSON.gz) files partitioned as Athena's
//! CloudTrail tables, in a local directory or S3 — the input of `trailhose query` / `lookup`.
//!
//! Pure: [`schema`] (the columns), [`columns`] (records → Arrow batches), [`partition`]
//! (record → `account=/region=/dt=` directory). I/O: [`file`] (one Parquet / NDJSON.gz file),
//! [`store`] (commit to a directory or upload to S3), [`sink`] (the pipeline sink: rolling,
//! bounded open files, acknowledgement after commit).

pub mod columns;
pub mod file;
pub mod partition;
pub mod schema;
pub mod sink;
pub mod store;

pub use sink::ArchiveSink;

/// The S3 client for an `s3://` archive location (region and endpoint from the sink config).
pub async fn s3_client(
    cfg: &trailhose_config::archive::ArchiveSinkConfig,
) -> Option<aws_sdk_s3::Client> {
    if !cfg.is_s3() {
        return None;
    }
    Some(
        trailhose_awsconf::s3_client(&trailhose_awsconf::AwsSettings {
            region: cfg.region.clone(),
            endpoint_url: cfg.endpoint_url.clone(),
        })
        .await,
    )
}
