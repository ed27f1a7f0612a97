//! A small metrics registry: counters, gauges and histograms with label sets, rendered in the
//! Prometheus text format. Names follow OpenTelemetry semantic conventions where they exist
//! (`messaging.*` for SQS), with dots turned into underscores for Prometheus.
//!
//! Hot paths hold an `Arc<Counter>` and add with one atomic; the registry lock is taken only
//! when a new label set is first seen and when rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub type Labels = Vec<(&'static str, String)>;

#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Mirrors a total kept elsewhere (e.g. a component's own stats), read at scrape time.
    pub fn set_total(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

#[derive(Default, Debug)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in micro-units to keep it atomic.
    sum_micros: AtomicU64,
}

/// Buckets for lags and latencies in seconds: one second to a day.
pub const SECONDS_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 21600.0, 86400.0,
];

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(&SECONDS_BUCKETS)
    }
}

impl Histogram {
    pub fn new(bounds: &[f64]) -> Self {
        Histogram {
            bounds: bounds.to_vec(),
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&self.buckets) {
            if v <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesValue {
    Counter(u64),
    Gauge(i64),
}

enum Family {
    Counter(BTreeMap<Labels, Arc<Counter>>),
    Gauge(BTreeMap<Labels, Arc<Gauge>>),
    Histogram(Vec<f64>, BTreeMap<Labels, Arc<Histogram>>),
}

struct Entry {
    help: &'static str,
    family: Family,
}

type Collector = Box<dyn Fn(&Registry) + Send + Sync>;

#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Entry>>,
    /// Run before each render to copy values kept by components into series.
    collectors: Mutex<Vec<Collector>>,
}

fn sorted(mut l: Labels) -> Labels {
    l.sort();
    l
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<&'static str, Entry>) -> T) -> T {
        let mut g = match self.families.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }

    pub fn counter(&self, name: &'static str, help: &'static str, labels: Labels) -> Arc<Counter> {
        self.with(|m| {
            let e = m.entry(name).or_insert_with(|| Entry {
                help,
                family: Family::Counter(BTreeMap::new()),
            });
            match &mut e.family {
                Family::Counter(map) => map.entry(sorted(labels)).or_default().clone(),
                // A name registered with another type: hand out a detached instrument rather
                // than panic; the mistake shows up as a missing series in tests.
                _ => Arc::new(Counter::default()),
            }
        })
    }

    pub fn gauge(&self, name: &'static str, help: &'static str, labels: Labels) -> Arc<Gauge> {
        self.with(|m| {
            let e = m.entry(name).or_insert_with(|| Entry {
                help,
                family: Family::Gauge(BTreeMap::new()),
            });
            match &mut e.family {
                Family::Gauge(map) => map.entry(sorted(labels)).or_default().clone(),
                _ => Arc::new(Gauge::default()),
            }
        })
    }

    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        bounds: &[f64],
        labels: Labels,
    ) -> Arc<Histogram> {
        self.with(|m| {
            let e = m.entry(name).or_insert_with(|| Entry {
                help,
                family: Family::Histogram(bounds.to_vec(), BTreeMap::new()),
            });
            match &mut e.family {
                Family::Histogram(b, map) => map
                    .entry(sorted(labels))
                    .or_insert_with(|| Arc::new(Histogram::new(b)))
                    .clone(),
                _ => Arc::new(Histogram::new(bounds)),
            }
        })
    }

    /// (name, kind) of every family.
    pub fn families(&self) -> Vec<(&'static str, &'static str)> {
        self.with(|m| {
            m.iter()
                .map(|(n, e)| {
                    let kind = match e.family {
                        Family::Counter(_) => "counter",
                        Family::Gauge(_) => "gauge",
                        Family::Histogram(..) => "histogram",
                    };
                    (*n, kind)
                })
                .collect()
        })
    }

    /// Current values of a counter or gauge family (collectors are not run here).
    pub fn series(&self, name: &str) -> Vec<(Labels, SeriesValue)> {
        self.with(|m| match m.get(name).map(|e| &e.family) {
            Some(Family::Counter(map)) => map
                .iter()
                .map(|(l, c)| (l.clone(), SeriesValue::Counter(c.get())))
                .collect(),
            Some(Family::Gauge(map)) => map
                .iter()
                .map(|(l, g)| (l.clone(), SeriesValue::Gauge(g.get())))
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Exposes a histogram owned by a component under `name`.
    pub fn attach_histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: Labels,
        h: Arc<Histogram>,
    ) {
        self.with(|m| {
            let e = m.entry(name).or_insert_with(|| Entry {
                help,
                family: Family::Histogram(h.bounds.clone(), BTreeMap::new()),
            });
            if let Family::Histogram(_, map) = &mut e.family {
                map.insert(sorted(labels), h);
            }
        });
    }

    /// Current value of a counter series, for tests and summaries.
    pub fn counter_value(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        self.with(|m| match &m.get(name)?.family {
            Family::Counter(map) => map
                .iter()
                .find(|(l, _)| labels_match(l, labels))
                .map(|(_, c)| c.get()),
            _ => None,
        })
    }

    pub fn add_collector(&self, f: impl Fn(&Registry) + Send + Sync + 'static) {
        let mut g = match self.collectors.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.push(Box::new(f));
    }

    /// Runs the collectors (so values mirrored from components are current).
    pub fn collect(&self) {
        let g = match self.collectors.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for c in g.iter() {
            c(self);
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        self.collect();
        let mut out = String::new();
        self.with(|m| {
            for (name, e) in m.iter() {
                let (kind, n) = match &e.family {
                    Family::Counter(_) => ("counter", format!("{name}_total")),
                    Family::Gauge(_) => ("gauge", name.to_string()),
                    Family::Histogram(..) => ("histogram", name.to_string()),
                };
                let _ = writeln!(out, "# HELP {n} {}", e.help);
                let _ = writeln!(out, "# TYPE {n} {kind}");
                match &e.family {
                    Family::Counter(map) => {
                        for (l, c) in map {
                            let _ = writeln!(out, "{n}{} {}", fmt_labels(l, None), c.get());
                        }
                    }
                    Family::Gauge(map) => {
                        for (l, g) in map {
                            let _ = writeln!(out, "{n}{} {}", fmt_labels(l, None), g.get());
                        }
                    }
                    Family::Histogram(bounds, map) => {
                        for (l, h) in map {
                            for (b, c) in bounds.iter().zip(&h.buckets) {
                                let le = format!("{b}");
                                let _ = writeln!(
                                    out,
                                    "{n}_bucket{} {}",
                                    fmt_labels(l, Some(&le)),
                                    c.load(Ordering::Relaxed)
                                );
                            }
                            let _ = writeln!(
                                out,
                                "{n}_bucket{} {}",
                                fmt_labels(l, Some("+Inf")),
                                h.count()
                            );
                            let _ = writeln!(
                                out,
                                "{n}_sum{} {}",
                                fmt_labels(l, None),
                                h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
                            );
                            let _ = writeln!(out, "{n}_count{} {}", fmt_labels(l, None), h.count());
                        }
                    }
                }
            }
        });
        out
    }
}

fn labels_match(have: &Labels, want: &[(&str, &str)]) -> bool {
    want.len() == have.len()
        && want
            .iter()
            .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn fmt_labels(l: &Labels, le: Option<&str>) -> String {
    if l.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let r = Registry::new();
        let c = r.counter(
            "trailhose_messages_received",
            "SQS messages received",
            vec![("queue", "q\"1".into())],
        );
        c.add(3);
        r.counter(
            "trailhose_messages_received",
            "x",
            vec![("queue", "q\"1".into())],
        )
        .inc();
        let g = r.gauge(
            "trailhose_objects_in_flight",
            "objects being processed",
            vec![],
        );
        g.set(2);
        let h = r.histogram(
            "trailhose_lag_seconds",
            "event to delivery lag",
            &[1.0, 60.0],
            vec![],
        );
        h.observe(0.5);
        h.observe(30.0);
        h.observe(100.0);
        let text = r.render();
        assert!(
            text.contains("# TYPE trailhose_messages_received_total counter"),
            "{text}"
        );
        assert!(
            text.contains("trailhose_messages_received_total{queue=\"q\\\"1\"} 4"),
            "{text}"
        );
        assert!(text.contains("trailhose_objects_in_flight 2"), "{text}");
        assert!(
            text.contains("trailhose_lag_seconds_bucket{le=\"1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("trailhose_lag_seconds_bucket{le=\"60\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("trailhose_lag_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(text.contains("trailhose_lag_seconds_count 3"), "{text}");
        assert_eq!(
            r.counter_value("trailhose_messages_received", &[("queue", "q\"1")]),
            Some(4)
        );
    }
}
