//! Routing conditions beyond the key-field lists: a sink filter's `pattern`, in CloudWatch
//! Logs filter-pattern syntax (`{ $.eventName = "Delete*" && $.readOnly IS FALSE }`), is
//! compiled with the detection crate's engine and attached to the filter, so the router can
//! evaluate it on each record.

use std::sync::{Arc, Mutex};
use trailhose_detect::engine::{Engine, Scratch};
use trailhose_detect::pattern::FilterPattern;
use trailhose_pipeline::filter::{RecordFilter, RecordPredicate};
use trailhose_pipeline::SinkSpec;

/// Compiles one pattern into a predicate.
pub fn predicate(text: &str) -> Result<RecordPredicate, String> {
    let pattern =
        FilterPattern::parse(text).map_err(|e| format!("filter pattern {text:?}: {e}"))?;
    let engine = Engine::new(&[&pattern]);
    // The router evaluates filters on one task, so the scratch space is never contended.
    let scratch = Mutex::new(Scratch::new());
    Ok(RecordPredicate(Arc::new(move |record, fields| {
        let mut s = match scratch.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        engine.matches(&mut s, record, Some(fields))
    })))
}

/// Compiles the filter's pattern, if it has one.
pub fn attach_pattern(filter: &mut RecordFilter) -> Result<(), String> {
    if let Some(text) = &filter.pattern {
        filter.predicate = Some(predicate(text)?);
    }
    Ok(())
}

/// Compiles every sink filter's pattern; call once the sinks are built.
pub fn attach_patterns(specs: &mut [SinkSpec]) -> Result<(), String> {
    for s in specs {
        attach_pattern(&mut s.filter).map_err(|e| format!("sink {}: {e}", s.sink.name()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhose_core::FieldParser;

    #[test]
    fn compiled_patterns_route() {
        let rec = br#"{"eventName":"DeleteBucket","eventSource":"s3.amazonaws.com","readOnly":false,"eventCategory":"Management"}"#;
        let k = FieldParser::new().parse(rec, 0, 0).expect("valid");
        let mut f = RecordFilter {
            pattern: Some(r#"{ $.eventName = "Delete*" && $.readOnly IS FALSE }"#.into()),
            ..Default::default()
        };
        assert!(!f.matches_record(rec, &k), "not compiled yet");
        attach_pattern(&mut f).expect("valid pattern");
        assert!(f.matches_record(rec, &k));
        let other = br#"{"eventName":"GetObject","readOnly":true}"#;
        let k2 = FieldParser::new().parse(other, 0, 0).expect("valid");
        assert!(!f.matches_record(other, &k2));
        let mut bad = RecordFilter {
            pattern: Some("{ $.eventName = ".into()),
            ..Default::default()
        };
        assert!(attach_pattern(&mut bad).is_err());
    }
}
