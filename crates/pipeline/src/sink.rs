//! What a sink is to the pipeline: a task that owns a receiver of [`Delivery`] values and
//! answers every one of them through its [`AckToken`].

use crate::ack::AckToken;
use crate::chunk::{RecordChunk, RecordMeta};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use trailhose_core::sync::lock;

/// A chunk handed to one sink, with the subset of its records routed there.
pub struct Delivery {
    pub chunk: Arc<RecordChunk>,
    /// Indices into `chunk.records`; `None` means all of them.
    pub selection: Option<Arc<[u32]>>,
    pub token: AckToken,
}

impl Delivery {
    pub fn records(&self) -> impl Iterator<Item = &RecordMeta> + '_ {
        let all = &self.chunk.records;
        let sel = self.selection.as_deref();
        let n = sel.map_or(all.len(), <[u32]>::len);
        (0..n).filter_map(move |i| match sel {
            Some(s) => all.get(s[i] as usize),
            None => all.get(i),
        })
    }

    pub fn record_count(&self) -> usize {
        self.selection
            .as_deref()
            .map_or(self.chunk.records.len(), <[u32]>::len)
    }
}

/// What a sink did over its life, reported when its input closes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    pub name: String,
    pub records: u64,
    pub bytes: u64,
    pub dead_lettered: u64,
    pub failed_deliveries: u64,
    /// Requests made to the destination (batched sinks).
    pub batches: u64,
    /// Throttling or unavailability answers from the destination.
    pub throttled: u64,
    pub retries: u64,
    /// Human-readable notes (e.g. the last error), never credentials.
    pub errors: Vec<String>,
}

pub type SinkFuture = Pin<Box<dyn Future<Output = SinkReport> + Send + 'static>>;

pub trait Sink: Send + 'static {
    fn name(&self) -> &str;
    /// Joins the running pipeline's delivery board: a sink that can fail registers its
    /// breaker there (the source pauses while it is open) and listens for the request to stop
    /// retrying. Sinks that cannot fail keep the default.
    fn attach(&mut self, _control: &crate::delivery::DeliveryControl) {}
    /// Consumes deliveries until the channel closes, then flushes and reports. Must answer every
    /// token: ack, dead-letter or fail.
    fn run(self: Box<Self>, rx: mpsc::Receiver<Delivery>) -> SinkFuture;
}

/// Live counters of a sink, readable while it runs (the metrics endpoint mirrors them).
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub name: String,
    pub records: std::sync::atomic::AtomicU64,
    pub dead_lettered: std::sync::atomic::AtomicU64,
    pub batches: std::sync::atomic::AtomicU64,
    pub throttled: std::sync::atomic::AtomicU64,
    pub retries: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
    pub failed_deliveries: std::sync::atomic::AtomicU64,
    /// Distinct notes (the last errors), at most eight; never credentials.
    pub errors: std::sync::Mutex<Vec<String>>,
}

impl SinkCounters {
    pub fn note(&self, e: &str) {
        let mut v = lock(&self.errors);
        if v.len() < 8 && !v.iter().any(|x| x == e) {
            v.push(e.to_string());
        }
    }

    /// The end-of-run report from the live counters.
    pub fn report(&self) -> SinkReport {
        use std::sync::atomic::Ordering::Relaxed;
        let errors = lock(&self.errors).clone();
        SinkReport {
            name: self.name.clone(),
            records: self.records.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            failed_deliveries: self.failed_deliveries.load(Relaxed),
            batches: self.batches.load(Relaxed),
            throttled: self.throttled.load(Relaxed),
            retries: self.retries.load(Relaxed),
            errors,
        }
    }
}

/// Every sink's live counters in this process.
pub fn live_sinks() -> &'static std::sync::Mutex<Vec<Arc<SinkCounters>>> {
    static LIVE: std::sync::OnceLock<std::sync::Mutex<Vec<Arc<SinkCounters>>>> =
        std::sync::OnceLock::new();
    LIVE.get_or_init(Default::default)
}

pub fn register_sink_counters(name: &str) -> Arc<SinkCounters> {
    let c = Arc::new(SinkCounters {
        name: name.to_string(),
        ..Default::default()
    });
    lock(live_sinks()).push(c.clone());
    c
}
