//! Insights-style anomaly detection over a generated week of one account and region
//! (~100k records, 10 a minute): the injected API burst and error-rate spike raise exactly
//! their Start/End pairs, at the injected times; a steady week raises nothing; and a restart
//! from the state file in the middle of the week changes nothing.

use std::path::Path;
use trailhose_core::timefmt::format_rfc3339_s;
use trailhose_core::{read_records, FieldMode, Limits};
use trailhose_detect::anomaly::{
    scan_user_agent, AnomalyDetector, AnomalyOptions, InsightEvent, InsightState, InsightType,
    Observation,
};
use trailhose_gen::{generate, Compression, GenOptions, GenSummary, Inject};
use trailhose_pipeline::dir_source::list_files;

const WEEK_FILES: u64 = 7 * 24 * 12;
const PER_FILE: u32 = 50;

fn week(dir: &Path, anomalies: bool) -> GenSummary {
    generate(
        dir,
        &GenOptions {
            events: WEEK_FILES * u64::from(PER_FILE),
            accounts: 1,
            regions: 1,
            seed: 2026,
            events_per_file: PER_FILE,
            large_record_ratio: 0.0,
            compression: Compression::Gzip,
            gzip_level: 1,
            inject: Inject {
                violations: false,
                anomalies,
            },
            ..GenOptions::default()
        },
    )
    .expect("generate")
}

/// Feeds records `from..to` (1-based, in file key order, as a bucket listing gives them).
fn run_range(dir: &Path, d: &mut AnomalyDetector, from: u64, to: u64) -> Vec<InsightEvent> {
    let mut out = Vec::new();
    let mut n = 0u64;
    for f in list_files(dir).expect("list") {
        let file = std::fs::File::open(&f).expect("open");
        let (_, r) = read_records(file, &Limits::default(), FieldMode::Extract, |rec| {
            n += 1;
            if n < from || n >= to {
                return;
            }
            let Some(fields) = rec.fields.as_ref() else {
                return;
            };
            let ua = scan_user_agent(rec.raw.bytes);
            if let Some(o) = Observation::from_fields(fields, ua.as_deref(), None, None) {
                out.extend(d.observe(&o));
            }
        });
        r.expect("valid file");
    }
    out
}

fn run(dir: &Path, d: &mut AnomalyDetector) -> Vec<InsightEvent> {
    run_range(dir, d, 1, u64::MAX)
}

fn describe(e: &InsightEvent) -> String {
    let d = &e.insight_details;
    format!(
        "{} {:?} {:?} {} {} avg={} dur={}",
        e.event_time,
        d.state,
        d.insight_type,
        d.event_source,
        d.event_name,
        d.insight_context.statistics.insight.average,
        d.insight_context.statistics.insight_duration
    )
}

#[test]
fn injected_burst_and_error_spike_raise_exactly_their_pairs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = week(tmp.path(), true);
    assert_eq!(s.anomalies.len(), 2);
    let mut d = AnomalyDetector::new(AnomalyOptions::default());
    let events = run(tmp.path(), &mut d);
    for e in &events {
        eprintln!("{}", describe(e));
    }
    eprintln!("{:?}", d.stats);
    assert_eq!(d.stats.late, 0);
    assert_eq!(
        events.len(),
        4,
        "{:#?}",
        events.iter().map(describe).collect::<Vec<_>>()
    );

    for a in &s.anomalies {
        let itype = match a.insight_type {
            "ApiCallRateInsight" => InsightType::ApiCallRateInsight,
            _ => InsightType::ApiErrorRateInsight,
        };
        let pair: Vec<&InsightEvent> = events
            .iter()
            .filter(|e| {
                e.insight_details.event_name == a.event_name
                    && e.insight_details.insight_type == itype
            })
            .collect();
        assert_eq!(pair.len(), 2, "{a:?}");
        let (start, end) = (pair[0], pair[1]);
        assert_eq!(start.insight_details.state, InsightState::Start);
        assert_eq!(end.insight_details.state, InsightState::End);
        assert_eq!(start.event_time, format_rfc3339_s(a.start_ms), "{a:?}");
        assert_eq!(end.event_time, format_rfc3339_s(a.end_ms), "{a:?}");
        assert_eq!(start.shared_event_id, end.shared_event_id);
        for e in [start, end] {
            assert_eq!(e.event_type, "AwsCloudTrailInsight");
            assert_eq!(e.event_category, "Insight");
            assert_eq!(e.recipient_account_id, a.account_id);
            assert_eq!(e.aws_region, a.region);
            assert_eq!(e.insight_details.event_source, a.event_source);
            // The CloudTrail shape: no eventName/eventSource/userIdentity at top level.
            let v: serde_json::Value = serde_json::from_slice(&e.to_json()).expect("json");
            for absent in ["eventName", "eventSource", "userIdentity"] {
                assert!(v.get(absent).is_none());
            }
            assert!(
                v["insightDetails"]["insightContext"]["statistics"]["baselineDuration"]
                    .as_u64()
                    .is_some_and(|m| m >= 1440)
            );
        }
        let minutes = ((a.end_ms - a.start_ms) / 60_000) as u64;
        let st = &end.insight_details.insight_context.statistics;
        assert_eq!(st.insight_duration, minutes);
        let rate = f64::from(a.records) / minutes as f64;
        assert!(
            st.insight.average >= rate && st.insight.average < rate + 1.0,
            "{st:?} vs {rate}"
        );
        assert!(st.baseline.average < 0.1 * rate, "{st:?}");
        let who = &end.insight_details.insight_context.attributions[0];
        assert_eq!(who.attribute, "userIdentityArn");
        assert_eq!(who.insight[0].value, a.user_arn);
        let codes = &end.insight_details.insight_context.attributions[2];
        assert_eq!(codes.attribute, "errorCode");
        match itype {
            InsightType::ApiCallRateInsight => assert_eq!(codes.insight[0].value, "null"),
            InsightType::ApiErrorRateInsight => {
                assert_eq!(codes.insight[0].value, "Client.RequestLimitExceeded")
            }
        }
    }

    // A restart halfway through, from the persisted state, gives the same events.
    let half = s.records / 2;
    let mut first = AnomalyDetector::new(AnomalyOptions::default());
    let before = run_range(tmp.path(), &mut first, 1, half);
    let saved = first.to_state_bytes();
    let mut restored =
        AnomalyDetector::from_state_bytes(&saved, &AnomalyOptions::default()).expect("state");
    let after = run_range(tmp.path(), &mut restored, half, u64::MAX);
    let key = |v: &[InsightEvent]| {
        v.iter()
            .map(|e| (e.event_id.clone(), e.event_time.clone()))
            .collect::<Vec<_>>()
    };
    let mut joined = before;
    joined.extend(after);
    assert_eq!(key(&joined), key(&events));
    eprintln!(
        "state file: {} bytes for {} keys",
        saved.len(),
        first.keys()
    );
}

#[test]
fn a_steady_week_raises_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    week(tmp.path(), false);
    let mut d = AnomalyDetector::new(AnomalyOptions::default());
    let events = run(tmp.path(), &mut d);
    assert!(
        events.is_empty(),
        "{:#?}",
        events.iter().map(describe).collect::<Vec<_>>()
    );
    // With the count floor removed only the statistical test decides; still nothing.
    let mut strict = AnomalyDetector::new(AnomalyOptions {
        min_count: 1,
        min_ratio: 1.0,
        ..AnomalyOptions::default()
    });
    let events = run(tmp.path(), &mut strict);
    assert!(
        events.is_empty(),
        "{:#?}",
        events.iter().map(describe).collect::<Vec<_>>()
    );
    // Management events are analysed; data events are skipped, as CloudTrail Insights does.
    assert_eq!(
        d.stats.events + d.stats.skipped,
        WEEK_FILES * u64::from(PER_FILE)
    );
    assert!(
        d.stats.events > 60_000 && d.stats.late == 0,
        "{:?}",
        d.stats
    );
    eprintln!("{:?}, {} keys", d.stats, d.keys());
}
