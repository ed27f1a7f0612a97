//! Splunk HEC sink against a local HEC stand-in that checks the exact request format (path,
//! `Authorization: Splunk <token>`, JSON envelopes with time/source/sourcetype/event) and
//! injects 503/429/500 answers, a bad event, and delayed indexer acknowledgements.

mod common;

use common::{corpus, dead_letters, serve, ship, Req, Resp};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use trailhose_config::siem::SplunkHecSinkConfig;

const TOKEN: &str = "00000000-test-token-0000-000000000000";

fn config(url: &str, tmp: &Path, extra: &str) -> SplunkHecSinkConfig {
    let token_file = tmp.join("hec-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let text = format!(
        r#"
name = "splunk"
url = "{url}"
dead_letter = "{}"
{extra}
[token]
file = "{}"
[delivery]
max_events = 200
linger_ms = 20
backoff_ms = 5
max_backoff_ms = 50
max_retry_duration_seconds = 30
requests_per_second = 2000
"#,
        tmp.join("dl.ndjson").display(),
        token_file.display()
    );
    let cfg: SplunkHecSinkConfig = toml::from_str(&text).expect("valid sink config");
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    cfg
}

/// Checks one request the way HEC would and returns its events, or the error answer.
fn parse_events(req: &Req) -> Result<Vec<Value>, Resp> {
    assert_eq!(req.method, "POST");
    if req.header("authorization") != Some(&format!("Splunk {TOKEN}")) {
        return Err(Resp::json(403, json!({"text":"Invalid token","code":4})));
    }
    assert_eq!(req.header("content-type"), Some("application/json"));
    let mut events = Vec::new();
    for v in serde_json::Deserializer::from_slice(&req.body).into_iter::<Value>() {
        let Ok(v) = v else {
            return Err(Resp::json(
                400,
                json!({"text":"Invalid data format","code":6}),
            ));
        };
        events.push(v);
    }
    if events.is_empty() {
        return Err(Resp::json(400, json!({"text":"No data","code":5})));
    }
    Ok(events)
}

/// The envelope trailhose must send for a raw record.
fn check_envelope(ev: &Value, records: &HashMap<String, Vec<u8>>) -> String {
    let obj = ev.as_object().expect("envelope is an object");
    let keys: HashSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        HashSet::from(["time", "source", "sourcetype", "event"]),
        "{ev}"
    );
    assert_eq!(ev["sourcetype"], "aws:cloudtrail");
    let source = ev["source"].as_str().expect("source");
    assert!(
        source.ends_with(".json.gz"),
        "source is the object: {source}"
    );
    let event = &ev["event"];
    let id = event["eventID"].as_str().expect("eventID").to_string();
    let original: Value = serde_json::from_slice(&records[&id]).expect("corpus record");
    assert_eq!(event, &original, "event is the record, unchanged");
    let ms = trailhose_core::timefmt::parse_rfc3339_ms(original["eventTime"].as_str().expect("t"))
        .expect("eventTime");
    let time = ev["time"].as_f64().expect("time is a number");
    assert!(
        (time * 1000.0 - ms as f64).abs() < 1.0,
        "time {time} is eventTime {ms} ms"
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_arrives_once_through_503s_429s_and_500s() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = Arc::new(corpus(&tmp.path().join("in"), 3000, 11));
    let stored: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let calls = Arc::new(AtomicU64::new(0));
    let (s, c, r) = (stored.clone(), calls.clone(), records.clone());
    let server = serve(Arc::new(move |req: &Req| {
        assert_eq!(req.path, "/services/collector/event");
        let n = c.fetch_add(1, Ordering::Relaxed);
        // Faults before HEC reads the body: nothing of these requests is indexed.
        match n % 7 {
            1 => return Resp::json(503, json!({"text":"Server is busy","code":9})),
            3 => return Resp::json(429, json!({"text":"Too many requests"})),
            5 => return Resp::json(500, json!({"text":"Internal server error","code":8})),
            _ => {}
        }
        let events = match parse_events(req) {
            Ok(e) => e,
            Err(resp) => return resp,
        };
        let mut s = s.lock().expect("store");
        for ev in &events {
            let id = check_envelope(ev, &r);
            *s.entry(id).or_default() += 1;
        }
        Resp::json(200, json!({"text":"Success","code":0}))
    }))
    .await;
    let cfg = config(&server.url, tmp.path(), "");
    let sink = trailhose_siem::hec::sink(&cfg, common::local_dead_letters(&cfg.dead_letter))
        .expect("sink");
    let (report, source) = ship(&tmp.path().join("in"), Box::new(sink)).await;

    assert_eq!(source.objects_undelivered, 0, "{report:?}");
    let stored = stored.lock().expect("store").clone();
    assert_eq!(stored.len(), records.len(), "every record indexed");
    assert!(stored.values().all(|n| *n == 1), "no record indexed twice");
    assert_eq!(report.records as usize, records.len());
    assert_eq!(report.dead_lettered, 0);
    assert!(report.throttled > 0 && report.retries > 0, "{report:?}");
    let shown = format!("{report:?}{cfg:?}");
    assert!(!shown.contains(TOKEN), "the token is never shown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_is_dead_lettered_and_the_rest_indexed_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = Arc::new(corpus(&tmp.path().join("in"), 1200, 12));
    let mut ids: Vec<&String> = records.keys().collect();
    ids.sort();
    let poison: HashSet<String> = ids.iter().take(3).map(|s| s.to_string()).collect();
    let stored: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let (s, r, p) = (stored.clone(), records.clone(), poison.clone());
    let server = serve(Arc::new(move |req: &Req| {
        let events = match parse_events(req) {
            Ok(e) => e,
            Err(resp) => return resp,
        };
        if let Some(n) = events
            .iter()
            .position(|e| p.contains(e["event"]["eventID"].as_str().unwrap_or("")))
        {
            return Resp::json(
                400,
                json!({"text":"Invalid data format","code":6,"invalid-event-number":n}),
            );
        }
        let mut s = s.lock().expect("store");
        for ev in &events {
            *s.entry(check_envelope(ev, &r)).or_default() += 1;
        }
        Resp::json(200, json!({"text":"Success","code":0}))
    }))
    .await;
    let cfg = config(&server.url, tmp.path(), "gzip = true");
    let sink = trailhose_siem::hec::sink(&cfg, common::local_dead_letters(&cfg.dead_letter))
        .expect("sink");
    let (report, source) = ship(&tmp.path().join("in"), Box::new(sink)).await;

    assert_eq!(source.objects_undelivered, 0);
    let stored = stored.lock().expect("store").clone();
    assert_eq!(stored.len(), records.len() - poison.len());
    assert!(stored.values().all(|n| *n == 1));
    assert!(poison.iter().all(|p| !stored.contains_key(p)));
    let dl = dead_letters(&tmp.path().join("dl.ndjson"));
    let dl_ids: HashSet<String> = dl
        .iter()
        .map(|(_, r)| r["eventID"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        dl_ids, poison,
        "exactly the refused events are dead-lettered"
    );
    assert!(dl
        .iter()
        .all(|(reason, _)| reason.contains("Invalid data format")));
    assert_eq!(report.dead_lettered as usize, poison.len());
    assert!(
        server
            .requests
            .lock()
            .expect("log")
            .iter()
            .all(|r| r.header("content-encoding") == Some("gzip")),
        "gzip on every request"
    );
}

/// ackId → (events waiting to be indexed, acknowledgement polls so far).
type Pending = Arc<Mutex<HashMap<u64, (Vec<String>, u32)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexer_acknowledgement_gates_the_ack_and_ecs_events_are_sent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = Arc::new(corpus(&tmp.path().join("in"), 600, 13));
    let pending: Pending = Arc::default();
    let indexed: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let channel: Arc<Mutex<Option<String>>> = Arc::default();
    let next_ack = Arc::new(AtomicU64::new(0));
    let (pe, ix, ch, na) = (
        pending.clone(),
        indexed.clone(),
        channel.clone(),
        next_ack.clone(),
    );
    let recs = records.clone();
    let server = serve(Arc::new(move |req: &Req| {
        let ch_hdr = req
            .header("x-splunk-request-channel")
            .expect("a channel with indexer acknowledgement")
            .to_string();
        {
            let mut c = ch.lock().expect("channel");
            assert_eq!(c.get_or_insert(ch_hdr.clone()), &ch_hdr, "one channel");
        }
        if req.path == "/services/collector/ack" {
            let v: Value = serde_json::from_slice(&req.body).expect("ack body");
            let mut acks = serde_json::Map::new();
            let mut p = pe.lock().expect("pending");
            for id in v["acks"].as_array().expect("acks") {
                let id = id.as_u64().expect("ack id");
                let done = match p.get_mut(&id) {
                    Some((events, polls)) => {
                        *polls += 1;
                        // Indexed on the second poll.
                        if *polls >= 2 {
                            let mut ix = ix.lock().expect("indexed");
                            for e in events.drain(..) {
                                *ix.entry(e).or_default() += 1;
                            }
                            true
                        } else {
                            false
                        }
                    }
                    None => false,
                };
                acks.insert(id.to_string(), json!(done));
            }
            return Resp::json(200, json!({ "acks": acks }));
        }
        assert_eq!(req.path, "/services/collector/event");
        let events = match parse_events(req) {
            Ok(e) => e,
            Err(resp) => return resp,
        };
        let mut ids = Vec::new();
        for ev in &events {
            assert_eq!(ev["sourcetype"], "aws:cloudtrail");
            assert_eq!(ev["index"], "cloudtrail");
            assert_eq!(ev["host"], "trailhose-test");
            let doc = &ev["event"];
            // ECS shape.
            assert_eq!(doc["ecs"]["version"], "8.11.0", "{doc}");
            let id = doc["event"]["id"].as_str().expect("event.id").to_string();
            let original: Value = serde_json::from_slice(&recs[&id]).expect("record");
            assert_eq!(doc["event"]["action"], original["eventName"]);
            assert_eq!(doc["event"]["provider"], original["eventSource"]);
            assert!(doc["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
            ids.push(id);
        }
        let ack = na.fetch_add(1, Ordering::Relaxed);
        pe.lock().expect("pending").insert(ack, (ids, 0));
        Resp::json(200, json!({"text":"Success","code":0,"ackId":ack}))
    }))
    .await;
    let cfg = config(
        &server.url,
        tmp.path(),
        "indexer_ack = true\nack_poll_ms = 10\nformat = \"ecs\"\nindex = \"cloudtrail\"\nhost = \"trailhose-test\"",
    );
    let sink = trailhose_siem::hec::sink(&cfg, common::local_dead_letters(&cfg.dead_letter))
        .expect("sink");
    let (report, source) = ship(&tmp.path().join("in"), Box::new(sink)).await;
    assert_eq!(source.objects_undelivered, 0, "{report:?}");
    let indexed = indexed.lock().expect("indexed").clone();
    assert_eq!(indexed.len(), records.len());
    assert!(indexed.values().all(|n| *n == 1));
    assert!(
        pending
            .lock()
            .expect("pending")
            .values()
            .all(|(e, _)| e.is_empty()),
        "every batch was acknowledged before the sink finished"
    );
    assert_eq!(report.records as usize, records.len());
}
