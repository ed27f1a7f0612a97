//! SQL and `lookup-events` over a trailhose archive (see `trailhose-archive`), with Apache
//! DataFusion. Kept out of the worker: only the `query`/`lookup` commands link it.
//!
//! The table `cloudtrail_logs` is the archive's Parquet files with Hive partition columns
//! `account`, `region`, `dt` (predicates on them prune whole directories) and Athena's column
//! names, so Athena's CloudTrail queries run unchanged. [`udf`] adds the Athena functions those
//! queries use; [`lookup`] turns `--lookup-attributes` into a query and its rows into the AWS
//! CLI's `Events[]` shape; [`s3`] reads `s3://` archives through the AWS SDK client.

pub mod jsonpath;
pub mod lookup;
pub mod output;
pub mod s3;
pub mod udf;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;

pub use datafusion::prelude::SessionContext as Session;

pub const TABLE: &str = "cloudtrail_logs";

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("archive {location}: {reason}")]
    Archive { location: String, reason: String },
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
    #[error("{0}")]
    Invalid(String),
}

/// A session over the archive at `location` (a directory, or `s3://bucket/prefix` read with
/// `s3_client`), with `cloudtrail_logs` registered.
pub async fn open(
    location: &str,
    s3_client: Option<aws_sdk_s3::Client>,
) -> Result<SessionContext, QueryError> {
    let config = SessionConfig::new()
        .with_information_schema(true)
        // Keep plain Utf8 (the archive's type) rather than view types: simpler for UDFs and
        // output, and the archive's strings are short.
        .set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        )
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    let ctx = SessionContext::new_with_config(config);
    udf::register(&ctx);
    let url = if let Some((bucket, prefix)) = trailhose_archive::store::split_s3_url(location) {
        let client = s3_client.ok_or_else(|| QueryError::Archive {
            location: location.to_owned(),
            reason: "an s3:// archive needs an S3 client".into(),
        })?;
        let store = s3::SdkObjectStore::new(client, bucket.clone());
        let base = url_parse(&format!("s3://{bucket}"), location)?;
        ctx.register_object_store(&base, Arc::new(store));
        if prefix.is_empty() {
            format!("s3://{bucket}/")
        } else {
            format!("s3://{bucket}/{prefix}/")
        }
    } else {
        let path = std::path::Path::new(location);
        if !path.is_dir() {
            return Err(QueryError::Archive {
                location: location.to_owned(),
                reason: "not a directory (write one with an `archive` sink, or give s3://…)".into(),
            });
        }
        let abs = std::fs::canonicalize(path).map_err(|e| QueryError::Archive {
            location: location.to_owned(),
            reason: e.to_string(),
        })?;
        format!("{}/", abs.display())
    };
    let table_url = ListingTableUrl::parse(&url)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(
            trailhose_archive::schema::PARTITION_COLUMNS
                .iter()
                .map(|c| (c.to_string(), DataType::Utf8))
                .collect(),
        );
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(trailhose_archive::schema::file_schema());
    let table = ListingTable::try_new(config)?;
    ctx.register_table(TABLE, Arc::new(table))?;
    Ok(ctx)
}

fn url_parse(s: &str, location: &str) -> Result<url::Url, QueryError> {
    url::Url::parse(s).map_err(|e| QueryError::Archive {
        location: location.to_owned(),
        reason: e.to_string(),
    })
}

/// Runs one SQL statement and collects its rows.
pub async fn sql(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    let df = ctx.sql(sql.trim().trim_end_matches(';')).await?;
    Ok(df.collect().await?)
}
