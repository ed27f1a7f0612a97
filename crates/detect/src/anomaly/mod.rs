//! Insights-style anomaly detection: per (account, region, eventSource, eventName), the API call
//! rate and the API error rate per minute, against a baseline learned online over a sliding
//! window; Start/End events in the CloudTrail Insights format when the current rate departs
//! from the baseline by a statistically significant margin.
//!
//! Pure logic, driven by event time only: the same records in the same order give the same
//! events on every run. The I/O wrapper (state file, outputs) is in [`crate::sink`].
//!
//! **What is analysed** (as CloudTrail Insights does): management events only (data events with
//! `include_data_events`); the call rate of write events (`readOnly` not `true`), the error rate
//! of all of them. Records of type `AwsCloudTrailInsight` are ignored.
//!
//! **Time.** Minutes are closed per (account, region) partition once the newest event time seen
//! there is `lateness_minutes` past them; events for closed minutes are counted as late and
//! left out. A partition is one CloudTrail delivery stream, whose files arrive roughly in order.
//!
//! **Baseline.** Per key, a ring of buckets (`bucket_minutes` wide, `baseline_window_minutes`
//! long) holds the sum and the sum of squares of the per-minute counts. Only complete buckets
//! form the baseline, minutes inside an insight are left out (CloudTrail: "the ending time of
//! baselineDuration measurement is always the start of an Insights event"), and minutes before
//! the partition was first seen do not count. Memory per key is bounded: at most
//! `baseline_window_minutes / bucket_minutes` buckets, `detection_window_minutes` recent
//! minutes, and fixed-capacity Space-Saving summaries for the attributions. Keys are capped at
//! `max_keys`; the least recently seen keys without an open insight are evicted first, and a key
//! created after an eviction in its partition starts its baseline from its own first minute.
//!
//! **Threshold.** Over the last `w = detection_window_minutes` minutes the count `S` is
//! compared with the baseline mean `μ` (with add-one smoothing `μ̂ = (sum + 1) / N` so an API
//! never seen before still has a finite expectation) and dispersion `φ = max(1, var/μ)`. An
//! insight starts when all of: `P(Poisson(w·μ̂/φ) ≥ S/φ) < p_value`, `S ≥ min_count`, and
//! `S/w ≥ min_ratio · μ`. It ends at the first minute where the same test fails (or after
//! `max_insight_minutes`); its end time is one minute after its last *elevated* minute (a
//! minute with at least `min_count / w` events and more than `μ̂ + 3·√(φ·μ̂)`), and it starts
//! at the first elevated minute of the window that triggered it.

pub mod insight;
pub mod stats;

pub use insight::{
    Attribution, Average, InsightContext, InsightDetails, InsightEvent, InsightState, InsightType,
    Statistics, ValueAverage,
};

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use trailhose_core::timefmt::format_rfc3339_s;
use trailhose_core::KeyFields;

const MINUTE_MS: i64 = 60_000;
/// Entries kept per attribute in a minute's summary and in an insight's.
const MINUTE_CAP: usize = 8;
/// Entries kept per attribute in the baseline summary.
const BASELINE_CAP: usize = 16;
/// Attribution values are cut to this many bytes.
const VALUE_MAX: usize = 256;
const ATTRIBUTES: [&str; 3] = ["userIdentityArn", "userAgent", "errorCode"];
/// Bumped when the state layout changes; an old file is then ignored (with a warning).
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyOptions {
    pub baseline_window_minutes: u32,
    pub bucket_minutes: u32,
    pub detection_window_minutes: u32,
    /// No insight before a key's baseline covers this many minutes.
    pub min_baseline_minutes: u32,
    pub p_value: f64,
    pub min_ratio: f64,
    pub min_count: u32,
    pub lateness_minutes: u32,
    pub max_keys: usize,
    pub max_insight_minutes: u32,
    pub call_rate: bool,
    pub error_rate: bool,
    pub include_data_events: bool,
}

impl Default for AnomalyOptions {
    fn default() -> Self {
        AnomalyOptions {
            baseline_window_minutes: 7 * 1440,
            bucket_minutes: 60,
            detection_window_minutes: 5,
            min_baseline_minutes: 1440,
            p_value: 1e-8,
            min_ratio: 3.0,
            min_count: 10,
            lateness_minutes: 30,
            max_keys: 10_000,
            max_insight_minutes: 1440,
            call_rate: true,
            error_rate: true,
            include_data_events: false,
        }
    }
}

impl AnomalyOptions {
    /// Every problem with the values, for config validation.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.bucket_minutes == 0 || self.bucket_minutes > 1440 {
            p.push(format!(
                "bucket_minutes = {} must be 1..=1440",
                self.bucket_minutes
            ));
        } else if self.baseline_window_minutes == 0
            || self.baseline_window_minutes % self.bucket_minutes != 0
        {
            p.push(format!(
                "baseline_window_minutes = {} must be a positive multiple of bucket_minutes = {}",
                self.baseline_window_minutes, self.bucket_minutes
            ));
        } else if self.baseline_window_minutes / self.bucket_minutes > 10_000 {
            p.push("baseline_window_minutes / bucket_minutes must be at most 10000".into());
        }
        if self.detection_window_minutes == 0 || self.detection_window_minutes > 60 {
            p.push(format!(
                "detection_window_minutes = {} must be 1..=60",
                self.detection_window_minutes
            ));
        }
        if self.min_baseline_minutes > self.baseline_window_minutes {
            p.push(format!(
                "min_baseline_minutes = {} exceeds baseline_window_minutes = {}",
                self.min_baseline_minutes, self.baseline_window_minutes
            ));
        }
        if !(self.p_value > 0.0 && self.p_value < 1.0) {
            p.push(format!("p_value = {} must be within (0, 1)", self.p_value));
        }
        if !(self.min_ratio >= 1.0 && self.min_ratio.is_finite()) {
            p.push(format!("min_ratio = {} must be >= 1", self.min_ratio));
        }
        if self.max_keys == 0 {
            p.push("max_keys must be at least 1".into());
        }
        if self.lateness_minutes > 1440 {
            p.push(format!(
                "lateness_minutes = {} must be at most 1440",
                self.lateness_minutes
            ));
        }
        if self.max_insight_minutes == 0 {
            p.push("max_insight_minutes must be at least 1".into());
        }
        if !self.call_rate && !self.error_rate {
            p.push("call_rate and error_rate are both off: nothing to detect".into());
        }
        p
    }
}

/// One record as the detector sees it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub time_ms: i64,
    pub account: &'a str,
    pub region: &'a str,
    pub event_source: &'a str,
    pub event_name: &'a str,
    pub error_code: Option<&'a str>,
    pub user_arn: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub management: bool,
    pub read_only: Option<bool>,
}

impl<'a> Observation<'a> {
    /// From the key fields of a record (`account` and `region` fall back to the object's key
    /// layout). `None` for records without a time, a source or a name (Insights events).
    pub fn from_fields(
        f: &'a KeyFields,
        user_agent: Option<&'a str>,
        account_fallback: Option<&'a str>,
        region_fallback: Option<&'a str>,
    ) -> Option<Observation<'a>> {
        if f.event_type() == Some("AwsCloudTrailInsight") {
            return None;
        }
        Some(Observation {
            time_ms: f.event_time_ms?,
            account: f.account().or(account_fallback)?,
            region: f.aws_region().or(region_fallback)?,
            event_source: f.event_source()?,
            event_name: f.event_name()?,
            error_code: f.error_code().filter(|c| !c.is_empty()),
            user_arn: f.user_arn().filter(|a| !a.is_empty()),
            user_agent,
            management: match f.management_event {
                Some(m) => m,
                None => f.event_category() != Some("Data"),
            },
            read_only: f.read_only,
        })
    }
}

/// The top-level `userAgent` of a compact CloudTrail record, by a byte scan: CloudTrail writes
/// it before `requestParameters`, so its first occurrence is the top-level one. Used only for
/// attributions.
pub fn scan_user_agent(raw: &[u8]) -> Option<Cow<'_, str>> {
    const KEY: &[u8] = b"\"userAgent\":\"";
    let start = memchr::memmem::find(raw, KEY)? + KEY.len();
    let rest = raw.get(start..)?;
    let mut i = 0;
    let mut escaped = false;
    while i < rest.len() {
        match rest[i] {
            b'\\' => {
                escaped = true;
                i += 2;
            }
            b'"' => break,
            _ => i += 1,
        }
    }
    let body = rest.get(..i)?;
    if escaped {
        let quoted = raw.get(start - 1..start + i + 1)?;
        serde_json::from_slice::<String>(quoted)
            .ok()
            .map(Cow::Owned)
    } else {
        std::str::from_utf8(body).ok().map(Cow::Borrowed)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnomalyStats {
    /// Records analysed.
    pub events: u64,
    /// Records for minutes already closed (left out).
    pub late: u64,
    /// Records not analysed (data events, records without the needed fields).
    pub skipped: u64,
    pub evicted_keys: u64,
    pub starts: u64,
    pub ends: u64,
}

/// Serialised as `[value, calls, errors]` to keep the state file small.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "(String, f64, f64)", into = "(String, f64, f64)")]
struct Entry {
    v: String,
    /// Calls.
    c: f64,
    /// Errors.
    x: f64,
}

impl From<(String, f64, f64)> for Entry {
    fn from((v, c, x): (String, f64, f64)) -> Self {
        Entry { v, c, x }
    }
}

impl From<Entry> for (String, f64, f64) {
    fn from(e: Entry) -> Self {
        (e.v, e.c, e.x)
    }
}

/// Space-Saving summary of (value → calls, errors) with a fixed capacity: exact while the
/// values fit, otherwise the newcomer replaces the smallest entry and inherits its count (an
/// over-estimate, as the algorithm prescribes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Summary {
    e: Vec<Entry>,
}

impl Summary {
    fn add(&mut self, v: &str, c: f64, x: f64, cap: usize) {
        if let Some(e) = self.e.iter_mut().find(|e| e.v == v) {
            e.c += c;
            e.x += x;
            return;
        }
        let v = if v.len() > VALUE_MAX {
            let mut end = VALUE_MAX;
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            &v[..end]
        } else {
            v
        };
        if self.e.len() < cap {
            self.e.push(Entry {
                v: v.to_owned(),
                c,
                x,
            });
            return;
        }
        let Some(min) = self
            .e
            .iter_mut()
            .min_by(|a, b| (a.c + a.x).total_cmp(&(b.c + b.x)))
        else {
            return;
        };
        *min = Entry {
            v: v.to_owned(),
            c: min.c + c,
            x: min.x + x,
        };
    }

    fn merge(&mut self, other: &Summary, cap: usize) {
        for e in &other.e {
            self.add(&e.v, e.c, e.x, cap);
        }
    }

    fn scale(&mut self, f: f64) {
        for e in &mut self.e {
            e.c *= f;
            e.x *= f;
        }
    }

    /// Top five by calls (or errors), as per-minute averages over `minutes`.
    fn top(&self, errors: bool, minutes: f64) -> Vec<ValueAverage> {
        let mut v: Vec<(&str, f64)> = self
            .e
            .iter()
            .map(|e| (e.v.as_str(), if errors { e.x } else { e.c }))
            .filter(|(_, n)| *n > 0.0)
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v.truncate(5);
        v.into_iter()
            .map(|(value, n)| ValueAverage {
                value: value.to_owned(),
                average: n / minutes.max(1.0),
            })
            .collect()
    }
}

type Attrs = [Summary; 3];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Minute {
    m: i64,
    calls: u32,
    errors: u32,
    attr: Attrs,
}

/// Serialised as `[idx, sum, sumsq, excluded]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "(i64, u64, u64, u32)", into = "(i64, u64, u64, u32)")]
struct Bucket {
    idx: i64,
    sum: u64,
    sumsq: u64,
    /// Minutes left out (inside an insight).
    excluded: u32,
}

impl From<(i64, u64, u64, u32)> for Bucket {
    fn from((idx, sum, sumsq, excluded): (i64, u64, u64, u32)) -> Self {
        Bucket {
            idx,
            sum,
            sumsq,
            excluded,
        }
    }
}

impl From<Bucket> for (i64, u64, u64, u32) {
    fn from(b: Bucket) -> Self {
        (b.idx, b.sum, b.sumsq, b.excluded)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Base {
    mu: f64,
    mu_hat: f64,
    phi: f64,
    minutes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Active {
    start: i64,
    total: u64,
    last_elevated: i64,
    total_at_last: u64,
    attr: Attrs,
    tail: Attrs,
    base: Base,
    baseline_attr: Vec<Vec<ValueAverage>>,
    shared_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Series {
    buckets: VecDeque<Bucket>,
    active: Option<Active>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyState {
    source: String,
    name: String,
    /// Set when the key was created after an eviction in its partition: its baseline starts
    /// here instead of at the partition's first minute.
    history_start: Option<i64>,
    last_seen: i64,
    processed_through: i64,
    pending: BTreeMap<i64, Minute>,
    recent: VecDeque<Minute>,
    calls: Series,
    errors: Series,
    base_attr: Attrs,
    /// Bucket index up to which `base_attr` has been decayed.
    attr_bucket: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Partition {
    account: String,
    region: String,
    first_minute: i64,
    max_minute: i64,
    closed_through: i64,
    lost_history: bool,
    keys: Vec<KeyState>,
    #[serde(skip)]
    index: HashMap<(String, String), usize>,
}

/// The detector. Serialise it (serde) to persist the baseline across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnomalyDetector {
    version: u32,
    opts: AnomalyOptions,
    partitions: Vec<Partition>,
    key_count: usize,
    pub stats: AnomalyStats,
    #[serde(skip)]
    index: HashMap<(String, String), usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Metric {
    Calls,
    Errors,
}

impl Metric {
    fn insight_type(self) -> InsightType {
        match self {
            Metric::Calls => InsightType::ApiCallRateInsight,
            Metric::Errors => InsightType::ApiErrorRateInsight,
        }
    }

    fn of(self, m: &Minute) -> u64 {
        u64::from(match self {
            Metric::Calls => m.calls,
            Metric::Errors => m.errors,
        })
    }
}

/// What a key's events are identified by in the output.
struct Ident<'a> {
    account: &'a str,
    region: &'a str,
    source: &'a str,
    name: &'a str,
}

impl AnomalyDetector {
    pub fn new(opts: AnomalyOptions) -> AnomalyDetector {
        AnomalyDetector {
            version: STATE_VERSION,
            opts,
            partitions: Vec::new(),
            key_count: 0,
            stats: AnomalyStats::default(),
            index: HashMap::new(),
        }
    }

    pub fn options(&self) -> &AnomalyOptions {
        &self.opts
    }

    /// Number of keys held.
    pub fn keys(&self) -> usize {
        self.key_count
    }

    /// Restores a persisted detector. `None` when the state was written by another layout
    /// version or with different window settings (the baseline would not mean the same).
    pub fn from_json(bytes: &[u8], opts: &AnomalyOptions) -> Option<AnomalyDetector> {
        let mut d: AnomalyDetector = serde_json::from_slice(bytes).ok()?;
        if d.version != STATE_VERSION
            || d.opts.bucket_minutes != opts.bucket_minutes
            || d.opts.baseline_window_minutes != opts.baseline_window_minutes
            || d.opts.detection_window_minutes != opts.detection_window_minutes
        {
            return None;
        }
        d.opts = opts.clone();
        d.reindex();
        Some(d)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The state file: gzip-compressed JSON.
    pub fn to_state_bytes(&self) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = enc.write_all(&self.to_json());
        enc.finish().unwrap_or_default()
    }

    /// Reads a state file written by [`to_state_bytes`](Self::to_state_bytes) (or plain JSON).
    pub fn from_state_bytes(bytes: &[u8], opts: &AnomalyOptions) -> Option<AnomalyDetector> {
        use std::io::Read;
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .take(1 << 30)
                .read_to_end(&mut json)
                .ok()?;
            AnomalyDetector::from_json(&json, opts)
        } else {
            AnomalyDetector::from_json(bytes, opts)
        }
    }

    fn reindex(&mut self) {
        self.index.clear();
        self.key_count = 0;
        for (i, p) in self.partitions.iter_mut().enumerate() {
            self.index.insert((p.account.clone(), p.region.clone()), i);
            p.index.clear();
            for (j, k) in p.keys.iter().enumerate() {
                p.index.insert((k.source.clone(), k.name.clone()), j);
            }
            self.key_count += p.keys.len();
        }
    }

    /// Feeds one record; returns the Insights events it completed, ordered by time.
    pub fn observe(&mut self, o: &Observation<'_>) -> Vec<InsightEvent> {
        if !o.management && !self.opts.include_data_events {
            self.stats.skipped += 1;
            return Vec::new();
        }
        let minute = o.time_ms.div_euclid(MINUTE_MS);
        let lateness = i64::from(self.opts.lateness_minutes);
        let pi = match self.index.get(&(o.account.to_owned(), o.region.to_owned())) {
            Some(&i) => i,
            None => {
                self.partitions.push(Partition {
                    account: o.account.to_owned(),
                    region: o.region.to_owned(),
                    first_minute: minute,
                    max_minute: minute,
                    closed_through: minute - lateness - 1,
                    lost_history: false,
                    keys: Vec::new(),
                    index: HashMap::new(),
                });
                let i = self.partitions.len() - 1;
                self.index
                    .insert((o.account.to_owned(), o.region.to_owned()), i);
                i
            }
        };
        if minute <= self.partitions[pi].closed_through {
            self.stats.late += 1;
            return Vec::new();
        }
        self.stats.events += 1;
        let ki = self.key_index(pi, o.event_source, o.event_name, minute);
        let p = &mut self.partitions[pi];
        p.first_minute = p.first_minute.min(minute);
        let k = &mut p.keys[ki];
        k.last_seen = k.last_seen.max(minute);
        let slot = k.pending.entry(minute).or_insert_with(|| Minute {
            m: minute,
            ..Minute::default()
        });
        let counts_call = self.opts.call_rate && o.read_only != Some(true);
        let is_error = o.error_code.is_some();
        if !counts_call && !is_error {
            // Neither analysed: the record only keeps the clock moving.
        } else {
            let c = if counts_call { 1.0 } else { 0.0 };
            let x = if is_error { 1.0 } else { 0.0 };
            slot.calls += u32::from(counts_call);
            slot.errors += u32::from(is_error);
            if let Some(a) = o.user_arn {
                slot.attr[0].add(a, c, x, MINUTE_CAP);
            }
            if let Some(a) = o.user_agent {
                slot.attr[1].add(a, c, x, MINUTE_CAP);
            }
            slot.attr[2].add(o.error_code.unwrap_or("null"), c, x, MINUTE_CAP);
        }
        if minute > p.max_minute {
            p.max_minute = minute;
            return self.advance(pi);
        }
        Vec::new()
    }

    fn key_index(&mut self, pi: usize, source: &str, name: &str, minute: i64) -> usize {
        let lookup = (source.to_owned(), name.to_owned());
        if let Some(&i) = self.partitions[pi].index.get(&lookup) {
            return i;
        }
        if self.key_count >= self.opts.max_keys {
            self.evict();
        }
        let p = &mut self.partitions[pi];
        p.keys.push(KeyState {
            source: source.to_owned(),
            name: name.to_owned(),
            history_start: p.lost_history.then_some(minute),
            last_seen: minute,
            processed_through: p.closed_through,
            pending: BTreeMap::new(),
            recent: VecDeque::new(),
            calls: Series::default(),
            errors: Series::default(),
            base_attr: Attrs::default(),
            attr_bucket: minute.div_euclid(i64::from(self.opts.bucket_minutes.max(1))),
        });
        let i = p.keys.len() - 1;
        p.index.insert(lookup, i);
        self.key_count += 1;
        i
    }

    /// Drops the least recently seen 1% of keys (at least one) that have no open insight.
    fn evict(&mut self) {
        let mut candidates: Vec<(i64, usize, usize)> = Vec::new();
        for (pi, p) in self.partitions.iter().enumerate() {
            for (ki, k) in p.keys.iter().enumerate() {
                if k.calls.active.is_none() && k.errors.active.is_none() {
                    candidates.push((k.last_seen, pi, ki));
                }
            }
        }
        candidates.sort_unstable();
        let n = (self.opts.max_keys / 100).max(1).min(candidates.len());
        let mut doomed: Vec<(usize, usize)> = candidates[..n].iter().map(|c| (c.1, c.2)).collect();
        // Remove from the back so indices stay valid.
        doomed.sort_unstable_by(|a, b| b.cmp(a));
        for (pi, ki) in doomed {
            let p = &mut self.partitions[pi];
            p.keys.swap_remove(ki);
            p.lost_history = true;
            self.key_count -= 1;
            self.stats.evicted_keys += 1;
        }
        for p in &mut self.partitions {
            p.index.clear();
            for (j, k) in p.keys.iter().enumerate() {
                p.index.insert((k.source.clone(), k.name.clone()), j);
            }
        }
    }

    fn advance(&mut self, pi: usize) -> Vec<InsightEvent> {
        let opts = self.opts.clone();
        let p = &mut self.partitions[pi];
        let frontier = p.max_minute - i64::from(opts.lateness_minutes);
        if frontier <= p.closed_through {
            return Vec::new();
        }
        let mut out = Vec::new();
        let first = p.first_minute;
        for k in &mut p.keys {
            k.process(frontier, first, &opts, (&p.account, &p.region), &mut out);
        }
        p.closed_through = frontier;
        for e in &out {
            match e.state() {
                InsightState::Start => self.stats.starts += 1,
                InsightState::End => self.stats.ends += 1,
            }
        }
        out.sort_by(|a, b| {
            (
                &a.event_time,
                &a.insight_details.event_source,
                &a.insight_details.event_name,
                a.insight_details.insight_type,
            )
                .cmp(&(
                    &b.event_time,
                    &b.insight_details.event_source,
                    &b.insight_details.event_name,
                    b.insight_details.insight_type,
                ))
        });
        out
    }
}

impl KeyState {
    fn any_active(&self) -> bool {
        self.calls.active.is_some() || self.errors.active.is_some()
    }

    fn ident<'a>(&'a self, (account, region): (&'a str, &'a str)) -> Ident<'a> {
        Ident {
            account,
            region,
            source: &self.source,
            name: &self.name,
        }
    }

    fn process(
        &mut self,
        frontier: i64,
        partition_first: i64,
        opts: &AnomalyOptions,
        id: (&str, &str),
        out: &mut Vec<InsightEvent>,
    ) {
        let mut m = self.processed_through + 1;
        while m <= frontier {
            if !self.any_active() {
                // Nothing can start in a minute without events: jump to the next one.
                match self.pending.keys().next() {
                    Some(&n) if n <= frontier => m = m.max(n),
                    _ => break,
                }
            }
            let data = self.pending.remove(&m);
            self.close_minute(m, data, partition_first, opts, id, out);
            m += 1;
        }
        self.processed_through = frontier;
    }

    fn close_minute(
        &mut self,
        m: i64,
        data: Option<Minute>,
        partition_first: i64,
        opts: &AnomalyOptions,
        id: (&str, &str),
        out: &mut Vec<InsightEvent>,
    ) {
        let bm = i64::from(opts.bucket_minutes.max(1));
        let w = i64::from(opts.detection_window_minutes.max(1));
        let window_buckets = i64::from(opts.baseline_window_minutes) / bm;
        // Decay the baseline attributions as buckets leave the window (approximately sliding).
        let cur = m.div_euclid(bm);
        if cur > self.attr_bucket {
            let steps = (cur - self.attr_bucket).min(window_buckets.max(1) * 4);
            let keep = 1.0 - 1.0 / window_buckets.max(1) as f64;
            let f = keep.powi(steps as i32);
            for s in &mut self.base_attr {
                s.scale(f);
            }
            self.attr_bucket = cur;
        }
        // Minutes leaving the detection window join the baseline attributions.
        while self.recent.front().is_some_and(|r| r.m <= m - w) {
            if let Some(r) = self.recent.pop_front() {
                for (b, a) in self.base_attr.iter_mut().zip(r.attr.iter()) {
                    b.merge(a, BASELINE_CAP);
                }
            }
        }
        if let Some(d) = data {
            if d.calls > 0 || d.errors > 0 {
                self.recent.push_back(d);
            }
        }
        let history_start = self.history_start.unwrap_or(partition_first);
        for metric in [Metric::Calls, Metric::Errors] {
            let enabled = match metric {
                Metric::Calls => opts.call_rate,
                Metric::Errors => opts.error_rate,
            };
            if !enabled {
                continue;
            }
            self.step(metric, m, history_start, opts, id, out);
        }
    }

    fn series(&mut self, metric: Metric) -> &mut Series {
        match metric {
            Metric::Calls => &mut self.calls,
            Metric::Errors => &mut self.errors,
        }
    }

    fn step(
        &mut self,
        metric: Metric,
        m: i64,
        history_start: i64,
        opts: &AnomalyOptions,
        id: (&str, &str),
        out: &mut Vec<InsightEvent>,
    ) {
        let w = i64::from(opts.detection_window_minutes.max(1));
        let count = self
            .recent
            .back()
            .filter(|r| r.m == m)
            .map_or(0, |r| metric.of(r));
        let window_sum: u64 = self
            .recent
            .iter()
            .filter(|r| r.m > m - w)
            .map(|r| metric.of(r))
            .sum();
        let errors = metric == Metric::Errors;
        let itype = metric.insight_type();
        let active = self.series(metric).active.take();
        match active {
            None => {
                let base = baseline(&self.series(metric).buckets, m, history_start, opts);
                if let Some(base) = base.filter(|b| anomalous(window_sum, b, opts)) {
                    let start = self
                        .recent
                        .iter()
                        .filter(|r| r.m > m - w && elevated(metric.of(r), &base, opts))
                        .map(|r| r.m)
                        .next()
                        .unwrap_or(m);
                    let mut attr = Attrs::default();
                    let mut total = 0;
                    for r in self.recent.iter().filter(|r| r.m >= start) {
                        total += metric.of(r);
                        for (a, s) in attr.iter_mut().zip(r.attr.iter()) {
                            a.merge(s, MINUTE_CAP * 2);
                        }
                    }
                    // Minutes of the insight already in the baseline buckets come out again.
                    let earlier: Vec<(i64, u64)> = self
                        .recent
                        .iter()
                        .filter(|r| r.m >= start && r.m < m)
                        .map(|r| (r.m, metric.of(r)))
                        .collect();
                    let bm = i64::from(opts.bucket_minutes.max(1));
                    let series = self.series(metric);
                    for (rm, c) in earlier {
                        let idx = rm.div_euclid(bm);
                        if let Some(b) = series.buckets.iter_mut().find(|b| b.idx == idx) {
                            b.sum = b.sum.saturating_sub(c);
                            b.sumsq = b.sumsq.saturating_sub(c * c);
                            b.excluded += 1;
                        }
                    }
                    let shared = insight::stable_uuid(&[
                        id.0,
                        id.1,
                        &self.source,
                        &self.name,
                        itype.as_str(),
                        &start.to_string(),
                    ]);
                    let baseline_attr: Vec<Vec<ValueAverage>> = self
                        .base_attr
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            let mut v = s.top(errors, base.minutes as f64);
                            if errors && i == 2 {
                                v.retain(|x| x.value != "null");
                            }
                            v
                        })
                        .collect();
                    let minutes = (m - start + 1) as u64;
                    let a = Active {
                        start,
                        total,
                        last_elevated: m,
                        total_at_last: total,
                        attr,
                        tail: Attrs::default(),
                        base,
                        baseline_attr,
                        shared_id: shared,
                    };
                    out.push(event(
                        &self.ident(id),
                        itype,
                        InsightState::Start,
                        &a,
                        start,
                        minutes,
                        total,
                    ));
                    self.series(metric).active = Some(a);
                    add_to_bucket(self.series(metric), m, count, true, opts);
                } else {
                    add_to_bucket(self.series(metric), m, count, false, opts);
                }
            }
            Some(mut a) => {
                a.total += count;
                if let Some(r) = self.recent.back().filter(|r| r.m == m) {
                    for (t, s) in a.tail.iter_mut().zip(r.attr.iter()) {
                        t.merge(s, MINUTE_CAP * 2);
                    }
                }
                if elevated(count, &a.base, opts) {
                    a.last_elevated = m;
                    a.total_at_last = a.total;
                    let tail = std::mem::take(&mut a.tail);
                    for (x, t) in a.attr.iter_mut().zip(tail.iter()) {
                        x.merge(t, MINUTE_CAP * 2);
                    }
                }
                let too_long = m - a.start + 1 > i64::from(opts.max_insight_minutes);
                if anomalous(window_sum, &a.base, opts) && !too_long {
                    self.series(metric).active = Some(a);
                    add_to_bucket(self.series(metric), m, count, true, opts);
                } else {
                    let end = a.last_elevated + 1;
                    let minutes = (end - a.start).max(1) as u64;
                    out.push(event(
                        &self.ident(id),
                        itype,
                        InsightState::End,
                        &a,
                        end,
                        minutes,
                        a.total_at_last,
                    ));
                    // This minute is past the insight: it joins the baseline.
                    add_to_bucket(self.series(metric), m, count, false, opts);
                }
            }
        }
    }
}

fn add_to_bucket(s: &mut Series, m: i64, count: u64, excluded: bool, opts: &AnomalyOptions) {
    let bm = i64::from(opts.bucket_minutes.max(1));
    let idx = m.div_euclid(bm);
    let window_buckets = i64::from(opts.baseline_window_minutes) / bm;
    while s
        .buckets
        .front()
        .is_some_and(|b| b.idx < idx - window_buckets)
    {
        s.buckets.pop_front();
    }
    if count == 0 && !excluded {
        return;
    }
    if s.buckets.back().is_none_or(|b| b.idx != idx) {
        s.buckets.push_back(Bucket {
            idx,
            sum: 0,
            sumsq: 0,
            excluded: 0,
        });
    }
    if let Some(b) = s.buckets.back_mut() {
        if excluded {
            b.excluded += 1;
        } else {
            b.sum += count;
            b.sumsq += count * count;
        }
    }
}

/// The baseline for minute `m`: the complete buckets of the window before `m`'s bucket, from
/// the key's history start on, without minutes spent inside insights.
fn baseline(
    buckets: &VecDeque<Bucket>,
    m: i64,
    history_start: i64,
    opts: &AnomalyOptions,
) -> Option<Base> {
    let bm = i64::from(opts.bucket_minutes.max(1));
    let cur = m.div_euclid(bm);
    let cur_start = cur * bm;
    let from = cur - i64::from(opts.baseline_window_minutes) / bm;
    let start = history_start.max(from * bm);
    if cur_start <= start {
        return None;
    }
    let (mut sum, mut sumsq, mut excluded) = (0u64, 0u64, 0i64);
    for b in buckets.iter().filter(|b| b.idx >= from && b.idx < cur) {
        sum += b.sum;
        sumsq += b.sumsq;
        excluded += i64::from(b.excluded);
    }
    let n = cur_start - start - excluded;
    if n < i64::from(opts.min_baseline_minutes).max(1) {
        return None;
    }
    let nf = n as f64;
    let mu = sum as f64 / nf;
    let var = (sumsq as f64 / nf - mu * mu).max(0.0);
    let phi = if mu > 0.0 { (var / mu).max(1.0) } else { 1.0 };
    Some(Base {
        mu,
        mu_hat: (sum as f64 + 1.0) / nf,
        phi,
        minutes: n as u64,
    })
}

fn anomalous(window_sum: u64, b: &Base, opts: &AnomalyOptions) -> bool {
    let w = f64::from(opts.detection_window_minutes.max(1));
    let s = window_sum as f64;
    s >= f64::from(opts.min_count)
        && s / w >= opts.min_ratio * b.mu
        && stats::poisson_sf(s / b.phi, w * b.mu_hat / b.phi) < opts.p_value
}

fn elevated(count: u64, b: &Base, opts: &AnomalyOptions) -> bool {
    let c = count as f64;
    let share = f64::from(opts.min_count) / f64::from(opts.detection_window_minutes.max(1));
    c >= share.max(1.0) && c > b.mu_hat + 3.0 * (b.phi * b.mu_hat).sqrt()
}

fn event(
    id: &Ident<'_>,
    itype: InsightType,
    state: InsightState,
    a: &Active,
    at_minute: i64,
    minutes: u64,
    total: u64,
) -> InsightEvent {
    let errors = itype == InsightType::ApiErrorRateInsight;
    let insight_lists: Vec<Vec<ValueAverage>> = a
        .attr
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v = s.top(errors, minutes as f64);
            if errors && i == 2 {
                v.retain(|x| x.value != "null");
            }
            v
        })
        .collect();
    let attributions = ATTRIBUTES
        .iter()
        .enumerate()
        .map(|(i, name)| Attribution {
            attribute: (*name).to_owned(),
            insight: insight_lists.get(i).cloned().unwrap_or_default(),
            baseline: a.baseline_attr.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    let state_str = match state {
        InsightState::Start => "Start",
        InsightState::End => "End",
    };
    InsightEvent {
        event_version: "1.08".into(),
        event_time: format_rfc3339_s(at_minute * MINUTE_MS),
        aws_region: id.region.to_owned(),
        event_id: insight::stable_uuid(&[&a.shared_id, state_str]),
        event_type: "AwsCloudTrailInsight".into(),
        recipient_account_id: id.account.to_owned(),
        shared_event_id: a.shared_id.clone(),
        insight_details: InsightDetails {
            state,
            event_source: id.source.to_owned(),
            event_name: id.name.to_owned(),
            insight_type: itype,
            insight_context: InsightContext {
                statistics: Statistics {
                    baseline: Average { average: a.base.mu },
                    insight: Average {
                        average: total as f64 / minutes.max(1) as f64,
                    },
                    insight_duration: minutes,
                    baseline_duration: a.base.minutes,
                },
                attributions,
            },
        },
        event_category: "Insight".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(
        t: i64,
        name: &'static str,
        err: Option<&'static str>,
        read_only: bool,
    ) -> Observation<'static> {
        Observation {
            time_ms: t,
            account: "111122223333",
            region: "us-east-1",
            event_source: "ec2.amazonaws.com",
            event_name: name,
            error_code: err,
            user_arn: Some("arn:aws:iam::111122223333:user/alice"),
            user_agent: Some("aws-cli/2"),
            management: true,
            read_only: Some(read_only),
        }
    }

    fn opts() -> AnomalyOptions {
        AnomalyOptions {
            baseline_window_minutes: 1440,
            min_baseline_minutes: 600,
            ..AnomalyOptions::default()
        }
    }

    /// A steady trickle: one write call every 4 minutes on one key, plus a clock event per
    /// minute on another.
    fn steady(d: &mut AnomalyDetector, from_min: i64, to_min: i64, out: &mut Vec<InsightEvent>) {
        for m in from_min..to_min {
            out.extend(d.observe(&obs(m * MINUTE_MS + 500, "DescribeRegions", None, true)));
            if m % 4 == 0 {
                out.extend(d.observe(&obs(m * MINUTE_MS + 1000, "CreateTags", None, false)));
            }
        }
    }

    #[test]
    fn a_burst_raises_one_start_end_pair_with_exact_times() {
        let mut d = AnomalyDetector::new(opts());
        let mut out = Vec::new();
        steady(&mut d, 0, 1500, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // 20 calls a minute for 6 minutes from minute 1500.
        for m in 1500..1506 {
            for s in 0..20 {
                out.extend(d.observe(&obs(m * MINUTE_MS + s * 3000, "CreateTags", None, false)));
            }
            out.extend(d.observe(&obs(m * MINUTE_MS + 500, "DescribeRegions", None, true)));
        }
        steady(&mut d, 1506, 1600, &mut out);
        assert_eq!(out.len(), 2, "{out:#?}");
        let (s, e) = (&out[0], &out[1]);
        assert_eq!(s.state(), InsightState::Start);
        assert_eq!(e.state(), InsightState::End);
        assert_eq!(s.shared_event_id, e.shared_event_id);
        assert_ne!(s.event_id, e.event_id);
        assert_eq!(s.event_time, format_rfc3339_s(1500 * MINUTE_MS));
        assert_eq!(e.event_time, format_rfc3339_s(1506 * MINUTE_MS));
        let st = &e.insight_details.insight_context.statistics;
        assert_eq!(st.insight_duration, 6);
        assert!((st.insight.average - 20.0).abs() < 1e-9, "{st:?}");
        assert!(
            st.baseline.average > 0.2 && st.baseline.average < 0.3,
            "{st:?}"
        );
        let attrs = &e.insight_details.insight_context.attributions;
        assert_eq!(attrs[0].attribute, "userIdentityArn");
        assert_eq!(attrs[2].insight[0].value, "null");
        assert_eq!(d.stats.late, 0);
    }

    #[test]
    fn state_round_trips_and_late_events_are_counted() {
        let mut d = AnomalyDetector::new(opts());
        let mut out = Vec::new();
        steady(&mut d, 0, 700, &mut out);
        let bytes = d.to_json();
        let mut restored = AnomalyDetector::from_json(&bytes, &opts()).expect("same layout");
        assert_eq!(restored.keys(), d.keys());
        let mut a = Vec::new();
        let mut b = Vec::new();
        for m in 700..760 {
            for s in 0..20 {
                let o = obs(m * MINUTE_MS + s * 3000, "CreateTags", None, false);
                a.extend(d.observe(&o));
                b.extend(restored.observe(&o));
            }
        }
        // Equal up to float formatting (the state file stores decayed attribution counts).
        let key = |v: &Vec<InsightEvent>| {
            v.iter()
                .map(|e| (e.event_id.clone(), e.event_time.clone(), e.state()))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
        assert_eq!(a.len(), 1, "{a:#?}");
        let other = AnomalyOptions {
            bucket_minutes: 30,
            ..opts()
        };
        assert!(AnomalyDetector::from_json(&bytes, &other).is_none());
        d.observe(&obs(10 * MINUTE_MS, "CreateTags", None, false));
        assert_eq!(d.stats.late, 1);
    }

    #[test]
    fn key_cap_evicts_idle_keys() {
        let mut d = AnomalyDetector::new(AnomalyOptions {
            max_keys: 3,
            ..opts()
        });
        for (i, n) in ["A", "B", "C", "D", "E"].iter().enumerate() {
            d.observe(&obs(i as i64 * MINUTE_MS, n, None, false));
        }
        assert!(d.keys() <= 3);
        assert_eq!(d.stats.evicted_keys, 2);
    }

    #[test]
    fn user_agent_scan() {
        assert_eq!(
            scan_user_agent(br#"{"a":1,"userAgent":"aws-cli/2.0 Python","x":{"userAgent":"no"}}"#)
                .as_deref(),
            Some("aws-cli/2.0 Python")
        );
        assert_eq!(
            scan_user_agent(br#"{"userAgent":"a \"quoted\" \\ agent"}"#).as_deref(),
            Some("a \"quoted\" \\ agent")
        );
        assert_eq!(scan_user_agent(br#"{"u":1}"#), None);
    }

    #[test]
    fn option_problems() {
        assert!(AnomalyOptions::default().problems().is_empty());
        let bad = AnomalyOptions {
            baseline_window_minutes: 100,
            bucket_minutes: 60,
            p_value: 0.0,
            ..AnomalyOptions::default()
        };
        assert_eq!(bad.problems().len(), 3, "{:?}", bad.problems());
    }
}
