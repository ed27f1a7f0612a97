//! CloudWatch Logs sink throughput and correctness against the enforcing local fake:
//! `cargo bench -p trailhose-benches --bench cwl_sink` (RECORDS=1000000 by default;
//! THROTTLE=0.3 injects throttling). Prints records/s, MB/s, batch fill, rejected batches and
//! lost records. Not a criterion bench: one long run is the measurement.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use trailhose_cwl::{client_from, CloudWatchLogsSink};
use trailhose_pipeline::deadletter::DeadLetterFile;
use trailhose_pipeline::dir_source::{run_dir_source, DirSource, Layout};
use trailhose_pipeline::{Pipeline, SinkSpec};
use trailhose_testkit::fake_cwl::{message_hash, FakeCwl, FakeOptions};

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let records: u64 = env("RECORDS", 1_000_000);
    let throttle: f64 = env("THROTTLE", 0.0);
    let rps: u32 = env("RPS", 5_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let tmp = tempfile::tempdir().expect("tempdir");
        let now = trailhose_cwl::sink::system_now_ms();
        let gen = |dir: &str, n: u64, start: i64, seed: u64| {
            let opts = trailhose_gen::GenOptions {
                events: n,
                start_time_ms: start,
                seed,
                gzip_level: 1,
                ..Default::default()
            };
            trailhose_gen::generate(&tmp.path().join("in").join(dir), &opts).expect("generate")
        };
        eprintln!("generating {records} records ...");
        // Delivery times advance 5 min per file and stream; start far enough back that the
        // whole corpus is in the past but within 14 days.
        let recent = gen("recent", records, now - 3 * 86_400_000, 1);
        let old = gen("old", 1000, now - 20 * 86_400_000, 2);
        let future = gen("future", 500, now + 3 * 3_600_000, 3);
        let fake = FakeCwl::start(FakeOptions {
            throttle_ratio: throttle,
            ..Default::default()
        })
        .await
        .expect("fake");
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&fake.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new("k", "s", None, None, "bench"))
            .load()
            .await;
        let cfg: trailhose_config::cwl::CloudWatchLogsSinkConfig = toml::from_str(&format!(
            "name = \"cwl\"\ndead_letter = {:?}\n[delivery]\nrequests_per_second = {rps}\n",
            tmp.path().join("overflow.ndjson").display().to_string()
        ))
        .expect("config");
        let sink: CloudWatchLogsSink = trailhose_cwl::sink(
            cfg,
            client_from(&sdk),
            trailhose_pipeline::delivery::LocalDeadLetters::new(&tmp.path().join("overflow.ndjson")),
            trailhose_cwl::system_now_ms,
        )
        .expect("sink");
        let pipeline = Pipeline::start(vec![SinkSpec { sink: Box::new(sink), filter: Default::default() }], 16);
        let dlq = Arc::new(DeadLetterFile::new(&tmp.path().join("dlq.ndjson")));
        let started = Instant::now();
        let src = DirSource {
            path: tmp.path().join("in"),
            layout: Layout::S3,
            parse_workers: 2,
            limits: Default::default(),
            chunking: Default::default(),
        };
        let report = run_dir_source(src, pipeline.input(), dlq).await.expect("source");
        let sink = pipeline.shutdown().await.remove(0);
        let secs = started.elapsed().as_secs_f64();

        // What should be in CloudWatch: exactly the recent records.
        let mut expected_sum = 0u64;
        let mut expected_n = 0u64;
        for f in trailhose_pipeline::dir_source::list_files(&tmp.path().join("in/recent")).expect("list") {
            let file = std::fs::File::open(&f).expect("open");
            let (_, r) = trailhose_core::read_records(file, &Default::default(), trailhose_core::FieldMode::ValidateOnly, |rec| {
                expected_sum = expected_sum.wrapping_add(message_hash(rec.raw.bytes));
                expected_n += 1;
            });
            r.expect("valid");
        }
        let (stored, sum, rejected, calls) = fake.snapshot(|s| {
            (
                s.streams.values().map(|d| d.events).sum::<u64>(),
                s.streams.values().fold(0u64, |a, d| a.wrapping_add(d.checksum)),
                s.rejected_batches.len(),
                s.accepted_calls.clone(),
            )
        });
        let mb = report.decompressed_bytes as f64 / 1e6;
        let fill = calls.iter().map(|(_, n, b)| (*n as f64 / 10_000.0).max(*b as f64 / 1_048_576.0)).sum::<f64>()
            / calls.len().max(1) as f64;
        println!("records read: {} ({} recent, {} old, {} future); {mb:.1} MB", report.records, recent.records, old.records, future.records);
        println!(
            "stored by CloudWatch fake: {stored} (expected {expected_n}); checksum {}; lost: {}",
            if sum == expected_sum { "matches" } else { "DIFFERS" },
            expected_n as i64 - stored as i64
        );
        println!("overflow (outside the time window): {} (expected {})", sink.dead_lettered, old.records + future.records);
        println!("PutLogEvents: {} accepted calls, {} throttled, {} retries, {rejected} rejected batches, average fill {:.1}%", calls.len(), fake.throttled.load(Ordering::Relaxed), sink.retries, fill * 100.0);
        println!("throughput: {:.0} records/s, {:.1} MB/s ({secs:.2} s)", report.records as f64 / secs, mb / secs);
    });
}
