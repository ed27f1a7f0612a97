//! Deterministic, realistic synthetic AWS CloudTrail corpora.
//!
//! [`generate`] writes an organization trail laid out exactly like the S3
//! bucket CloudTrail delivers to:
//!
//! ```text
//! AWSLogs/o-<org>/<account>/CloudTrail/<region>/YYYY/MM/DD/
//!     <account>_CloudTrail_<region>_YYYYMMDDTHHmmZ_<unique16>.json.gz
//! ```
//!
//! Each file holds `{"Records":[...]}` in compact JSON. Output is a pure
//! function of [`GenOptions`]: no wall clock, no hash-map ordering, no
//! platform-dependent float math, so the same options give byte-identical
//! files on every run and machine (gzip bytes additionally assume the same
//! flate2/zlib-rs version, which the lockfile pins).
//!
//! [`write_log_file`] streams one arbitrarily large log file for memory
//! tests, and [`record_json`] produces single records for parser benchmarks.

mod catalog;
mod inject;
mod json;
mod record;
mod time;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use inject::{Inject, InjectedAnomaly, InjectedEvent};
use json::Json;
pub use record::{RecordContext, RecordSize, LARGE_MAX_BYTES, LARGE_MIN_BYTES};
use time::Utc;

/// Regions in the order they are assigned: `--regions 2` means the first two.
/// us-east-1 comes first because global-service events (IAM, Organizations)
/// are only delivered there.
pub const REGIONS: &[&str] = &[
    "us-east-1",
    "eu-west-1",
    "ap-southeast-2",
    "us-west-2",
    "eu-central-1",
    "ap-northeast-1",
    "us-east-2",
    "eu-west-2",
    "ca-central-1",
    "sa-east-1",
    "ap-south-1",
    "eu-north-1",
    "ap-southeast-1",
    "us-west-1",
    "eu-west-3",
    "ap-northeast-2",
];

/// 2026-11-01T00:00:00Z in Unix milliseconds, the default base time.
pub const DEFAULT_START_TIME_MS: i64 = time::days_from_civil(2026, 11, 1) * 86_400_000;

/// CloudTrail delivers a file per account/region roughly every five minutes.
const DELIVERY_INTERVAL_MS: i64 = 5 * 60_000;

/// Records are accumulated up to this size before being handed to the
/// (possibly compressing) writer, so deflate sees large chunks.
const FLUSH_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// `.json.gz`, as CloudTrail delivers.
    #[default]
    Gzip,
    /// Plain `.json`, for tests that want to inspect bytes directly.
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GenOptions {
    /// Total number of records across all files.
    pub events: u64,
    /// Number of member accounts (default 3).
    pub accounts: u32,
    /// Number of regions, taken from the front of [`REGIONS`] (default 2).
    pub regions: u32,
    pub seed: u64,
    /// Upper bound on records per file (default 1000). When there are fewer
    /// events than `accounts * regions * events_per_file`, files are made
    /// smaller so every account/region still gets data; the last file may be
    /// smaller than the rest.
    pub events_per_file: u32,
    /// Base time in Unix milliseconds; every timestamp derives from it.
    pub start_time_ms: i64,
    /// Fraction of records padded to 10–200 KB (default 0.002).
    pub large_record_ratio: f64,
    pub compression: Compression,
    /// Gzip level 0–9 (default 6).
    pub gzip_level: u32,
    /// `o-` followed by 10–32 lowercase alphanumerics; derived from the seed
    /// when `None`.
    pub org_id: Option<String>,
    /// Known violations and anomalies to add, in extra files (default: none, and then the
    /// output is exactly the plain corpus).
    pub inject: Inject,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            events: 10_000,
            accounts: 3,
            regions: 2,
            seed: 0,
            events_per_file: 1000,
            start_time_ms: DEFAULT_START_TIME_MS,
            large_record_ratio: 0.002,
            compression: Compression::Gzip,
            gzip_level: 6,
            org_id: None,
            inject: Inject::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Path relative to the output directory, using the platform separator.
    pub path: PathBuf,
    /// The same location as an S3 key (always `/`-separated).
    pub key: String,
    pub account_id: String,
    pub region: String,
    pub records: u64,
    pub uncompressed_bytes: u64,
    /// Equal to `uncompressed_bytes` for [`Compression::None`].
    pub compressed_bytes: u64,
    /// The delivery instant encoded (to the minute) in the file name.
    pub delivery_time_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenSummary {
    pub org_id: String,
    pub account_ids: Vec<String>,
    pub regions: Vec<String>,
    /// In generation order (round-robin over account/region streams).
    pub files: Vec<GeneratedFile>,
    pub records: u64,
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
    /// Injected violations (with [`GenOptions::inject`]), in injection order.
    pub injected: Vec<InjectedEvent>,
    /// Injected anomalies.
    pub anomalies: Vec<InjectedAnomaly>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Wraps an I/O error with the operation and path, since a bare
/// "No such file or directory" from deep inside a generation run is useless.
fn at<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> io::Error + 'p {
    move |e| io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

fn validate_start(ms: i64) -> io::Result<()> {
    if (0..=time::MAX_MS).contains(&ms) {
        Ok(())
    } else {
        Err(invalid(format!(
            "start_time_ms {ms} is outside 1970-01-01..9999-12-31"
        )))
    }
}

fn validate_ratio(r: f64) -> io::Result<()> {
    if (0.0..=1.0).contains(&r) {
        Ok(())
    } else {
        Err(invalid(format!(
            "large_record_ratio {r} is not within 0.0..=1.0"
        )))
    }
}

impl GenOptions {
    fn validate(&self) -> io::Result<()> {
        if self.accounts == 0 {
            return Err(invalid("accounts must be at least 1".into()));
        }
        if self.accounts > 100_000 {
            return Err(invalid(format!(
                "accounts {} exceeds the supported maximum of 100000",
                self.accounts
            )));
        }
        if self.regions == 0 || self.regions as usize > REGIONS.len() {
            return Err(invalid(format!(
                "regions must be within 1..={} (got {})",
                REGIONS.len(),
                self.regions
            )));
        }
        if self.events_per_file == 0 {
            return Err(invalid("events_per_file must be at least 1".into()));
        }
        if self.gzip_level > 9 {
            return Err(invalid(format!(
                "gzip_level must be within 0..=9 (got {})",
                self.gzip_level
            )));
        }
        validate_start(self.start_time_ms)?;
        validate_ratio(self.large_record_ratio)?;
        if let Some(org) = &self.org_id {
            // The id becomes a path component, so anything beyond the AWS
            // pattern could escape the output directory.
            let body = org.strip_prefix("o-").unwrap_or("");
            let ok = (10..=32).contains(&body.len())
                && body
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !ok {
                return Err(invalid(format!(
                    "org_id {org:?} does not match o-[a-z0-9]{{10,32}}"
                )));
            }
        }
        Ok(())
    }
}

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const MIXED_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn rand_chars(rng: &mut ChaCha8Rng, charset: &[u8], n: usize, out: &mut String) {
    for _ in 0..n {
        out.push(char::from(
            charset[rng.gen_range(0..charset.len() as u32) as usize],
        ));
    }
}

/// Per-file randomness lives on its own ChaCha stream so a file's content
/// depends only on (seed, file index), not on how much randomness earlier
/// files consumed; stream 0 is reserved for the layout.
fn file_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Counts bytes on their way to an inner writer.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `{"Records":[...]}` with `count` records whose times spread over
/// `[window_start, window_end]` in roughly increasing order, returning the
/// uncompressed byte count.
#[allow(clippy::too_many_arguments)]
fn write_records<W: Write>(
    out: &mut W,
    j: &mut Json,
    rng: &mut ChaCha8Rng,
    ctx: &mut RecordContext,
    count: u64,
    window_start: i64,
    window_end: i64,
    large_ratio: f64,
) -> io::Result<u64> {
    let mut total = 0u64;
    j.buf.clear();
    j.buf.extend_from_slice(b"{\"Records\":[");
    let span = (window_end - window_start).max(0) as u128;
    for i in 0..count {
        if i > 0 {
            j.buf.push(b',');
        }
        let base = window_start + (span * u128::from(i) / u128::from(count.max(1))) as i64;
        // A few seconds of jitter: real files are only approximately sorted.
        let jitter = rng.gen_range(0..6000u32) as i64 - 3000;
        ctx.event_time_ms = (base + jitter).clamp(window_start, window_end);
        ctx.size = if large_ratio > 0.0 && rng.gen::<f64>() < large_ratio {
            RecordSize::AtLeast(record::large_target(rng))
        } else {
            RecordSize::Natural
        };
        record::write_record(j, rng, ctx);
        if j.buf.len() >= FLUSH_BYTES {
            out.write_all(&j.buf)?;
            total += j.buf.len() as u64;
            j.buf.clear();
        }
    }
    j.buf.extend_from_slice(b"]}");
    out.write_all(&j.buf)?;
    total += j.buf.len() as u64;
    j.buf.clear();
    Ok(total)
}

/// Generates the corpus under `out` (created if missing; existing files with
/// the same names are overwritten, others are left alone).
pub fn generate(out: &Path, opts: &GenOptions) -> io::Result<GenSummary> {
    opts.validate()?;
    fs::create_dir_all(out).map_err(at("creating output directory", out))?;

    let mut layout_rng = file_rng(opts.seed, 0);
    let mut org_id = "o-".to_owned();
    rand_chars(&mut layout_rng, LOWER_ALNUM, 10, &mut org_id);
    if let Some(org) = &opts.org_id {
        org_id.clone_from(org);
    }
    let mut seen = BTreeSet::new();
    let mut account_ids = Vec::with_capacity(opts.accounts as usize);
    while account_ids.len() < opts.accounts as usize {
        let mut a = String::with_capacity(12);
        a.push(char::from(b'0' + layout_rng.gen_range(1..10u8)));
        rand_chars(&mut layout_rng, b"0123456789", 11, &mut a);
        if seen.insert(a.clone()) {
            account_ids.push(a);
        }
    }
    let regions: Vec<String> = REGIONS[..opts.regions as usize]
        .iter()
        .map(|r| (*r).to_owned())
        .collect();

    let streams = u64::from(opts.accounts) * u64::from(opts.regions);
    let per_file = u64::from(opts.events_per_file)
        .min(opts.events.div_ceil(streams))
        .max(1);
    let n_files = opts.events.div_ceil(per_file);

    let mut summary = GenSummary {
        org_id: org_id.clone(),
        account_ids: account_ids.clone(),
        regions: regions.clone(),
        ..GenSummary::default()
    };
    let mut j = Json::with_capacity(FLUSH_BYTES + LARGE_MAX_BYTES + 64 * 1024);
    let mut keys = BTreeSet::new();
    let mut made_dirs = BTreeSet::new();

    for f in 0..n_files {
        let stream = f % streams;
        let k = (f / streams) as i64;
        let account = &account_ids[(stream / u64::from(opts.regions)) as usize];
        let region = &regions[(stream % u64::from(opts.regions)) as usize];
        let count = per_file.min(opts.events - f * per_file);
        let mut rng = file_rng(opts.seed, f + 1);

        let window_start = opts
            .start_time_ms
            .saturating_add(k.saturating_mul(DELIVERY_INTERVAL_MS));
        let delivery = window_start
            .saturating_add(DELIVERY_INTERVAL_MS)
            .saturating_add(i64::from(rng.gen_range(0..120_000u32)));
        if delivery > time::MAX_MS {
            return Err(invalid(format!(
                "{} events push delivery times past year 9999; raise events_per_file or lower start_time_ms",
                opts.events
            )));
        }
        // Events must predate their delivery, with a little slack as in
        // real trails where the last event is a few seconds before the write.
        let window_end = delivery - 1000;

        let stamp = Utc::from_ms(delivery);
        let mut dir = format!("AWSLogs/{org_id}/{account}/CloudTrail/{region}/");
        let mut ymd = Vec::with_capacity(10);
        stamp.push_ymd(&mut ymd, b"/");
        dir.push_str(&String::from_utf8_lossy(&ymd));
        let mut minute = Vec::with_capacity(14);
        stamp.push_compact_minute(&mut minute);
        let ext = match opts.compression {
            Compression::Gzip => ".json.gz",
            Compression::None => ".json",
        };
        let key = loop {
            let mut unique = String::with_capacity(16);
            rand_chars(&mut rng, MIXED_ALNUM, 16, &mut unique);
            let key = format!(
                "{dir}/{account}_CloudTrail_{region}_{}_{unique}{ext}",
                String::from_utf8_lossy(&minute)
            );
            if keys.insert(key.clone()) {
                break key;
            }
        };

        let rel: PathBuf = key.split('/').collect();
        let path = out.join(&rel);
        if let Some(parent) = path.parent() {
            if made_dirs.insert(parent.to_path_buf()) {
                fs::create_dir_all(parent).map_err(at("creating directory", parent))?;
            }
        }
        let file = File::create(&path).map_err(at("creating", &path))?;
        let mut ctx = RecordContext {
            account_id: account.clone(),
            region: region.clone(),
            org_id: org_id.clone(),
            event_time_ms: window_start,
            size: RecordSize::Natural,
        };
        let mut sink = Counting {
            inner: file,
            bytes: 0,
        };
        let ratio = opts.large_record_ratio;
        let (uncompressed, compressed) = match opts.compression {
            Compression::Gzip => {
                let level = flate2::Compression::new(opts.gzip_level);
                let mut enc = flate2::write::GzEncoder::new(&mut sink, level);
                let n = write_records(
                    &mut enc,
                    &mut j,
                    &mut rng,
                    &mut ctx,
                    count,
                    window_start,
                    window_end,
                    ratio,
                )
                .map_err(at("writing", &path))?;
                enc.finish()
                    .map_err(at("finishing gzip stream of", &path))?;
                (n, sink.bytes)
            }
            Compression::None => {
                let n = write_records(
                    &mut sink,
                    &mut j,
                    &mut rng,
                    &mut ctx,
                    count,
                    window_start,
                    window_end,
                    ratio,
                )
                .map_err(at("writing", &path))?;
                (n, sink.bytes)
            }
        };
        sink.flush().map_err(at("flushing", &path))?;

        summary.records += count;
        summary.uncompressed_bytes += uncompressed;
        summary.compressed_bytes += compressed;
        summary.files.push(GeneratedFile {
            path: rel,
            key,
            account_id: account.clone(),
            region: region.clone(),
            records: count,
            uncompressed_bytes: uncompressed,
            compressed_bytes: compressed,
            delivery_time_ms: delivery,
        });
    }
    if opts.inject.any() {
        let windows = n_files.div_ceil(streams) as i64;
        inject::write(
            out,
            opts,
            &org_id,
            &account_ids,
            &regions,
            windows.saturating_mul(DELIVERY_INTERVAL_MS),
            &mut keys,
            &mut made_dirs,
            &mut summary,
        )?;
    }
    Ok(summary)
}

/// Parameters for [`write_log_file`].
#[derive(Clone, Debug, PartialEq)]
pub struct LogFileParams {
    pub account_id: String,
    pub region: String,
    pub org_id: String,
    /// Time of the first record; later ones advance ~250 ms each.
    pub start_time_ms: i64,
    /// Same meaning as [`GenOptions::large_record_ratio`].
    pub large_record_ratio: f64,
}

impl Default for LogFileParams {
    fn default() -> Self {
        let ctx = RecordContext::default();
        LogFileParams {
            account_id: ctx.account_id,
            region: ctx.region,
            org_id: ctx.org_id,
            start_time_ms: DEFAULT_START_TIME_MS,
            large_record_ratio: 0.002,
        }
    }
}

/// Streams one log file (`{"Records":[...]}`, uncompressed) with `records`
/// records to `w`, holding at most a few hundred KB in memory regardless of
/// size; wrap `w` in a `GzEncoder` for a compressed file. Returns the number
/// of bytes written. Deterministic for equal arguments.
pub fn write_log_file<W: Write>(
    mut w: W,
    rng_seed: u64,
    records: u64,
    params: &LogFileParams,
) -> io::Result<u64> {
    validate_start(params.start_time_ms)?;
    validate_ratio(params.large_record_ratio)?;
    let mut rng = file_rng(rng_seed, 0);
    let mut ctx = RecordContext {
        account_id: params.account_id.clone(),
        region: params.region.clone(),
        org_id: params.org_id.clone(),
        event_time_ms: params.start_time_ms,
        size: RecordSize::Natural,
    };
    let end = params
        .start_time_ms
        .saturating_add(
            i64::try_from(records)
                .unwrap_or(i64::MAX)
                .saturating_mul(250),
        )
        .min(time::MAX_MS);
    let mut j = Json::with_capacity(FLUSH_BYTES + LARGE_MAX_BYTES + 64 * 1024);
    let n = write_records(
        &mut w,
        &mut j,
        &mut rng,
        &mut ctx,
        records,
        params.start_time_ms,
        end,
        params.large_record_ratio,
    )?;
    w.flush()?;
    Ok(n)
}

/// One record as compact JSON. `ctx.size` selects a natural record or one
/// padded to at least a given size (for parser benchmarks by record size).
pub fn record_json<R: Rng + ?Sized>(rng: &mut R, ctx: &RecordContext) -> Vec<u8> {
    let mut buf = Vec::with_capacity(2048);
    write_record_json(&mut buf, rng, ctx);
    buf
}

/// Appends one compact JSON record to `buf`; lets benchmarks reuse a buffer.
pub fn write_record_json<R: Rng + ?Sized>(buf: &mut Vec<u8>, rng: &mut R, ctx: &RecordContext) {
    let mut j = Json::from_vec(std::mem::take(buf));
    record::write_record(&mut j, rng, ctx);
    *buf = j.buf;
}

/// The record sizes the parser benchmarks report: natural records, and records padded to at
/// least 8 KB and 64 KB (large `requestParameters`, as some services write).
pub fn bench_size_classes() -> [(&'static str, RecordSize); 3] {
    [
        ("natural", RecordSize::Natural),
        ("8KB", RecordSize::AtLeast(8 * 1024)),
        ("64KB", RecordSize::AtLeast(64 * 1024)),
    ]
}

/// A decompressed `{"Records":[...]}` file of about `total` bytes of records of one size
/// class, the same for every caller (fixed seed): the parser benchmarks' input.
pub fn bench_records_file(size: RecordSize, total: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut ctx = RecordContext {
        size,
        ..RecordContext::default()
    };
    let mut out = b"{\"Records\":[".to_vec();
    let mut rec = Vec::new();
    while out.len() < total {
        rec.clear();
        ctx.event_time_ms += 1000;
        write_record_json(&mut rec, &mut rng, &ctx);
        if out.len() > 12 {
            out.push(b',');
        }
        out.extend_from_slice(&rec);
    }
    out.extend_from_slice(b"]}");
    out
}
