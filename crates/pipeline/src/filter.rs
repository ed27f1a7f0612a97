//! Per-sink record selection on key fields. A record goes to a sink when it passes that sink's
//! filter; one that no sink takes is counted as unrouted, never lost silently.

use serde::Deserialize;
use trailhose_core::KeyFields;

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
    /// Drop instead of keep what matches the lists above.
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
            && !self.exclude
    }

    pub fn matches(&self, k: &KeyFields) -> bool {
        let hit = any_of(&self.event_category, k.event_category())
            && any_of(&self.event_source, k.event_source())
            && any_of(&self.event_name, k.event_name())
            && any_of(&self.account, k.account())
            && any_of(&self.region, k.aws_region())
            && self.read_only.is_none_or(|r| k.read_only == Some(r));
        hit != self.exclude
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
}
