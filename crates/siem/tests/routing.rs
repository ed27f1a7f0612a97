//! Routing from a config: an archive takes everything, a CloudWatch stand-in drops read-only
//! data events by a named rule, a file sink takes `Delete*` calls by a filter pattern, and a
//! SIEM (HTTP) sink takes management events only. Each
//! record must reach exactly its configured sinks, and the drops are counted by rule name.

mod common;

use common::{corpus, serve, Req, Resp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use trailhose_config::{Config, SinkConfig, SourceConfig};
use trailhose_pipeline::deadletter::DeadLetterFile;
use trailhose_pipeline::dir_source::{run_dir_source, DirSource};
use trailhose_pipeline::sinks::ndjson::{NdjsonSink, Target};
use trailhose_pipeline::{Pipeline, SinkSpec};

fn ids_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in trailhose_pipeline::dir_source::list_files(dir).expect("list") {
        for line in std::fs::read_to_string(f).expect("read").lines() {
            let v: Value = serde_json::from_str(line).expect("JSON line");
            out.push(v["eventID"].as_str().expect("id").to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_split_delivers_each_record_to_exactly_its_sinks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    let records = corpus(&input, 2500, 51);
    let got_siem: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got_siem.clone();
    let server = serve(Arc::new(move |req: &Req| {
        let text = std::str::from_utf8(&req.body).expect("utf-8");
        let mut g = g.lock().expect("siem");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("NDJSON");
            g.push(v["eventID"].as_str().expect("id").to_string());
        }
        Resp::json(200, json!({}))
    }))
    .await;
    let out = tmp.path().join("out");
    let text = format!(
        r#"
[source]
type = "dir"
path = "{input}"

[[sinks]]
type = "ndjson"
name = "archive"
dir = "{out}/archive"

[[sinks]]
type = "ndjson"
name = "cwl-standin"
dir = "{out}/cwl"
[sinks.filter]
name = "no-read-only-data"
event_category = ["Data"]
read_only = true
exclude = true

[[sinks]]
type = "ndjson"
name = "deletes"
dir = "{out}/deletes"
[sinks.filter]
name = "deletes-only"
pattern = '{{ $.eventName = "Delete*" }}'

[[sinks]]
type = "http"
name = "siem"
url = "{url}/in"
dead_letter = "{out}/siem-dl.ndjson"
[sinks.filter]
name = "siem-management-only"
event_category = ["Management"]
[sinks.delivery]
linger_ms = 20
"#,
        input = input.display(),
        out = out.display(),
        url = server.url
    );
    let cfg = Config::from_toml(&text, "routing.toml").expect("valid config");
    let mut specs = Vec::new();
    for s in &cfg.sinks {
        specs.push(match s {
            SinkConfig::Ndjson(c) => SinkSpec {
                sink: Box::new(NdjsonSink {
                    name: c.name.clone(),
                    target: Target::Dir {
                        dir: c.dir.clone(),
                        prefix: c.prefix.clone(),
                        max_file_bytes: c.max_file_bytes,
                        fsync: false,
                    },
                    shape: c.shape,
                }),
                filter: trailhose_siem::routing::compile(c.filter.clone())
                    .expect("filter compiles"),
            },
            other => {
                let dl = match other {
                    SinkConfig::Http(c) => c.dead_letter.clone(),
                    _ => panic!("only HTTP sinks in this config"),
                };
                trailhose_siem::spec(other, common::local_dead_letters(&dl)).expect("SIEM sink")
            }
        });
    }
    let SourceConfig::Dir(d) = &cfg.source else {
        panic!("dir source")
    };
    let pipeline = Pipeline::start(specs, 8);
    let dlq = Arc::new(DeadLetterFile::new(&tmp.path().join("dlq.ndjson")));
    let src = DirSource {
        path: d.path.clone(),
        layout: d.layout,
        parse_workers: 2,
        limits: Default::default(),
        chunking: Default::default(),
    };
    let report = run_dir_source(src, pipeline.input(), dlq)
        .await
        .expect("source");
    let stats = pipeline.stats.clone();
    let sinks = pipeline.shutdown().await;
    assert_eq!(report.objects_undelivered, 0, "{sinks:?}");

    let mut management = HashSet::new();
    let mut read_only_data = HashSet::new();
    let mut deletes = HashSet::new();
    for (id, bytes) in &records {
        let v: Value = serde_json::from_slice(bytes).expect("record");
        if v["eventName"]
            .as_str()
            .is_some_and(|n| n.starts_with("Delete"))
        {
            deletes.insert(id.clone());
        }
        match v["eventCategory"].as_str() {
            Some("Management") => {
                management.insert(id.clone());
            }
            Some("Data") if v["readOnly"] == json!(true) => {
                read_only_data.insert(id.clone());
            }
            _ => {}
        }
    }
    assert!(!management.is_empty() && !read_only_data.is_empty() && !deletes.is_empty());
    assert!(
        management.len() < records.len(),
        "the corpus has non-management events"
    );

    let all: HashSet<String> = records.keys().cloned().collect();
    let archive = ids_in(&out.join("archive"));
    assert_eq!(archive.len(), records.len());
    assert_eq!(archive.into_iter().collect::<HashSet<_>>(), all);

    let cwl = ids_in(&out.join("cwl"));
    let want_cwl: HashSet<String> = all.difference(&read_only_data).cloned().collect();
    assert_eq!(cwl.len(), want_cwl.len(), "no duplicates");
    assert_eq!(cwl.into_iter().collect::<HashSet<_>>(), want_cwl);

    let del = ids_in(&out.join("deletes"));
    assert_eq!(del.len(), deletes.len(), "no duplicates");
    assert_eq!(
        del.into_iter().collect::<HashSet<_>>(),
        deletes,
        "the pattern routes"
    );

    let siem = got_siem.lock().expect("siem").clone();
    assert_eq!(siem.len(), management.len(), "no duplicates");
    assert_eq!(siem.into_iter().collect::<HashSet<_>>(), management);

    let dropped = stats.snapshot_dropped_by_rule();
    let want: BTreeMap<String, u64> = BTreeMap::from([
        ("no-read-only-data".to_string(), read_only_data.len() as u64),
        (
            "deletes-only".to_string(),
            (records.len() - deletes.len()) as u64,
        ),
        (
            "siem-management-only".to_string(),
            (records.len() - management.len()) as u64,
        ),
    ]);
    assert_eq!(dropped, want);
    assert_eq!(stats.unrouted.load(std::sync::atomic::Ordering::Relaxed), 0);
    let by_name: HashMap<&str, u64> = sinks.iter().map(|s| (s.name.as_str(), s.records)).collect();
    assert_eq!(by_name["siem"] as usize, management.len());
}
