//! Per-sink record selection on key fields. A record goes to a sink when it passes that sink's
//! filter; one that no sink takes is counted as unrouted, never lost silently.

use serde::Deserialize;
use std::sync::Arc;
use trailhose_core::KeyFields;

/// A condition on the whole record (bytes and key fields), compiled outside the pipeline from
/// [`RecordFilter::pattern`] (the detection crate's filter patterns) when sinks are built.
#[derive(Clone)]
pub struct RecordPredicate(pub Arc<PredicateFn>);

/// `(record bytes, key fields) → matches`.
pub type PredicateFn = dyn Fn(&[u8], &KeyFields) -> bool + Send + Sync;

impl std::fmt::Debug for RecordPredicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordPredicate(..)")
    }
}

impl PartialEq for RecordPredicate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RecordPredicate {}

/// Lists are alternatives (any may match); an empty or absent list matches everything.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RecordFilter {
    /// Names this filter as a drop rule: records it keeps from its sink are counted under this
    /// name in [`crate::router::PipelineStats::dropped_by_rule`].
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub event_category: Vec<String>,
    #[serde(default)]
    pub event_source: Vec<String>,
    #[serde(default)]
    pub event_name: Vec<String>,
    #[serde(default)]
    pub account: Vec<String>,
    #[serde(default)]
    pub region: Vec<String>,
    pub read_only: Option<bool>,
    /// A CloudWatch Logs filter pattern (e.g. `{ $.eventName = "Delete*" }`) the record must
    /// match too. The pipeline cannot evaluate it itself: whoever builds the sinks compiles it
    /// into `predicate`; a pattern left uncompiled matches nothing.
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(skip)]
    pub predicate: Option<RecordPredicate>,
    /// Drop instead of keep what matches the lists (and pattern) above.
    #[serde(default)]
    pub exclude: bool,
}

fn any_of(list: &[String], v: Option<&str>) -> bool {
    list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
}

impl RecordFilter {
    /// Takes every record (the name of a rule that drops nothing does not matter).
    pub fn is_pass_all(&self) -> bool {
        self.event_category.is_empty()
            && self.event_source.is_empty()
            && self.event_name.is_empty()
            && self.account.is_empty()
            && self.region.is_empty()
            && self.read_only.is_none()
            && self.pattern.is_none()
            && !self.exclude
    }

    /// On key fields alone (a `pattern` is not evaluated: use [`Self::matches_record`]).
    pub fn matches(&self, k: &KeyFields) -> bool {
        self.lists_match(k) != self.exclude
    }

    /// On key fields and, when the filter has a pattern, the record's bytes.
    pub fn matches_record(&self, record: &[u8], k: &KeyFields) -> bool {
        let mut hit = self.lists_match(k);
        if hit && self.pattern.is_some() {
            hit = self.predicate.as_ref().is_some_and(|p| (p.0)(record, k));
        }
        hit != self.exclude
    }

    fn lists_match(&self, k: &KeyFields) -> bool {
        any_of(&self.event_category, k.event_category())
            && any_of(&self.event_source, k.event_source())
            && any_of(&self.event_name, k.event_name())
            && any_of(&self.account, k.account())
            && any_of(&self.region, k.aws_region())
            && self.read_only.is_none_or(|r| k.read_only == Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhose_core::FieldParser;

    #[test]
    fn lists_and_exclude() {
        let k = FieldParser::new()
            .parse(
                br#"{"eventCategory":"Data","eventSource":"s3.amazonaws.com","readOnly":true,"awsRegion":"eu-west-1"}"#,
                0,
                0,
            )
            .expect("valid");
        assert!(RecordFilter::default().matches(&k));
        let f = RecordFilter {
            event_category: vec!["Data".into()],
            read_only: Some(true),
            ..Default::default()
        };
        assert!(f.matches(&k));
        let drop_reads = RecordFilter { exclude: true, ..f };
        assert!(!drop_reads.matches(&k));
        let other_region = RecordFilter {
            region: vec!["us-east-1".into()],
            ..Default::default()
        };
        assert!(!other_region.matches(&k));
        let named = RecordFilter {
            name: Some("keep-all".into()),
            ..Default::default()
        };
        assert!(named.is_pass_all() && named.matches(&k));
    }

    #[test]
    fn patterns_need_their_compiled_predicate() {
        let rec = br#"{"eventName":"DeleteBucket","eventCategory":"Management"}"#;
        let k = FieldParser::new().parse(rec, 0, 0).expect("valid");
        let uncompiled = RecordFilter {
            pattern: Some("{ $.eventName = Delete* }".into()),
            ..Default::default()
        };
        assert!(!uncompiled.is_pass_all());
        assert!(
            !uncompiled.matches_record(rec, &k),
            "uncompiled matches nothing"
        );
        let compiled = RecordFilter {
            predicate: Some(RecordPredicate(Arc::new(|r: &[u8], _: &KeyFields| {
                r.windows(6).any(|w| w == b"Delete")
            }))),
            ..uncompiled.clone()
        };
        assert!(compiled.matches_record(rec, &k));
        let dropped = RecordFilter {
            exclude: true,
            ..compiled.clone()
        };
        assert!(!dropped.matches_record(rec, &k));
        let other_category = RecordFilter {
            event_category: vec!["Data".into()],
            ..compiled
        };
        assert!(!other_category.matches_record(rec, &k));
    }
}
