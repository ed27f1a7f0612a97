//! `trailhose run` as a process, with an SQS source in moto and a CloudWatch Logs sink whose
//! endpoint is the testkit's fault proxy refusing PutLogEvents (AccessDeniedException): a
//! SIGTERM during the stall exits 0 within the grace, deletes nothing, and releases the
//! messages so the next worker (with access fixed) ships every record.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use trailhose_testkit::fault_proxy::{FaultProxy, Mode, Outcome, PUT_LOG_EVENTS};

const REGION: &str = "us-east-1";
const GRACE_SECONDS: u64 = 5;

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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
        if started.elapsed() >= limit {
            let _ = child.kill();
            panic!("did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (visible, in flight)
async fn counts(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("attributes")
        .attributes
        .unwrap_or_default();
    let get = |k: QueueAttributeName| {
        attrs
            .get(&k)
            .and_then(|v| v.parse().ok())
            .expect("count attribute")
    };
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Every message in the log groups under `prefix` at `endpoint`, sorted.
async fn cwl_records(endpoint: &str, prefix: &str) -> Vec<Vec<u8>> {
    trailhose_testkit::cloudwatch_messages(endpoint, REGION, prefix).await
}

fn spawn(config: &Path, stderr: &Path) -> std::process::Child {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_cloudwatch_refuses_exits_in_grace_and_releases_everything() {
    let moto = trailhose_testkit::moto();
    let sdk = moto.sdk_config(REGION).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let s3 = trailhose_testkit::s3_client_for(&sdk);
    let name = format!("cli-stall-{}", std::process::id());
    // A long visibility timeout: messages visible again right after the exit were released,
    // not timed out.
    let queue = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, "60")
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("queue url");
    s3.create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("bucket");
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let summary = trailhose_gen::generate(
        &src,
        &trailhose_gen::GenOptions {
            events: 120,
            events_per_file: 20,
            accounts: 2,
            regions: 2,
            start_time_ms: now_ms() - 3_600_000,
            large_record_ratio: 0.0,
            gzip_level: 1,
            ..Default::default()
        },
    )
    .expect("corpus");
    let mut expected = Vec::new();
    // Notifications sent by hand (no s3:TestEvent), so every message names an object.
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
        let event = serde_json::json!({"Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": REGION,
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": name}, "object": {"key": f.key, "size": 1}},
        }]});
        sqs.send_message()
            .queue_url(&queue)
            .message_body(event.to_string())
            .send()
            .await
            .expect("notify");
    }
    expected.sort();
    let messages = summary.files.len() as u64;

    let proxy = FaultProxy::start(&moto.endpoint).await.expect("proxy");
    proxy.set_mode(Mode::access_denied(PUT_LOG_EVENTS)).await;
    let group = format!("/cli-stall/{name}");
    let config = tmp.path().join("stall.toml");
    let sink_dl = tmp.path().join("cwl-dead-letter.ndjson");
    let file_dl = tmp.path().join("dead-letter.ndjson");
    std::fs::write(
        &config,
        format!(
            r#"
[source]
type = "sqs"
queue_url = "{queue}"
region = "{REGION}"
endpoint_url = "{endpoint}"
wait_time_seconds = 1
visibility_timeout_seconds = 60
shutdown_grace_seconds = {GRACE_SECONDS}
max_objects_in_flight = 4
[[source.buckets]]
name = "{name}"

[dead_letter]
path = "{file_dl}"

[[sinks]]
type = "cloudwatch_logs"
name = "cwl"
region = "{REGION}"
endpoint_url = "{proxy}"
log_group = "{group}/{{account}}"
dead_letter = "{sink_dl}"

[sinks.delivery]
linger_ms = 200
probe_interval_ms = 300
max_probe_interval_ms = 1000
max_retry_duration_seconds = 600
"#,
            endpoint = moto.endpoint,
            proxy = proxy.endpoint(),
            file_dl = file_dl.display(),
            sink_dl = sink_dl.display(),
        ),
    )
    .expect("config");

    let stderr_path = tmp.path().join("stderr-1.txt");
    let mut child = spawn(&config, &stderr_path);
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    // Stalled: PutLogEvents refused, the messages the worker holds are in flight.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let refused = proxy.counts().get(Outcome::Refused, PUT_LOG_EVENTS);
        let (_, in_flight) = counts(&sqs, &queue).await;
        if refused >= 2 && in_flight >= 1 {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("worker exited early ({status}): {}", stderr());
        }
        assert!(
            Instant::now() < deadline,
            "the worker never stalled on the refusal: {}",
            stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Held for a while behind the open breaker, then asked to stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(child.try_wait().expect("wait"), None, "{}", stderr());
    signal(&child, libc::SIGTERM);
    let stopping = Instant::now();
    let status = wait_exit(&mut child, Duration::from_secs(GRACE_SECONDS + 2)).await;
    eprintln!("exited {:?} after SIGTERM", stopping.elapsed());
    let text = stderr();
    // The exit status is checked last, so every other property is checked even while it is
    // wrong.
    let first_exit = (status, text.clone());
    assert!(
        text.contains(&format!(
            "sqs messages: {messages} received, 0 deleted, 0 dead-lettered, {messages} released"
        )),
        "{text}"
    );
    assert_eq!(
        counts(&sqs, &queue).await,
        (messages, 0),
        "every message visible again at once (released, not timed out): {text}"
    );
    assert_eq!(proxy.counts().get(Outcome::Forwarded, PUT_LOG_EVENTS), 0);
    assert!(!sink_dl.exists(), "no record dead-lettered by the sink");
    assert!(!file_dl.exists(), "no message dead-lettered: {text}");
    assert!(cwl_records(&moto.endpoint, &group).await.is_empty());

    // The next worker, with access fixed, ships every record.
    proxy.set_mode(Mode::Pass).await;
    let stderr_path_2 = tmp.path().join("stderr-2.txt");
    let mut next = spawn(&config, &stderr_path_2);
    let stderr_2 = || std::fs::read_to_string(&stderr_path_2).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts(&sqs, &queue).await != (0, 0) {
        if let Ok(Some(status)) = next.try_wait() {
            panic!("second worker exited early ({status}): {}", stderr_2());
        }
        assert!(
            Instant::now() < deadline,
            "queue not drained: {}",
            stderr_2()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    signal(&next, libc::SIGTERM);
    let status = wait_exit(&mut next, Duration::from_secs(GRACE_SECONDS + 5)).await;
    let text = stderr_2();
    assert!(status.success(), "{status}: {text}");
    assert!(
        text.contains(&format!(
            "sqs messages: {messages} received, {messages} deleted, 0 dead-lettered"
        )),
        "{text}"
    );
    let got = cwl_records(&moto.endpoint, &group).await;
    assert_eq!(got.len(), expected.len(), "every record once");
    assert!(got == expected, "records arrive byte-identical");

    let (status, text) = first_exit;
    assert!(
        status.success(),
        "a SIGTERM during a sink stall is a clean shutdown (every message released, nothing \
         lost), yet the first worker exited with {status}: {text}"
    );
}
