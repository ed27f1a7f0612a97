//! `trailhose run` with an SQS source against moto's server: the binary reads a config file,
//! ships every record, and exits cleanly on SIGTERM with its counters on stderr.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn records_of(gz: &[u8]) -> Vec<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct File<'a> {
        #[serde(borrow, rename = "Records")]
        records: Vec<&'a serde_json::value::RawValue>,
    }
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_string(&mut text)
        .expect("gunzip");
    let f: File = serde_json::from_str(&text).expect("valid CloudTrail JSON");
    f.records
        .iter()
        .map(|r| r.get().as_bytes().to_vec())
        .collect()
}

fn output_lines(dir: &Path) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let bytes = std::fs::read(e.expect("entry").path()).expect("output file");
            lines.extend(
                bytes
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
    lines.sort();
    lines
}

struct Setup {
    sqs: aws_sdk_sqs::Client,
    queue: String,
    bucket: String,
    endpoint: String,
    tmp: tempfile::TempDir,
    expected: Vec<Vec<u8>>,
    files: usize,
}

/// A queue fed by a bucket's notifications, and `events` generated records uploaded to it.
async fn setup(tag: &str, events: u64, events_per_file: u32) -> Setup {
    let moto = trailhose_testkit::moto();
    let sdk = moto.sdk_config("us-east-1").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let s3 = trailhose_testkit::s3_client_for(&sdk);
    let name = format!("cli-{tag}-{}", std::process::id());
    let queue = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("queue url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("arn");
    s3.create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("bucket");
    s3.put_bucket_notification_configuration()
        .bucket(&name)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(
                    QueueConfiguration::builder()
                        .queue_arn(&arn)
                        .events(Event::S3ObjectCreated)
                        .build()
                        .expect("queue configuration"),
                )
                .build(),
        )
        .send()
        .await
        .expect("notification");

    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let summary = trailhose_gen::generate(
        &src,
        &trailhose_gen::GenOptions {
            events,
            events_per_file,
            gzip_level: 1,
            ..Default::default()
        },
    )
    .expect("corpus");
    let mut expected = Vec::new();
    for f in &summary.files {
        let bytes = std::fs::read(src.join(&f.path)).expect("file");
        expected.extend(records_of(&bytes));
        s3.put_object()
            .bucket(&name)
            .key(&f.key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .expect("upload");
    }
    expected.sort();
    Setup {
        sqs,
        queue,
        bucket: name,
        endpoint: moto.endpoint.clone(),
        tmp,
        expected,
        files: summary.files.len(),
    }
}

impl Setup {
    fn out(&self) -> std::path::PathBuf {
        self.tmp.path().join("out")
    }

    fn config(&self, extra: &str) -> std::path::PathBuf {
        let config = self.tmp.path().join("aws.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[source]
type = "sqs"
queue_url = "{queue}"
region = "us-east-1"
endpoint_url = "{endpoint}"
wait_time_seconds = 1
shutdown_grace_seconds = 5
{extra}
[[source.buckets]]
name = "{bucket}"

[dead_letter]
path = "{dl}"

[[sinks]]
type = "ndjson"
name = "records"
dir = "{out}"
"#,
                queue = self.queue,
                endpoint = self.endpoint,
                bucket = self.bucket,
                dl = self.tmp.path().join("dead-letter.ndjson").display(),
                out = self.out().display(),
            ),
        )
        .expect("config");
        config
    }

    fn spawn(&self, config: &Path, stderr: &Path) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_trailhose"))
            .args(["run", "--config"])
            .arg(config)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(stderr).expect("stderr file"))
            .spawn()
            .expect("the trailhose binary starts")
    }

    async fn queue_empty(&self) -> bool {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("attributes")
            .attributes
            .unwrap_or_default();
        let zero = |k: QueueAttributeName| attrs.get(&k).map(String::as_str) == Some("0");
        zero(QueueAttributeName::ApproximateNumberOfMessages)
            && zero(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }

    /// Waits until the queue is empty and `done(lines)` holds.
    async fn wait_drained(
        &self,
        child: &mut std::process::Child,
        stderr: &Path,
        done: impl Fn(&[Vec<u8>]) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if self.queue_empty().await && done(&output_lines(&self.out())) {
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "worker exited early ({status}): {}",
                    std::fs::read_to_string(stderr).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "queue not drained\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn signal(child: &std::process::Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on the child this test started; no memory is involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

async fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(started.elapsed() < limit, "did not exit within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sqs_worker_from_config_and_stop_on_sigterm() {
    let s = setup("term", 200, 50).await;
    let config = s.config("");
    let stderr_path = s.tmp.path().join("stderr.txt");
    let mut child = s.spawn(&config, &stderr_path);
    let n = s.expected.len();
    s.wait_drained(&mut child, &stderr_path, |lines| lines.len() == n)
        .await;
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(10)).await;
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.success(), "{status}: {stderr}");
    let messages = s.files + 1;
    assert!(
        stderr.contains(&format!(
            "sqs messages: {messages} received, {messages} deleted, 0 dead-lettered"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("1 test events"), "{stderr}");
    assert_eq!(
        output_lines(&s.out()),
        s.expected,
        "every record once, byte-identical"
    );
}

/// Exit status (README): a clean graceful shutdown exits 0 even when an object failed earlier
/// in the process's life; its message went to the dead-letter place and was deleted, so a
/// supervisor must not count the stop as a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_a_dead_lettered_object_exits_zero() {
    let s = setup("corrupt", 100, 50).await;
    let sdk = trailhose_testkit::moto().sdk_config("us-east-1").await;
    let s3 = trailhose_testkit::s3_client_for(&sdk);
    let corrupt = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/111122223333_CloudTrail_us-east-1_20260101T0000Z_corruptcorrupt00.json.gz";
    let mut body = vec![0x1f, 0x8b, 0x08, 0x00];
    body.extend_from_slice(b"this is not a gzip stream at all");
    s3.put_object()
        .bucket(&s.bucket)
        .key(corrupt)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("upload");
    let config = s.config("");
    let stderr_path = s.tmp.path().join("stderr.txt");
    let dead_letters = s.tmp.path().join("dead-letter.ndjson");
    let mut child = s.spawn(&config, &stderr_path);
    let n = s.expected.len();
    s.wait_drained(&mut child, &stderr_path, |lines| {
        lines.len() == n
            && std::fs::read_to_string(&dead_letters).is_ok_and(|d| d.lines().count() == 1)
    })
    .await;
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(10)).await;
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let dead = std::fs::read_to_string(&dead_letters).unwrap_or_default();
    assert!(dead.contains(corrupt), "{dead}");
    let messages = s.files + 2;
    assert!(
        stderr.contains(&format!(
            "sqs messages: {messages} received, {messages} deleted, 1 dead-lettered"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("1 failed permanently"), "{stderr}");
    assert!(stderr.contains("shutdown: clean"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(output_lines(&s.out()), s.expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_nothing_after_restart() {
    let s = setup("kill", 4000, 50).await;
    // Short visibility so the killed worker's messages come back quickly.
    let config = s.config("visibility_timeout_seconds = 2\nmax_objects_in_flight = 2");
    let first_err = s.tmp.path().join("stderr-1.txt");
    let mut first = s.spawn(&config, &first_err);
    let deadline = Instant::now() + Duration::from_secs(30);
    while output_lines(&s.out()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no output: {}",
            std::fs::read_to_string(&first_err).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&first, libc::SIGKILL);
    wait_exit(&mut first, Duration::from_secs(5)).await;
    let before = output_lines(&s.out()).len();
    assert!(
        before < s.expected.len(),
        "killed before the end ({before} of {} records)",
        s.expected.len()
    );

    let second_err = s.tmp.path().join("stderr-2.txt");
    let mut second = s.spawn(&config, &second_err);
    let expected = s.expected.clone();
    s.wait_drained(&mut second, &second_err, |lines| {
        let mut seen = lines.to_vec();
        seen.dedup();
        expected.iter().all(|r| seen.binary_search(r).is_ok())
    })
    .await;
    signal(&second, libc::SIGTERM);
    let status = wait_exit(&mut second, Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&second_err).unwrap_or_default()
    );
    let lines = output_lines(&s.out());
    // A SIGKILL may tear the last line the first worker was writing; nothing else may differ.
    let foreign = lines
        .iter()
        .filter(|l| s.expected.binary_search(l).is_err())
        .count();
    assert!(foreign <= 1, "{foreign} lines are not source records");
    eprintln!(
        "sigkill test: {} records, {} lines written ({} duplicates after the kill)",
        s.expected.len(),
        lines.len(),
        lines.len() - foreign - s.expected.len()
    );
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    ))
}

/// The value of the first series of `name` in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<u64> {
    page.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_counters_match_processing_and_readyz_flips_on_sigterm() {
    let s = setup("ops", 300, 50).await;
    let config = s.config("");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let (collector, posts) = otlp_collector();
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[ops]\nlisten = \"127.0.0.1:{port}\"\notlp_endpoint = \"{collector}\"\nexport_interval_seconds = 1\n"
    ));
    std::fs::write(&config, text).expect("write config");
    let stderr_path = s.tmp.path().join("stderr.txt");
    let mut child = s.spawn(&config, &stderr_path);
    let n = s.expected.len();
    s.wait_drained(&mut child, &stderr_path, |lines| lines.len() == n)
        .await;
    let messages = (s.files + 1) as u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let page = http_get(port, "/metrics").map(|p| p.1).unwrap_or_default();
        if metric(&page, "trailhose_messaging_messages_deleted_total") == Some(messages) {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "deletes never reached {messages}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        metric(&page, "trailhose_messaging_messages_received_total"),
        Some(messages),
        "{page}"
    );
    assert_eq!(
        metric(&page, "trailhose_messaging_test_events_total"),
        Some(1),
        "{page}"
    );
    assert_eq!(
        metric(&page, "trailhose_objects_delivered_total"),
        Some(s.files as u64),
        "{page}"
    );
    assert_eq!(
        metric(&page, "trailhose_source_records_total"),
        Some(n as u64),
        "{page}"
    );
    assert_eq!(
        metric(&page, "trailhose_pipeline_records_total"),
        Some(n as u64),
        "{page}"
    );
    assert_eq!(
        metric(&page, "trailhose_messaging_messages_dead_lettered_total"),
        Some(0),
        "{page}"
    );
    assert_eq!(
        metric(&page, "trailhose_lag_seconds_count"),
        Some(s.files as u64),
        "{page}"
    );
    assert!(
        page.contains("# TYPE trailhose_lag_seconds histogram"),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "trailhose_sink_records_total{{sink=\"records\"}} {n}"
        )),
        "{page}"
    );
    assert_eq!(http_get(port, "/healthz").map(|r| r.0), Some(200));
    assert_eq!(
        http_get(port, "/readyz").map(|r| r.0),
        Some(200),
        "ready while running"
    );

    signal(&child, libc::SIGTERM);
    let mut saw_not_ready = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match http_get(port, "/readyz") {
            Some((503, body)) => {
                assert!(body.contains("shutting down"), "{body}");
                saw_not_ready = true;
                break;
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            None => break,
        }
    }
    assert!(
        saw_not_ready,
        "/readyz never reported not-ready after SIGTERM"
    );
    let status = wait_exit(&mut child, Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    // Traces: a span per SQS message (with its id) and per object reached the collector.
    let posts = posts.lock().map(|p| p.clone()).unwrap_or_default();
    let traces: Vec<u8> = posts
        .iter()
        .filter(|(p, _)| p == "/v1/traces")
        .flat_map(|(_, b)| b.clone())
        .collect();
    let has = |needle: &[u8]| traces.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"sqs.message")
            && has(b"messaging.message.id")
            && has(b"object")
            && has(b"fetch_parse"),
        "{} trace bytes",
        traces.len()
    );
    let metrics: Vec<u8> = posts
        .iter()
        .filter(|(p, _)| p == "/v1/metrics")
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert!(
        metrics
            .windows(29)
            .any(|w| w == b"trailhose.messaging_messages_"),
        "OTLP metrics exported"
    );
}

type Posts = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A minimal OTLP/HTTP collector on a thread: records (path, body) of every POST.
fn otlp_collector() -> (String, Posts) {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let posts: Posts = Default::default();
    let p = posts.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut w = match sock.try_clone() {
                    Ok(w) => w,
                    Err(_) => return,
                };
                let mut r = std::io::BufReader::new(sock);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end().to_ascii_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(mut g) = p.lock() {
                        g.push((path, body));
                    }
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (format!("http://{addr}"), posts)
}
