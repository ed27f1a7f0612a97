//! Worker counters and gauges: lock-free while running, read with [`WorkerStats::snapshot`]
//! (the CLI prints it; the metrics exporter reads the same fields).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use trailhose_core::sync::lock;

/// Sum and count of one stage's latency.
#[derive(Debug, Default)]
pub struct Latency {
    total_us: AtomicU64,
    count: AtomicU64,
    max_us: AtomicU64,
}

impl Latency {
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            count: self.count.load(Ordering::Relaxed),
            total: Duration::from_micros(self.total_us.load(Ordering::Relaxed)),
            max: Duration::from_micros(self.max_us.load(Ordering::Relaxed)),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    pub count: u64,
    pub total: Duration,
    pub max: Duration,
}

impl LatencySnapshot {
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            self.total / u32::try_from(self.count).unwrap_or(u32::MAX)
        }
    }
}

#[derive(Debug, Default)]
pub struct WorkerStats {
    pub receive_calls: AtomicU64,
    pub receive_errors: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_deleted: AtomicU64,
    pub messages_dead_lettered: AtomicU64,
    /// Made visible again at shutdown.
    pub messages_released: AtomicU64,
    /// Left for another try after a retryable failure.
    pub messages_retried: AtomicU64,
    /// Of those (or released at shutdown), the ones a failing sink caused; they do not count
    /// toward the poison guard.
    pub messages_sink_retried: AtomicU64,
    /// Receive loops waiting because a sink's breaker is open (a gauge).
    pub receive_paused: AtomicI64,
    /// Times a receive loop paused for a failing sink.
    pub receive_pauses: AtomicU64,
    pub messages_ignored: AtomicU64,
    pub test_events: AtomicU64,
    pub delete_failures: AtomicU64,
    pub dead_letter_failures: AtomicU64,
    pub heartbeats: AtomicU64,
    pub heartbeat_failures: AtomicU64,
    /// GetObject calls made.
    pub objects_read: AtomicU64,
    pub objects_delivered: AtomicU64,
    pub objects_failed_permanent: AtomicU64,
    pub objects_failed_retryable: AtomicU64,
    /// Skipped by the dedup cache.
    pub duplicates: AtomicU64,
    /// Skip label → objects (key filters, prefixes, ignored notification records).
    pub skipped: Mutex<BTreeMap<String, u64>>,
    pub compressed_bytes: AtomicU64,
    pub decompressed_bytes: AtomicU64,
    pub records: AtomicU64,
    /// Gauges.
    pub messages_in_flight: AtomicI64,
    pub objects_in_flight: AtomicI64,
    /// now − delivery time of the last delivered object (from its key), and the maximum seen.
    pub lag_ms_last: AtomicI64,
    pub lag_ms_max: AtomicI64,
    /// Distribution of the lag, in seconds.
    pub lag_seconds: std::sync::Arc<trailhose_ops::Histogram>,
    /// GetObject until response headers.
    pub latency_first_byte: Latency,
    /// Whole object read (GetObject to last chunk handed on).
    pub latency_read: Latency,
    /// Last chunk handed on until every sink answered.
    pub latency_ack: Latency,
    /// Receive until the message was deleted, dead-lettered, released or left.
    pub latency_message: Latency,
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl WorkerStats {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn skip(&self, reason: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut m = lock(&self.skipped);
        *m.entry(reason.to_owned()).or_default() += n;
    }

    pub fn lag(&self, ms: i64) {
        self.lag_seconds.observe(ms.max(0) as f64 / 1000.0);
        self.lag_ms_last.store(ms, Ordering::Relaxed);
        self.lag_ms_max.fetch_max(ms, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> WorkerStatsSnapshot {
        WorkerStatsSnapshot {
            receive_calls: load(&self.receive_calls),
            receive_errors: load(&self.receive_errors),
            messages_received: load(&self.messages_received),
            messages_deleted: load(&self.messages_deleted),
            messages_dead_lettered: load(&self.messages_dead_lettered),
            messages_released: load(&self.messages_released),
            messages_retried: load(&self.messages_retried),
            messages_sink_retried: load(&self.messages_sink_retried),
            receive_pauses: load(&self.receive_pauses),
            messages_ignored: load(&self.messages_ignored),
            test_events: load(&self.test_events),
            delete_failures: load(&self.delete_failures),
            dead_letter_failures: load(&self.dead_letter_failures),
            heartbeats: load(&self.heartbeats),
            heartbeat_failures: load(&self.heartbeat_failures),
            objects_read: load(&self.objects_read),
            objects_delivered: load(&self.objects_delivered),
            objects_failed_permanent: load(&self.objects_failed_permanent),
            objects_failed_retryable: load(&self.objects_failed_retryable),
            duplicates: load(&self.duplicates),
            skipped: lock(&self.skipped).clone(),
            compressed_bytes: load(&self.compressed_bytes),
            decompressed_bytes: load(&self.decompressed_bytes),
            records: load(&self.records),
            messages_in_flight: self.messages_in_flight.load(Ordering::Relaxed),
            objects_in_flight: self.objects_in_flight.load(Ordering::Relaxed),
            lag_ms_last: self.lag_ms_last.load(Ordering::Relaxed),
            lag_ms_max: self.lag_ms_max.load(Ordering::Relaxed),
            latency_first_byte: self.latency_first_byte.snapshot(),
            latency_read: self.latency_read.snapshot(),
            latency_ack: self.latency_ack.snapshot(),
            latency_message: self.latency_message.snapshot(),
        }
    }
}

/// A point-in-time copy of [`WorkerStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStatsSnapshot {
    pub receive_calls: u64,
    pub receive_errors: u64,
    pub messages_received: u64,
    pub messages_deleted: u64,
    pub messages_dead_lettered: u64,
    pub messages_released: u64,
    pub messages_retried: u64,
    pub messages_sink_retried: u64,
    pub receive_pauses: u64,
    pub messages_ignored: u64,
    pub test_events: u64,
    pub delete_failures: u64,
    pub dead_letter_failures: u64,
    pub heartbeats: u64,
    pub heartbeat_failures: u64,
    pub objects_read: u64,
    pub objects_delivered: u64,
    pub objects_failed_permanent: u64,
    pub objects_failed_retryable: u64,
    pub duplicates: u64,
    pub skipped: BTreeMap<String, u64>,
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    pub records: u64,
    pub messages_in_flight: i64,
    pub objects_in_flight: i64,
    pub lag_ms_last: i64,
    pub lag_ms_max: i64,
    pub latency_first_byte: LatencySnapshot,
    pub latency_read: LatencySnapshot,
    pub latency_ack: LatencySnapshot,
    pub latency_message: LatencySnapshot,
}

impl fmt::Display for WorkerStatsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sqs messages: {} received, {} deleted, {} dead-lettered, {} released, {} left for retry ({} because a sink failed; receiving paused {} times), {} test events, {} ignored",
            self.messages_received,
            self.messages_deleted,
            self.messages_dead_lettered,
            self.messages_released,
            self.messages_retried,
            self.messages_sink_retried,
            self.receive_pauses,
            self.test_events,
            self.messages_ignored
        )?;
        writeln!(
            f,
            "s3 objects: {} read, {} delivered, {} failed permanently, {} failed (retryable), {} duplicates suppressed",
            self.objects_read,
            self.objects_delivered,
            self.objects_failed_permanent,
            self.objects_failed_retryable,
            self.duplicates
        )?;
        for (reason, n) in &self.skipped {
            writeln!(f, "objects skipped: {n} ({reason})")?;
        }
        writeln!(
            f,
            "records: {}  compressed: {:.1} MB  uncompressed: {:.1} MB  lag: last {:.1} s, max {:.1} s",
            self.records,
            self.compressed_bytes as f64 / 1e6,
            self.decompressed_bytes as f64 / 1e6,
            self.lag_ms_last as f64 / 1e3,
            self.lag_ms_max as f64 / 1e3
        )?;
        write!(
            f,
            "latency (mean/max): first byte {:?}/{:?}, read {:?}/{:?}, ack {:?}/{:?}, message {:?}/{:?}; errors: {} receive, {} delete, {} dead-letter, {} heartbeat",
            self.latency_first_byte.mean(),
            self.latency_first_byte.max,
            self.latency_read.mean(),
            self.latency_read.max,
            self.latency_ack.mean(),
            self.latency_ack.max,
            self.latency_message.mean(),
            self.latency_message.max,
            self.receive_errors,
            self.delete_failures,
            self.dead_letter_failures,
            self.heartbeat_failures
        )
    }
}
