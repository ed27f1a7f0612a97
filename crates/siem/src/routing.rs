//! Routing conditions beyond the key-field lists: a sink filter's `pattern`, in CloudWatch
//! Logs filter-pattern syntax (`{ $.eventName = "Delete*" && $.readOnly IS FALSE }`), is
//! compiled with the detection crate's engine into the [`CompiledFilter`] the router
//! evaluates on each record.

use std::sync::{Arc, Mutex};
use trailhose_core::sync::lock;
use trailhose_detect::engine::{Engine, Scratch};
use trailhose_detect::pattern::FilterPattern;
use trailhose_pipeline::filter::{CompiledFilter, RecordFilter, RecordPredicate};

/// Compiles one pattern into a predicate.
pub fn predicate(text: &str) -> Result<RecordPredicate, String> {
    let pattern =
        FilterPattern::parse(text).map_err(|e| format!("filter pattern {text:?}: {e}"))?;
    let engine = Engine::new(&[&pattern]);
    // The router evaluates filters on one task, so the scratch space is never contended.
    let scratch = Mutex::new(Scratch::new());
    Ok(RecordPredicate(Arc::new(move |record, fields| {
        let mut s = lock(&scratch);
        engine.matches(&mut s, record, Some(fields))
    })))
}

/// Compiles a sink filter, its pattern with the detection engine: the only way the router
/// gets a filter, so a pattern can never be left uncompiled.
pub fn compile(spec: RecordFilter) -> Result<CompiledFilter, String> {
    CompiledFilter::compile(spec, Some(&predicate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhose_core::FieldParser;

    #[test]
    fn compiled_patterns_route() {
        let rec = br#"{"eventName":"DeleteBucket","eventSource":"s3.amazonaws.com","readOnly":false,"eventCategory":"Management"}"#;
        let k = FieldParser::new().parse(rec, 0, 0).expect("valid");
        let f = compile(RecordFilter {
            pattern: Some(r#"{ $.eventName = "Delete*" && $.readOnly IS FALSE }"#.into()),
            ..Default::default()
        })
        .expect("valid pattern");
        assert!(f.matches_record(rec, &k));
        let other = br#"{"eventName":"GetObject","readOnly":true}"#;
        let k2 = FieldParser::new().parse(other, 0, 0).expect("valid");
        assert!(!f.matches_record(other, &k2));
        let bad = RecordFilter {
            pattern: Some("{ $.eventName = ".into()),
            ..Default::default()
        };
        assert!(compile(bad).is_err());
    }
}
