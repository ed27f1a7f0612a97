//! `[sinks.delivery]`: one set of names for batching, concurrency, rate, retry and breaker
//! settings, the same for every batched sink. Each sink kind starts from its own defaults
//! ([`DeliveryConfig::cloudwatch_logs`], [`DeliveryConfig::default`] for SIEMs) and a config
//! overrides only the keys it names.

use super::breaker::ProbeSchedule;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Records per request at most (capped by the destination's own rule).
    pub max_events: usize,
    /// Request body bytes (before compression) at most; a single larger record goes alone.
    pub max_bytes: usize,
    /// Send a partial batch after this long.
    pub linger_ms: u64,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    pub requests_per_second: u32,
    pub bytes_per_second: u32,
    /// A batch that keeps failing for a transient or sink-wide reason is retried for this
    /// long, then its deliveries fail (the source brings the objects back; nothing is
    /// dead-lettered for such a reason).
    pub max_retry_duration_seconds: u64,
    /// First retry delay; doubles per attempt up to `max_backoff_ms`, with jitter. A
    /// destination's `Retry-After` is honoured when longer.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// While the breaker is open: first probe after about this long, doubling up to
    /// `max_probe_interval_ms`, with jitter.
    pub probe_interval_ms: u64,
    pub max_probe_interval_ms: u64,
    /// Whole-request deadline (connect, send, response body).
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Records buffered across all of the sink's destinations before every buffer is
    /// flushed, so many destinations cannot add up to unbounded memory.
    pub max_buffered_bytes: usize,
}

impl Default for DeliveryConfig {
    /// The SIEM sinks' defaults.
    fn default() -> Self {
        DeliveryConfig {
            max_events: 500,
            max_bytes: 4 << 20,
            linger_ms: 1000,
            max_in_flight: 4,
            requests_per_second: 100,
            bytes_per_second: 100 << 20,
            max_retry_duration_seconds: 900,
            backoff_ms: 200,
            max_backoff_ms: 30_000,
            probe_interval_ms: 1000,
            max_probe_interval_ms: 30_000,
            request_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            max_buffered_bytes: 64 << 20,
        }
    }
}

impl DeliveryConfig {
    /// CloudWatch Logs' defaults: PutLogEvents' own batch limits, a high request rate (the
    /// quota is per account and region), several calls in flight.
    pub fn cloudwatch_logs() -> Self {
        DeliveryConfig {
            max_events: 10_000,
            max_bytes: 1_048_576,
            requests_per_second: 800,
            bytes_per_second: 256 << 20,
            max_in_flight: 8,
            backoff_ms: 100,
            max_backoff_ms: 10_000,
            ..DeliveryConfig::default()
        }
    }

    pub fn max_retry_duration(&self) -> Duration {
        Duration::from_secs(self.max_retry_duration_seconds)
    }

    pub fn probe_schedule(&self) -> ProbeSchedule {
        ProbeSchedule {
            first: Duration::from_millis(self.probe_interval_ms.max(1)),
            max: Duration::from_millis(self.max_probe_interval_ms.max(self.probe_interval_ms)),
        }
    }

    /// Problems, each prefixed with `at` (e.g. `sinks.hec.delivery`).
    pub fn problems(&self, at: &str, p: &mut Vec<String>) {
        let mut check = |ok: bool, what: String| {
            if !ok {
                p.push(format!("{at}.{what}"));
            }
        };
        check(
            (1..=100_000).contains(&self.max_events),
            format!("max_events = {} must be 1..=100000", self.max_events),
        );
        check(
            (1024..=256 << 20).contains(&self.max_bytes),
            format!("max_bytes = {} must be 1 KiB..=256 MiB", self.max_bytes),
        );
        check(
            (1..=60_000).contains(&self.linger_ms),
            format!("linger_ms = {} must be 1..=60000", self.linger_ms),
        );
        check(
            (1..=256).contains(&self.max_in_flight),
            format!("max_in_flight = {} must be 1..=256", self.max_in_flight),
        );
        check(
            self.requests_per_second > 0 && self.bytes_per_second >= 1024,
            "requests_per_second must be > 0 and bytes_per_second ≥ 1024".into(),
        );
        check(
            (1..=86_400).contains(&self.max_retry_duration_seconds),
            format!(
                "max_retry_duration_seconds = {} must be 1..=86400",
                self.max_retry_duration_seconds
            ),
        );
        check(
            self.backoff_ms > 0 && self.max_backoff_ms >= self.backoff_ms,
            "backoff_ms must be > 0 and max_backoff_ms ≥ backoff_ms".into(),
        );
        check(
            self.probe_interval_ms > 0 && self.max_probe_interval_ms >= self.probe_interval_ms,
            "probe_interval_ms must be > 0 and max_probe_interval_ms ≥ probe_interval_ms".into(),
        );
        check(
            self.request_timeout_ms >= 100 && self.connect_timeout_ms >= 100,
            "request_timeout_ms and connect_timeout_ms must be ≥ 100".into(),
        );
        check(
            self.max_buffered_bytes >= 2 << 20,
            format!(
                "max_buffered_bytes = {} must be at least 2 MiB",
                self.max_buffered_bytes
            ),
        );
    }
}

/// The keys a config sets; the rest come from the sink kind's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryOverrides {
    pub max_events: Option<usize>,
    pub max_bytes: Option<usize>,
    pub linger_ms: Option<u64>,
    pub max_in_flight: Option<usize>,
    pub requests_per_second: Option<u32>,
    pub bytes_per_second: Option<u32>,
    pub max_retry_duration_seconds: Option<u64>,
    pub backoff_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
    pub probe_interval_ms: Option<u64>,
    pub max_probe_interval_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub max_buffered_bytes: Option<usize>,
}

impl DeliveryOverrides {
    pub fn over(&self, base: DeliveryConfig) -> DeliveryConfig {
        DeliveryConfig {
            max_events: self.max_events.unwrap_or(base.max_events),
            max_bytes: self.max_bytes.unwrap_or(base.max_bytes),
            linger_ms: self.linger_ms.unwrap_or(base.linger_ms),
            max_in_flight: self.max_in_flight.unwrap_or(base.max_in_flight),
            requests_per_second: self.requests_per_second.unwrap_or(base.requests_per_second),
            bytes_per_second: self.bytes_per_second.unwrap_or(base.bytes_per_second),
            max_retry_duration_seconds: self
                .max_retry_duration_seconds
                .unwrap_or(base.max_retry_duration_seconds),
            backoff_ms: self.backoff_ms.unwrap_or(base.backoff_ms),
            max_backoff_ms: self.max_backoff_ms.unwrap_or(base.max_backoff_ms),
            probe_interval_ms: self.probe_interval_ms.unwrap_or(base.probe_interval_ms),
            max_probe_interval_ms: self
                .max_probe_interval_ms
                .unwrap_or(base.max_probe_interval_ms),
            request_timeout_ms: self.request_timeout_ms.unwrap_or(base.request_timeout_ms),
            connect_timeout_ms: self.connect_timeout_ms.unwrap_or(base.connect_timeout_ms),
            max_buffered_bytes: self.max_buffered_bytes.unwrap_or(base.max_buffered_bytes),
        }
    }
}

impl<'de> Deserialize<'de> for DeliveryConfig {
    /// Keys not named take the SIEM defaults; sinks with other defaults deserialise
    /// [`DeliveryOverrides`] and apply them over their own base.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DeliveryOverrides::deserialize(d).map(|o| o.over(DeliveryConfig::default()))
    }
}

/// `deserialize_with` for a CloudWatch Logs sink's `delivery` table.
pub fn cloudwatch_logs_delivery<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<DeliveryConfig, D::Error> {
    DeliveryOverrides::deserialize(d).map(|o| o.over(DeliveryConfig::cloudwatch_logs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_keys_override_the_kinds_defaults() {
        let o: DeliveryOverrides =
            serde_json::from_str(r#"{"linger_ms": 250, "max_retry_duration_seconds": 60}"#)
                .expect("parse");
        let cwl = o.over(DeliveryConfig::cloudwatch_logs());
        assert_eq!(cwl.linger_ms, 250);
        assert_eq!(cwl.max_events, 10_000);
        assert_eq!(cwl.max_retry_duration(), Duration::from_secs(60));
        let siem = o.over(DeliveryConfig::default());
        assert_eq!(siem.max_events, 500);
        let mut p = Vec::new();
        cwl.problems("sinks.c.delivery", &mut p);
        siem.problems("sinks.s.delivery", &mut p);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        assert!(serde_json::from_str::<DeliveryOverrides>(r#"{"max_attempts": 3}"#).is_err());
        let c = DeliveryConfig {
            max_retry_duration_seconds: 0,
            probe_interval_ms: 0,
            ..DeliveryConfig::default()
        };
        let mut p = Vec::new();
        c.problems("sinks.x.delivery", &mut p);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("sinks.x.delivery.max_retry_duration_seconds"));
    }
}
