//! `[[sinks]] type = "cloudwatch_logs"`.

use serde::Deserialize;
use std::collections::BTreeMap;
use trailhose_pipeline::delivery::DeliveryConfig;
use trailhose_pipeline::filter::RecordFilter;
use trailhose_pipeline::template::{NameKind, Template};

/// Retention values CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchLogsSinkConfig {
    pub name: String,
    /// Region of the CloudWatch Logs endpoint (default: the SDK's region chain).
    pub region: Option<String>,
    /// Endpoint override (tests, VPC endpoints).
    pub endpoint_url: Option<String>,
    #[serde(default = "default_group")]
    pub log_group: String,
    #[serde(default = "default_stream")]
    pub log_stream: String,
    pub retention_days: Option<i32>,
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// STANDARD | INFREQUENT_ACCESS | DELIVERY
    pub log_group_class: Option<String>,
    /// Per-event limit; 1 MiB − 26 today, 262,118 for accounts still on 256 KB.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// `[sinks.delivery]`: batching, rate, retry and breaker settings, the same names as every
    /// other batched sink; unnamed keys take CloudWatch Logs' defaults.
    #[serde(
        default = "DeliveryConfig::cloudwatch_logs",
        deserialize_with = "trailhose_pipeline::delivery::config::cloudwatch_logs_delivery"
    )]
    pub delivery: DeliveryConfig,
    /// Where records CloudWatch Logs can never take go, with the reason: a local file or
    /// `s3://bucket/prefix/` (a fleet's local disks are not durable).
    #[serde(alias = "overflow_path")]
    pub dead_letter: String,
    /// Before 0.2 these sat at the top of the sink; they are `[sinks.delivery]` keys now and
    /// are still read (a `delivery` key of the same name wins).
    linger_ms: Option<u64>,
    requests_per_second: Option<u32>,
    bytes_per_second: Option<u32>,
    max_in_flight: Option<usize>,
    max_buffered_bytes: Option<usize>,
    /// Before 0.2: attempts before a batch went to the overflow file. A transient failure no
    /// longer dead-letters anything; `delivery.max_retry_duration_seconds` bounds retries.
    max_retries: Option<u32>,
    #[serde(default)]
    pub filter: RecordFilter,
}

fn default_group() -> String {
    "/cloudtrail/{account}".into()
}
fn default_stream() -> String {
    "{region}/{eventCategory}".into()
}
fn default_max_event_bytes() -> usize {
    1_048_576 - 26
}

impl CloudWatchLogsSinkConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let n = &self.name;
        if let Err(e) = Template::parse(&self.log_group, NameKind::Group) {
            p.push(format!("sinks.{n}.log_group: {e}"));
        }
        if let Err(e) = Template::parse(&self.log_stream, NameKind::Stream) {
            p.push(format!("sinks.{n}.log_stream: {e}"));
        }
        if let Some(d) = self.retention_days {
            if !RETENTION_DAYS.contains(&d) {
                p.push(format!(
                    "sinks.{n}.retention_days = {d} is not one CloudWatch Logs accepts ({RETENTION_DAYS:?})"
                ));
            }
        }
        if let Some(c) = &self.log_group_class {
            if !["STANDARD", "INFREQUENT_ACCESS", "DELIVERY"].contains(&c.as_str()) {
                p.push(format!(
                    "sinks.{n}.log_group_class = {c:?} must be STANDARD, INFREQUENT_ACCESS or DELIVERY"
                ));
            }
        }
        if self.tags.len() > 50 {
            p.push(format!("sinks.{n}.tags: at most 50 tags"));
        }
        if self.max_event_bytes == 0 || self.max_event_bytes > 1_048_576 - 26 {
            p.push(format!(
                "sinks.{n}.max_event_bytes = {} must be 1..=1048550",
                self.max_event_bytes
            ));
        }
        self.delivery()
            .problems(&format!("sinks.{n}.delivery"), &mut p);
        if self.dead_letter.is_empty() {
            p.push(format!(
                "sinks.{n}.dead_letter is empty: name a file or s3://bucket/prefix/ for records CloudWatch Logs can never take"
            ));
        }
        p
    }
}

impl CloudWatchLogsSinkConfig {
    /// The delivery settings, with the keys of older configs folded in.
    pub fn delivery(&self) -> DeliveryConfig {
        let mut d = self.delivery.clone();
        let base = DeliveryConfig::cloudwatch_logs();
        // A `[sinks.delivery]` key differing from the default was set there and wins.
        let fold = |legacy: Option<u64>, current: u64, default: u64| match legacy {
            Some(v) if current == default => v,
            _ => current,
        };
        d.linger_ms = fold(self.linger_ms, d.linger_ms, base.linger_ms);
        d.requests_per_second = fold(
            self.requests_per_second.map(u64::from),
            u64::from(d.requests_per_second),
            u64::from(base.requests_per_second),
        ) as u32;
        d.bytes_per_second = fold(
            self.bytes_per_second.map(u64::from),
            u64::from(d.bytes_per_second),
            u64::from(base.bytes_per_second),
        ) as u32;
        d.max_in_flight = fold(
            self.max_in_flight.map(|v| v as u64),
            d.max_in_flight as u64,
            base.max_in_flight as u64,
        ) as usize;
        d.max_buffered_bytes = fold(
            self.max_buffered_bytes.map(|v| v as u64),
            d.max_buffered_bytes as u64,
            base.max_buffered_bytes as u64,
        ) as usize;
        d
    }

    /// Keys of older configs still in use, for `check-config` to point at.
    pub fn legacy_keys(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let set = [
            ("linger_ms", self.linger_ms.is_some()),
            ("requests_per_second", self.requests_per_second.is_some()),
            ("bytes_per_second", self.bytes_per_second.is_some()),
            ("max_in_flight", self.max_in_flight.is_some()),
            ("max_buffered_bytes", self.max_buffered_bytes.is_some()),
            ("max_retries", self.max_retries.is_some()),
        ];
        for (k, on) in set {
            if on {
                v.push(k);
            }
        }
        v
    }
}
