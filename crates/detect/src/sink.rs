//! The detection stage: a pipeline [`Sink`] that sees every record, evaluates the rule set and
//! feeds the anomaly detector, and hands alerts to the alert outputs.
//!
//! A delivery is acknowledged once its alerts were taken by every output, or written to the
//! failed-alerts file with the reason; if even that write fails the delivery fails and the
//! object comes back (alerts are at-least-once). Per-rule match counts are kept in
//! [`DetectStats`] (what a CloudWatch metric filter would count), registered process-wide so
//! the command line (and later the metrics endpoint) can read them.

use crate::alert::AlertMessage;
use crate::anomaly::{scan_user_agent, AnomalyDetector, AnomalyOptions, AnomalyStats, Observation};
use crate::engine::Scratch;
use crate::outputs::{parse_severity, Failure, Output};
use crate::rules::{RuleSet, RuleSources, Severity};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use trailhose_config::detect::{AnomalyConfig, DetectionConfig};
use trailhose_core::sync::lock;
use trailhose_pipeline::delivery::{
    far_future, pause, Admission, Breaker, DeliveryConfig, DeliveryControl, FailureClass,
};
use trailhose_pipeline::linefile::AppendFile;
use trailhose_pipeline::rate::backoff;
use trailhose_pipeline::{Delivery, Sink, SinkFuture, SinkReport};

/// Counters of one detection stage.
#[derive(Debug, Default)]
pub struct DetectStats {
    pub name: String,
    pub records: AtomicU64,
    pub rule_alerts: AtomicU64,
    pub insight_events: AtomicU64,
    /// Records that needed a full simd-json pass for some rule.
    pub full_parses: AtomicU64,
    pub invalid_records: AtomicU64,
    /// Alerts an output refused, kept in the failed-alerts file.
    pub failed_alerts: AtomicU64,
    /// (rule id, matches), in rule order.
    pub per_rule: Vec<(String, AtomicU64)>,
    pub anomaly: Mutex<Option<AnomalyStats>>,
}

impl DetectStats {
    pub fn rule_counts(&self) -> Vec<(String, u64)> {
        self.per_rule
            .iter()
            .map(|(id, n)| (id.clone(), n.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn anomaly_stats(&self) -> Option<AnomalyStats> {
        lock(&self.anomaly).clone()
    }
}

/// Every detection stage started in this process.
pub fn registry() -> &'static Mutex<Vec<Arc<DetectStats>>> {
    static R: OnceLock<Mutex<Vec<Arc<DetectStats>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// Anomaly detection with its state file.
pub struct AnomalyStage {
    pub detector: AnomalyDetector,
    pub state_path: Option<PathBuf>,
    /// Insights events in CloudTrail format, one per line.
    pub insights: Option<Output>,
    pub persist_every: Duration,
    pub severity: Severity,
}

impl AnomalyStage {
    /// Loads the state file when it matches the options; starts fresh otherwise (with a
    /// warning when the file existed).
    pub fn load(opts: AnomalyOptions, state_path: Option<PathBuf>) -> AnomalyDetector {
        if let Some(p) = &state_path {
            match std::fs::read(p) {
                Ok(bytes) => match AnomalyDetector::from_state_bytes(&bytes, &opts) {
                    Some(d) => return d,
                    None => tracing::warn!(
                        path = %p.display(),
                        "anomaly state file does not match this version or window settings; starting a new baseline"
                    ),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "cannot read the anomaly state; starting a new baseline")
                }
            }
        }
        AnomalyDetector::new(opts)
    }
}

/// Writes `bytes` to `path` atomically (temporary file, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

pub struct DetectSink {
    pub name: String,
    pub rules: Option<Arc<RuleSet>>,
    pub outputs: Vec<Output>,
    pub failed_alerts_path: PathBuf,
    pub anomaly: Option<AnomalyStage>,
    pub stats: Arc<DetectStats>,
    /// Retries of an output that is down, throttled or refusing.
    pub delivery: DeliveryConfig,
    control: DeliveryControl,
    breaker: Arc<Breaker>,
}

impl DetectSink {
    pub fn new(
        name: &str,
        rules: Option<Arc<RuleSet>>,
        outputs: Vec<Output>,
        failed_alerts_path: PathBuf,
        anomaly: Option<AnomalyStage>,
    ) -> DetectSink {
        let per_rule = rules
            .as_ref()
            .map(|r| {
                r.rules()
                    .iter()
                    .map(|r| (r.id.clone(), AtomicU64::new(0)))
                    .collect()
            })
            .unwrap_or_default();
        let stats = Arc::new(DetectStats {
            name: name.to_owned(),
            per_rule,
            ..Default::default()
        });
        lock(registry()).push(stats.clone());
        let delivery = DeliveryConfig::default();
        let control = DeliveryControl::new();
        DetectSink {
            name: name.to_owned(),
            rules,
            outputs,
            failed_alerts_path,
            anomaly,
            stats,
            breaker: control.breaker(name, delivery.probe_schedule()),
            control,
            delivery,
        }
    }

    /// Retry settings for the alert outputs (`[detection.delivery]`).
    pub fn with_delivery(mut self, delivery: DeliveryConfig) -> DetectSink {
        self.breaker = self.control.breaker(&self.name, delivery.probe_schedule());
        self.delivery = delivery;
        self
    }

    /// Builds the stage a `[detection]` section describes: loads and compiles the rules,
    /// connects the outputs, restores the anomaly state.
    pub async fn from_config(name: &str, c: &DetectionConfig) -> Result<DetectSink, String> {
        let rules = RuleSet::load(&RuleSources {
            builtin: c.builtin_rules,
            dir: c.rules_dir.clone(),
            disable: c.disable.clone(),
        })
        .map_err(|e| e.to_string())?;
        let mut outputs = Vec::new();
        for o in &c.outputs {
            outputs.push(Output::from_config(o).await?);
        }
        let severity = parse_severity(&c.insight_severity)
            .ok_or_else(|| format!("unknown severity `{}`", c.insight_severity))?;
        let anomaly = match &c.anomaly {
            Some(a) if a.enabled => {
                let opts = anomaly_options(a);
                let problems = opts.problems();
                if !problems.is_empty() {
                    return Err(format!("detection.anomaly: {}", problems.join("; ")));
                }
                Some(AnomalyStage {
                    detector: AnomalyStage::load(opts, Some(a.state_path.clone())),
                    state_path: Some(a.state_path.clone()),
                    insights: a.insights_path.clone().map(|p| Output::ndjson(p, false)),
                    persist_every: Duration::from_secs(a.persist_interval_secs.max(1)),
                    severity,
                })
            }
            _ => None,
        };
        let rules = (!rules.is_empty()).then(|| Arc::new(rules));
        Ok(
            DetectSink::new(name, rules, outputs, c.failed_alerts_path.clone(), anomaly)
                .with_delivery(c.delivery.clone()),
        )
    }
}

/// Jitter in [0, 1) for backoff, from the clock's low bits (alert retries are rare; no RNG
/// needed).
fn rand_jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

/// The detector options a config section asks for (unset values: the defaults).
pub fn anomaly_options(a: &AnomalyConfig) -> AnomalyOptions {
    let d = AnomalyOptions::default();
    AnomalyOptions {
        baseline_window_minutes: a
            .baseline_window_minutes
            .unwrap_or(d.baseline_window_minutes),
        bucket_minutes: a.bucket_minutes.unwrap_or(d.bucket_minutes),
        detection_window_minutes: a
            .detection_window_minutes
            .unwrap_or(d.detection_window_minutes),
        min_baseline_minutes: a.min_baseline_minutes.unwrap_or(d.min_baseline_minutes),
        p_value: a.p_value.unwrap_or(d.p_value),
        min_ratio: a.min_ratio.unwrap_or(d.min_ratio),
        min_count: a.min_count.unwrap_or(d.min_count),
        lateness_minutes: a.lateness_minutes.unwrap_or(d.lateness_minutes),
        max_keys: a.max_keys.unwrap_or(d.max_keys),
        max_insight_minutes: a.max_insight_minutes.unwrap_or(d.max_insight_minutes),
        call_rate: a.call_rate.unwrap_or(d.call_rate),
        error_rate: a.error_rate.unwrap_or(d.error_rate),
        include_data_events: a.include_data_events.unwrap_or(d.include_data_events),
    }
}

struct Runner {
    name: String,
    rules: Option<Arc<RuleSet>>,
    outputs: Vec<Output>,
    failed_alerts_path: PathBuf,
    failed_file: Arc<AppendFile>,
    anomaly: Option<AnomalyStage>,
    stats: Arc<DetectStats>,
    scratch: Scratch,
    report: SinkReport,
    last_persist: Instant,
    delivery: DeliveryConfig,
    control: DeliveryControl,
    breaker: Arc<Breaker>,
}

impl Sink for DetectSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn attach(&mut self, control: &DeliveryControl) {
        self.breaker = control.breaker(&self.name, self.delivery.probe_schedule());
        self.control = control.clone();
    }

    fn run(self: Box<Self>, rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        let s = *self;
        let runner = Runner {
            report: SinkReport {
                name: s.name.clone(),
                ..Default::default()
            },
            name: s.name,
            rules: s.rules,
            outputs: s.outputs,
            failed_file: Arc::new(AppendFile::new(&s.failed_alerts_path)),
            failed_alerts_path: s.failed_alerts_path,
            anomaly: s.anomaly,
            stats: s.stats,
            scratch: Scratch::new(),
            last_persist: Instant::now(),
            delivery: s.delivery,
            control: s.control,
            breaker: s.breaker,
        };
        Box::pin(runner.run(rx))
    }
}

impl Runner {
    async fn run(mut self, mut rx: mpsc::Receiver<Delivery>) -> SinkReport {
        while let Some(d) = rx.recv().await {
            let alerts = self.evaluate(&d);
            match self.deliver(&alerts).await {
                Ok(()) => d.token.ack(),
                Err(e) => {
                    self.report.failed_deliveries += 1;
                    self.note(e.clone());
                    d.token.fail(e);
                }
            }
            if let Some(a) = &self.anomaly {
                if self.last_persist.elapsed() >= a.persist_every {
                    self.persist().await;
                }
            }
        }
        self.persist().await;
        self.note_anomaly();
        tracing::info!(sink = %self.name, records = self.report.records, "detection stage finished");
        self.report
    }

    fn note(&mut self, e: String) {
        if self.report.errors.len() < 10 && !self.report.errors.contains(&e) {
            self.report.errors.push(e);
        }
    }

    fn note_anomaly(&mut self) {
        if let Some(a) = &self.anomaly {
            let st = a.detector.stats.clone();
            match self.stats.anomaly.lock() {
                Ok(mut g) => *g = Some(st),
                Err(p) => *p.into_inner() = Some(st),
            }
        }
    }

    fn evaluate(&mut self, d: &Delivery) -> Vec<AlertMessage> {
        let mut alerts = Vec::new();
        let mut hits = Vec::new();
        let before = self.scratch.stats;
        let object = &d.chunk.object;
        let mut n = 0u64;
        for r in d.records() {
            let bytes = d.chunk.bytes_of(r);
            n += 1;
            self.report.bytes += bytes.len() as u64;
            if let Some(rules) = &self.rules {
                rules.matching(&mut self.scratch, bytes, Some(&r.fields), &mut hits);
                for &h in &hits {
                    let h = h as usize;
                    if let (Some(rule), Some((_, count))) =
                        (rules.rules().get(h), self.stats.per_rule.get(h))
                    {
                        count.fetch_add(1, Ordering::Relaxed);
                        alerts.push(AlertMessage::for_rule(
                            rule,
                            &r.fields,
                            object,
                            bytes,
                            r.has_line_break,
                        ));
                    }
                }
            }
            if let Some(a) = &mut self.anomaly {
                let ua = scan_user_agent(bytes);
                match Observation::from_fields(
                    &r.fields,
                    ua.as_deref(),
                    object.account.as_deref(),
                    object.region.as_deref(),
                ) {
                    Some(o) => {
                        for e in a.detector.observe(&o) {
                            alerts.push(AlertMessage::for_insight(&e, a.severity));
                        }
                    }
                    None => a.detector.stats.skipped += 1,
                }
            }
        }
        self.report.records += n;
        let after = self.scratch.stats;
        self.stats.records.fetch_add(n, Ordering::Relaxed);
        self.stats
            .full_parses
            .fetch_add(after.full_parses - before.full_parses, Ordering::Relaxed);
        self.stats
            .invalid_records
            .fetch_add(after.invalid - before.invalid, Ordering::Relaxed);
        let rule_alerts = alerts
            .iter()
            .filter(|a| a.kind == crate::alert::AlertKind::Rule)
            .count() as u64;
        self.stats
            .rule_alerts
            .fetch_add(rule_alerts, Ordering::Relaxed);
        self.stats
            .insight_events
            .fetch_add(alerts.len() as u64 - rule_alerts, Ordering::Relaxed);
        if self.anomaly.is_some() {
            self.note_anomaly();
        }
        alerts
    }

    /// Sends every alert to every output that wants it. An output that is down, throttled or
    /// refusing is retried under the delivery contract (backoff; the breaker, which pauses the
    /// source; `max_retry_duration`, or for as long as the breaker is open when the source can
    /// wait); if it still fails, the delivery fails and its records come back — nothing goes
    /// to the failed-alerts file for such a reason. Alerts an output refuses for good go there.
    async fn deliver(&mut self, alerts: &[AlertMessage]) -> Result<(), String> {
        if alerts.is_empty() {
            return Ok(());
        }
        // The outputs are lent out for the attempt, so the stage's own state stays usable.
        let mut outputs = std::mem::take(&mut self.outputs);
        let mut insights = self.anomaly.as_mut().and_then(|a| a.insights.take());
        let r = self
            .deliver_to(alerts, insights.as_mut(), &mut outputs)
            .await;
        self.outputs = outputs;
        if let Some(a) = self.anomaly.as_mut() {
            a.insights = insights;
        }
        r
    }

    async fn deliver_to(
        &mut self,
        alerts: &[AlertMessage],
        insights: Option<&mut Output>,
        rule_outputs: &mut [Output],
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.delivery.max_retry_duration();
        let mut stop = self.control.stop_signal();
        let mut outputs: Vec<(&mut Output, bool)> = Vec::new();
        if let Some(out) = insights {
            outputs.push((out, true));
        }
        for out in rule_outputs.iter_mut() {
            outputs.push((out, false));
        }
        // What each output still owes, as indices into `alerts`.
        let mut owed: Vec<Vec<usize>> = outputs
            .iter()
            .map(|(_, insights)| {
                (0..alerts.len())
                    .filter(|&i| !*insights || alerts[i].kind == crate::alert::AlertKind::Insight)
                    .collect()
            })
            .collect();
        let mut permanent: Vec<(usize, String)> = Vec::new();
        let mut attempt = 0u32;
        let mut probe = false;
        loop {
            let mut retry: Option<(FailureClass, String)> = None;
            for ((out, _), owes) in outputs.iter_mut().zip(owed.iter_mut()) {
                if owes.is_empty() {
                    continue;
                }
                let batch: Vec<&AlertMessage> = owes.iter().map(|&i| &alerts[i]).collect();
                let failures: Vec<(&AlertMessage, Failure)> = out.send(&batch).await;
                let mut still = Vec::new();
                for (a, f) in failures {
                    let Some(i) = alerts.iter().position(|x| std::ptr::eq(x, a)) else {
                        continue;
                    };
                    match f.class {
                        None => permanent.push((i, f.reason)),
                        Some(class) => {
                            still.push(i);
                            retry = Some((class, f.reason));
                        }
                    }
                }
                *owes = still;
            }
            self.report.batches += 1;
            let Some((class, reason)) = retry else {
                self.breaker.succeeded();
                break;
            };
            self.breaker.failed(class, &reason, probe);
            self.note(reason.clone());
            let hold = self.control.holds_while_open() && self.breaker.is_open();
            if *stop.borrow() {
                return Err(format!(
                    "{}: alert output not delivered ({}): shutting down: {reason}",
                    self.name,
                    class.as_str()
                ));
            }
            if tokio::time::Instant::now() >= deadline && !hold {
                return Err(format!(
                    "{}: alert output not delivered ({}): still failing after {} s (max_retry_duration): {reason}",
                    self.name,
                    class.as_str(),
                    self.delivery.max_retry_duration_seconds
                ));
            }
            self.report.retries += 1;
            if self.breaker.is_open() {
                let until = if self.control.holds_while_open() {
                    far_future()
                } else {
                    deadline
                };
                match self.breaker.admit(until, &mut stop).await {
                    Admission::Go { probe: p } => probe = p,
                    Admission::GiveUp { class, reason } => {
                        let when = if *stop.borrow() {
                            "shutting down".to_string()
                        } else {
                            format!(
                                "still failing after {} s (max_retry_duration)",
                                self.delivery.max_retry_duration_seconds
                            )
                        };
                        return Err(format!(
                            "{}: alert output not delivered ({}): {when}: {reason}",
                            self.name,
                            class.as_str()
                        ));
                    }
                }
            } else {
                probe = false;
                let wait = backoff(
                    attempt,
                    Duration::from_millis(self.delivery.backoff_ms.max(1)),
                    Duration::from_millis(self.delivery.max_backoff_ms.max(1)),
                    rand_jitter(),
                );
                attempt = attempt.saturating_add(1);
                // Stopped or out of time: the next turn gives up with the reason.
                let _ = pause(wait, far_future(), &mut stop).await;
            }
        }
        if permanent.is_empty() {
            return Ok(());
        }
        self.stats
            .failed_alerts
            .fetch_add(permanent.len() as u64, Ordering::Relaxed);
        let mut buf = Vec::new();
        for (i, reason) in &permanent {
            buf.extend_from_slice(b"{\"reason\":");
            buf.extend_from_slice(&serde_json::to_vec(reason).unwrap_or_default());
            buf.extend_from_slice(b",\"alert\":");
            buf.extend_from_slice(&alerts[*i].body);
            buf.extend_from_slice(b"}\n");
        }
        let first = permanent[0].1.clone();
        self.note(first.clone());
        crate::outputs::append_lines(self.failed_file.clone(), buf, true)
            .await
            .map_err(|e| {
                format!(
                    "alert output refused alerts ({first}) and the failed-alerts file {} could not be written: {e}",
                    self.failed_alerts_path.display()
                )
            })
    }

    async fn persist(&mut self) {
        self.last_persist = Instant::now();
        let Some(a) = &self.anomaly else { return };
        let Some(path) = a.state_path.clone() else {
            return;
        };
        let bytes = a.detector.to_state_bytes();
        let r = tokio::task::spawn_blocking(move || write_atomic(&path, &bytes)).await;
        let err = match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = err {
            tracing::warn!(error = %e, "cannot persist the anomaly state");
            self.note(format!("cannot persist the anomaly state: {e}"));
        }
    }
}
