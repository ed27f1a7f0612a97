//! The fault matrix: the worker with the CloudWatch Logs sink against moto's server (real SQS,
//! S3 and CloudWatch Logs, the real AWS SDK), CloudWatch Logs reached through the testkit's
//! fault proxy, which refuses, drops, throttles or moves the endpoint while the worker runs.
//!
//! Every scenario checks the delivery contract:
//! - no SQS message is deleted before its records were accepted (while CloudWatch Logs takes
//!   nothing, nothing is deleted and every message stays on the queue);
//! - no good message reaches a dead-letter queue — neither the worker's nor the queue's own
//!   redrive DLQ (maxReceiveCount 2, visibility 3 s: an outage longer than 6 s would push a
//!   message that is received again and again into it);
//! - nothing lands in the sink's dead-letter place but records CloudWatch Logs can never take;
//! - after recovery every record is in CloudWatch Logs, byte for byte, and the queue drains;
//! - the breaker opens while CloudWatch Logs is broken and closes about one probe after it is
//!   fixed.

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::value::RawValue;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use trailhose_config::cwl::CloudWatchLogsSinkConfig;
use trailhose_config::BucketConfig;
use trailhose_core::keys::KeyKind;
use trailhose_core::Limits;
use trailhose_pipeline::delivery::{DeliveryControl, FailureClass, LocalDeadLetters, OpenBreaker};
use trailhose_pipeline::emit::ChunkLimits;
use trailhose_pipeline::filter::CompiledFilter;
use trailhose_pipeline::{Pipeline, SinkSpec};
use trailhose_testkit::fault_proxy::{FaultProxy, Mode, Outcome, CWL_TARGET, PUT_LOG_EVENTS};
use trailhose_worker::heartbeat::Heartbeat;
use trailhose_worker::lifecycle::Policy;
use trailhose_worker::{
    AllowList, DeadLetterTarget, Worker, WorkerReport, WorkerSettings, WorkerStats,
};

const REGION: &str = "us-east-1";
/// The queue's visibility timeout and both receive limits (the worker's and the queue's
/// redrive policy): an outage longer than `MAX_RECEIVES × VISIBILITY` would dead-letter a
/// message that is received again instead of held.
const VISIBILITY: u32 = 3;
const MAX_RECEIVES: u32 = 2;
/// The sink's probe schedule while its breaker is open.
const PROBE_MS: u64 = 300;
const MAX_PROBE_MS: u64 = 1000;
/// How long recovery may take once the fault is gone: the longest probe wait, a request, and
/// room for a loaded machine.
const RECOVERY: Duration = Duration::from_millis(MAX_PROBE_MS * 2 + 3000);
const DAY_MS: i64 = 86_400_000;

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One CloudTrail log file to upload: its key, gzip bytes and record bytes.
struct LogFile {
    key: String,
    gz: Vec<u8>,
    records: Vec<Vec<u8>>,
}

#[derive(serde::Deserialize)]
struct Records<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<&'a RawValue>,
}

fn gunzip(gz: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_string(&mut text)
        .expect("gunzip");
    text
}

fn records_of(gz: &[u8]) -> Vec<Vec<u8>> {
    let text = gunzip(gz);
    let doc: Records<'_> = serde_json::from_str(&text).expect("log file JSON");
    doc.records
        .iter()
        .map(|r| r.get().as_bytes().to_vec())
        .collect()
}

/// `files` generated log files of `per_file` records whose events start at `start_ms`.
fn generate(dir: &Path, files: u32, per_file: u32, start_ms: i64, seed: u64) -> Vec<LogFile> {
    let opts = trailhose_gen::GenOptions {
        events: u64::from(files) * u64::from(per_file),
        accounts: 2,
        regions: 2,
        seed,
        events_per_file: per_file,
        start_time_ms: start_ms,
        large_record_ratio: 0.0,
        gzip_level: 1,
        ..Default::default()
    };
    let summary = trailhose_gen::generate(dir, &opts).expect("generate corpus");
    summary
        .files
        .iter()
        .map(|f| {
            let gz = std::fs::read(dir.join(&f.path)).expect("generated file");
            LogFile {
                key: f.key.clone(),
                records: records_of(&gz),
                gz,
            }
        })
        .collect()
}

/// A log file under `key` holding `a`'s and `b`'s records interleaved.
fn mixed(key: &str, a: &[Vec<u8>], b: &[Vec<u8>]) -> LogFile {
    let mut records = Vec::new();
    let (mut ia, mut ib) = (a.iter(), b.iter());
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => break,
            (x, y) => records.extend(x.into_iter().chain(y).cloned()),
        }
    }
    let mut json = b"{\"Records\":[".to_vec();
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(r);
    }
    json.extend_from_slice(b"]}");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&json).expect("gzip");
    LogFile {
        key: key.to_string(),
        gz: enc.finish().expect("gzip"),
        records,
    }
}

/// The AWS side of one scenario, all in the shared moto: a bucket notifying a queue whose
/// redrive policy sends a message to `redrive_dlq` at its third receive, a separate queue for
/// the worker's own dead letters, and the log files uploaded.
struct Fixture {
    sdk: SdkConfig,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    redrive_dlq: String,
    worker_dlq: String,
    bucket: String,
    /// Object messages (the test event moto sends first is not counted).
    messages: u64,
    /// Log groups of this scenario start with this.
    group_prefix: String,
    tmp: tempfile::TempDir,
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn")
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attrs: &[(QueueAttributeName, String)],
) -> String {
    let mut req = sqs.create_queue().queue_name(name);
    for (k, v) in attrs {
        req = req.attributes(k.clone(), v);
    }
    req.send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

impl Fixture {
    async fn new(tag: &str, files: impl FnOnce(&Path) -> Vec<LogFile>) -> (Fixture, Vec<LogFile>) {
        let sdk = trailhose_testkit::moto().sdk_config(REGION).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let s3 = trailhose_testkit::s3_client_for(&sdk);
        let name = unique(tag);
        let redrive_dlq = create_queue(&sqs, &format!("{name}-redrive"), &[]).await;
        let redrive_arn = queue_arn(&sqs, &redrive_dlq).await;
        let queue = create_queue(
            &sqs,
            &name,
            &[
                (
                    QueueAttributeName::VisibilityTimeout,
                    VISIBILITY.to_string(),
                ),
                (
                    QueueAttributeName::RedrivePolicy,
                    serde_json::json!({
                        "deadLetterTargetArn": redrive_arn,
                        "maxReceiveCount": MAX_RECEIVES.to_string(),
                    })
                    .to_string(),
                ),
            ],
        )
        .await;
        let worker_dlq = create_queue(&sqs, &format!("{name}-dl"), &[]).await;
        let arn = queue_arn(&sqs, &queue).await;
        let bucket = name.clone();
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        // moto sends an s3:TestEvent when the configuration is saved.
        s3.put_bucket_notification_configuration()
            .bucket(&bucket)
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
            .expect("bucket notification");
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = files(tmp.path());
        for f in &files {
            s3.put_object()
                .bucket(&bucket)
                .key(&f.key)
                .body(ByteStream::from(f.gz.clone()))
                .send()
                .await
                .expect("put object");
        }
        let fx = Fixture {
            sdk,
            sqs,
            queue,
            redrive_dlq,
            worker_dlq,
            bucket,
            messages: files.len() as u64,
            group_prefix: format!("/faults/{name}"),
            tmp,
        };
        (fx, files)
    }

    /// (visible, in flight)
    async fn counts(&self, url: &str) -> (u64, u64) {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        let get = |n: &QueueAttributeName| {
            attrs
                .get(n)
                .and_then(|v| v.parse().ok())
                .expect("count attribute")
        };
        (
            get(&QueueAttributeName::ApproximateNumberOfMessages),
            get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    fn sink_dead_letters(&self) -> PathBuf {
        self.tmp.path().join("cwl-dead-letter.ndjson")
    }

    fn settings(&self) -> WorkerSettings {
        WorkerSettings {
            queue_url: self.queue.clone(),
            receivers: 2,
            max_messages: 10,
            wait_time_seconds: 1,
            visibility_timeout_seconds: VISIBILITY,
            heartbeat: Heartbeat::new(
                Duration::from_secs(1),
                Duration::from_secs(u64::from(VISIBILITY)),
            ),
            policy: Policy {
                max_receive_count: MAX_RECEIVES,
                retry_visibility_seconds: 1,
            },
            max_objects_in_flight: 4,
            max_messages_in_flight: 0,
            shutdown_grace: Duration::from_secs(5),
            dedup_cache_size: 1000,
            kinds: vec![KeyKind::Log],
            limits: Limits::default(),
            chunking: ChunkLimits {
                max_records: 16,
                max_bytes: 1 << 20,
            },
            memory_budget_bytes: None,
        }
    }

    /// The CloudWatch Logs sink's config: groups under this scenario's prefix, the endpoint
    /// `endpoint` (the fault proxy), short linger and probes; `delivery` holds `key = value`
    /// lines for `[delivery]` that replace these defaults.
    fn sink_config(&self, endpoint: &str, top: &str, delivery: &str) -> CloudWatchLogsSinkConfig {
        let defaults = [
            ("linger_ms", "200".to_string()),
            ("backoff_ms", "50".to_string()),
            ("max_backoff_ms", "500".to_string()),
            ("probe_interval_ms", PROBE_MS.to_string()),
            ("max_probe_interval_ms", MAX_PROBE_MS.to_string()),
            ("request_timeout_ms", "5000".to_string()),
            ("connect_timeout_ms", "1000".to_string()),
            ("max_retry_duration_seconds", "600".to_string()),
        ];
        let named: Vec<&str> = delivery
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .collect();
        let mut section = String::new();
        for (k, v) in defaults.iter().filter(|(k, _)| !named.contains(k)) {
            section.push_str(&format!("{k} = {v}\n"));
        }
        section.push_str(delivery);
        let text = format!(
            r#"
name = "cwl"
region = "{REGION}"
endpoint_url = "{endpoint}"
log_group = "{prefix}/{{account}}"
dead_letter = "{dl}"
{top}

[delivery]
{section}
"#,
            prefix = self.group_prefix,
            dl = self.sink_dead_letters().display(),
        );
        toml::from_str(&text).expect("valid sink config")
    }

    /// Starts the worker with the CloudWatch Logs sink talking to `endpoint`.
    async fn start(&self, endpoint: &str, delivery: &str) -> Running {
        self.start_with(endpoint, "", delivery).await
    }

    /// [`start`](Self::start) with top-level sink keys (`top`) as well.
    async fn start_with(&self, endpoint: &str, top: &str, delivery: &str) -> Running {
        let cfg = self.sink_config(endpoint, top, delivery);
        let problems = cfg.problems();
        assert!(problems.is_empty(), "{problems:?}");
        let client =
            trailhose_cwl::client_from(&trailhose_testkit::sdk_config_at(endpoint, REGION).await);
        let sink = trailhose_cwl::sink::sink(
            cfg,
            client,
            LocalDeadLetters::new(&self.sink_dead_letters()),
            trailhose_cwl::sink::system_now_ms,
        )
        .expect("sink");
        let pipeline = Pipeline::start(
            vec![SinkSpec {
                sink: Box::new(sink),
                filter: CompiledFilter::pass_all(),
            }],
            4,
        );
        let control = pipeline.control();
        let (transitions, tracker) = track(control.clone());
        let worker = Worker::new(
            self.settings(),
            &self.sdk,
            AllowList::new(&[BucketConfig {
                name: self.bucket.clone(),
                prefixes: vec![],
                role_arn: None,
                region: None,
            }]),
            DeadLetterTarget::Sqs {
                client: self.sqs.clone(),
                queue_url: self.worker_dlq.clone(),
            },
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let stats = worker.stats();
        let handle = tokio::spawn(worker.run(pipeline, async move {
            let _ = stopped.await;
        }));
        Running {
            stop,
            handle,
            stats,
            control,
            transitions,
            tracker,
        }
    }

    /// Every message CloudWatch Logs holds under this scenario's groups, at `endpoint` (read
    /// directly from moto, not through the proxy), sorted.
    async fn cwl_records(&self, endpoint: &str) -> Vec<Vec<u8>> {
        trailhose_testkit::cloudwatch_messages(endpoint, REGION, &self.group_prefix).await
    }

    /// Every message of a queue (made invisible for a minute).
    async fn drain(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut out = Vec::new();
        loop {
            let msgs = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .visibility_timeout(60)
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            out.extend(msgs);
        }
    }

    /// The records in the sink's dead-letter place, with their labels.
    fn dead_lettered(&self) -> Vec<(String, Vec<u8>)> {
        #[derive(serde::Deserialize)]
        struct Line<'a> {
            dead_letter: serde_json::Value,
            #[serde(borrow)]
            record: &'a RawValue,
        }
        let text = match std::fs::read_to_string(self.sink_dead_letters()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("dead-letter file: {e}"),
        };
        let mut out: Vec<(String, Vec<u8>)> = text
            .lines()
            .map(|l| {
                let line: Line<'_> = serde_json::from_str(l).expect("dead-letter line");
                (
                    line.dead_letter["label"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    line.record.get().as_bytes().to_vec(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<WorkerReport>,
    stats: Arc<WorkerStats>,
    control: DeliveryControl,
    transitions: Transitions,
    tracker: tokio::task::JoinHandle<()>,
}

/// Every change of "some breaker is open", with its time.
type Transitions = Arc<Mutex<Vec<(Instant, bool)>>>;

/// Records when the pipeline's breakers open and close (as the board announces changes).
fn track(control: DeliveryControl) -> (Transitions, tokio::task::JoinHandle<()>) {
    let log: Transitions = Arc::default();
    let out = log.clone();
    let handle = tokio::spawn(async move {
        let mut changes = control.subscribe();
        let mut last = false;
        loop {
            let open = !control.open_breakers().is_empty();
            if open != last {
                out.lock()
                    .expect("transitions")
                    .push((Instant::now(), open));
                last = open;
            }
            // A periodic look as well, in case a change is coalesced away.
            let _ = tokio::time::timeout(Duration::from_millis(50), changes.changed()).await;
        }
    });
    (log, handle)
}

fn object_deletes(s: &WorkerStats) -> u64 {
    s.messages_deleted
        .load(Ordering::Relaxed)
        .saturating_sub(s.test_events.load(Ordering::Relaxed))
}

impl Running {
    async fn stop(self) -> WorkerReport {
        self.tracker.abort();
        let _ = self.stop.send(());
        self.handle.await.expect("worker task")
    }

    /// How often a breaker opened after `t`.
    fn opened_since(&self, t: Instant) -> usize {
        self.transitions
            .lock()
            .expect("transitions")
            .iter()
            .filter(|(at, open)| *open && *at > t)
            .count()
    }

    /// Holds a fault for `dur`, checking every quarter second that nothing was deleted and
    /// that every message is still on the queue (none went to the redrive DLQ; moto's test
    /// event may be there too until the worker deletes it). Returns the open breaker seen
    /// last (the breaker must open within the fault).
    async fn hold(&self, fx: &Fixture, dur: Duration, what: &str) -> Option<OpenBreaker> {
        let until = Instant::now() + dur;
        let mut seen = None;
        while Instant::now() < until {
            assert_eq!(
                object_deletes(&self.stats),
                0,
                "{what}: a message was deleted while CloudWatch Logs took nothing: {:#?}",
                self.stats.snapshot()
            );
            let (visible, in_flight) = fx.counts(&fx.queue).await;
            if visible + in_flight < fx.messages {
                panic!(
                    "{what}: every message stays on the queue, yet only {} of {} are there \
                     (visible {visible}, in flight {in_flight}); (visible, in flight) in its \
                     redrive DLQ {:?}, in the worker's DLQ {:?}\n{:#?}",
                    visible + in_flight,
                    fx.messages,
                    fx.counts(&fx.redrive_dlq).await,
                    fx.counts(&fx.worker_dlq).await,
                    self.stats.snapshot()
                );
            }
            if let Some(open) = self.control.open_breakers().into_iter().next() {
                seen = Some(open);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        seen
    }

    /// Waits for every breaker to close, at most [`RECOVERY`] after the fault was removed;
    /// returns when it closed.
    async fn recovered(&self, what: &str) -> Instant {
        let fixed = Instant::now();
        tokio::time::timeout(RECOVERY, self.control.wait_until_closed())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{what}: breaker still open {RECOVERY:?} after the fault was removed: {:?}",
                    self.control.open_breakers()
                )
            });
        eprintln!("{what}: breaker closed {:?} after the fix", fixed.elapsed());
        Instant::now()
    }

    /// Waits until every object message (and the test event) is deleted.
    async fn drained(&self, fx: &Fixture, limit: Duration) {
        let deadline = Instant::now() + limit;
        while object_deletes(&self.stats) < fx.messages {
            if Instant::now() >= deadline {
                panic!(
                    "queue not drained within {limit:?}: {} of {} messages deleted; (visible, \
                     in flight) on the queue {:?}, in its redrive DLQ {:?}, in the worker's \
                     DLQ {:?}; open breakers {:?}\n{:#?}",
                    object_deletes(&self.stats),
                    fx.messages,
                    fx.counts(&fx.queue).await,
                    fx.counts(&fx.redrive_dlq).await,
                    fx.counts(&fx.worker_dlq).await,
                    self.control.open_breakers(),
                    self.stats.snapshot(),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The end state every scenario shares: queue drained, both DLQs empty, no message
/// dead-lettered, `expected` (sorted) exactly in CloudWatch Logs at `cwl_endpoint`.
async fn assert_delivered(
    fx: &Fixture,
    report: &WorkerReport,
    cwl_endpoint: &str,
    expected: &[Vec<u8>],
) {
    let s = &report.stats;
    assert_eq!(fx.counts(&fx.queue).await, (0, 0), "queue drained");
    assert_eq!(s.messages_dead_lettered, 0, "{s:#?}");
    assert_eq!(s.objects_delivered, fx.messages, "{s:#?}");
    assert!(
        fx.drain(&fx.worker_dlq).await.is_empty(),
        "nothing in the worker's dead-letter queue"
    );
    assert!(
        fx.drain(&fx.redrive_dlq).await.is_empty(),
        "nothing redriven by the queue's maxReceiveCount"
    );
    let got = fx.cwl_records(cwl_endpoint).await;
    assert_eq!(
        got.len(),
        expected.len(),
        "every record in CloudWatch Logs exactly once"
    );
    assert!(got == expected, "records arrive byte-identical");
}

fn sorted_records(files: &[LogFile]) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = files.iter().flat_map(|f| f.records.clone()).collect();
    all.sort();
    all
}

fn recent(dir: &Path, seed: u64) -> Vec<LogFile> {
    generate(dir, 8, 25, now_ms() - 3_600_000, seed)
}

/// (a) CloudWatch Logs refuses every call (AccessDeniedException: the role lost its logs:*
/// permissions) for longer than `MAX_RECEIVES × VISIBILITY`, then IAM is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_longer_than_the_receive_budget_then_fixed() {
    let m = trailhose_testkit::moto();
    let (fx, files) = Fixture::new("denied", |d| recent(d, 101)).await;
    let expected = sorted_records(&files);
    let proxy = FaultProxy::start(&m.endpoint).await.expect("proxy");
    proxy.set_mode(Mode::access_denied(CWL_TARGET)).await;
    let run = fx.start(&proxy.endpoint(), "").await;
    let outage = Duration::from_secs(u64::from(MAX_RECEIVES * VISIBILITY) + 6);
    let open = run
        .hold(&fx, outage, "access denied")
        .await
        .expect("the breaker opened while access was denied");
    assert_eq!(open.class, FailureClass::SinkRefused, "{open:?}");
    assert!(open.reason.contains("AccessDeniedException"), "{open:?}");
    assert!(!run.control.open_breakers().is_empty(), "still open");
    assert!(proxy.counts().get(Outcome::Refused, CWL_TARGET) >= 1);
    assert_eq!(
        proxy.counts().get(Outcome::Forwarded, CWL_TARGET),
        0,
        "nothing reached CloudWatch Logs"
    );

    proxy.set_mode(Mode::Pass).await;
    let closed = run.recovered("access denied").await;
    run.drained(&fx, Duration::from_secs(60)).await;
    let reopened = run.opened_since(closed);
    let report = run.stop().await;
    assert_delivered(&fx, &report, &m.endpoint, &expected).await;
    assert!(fx.dead_lettered().is_empty(), "no record dead-lettered");
    assert_eq!(
        report.stats.messages_received,
        fx.messages + 1,
        "held messages were never received again: {:#?}",
        report.stats
    );
    assert_eq!(report.stats.messages_retried, 0, "{:#?}", report.stats);
    assert_eq!(
        reopened, 0,
        "the breaker stays closed once the fault is gone (checked last, so everything else is \
         checked even while it is wrong)"
    );
}

/// (b) The CloudWatch Logs endpoint is unreachable (connections refused and reset) for 15 s,
/// then back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_then_back() {
    let m = trailhose_testkit::moto();
    let (fx, files) = Fixture::new("down", |d| recent(d, 102)).await;
    let expected = sorted_records(&files);
    let proxy = FaultProxy::start(&m.endpoint).await.expect("proxy");
    proxy.set_mode(Mode::Down).await;
    let run = fx.start(&proxy.endpoint(), "").await;
    let open = run
        .hold(&fx, Duration::from_secs(15), "endpoint down")
        .await
        .expect("the breaker opened while the endpoint was down");
    assert_eq!(open.class, FailureClass::Transient, "{open:?}");

    proxy.set_mode(Mode::Pass).await;
    let closed = run.recovered("endpoint down").await;
    run.drained(&fx, Duration::from_secs(60)).await;
    let reopened = run.opened_since(closed);
    let report = run.stop().await;
    assert_delivered(&fx, &report, &m.endpoint, &expected).await;
    assert!(fx.dead_lettered().is_empty(), "no record dead-lettered");
    assert_eq!(
        report.stats.messages_received,
        fx.messages + 1,
        "held messages were never received again: {:#?}",
        report.stats
    );
    assert_eq!(
        reopened, 0,
        "the breaker stays closed once the fault is gone (checked last, so everything else is \
         checked even while it is wrong)"
    );
}

/// (c) 30 % of PutLogEvents calls throttled throughout: everything arrives, nothing is
/// dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_throughout() {
    let m = trailhose_testkit::moto();
    let (fx, files) = Fixture::new("throttle", |d| {
        generate(d, 16, 25, now_ms() - 3_600_000, 103)
    })
    .await;
    let expected = sorted_records(&files);
    let proxy = FaultProxy::start(&m.endpoint).await.expect("proxy");
    proxy.set_mode(Mode::throttle(PUT_LOG_EVENTS, 0.3)).await;
    // Small batches: many PutLogEvents calls, so the throttled fraction bites often.
    let run = fx.start(&proxy.endpoint(), "max_events = 10").await;
    run.drained(&fx, Duration::from_secs(90)).await;
    run.recovered("throttling").await;
    let report = run.stop().await;
    assert_delivered(&fx, &report, &m.endpoint, &expected).await;
    assert!(fx.dead_lettered().is_empty(), "no record dead-lettered");
    let counts = proxy.counts();
    assert!(
        counts.get(Outcome::Throttled, PUT_LOG_EVENTS) >= 1,
        "the fault was exercised: {counts:#?}"
    );
}

/// (d) Records older than 14 days mixed into the files: exactly those go to the sink's
/// dead-letter place, the rest to CloudWatch Logs, and every message is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_record_refusals_go_to_the_dead_letter_place_alone() {
    let m = trailhose_testkit::moto();
    let mut old = Vec::new();
    let (fx, files) = Fixture::new("too-old", |d| {
        let fresh = generate(&d.join("fresh"), 4, 25, now_ms() - 3_600_000, 104);
        let stale = generate(&d.join("stale"), 4, 10, now_ms() - 20 * DAY_MS, 105);
        old = sorted_records(&stale);
        let mut files: Vec<LogFile> = fresh
            .iter()
            .zip(&stale)
            .map(|(f, s)| mixed(&f.key, &f.records, &s.records))
            .collect();
        // One file of fresh records only.
        files.push(generate(&d.join("plain"), 1, 20, now_ms() - 3_600_000, 106).remove(0));
        files
    })
    .await;
    let all = sorted_records(&files);
    let expected: Vec<Vec<u8>> = all
        .iter()
        .filter(|r| old.binary_search(r).is_err())
        .cloned()
        .collect();
    assert_eq!(expected.len() + old.len(), all.len());
    let proxy = FaultProxy::start(&m.endpoint).await.expect("proxy");
    let run = fx.start(&proxy.endpoint(), "").await;
    run.drained(&fx, Duration::from_secs(60)).await;
    assert!(
        run.control.open_breakers().is_empty(),
        "per-record refusals do not open the breaker"
    );
    let report = run.stop().await;
    assert_delivered(&fx, &report, &m.endpoint, &expected).await;
    let dead = fx.dead_lettered();
    assert!(
        dead.iter().all(|(label, _)| label == "too_old"),
        "{:?}",
        dead.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    let dead_records: Vec<Vec<u8>> = dead.into_iter().map(|d| d.1).collect();
    let mut dead_sorted = dead_records.clone();
    dead_sorted.sort();
    assert_eq!(dead_sorted.len(), old.len(), "each old record once");
    assert!(
        dead_sorted == old,
        "exactly the old records, byte-identical"
    );
}

/// (e) The shape of the outage check: AccessDenied for a while (PutLogEvents only: the log
/// groups and streams are created on the first moto and cached by the sink), then the endpoint
/// unreachable, then CloudWatch Logs answers from a second, empty moto (the endpoint moved;
/// the log groups created on the first one are not there). Everything ends up in the second
/// moto and the queue drains; the breaker closes about one probe after the move and stays
/// closed (a log stream per event name makes many destinations the sink has cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_then_down_then_a_second_moto() {
    let m = trailhose_testkit::moto();
    let second = trailhose_testkit::Moto::start();
    let (fx, files) = Fixture::new("moved", |d| recent(d, 107)).await;
    let expected = sorted_records(&files);
    let proxy = FaultProxy::start(&m.endpoint).await.expect("proxy");
    proxy.set_mode(Mode::access_denied(PUT_LOG_EVENTS)).await;
    // A log stream per event name: many destinations, all created on the first moto.
    let run = fx
        .start_with(&proxy.endpoint(), "log_stream = \"{eventName}\"", "")
        .await;
    let open = run
        .hold(&fx, Duration::from_secs(8), "access denied")
        .await
        .expect("the breaker opened while access was denied");
    assert_eq!(open.class, FailureClass::SinkRefused, "{open:?}");
    proxy.set_mode(Mode::Down).await;
    run.hold(&fx, Duration::from_secs(6), "endpoint down")
        .await
        .expect("the breaker stayed open while the endpoint was down");
    proxy
        .set_mode(Mode::Upstream(second.endpoint.clone()))
        .await;
    let closed = run.recovered("second moto").await;
    run.drained(&fx, Duration::from_secs(60)).await;
    let reopened = run.opened_since(closed);
    let report = run.stop().await;
    assert_delivered(&fx, &report, &second.endpoint, &expected).await;
    assert!(fx.dead_lettered().is_empty(), "no record dead-lettered");
    assert!(
        fx.cwl_records(&m.endpoint).await.is_empty(),
        "nothing was accepted by the first moto"
    );
    assert_eq!(
        report.stats.messages_received,
        fx.messages + 1,
        "held messages were never received again: {:#?}",
        report.stats
    );
    assert_eq!(
        reopened, 0,
        "the breaker stays closed once the fault is gone (checked last, so everything else is \
         checked even while it is wrong)"
    );
}

/// (f) CloudWatch Logs refuses every call for longer than the sink's `max_retry_duration`:
/// behind the open breaker the held deliveries keep waiting (they are its probes; releasing
/// them would have them received again and again, into the queue's redrive DLQ), the worker
/// stays paused, and once access is fixed everything is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_longer_than_max_retry_duration_then_fixed() {
    let m = trailhose_testkit::moto();
    let (fx, files) = Fixture::new("denied-long", |d| recent(d, 108)).await;
    let expected = sorted_records(&files);
    let proxy = FaultProxy::start(&m.endpoint).await.expect("proxy");
    proxy.set_mode(Mode::access_denied(CWL_TARGET)).await;
    let run = fx
        .start(&proxy.endpoint(), "max_retry_duration_seconds = 2")
        .await;
    let open = run
        .hold(
            &fx,
            Duration::from_secs(10),
            "access denied past the retry budget",
        )
        .await
        .expect("the breaker opened while access was denied");
    assert_eq!(open.class, FailureClass::SinkRefused, "{open:?}");
    assert_eq!(
        run.stats.messages_retried.load(Ordering::Relaxed),
        0,
        "held deliveries wait for the breaker, past max_retry_duration: {:#?}",
        run.stats.snapshot()
    );

    proxy.set_mode(Mode::Pass).await;
    let fixed = Instant::now();
    let calls_before = proxy.counts().total(CWL_TARGET);
    if tokio::time::timeout(RECOVERY, run.control.wait_until_closed())
        .await
        .is_err()
    {
        panic!(
            "breaker still open {RECOVERY:?} after access was fixed, with {} CloudWatch Logs \
             calls since (nothing left to probe with while receiving is paused): {:?}\n{:#?}",
            proxy.counts().total(CWL_TARGET) - calls_before,
            run.control.open_breakers(),
            run.stats.snapshot()
        );
    }
    let closed = Instant::now();
    eprintln!(
        "access denied past the retry budget: breaker closed {:?} after the fix",
        closed - fixed
    );
    run.drained(&fx, Duration::from_secs(60)).await;
    let reopened = run.opened_since(closed);
    let report = run.stop().await;
    assert_delivered(&fx, &report, &m.endpoint, &expected).await;
    assert!(fx.dead_lettered().is_empty(), "no record dead-lettered");
    assert_eq!(
        reopened, 0,
        "the breaker stays closed once the fault is gone (checked last, so everything else is \
         checked even while it is wrong)"
    );
}
