//! Which partition a record belongs to, and the directory that names it:
//! `account=<id>/region=<region>/dt=<yyyy-mm-dd>` (Hive style, so query engines prune on it).
//!
//! Account and region come from the object's S3 key when it follows CloudTrail's layout (as
//! Athena's partitions do), else from the record; the date is the record's eventTime (UTC), so
//! `dt` agrees with `eventtime` in every row.

use trailhose_core::timefmt::civil_from_days;
use trailhose_core::KeyFields;
use trailhose_pipeline::chunk::ObjectMeta;

/// The value Hive-style engines read as NULL.
pub const NULL_VALUE: &str = "__HIVE_DEFAULT_PARTITION__";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub account: String,
    pub region: String,
    pub dt: String,
}

impl Partition {
    pub fn of(object: &ObjectMeta, fields: &KeyFields) -> Partition {
        let account = object
            .account
            .as_deref()
            .or_else(|| fields.account())
            .map_or_else(|| NULL_VALUE.to_owned(), safe);
        let region = object
            .region
            .as_deref()
            .or_else(|| fields.aws_region())
            .map_or_else(|| NULL_VALUE.to_owned(), safe);
        let dt = fields
            .event_time_ms
            .map_or_else(|| NULL_VALUE.to_owned(), date_of);
        Partition {
            account,
            region,
            dt,
        }
    }

    /// The relative directory, `/`-separated.
    pub fn dir(&self) -> String {
        format!(
            "account={}/region={}/dt={}",
            self.account, self.region, self.dt
        )
    }
}

/// `yyyy-mm-dd` (UTC) of epoch milliseconds.
pub fn date_of(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A value usable as one path segment: anything but `[A-Za-z0-9._-]` becomes `_`, and a value
/// that would be `.`/`..` or empty is replaced, so a crafted record can never escape the archive.
fn safe(v: &str) -> String {
    let s: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        NULL_VALUE.to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(rec: &[u8]) -> KeyFields {
        trailhose_core::fields::FieldParser::new()
            .parse(rec, 0, 0)
            .expect("fields")
    }

    #[test]
    fn key_layout_wins_then_record() {
        let f = fields(br#"{"eventTime":"2024-02-29T23:59:59Z","awsRegion":"eu-west-1","recipientAccountId":"222233334444"}"#);
        let from_key = ObjectMeta {
            account: Some("111122223333".into()),
            region: Some("us-east-1".into()),
            ..Default::default()
        };
        assert_eq!(
            Partition::of(&from_key, &f).dir(),
            "account=111122223333/region=us-east-1/dt=2024-02-29"
        );
        assert_eq!(
            Partition::of(&ObjectMeta::default(), &f).dir(),
            "account=222233334444/region=eu-west-1/dt=2024-02-29"
        );
    }

    #[test]
    fn missing_and_hostile_values() {
        let f = fields(br#"{"awsRegion":"../../etc","recipientAccountId":".."}"#);
        let p = Partition::of(&ObjectMeta::default(), &f);
        assert_eq!(p.region, ".._.._etc");
        assert_eq!(p.account, NULL_VALUE);
        assert_eq!(p.dt, NULL_VALUE);
        assert!(!p.dir().split('/').any(|seg| seg == ".." || seg.is_empty()));
    }

    #[test]
    fn dates_before_and_after_epoch() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(-1), "1969-12-31");
        assert_eq!(date_of(1_705_312_800_000), "2024-01-15");
    }
}
