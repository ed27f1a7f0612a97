//! The worker end to end against moto's server with the real AWS SDK: bucket notifications to
//! SQS (and through SNS), generated CloudTrail files, dead letters in an SQS DLQ, duplicates,
//! heartbeats and graceful shutdown.

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Event, NotificationConfiguration,
    QueueConfiguration, TopicConfiguration,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::value::RawValue;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use trailhose_config::BucketConfig;
use trailhose_core::keys::KeyKind;
use trailhose_core::Limits;
use trailhose_gen::{GenOptions, GenSummary};
use trailhose_pipeline::emit::ChunkLimits;
use trailhose_pipeline::filter::CompiledFilter;
use trailhose_pipeline::sink::{Delivery, Sink, SinkFuture, SinkReport};
use trailhose_pipeline::sinks::ndjson::{NdjsonSink, Shape, Target};
use trailhose_pipeline::{Pipeline, SinkSpec};
use trailhose_worker::deadletter::attr;
use trailhose_worker::heartbeat::Heartbeat;
use trailhose_worker::lifecycle::Policy;
use trailhose_worker::{
    AllowList, DeadLetterTarget, Worker, WorkerReport, WorkerSettings, WorkerStats,
};

const REGION: &str = "us-east-1";

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

struct Aws {
    sdk: SdkConfig,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
}

async fn aws() -> Aws {
    let sdk = trailhose_testkit::moto().sdk_config(REGION).await;
    let s3 = trailhose_testkit::s3_client_for(&sdk);
    Aws {
        sqs: aws_sdk_sqs::Client::new(&sdk),
        s3,
        sdk,
    }
}

impl Aws {
    async fn queue(&self, prefix: &str) -> (String, String) {
        let url = self
            .sqs
            .create_queue()
            .queue_name(unique(prefix))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("queue arn");
        (url, arn)
    }

    async fn bucket(&self, prefix: &str, region: Option<&str>) -> String {
        let name = unique(prefix);
        let mut req = self.s3.create_bucket().bucket(&name);
        if let Some(r) = region {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(r))
                    .build(),
            );
        }
        req.send().await.expect("create bucket");
        name
    }

    async fn notify_queue(&self, bucket: &str, queue_arn: &str) {
        let qc = QueueConfiguration::builder()
            .queue_arn(queue_arn)
            .events(Event::S3ObjectCreated)
            .build()
            .expect("queue configuration");
        self.s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(qc)
                    .build(),
            )
            .send()
            .await
            .expect("bucket notification");
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("put object");
    }

    async fn upload_corpus(&self, bucket: &str, dir: &Path, summary: &GenSummary) {
        for f in &summary.files {
            let bytes = std::fs::read(dir.join(&f.path)).expect("generated file");
            self.put(bucket, &f.key, bytes).await;
        }
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

    /// Every message of a queue (made invisible for a minute), with its message attributes.
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
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
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
}

fn corpus(dir: &Path, events: u64, seed: u64) -> GenSummary {
    let opts = GenOptions {
        events,
        accounts: 2,
        regions: 2,
        seed,
        events_per_file: 40,
        gzip_level: 1,
        ..Default::default()
    };
    trailhose_gen::generate(dir, &opts).expect("generate corpus")
}

/// One log file of `events` records.
fn one_file(dir: &Path, events: u64, seed: u64) -> GenSummary {
    let opts = GenOptions {
        events,
        accounts: 1,
        regions: 1,
        seed,
        events_per_file: u32::try_from(events).expect("small"),
        gzip_level: 1,
        ..Default::default()
    };
    let s = trailhose_gen::generate(dir, &opts).expect("generate corpus");
    assert_eq!(s.files.len(), 1);
    s
}

#[derive(serde::Deserialize)]
struct LogFile<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<&'a RawValue>,
}

/// The exact bytes of every record of the generated files, read with serde_json (independent of
/// the worker's own splitter).
fn source_records(dir: &Path, summary: &GenSummary) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in &summary.files {
        let gz = std::fs::read(dir.join(&f.path)).expect("generated file");
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .expect("gunzip");
        let doc: LogFile<'_> = serde_json::from_str(&text).expect("log file JSON");
        out.extend(doc.records.iter().map(|r| r.get().as_bytes().to_vec()));
    }
    out.sort();
    out
}

fn settings(queue_url: &str) -> WorkerSettings {
    WorkerSettings {
        queue_url: queue_url.to_owned(),
        receivers: 2,
        max_messages: 10,
        wait_time_seconds: 1,
        visibility_timeout_seconds: 30,
        heartbeat: Heartbeat::new(Duration::from_secs(10), Duration::from_secs(30)),
        policy: Policy {
            max_receive_count: 5,
            retry_visibility_seconds: 1,
        },
        max_objects_in_flight: 4,
        max_messages_in_flight: 0,
        shutdown_grace: Duration::from_secs(5),
        dedup_cache_size: 1000,
        kinds: vec![KeyKind::Log, KeyKind::Insight],
        limits: Limits::default(),
        chunking: ChunkLimits {
            max_records: 16,
            max_bytes: 1 << 20,
        },
        memory_budget_bytes: None,
    }
}

fn allow(buckets: &[&str]) -> AllowList {
    AllowList::new(
        &buckets
            .iter()
            .map(|b| BucketConfig {
                name: (*b).to_owned(),
                prefixes: vec![],
                role_arn: None,
                region: None,
            })
            .collect::<Vec<_>>(),
    )
}

/// Collects record bytes; optionally holds every delivery until the gate opens.
struct Collect {
    out: Arc<Mutex<Vec<Vec<u8>>>>,
    gate: Option<watch::Receiver<bool>>,
}

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }

    fn run(self: Box<Self>, mut rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        let Collect { out, mut gate } = *self;
        Box::pin(async move {
            let mut report = SinkReport {
                name: "collect".into(),
                ..Default::default()
            };
            while let Some(d) = rx.recv().await {
                if let Some(g) = gate.as_mut() {
                    let _ = g.wait_for(|open| *open).await;
                }
                let mut out = out.lock().expect("collector lock");
                for r in d.records() {
                    out.push(d.chunk.bytes_of(r).to_vec());
                    report.records += 1;
                }
                d.token.ack();
            }
            report
        })
    }
}

fn collecting(
    capacity: usize,
    gate: Option<watch::Receiver<bool>>,
) -> (Pipeline, Arc<Mutex<Vec<Vec<u8>>>>) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink: Box::new(Collect {
                out: out.clone(),
                gate,
            }),
            filter: CompiledFilter::pass_all(),
        }],
        capacity,
    );
    (pipeline, out)
}

struct Running {
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<WorkerReport>,
    stats: Arc<WorkerStats>,
}

fn start(worker: Worker, pipeline: Pipeline) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let stats = worker.stats();
    let handle = tokio::spawn(worker.run(pipeline, async move {
        let _ = stopped.await;
    }));
    Running {
        stop,
        handle,
        stats,
    }
}

impl Running {
    /// Polls `done` every 200 ms until it holds (or panics after `limit`).
    async fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&WorkerStats) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !done(&self.stats) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:#?}",
                self.stats.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn stop(self) -> WorkerReport {
        let _ = self.stop.send(());
        self.handle.await.expect("worker task")
    }
}

fn deleted(s: &WorkerStats) -> u64 {
    s.messages_deleted.load(Ordering::Relaxed)
}

fn read_ndjson(dir: &Path) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).expect("sink dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("ndjson file");
        lines.extend(
            bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ships_every_record_once_and_dead_letters_what_it_cannot_read() {
    let aws = aws().await;
    let (queue, queue_arn) = aws.queue("main").await;
    let (dlq, _) = aws.queue("main-dlq").await;
    let bucket = aws.bucket("trail", None).await;
    // Saving the configuration makes moto send an s3:TestEvent first.
    aws.notify_queue(&bucket, &queue_arn).await;

    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let summary = corpus(&src, 400, 7);
    let expected = source_records(&src, &summary);
    aws.upload_corpus(&bucket, &src, &summary).await;
    // A corrupt gzip under a valid log key: dead-lettered with the reason.
    aws.put(
        &bucket,
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/111122223333_CloudTrail_us-east-1_20261101T0100Z_corruptcorrupt01.json.gz",
        vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3],
    )
    .await;
    // A digest: skipped by the key filter, counted, deleted.
    aws.put(
        &bucket,
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/01/111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20261101T000512Z.json.gz",
        b"{}".to_vec(),
    )
    .await;
    // A garbage body and a notification for a bucket outside the allow-list.
    for body in [
        "this is not a notification".to_owned(),
        format!(
            r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"not-allowed-bucket"}},"object":{{"key":"{}","size":10}}}}}}]}}"#,
            summary.files[0].key
        ),
    ] {
        aws.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }
    let messages = summary.files.len() as u64 + 5;

    let out_dir = tmp.path().join("out");
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink: Box::new(NdjsonSink {
                name: "files".into(),
                target: Target::Dir {
                    dir: out_dir.clone(),
                    prefix: "records".into(),
                    max_file_bytes: 1 << 20,
                    fsync: false,
                },
                shape: Shape::Raw,
            }),
            filter: CompiledFilter::pass_all(),
        }],
        4,
    );
    let worker = Worker::new(
        settings(&queue),
        &aws.sdk,
        allow(&[&bucket]),
        DeadLetterTarget::Sqs {
            client: aws.sqs.clone(),
            queue_url: dlq.clone(),
        },
    );
    let running = start(worker, pipeline);
    running
        .wait_until(Duration::from_secs(40), "every message deleted", |s| {
            deleted(s) >= messages
        })
        .await;
    let report = running.stop().await;
    let s = &report.stats;

    assert_eq!(
        aws.counts(&queue).await,
        (0, 0),
        "queue empty, nothing in flight"
    );
    assert_eq!(s.messages_received, messages);
    assert_eq!(s.messages_deleted, messages);
    assert_eq!(s.messages_dead_lettered, 3);
    assert_eq!(s.test_events, 1);
    assert_eq!(s.objects_delivered, summary.files.len() as u64);
    assert_eq!(s.objects_failed_permanent, 1);
    assert_eq!(s.skipped.get("digest"), Some(&1));
    assert_eq!(s.records, expected.len() as u64);
    assert_eq!(s.duplicates, 0);
    assert!(report.drained_cleanly);
    // A corrupt object and refused messages earlier in the run do not make the shutdown
    // unclean: their messages were dead-lettered and deleted.
    assert!(report.shutdown_clean(), "{:?}", report.shutdown_problems());
    let lines = read_ndjson(&out_dir);
    assert_eq!(lines.len(), expected.len(), "every record exactly once");
    assert!(lines == expected, "records arrive byte-identical");

    let mut kinds: Vec<(String, String, String)> = aws
        .drain(&dlq)
        .await
        .into_iter()
        .map(|m| {
            let a = m.message_attributes.clone().unwrap_or_default();
            let get = |n: &str| {
                a.get(n)
                    .and_then(|v| v.string_value.clone())
                    .unwrap_or_default()
            };
            (
                get(attr::KIND),
                get(attr::REASON),
                m.body.unwrap_or_default(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds.len(), 3, "{kinds:#?}");
    assert_eq!(kinds[0].0, "bad_notification");
    assert_eq!(
        kinds[0].2, "this is not a notification",
        "original body kept"
    );
    assert_eq!(kinds[1].0, "bucket_not_allowed");
    assert!(kinds[1].1.contains("not-allowed-bucket"), "{}", kinds[1].1);
    assert_eq!(kinds[2].0, "corrupt_compression");
    assert!(kinds[2].1.contains("corruptcorrupt01"), "{}", kinds[2].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_wrapped_and_cloudtrail_notifications_across_regions_and_roles() {
    let aws = aws().await;
    let sns = aws_sdk_sns::Client::new(&aws.sdk);
    let (queue, queue_arn) = aws.queue("sns").await;
    let topic = sns
        .create_topic()
        .name(unique("trail-topic"))
        .send()
        .await
        .expect("topic")
        .topic_arn
        .expect("topic arn");
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "false")
        .return_subscription_arn(true)
        .send()
        .await
        .expect("subscribe");

    // Bucket A: S3 → SNS → SQS (wrapped envelope).
    let a = aws.bucket("sns-a", None).await;
    let tc = TopicConfiguration::builder()
        .topic_arn(&topic)
        .events(Event::S3ObjectCreated)
        .build()
        .expect("topic configuration");
    aws.s3
        .put_bucket_notification_configuration()
        .bucket(&a)
        .notification_configuration(
            NotificationConfiguration::builder()
                .topic_configurations(tc)
                .build(),
        )
        .send()
        .await
        .expect("bucket notification");
    // Bucket B: another region, read through an assumed role; announced by CloudTrail's own
    // SNS notification (keys verbatim, no region).
    let b = aws.bucket("sns-b", Some("eu-west-1")).await;

    let tmp = tempfile::tempdir().expect("tempdir");
    let (src_a, src_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (sum_a, sum_b) = (corpus(&src_a, 160, 11), corpus(&src_b, 120, 12));
    aws.upload_corpus(&a, &src_a, &sum_a).await;
    aws.upload_corpus(&b, &src_b, &sum_b).await;
    let keys: Vec<&str> = sum_b.files.iter().map(|f| f.key.as_str()).collect();
    sns.publish()
        .topic_arn(&topic)
        .message(serde_json::json!({"s3Bucket": b, "s3ObjectKey": keys}).to_string())
        .send()
        .await
        .expect("publish CloudTrail notification");
    let mut expected = source_records(&src_a, &sum_a);
    expected.extend(source_records(&src_b, &sum_b));
    expected.sort();

    let list = AllowList::new(&[
        BucketConfig {
            name: a.clone(),
            prefixes: vec!["AWSLogs/".into()],
            role_arn: None,
            region: None,
        },
        BucketConfig {
            name: b.clone(),
            prefixes: vec![],
            role_arn: Some("arn:aws:iam::123456789012:role/trailhose-read".into()),
            region: Some("eu-west-1".into()),
        },
    ]);
    let dl = tmp.path().join("dead-letter.ndjson");
    let (pipeline, out) = collecting(4, None);
    let worker = Worker::new(
        settings(&queue),
        &aws.sdk,
        list,
        DeadLetterTarget::File(Arc::new(
            trailhose_pipeline::deadletter::DeadLetterFile::new(&dl),
        )),
    );
    // One message per object of A, the wrapped test event, one CloudTrail notification.
    let messages = sum_a.files.len() as u64 + 2;
    let running = start(worker, pipeline);
    running
        .wait_until(Duration::from_secs(40), "every message deleted", |s| {
            deleted(s) >= messages
        })
        .await;
    let report = running.stop().await;
    let s = &report.stats;
    assert_eq!(aws.counts(&queue).await, (0, 0));
    assert_eq!(s.test_events, 1, "the test event arrives SNS-wrapped");
    assert_eq!(s.messages_dead_lettered, 0, "{s:#?}");
    assert!(!dl.exists(), "nothing dead-lettered");
    assert_eq!(
        s.objects_delivered,
        (sum_a.files.len() + sum_b.files.len()) as u64
    );
    let mut got = out.lock().expect("collector").clone();
    got.sort();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "records arrive byte-identical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_notification_is_not_shipped_twice() {
    let aws = aws().await;
    let (queue, queue_arn) = aws.queue("dup").await;
    let (dlq, _) = aws.queue("dup-dlq").await;
    let bucket = aws.bucket("dup", None).await;
    aws.notify_queue(&bucket, &queue_arn).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = one_file(tmp.path(), 40, 21);
    let expected = source_records(tmp.path(), &summary);
    aws.upload_corpus(&bucket, tmp.path(), &summary).await;

    // Keep a copy of the real S3 notification moto sent (visibility 0: it stays on the queue).
    let bodies: Vec<String> = aws
        .sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .expect("peek")
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.body)
        .collect();
    let event = bodies
        .iter()
        .find(|b| b.contains("ObjectCreated"))
        .expect("the S3 event")
        .clone();
    assert!(event.contains("%2F"), "moto encodes '/' in keys: {event}");

    let (pipeline, out) = collecting(4, None);
    let worker = Worker::new(
        settings(&queue),
        &aws.sdk,
        allow(&[&bucket]),
        DeadLetterTarget::Sqs {
            client: aws.sqs.clone(),
            queue_url: dlq.clone(),
        },
    );
    let running = start(worker, pipeline);
    running
        .wait_until(Duration::from_secs(20), "test event and object", |s| {
            deleted(s) >= 2
        })
        .await;
    // The same notification again, as after a lost delete.
    aws.sqs
        .send_message()
        .queue_url(&queue)
        .message_body(&event)
        .send()
        .await
        .expect("redeliver");
    running
        .wait_until(Duration::from_secs(20), "the duplicate", |s| {
            deleted(s) >= 3
        })
        .await;
    let report = running.stop().await;
    assert_eq!(report.stats.duplicates, 1);
    assert_eq!(report.stats.objects_read, 1, "the object was fetched once");
    assert_eq!(aws.counts(&queue).await, (0, 0));
    let mut got = out.lock().expect("collector").clone();
    got.sort();
    assert_eq!(got, expected, "shipped exactly once");
    assert!(aws.drain(&dlq).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_keeps_a_slow_message_invisible() {
    let aws = aws().await;
    let (queue, queue_arn) = aws.queue("hb").await;
    let (dlq, _) = aws.queue("hb-dlq").await;
    let bucket = aws.bucket("hb", None).await;
    aws.notify_queue(&bucket, &queue_arn).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = one_file(tmp.path(), 40, 31);
    let expected = source_records(tmp.path(), &summary);
    aws.upload_corpus(&bucket, tmp.path(), &summary).await;

    // Visibility 4 s, renewed every second; the sink holds deliveries for 7 s. Without the
    // heartbeat the message would come back and be shipped twice.
    let mut s = settings(&queue);
    s.visibility_timeout_seconds = 4;
    s.heartbeat = Heartbeat::new(Duration::from_secs(1), Duration::from_secs(4));
    let (gate_tx, gate) = watch::channel(false);
    let (pipeline, out) = collecting(4, Some(gate));
    let worker = Worker::new(
        s,
        &aws.sdk,
        allow(&[&bucket]),
        DeadLetterTarget::Sqs {
            client: aws.sqs.clone(),
            queue_url: dlq.clone(),
        },
    );
    let running = start(worker, pipeline);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        aws.counts(&queue).await,
        (0, 1),
        "still in flight, not visible"
    );
    gate_tx.send_replace(true);
    running
        .wait_until(Duration::from_secs(20), "both messages deleted", |s| {
            deleted(s) >= 2
        })
        .await;
    let report = running.stop().await;
    assert!(report.stats.heartbeats >= 4, "{:#?}", report.stats);
    assert_eq!(report.stats.messages_received, 2, "never received twice");
    let mut got = out.lock().expect("collector").clone();
    got.sort();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_releases_in_flight_messages() {
    let aws = aws().await;
    let (queue, queue_arn) = aws.queue("stop").await;
    let (dlq, _) = aws.queue("stop-dlq").await;
    let bucket = aws.bucket("stop", None).await;
    aws.notify_queue(&bucket, &queue_arn).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = one_file(tmp.path(), 40, 41);
    aws.upload_corpus(&bucket, tmp.path(), &summary).await;

    // A sink that never takes anything: the read blocks on the full channel.
    let mut s = settings(&queue);
    s.shutdown_grace = Duration::from_secs(3);
    s.chunking.max_records = 2;
    let (_gate_tx, gate) = watch::channel(false);
    let (pipeline, out) = collecting(1, Some(gate));
    let worker = Worker::new(
        s,
        &aws.sdk,
        allow(&[&bucket]),
        DeadLetterTarget::Sqs {
            client: aws.sqs.clone(),
            queue_url: dlq.clone(),
        },
    );
    let running = start(worker, pipeline);
    running
        .wait_until(Duration::from_secs(20), "the object in flight", |s| {
            deleted(s) >= 1 && s.objects_in_flight.load(Ordering::Relaxed) >= 1
        })
        .await;
    let stopping = Instant::now();
    let report = running.stop().await;
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "exits within the grace period: {took:?}"
    );
    assert!(!report.drained_cleanly);
    assert!(!report.shutdown_clean());
    assert_eq!(report.stats.messages_released, 1, "{:#?}", report.stats);
    assert_eq!(report.stats.messages_deleted, 1, "only the test event");
    assert!(out.lock().expect("collector").is_empty());
    assert_eq!(
        aws.counts(&queue).await,
        (1, 0),
        "released: visible again at once"
    );
    let again = aws.drain(&queue).await;
    assert_eq!(again.len(), 1);
    let count = again[0]
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .cloned();
    assert_eq!(count.as_deref(), Some("2"));
}

fn eventbridge(bucket: &str, key: &str) -> String {
    serde_json::json!({
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-01T00:10:00Z",
        "region": REGION,
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 1, "etag": "d41d8cd98f00b204e9800998ecf8427e"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject"
        }
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_keys_fall_back_to_form_decoding_and_missing_objects_are_dead_lettered() {
    let aws = aws().await;
    let (queue, _) = aws.queue("eb").await;
    let (dlq, _) = aws.queue("eb-dlq").await;
    let bucket = aws.bucket("eb", None).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = one_file(tmp.path(), 30, 51);
    let expected = source_records(tmp.path(), &summary);
    let key = format!("my logs/{}", summary.files[0].key);
    let bytes = std::fs::read(tmp.path().join(&summary.files[0].path)).expect("file");
    aws.put(&bucket, &key, bytes).await;
    // The key as an S3 notification would encode it: the raw key is missing, the decoded one
    // exists. A second event names an object that does not exist at all.
    let missing = summary.files[0].key.replace(".json.gz", "x.json.gz");
    for body in [
        eventbridge(&bucket, &key.replace(' ', "+")),
        eventbridge(&bucket, &missing),
    ] {
        aws.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }
    let (pipeline, out) = collecting(4, None);
    let worker = Worker::new(
        settings(&queue),
        &aws.sdk,
        allow(&[&bucket]),
        DeadLetterTarget::Sqs {
            client: aws.sqs.clone(),
            queue_url: dlq.clone(),
        },
    );
    let running = start(worker, pipeline);
    running
        .wait_until(Duration::from_secs(20), "both messages deleted", |s| {
            deleted(s) >= 2
        })
        .await;
    let report = running.stop().await;
    assert_eq!(report.stats.objects_delivered, 1);
    assert_eq!(
        report.stats.objects_read, 3,
        "one fallback read, one plain miss"
    );
    assert_eq!(report.stats.messages_dead_lettered, 1);
    let mut got = out.lock().expect("collector").clone();
    got.sort();
    assert_eq!(got, expected);
    let dead = aws.drain(&dlq).await;
    assert_eq!(dead.len(), 1);
    let kind = dead[0]
        .message_attributes
        .as_ref()
        .and_then(|a| a.get(attr::KIND))
        .and_then(|v| v.string_value.clone());
    assert_eq!(kind.as_deref(), Some("no_such_key"));
    assert_eq!(aws.counts(&queue).await, (0, 0));
}

/// Fails every delivery while `down` is true, as a sink whose destination is down and whose
/// retry time ran out; collects the records once it is up.
struct Failing {
    down: Arc<std::sync::atomic::AtomicBool>,
    out: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Sink for Failing {
    fn name(&self) -> &str {
        "failing"
    }

    fn run(self: Box<Self>, mut rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        Box::pin(async move {
            let mut report = SinkReport {
                name: "failing".into(),
                ..Default::default()
            };
            while let Some(d) = rx.recv().await {
                if self.down.load(Ordering::Relaxed) {
                    report.failed_deliveries += 1;
                    d.token.fail("destination unavailable");
                    continue;
                }
                let mut out = self.out.lock().expect("collector lock");
                for r in d.records() {
                    out.push(d.chunk.bytes_of(r).to_vec());
                    report.records += 1;
                }
                d.token.ack();
            }
            report
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_never_sends_good_messages_to_the_dlq() {
    let aws = aws().await;
    let (queue, queue_arn) = aws.queue("poison").await;
    let (dlq, _) = aws.queue("poison-dlq").await;
    let bucket = aws.bucket("poison", None).await;
    aws.notify_queue(&bucket, &queue_arn).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = one_file(tmp.path(), 20, 61);
    let expected = source_records(tmp.path(), &summary);
    aws.upload_corpus(&bucket, tmp.path(), &summary).await;

    let mut s = settings(&queue);
    s.policy = Policy {
        max_receive_count: 2,
        retry_visibility_seconds: 1,
    };
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let out = Arc::new(Mutex::new(Vec::new()));
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink: Box::new(Failing {
                down: down.clone(),
                out: out.clone(),
            }),
            filter: CompiledFilter::pass_all(),
        }],
        4,
    );
    let worker = Worker::new(
        s,
        &aws.sdk,
        allow(&[&bucket]),
        DeadLetterTarget::Sqs {
            client: aws.sqs.clone(),
            queue_url: dlq.clone(),
        },
    );
    let running = start(worker, pipeline);
    // Far more receives than max_receive_count while the sink fails: never dead-lettered.
    running
        .wait_until(
            Duration::from_secs(30),
            "the message failed by the sink five times",
            |s| s.messages_sink_retried.load(Ordering::Relaxed) >= 5,
        )
        .await;
    assert_eq!(
        running.stats.messages_dead_lettered.load(Ordering::Relaxed),
        0
    );
    assert_eq!(deleted(&running.stats), 1, "only the test event");
    down.store(false, Ordering::Relaxed);
    running
        .wait_until(
            Duration::from_secs(20),
            "delivered and deleted once the sink is back",
            |s| deleted(s) >= 2,
        )
        .await;
    let report = running.stop().await;
    let st = &report.stats;
    assert_eq!(st.messages_dead_lettered, 0);
    assert_eq!(st.objects_delivered, 1);
    assert_eq!(aws.counts(&queue).await, (0, 0));
    assert!(aws.drain(&dlq).await.is_empty(), "nothing in the DLQ");
    let mut got = out.lock().expect("lock").clone();
    got.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(got, want, "every record delivered once the sink is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_queue_without_loss() {
    let aws = aws().await;
    let (queue, queue_arn) = aws.queue("pair").await;
    let (dlq, _) = aws.queue("pair-dlq").await;
    let bucket = aws.bucket("pair", None).await;
    aws.notify_queue(&bucket, &queue_arn).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = corpus(tmp.path(), 480, 71);
    let expected = source_records(tmp.path(), &summary);
    aws.upload_corpus(&bucket, tmp.path(), &summary).await;

    let mut runs = Vec::new();
    let mut outs = Vec::new();
    for _ in 0..2 {
        let mut s = settings(&queue);
        s.max_messages = 2;
        let (pipeline, out) = collecting(4, None);
        let worker = Worker::new(
            s,
            &aws.sdk,
            allow(&[&bucket]),
            DeadLetterTarget::Sqs {
                client: aws.sqs.clone(),
                queue_url: dlq.clone(),
            },
        );
        runs.push(start(worker, pipeline));
        outs.push(out);
    }
    let messages = summary.files.len() as u64 + 1;
    let deadline = Instant::now() + Duration::from_secs(40);
    while runs.iter().map(|r| deleted(&r.stats)).sum::<u64>() < messages {
        assert!(Instant::now() < deadline, "queue not drained");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut delivered = 0;
    for r in runs {
        let report = r.stop().await;
        delivered += report.stats.objects_delivered;
        assert_eq!(report.stats.messages_dead_lettered, 0);
    }
    assert_eq!(delivered, summary.files.len() as u64);
    let mut got: Vec<Vec<u8>> = outs
        .iter()
        .flat_map(|o| o.lock().expect("collector").clone())
        .collect();
    got.sort();
    assert_eq!(got.len(), expected.len(), "no loss, no duplicates");
    assert!(got == expected);
    assert_eq!(aws.counts(&queue).await, (0, 0));
}

/// The objects under `prefix` of `bucket`, each gunzipped to its JSON lines.
async fn s3_dead_letters(
    aws: &Aws,
    bucket: &str,
    prefix: &str,
) -> Vec<(String, serde_json::Value)> {
    let listed = aws
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list");
    let mut out = Vec::new();
    for o in listed.contents() {
        let key = o.key().expect("key").to_owned();
        let body = aws
            .s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .expect("a gzip object");
        assert_eq!(text.lines().count(), 1, "one entry per object: {text}");
        out.push((
            key,
            serde_json::from_str(text.trim_end()).expect("a JSON line"),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_dead_lettered_to_s3_are_stored_as_objects_before_the_delete() {
    let aws = aws().await;
    let (queue, _) = aws.queue("s3dl").await;
    let dl_bucket = aws.bucket("s3dl", None).await;
    for body in [
        "this is not a notification".to_owned(),
        eventbridge(
            "not-allowed-bucket",
            "AWSLogs/1/CloudTrail/us-east-1/2026/11/01/x.json.gz",
        ),
    ] {
        aws.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }
    let place = trailhose_aws::open_source_dead_letters(
        &format!("s3://{dl_bucket}/fleet/dl/"),
        &trailhose_aws::SseOptions::default(),
        &aws.sdk,
    )
    .expect("s3 place");
    let (pipeline, out) = collecting(4, None);
    let worker = Worker::new(
        settings(&queue),
        &aws.sdk,
        allow(&["some-bucket"]),
        DeadLetterTarget::File(place),
    );
    let running = start(worker, pipeline);
    running
        .wait_until(Duration::from_secs(20), "both messages deleted", |s| {
            deleted(s) >= 2
        })
        .await;
    let report = running.stop().await;
    assert_eq!(report.stats.messages_dead_lettered, 2);
    assert_eq!(report.stats.dead_letter_failures, 0);
    assert!(out.lock().expect("collector").is_empty());
    assert_eq!(aws.counts(&queue).await, (0, 0));
    let dead = s3_dead_letters(&aws, &dl_bucket, "fleet/dl/").await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    let mut bodies = Vec::new();
    for (key, v) in &dead {
        assert!(
            key.starts_with("fleet/dl/_source/dt=") && key.ends_with(".ndjson.gz"),
            "{key}"
        );
        assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
        assert_eq!(v["queue_url"], queue.as_str());
        bodies.push(v["body"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        bodies.iter().any(|b| b == "this is not a notification"),
        "{bodies:?}"
    );
    assert!(
        bodies.iter().any(|b| b.contains("not-allowed-bucket")),
        "{bodies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_s3_dead_letter_fails_stays_on_the_queue() {
    let aws = aws().await;
    let (queue, _) = aws.queue("s3dl-fail").await;
    aws.sqs
        .send_message()
        .queue_url(&queue)
        .message_body("garbage")
        .send()
        .await
        .expect("send");
    let place = trailhose_aws::open_source_dead_letters(
        &format!("s3://{}/dl/", unique("no-such-bucket")),
        &trailhose_aws::SseOptions::default(),
        &aws.sdk,
    )
    .expect("s3 place");
    let (pipeline, _out) = collecting(4, None);
    let worker = Worker::new(
        settings(&queue),
        &aws.sdk,
        allow(&["some-bucket"]),
        DeadLetterTarget::File(place),
    );
    let running = start(worker, pipeline);
    running
        .wait_until(Duration::from_secs(20), "a dead-letter failure", |s| {
            s.dead_letter_failures.load(Ordering::Relaxed) >= 1
        })
        .await;
    let report = running.stop().await;
    assert_eq!(report.stats.messages_deleted, 0, "{:#?}", report.stats);
    assert_eq!(report.stats.messages_dead_lettered, 0);
    let (visible, in_flight) = aws.counts(&queue).await;
    assert_eq!(visible + in_flight, 1, "the message is still there");
}
