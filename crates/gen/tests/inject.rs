//! Injection adds files and changes nothing else; the added records are valid CloudTrail JSON
//! with the advertised event ids, times and counts.

use serde_json::Value;
use std::collections::BTreeMap;
use trailhose_gen::{generate, Compression, GenOptions, Inject};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn opts(inject: Inject) -> GenOptions {
    GenOptions {
        events: 3000,
        events_per_file: 100,
        seed: 7,
        compression: Compression::None,
        inject,
        ..GenOptions::default()
    }
}

fn files(dir: &std::path::Path, s: &trailhose_gen::GenSummary) -> BTreeMap<String, Vec<u8>> {
    s.files
        .iter()
        .map(|f| {
            (
                f.key.clone(),
                std::fs::read(dir.join(&f.path)).expect("generated file"),
            )
        })
        .collect()
}

#[test]
fn injection_only_adds_files() -> TestResult {
    let plain_dir = tempfile::tempdir()?;
    let inj_dir = tempfile::tempdir()?;
    let plain = generate(plain_dir.path(), &opts(Inject::default()))?;
    let inj = generate(
        inj_dir.path(),
        &opts(Inject {
            violations: true,
            anomalies: true,
        }),
    )?;
    assert!(plain.injected.is_empty() && plain.anomalies.is_empty());
    let a = files(plain_dir.path(), &plain);
    let b = files(inj_dir.path(), &inj);
    for (k, bytes) in &a {
        assert_eq!(b.get(k), Some(bytes), "{k} changed");
    }
    let extra: Vec<&String> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(!extra.is_empty());
    let mut ids = BTreeMap::new();
    let mut per_name: BTreeMap<String, u64> = BTreeMap::new();
    for k in extra {
        let v: Value = serde_json::from_slice(&b[k])?;
        for r in v["Records"].as_array().ok_or("Records")? {
            ids.insert(
                r["eventID"].as_str().ok_or("eventID")?.to_owned(),
                r["eventTime"].as_str().ok_or("eventTime")?.to_owned(),
            );
            *per_name
                .entry(r["eventName"].as_str().ok_or("eventName")?.to_owned())
                .or_default() += 1;
            assert_eq!(r["eventCategory"], "Management");
            assert_eq!(r["recipientAccountId"], r["userIdentity"]["accountId"]);
        }
    }
    assert_eq!(inj.injected.len(), 21);
    for e in &inj.injected {
        assert!(ids.contains_key(&e.event_id), "{} missing", e.label);
        assert!(!e.expected_rules.is_empty());
    }
    assert_eq!(inj.anomalies.len(), 2);
    let burst = &inj.anomalies[0];
    assert_eq!(
        (
            burst.event_name,
            burst.records,
            burst.end_ms - burst.start_ms
        ),
        ("DeleteSecurityGroup", 300, 600_000)
    );
    assert_eq!(per_name.get("DeleteSecurityGroup"), Some(&300));
    let spike = &inj.anomalies[1];
    assert_eq!(
        (
            spike.insight_type,
            spike.records,
            spike.end_ms - spike.start_ms
        ),
        ("ApiErrorRateInsight", 150, 900_000)
    );
    assert_eq!(inj.records, plain.records + 21 + 300 + 150);
    // Deterministic.
    let again_dir = tempfile::tempdir()?;
    let again = generate(
        again_dir.path(),
        &opts(Inject {
            violations: true,
            anomalies: true,
        }),
    )?;
    assert_eq!(again, inj);
    Ok(())
}
