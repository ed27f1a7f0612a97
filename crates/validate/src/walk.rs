//! The validation run: find the digest chains in the store, walk each chain backwards from its
//! newest digest exactly as `aws cloudtrail validate-logs` does (specs §3.3), hash the log
//! files of every valid digest in parallel with a bounded number in flight, and add the
//! stricter checks aws-cli skips when asked.
//!
//! Differences from aws-cli, all additive:
//! - every chain in the store is found and walked (all accounts of an organization trail, all
//!   source Regions, all trails), unless filtered;
//! - `start` may be omitted (validate everything);
//! - strict mode: each link's `previousDigestHashValue`, `previousDigestSignature` and time
//!   continuity are checked against the previous digest; algorithms must be the documented
//!   ones; listed digests that no chain reaches and log files that no digest lists are
//!   reported;
//! - a chain gap is reported as a problem that fails the run unless `allow_gaps`.

use crate::digest::{parse_digest, DigestFile, DigestFormatError, LogFileEntry, VerifyError};
use crate::loghash::{gunzip_one, LogFormatError, LogHash};
use crate::pubkey::KeyRing;
use crate::report::{ChainSummary, Counts, Problem, ProblemKind, Report, ValidObject};
use crate::store::{LogError, Store, StoreError};
use crate::{
    HASH_ALGORITHM, META_BACKFILL_TIMESTAMP, META_SIGNATURE, META_SIGNATURE_ALGORITHM,
    SIGNATURE_ALGORITHM,
};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use trailhose_core::keys::{classify_key, KeyClass, KeyKind};
use trailhose_core::timefmt::{
    civil_from_days, days_from_civil, format_rfc3339_s, parse_rfc3339_ms,
};

/// Largest uncompressed digest accepted.
const MAX_DIGEST_INFLATED: u64 = 256 << 20;
const HOUR_MS: i64 = 3_600_000;

/// What to validate and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Key prefix before `AWSLogs/` (no trailing slash; empty for none).
    pub prefix: String,
    /// Digests delivered from this instant (epoch ms); `None` = from the beginning.
    pub start_ms: Option<i64>,
    /// … up to this instant (digests up to one hour later are read, as aws-cli does).
    pub end_ms: i64,
    /// Member accounts to validate (empty = all found).
    pub account_ids: Vec<String>,
    /// Source Regions to validate (empty = all found).
    pub regions: Vec<String>,
    /// Organization id to validate (`None` = any, including non-organization layouts).
    pub org_id: Option<String>,
    pub trail_name: Option<String>,
    pub home_region: Option<String>,
    pub strict: bool,
    /// Chain gaps are reported but do not fail the run.
    pub allow_gaps: bool,
    /// Also walk backfill digests (aws-cli does).
    pub backfill: bool,
    /// Log files hashed at once.
    pub jobs: usize,
    /// Report every valid object too.
    pub verbose: bool,
    /// Called with the compressed bytes of each hashed log file (progress display).
    pub on_hashed: OnHashed,
}

/// A progress callback; options compare equal whatever it is.
#[derive(Clone, Default)]
pub struct OnHashed(pub Option<Arc<dyn Fn(u64) + Send + Sync>>);

impl std::fmt::Debug for OnHashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "OnHashed(set)"
        } else {
            "OnHashed(none)"
        })
    }
}

impl PartialEq for OnHashed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for OnHashed {}

impl Default for Options {
    fn default() -> Self {
        Options {
            prefix: String::new(),
            start_ms: None,
            end_ms: i64::MAX / 4,
            account_ids: Vec::new(),
            regions: Vec::new(),
            org_id: None,
            trail_name: None,
            home_region: None,
            strict: false,
            allow_gaps: false,
            backfill: true,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            verbose: false,
            on_hashed: OnHashed::default(),
        }
    }
}

/// Why a run could not complete (as opposed to finding invalid objects).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    #[error("start-time must occur before end-time")]
    BadRange,
    #[error("no public keys: give a key directory or a list-public-keys JSON file")]
    NoPublicKeys,
    #[error("{0}")]
    Store(String),
}

/// `YYYYMMDDTHHMMSSZ` (digest keys) or `YYYYMMDDTHHmmZ` (log keys) to epoch ms.
pub fn parse_key_stamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = b.get(r)?;
        if !t.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(t).ok()?.parse().ok()
    };
    let (sec, zpos) = match b.len() {
        16 => (num(13..15)?, 15),
        14 => (0, 13),
        _ => return None,
    };
    if b[8] != b'T' || b[zpos] != b'Z' {
        return None;
    }
    let (y, m, d, hh, mm) = (
        num(0..4)?,
        num(4..6)?,
        num(6..8)?,
        num(9..11)?,
        num(11..13)?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y, m as u32, d as u32);
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + sec * 1000)
}

/// Epoch ms to `YYYYMMDDTHHMMSSZ`.
pub fn format_key_stamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        r / 3600,
        (r % 3600) / 60,
        r % 60
    )
}

fn ymd_dir(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}/{m:02}/{d:02}/")
}

/// The delivery stamp of a digest key, as aws-cli slices it (the key must end `.json.gz`).
fn digest_key_stamp(key: &str) -> Option<&str> {
    let n = key.len();
    if key.ends_with("_backfill.json.gz") {
        key.get(n.checked_sub(33)?..n - 17)
    } else if key.ends_with(".json.gz") {
        key.get(n.checked_sub(24)?..n - 8)
    } else {
        None
    }
}

fn key_date(key: &str) -> Option<i64> {
    digest_key_stamp(key).and_then(parse_key_stamp)
}

/// One chain: a trail's digests for one account and source Region.
#[derive(Debug, Clone)]
struct Group {
    /// `[prefix/]AWSLogs/[org/]ACCOUNT/`
    base: String,
    org_id: Option<String>,
    account: String,
    region: String,
    trail: String,
    home: String,
    standard: Vec<String>,
    backfill: Vec<String>,
}

/// What the walk expects of the digest a valid digest links to (strict checks).
struct Link {
    from_key: String,
    from_bucket: String,
    previous_hash: Option<String>,
    previous_signature: Option<String>,
    from_start_ms: i64,
}

struct ValidDigest {
    d: DigestFile,
    signature: String,
    start_ms: i64,
    end_ms: i64,
    logs: Vec<LogFileEntry>,
}

enum Loaded {
    Valid(Box<ValidDigest>),
    Missing(String),
    Invalid {
        kind: ProblemKind,
        reason: String,
        logs: Vec<String>,
    },
}

struct LogOutcome {
    chain: usize,
    digest_key: String,
    backfill: bool,
    entry: LogFileEntry,
    result: Result<LogHash, LogError>,
}

/// Per (account base, Region): what digests list and the time valid digests cover.
#[derive(Default)]
struct Coverage {
    listed: HashSet<String>,
    window: Option<(i64, i64)>,
}

struct Run<S: Store> {
    store: Arc<S>,
    keys: Arc<KeyRing>,
    opts: Options,
    start: i64,
    end: i64,
    bucket: Option<String>,
    report: Report,
    permits: Arc<Semaphore>,
    tasks: JoinSet<LogOutcome>,
    coverage: BTreeMap<(String, String), Coverage>,
    found: Option<(i64, i64)>,
}

/// Validates every chain the options select. Invalid objects are in the report; an `Err` means
/// the run itself failed (store errors other than not-found, bad options).
pub async fn validate<S: Store>(
    store: Arc<S>,
    keys: Arc<KeyRing>,
    opts: &Options,
) -> Result<Report, ValidateError> {
    let t0 = Instant::now();
    if keys.is_empty() {
        return Err(ValidateError::NoPublicKeys);
    }
    let start = opts.start_ms.unwrap_or(i64::MIN / 4);
    if start > opts.end_ms {
        return Err(ValidateError::BadRange);
    }
    let mut run = Run {
        bucket: store.bucket().map(str::to_owned),
        report: Report {
            source: store.describe(),
            requested_start: opts.start_ms.map(format_rfc3339_s),
            requested_end: format_rfc3339_s(opts.end_ms),
            strict: opts.strict,
            allow_gaps: opts.allow_gaps,
            ..Report::default()
        },
        store,
        keys,
        start,
        end: opts.end_ms,
        permits: Arc::new(Semaphore::new(opts.jobs.max(1))),
        tasks: JoinSet::new(),
        coverage: BTreeMap::new(),
        found: None,
        opts: opts.clone(),
    };
    let groups = run.discover().await?;
    for (i, g) in groups.iter().enumerate() {
        run.report.chains.push(ChainSummary {
            org_id: g.org_id.clone(),
            account_id: g.account.clone(),
            region: g.region.clone(),
            trail_name: g.trail.clone(),
            home_region: g.home.clone(),
            digests: Counts::default(),
            backfill_digests: Counts::default(),
            log_files: Counts::default(),
        });
        run.walk_chain(g, i, g.standard.clone(), false).await?;
        if run.opts.backfill {
            run.walk_chain(g, i, g.backfill.clone(), true).await?;
        }
    }
    while let Some(done) = run.tasks.join_next().await {
        let done = done.map_err(|e| ValidateError::Store(format!("hash task failed: {e}")))?;
        run.tally(done)?;
    }
    if run.opts.strict {
        run.check_unlisted_logs().await?;
    }
    let mut report = run.report;
    if let Some((a, b)) = run.found {
        report.found_start = Some(format_rfc3339_s(a));
        report.found_end = Some(format_rfc3339_s(b));
    }
    report.elapsed_seconds = t0.elapsed().as_secs_f64();
    report.ok = report.is_ok();
    Ok(report)
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

impl<S: Store> Run<S> {
    fn store_err(e: StoreError) -> ValidateError {
        ValidateError::Store(e.to_string())
    }

    fn list_bucket(&self) -> String {
        self.bucket.clone().unwrap_or_default()
    }

    fn awslogs(&self) -> String {
        let p = self.opts.prefix.trim_matches('/');
        if p.is_empty() {
            "AWSLogs/".to_owned()
        } else {
            format!("{p}/AWSLogs/")
        }
    }

    async fn discover(&mut self) -> Result<Vec<Group>, ValidateError> {
        let bucket = self.list_bucket();
        let awslogs = self.awslogs();
        let mut accounts = Vec::new();
        for top in self
            .store
            .list_dirs(&bucket, &awslogs)
            .await
            .map_err(Self::store_err)?
        {
            if top.starts_with("o-") {
                if self.opts.org_id.as_ref().is_some_and(|o| *o != top) {
                    continue;
                }
                let base = format!("{awslogs}{top}/");
                for a in self
                    .store
                    .list_dirs(&bucket, &base)
                    .await
                    .map_err(Self::store_err)?
                {
                    if is_account(&a) {
                        accounts.push((Some(top.clone()), a));
                    }
                }
            } else if is_account(&top) && self.opts.org_id.is_none() {
                accounts.push((None, top));
            }
        }
        accounts
            .retain(|(_, a)| self.opts.account_ids.is_empty() || self.opts.account_ids.contains(a));

        let from = format_key_stamp(self.start.max(0));
        let to = format_key_stamp(self.end.saturating_add(HOUR_MS).min(253_402_300_799_000));
        let mut groups = Vec::new();
        for (org, account) in accounts {
            let base = match &org {
                Some(o) => format!("{awslogs}{o}/{account}/"),
                None => format!("{awslogs}{account}/"),
            };
            let digest_root = format!("{base}CloudTrail-Digest/");
            for region in self
                .store
                .list_dirs(&bucket, &digest_root)
                .await
                .map_err(Self::store_err)?
            {
                if !self.opts.regions.is_empty() && !self.opts.regions.contains(&region) {
                    continue;
                }
                let rprefix = format!("{digest_root}{region}/");
                // aws-cli's marker is the key for start − 1 minute; the day directory of that
                // instant is the same bound for every trail.
                let start_after = self
                    .opts
                    .start_ms
                    .map(|s| format!("{rprefix}{}", ymd_dir(s - 60_000)));
                let keys = self
                    .store
                    .list_keys(&bucket, &rprefix, start_after.as_deref())
                    .await
                    .map_err(Self::store_err)?;
                let mut by_trail: BTreeMap<(String, String), (Vec<String>, Vec<String>)> =
                    BTreeMap::new();
                for key in keys {
                    if !key.ends_with(".json.gz") {
                        continue;
                    }
                    let KeyClass::CloudTrail(k) = classify_key(&key) else {
                        continue;
                    };
                    if k.kind != KeyKind::Digest || k.account != account || k.region != region {
                        continue;
                    }
                    let (Some(trail), Some(home)) = (k.trail_name, k.home_region) else {
                        continue;
                    };
                    if self.opts.trail_name.as_ref().is_some_and(|t| t != trail)
                        || self.opts.home_region.as_ref().is_some_and(|h| h != home)
                    {
                        continue;
                    }
                    let Some(stamp) = digest_key_stamp(&key) else {
                        continue;
                    };
                    if stamp > to.as_str() || stamp < from.as_str() {
                        continue;
                    }
                    let e = by_trail
                        .entry((trail.to_owned(), home.to_owned()))
                        .or_default();
                    if k.backfill {
                        e.1.push(key.clone());
                    } else {
                        e.0.push(key.clone());
                    }
                }
                for ((trail, home), (mut standard, mut backfill)) in by_trail {
                    // Chronological (the listing is by day directory, then name).
                    standard.sort_by(|a, b| {
                        digest_key_stamp(a).cmp(&digest_key_stamp(b)).then(a.cmp(b))
                    });
                    backfill.sort_by(|a, b| {
                        digest_key_stamp(a).cmp(&digest_key_stamp(b)).then(a.cmp(b))
                    });
                    groups.push(Group {
                        base: base.clone(),
                        org_id: org.clone(),
                        account: account.clone(),
                        region: region.clone(),
                        trail,
                        home,
                        standard,
                        backfill,
                    });
                }
            }
        }
        Ok(groups)
    }

    fn problem(
        &mut self,
        kind: ProblemKind,
        bucket: &str,
        key: &str,
        reason: String,
        backfill: bool,
        digest_key: Option<String>,
    ) {
        // Backfill digests are delivered one by one for late files; whether they link to each
        // other is not documented, so a break between them is reported but never fails.
        let fails = !(kind == ProblemKind::ChainGap && (self.opts.allow_gaps || backfill));
        self.report.problems.push(Problem {
            kind,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason,
            backfill,
            digest_key,
            fails,
        });
    }

    fn count_digest(&mut self, chain: usize, backfill: bool, valid: bool, missing: bool) {
        for c in [
            if backfill {
                &mut self.report.backfill_digests
            } else {
                &mut self.report.digests
            },
            if backfill {
                &mut self.report.chains[chain].backfill_digests
            } else {
                &mut self.report.chains[chain].digests
            },
        ] {
            if valid {
                c.valid += 1;
            } else {
                c.invalid += 1;
                if missing {
                    c.missing += 1;
                }
            }
        }
    }

    /// The newest listed key older than `before` (aws-cli `_get_last_digest`).
    fn next_older(digests: &mut Vec<String>, before: &str) -> Option<String> {
        let limit = key_date(before);
        while let Some(k) = digests.pop() {
            match (key_date(&k), limit) {
                (Some(d), Some(l)) if d >= l => continue,
                _ => return Some(k),
            }
        }
        None
    }

    async fn walk_chain(
        &mut self,
        g: &Group,
        chain: usize,
        keys: Vec<String>,
        backfill: bool,
    ) -> Result<(), ValidateError> {
        let listed: Vec<String> = keys.clone();
        let mut digests = keys;
        let mut bucket = self.bucket.clone();
        let Some(mut key) = digests.pop() else {
            return Ok(());
        };
        let mut last_start = key_date(&key).unwrap_or(i64::MAX);
        let mut expect: Option<Link> = None;
        let mut visited: HashSet<String> = HashSet::new();
        let cov_key = (g.base.clone(), g.region.clone());

        while self.start <= last_start {
            let shown_bucket = bucket.clone().unwrap_or_default();
            if !visited.insert(key.clone()) {
                self.problem(
                    ProblemKind::ChainLoop,
                    &shown_bucket,
                    &key,
                    "the chain points back to a digest it already passed".into(),
                    backfill,
                    None,
                );
                expect = None;
                match Self::next_older(&mut digests, &key) {
                    Some(k) => key = k,
                    None => break,
                }
                continue;
            }
            match self
                .load(bucket.as_deref(), &key, backfill, &g.home)
                .await?
            {
                Loaded::Valid(v) => {
                    let v = *v;
                    if bucket.is_none() {
                        bucket = Some(v.d.bucket.clone());
                        self.bucket.clone_from(&bucket);
                    }
                    let cur_bucket = v.d.bucket.clone();
                    self.count_digest(chain, backfill, true, false);
                    if self.opts.verbose {
                        self.report.valid_objects.push(ValidObject {
                            object: if backfill {
                                "backfill_digest"
                            } else {
                                "digest"
                            },
                            bucket: cur_bucket.clone(),
                            key: key.clone(),
                        });
                    }
                    if let Some(link) = expect.take() {
                        if self.opts.strict {
                            self.check_link(&link, &v, backfill);
                        }
                    }
                    last_start = v.start_ms;
                    let lo = v.start_ms.max(self.start);
                    let hi = v.end_ms.min(self.end);
                    self.found = Some(match self.found {
                        None => (lo, hi),
                        Some((a, b)) => (a.min(lo), b.max(hi)),
                    });
                    let cov = self.coverage.entry(cov_key.clone()).or_default();
                    cov.window = Some(match cov.window {
                        None => (v.start_ms, v.end_ms),
                        Some((a, b)) => (a.min(v.start_ms), b.max(v.end_ms)),
                    });
                    for l in &v.logs {
                        cov.listed.insert(l.s3_object.clone());
                    }
                    for entry in v.logs.iter().cloned() {
                        self.spawn_log(chain, &key, backfill, entry).await?;
                    }
                    match (&v.d.previous_bucket, &v.d.previous_object) {
                        (Some(pb), Some(pk)) => {
                            expect = Some(Link {
                                from_key: key.clone(),
                                from_bucket: cur_bucket.clone(),
                                previous_hash: v.d.previous_hash.clone(),
                                previous_signature: v.d.previous_signature.clone(),
                                from_start_ms: v.start_ms,
                            });
                            if *pb != cur_bucket {
                                // aws-cli switches buckets and lists the digests there.
                                bucket = Some(pb.clone());
                                digests = self.relist(g, pb, backfill).await?;
                            }
                            key = pk.clone();
                        }
                        _ => match Self::next_older(&mut digests, &key) {
                            Some(next) => {
                                let next_end = key_date(&next)
                                    .map_or_else(|| "?".to_owned(), format_rfc3339_s);
                                if !backfill {
                                    self.report.gaps += 1;
                                }
                                self.problem(
                                    ProblemKind::ChainGap,
                                    &cur_bucket,
                                    &key,
                                    format!(
                                        "this digest starts a new chain (no previous digest): no log files were delivered by CloudTrail between {next_end} and {}, or their digests are gone",
                                        format_rfc3339_s(v.start_ms)
                                    ),
                                    backfill,
                                    None,
                                );
                                key = next;
                            }
                            None => break,
                        },
                    }
                }
                Loaded::Missing(reason) => {
                    self.count_digest(chain, backfill, false, true);
                    let referrer = expect.take().map(|l| l.from_key);
                    let reason = match referrer {
                        Some(r) => format!("{reason} (the previous digest of {r})"),
                        None => reason,
                    };
                    self.problem(
                        ProblemKind::DigestMissing,
                        &shown_bucket,
                        &key,
                        reason,
                        backfill,
                        None,
                    );
                    match Self::next_older(&mut digests, &key) {
                        Some(k) => key = k,
                        None => break,
                    }
                }
                Loaded::Invalid { kind, reason, logs } => {
                    self.count_digest(chain, backfill, false, false);
                    expect = None;
                    let cov = self.coverage.entry(cov_key.clone()).or_default();
                    cov.listed.extend(logs);
                    self.problem(kind, &shown_bucket, &key, reason, backfill, None);
                    match Self::next_older(&mut digests, &key) {
                        Some(k) => key = k,
                        None => break,
                    }
                }
            }
        }
        if self.opts.strict {
            let b = self.bucket.clone().unwrap_or_default();
            for k in listed {
                if !visited.contains(&k) {
                    self.problem(
                        ProblemKind::DigestNotOnChain,
                        &b,
                        &k,
                        "listed in the time range, but no digest of the chain points to it".into(),
                        backfill,
                        None,
                    );
                }
            }
        }
        Ok(())
    }

    async fn relist(
        &self,
        g: &Group,
        bucket: &str,
        backfill: bool,
    ) -> Result<Vec<String>, ValidateError> {
        let rprefix = format!("{}CloudTrail-Digest/{}/", g.base, g.region);
        let keys = self
            .store
            .list_keys(bucket, &rprefix, None)
            .await
            .map_err(Self::store_err)?;
        let mut out: Vec<String> = keys
            .into_iter()
            .filter(|k| {
                matches!(classify_key(k), KeyClass::CloudTrail(c)
                    if c.kind == KeyKind::Digest
                        && c.backfill == backfill
                        && c.trail_name == Some(g.trail.as_str())
                        && c.home_region == Some(g.home.as_str()))
                    && k.ends_with(".json.gz")
            })
            .collect();
        out.sort_by(|a, b| digest_key_stamp(a).cmp(&digest_key_stamp(b)).then(a.cmp(b)));
        Ok(out)
    }

    fn check_link(&mut self, link: &Link, prev: &ValidDigest, backfill: bool) {
        let mut why = Vec::new();
        match &link.previous_hash {
            Some(h) if *h == prev.d.inflated_sha256 => {}
            Some(h) => why.push(format!(
                "previousDigestHashValue {h} is not the SHA-256 of the previous digest ({})",
                prev.d.inflated_sha256
            )),
            None => why.push("previousDigestHashValue is missing".to_owned()),
        }
        match &link.previous_signature {
            Some(s) if *s == prev.signature => {}
            Some(_) => why.push(
                "previousDigestSignature is not the signature of the previous digest".to_owned(),
            ),
            None => why.push("previousDigestSignature is null on a linked digest".to_owned()),
        }
        if link.from_start_ms != prev.end_ms {
            why.push(format!(
                "digestStartTime {} is not the previous digest's digestEndTime {}",
                format_rfc3339_s(link.from_start_ms),
                prev.d.end_time
            ));
        }
        if !why.is_empty() {
            self.problem(
                ProblemKind::ChainLinkMismatch,
                &link.from_bucket,
                &link.from_key,
                format!("link to {}: {}", prev.d.object, why.join("; ")),
                backfill,
                None,
            );
        }
    }

    async fn load(
        &mut self,
        bucket: Option<&str>,
        key: &str,
        backfill: bool,
        home: &str,
    ) -> Result<Loaded, ValidateError> {
        let invalid = |kind, reason: String| Loaded::Invalid {
            kind,
            reason,
            logs: Vec::new(),
        };
        let stored = match self.store.get_digest(bucket.unwrap_or_default(), key).await {
            Ok(s) => s,
            Err(StoreError::NotFound) => return Ok(Loaded::Missing("not found".into())),
            Err(StoreError::InvalidKey(r)) => {
                return Ok(Loaded::Missing(format!("not found: {r}")))
            }
            Err(StoreError::Other(e)) => return Err(ValidateError::Store(e)),
        };
        let inflated = match gunzip_one(&stored.body, MAX_DIGEST_INFLATED) {
            Ok((_, b)) => b,
            Err(e) => {
                return Ok(invalid(
                    ProblemKind::DigestInvalidFormat,
                    match e {
                        LogFormatError::TrailingData => {
                            "invalid format: unexpected data after end of compressed stream".into()
                        }
                        e => e.to_string(),
                    },
                ))
            }
        };
        let parsed = parse_digest(&inflated);
        if let Err(e @ (DigestFormatError::Json(_) | DigestFormatError::NotObject)) = &parsed {
            return Ok(invalid(
                ProblemKind::DigestInvalidFormat,
                format!("invalid format: {e}"),
            ));
        }
        let listed_logs = |p: &Result<DigestFile, DigestFormatError>| -> Vec<String> {
            match p {
                Ok(d) => d
                    .log_files
                    .as_ref()
                    .map(|l| l.iter().map(|e| e.s3_object.clone()).collect())
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        };
        let bad =
            |kind, reason: String, p: &Result<DigestFile, DigestFormatError>| Loaded::Invalid {
                kind,
                reason,
                logs: listed_logs(p),
            };
        if let Some(e) = &stored.metadata_error {
            return Ok(bad(
                ProblemKind::DigestBadSignature,
                format!("signature verification failed: signature metadata unreadable: {e}"),
                &parsed,
            ));
        }
        let (Some(signature), Some(algorithm)) = (
            stored.metadata.get(META_SIGNATURE),
            stored.metadata.get(META_SIGNATURE_ALGORITHM),
        ) else {
            return Ok(bad(
                ProblemKind::DigestBadSignature,
                "signature verification failed: the object has no signature/signature-algorithm metadata (locally: no .sig sidecar)".into(),
                &parsed,
            ));
        };
        if backfill && !stored.metadata.contains_key(META_BACKFILL_TIMESTAMP) {
            return Ok(bad(
                ProblemKind::DigestInvalidFormat,
                "invalid format: backfill digest without backfill-generation-timestamp metadata"
                    .into(),
                &parsed,
            ));
        }
        let d = match parsed {
            Ok(d) => d,
            Err(e) => {
                return Ok(invalid(
                    ProblemKind::DigestInvalidFormat,
                    format!("invalid format: {e}"),
                ))
            }
        };
        let logs_of = |d: &DigestFile| -> Vec<String> {
            d.log_files
                .as_ref()
                .map(|l| l.iter().map(|e| e.s3_object.clone()).collect())
                .unwrap_or_default()
        };
        if d.object != key || bucket.is_some_and(|b| b != d.bucket) {
            return Ok(Loaded::Invalid {
                kind: ProblemKind::DigestMoved,
                reason: format!(
                    "has been moved from its original location (it names s3://{}/{})",
                    d.bucket, d.object
                ),
                logs: logs_of(&d),
            });
        }
        let Some(entry) = self.keys.get(&d.fingerprint) else {
            return Ok(Loaded::Invalid {
                kind: ProblemKind::DigestUnknownKey,
                reason: format!(
                    "public key not found in region {home} for fingerprint {}",
                    d.fingerprint
                ),
                logs: logs_of(&d),
            });
        };
        let public = match entry.key() {
            Ok(k) => k,
            Err(e) => {
                return Ok(Loaded::Invalid {
                    kind: ProblemKind::DigestBadKey,
                    reason: format!(
                        "Unable to load PKCS #1 key with fingerprint {} ({e})",
                        d.fingerprint
                    ),
                    logs: logs_of(&d),
                })
            }
        };
        if let Err(e) = crate::digest::verify(public, d.string_to_sign().as_bytes(), signature) {
            return Ok(Loaded::Invalid {
                kind: if matches!(e, VerifyError::BadKey(_)) {
                    ProblemKind::DigestBadKey
                } else {
                    ProblemKind::DigestBadSignature
                },
                reason: e.to_string(),
                logs: logs_of(&d),
            });
        }
        let (Some(start_ms), Some(end_ms)) = (
            parse_rfc3339_ms(&d.start_time),
            parse_rfc3339_ms(&d.end_time),
        ) else {
            return Ok(Loaded::Invalid {
                kind: ProblemKind::DigestInvalidFormat,
                reason: format!(
                    "invalid format: digestStartTime {:?} / digestEndTime {:?} are not timestamps",
                    d.start_time, d.end_time
                ),
                logs: logs_of(&d),
            });
        };
        let logs = match &d.log_files {
            Ok(l) => l.clone(),
            Err(e) => {
                return Ok(invalid(
                    ProblemKind::DigestInvalidFormat,
                    format!("invalid format: {e}"),
                ))
            }
        };
        if self.opts.strict {
            let mut why = Vec::new();
            if algorithm != SIGNATURE_ALGORITHM {
                why.push(format!("signature-algorithm metadata is {algorithm:?}"));
            }
            if d.signature_algorithm.as_deref() != Some(SIGNATURE_ALGORITHM) {
                why.push(format!(
                    "digestSignatureAlgorithm is {:?}",
                    d.signature_algorithm
                ));
            }
            if d.previous_hash_algorithm
                .as_deref()
                .is_some_and(|a| a != HASH_ALGORITHM)
            {
                why.push(format!(
                    "previousDigestHashAlgorithm is {:?}",
                    d.previous_hash_algorithm
                ));
            }
            if let Some(l) = logs
                .iter()
                .find(|l| l.hash_algorithm.as_deref() != Some(HASH_ALGORITHM))
            {
                why.push(format!(
                    "logFiles entry {} has hashAlgorithm {:?}",
                    l.s3_object, l.hash_algorithm
                ));
            }
            if start_ms > end_ms {
                why.push("digestStartTime is after digestEndTime".to_owned());
            }
            if !why.is_empty() {
                return Ok(Loaded::Invalid {
                    kind: ProblemKind::DigestInvalidFormat,
                    reason: format!("unsupported: {} (strict)", why.join("; ")),
                    logs: logs_of(&d),
                });
            }
        }
        Ok(Loaded::Valid(Box::new(ValidDigest {
            signature: signature.clone(),
            d,
            start_ms,
            end_ms,
            logs,
        })))
    }

    async fn spawn_log(
        &mut self,
        chain: usize,
        digest_key: &str,
        backfill: bool,
        entry: LogFileEntry,
    ) -> Result<(), ValidateError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ValidateError::Store(format!("hash pool closed: {e}")))?;
        let store = self.store.clone();
        let digest_key = digest_key.to_owned();
        let on_hashed = self.opts.on_hashed.clone();
        self.tasks.spawn(async move {
            let result = store.hash_log(&entry.s3_bucket, &entry.s3_object).await;
            drop(permit);
            if let (Some(f), Ok(h)) = (&on_hashed.0, &result) {
                f(h.compressed_bytes);
            }
            LogOutcome {
                chain,
                digest_key,
                backfill,
                entry,
                result,
            }
        });
        while let Some(done) = self.tasks.try_join_next() {
            let done = done.map_err(|e| ValidateError::Store(format!("hash task failed: {e}")))?;
            self.tally(done)?;
        }
        Ok(())
    }

    fn tally(&mut self, o: LogOutcome) -> Result<(), ValidateError> {
        let (kind, reason, missing) = match o.result {
            Ok(h) => {
                self.report.compressed_bytes_hashed += h.compressed_bytes;
                self.report.uncompressed_bytes_hashed += h.uncompressed_bytes;
                if h.sha256_hex == o.entry.hash_value {
                    self.report.log_files.valid += 1;
                    self.report.chains[o.chain].log_files.valid += 1;
                    if self.opts.verbose {
                        self.report.valid_objects.push(ValidObject {
                            object: "log",
                            bucket: o.entry.s3_bucket,
                            key: o.entry.s3_object,
                        });
                    }
                    return Ok(());
                }
                (
                    ProblemKind::LogModified,
                    format!(
                        "hash value doesn't match (the digest lists {}, the file hashes to {})",
                        o.entry.hash_value, h.sha256_hex
                    ),
                    false,
                )
            }
            Err(LogError::NotFound) => (ProblemKind::LogMissing, "not found".to_owned(), true),
            Err(LogError::InvalidKey(r)) => {
                (ProblemKind::LogMissing, format!("not found: {r}"), true)
            }
            Err(LogError::Format(LogFormatError::TrailingData)) => (
                ProblemKind::LogTrailingData,
                "unexpected data after end of compressed stream".to_owned(),
                false,
            ),
            Err(LogError::Format(e)) => (ProblemKind::LogInvalidFormat, e.to_string(), false),
            Err(LogError::Other(e)) => return Err(ValidateError::Store(e)),
        };
        for c in [
            &mut self.report.log_files,
            &mut self.report.chains[o.chain].log_files,
        ] {
            c.invalid += 1;
            if missing {
                c.missing += 1;
            }
        }
        self.problem(
            kind,
            &o.entry.s3_bucket,
            &o.entry.s3_object,
            reason,
            o.backfill,
            Some(o.digest_key),
        );
        Ok(())
    }

    /// Strict: log files in the store, delivered within the time valid digests cover, that no
    /// digest lists. Files delivered in the first or last minute of the covered span are not
    /// judged (key stamps have minute resolution; digest windows have seconds).
    async fn check_unlisted_logs(&mut self) -> Result<(), ValidateError> {
        let bucket = self.list_bucket();
        let coverage = std::mem::take(&mut self.coverage);
        for ((base, region), cov) in &coverage {
            let Some((lo, hi)) = cov.window else {
                continue;
            };
            let prefix = format!("{base}CloudTrail/{region}/");
            let start_after = format!("{prefix}{}", ymd_dir(lo - 86_400_000));
            let keys = self
                .store
                .list_keys(&bucket, &prefix, Some(&start_after))
                .await
                .map_err(Self::store_err)?;
            let mut unlisted = BTreeSet::new();
            for key in keys {
                let KeyClass::CloudTrail(k) = classify_key(&key) else {
                    continue;
                };
                if k.kind != KeyKind::Log {
                    continue;
                }
                let Some(t) = parse_key_stamp(k.delivery_time) else {
                    continue;
                };
                if t >= lo && t + 60_000 <= hi && !cov.listed.contains(&key) {
                    unlisted.insert(key);
                }
            }
            for key in unlisted {
                self.report.unlisted_log_files += 1;
                self.problem(
                    ProblemKind::LogUnlisted,
                    &bucket,
                    &key,
                    "present in the store, delivered within the time the valid digests cover, but no digest lists it".into(),
                    false,
                    None,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_stamps() {
        let ms = parse_key_stamp("20150817T150131Z").unwrap();
        assert_eq!(format_rfc3339_s(ms), "2015-08-17T15:01:31Z");
        assert_eq!(format_key_stamp(ms), "20150817T150131Z");
        assert_eq!(
            parse_key_stamp("20150801T0210Z"),
            parse_rfc3339_ms("2015-08-01T02:10:00Z")
        );
        assert_eq!(parse_key_stamp("2015081XT150131Z"), None);
        assert_eq!(parse_key_stamp("20151317T150131Z"), None);
    }

    #[test]
    fn digest_dates_sliced_like_the_cli() {
        let k = "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2015/08/16/123456789012_CloudTrail-Digest_us-east-1_foo_us-east-1_20150816T230550Z.json.gz";
        assert_eq!(digest_key_stamp(k), Some("20150816T230550Z"));
        let b = k.replace(".json.gz", "_backfill.json.gz");
        assert_eq!(digest_key_stamp(&b), Some("20150816T230550Z"));
        assert_eq!(digest_key_stamp("x.json"), None);
    }

    #[test]
    fn next_older_pops_newer_and_equal_keys() {
        let key = |s: &str| format!("a_{s}.json.gz");
        let mut v = vec![
            key("20150816T010000Z"),
            key("20150816T020000Z"),
            key("20150816T030000Z"),
            key("20150816T040000Z"),
        ];
        let got = Run::<crate::LocalStore>::next_older(&mut v, &key("20150816T030000Z"));
        assert_eq!(got, Some(key("20150816T020000Z")));
        assert_eq!(v, vec![key("20150816T010000Z")]);
    }
}
