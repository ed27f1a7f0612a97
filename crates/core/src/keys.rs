//! Classification of S3 object keys written by CloudTrail.
//!
//! A CloudTrail bucket usually holds more than CloudTrail logs (Config
//! snapshots, access logs, user files, digests), and queue notifications name
//! every one of them. The layout below is the only contract AWS documents, so
//! we route on it and give every rejected key a fixed reason string that
//! callers can count without allocating.
//!
//! ```text
//! [prefix/]AWSLogs/[O-ID/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHmmZ_UNIQUE.json.gz
//! [prefix/]AWSLogs/[O-ID/]ACCOUNT/CloudTrail-Digest/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail-Digest_REGION_TRAIL_HOMEREGION_YYYYMMDDTHHMMSSZ[_backfill].json.gz
//! [prefix/]AWSLogs/[O-ID/]ACCOUNT/CloudTrail-Insight/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail-Insight_REGION_YYYYMMDDTHHmmZ_UNIQUE.json.gz
//! ```

/// The segment that starts the CloudTrail part of a key; everything before it
/// is the user-chosen prefix.
const AWSLOGS: &str = "AWSLogs/";

/// Copies of CloudTrail files are sometimes stored uncompressed or
/// recompressed, and the body is sniffed elsewhere, so any of these is fine.
const EXTENSIONS: [&str; 3] = [".json.gz", ".json.zst", ".json"];

const BACKFILL_SUFFIX: &str = "_backfill";

/// Which CloudTrail product wrote an object; decides how its body is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Event log file (`CloudTrail/`).
    Log,
    /// Hourly integrity digest (`CloudTrail-Digest/`).
    Digest,
    /// Insights event file (`CloudTrail-Insight/`).
    Insight,
}

impl KeyKind {
    /// Every kind, for callers that enumerate day prefixes per kind.
    pub const ALL: [KeyKind; 3] = [KeyKind::Log, KeyKind::Digest, KeyKind::Insight];

    /// Stable lower-case label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyKind::Log => "log",
            KeyKind::Digest => "digest",
            KeyKind::Insight => "insight",
        }
    }

    /// The directory name, which is also the service token in the file name.
    pub fn service_dir(&self) -> &'static str {
        match self {
            KeyKind::Log => "CloudTrail",
            KeyKind::Digest => "CloudTrail-Digest",
            KeyKind::Insight => "CloudTrail-Insight",
        }
    }

    fn from_service_dir(segment: &str) -> Option<Self> {
        KeyKind::ALL
            .into_iter()
            .find(|kind| kind.service_dir() == segment)
    }
}

/// A key that matches one of the CloudTrail layouts; all slices borrow the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudTrailKey<'a> {
    pub kind: KeyKind,
    /// Text before `AWSLogs/`, without its trailing slash; `""` when none.
    pub prefix: &'a str,
    /// Organizations id (`o-…`) for organization trails.
    pub org_id: Option<&'a str>,
    pub account: &'a str,
    pub region: &'a str,
    /// Date from the `YYYY/MM/DD` directories.
    pub year: u16,
    pub month: u8,
    pub day: u8,
    /// Raw stamp from the file name: `YYYYMMDDTHHmmZ` for logs and insights,
    /// `YYYYMMDDTHHMMSSZ` for digests. It may name a different day than the
    /// directories; AWS does not promise they agree, so we do not check.
    pub delivery_time: &'a str,
    /// Digest only: trail name, which may itself contain underscores.
    pub trail_name: Option<&'a str>,
    /// Digest only: region where the trail was created.
    pub home_region: Option<&'a str>,
    /// Digest only: written by CloudTrail's backfill rather than on schedule.
    pub backfill: bool,
}

impl CloudTrailKey<'_> {
    /// The listing prefix of the day directory this key lives in.
    pub fn day_prefix(&self) -> String {
        day_prefix(
            self.prefix,
            self.org_id,
            self.account,
            self.kind,
            self.region,
            self.year,
            self.month,
            self.day,
        )
    }
}

/// Result of [`classify_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass<'a> {
    CloudTrail(CloudTrailKey<'a>),
    /// Not a CloudTrail file; `reason` is a fixed string suitable as a metric
    /// label.
    Other {
        reason: &'static str,
    },
}

impl<'a> KeyClass<'a> {
    pub fn cloudtrail(&self) -> Option<&CloudTrailKey<'a>> {
        match self {
            KeyClass::CloudTrail(key) => Some(key),
            KeyClass::Other { .. } => None,
        }
    }
}

/// Reasons are public so callers and tests can match on them instead of
/// repeating string literals.
pub mod reason {
    pub const NO_AWSLOGS: &str = "no AWSLogs/ path segment";
    pub const BAD_ORG_ID: &str = "invalid Organizations id after AWSLogs/";
    pub const BAD_ACCOUNT: &str = "account id is not 12 digits";
    pub const MISSING_SERVICE: &str = "key ends before the service directory";
    pub const NOT_CLOUDTRAIL: &str =
        "service directory is not CloudTrail, CloudTrail-Digest or CloudTrail-Insight";
    pub const MISSING_REGION: &str = "key ends before the region directory";
    pub const BAD_REGION: &str = "invalid region directory";
    pub const MISSING_DATE: &str = "key ends before the YYYY/MM/DD directories";
    pub const BAD_YEAR: &str = "year directory is not 4 digits";
    pub const BAD_MONTH: &str = "month directory is not 01-12";
    pub const BAD_DAY: &str = "day directory is not a valid day of that month";
    pub const MISSING_FILE: &str = "no file name after the day directory";
    pub const EXTRA_SEGMENTS: &str = "extra path segments after the day directory";
    pub const BAD_EXTENSION: &str = "file name does not end in .json.gz, .json.zst or .json";
    pub const FILE_ACCOUNT_MISMATCH: &str =
        "file name does not start with the directory's account id";
    pub const FILE_SERVICE_MISMATCH: &str = "file name service token does not match the directory";
    pub const FILE_REGION_MISMATCH: &str = "file name region does not match the directory";
    pub const BAD_TIMESTAMP: &str = "invalid delivery timestamp in file name";
    pub const BAD_UNIQUE_ID: &str = "missing or invalid unique id in file name";
    pub const BAD_HOME_REGION: &str = "missing or invalid home region in digest file name";
    pub const BAD_TRAIL_NAME: &str = "missing or invalid trail name in digest file name";
}

/// Why one `AWSLogs/` candidate failed. `stage` orders failures by how much
/// of the layout matched, so that when a key has several `AWSLogs/` segments
/// we report the attempt that came closest, which is the useful diagnosis.
#[derive(Clone, Copy)]
struct Rejection {
    stage: u8,
    reason: &'static str,
}

const fn reject(stage: u8, reason: &'static str) -> Rejection {
    Rejection { stage, reason }
}

/// Classify an S3 object key by the CloudTrail layout.
///
/// The prefix may contain slashes and even `AWSLogs/` itself, so every
/// `AWSLogs/` segment is tried from the last one back and the first that
/// yields a valid layout wins.
pub fn classify_key(key: &str) -> KeyClass<'_> {
    let mut best: Option<Rejection> = None;
    for (start, _) in key.rmatch_indices(AWSLOGS) {
        let at_segment_start = match start.checked_sub(1) {
            None => true,
            Some(before) => key.as_bytes().get(before) == Some(&b'/'),
        };
        if !at_segment_start {
            continue;
        }
        match parse_at(key, start) {
            Ok(parsed) => return KeyClass::CloudTrail(parsed),
            Err(rejection) => {
                if best.is_none_or(|b| rejection.stage > b.stage) {
                    best = Some(rejection);
                }
            }
        }
    }
    KeyClass::Other {
        reason: best.map_or(reason::NO_AWSLOGS, |b| b.reason),
    }
}

/// The delivery stamp (`YYYYMMDDTHHMMSSZ`) of a digest key, or `None` when the
/// key is not a digest. aws-cli slices fixed offsets from the end instead;
/// parsing keeps this correct for `.json` and `.json.zst` copies too.
pub fn digest_time_from_key(key: &str) -> Option<&str> {
    match classify_key(key) {
        KeyClass::CloudTrail(parsed) if parsed.kind == KeyKind::Digest => {
            Some(parsed.delivery_time)
        }
        _ => None,
    }
}

/// Listing prefix of one day directory, e.g.
/// `AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/2024/05/01/`.
///
/// `prefix` is joined with exactly one `/`, matching how [`classify_key`]
/// strips it, so `day_prefix` of a parsed key lists the key's own directory.
// The arguments are exactly the layout's path components; bundling them in a
// struct would only restate the layout.
#[allow(clippy::too_many_arguments)]
pub fn day_prefix(
    prefix: &str,
    org_id: Option<&str>,
    account: &str,
    kind: KeyKind,
    region: &str,
    year: u16,
    month: u8,
    day: u8,
) -> String {
    let separator = if prefix.is_empty() { "" } else { "/" };
    let (org, org_separator) = match org_id {
        Some(org) => (org, "/"),
        None => ("", ""),
    };
    format!(
        "{prefix}{separator}{AWSLOGS}{org}{org_separator}{account}/{service}/{region}/{year:04}/{month:02}/{day:02}/",
        service = kind.service_dir(),
    )
}

fn parse_at(key: &str, start: usize) -> Result<CloudTrailKey<'_>, Rejection> {
    let Some((before, from_awslogs)) = key.split_at_checked(start) else {
        return Err(reject(0, reason::NO_AWSLOGS));
    };
    let Some(tail) = from_awslogs.strip_prefix(AWSLOGS) else {
        return Err(reject(0, reason::NO_AWSLOGS));
    };
    let prefix = before.strip_suffix('/').unwrap_or(before);

    let mut segments = tail.split('/');
    let first = segments.next().unwrap_or("");
    let (org_id, account) = if first.starts_with("o-") {
        if !is_org_id(first) {
            return Err(reject(1, reason::BAD_ORG_ID));
        }
        (Some(first), segments.next().unwrap_or(""))
    } else {
        (None, first)
    };
    if !is_account(account) {
        return Err(reject(2, reason::BAD_ACCOUNT));
    }

    // An empty segment is what a directory marker (`…/111122223333/`) leaves.
    let service = segments
        .next()
        .filter(|s| !s.is_empty())
        .ok_or(reject(3, reason::MISSING_SERVICE))?;
    let kind = KeyKind::from_service_dir(service).ok_or(reject(3, reason::NOT_CLOUDTRAIL))?;

    let region = segments
        .next()
        .filter(|s| !s.is_empty())
        .ok_or(reject(4, reason::MISSING_REGION))?;
    if !is_region(region) {
        return Err(reject(4, reason::BAD_REGION));
    }

    let (Some(year), Some(month), Some(day)) = (segments.next(), segments.next(), segments.next())
    else {
        return Err(reject(5, reason::MISSING_DATE));
    };
    let year = fixed_digits(year, 4)
        .and_then(|y| u16::try_from(y).ok())
        .ok_or(reject(5, reason::BAD_YEAR))?;
    let month = fixed_digits(month, 2)
        .and_then(|m| u8::try_from(m).ok())
        .filter(|m| (1..=12).contains(m))
        .ok_or(reject(5, reason::BAD_MONTH))?;
    let day = fixed_digits(day, 2)
        .and_then(|d| u8::try_from(d).ok())
        .filter(|d| (1..=days_in_month(year, month)).contains(d))
        .ok_or(reject(5, reason::BAD_DAY))?;

    let file = segments
        .next()
        .filter(|f| !f.is_empty())
        .ok_or(reject(6, reason::MISSING_FILE))?;
    if segments.next().is_some() {
        return Err(reject(6, reason::EXTRA_SEGMENTS));
    }

    let name = parse_file_name(file, kind, account, region)?;
    Ok(CloudTrailKey {
        kind,
        prefix,
        org_id,
        account,
        region,
        year,
        month,
        day,
        delivery_time: name.delivery_time,
        trail_name: name.trail_name,
        home_region: name.home_region,
        backfill: name.backfill,
    })
}

struct FileName<'a> {
    delivery_time: &'a str,
    trail_name: Option<&'a str>,
    home_region: Option<&'a str>,
    backfill: bool,
}

fn parse_file_name<'a>(
    file: &'a str,
    kind: KeyKind,
    account: &str,
    region: &str,
) -> Result<FileName<'a>, Rejection> {
    let stem = EXTENSIONS
        .into_iter()
        .find_map(|ext| file.strip_suffix(ext))
        .ok_or(reject(7, reason::BAD_EXTENSION))?;

    let rest = stem
        .strip_prefix(account)
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(reject(7, reason::FILE_ACCOUNT_MISMATCH))?;
    let rest = rest
        .strip_prefix(kind.service_dir())
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(reject(8, reason::FILE_SERVICE_MISMATCH))?;
    let rest = rest
        .strip_prefix(region)
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(reject(9, reason::FILE_REGION_MISMATCH))?;

    match kind {
        KeyKind::Log | KeyKind::Insight => {
            let (stamp, unique) = rest
                .split_once('_')
                .ok_or(reject(10, reason::BAD_TIMESTAMP))?;
            if !is_stamp(stamp, false) {
                return Err(reject(10, reason::BAD_TIMESTAMP));
            }
            // AWS documents the id as 16 alphanumerics; the length is not
            // enforced because nothing downstream depends on it.
            if unique.is_empty() || !unique.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(reject(11, reason::BAD_UNIQUE_ID));
            }
            Ok(FileName {
                delivery_time: stamp,
                trail_name: None,
                home_region: None,
                backfill: false,
            })
        }
        KeyKind::Digest => {
            // Trail names may contain underscores, so fields are taken from
            // the right: [_backfill], stamp, home region, and the rest is the
            // trail name.
            let (rest, backfill) = match rest.strip_suffix(BACKFILL_SUFFIX) {
                Some(r) => (r, true),
                None => (rest, false),
            };
            let (rest, stamp) = rest
                .rsplit_once('_')
                .ok_or(reject(10, reason::BAD_TIMESTAMP))?;
            if !is_stamp(stamp, true) {
                return Err(reject(10, reason::BAD_TIMESTAMP));
            }
            let (trail, home) = rest
                .rsplit_once('_')
                .ok_or(reject(11, reason::BAD_HOME_REGION))?;
            if !is_region(home) {
                return Err(reject(11, reason::BAD_HOME_REGION));
            }
            if !is_trail_name(trail) {
                return Err(reject(12, reason::BAD_TRAIL_NAME));
            }
            Ok(FileName {
                delivery_time: stamp,
                trail_name: Some(trail),
                home_region: Some(home),
                backfill,
            })
        }
    }
}

/// `o-` followed by 10–32 lower-case letters or digits (Organizations API).
fn is_org_id(s: &str) -> bool {
    s.strip_prefix("o-").is_some_and(|id| {
        (10..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Deliberately loose (`us-east-1`, `us-gov-west-1`, `eu-isoe-west-1`, …) so
/// that a region launched tomorrow is not dropped, yet strict enough to keep
/// path junk and file-name fields from being mistaken for a region.
fn is_region(s: &str) -> bool {
    let bytes = s.as_bytes();
    matches!(bytes.first(), Some(b) if b.is_ascii_lowercase())
        && matches!(bytes.last(), Some(b) if b.is_ascii_digit())
        && bytes.contains(&b'-')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// CloudTrail trail names are letters, digits, `.`, `_` and `-`.
fn is_trail_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `YYYYMMDDTHHmmZ`, or `YYYYMMDDTHHmmSSZ` when `with_seconds`.
fn is_stamp(s: &str, with_seconds: bool) -> bool {
    let time_len = if with_seconds { 6 } else { 4 };
    if s.len() != 8 + 1 + time_len + 1 {
        return false;
    }
    let part = |from: usize, len: usize| s.get(from..from + len).and_then(|p| fixed_digits(p, len));
    let valid_date = match (part(0, 4), part(4, 2), part(6, 2)) {
        (Some(y), Some(m), Some(d)) => match (u16::try_from(y), u8::try_from(m), u8::try_from(d)) {
            (Ok(y), Ok(m), Ok(d)) => {
                (1..=12).contains(&m) && (1..=days_in_month(y, m)).contains(&d)
            }
            _ => false,
        },
        _ => false,
    };
    let valid_time = matches!(part(9, 2), Some(h) if h < 24)
        && matches!(part(11, 2), Some(m) if m < 60)
        && (!with_seconds || matches!(part(13, 2), Some(sec) if sec < 60));
    valid_date
        && valid_time
        && s.as_bytes().get(8) == Some(&b'T')
        && s.as_bytes().last() == Some(&b'Z')
}

/// Exactly `len` ASCII digits; a sign or whitespace is not a date component.
fn fixed_digits(s: &str, len: usize) -> Option<u32> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u32, |acc, b| {
        acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => match (year % 4, year % 100, year % 400) {
            (_, _, 0) => 29,
            (_, 0, _) => 28,
            (0, _, _) => 29,
            _ => 28,
        },
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LOG_KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/01/111122223333_CloudTrail_us-east-2_20150801T0210Z_Mu0KsOhtH1ar15ZZ.json.gz";
    const INSIGHT_KEY: &str = "AWSLogs/o-fxozgwu6rc/123456789015/CloudTrail-Insight/ca-central-1/2020/09/23/123456789015_CloudTrail-Insight_ca-central-1_20200923T0516Z_KL5e9VCV2SS7IqzB.json.gz";
    const DIGEST_KEY: &str = "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/01/111122223333_CloudTrail-Digest_us-east-2_my_org_trail_us-east-1_20150801T021000Z.json.gz";
    const BACKFILL_KEY: &str = "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/01/111122223333_CloudTrail-Digest_us-east-2_Trail_us-east-2_20150801T021000Z_backfill.json.gz";

    fn parsed(key: &str) -> CloudTrailKey<'_> {
        match classify_key(key) {
            KeyClass::CloudTrail(k) => k,
            KeyClass::Other { reason } => panic!("{key} rejected: {reason}"),
        }
    }

    fn rejected(key: &str) -> &'static str {
        match classify_key(key) {
            KeyClass::Other { reason } => reason,
            KeyClass::CloudTrail(k) => panic!("{key} unexpectedly accepted: {k:?}"),
        }
    }

    #[test]
    fn log_file_from_aws_docs() {
        let k = parsed(LOG_KEY);
        assert_eq!(
            k,
            CloudTrailKey {
                kind: KeyKind::Log,
                prefix: "",
                org_id: None,
                account: "111122223333",
                region: "us-east-2",
                year: 2015,
                month: 8,
                day: 1,
                delivery_time: "20150801T0210Z",
                trail_name: None,
                home_region: None,
                backfill: false,
            }
        );
    }

    #[test]
    fn organization_insight_file_from_aws_docs() {
        let k = parsed(INSIGHT_KEY);
        assert_eq!(k.kind, KeyKind::Insight);
        assert_eq!(k.prefix, "");
        assert_eq!(k.org_id, Some("o-fxozgwu6rc"));
        assert_eq!(k.account, "123456789015");
        assert_eq!(k.region, "ca-central-1");
        assert_eq!((k.year, k.month, k.day), (2020, 9, 23));
        assert_eq!(k.delivery_time, "20200923T0516Z");
        assert_eq!(k.trail_name, None);
        assert_eq!(k.home_region, None);
        assert!(!k.backfill);
    }

    #[test]
    fn digest_with_underscored_trail_name() {
        let k = parsed(DIGEST_KEY);
        assert_eq!(k.kind, KeyKind::Digest);
        assert_eq!(k.region, "us-east-2");
        assert_eq!(k.trail_name, Some("my_org_trail"));
        assert_eq!(k.home_region, Some("us-east-1"));
        assert_eq!(k.delivery_time, "20150801T021000Z");
        assert!(!k.backfill);
    }

    #[test]
    fn backfill_digest() {
        let k = parsed(BACKFILL_KEY);
        assert_eq!(k.kind, KeyKind::Digest);
        assert_eq!(k.trail_name, Some("Trail"));
        assert_eq!(k.home_region, Some("us-east-2"));
        assert_eq!(k.delivery_time, "20150801T021000Z");
        assert!(k.backfill);
    }

    #[test]
    fn trail_name_that_ends_in_backfill_is_not_a_backfill() {
        let key = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/05/01/111122223333_CloudTrail-Digest_us-east-1_x_backfill_us-east-1_20240501T000000Z.json.gz";
        let k = parsed(key);
        assert_eq!(k.trail_name, Some("x_backfill"));
        assert!(!k.backfill);
    }

    #[test]
    fn organization_digest() {
        let key = "AWSLogs/o-exampleorgid/111111111111/CloudTrail-Digest/eu-west-1/2024/02/29/111111111111_CloudTrail-Digest_eu-west-1_org.trail-1_us-east-1_20240229T235959Z.json.gz";
        let k = parsed(key);
        assert_eq!(k.org_id, Some("o-exampleorgid"));
        assert_eq!(k.trail_name, Some("org.trail-1"));
        assert_eq!(k.home_region, Some("us-east-1"));
        assert_eq!((k.year, k.month, k.day), (2024, 2, 29));
    }

    #[test]
    fn prefix_with_slashes() {
        let key = format!("my/prefix/{LOG_KEY}");
        let k = parsed(&key);
        assert_eq!(k.prefix, "my/prefix");
        assert_eq!(k.account, "111122223333");
        assert_eq!(k.kind, KeyKind::Log);
    }

    #[test]
    fn prefix_containing_awslogs_uses_the_last_valid_segment() {
        let key = format!("AWSLogs/backup/AWSLogs/{}", &LOG_KEY[AWSLOGS.len()..]);
        let k = parsed(&key);
        assert_eq!(k.prefix, "AWSLogs/backup");
        assert_eq!(k.account, "111122223333");

        let key = format!("AWSLogs/{LOG_KEY}");
        assert_eq!(parsed(&key).prefix, "AWSLogs");

        let key = format!("x/AWSLogs/y/{INSIGHT_KEY}");
        let k = parsed(&key);
        assert_eq!(k.prefix, "x/AWSLogs/y");
        assert_eq!(k.org_id, Some("o-fxozgwu6rc"));
    }

    #[test]
    fn awslogs_inside_a_longer_segment_is_not_the_layout_root() {
        let key = format!("myAWSLogs/{}", &LOG_KEY[AWSLOGS.len()..]);
        assert_eq!(rejected(&key), reason::NO_AWSLOGS);
    }

    #[test]
    fn reports_the_closest_attempt_when_several_awslogs_segments_fail() {
        // The inner attempt gets to the month; the outer fails at the account.
        let key = "AWSLogs/x/AWSLogs/111122223333/CloudTrail/us-east-1/2024/13/01/f.json.gz";
        assert_eq!(rejected(key), reason::BAD_MONTH);
        // A file literally named AWSLogs/: the outer attempt gets further.
        let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/AWSLogs/";
        assert_eq!(rejected(key), reason::EXTRA_SEGMENTS);
    }

    #[test]
    fn uncompressed_and_zstd_copies() {
        for ext in [".json", ".json.zst"] {
            let key = LOG_KEY.replace(".json.gz", ext);
            assert_eq!(parsed(&key), parsed(LOG_KEY), "{ext}");
        }
        let key = BACKFILL_KEY.replace(".json.gz", ".json");
        assert!(parsed(&key).backfill);
    }

    #[test]
    fn other_extensions_are_rejected() {
        for ext in [".json.bz2", ".gz", "", ".json.gz.tmp", ".JSON.GZ"] {
            let key = LOG_KEY.replace(".json.gz", ext);
            assert_eq!(rejected(&key), reason::BAD_EXTENSION, "{ext}");
        }
    }

    #[test]
    fn non_cloudtrail_keys() {
        assert_eq!(
            rejected("AWSLogs/111122223333/Config/us-east-1/2024/05/01/ConfigSnapshot/x.json.gz"),
            reason::NOT_CLOUDTRAIL
        );
        assert_eq!(
            rejected("AWSLogs/111122223333/elasticloadbalancing/us-east-1/2024/05/01/x.log.gz"),
            reason::NOT_CLOUDTRAIL
        );
        assert_eq!(rejected("foo.txt"), reason::NO_AWSLOGS);
        assert_eq!(rejected(""), reason::NO_AWSLOGS);
        assert_eq!(rejected("AWSLogs"), reason::NO_AWSLOGS);
        assert_eq!(rejected("AWSLogs/"), reason::BAD_ACCOUNT);
        assert_eq!(
            rejected("AWSLogs/111122223333/CloudTrail/us-east-1/2024/13/01/111122223333_CloudTrail_us-east-1_20241301T0000Z_abc.json.gz"),
            reason::BAD_MONTH
        );
    }

    #[test]
    fn service_directory_is_case_sensitive() {
        let key = LOG_KEY.replace("/CloudTrail/", "/cloudtrail/");
        assert_eq!(rejected(&key), reason::NOT_CLOUDTRAIL);
    }

    #[test]
    fn directory_markers_and_truncated_keys() {
        assert_eq!(rejected("AWSLogs/111122223333/"), reason::MISSING_SERVICE);
        assert_eq!(rejected("AWSLogs/111122223333"), reason::MISSING_SERVICE);
        assert_eq!(
            rejected("AWSLogs/111122223333/CloudTrail/"),
            reason::MISSING_REGION
        );
        assert_eq!(
            rejected("AWSLogs/111122223333/CloudTrail"),
            reason::MISSING_REGION
        );
        assert_eq!(
            rejected("AWSLogs/111122223333/CloudTrail/us-east-1/2024/05"),
            reason::MISSING_DATE
        );
        assert_eq!(
            rejected("AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01"),
            reason::MISSING_FILE
        );
        assert_eq!(
            rejected("AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/"),
            reason::MISSING_FILE
        );
        assert_eq!(rejected("AWSLogs/o-fxozgwu6rc/"), reason::BAD_ACCOUNT);
    }

    #[test]
    fn bad_account_ids() {
        for account in [
            "11112222333",
            "1111222233334",
            "11112222333a",
            "",
            "-11122223333",
        ] {
            let key = LOG_KEY.replace("AWSLogs/111122223333/", &format!("AWSLogs/{account}/"));
            assert_eq!(rejected(&key), reason::BAD_ACCOUNT, "{account:?}");
        }
    }

    #[test]
    fn bad_org_ids() {
        for org in [
            "o-short",
            "o-UPPERCASE1234",
            "o-",
            "o-abc_defghijk",
            format!("o-{}", "a".repeat(33)).as_str(),
        ] {
            let key = INSIGHT_KEY.replace("o-fxozgwu6rc", org);
            assert_eq!(rejected(&key), reason::BAD_ORG_ID, "{org:?}");
        }
        for org in ["o-abcdefghij", format!("o-{}", "a1".repeat(16)).as_str()] {
            let key = INSIGHT_KEY.replace("o-fxozgwu6rc", org);
            assert_eq!(parsed(&key).org_id, Some(org));
        }
    }

    #[test]
    fn org_id_without_account_is_rejected() {
        let key = INSIGHT_KEY.replace("123456789015/", "");
        assert_eq!(rejected(&key), reason::BAD_ACCOUNT);
    }

    #[test]
    fn bad_region_directory() {
        for region in ["US-EAST-1", "useast1", "us-east-", "1-us-east", "us_east_1"] {
            let key = LOG_KEY.replace("/us-east-2/", &format!("/{region}/"));
            assert_eq!(rejected(&key), reason::BAD_REGION, "{region:?}");
        }
    }

    #[test]
    fn unusual_but_real_regions() {
        for region in [
            "us-gov-west-1",
            "cn-northwest-1",
            "eu-isoe-west-1",
            "ap-southeast-5",
        ] {
            let key = LOG_KEY.replace("us-east-2", region);
            assert_eq!(parsed(&key).region, region);
        }
    }

    #[test]
    fn bad_date_directories() {
        let with_date =
            |y: &str, m: &str, d: &str| LOG_KEY.replace("/2015/08/01/", &format!("/{y}/{m}/{d}/"));
        assert_eq!(rejected(&with_date("15", "08", "01")), reason::BAD_YEAR);
        assert_eq!(rejected(&with_date("2O15", "08", "01")), reason::BAD_YEAR);
        assert_eq!(rejected(&with_date("2015", "8", "01")), reason::BAD_MONTH);
        assert_eq!(rejected(&with_date("2015", "00", "01")), reason::BAD_MONTH);
        assert_eq!(rejected(&with_date("2015", "13", "01")), reason::BAD_MONTH);
        assert_eq!(rejected(&with_date("2015", "+8", "01")), reason::BAD_MONTH);
        assert_eq!(rejected(&with_date("2015", "08", "00")), reason::BAD_DAY);
        assert_eq!(rejected(&with_date("2015", "08", "32")), reason::BAD_DAY);
        assert_eq!(rejected(&with_date("2015", "04", "31")), reason::BAD_DAY);
        assert_eq!(rejected(&with_date("2015", "02", "29")), reason::BAD_DAY);
        assert_eq!(rejected(&with_date("1900", "02", "29")), reason::BAD_DAY);
        assert_eq!(parsed(&with_date("2000", "02", "29")).day, 29);
        assert_eq!(parsed(&with_date("2016", "02", "29")).day, 29);
        assert_eq!(parsed(&with_date("2015", "12", "31")).month, 12);
    }

    #[test]
    fn directory_date_need_not_match_file_stamp() {
        let key = LOG_KEY.replace("/2015/08/01/", "/2015/07/31/");
        let k = parsed(&key);
        assert_eq!((k.year, k.month, k.day), (2015, 7, 31));
        assert_eq!(k.delivery_time, "20150801T0210Z");
    }

    #[test]
    fn file_name_must_agree_with_directories() {
        let key = LOG_KEY.replace("/111122223333_", "/444455556666_");
        assert_eq!(rejected(&key), reason::FILE_ACCOUNT_MISMATCH);
        let key = LOG_KEY.replace("_CloudTrail_", "_CloudTrail-Digest_");
        assert_eq!(rejected(&key), reason::FILE_SERVICE_MISMATCH);
        let key = LOG_KEY.replace("_us-east-2_", "_us-west-2_");
        assert_eq!(rejected(&key), reason::FILE_REGION_MISMATCH);
        // A log file name placed in the digest directory.
        let key = LOG_KEY.replace("/CloudTrail/", "/CloudTrail-Digest/");
        assert_eq!(rejected(&key), reason::FILE_SERVICE_MISMATCH);
    }

    #[test]
    fn bad_log_timestamps_and_unique_ids() {
        let with_stamp = |s: &str| LOG_KEY.replace("20150801T0210Z", s);
        for stamp in [
            "20150801T021000Z", // digest precision in a log name
            "20150801T0210",
            "20150801 0210Z",
            "20150801T2410Z",
            "20150801T0260Z",
            "20151301T0210Z",
            "20150230T0210Z",
            "2015080xT0210Z",
            "",
        ] {
            assert_eq!(
                rejected(&with_stamp(stamp)),
                reason::BAD_TIMESTAMP,
                "{stamp:?}"
            );
        }
        assert_eq!(
            parsed(&with_stamp("20151231T2359Z")).delivery_time,
            "20151231T2359Z"
        );

        let key = LOG_KEY.replace("_Mu0KsOhtH1ar15ZZ", "");
        assert_eq!(rejected(&key), reason::BAD_TIMESTAMP);
        let key = LOG_KEY.replace("Mu0KsOhtH1ar15ZZ", "");
        assert_eq!(rejected(&key), reason::BAD_UNIQUE_ID);
        let key = LOG_KEY.replace("Mu0KsOhtH1ar15ZZ", "Mu0Ks-OhtH1ar15Z");
        assert_eq!(rejected(&key), reason::BAD_UNIQUE_ID);
    }

    #[test]
    fn bad_digest_file_names() {
        let key = DIGEST_KEY.replace("20150801T021000Z", "20150801T0210Z");
        assert_eq!(rejected(&key), reason::BAD_TIMESTAMP);
        let key = DIGEST_KEY.replace("20150801T021000Z", "20150801T021060Z");
        assert_eq!(rejected(&key), reason::BAD_TIMESTAMP);
        let key = DIGEST_KEY.replace("_my_org_trail_us-east-1_", "_us-east-1_");
        assert_eq!(rejected(&key), reason::BAD_HOME_REGION);
        let key = DIGEST_KEY.replace("_us-east-1_2015", "_2015");
        assert_eq!(rejected(&key), reason::BAD_HOME_REGION);
        let key = DIGEST_KEY.replace("my_org_trail", "");
        assert_eq!(rejected(&key), reason::BAD_TRAIL_NAME);
        let key = DIGEST_KEY.replace("my_org_trail", "bad trail");
        assert_eq!(rejected(&key), reason::BAD_TRAIL_NAME);
        let key = BACKFILL_KEY.replace("_backfill", "_backfil");
        assert_eq!(rejected(&key), reason::BAD_TIMESTAMP);
    }

    #[test]
    fn digest_time_helper() {
        assert_eq!(digest_time_from_key(DIGEST_KEY), Some("20150801T021000Z"));
        assert_eq!(digest_time_from_key(BACKFILL_KEY), Some("20150801T021000Z"));
        let uncompressed = BACKFILL_KEY.replace(".json.gz", ".json");
        assert_eq!(
            digest_time_from_key(&uncompressed),
            Some("20150801T021000Z")
        );
        // aws-cli's fixed offsets agree on the standard names.
        assert_eq!(
            digest_time_from_key(DIGEST_KEY),
            DIGEST_KEY.get(DIGEST_KEY.len() - 24..DIGEST_KEY.len() - 8)
        );
        assert_eq!(
            digest_time_from_key(BACKFILL_KEY),
            BACKFILL_KEY.get(BACKFILL_KEY.len() - 33..BACKFILL_KEY.len() - 17)
        );
        assert_eq!(digest_time_from_key(LOG_KEY), None);
        assert_eq!(digest_time_from_key("foo.txt"), None);
    }

    #[test]
    fn kind_labels() {
        assert_eq!(KeyKind::Log.as_str(), "log");
        assert_eq!(KeyKind::Digest.as_str(), "digest");
        assert_eq!(KeyKind::Insight.as_str(), "insight");
        for kind in KeyKind::ALL {
            assert_eq!(KeyKind::from_service_dir(kind.service_dir()), Some(kind));
        }
        assert_eq!(KeyKind::from_service_dir("Config"), None);
    }

    #[test]
    fn day_prefix_layouts() {
        assert_eq!(
            day_prefix(
                "",
                Some("o-abc"),
                "111122223333",
                KeyKind::Log,
                "us-east-1",
                2024,
                5,
                1
            ),
            "AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/2024/05/01/"
        );
        assert_eq!(
            day_prefix(
                "my/prefix",
                None,
                "111122223333",
                KeyKind::Digest,
                "eu-west-1",
                2015,
                12,
                31
            ),
            "my/prefix/AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2015/12/31/"
        );
        assert_eq!(
            day_prefix(
                "p",
                None,
                "111122223333",
                KeyKind::Insight,
                "ca-central-1",
                999,
                1,
                9
            ),
            "p/AWSLogs/111122223333/CloudTrail-Insight/ca-central-1/0999/01/09/"
        );
    }

    #[test]
    fn day_prefix_of_parsed_keys_is_their_directory() {
        let prefixed = format!("my/prefix/{DIGEST_KEY}");
        for key in [
            LOG_KEY,
            INSIGHT_KEY,
            DIGEST_KEY,
            BACKFILL_KEY,
            prefixed.as_str(),
        ] {
            let dir = parsed(key).day_prefix();
            assert!(key.starts_with(&dir), "{key} vs {dir}");
            assert!(!key[dir.len()..].contains('/'), "{key} vs {dir}");
        }
    }

    #[test]
    fn cloudtrail_accessor() {
        assert_eq!(
            classify_key(LOG_KEY).cloudtrail().map(|k| k.kind),
            Some(KeyKind::Log)
        );
        assert_eq!(classify_key("foo.txt").cloudtrail(), None);
    }

    #[test]
    fn non_ascii_keys_do_not_confuse_slicing() {
        assert_eq!(rejected("é/AWSLogs/ü"), reason::BAD_ACCOUNT);
        let key = format!("日本/{LOG_KEY}");
        assert_eq!(parsed(&key).prefix, "日本");
        let key = LOG_KEY.replace("Mu0KsOhtH1ar15ZZ", "Mu0KsOhtH1ar15Zé");
        assert_eq!(rejected(&key), reason::BAD_UNIQUE_ID);
    }

    fn kind_strategy() -> impl Strategy<Value = KeyKind> {
        prop_oneof![
            Just(KeyKind::Log),
            Just(KeyKind::Digest),
            Just(KeyKind::Insight)
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_keys(key in ".{0,200}") {
            let _ = classify_key(&key);
        }

        #[test]
        fn never_panics_on_layout_like_keys(
            key in "(([a-zA-Z0-9_./-]|AWSLogs/|o-[a-z0-9]{10}/|[0-9]{12}|CloudTrail(-Digest|-Insight)?|us-east-1|_|/20[0-9]{2}/[0-9]{2}/[0-9]{2}/|T[0-9]{4,6}Z|\\.json(\\.gz)?){0,30})"
        ) {
            let _ = classify_key(&key);
        }

        #[test]
        fn generated_keys_round_trip(
            prefix in "([a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,3})?",
            org in proptest::option::of("o-[a-z0-9]{10,32}"),
            account in "[0-9]{12}",
            kind in kind_strategy(),
            region in "[a-z]{2}-[a-z]{3,9}-[1-9]",
            home in "[a-z]{2}-[a-z]{3,9}-[1-9]",
            trail in "[A-Za-z0-9][A-Za-z0-9._-]{0,40}",
            (year, month, day) in (1970u16..=2099, 1u8..=12, 1u8..=28),
            (hour, minute, second) in (0u8..24, 0u8..60, 0u8..60),
            unique in "[A-Za-z0-9]{16}",
            backfill in any::<bool>(),
            ext in prop_oneof![Just(".json.gz"), Just(".json"), Just(".json.zst")],
        ) {
            let dir = day_prefix(&prefix, org.as_deref(), &account, kind, &region, year, month, day);
            let date = format!("{year:04}{month:02}{day:02}");
            let (stamp, tail) = match kind {
                KeyKind::Digest => {
                    let stamp = format!("{date}T{hour:02}{minute:02}{second:02}Z");
                    let suffix = if backfill { "_backfill" } else { "" };
                    let tail = format!("{trail}_{home}_{stamp}{suffix}");
                    (stamp, tail)
                }
                KeyKind::Log | KeyKind::Insight => {
                    let stamp = format!("{date}T{hour:02}{minute:02}Z");
                    let tail = format!("{stamp}_{unique}");
                    (stamp, tail)
                }
            };
            let key = format!("{dir}{account}_{}_{region}_{tail}{ext}", kind.service_dir());
            let k = match classify_key(&key) {
                KeyClass::CloudTrail(k) => k,
                KeyClass::Other { reason } => {
                    return Err(TestCaseError::fail(format!("{key}: {reason}")));
                }
            };
            prop_assert_eq!(k.kind, kind);
            prop_assert_eq!(k.prefix, prefix.as_str());
            prop_assert_eq!(k.org_id, org.as_deref());
            prop_assert_eq!(k.account, account.as_str());
            prop_assert_eq!(k.region, region.as_str());
            prop_assert_eq!((k.year, k.month, k.day), (year, month, day));
            prop_assert_eq!(k.delivery_time, stamp.as_str());
            let is_digest = kind == KeyKind::Digest;
            prop_assert_eq!(k.trail_name, is_digest.then_some(trail.as_str()));
            prop_assert_eq!(k.home_region, is_digest.then_some(home.as_str()));
            prop_assert_eq!(k.backfill, is_digest && backfill);
            prop_assert_eq!(k.day_prefix(), dir);
        }
    }
}
