//! What to list: the CloudTrail key layout is `[prefix/]AWSLogs/[o-id/]ACCOUNT/CloudTrail/REGION/
//! YYYY/MM/DD/`, so a date range is covered by listing one prefix per (account, region, day)
//! rather than walking the bucket. Pure functions; the lister feeds them what it discovers.

use trailhose_core::timefmt::{civil_from_days, days_from_civil};

/// A parsed `s3://bucket/prefix` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    /// Up to and including `AWSLogs/` (and the org id when given), ending in `/`.
    pub logs_prefix: String,
}

/// Accepts `s3://bucket`, `s3://bucket/prefix/`, `s3://bucket/prefix/AWSLogs/` and
/// `s3://bucket/AWSLogs/o-xxxx/`.
pub fn parse_target(uri: &str) -> Result<Target, String> {
    let rest = uri
        .strip_prefix("s3://")
        .ok_or_else(|| format!("`{uri}`: expected s3://bucket[/prefix]"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("`{uri}`: no bucket"));
    }
    let mut prefix = prefix.trim_end_matches('/').to_string();
    let has_awslogs = prefix == "AWSLogs"
        || prefix.ends_with("/AWSLogs")
        || prefix.contains("/AWSLogs/")
        || prefix.starts_with("AWSLogs/");
    if !has_awslogs {
        prefix = if prefix.is_empty() {
            "AWSLogs".into()
        } else {
            format!("{prefix}/AWSLogs")
        };
    }
    Ok(Target {
        bucket: bucket.to_string(),
        logs_prefix: format!("{prefix}/"),
    })
}

/// Days from `start` to `end` inclusive, as (y, m, d). Dates are `YYYY-MM-DD`.
pub fn days(start: &str, end: &str) -> Result<Vec<(u16, u8, u8)>, String> {
    let s = parse_day(start)?;
    let e = parse_day(end)?;
    if e < s {
        return Err(format!("--end {end} is before --start {start}"));
    }
    if e - s > 3660 {
        return Err("date range longer than 10 years".into());
    }
    Ok((s..=e)
        .map(|d| {
            let (y, m, dd) = civil_from_days(d);
            (y as u16, m as u8, dd as u8)
        })
        .collect())
}

fn parse_day(s: &str) -> Result<i64, String> {
    let parts: Vec<&str> = s.split('-').collect();
    let bad = || format!("`{s}`: expected a date YYYY-MM-DD");
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(bad());
    }
    let y: i64 = parts[0].parse().map_err(|_| bad())?;
    let m: u32 = parts[1].parse().map_err(|_| bad())?;
    let d: u32 = parts[2].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || d == 0 || d > 31 {
        return Err(bad());
    }
    let days = days_from_civil(y, m, d);
    // Reject 2026-02-30 and the like: the date must survive a round trip.
    if civil_from_days(days) != (y, m, d) {
        return Err(bad());
    }
    Ok(days)
}

/// One prefix to list: every log file of an account and region on one day.
pub fn day_prefix(account_prefix: &str, region: &str, (y, m, d): (u16, u8, u8)) -> String {
    format!("{account_prefix}CloudTrail/{region}/{y:04}/{m:02}/{d:02}/")
}

/// Whether a common prefix under `AWSLogs/` is an organization id (`o-...`) rather than an
/// account.
pub fn is_org(segment: &str) -> bool {
    segment.starts_with("o-") && segment.len() > 2
}

pub fn is_account(segment: &str) -> bool {
    segment.len() == 12 && segment.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("s3://b").expect("ok"),
            Target {
                bucket: "b".into(),
                logs_prefix: "AWSLogs/".into()
            }
        );
        assert_eq!(
            parse_target("s3://b/p/q/").expect("ok").logs_prefix,
            "p/q/AWSLogs/"
        );
        assert_eq!(
            parse_target("s3://b/AWSLogs/o-abc/")
                .expect("ok")
                .logs_prefix,
            "AWSLogs/o-abc/"
        );
        assert_eq!(
            parse_target("s3://b/p/AWSLogs").expect("ok").logs_prefix,
            "p/AWSLogs/"
        );
        assert!(parse_target("b/p").is_err());
        assert!(parse_target("s3:///p").is_err());
    }

    #[test]
    fn day_ranges() {
        let d = days("2024-02-27", "2024-03-01").expect("ok");
        assert_eq!(
            d,
            vec![(2024, 2, 27), (2024, 2, 28), (2024, 2, 29), (2024, 3, 1)]
        );
        assert!(days("2023-02-29", "2023-03-01").is_err());
        assert!(days("2024-03-02", "2024-03-01").is_err());
        assert!(days("2024-3-1", "2024-03-01").is_err());
        assert_eq!(
            day_prefix("AWSLogs/o-x/111122223333/", "eu-west-1", (2024, 3, 1)),
            "AWSLogs/o-x/111122223333/CloudTrail/eu-west-1/2024/03/01/"
        );
        assert!(
            is_org("o-abc123")
                && !is_org("o-")
                && is_account("111122223333")
                && !is_account("11112222333a")
        );
    }
}
