//! The hub of the pipeline: takes record chunks from sources, counts them, and fans each out
//! to the sinks whose filter it passes. All channels are bounded, so a slow sink slows the
//! router, which slows the sources: backpressure instead of unbounded buffering.

use crate::ack::AckToken;
use crate::chunk::RecordChunk;
use crate::delivery::DeliveryControl;
use crate::filter::CompiledFilter;
use crate::sink::{Delivery, Sink, SinkReport};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use trailhose_core::sync::lock;

/// A chunk on its way to the router, with the source's obligation for it.
pub struct Routed {
    pub chunk: Arc<RecordChunk>,
    pub token: AckToken,
}

/// Counters every run reports (the `demo` summary and the metrics come from here).
#[derive(Default)]
pub struct PipelineStats {
    pub records: AtomicU64,
    pub record_bytes: AtomicU64,
    /// Records no sink's filter took.
    pub unrouted: AtomicU64,
    /// (account, region, eventCategory) → records.
    pub by_key: Mutex<BTreeMap<(String, String, String), u64>>,
    /// Named filter (drop rule) → records it kept from its sink.
    pub dropped_by_rule: Mutex<BTreeMap<String, u64>>,
}

impl PipelineStats {
    pub fn snapshot_by_key(&self) -> BTreeMap<(String, String, String), u64> {
        lock(&self.by_key).clone()
    }

    pub fn snapshot_dropped_by_rule(&self) -> BTreeMap<String, u64> {
        lock(&self.dropped_by_rule).clone()
    }
}

pub struct SinkSpec {
    pub sink: Box<dyn Sink>,
    pub filter: CompiledFilter,
}

/// A started pipeline: send [`Routed`] chunks to [`input`](Self::input), then
/// [`shutdown`](Self::shutdown) to flush every sink and collect their reports.
pub struct Pipeline {
    input: Option<mpsc::Sender<Routed>>,
    router: JoinHandle<()>,
    sinks: Vec<JoinHandle<SinkReport>>,
    pub stats: Arc<PipelineStats>,
    control: DeliveryControl,
}

impl Pipeline {
    /// `capacity` is the bound, in chunks, of every channel.
    pub fn start(sinks: Vec<SinkSpec>, capacity: usize) -> Pipeline {
        let capacity = capacity.max(1);
        let stats = Arc::new(PipelineStats::default());
        let mut routes = Vec::new();
        let mut handles = Vec::new();
        let control = DeliveryControl::new();
        for mut spec in sinks {
            let (tx, rx) = mpsc::channel(capacity);
            spec.sink.attach(&control);
            handles.push(tokio::spawn(spec.sink.run(rx)));
            routes.push((spec.filter, tx));
        }
        let (input, rx) = mpsc::channel(capacity);
        let router = tokio::spawn(route(rx, routes, stats.clone()));
        Pipeline {
            input: Some(input),
            router,
            sinks: handles,
            stats,
            control,
        }
    }

    /// The sinks' breakers and the stop-retrying switch (the source watches this).
    pub fn control(&self) -> DeliveryControl {
        self.control.clone()
    }

    pub fn input(&self) -> mpsc::Sender<Routed> {
        match &self.input {
            Some(tx) => tx.clone(),
            // Handed over with `take_input`: a closed sender, so a late source sees the
            // pipeline as shut rather than keeping it open.
            None => mpsc::channel(1).0,
        }
    }

    /// Hands the pipeline's own input sender to a source that knows when its input ends: once
    /// it (and its clones) are dropped, the sinks flush and acknowledge at once, without
    /// waiting for `shutdown` — needed by a source that waits for acknowledgements of batching
    /// sinks (the archive) before it returns.
    pub fn take_input(&mut self) -> mpsc::Sender<Routed> {
        match self.input.take() {
            Some(tx) => tx,
            None => mpsc::channel(1).0,
        }
    }

    /// Closes the input (all other senders must be gone too), waits for every sink to drain.
    pub async fn shutdown(self) -> Vec<SinkReport> {
        drop(self.input);
        if let Err(e) = self.router.await {
            tracing::error!(error = %e, "router task failed");
        }
        let mut reports = Vec::new();
        for h in self.sinks {
            match h.await {
                Ok(r) => reports.push(r),
                Err(e) => reports.push(SinkReport {
                    name: "?".into(),
                    errors: vec![format!("sink task failed: {e}")],
                    ..Default::default()
                }),
            }
        }
        reports
    }
}

async fn route(
    mut rx: mpsc::Receiver<Routed>,
    routes: Vec<(CompiledFilter, mpsc::Sender<Delivery>)>,
    stats: Arc<PipelineStats>,
) {
    let mut routed_flags = Vec::new();
    while let Some(Routed { chunk, token }) = rx.recv().await {
        count(&stats, &chunk);
        routed_flags.clear();
        routed_flags.resize(chunk.records.len(), false);
        for (filter, tx) in &routes {
            let selection: Option<Arc<[u32]>> = if filter.is_pass_all() {
                routed_flags.iter_mut().for_each(|f| *f = true);
                None
            } else {
                let sel: Vec<u32> = chunk
                    .records
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| filter.matches_record(chunk.bytes_of(r), &r.fields))
                    .map(|(i, _)| i as u32)
                    .collect();
                for &i in &sel {
                    routed_flags[i as usize] = true;
                }
                if let Some(rule) = filter.name() {
                    let dropped = (chunk.records.len() - sel.len()) as u64;
                    if dropped > 0 {
                        let mut m = lock(&stats.dropped_by_rule);
                        *m.entry(rule.to_string()).or_default() += dropped;
                    }
                }
                if sel.is_empty() {
                    continue;
                }
                Some(sel.into())
            };
            let d = Delivery {
                chunk: chunk.clone(),
                selection,
                token: token.split(),
            };
            if let Err(mpsc::error::SendError(d)) = tx.send(d).await {
                d.token.fail("sink stopped before the pipeline did");
            }
        }
        let unrouted = routed_flags.iter().filter(|f| !**f).count() as u64;
        stats.unrouted.fetch_add(unrouted, Ordering::Relaxed);
        token.ack();
    }
}

fn count(stats: &PipelineStats, chunk: &RecordChunk) {
    stats
        .records
        .fetch_add(chunk.records.len() as u64, Ordering::Relaxed);
    stats
        .record_bytes
        .fetch_add(chunk.data.len() as u64, Ordering::Relaxed);
    let mut m = lock(&stats.by_key);
    let mut last: Option<(&str, &str, &str)> = None;
    let mut run = 0u64;
    // Records of one chunk mostly share their key; count runs to take fewer map lookups.
    for r in &chunk.records {
        let f = &r.fields;
        let key = (
            f.account()
                .or(chunk.object.account.as_deref())
                .unwrap_or("-"),
            f.aws_region()
                .or(chunk.object.region.as_deref())
                .unwrap_or("-"),
            f.event_category().unwrap_or("-"),
        );
        if last == Some(key) {
            run += 1;
            continue;
        }
        if let Some((a, b, c)) = last {
            *m.entry((a.into(), b.into(), c.into())).or_default() += run;
        }
        last = Some(key);
        run = 1;
    }
    if let Some((a, b, c)) = last {
        *m.entry((a.into(), b.into(), c.into())).or_default() += run;
    }
}
