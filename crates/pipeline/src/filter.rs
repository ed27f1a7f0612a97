//! Per-sink record selection. [`RecordFilter`] is what a config says (key-field lists, a
//! filter `pattern`); [`CompiledFilter`] is what the router evaluates, and it cannot exist with
//! a pattern left uncompiled. A record goes to a sink when it passes that sink's filter; one
//! that no sink takes is counted as unrouted, never lost silently.

use serde::Deserialize;
use std::sync::Arc;
use trailhose_core::KeyFields;

/// A condition on the whole record (bytes and key fields), compiled outside the pipeline from
/// [`RecordFilter::pattern`] (the detection crate's filter patterns).
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
    /// match too. The pipeline cannot parse it itself: [`CompiledFilter::compile`] takes the
    /// compiler (the detection crate's), and refuses a pattern without one.
    #[serde(default)]
    pub pattern: Option<String>,
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

    fn lists_match(&self, k: &KeyFields) -> bool {
        any_of(&self.event_category, k.event_category())
            && any_of(&self.event_source, k.event_source())
            && any_of(&self.event_name, k.event_name())
            && any_of(&self.account, k.account())
            && any_of(&self.region, k.aws_region())
            && self.read_only.is_none_or(|r| k.read_only == Some(r))
    }
}

/// Compiles filter patterns (the detection crate provides one).
pub type PatternCompiler<'a> = &'a dyn Fn(&str) -> Result<RecordPredicate, String>;

/// A sink's filter as the router runs it: the config's lists plus its pattern, compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompiledFilter {
    spec: RecordFilter,
    predicate: Option<RecordPredicate>,
}

impl CompiledFilter {
    /// Takes every record.
    pub fn pass_all() -> CompiledFilter {
        CompiledFilter::default()
    }

    /// Compiles `spec`; its pattern, if any, with `patterns`. A pattern with no compiler is an
    /// error, never a filter that silently matches nothing.
    pub fn compile(
        spec: RecordFilter,
        patterns: Option<PatternCompiler<'_>>,
    ) -> Result<CompiledFilter, String> {
        let predicate = match (&spec.pattern, patterns) {
            (None, _) => None,
            (Some(text), Some(compile)) => Some(compile(text)?),
            (Some(text), None) => {
                return Err(format!(
                    "filter pattern {text:?}: no pattern compiler here (filter patterns need the detection engine)"
                ))
            }
        };
        Ok(CompiledFilter { spec, predicate })
    }

    pub fn spec(&self) -> &RecordFilter {
        &self.spec
    }

    /// The drop rule's name, when the filter has one.
    pub fn name(&self) -> Option<&str> {
        self.spec.name.as_deref()
    }

    pub fn is_pass_all(&self) -> bool {
        self.spec.is_pass_all()
    }

    /// On key fields and, when the filter has a pattern, the record's bytes.
    pub fn matches_record(&self, record: &[u8], k: &KeyFields) -> bool {
        let mut hit = self.spec.lists_match(k);
        if hit {
            if let Some(p) = &self.predicate {
                hit = (p.0)(record, k);
            }
        }
        hit != self.spec.exclude
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
    fn patterns_need_their_compiler() {
        let rec = br#"{"eventName":"DeleteBucket","eventCategory":"Management"}"#;
        let k = FieldParser::new().parse(rec, 0, 0).expect("valid");
        let spec = RecordFilter {
            pattern: Some("{ $.eventName = Delete* }".into()),
            ..Default::default()
        };
        assert!(!spec.is_pass_all());
        let err = CompiledFilter::compile(spec.clone(), None).expect_err("no compiler");
        assert!(err.contains("Delete*"), "{err}");
        let compiler = |_: &str| -> Result<RecordPredicate, String> {
            Ok(RecordPredicate(Arc::new(|r: &[u8], _: &KeyFields| {
                r.windows(6).any(|w| w == b"Delete")
            })))
        };
        let compile =
            |spec: RecordFilter| CompiledFilter::compile(spec, Some(&compiler)).expect("compiles");
        assert!(compile(spec.clone()).matches_record(rec, &k));
        let dropped = RecordFilter {
            exclude: true,
            ..spec.clone()
        };
        assert!(!compile(dropped).matches_record(rec, &k));
        let other_category = RecordFilter {
            event_category: vec!["Data".into()],
            ..spec
        };
        assert!(!compile(other_category).matches_record(rec, &k));
        let refused = |_: &str| -> Result<RecordPredicate, String> { Err("bad".into()) };
        assert!(CompiledFilter::compile(
            RecordFilter {
                pattern: Some("{".into()),
                ..Default::default()
            },
            Some(&refused)
        )
        .is_err());
        assert!(CompiledFilter::pass_all().matches_record(rec, &k));
    }
}
