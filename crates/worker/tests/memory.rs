//! Backpressure: with a deliberately slow sink, the worker stops receiving and reading instead of
//! buffering, so its resident memory stays far below the data that flows through it. A test
//! binary of its own, so no other test's allocations are in this process's RSS.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use trailhose_config::BucketConfig;
use trailhose_core::keys::KeyKind;
use trailhose_core::Limits;
use trailhose_pipeline::emit::ChunkLimits;
use trailhose_pipeline::filter::CompiledFilter;
use trailhose_pipeline::sink::{Delivery, Sink, SinkFuture, SinkReport};
use trailhose_pipeline::{Pipeline, SinkSpec};
use trailhose_worker::heartbeat::Heartbeat;
use trailhose_worker::lifecycle::Policy;
use trailhose_worker::{AllowList, DeadLetterTarget, Worker, WorkerSettings};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// Takes 10 ms per delivery, far slower than reading.
struct Slow {
    records: Arc<AtomicU64>,
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
                tokio::time::sleep(Duration::from_millis(10)).await;
                self.records
                    .fetch_add(d.record_count() as u64, Ordering::Relaxed);
                report.records += d.record_count() as u64;
                d.token.ack();
            }
            report
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_keeps_memory_bounded() {
    let sdk = trailhose_testkit::moto().sdk_config("us-east-1").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let s3 = trailhose_testkit::s3_client_for(&sdk);
    let name = format!("memory-{}", std::process::id());
    let queue = sqs
        .create_queue()
        .queue_name(&name)
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
    };
    let records = Arc::new(AtomicU64::new(0));
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink: Box::new(Slow {
                records: records.clone(),
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
