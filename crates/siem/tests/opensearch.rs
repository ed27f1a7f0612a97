//! OpenSearch/Elasticsearch `_bulk` sink against a local `_bulk` stand-in with `create`
//! semantics (an existing `_id` is a 409), which checks the NDJSON action lines, `_id` =
//! eventID, the index template and basic authentication, and injects whole-request 429s,
//! "lost" responses (indexed, then a 500), per-item 429s and permanent per-item mapping errors.

mod common;

use common::{corpus, dead_letters, serve, ship, Req, Resp};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use trailhose_config::siem::OpenSearchSinkConfig;

const USER: &str = "shipper";
const PASSWORD: &str = "pa55-w0rd";

fn config(url: &str, tmp: &Path, extra: &str) -> OpenSearchSinkConfig {
    let pw = tmp.join("os-password");
    std::fs::write(&pw, PASSWORD).expect("password file");
    let text = format!(
        r#"
name = "search"
url = "{url}"
username = "{USER}"
dead_letter = "{}"
{extra}
[password]
file = "{}"
[delivery]
max_events = 250
linger_ms = 20
backoff_ms = 5
max_backoff_ms = 50
max_retry_duration_seconds = 30
requests_per_second = 2000
"#,
        tmp.join("dl.ndjson").display(),
        pw.display()
    );
    let cfg: OpenSearchSinkConfig = toml::from_str(&text).expect("valid sink config");
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    cfg
}

/// What the stand-in index holds: `_id` → (index, document).
type Store = Arc<Mutex<HashMap<String, (String, Value)>>>;

/// Parses and checks a `_bulk` body: (index, _id, document) per action.
fn parse_bulk(req: &Req) -> Vec<(String, String, Value)> {
    assert_eq!(req.method, "POST");
    assert!(req.path.starts_with("/_bulk"), "{}", req.path);
    assert_eq!(req.header("content-type"), Some("application/x-ndjson"));
    let expected = format!(
        "Basic {}",
        trailhose_siem::secret::base64(format!("{USER}:{PASSWORD}").as_bytes())
    );
    assert_eq!(req.header("authorization"), Some(expected.as_str()));
    let text = std::str::from_utf8(&req.body).expect("utf-8 body");
    assert!(text.ends_with('\n'), "bulk bodies end with a newline");
    let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
    assert_eq!(lines.len() % 2, 0, "action + document pairs");
    lines
        .chunks(2)
        .map(|pair| {
            let action: Value = serde_json::from_str(pair[0]).expect("action line");
            let meta = action
                .as_object()
                .filter(|m| m.len() == 1)
                .and_then(|m| m.get("create"))
                .and_then(Value::as_object)
                .expect("a single `create` action");
            let keys: HashSet<&str> = meta.keys().map(String::as_str).collect();
            assert_eq!(keys, HashSet::from(["_index", "_id"]), "{action}");
            let doc: Value = serde_json::from_str(pair[1]).expect("document line");
            (
                meta["_index"].as_str().expect("index").to_string(),
                meta["_id"].as_str().expect("id").to_string(),
                doc,
            )
        })
        .collect()
}

fn item(status: u16, id: &str, error: Option<(&str, &str)>) -> Value {
    let mut m = json!({ "_id": id, "status": status });
    if let Some((t, r)) = error {
        m["error"] = json!({ "type": t, "reason": r });
    }
    json!({ "create": m })
}

/// Indexes items with `create` semantics; `refuse(id)` gives a per-item refusal.
fn bulk_answer(
    actions: Vec<(String, String, Value)>,
    store: &Store,
    refuse: &dyn Fn(&str) -> Option<(u16, &'static str)>,
) -> Resp {
    let mut s = store.lock().expect("store");
    let mut errors = false;
    let items: Vec<Value> = actions
        .into_iter()
        .map(|(index, id, doc)| {
            if let Some((status, t)) = refuse(&id) {
                errors = true;
                return item(status, &id, Some((t, "refused by the test")));
            }
            if s.contains_key(&id) {
                errors = true;
                return item(
                    409,
                    &id,
                    Some(("version_conflict_engine_exception", "exists")),
                );
            }
            s.insert(id.clone(), (index, doc));
            item(201, &id, None)
        })
        .collect();
    Resp::json(200, json!({ "took": 1, "errors": errors, "items": items }))
}

fn bucket(id: &str) -> u64 {
    id.bytes()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_indexed_once_through_429s_lost_responses_and_item_retries() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = Arc::new(corpus(&tmp.path().join("in"), 3000, 21));
    let store: Store = Arc::default();
    let calls = Arc::new(AtomicU64::new(0));
    let item_throttled: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (s, c, t) = (store.clone(), calls.clone(), item_throttled.clone());
    let server = serve(Arc::new(move |req: &Req| {
        let actions = parse_bulk(req);
        let n = c.fetch_add(1, Ordering::Relaxed);
        if n % 6 == 1 {
            return Resp::json(
                429,
                json!({"error":{"type":"es_rejected_execution_exception"},"status":429}),
            );
        }
        // Each id in bucket 0 is refused with a 429 the first time it is seen.
        let refuse = |id: &str| {
            (bucket(id) == 0 && t.lock().expect("t").insert(id.to_string()))
                .then_some((429, "es_rejected_execution_exception"))
        };
        let answer = bulk_answer(actions, &s, &refuse);
        if n % 6 == 4 {
            // Indexed, but the response is lost: the sink must retry, and `create` makes the
            // retry a no-op (409), not a duplicate.
            return Resp::json(500, json!({"error":"response lost"}));
        }
        answer
    }))
    .await;
    let cfg = config(&server.url, tmp.path(), r#"index = "cloudtrail-{account}""#);
    let sink = trailhose_siem::bulk::sink(&cfg, common::local_dead_letters(&cfg.dead_letter))
        .expect("sink");
    let (report, source) = ship(&tmp.path().join("in"), Box::new(sink)).await;

    assert_eq!(source.objects_undelivered, 0, "{report:?}");
    let store = store.lock().expect("store").clone();
    assert_eq!(
        store.len(),
        records.len(),
        "exactly one document per record"
    );
    for (id, (index, doc)) in &store {
        let original: Value = serde_json::from_slice(&records[id]).expect("record");
        assert_eq!(doc, &original, "raw format: the record itself");
        assert_eq!(
            doc["eventID"].as_str(),
            Some(id.as_str()),
            "_id is the eventID"
        );
        let account = original["recipientAccountId"].as_str().expect("account");
        assert_eq!(index, &format!("cloudtrail-{account}"));
    }
    assert_eq!(report.records as usize, records.len());
    assert_eq!(report.dead_lettered, 0);
    assert!(report.throttled > 0 && report.retries > 0, "{report:?}");
    assert!(!item_throttled.lock().expect("t").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_bulk_failure_dead_letters_only_the_refused_items() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = Arc::new(corpus(&tmp.path().join("in"), 1500, 22));
    let mut ids: Vec<&String> = records.keys().collect();
    ids.sort();
    let poison: HashSet<String> = ids.iter().take(5).map(|s| s.to_string()).collect();
    let store: Store = Arc::default();
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (s, p, sn) = (store.clone(), poison.clone(), seen.clone());
    let server = serve(Arc::new(move |req: &Req| {
        let actions = parse_bulk(req);
        for (index, id, doc) in &actions {
            // ECS documents, in lower-cased category indices.
            assert!(
                index == "ct-management" || index == "ct-data" || index == "ct-insight",
                "{index}"
            );
            assert_eq!(doc["event"]["id"].as_str(), Some(id.as_str()));
            assert!(doc["@timestamp"].is_string());
        }
        let refuse = |id: &str| {
            if p.contains(id) {
                Some((400, "mapper_parsing_exception"))
            } else if bucket(id) == 3 && sn.lock().expect("seen").insert(id.to_string()) {
                Some((503, "unavailable_shards_exception"))
            } else {
                None
            }
        };
        bulk_answer(actions, &s, &refuse)
    }))
    .await;
    let cfg = config(
        &server.url,
        tmp.path(),
        "index = \"ct-{eventCategory}\"\nformat = \"ecs\"\ngzip = true",
    );
    let sink = trailhose_siem::bulk::sink(&cfg, common::local_dead_letters(&cfg.dead_letter))
        .expect("sink");
    let (report, source) = ship(&tmp.path().join("in"), Box::new(sink)).await;

    assert_eq!(source.objects_undelivered, 0, "{report:?}");
    let store = store.lock().expect("store").clone();
    assert_eq!(store.len(), records.len() - poison.len());
    assert!(poison.iter().all(|p| !store.contains_key(p)));
    let dl = dead_letters(&tmp.path().join("dl.ndjson"));
    let dl_ids: HashSet<String> = dl
        .iter()
        .map(|(_, r)| r["eventID"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(dl_ids, poison);
    assert_eq!(
        dl.len(),
        poison.len(),
        "each refused record dead-lettered once"
    );
    assert!(dl
        .iter()
        .all(|(reason, _)| reason.contains("mapper_parsing_exception")));
    // The dead-letter file keeps the original record, not the ECS document.
    for (_, rec) in &dl {
        let id = rec["eventID"].as_str().expect("id");
        let original: Value = serde_json::from_slice(&records[id]).expect("record");
        assert_eq!(rec, &original);
    }
    assert_eq!(report.records as usize, records.len() - poison.len());
    assert_eq!(report.dead_lettered as usize, poison.len());
}
