//! `[[sinks]] type = "cloudwatch_logs"`.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
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
    /// Flush a partial batch after this long.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Per-event limit; 1 MiB − 26 today, 262,118 for accounts still on 256 KB.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// PutLogEvents requests per second for this sink's account and region.
    #[serde(default = "default_rps")]
    pub requests_per_second: u32,
    #[serde(default = "default_bps")]
    pub bytes_per_second: u32,
    /// PutLogEvents calls in flight at once (several per stream are allowed).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Bound on records buffered across all destinations; above it every buffer is flushed,
    /// so many destinations cannot add up to unbounded memory.
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: usize,
    /// Attempts per batch before it goes to the overflow destination.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Records CloudWatch Logs cannot take, with the reason.
    pub overflow_path: PathBuf,
    #[serde(default)]
    pub filter: RecordFilter,
}

fn default_group() -> String {
    "/cloudtrail/{account}".into()
}
fn default_stream() -> String {
    "{region}/{eventCategory}".into()
}
fn default_linger_ms() -> u64 {
    1000
}
fn default_max_event_bytes() -> usize {
    1_048_576 - 26
}
fn default_rps() -> u32 {
    800
}
fn default_bps() -> u32 {
    256 * 1024 * 1024
}
fn default_in_flight() -> usize {
    8
}
fn default_max_buffered_bytes() -> usize {
    64 << 20
}
fn default_retries() -> u32 {
    8
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
        if self.requests_per_second == 0 || self.bytes_per_second < 1024 {
            p.push(format!(
                "sinks.{n}: requests_per_second must be > 0 and bytes_per_second ≥ 1024"
            ));
        }
        if self.max_in_flight == 0 || self.max_in_flight > 256 {
            p.push(format!(
                "sinks.{n}.max_in_flight = {} must be 1..=256",
                self.max_in_flight
            ));
        }
        if self.max_buffered_bytes < 2 << 20 {
            p.push(format!(
                "sinks.{n}.max_buffered_bytes = {} must be at least 2 MiB",
                self.max_buffered_bytes
            ));
        }
        if self.linger_ms == 0 || self.linger_ms > 60_000 {
            p.push(format!(
                "sinks.{n}.linger_ms = {} must be 1..=60000",
                self.linger_ms
            ));
        }
        p
    }
}
