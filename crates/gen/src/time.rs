//! UTC calendar arithmetic without a date crate; the generator needs only
//! formatting of epoch milliseconds, and pulling in chrono for that would add
//! a dependency the workspace does not otherwise have.

use crate::json::push_padded;

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub(crate) const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Utc {
    pub(crate) fn from_ms(ms: i64) -> Utc {
        let secs = ms.div_euclid(1000);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400) as u32;
        Utc {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
        }
    }

    /// `2026-11-01T00:00:07Z`, the CloudTrail `eventTime` format.
    pub(crate) fn push_iso(&self, buf: &mut Vec<u8>) {
        self.push_ymd(buf, b"-");
        buf.push(b'T');
        push_padded(buf, u64::from(self.hour), 2);
        buf.push(b':');
        push_padded(buf, u64::from(self.minute), 2);
        buf.push(b':');
        push_padded(buf, u64::from(self.second), 2);
        buf.push(b'Z');
    }

    /// `20261101T0005Z`, the stamp in CloudTrail object names.
    pub(crate) fn push_compact_minute(&self, buf: &mut Vec<u8>) {
        self.push_ymd(buf, b"");
        buf.push(b'T');
        push_padded(buf, u64::from(self.hour), 2);
        push_padded(buf, u64::from(self.minute), 2);
        buf.push(b'Z');
    }

    /// Date with a separator, e.g. `2026/11/01` for key prefixes.
    pub(crate) fn push_ymd(&self, buf: &mut Vec<u8>, sep: &[u8]) {
        push_padded(buf, self.year as u64, 4);
        buf.extend_from_slice(sep);
        push_padded(buf, u64::from(self.month), 2);
        buf.extend_from_slice(sep);
        push_padded(buf, u64::from(self.day), 2);
    }
}

/// Largest instant whose year still fits the four-digit formats above.
pub(crate) const MAX_MS: i64 = days_from_civil(10_000, 1, 1) * 86_400_000 - 1;

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(ms: i64) -> String {
        let mut b = Vec::new();
        Utc::from_ms(ms).push_iso(&mut b);
        String::from_utf8(b).unwrap_or_default()
    }

    #[test]
    fn known_instants() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso(1_793_491_207_999), "2026-11-01T00:00:07Z");
        assert_eq!(iso(MAX_MS), "9999-12-31T23:59:59Z");
        assert_eq!(days_from_civil(2026, 11, 1) * 86_400, 1_793_491_200);
    }

    #[test]
    fn round_trips_every_day_for_decades() {
        for day in -1000..40_000 {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn compact_stamp() {
        let mut b = Vec::new();
        Utc::from_ms(1_793_491_200_000 + 5 * 60_000 + 59_000).push_compact_minute(&mut b);
        assert_eq!(b, b"20261101T0005Z");
    }
}
