//! Bounded memory, measured on this process (a test binary of its own, so no other test binary's
//! allocations are in its RSS; the tests here take turns).
//!
//! - With a deliberately slow sink, the worker stops receiving and reading instead of
//!   buffering, so its resident memory stays far below the data that flows through it.
//! - With 15 MiB records and 32 objects in flight, the object readers share the byte budget
//!   (`source.memory_budget_bytes`), the large records take turns, and the peak RSS (VmHWM)
//!   stays under the bound `check-config` prints for the same configuration.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use trailhose_config::{BucketConfig, Config, SourceConfig};
use trailhose_core::keys::KeyKind;
use trailhose_core::Limits;
use trailhose_pipeline::emit::ChunkLimits;
use trailhose_pipeline::filter::CompiledFilter;
use trailhose_pipeline::sink::{Delivery, Sink, SinkFuture, SinkReport};
use trailhose_pipeline::{Pipeline, SinkSpec};
use trailhose_worker::heartbeat::Heartbeat;
use trailhose_worker::lifecycle::Policy;
use trailhose_worker::{AllowList, DeadLetterTarget, Worker, WorkerSettings};

/// The tests measure this process's memory: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} line in /proc/self/status"))
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// Peak RSS since the process started or since [`reset_peak_rss`].
fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so what the set-up allocated is not counted.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
}

/// Takes `delay` per delivery, slower than reading.
struct Slow {
    records: Arc<AtomicU64>,
    delay: Duration,
}

impl Sink for Slow {
    fn name(&self) -> &str {
        "slow"
    }

    fn run(self: Box<Self>, mut rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        Box::pin(async move {
            let mut report = SinkReport {
                name: "slow".into(),
                ..Default::default()
            };
            while let Some(d) = rx.recv().await {
                tokio::time::sleep(self.delay).await;
                self.records
                    .fetch_add(d.record_count() as u64, Ordering::Relaxed);
                report.records += d.record_count() as u64;
                d.token.ack();
            }
            report
        })
    }
}

/// A queue fed by the notifications of a bucket of the same name.
async fn queue_and_bucket(sdk: &aws_config::SdkConfig, name: &str) -> (aws_sdk_s3::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let s3 = trailhose_testkit::s3_client_for(sdk);
    let queue = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
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
        .bucket(name)
        .send()
        .await
        .expect("bucket");
    s3.put_bucket_notification_configuration()
        .bucket(name)
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
    (s3, queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_keeps_memory_bounded() {
    let _serial = SERIAL.lock().await;
    let sdk = trailhose_testkit::moto().sdk_config("us-east-1").await;
    let name = format!("memory-{}", std::process::id());
    let (s3, queue) = queue_and_bucket(&sdk, &name).await;

    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = trailhose_gen::generate(
        tmp.path(),
        &trailhose_gen::GenOptions {
            events: 60_000,
            events_per_file: 3_000,
            gzip_level: 1,
            ..Default::default()
        },
    )
    .expect("corpus");
    for f in &summary.files {
        let bytes = std::fs::read(tmp.path().join(&f.path)).expect("file");
        s3.put_object()
            .bucket(&name)
            .key(&f.key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .expect("upload");
    }

    let settings = WorkerSettings {
        queue_url: queue.clone(),
        receivers: 2,
        max_messages: 10,
        wait_time_seconds: 1,
        visibility_timeout_seconds: 60,
        heartbeat: Heartbeat::new(Duration::from_secs(20), Duration::from_secs(60)),
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
            max_records: 200,
            max_bytes: 1 << 20,
        },
        memory_budget_bytes: None,
    };
    let records = Arc::new(AtomicU64::new(0));
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink: Box::new(Slow {
                records: records.clone(),
                delay: Duration::from_millis(10),
            }),
            filter: CompiledFilter::pass_all(),
        }],
        2,
    );
    let worker = Worker::new(
        settings,
        &sdk,
        AllowList::new(&[BucketConfig {
            name: name.clone(),
            prefixes: vec![],
            role_arn: None,
            region: None,
        }]),
        DeadLetterTarget::File(Arc::new(
            trailhose_pipeline::deadletter::DeadLetterFile::new(&tmp.path().join("dl.ndjson")),
        )),
    );
    let stats = worker.stats();

    let baseline = rss_kib();
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(worker.run(pipeline, async move {
        let _ = stopped.await;
    }));
    let messages = summary.files.len() as u64 + 1;
    let mut max_in_flight = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.messages_deleted.load(Ordering::Relaxed) < messages {
        assert!(
            Instant::now() < deadline,
            "not drained: {:#?}",
            stats.snapshot()
        );
        max_in_flight = max_in_flight.max(stats.objects_in_flight.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    let report = run.await.expect("worker");
    sampling.store(false, Ordering::Relaxed);
    sampler.await.expect("sampler");

    let through = report.stats.decompressed_bytes;
    let grew_kib = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    eprintln!(
        "memory test: {} MB through a slow sink, RSS grew by {} KiB (baseline {} KiB), at most {} objects read at once",
        through / 1_000_000,
        grew_kib,
        baseline,
        max_in_flight
    );
    assert_eq!(records.load(Ordering::Relaxed), summary.records);
    assert!(through > 80_000_000, "only {through} bytes went through");
    assert!(max_in_flight <= 4, "objects in flight: {max_in_flight}");
    // Buffering what the sink had not yet taken would need most of the 80+ MB; the bound is
    // the channels (2 chunks per stage), 4 objects' read buffers and decoders, and the fixed
    // working set of the SDK clients and runtime threads (measured: ~28 MiB in all).
    assert!(
        grew_kib < 48 * 1024,
        "RSS grew by {grew_kib} KiB while {through} bytes went through"
    );
}

/// A CloudTrail file with `large` records of `record_bytes` (a long string field) between
/// small ones. The string repeats a 4 KiB pseudo-random block, so gzip shrinks it ~50× (under
/// the decompression-ratio guard) and the upload stays small.
fn large_record_file(object: usize, large: usize, record_bytes: usize) -> (Vec<u8>, u64) {
    let mut block = Vec::with_capacity(4096);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ object as u64;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    while block.len() < 4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        block.push(ALPHABET[(x % 64) as usize]);
    }
    let small = |i: usize| {
        format!(
            r#"{{"eventVersion":"1.08","eventTime":"2026-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","eventID":"{object}-{i}","recipientAccountId":"111122223333"}}"#
        )
        .into_bytes()
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut put = |b: &[u8]| gz.write_all(b).expect("in-memory gzip");
    put(b"{\"Records\":[");
    put(&small(0));
    let mut records = 1;
    for r in 0..large {
        put(format!(
            r#",{{"eventVersion":"1.08","eventTime":"2026-01-01T00:00:00Z","eventSource":"iam.amazonaws.com","eventName":"PutRolePolicy","awsRegion":"us-east-1","eventID":"{object}-big-{r}","requestParameters":{{"policyDocument":""#
        )
        .as_bytes());
        let mut left = record_bytes;
        while left > 0 {
            let n = left.min(block.len());
            put(&block[..n]);
            left -= n;
        }
        put(br#""}}"#);
        put(b",");
        put(&small(records + 1));
        records += 2;
    }
    put(b"]}");
    (gz.finish().expect("in-memory gzip"), records as u64)
}

/// Issue #21: 15 MiB records with 32 objects in flight peaked at 825 MiB against a printed
/// bound of 578 MiB. Now the object readers share the byte budget and the peak RSS of the
/// worker stays under the bound computed (as `check-config` prints it) for its configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_records_with_many_objects_in_flight_stay_under_the_printed_bound() {
    const OBJECTS: usize = 32;
    const LARGE_PER_OBJECT: usize = 2;
    const RECORD: usize = 15 << 20;
    let _serial = SERIAL.lock().await;
    let moto = trailhose_testkit::moto();
    let sdk = moto.sdk_config("us-east-1").await;
    let name = format!("memory-large-{}", std::process::id());
    let (s3, queue) = queue_and_bucket(&sdk, &name).await;
    let mut expected_records = 0;
    for i in 0..OBJECTS {
        let (body, records) = large_record_file(i, LARGE_PER_OBJECT, RECORD);
        expected_records += records;
        let key = format!(
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/111122223333_CloudTrail_us-east-1_20260101T0000Z_{i:016}.json.gz"
        );
        s3.put_object()
            .bucket(&name)
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("upload");
    }

    // The configuration the bound is computed for; the worker runs with its settings. The sink
    // in the config is a `discard` (no buffers of its own), like the test's sink.
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = Config::from_toml(
        &format!(
            r#"
[source]
type = "sqs"
queue_url = "{queue}"
endpoint_url = "{endpoint}"
wait_time_seconds = 1
visibility_timeout_seconds = 120
max_objects_in_flight = {OBJECTS}
dedup_cache_size = 1000
shutdown_grace_seconds = 5
[[source.buckets]]
name = "{name}"

[pipeline]
channel_capacity = 2

[[sinks]]
type = "discard"
name = "sink"
"#,
            endpoint = moto.endpoint
        ),
        "memory.toml",
    )
    .expect("valid config");
    let SourceConfig::Sqs(source) = &cfg.source else {
        panic!("an sqs source");
    };
    let bound = cfg.memory_bound(2);
    eprintln!("{}", bound.render());
    let settings = WorkerSettings::from_config(&cfg, source);
    let records = Arc::new(AtomicU64::new(0));
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink: Box::new(Slow {
                records: records.clone(),
                delay: Duration::from_millis(5),
            }),
            filter: CompiledFilter::pass_all(),
        }],
        cfg.pipeline.channel_capacity,
    );
    let worker = Worker::new(
        settings,
        &sdk,
        AllowList::new(&source.buckets),
        DeadLetterTarget::File(Arc::new(
            trailhose_pipeline::deadletter::DeadLetterFile::new(&tmp.path().join("dl.ndjson")),
        )),
    );
    let stats = worker.stats();
    let budget = worker.read_budget();

    reset_peak_rss();
    let start_kib = peak_rss_kib();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(worker.run(pipeline, async move {
        let _ = stopped.await;
    }));
    let messages = OBJECTS as u64 + 1;
    let mut max_in_flight = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    while stats.messages_deleted.load(Ordering::Relaxed) < messages {
        assert!(
            Instant::now() < deadline,
            "not drained: {:#?}",
            stats.snapshot()
        );
        max_in_flight = max_in_flight.max(stats.objects_in_flight.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    let report = run.await.expect("worker");
    let peak_kib = peak_rss_kib();

    let through = report.stats.decompressed_bytes;
    eprintln!(
        "large records: {} MB through, {OBJECTS} objects ({max_in_flight} read at once at most); peak RSS {} MiB (VmHWM, {} MiB at the start) against a bound of {} MiB; budget {} MiB, its peak {} MiB, {} waits, {} overdrafts",
        through / 1_000_000,
        peak_kib / 1024,
        start_kib / 1024,
        bound.total_bytes() >> 20,
        budget.total_bytes().unwrap_or(0) >> 20,
        budget.peak_bytes() >> 20,
        budget.waits(),
        budget.overdrafts(),
    );
    assert_eq!(records.load(Ordering::Relaxed), expected_records);
    assert_eq!(report.stats.objects_delivered, OBJECTS as u64);
    assert!(
        through >= (OBJECTS * LARGE_PER_OBJECT * RECORD) as u64,
        "{through}"
    );
    assert!(
        max_in_flight >= 16,
        "many objects were read at once: {max_in_flight}"
    );
    // The readers never held more than their budget, and large records took turns.
    let total = budget.total_bytes().expect("a budget");
    assert_eq!(
        Some(total),
        bound
            .term("object readers (enforced)")
            .map(|t| t.bytes)
            .map(|b| b.div_ceil(1024) * 1024)
    );
    assert!(budget.peak_bytes() <= total);
    assert!(budget.waits() > 0, "large records waited for the budget");
    assert_eq!(budget.overdrafts(), 0);
    assert!(
        peak_kib * 1024 < bound.total_bytes(),
        "peak RSS {peak_kib} KiB above the printed bound {} bytes",
        bound.total_bytes()
    );
}
