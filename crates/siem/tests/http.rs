//! Generic HTTP sink against a local endpoint that checks the JSON-array body, gzip and the
//! configured headers, and injects 500s, 429s, 413s for large bodies and a 422 for a batch
//! holding a record it refuses.

mod common;

use common::{corpus, dead_letters, serve, ship, Req, Resp};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use trailhose_config::siem::HttpSinkConfig;

const AUTH_VAR: &str = "TRAILHOSE_SIEM_TEST_HTTP_AUTH";
const AUTH: &str = "Bearer test-secret-value";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_array_gzip_with_faults_delivers_each_record_once() {
    // Only this test in this binary reads the variable.
    std::env::set_var(AUTH_VAR, AUTH);
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = Arc::new(corpus(&tmp.path().join("in"), 2500, 31));
    let mut ids: Vec<&String> = records.keys().collect();
    ids.sort();
    let poison: HashSet<String> = ids.iter().skip(7).take(2).map(|s| s.to_string()).collect();
    let stored: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let calls = Arc::new(AtomicU64::new(0));
    let (s, c, p, r) = (
        stored.clone(),
        calls.clone(),
        poison.clone(),
        records.clone(),
    );
    let server = serve(Arc::new(move |req: &Req| {
        assert_eq!(req.method, "PUT");
        assert_eq!(req.path, "/ingest/cloudtrail");
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("content-encoding"), Some("gzip"));
        assert_eq!(req.header("x-static"), Some("yes"));
        assert_eq!(req.header("authorization"), Some(AUTH));
        assert!(req.raw_len < req.body.len(), "the body is compressed");
        let docs: Vec<Value> = serde_json::from_slice(&req.body).expect("a JSON array");
        let n = c.fetch_add(1, Ordering::Relaxed);
        if docs.len() > 150 {
            return Resp::json(413, json!({"error":"payload too large"}));
        }
        match n % 5 {
            1 => return Resp::json(500, json!({"error":"boom"})),
            3 => return Resp::json(429, json!({"error":"slow down"})),
            _ => {}
        }
        if docs
            .iter()
            .any(|d| p.contains(d["eventID"].as_str().unwrap_or("")))
        {
            return Resp::json(422, json!({"error":"refused record"}));
        }
        let mut s = s.lock().expect("store");
        for d in &docs {
            let id = d["eventID"].as_str().expect("eventID").to_string();
            let original: Value = serde_json::from_slice(&r[&id]).expect("record");
            assert_eq!(d, &original);
            *s.entry(id).or_default() += 1;
        }
        Resp::json(202, json!({"ok":true}))
    }))
    .await;
    let text = format!(
        r#"
name = "hook"
url = "{}/ingest/cloudtrail"
method = "PUT"
body = "json_array"
gzip = true
dead_letter = "{}"
[headers]
X-Static = "yes"
[headers_from_env]
Authorization = "{AUTH_VAR}"
[delivery]
max_events = 400
linger_ms = 20
backoff_ms = 5
max_backoff_ms = 50
max_retry_duration_seconds = 30
requests_per_second = 2000
"#,
        server.url,
        tmp.path().join("dl.ndjson").display()
    );
    let cfg: HttpSinkConfig = toml::from_str(&text).expect("valid sink config");
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    let sink = trailhose_siem::generic::sink(&cfg, common::local_dead_letters(&cfg.dead_letter))
        .expect("sink");
    let (report, source) = ship(&tmp.path().join("in"), Box::new(sink)).await;

    assert_eq!(source.objects_undelivered, 0, "{report:?}");
    let stored = stored.lock().expect("store").clone();
    assert_eq!(stored.len(), records.len() - poison.len());
    assert!(
        stored.values().all(|n| *n == 1),
        "no record delivered twice"
    );
    let dl = dead_letters(&tmp.path().join("dl.ndjson"));
    let dl_ids: HashSet<String> = dl
        .iter()
        .map(|(_, r)| r["eventID"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(dl_ids, poison);
    assert!(dl.iter().all(|(reason, _)| reason.contains("HTTP 422")));
    assert_eq!(report.records as usize, records.len() - poison.len());
    assert_eq!(report.dead_lettered as usize, poison.len());
    assert!(report.throttled > 0 && report.retries > 0, "{report:?}");
    assert!(!format!("{report:?}").contains("test-secret-value"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refusal_fails_the_objects_without_dead_lettering() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = corpus(&tmp.path().join("in"), 300, 32);
    let server = serve(Arc::new(|req: &Req| {
        let text = std::str::from_utf8(&req.body).expect("utf-8");
        assert!(
            text.ends_with('\n') && text.lines().all(|l| l.starts_with('{')),
            "NDJSON"
        );
        Resp::json(401, json!({"error":"unauthorized"}))
    }))
    .await;
    let text = format!(
        "name = \"hook\"\nurl = \"{}/x\"\ndead_letter = \"{}\"\n[delivery]\nmax_retry_duration_seconds = 2\nprobe_interval_ms = 50\n",
        server.url,
        tmp.path().join("dl.ndjson").display()
    );
    let cfg: HttpSinkConfig = toml::from_str(&text).expect("valid");
    let sink = trailhose_siem::generic::sink(&cfg, common::local_dead_letters(&cfg.dead_letter))
        .expect("sink");
    let (report, source) = ship(&tmp.path().join("in"), Box::new(sink)).await;
    assert_eq!(
        source.objects_delivered, 0,
        "nothing acknowledged: {report:?}"
    );
    assert_eq!(source.objects_undelivered, source.files_read);
    assert_eq!(report.records, 0);
    assert!(report.failed_deliveries > 0);
    assert!(
        report.errors.iter().any(|e| e.contains("HTTP 401")),
        "{report:?}"
    );
    assert!(
        !tmp.path().join("dl.ndjson").exists(),
        "an auth failure is not a dead letter"
    );
    assert!(!records.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_from_the_destination_is_honoured() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = corpus(&tmp.path().join("in"), 300, 5);
    let times: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
    let t = times.clone();
    let server = serve(Arc::new(move |_req: &Req| {
        let mut t = t.lock().expect("times");
        t.push(std::time::Instant::now());
        if t.len() == 1 {
            // Far longer than the sink's own backoff (5 ms): only the header explains a wait.
            Resp::json(429, json!({"error":"slow down"})).with_header("Retry-After: 2")
        } else {
            Resp::json(200, json!({"ok":true}))
        }
    }))
    .await;
    let text = format!(
        r#"
name = "hook"
url = "{}/in"
dead_letter = "{}"
[delivery]
max_events = 10000
max_in_flight = 1
linger_ms = 20
backoff_ms = 5
max_backoff_ms = 10
"#,
        server.url,
        tmp.path().join("dl.ndjson").display()
    );
    let cfg: HttpSinkConfig = toml::from_str(&text).expect("valid sink config");
    let sink = trailhose_siem::generic::sink(&cfg, common::local_dead_letters(&cfg.dead_letter))
        .expect("sink");
    let (report, source) = ship(&tmp.path().join("in"), Box::new(sink)).await;
    assert_eq!(source.objects_undelivered, 0, "{report:?}");
    assert_eq!(report.records as usize, records.len());
    assert_eq!(report.throttled, 1, "{report:?}");
    let t = times.lock().expect("times");
    assert!(t.len() >= 2, "{} requests", t.len());
    let waited = t[1] - t[0];
    assert!(
        waited >= std::time::Duration::from_millis(1900),
        "retried after {waited:?}, the destination asked for 2 s"
    );
}
