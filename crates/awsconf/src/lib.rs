//! The AWS SDK setup every AWS-using crate shares — the leaf they all depend on, which
//! depends on no pipeline type: the SDK configuration from a region and an endpoint override
//! (emulators, VPC endpoints), S3 clients per region and assumed role (path-style addressing
//! behind an endpoint override), and the one place a client's region for a bucket is decided.
//!
//! Service-specific retry and timeout policies stay with their users (the CloudWatch Logs
//! client turns SDK retries off because the delivery engine retries; the SQS client's read
//! timeout outlasts its long poll).

pub use aws_config::SdkConfig;

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region};
use std::collections::HashMap;
use tokio::sync::Mutex;

/// Session name of assumed roles: it shows in the bucket owner's CloudTrail.
pub const ROLE_SESSION_NAME: &str = "trailhose";

/// What the SDK configuration is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// Region of the queue and default for buckets; `None` = the SDK's default chain.
    pub region: Option<String>,
    /// Endpoint override for every client (emulators). S3 then uses path-style addressing.
    pub endpoint_url: Option<String>,
}

/// Loads the SDK configuration: the default credential chain, plus the given region and
/// endpoint override.
pub async fn load_sdk_config(settings: &AwsSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// An S3 client on `base` for `region` (path-style addressing when an endpoint override is
/// set: emulators serve every bucket on one host).
pub fn s3_client_in(base: &SdkConfig, region: &str) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::config::Builder::from(base).region(Region::new(region.to_owned()));
    if base.endpoint_url().is_some() {
        b = b.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

/// One S3 client for `settings` (its region, or the default chain's; path-style addressing
/// when an endpoint override is set), for callers that need no per-bucket region or role.
pub async fn s3_client(settings: &AwsSettings) -> aws_sdk_s3::Client {
    let sdk = load_sdk_config(settings).await;
    S3Clients::new(sdk)
        .client(settings.region.as_deref(), None)
        .await
}

/// The SQS client of a configuration.
pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// S3 clients by (region, role): buckets in other regions get a client of their region, and
/// cross-account buckets one whose credentials come from STS AssumeRole (refreshed by the
/// provider before they expire).
pub struct S3Clients {
    base: SdkConfig,
    cache: Mutex<HashMap<(String, Option<String>), aws_sdk_s3::Client>>,
}

impl std::fmt::Debug for S3Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Clients")
            .field("region", &self.base.region())
            .field("endpoint_url", &self.base.endpoint_url())
            .finish_non_exhaustive()
    }
}

impl S3Clients {
    pub fn new(base: SdkConfig) -> Self {
        S3Clients {
            base,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The region used when neither the notification nor the bucket config names one.
    pub fn default_region(&self) -> String {
        self.base
            .region()
            .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string())
    }

    /// A client for `region` (default: the base region), with `role_arn` assumed if given.
    pub async fn client(&self, region: Option<&str>, role_arn: Option<&str>) -> aws_sdk_s3::Client {
        let region = region.map_or_else(|| self.default_region(), str::to_owned);
        let key = (region.clone(), role_arn.map(str::to_owned));
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(&key) {
            return c.clone();
        }
        let mut builder =
            aws_sdk_s3::config::Builder::from(&self.base).region(Region::new(region.clone()));
        if self.base.endpoint_url().is_some() {
            // Emulators serve every bucket on one host.
            builder = builder.force_path_style(true);
        }
        if let Some(role) = role_arn {
            // STS is called in the worker's own region; the provider caches and refreshes.
            let provider = AssumeRoleProvider::builder(role)
                .session_name(ROLE_SESSION_NAME)
                .configure(&self.base)
                .build()
                .await;
            builder = builder.credentials_provider(provider);
        }
        let client = aws_sdk_s3::Client::from_conf(builder.build());
        cache.insert(key, client.clone());
        client
    }
}
