//! The CloudWatch Logs sink end to end: against moto (real SDK, real HTTP) for creation and
//! readback, and against the enforcing fake for limits, throttling and loss.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use trailhose_config::cwl::CloudWatchLogsSinkConfig;
use trailhose_cwl::{client_from, CloudWatchLogsSink};
use trailhose_pipeline::deadletter::DeadLetterFile;
use trailhose_pipeline::delivery::LocalDeadLetters;
use trailhose_pipeline::dir_source::{run_dir_source, DirSource, Layout};
use trailhose_pipeline::{Pipeline, SinkReport, SinkSpec};
use trailhose_testkit::fake_cwl::{message_hash, FakeCwl, FakeOptions};

const HOUR: i64 = 3_600_000;

fn now_ms() -> i64 {
    trailhose_cwl::sink::system_now_ms()
}

fn config(name: &str, endpoint: &str, overflow: &Path) -> CloudWatchLogsSinkConfig {
    let text = format!(
        "name = {name:?}\nregion = \"us-east-1\"\nendpoint_url = {endpoint:?}\ndead_letter = {:?}\n",
        overflow.display().to_string()
    );
    toml::from_str(&text).expect("valid sink config")
}

/// Generates `events` records starting at `start_ms` under `dir`; returns the record bytes.
fn corpus(dir: &Path, events: u64, start_ms: i64, seed: u64) -> Vec<Vec<u8>> {
    let opts = trailhose_gen::GenOptions {
        events,
        start_time_ms: start_ms,
        seed,
        gzip_level: 1,
        accounts: 2,
        regions: 2,
        ..Default::default()
    };
    trailhose_gen::generate(dir, &opts).expect("generate");
    let mut out = Vec::new();
    for f in trailhose_pipeline::dir_source::list_files(dir).expect("list") {
        let limits = trailhose_core::Limits::default();
        let file = std::fs::File::open(&f).expect("open");
        let (_, r) = trailhose_core::read_records(
            file,
            &limits,
            trailhose_core::FieldMode::ValidateOnly,
            |rec| out.push(rec.raw.bytes.to_vec()),
        );
        r.expect("generated files are valid");
    }
    out
}

async fn ship(dir: &Path, sink: CloudWatchLogsSink) -> (SinkReport, u64) {
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink: Box::new(sink),
            filter: Default::default(),
        }],
        16,
    );
    let dlq = Arc::new(DeadLetterFile::new(&dir.join("dlq.ndjson")));
    let src = DirSource {
        path: dir.to_path_buf(),
        layout: Layout::S3,
        parse_workers: 2,
        limits: Default::default(),
        chunking: Default::default(),
    };
    let report = run_dir_source(src, pipeline.input(), dlq)
        .await
        .expect("source runs");
    assert_eq!(report.files_failed, 0);
    assert_eq!(report.objects_undelivered, 0, "every object acknowledged");
    let mut sinks = pipeline.shutdown().await;
    (sinks.remove(0), report.records)
}

fn make(
    cfg: CloudWatchLogsSinkConfig,
    client: aws_sdk_cloudwatchlogs::Client,
    dead_letter: &Path,
) -> CloudWatchLogsSink {
    trailhose_cwl::sink(
        cfg,
        client,
        LocalDeadLetters::new(dead_letter),
        trailhose_cwl::system_now_ms,
    )
    .expect("sink")
}

fn overflow_records(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("overflow line is JSON");
            let rec = serde_json::to_vec(&v["record"]).expect("json");
            (
                v["dead_letter"]["label"].as_str().unwrap_or("").to_string(),
                rec,
            )
        })
        .collect()
}

fn canonical(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).expect("record is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_groups_streams_and_readback() {
    let moto = trailhose_testkit::moto();
    let tmp = tempfile::tempdir().expect("tempdir");
    let recent = corpus(&tmp.path().join("in/recent"), 1200, now_ms() - 3 * HOUR, 1);
    let old = corpus(
        &tmp.path().join("in/old"),
        150,
        now_ms() - 20 * 24 * HOUR,
        2,
    );
    let overflow = tmp.path().join("overflow.ndjson");
    let mut cfg = config("cwl", &moto.endpoint, &overflow);
    cfg.log_group = "/moto-test/{account}".into();
    cfg.retention_days = Some(30);
    let sdk = moto.sdk_config("us-east-1").await;
    let client = client_from(&sdk);
    let sink = make(cfg, client.clone(), &overflow);
    let (report, read) = ship(&tmp.path().join("in"), sink).await;
    assert_eq!(read as usize, recent.len() + old.len());
    assert_eq!(report.records as usize, recent.len(), "{report:?}");
    assert_eq!(report.dead_lettered as usize, old.len());

    // Read everything back through the real API.
    let mut got: Vec<Vec<u8>> = Vec::new();
    let groups = client
        .describe_log_groups()
        .log_group_name_prefix("/moto-test/")
        .send()
        .await
        .expect("describe groups");
    let groups: Vec<String> = groups
        .log_groups()
        .iter()
        .filter_map(|g| g.log_group_name().map(str::to_string))
        .collect();
    assert_eq!(groups.len(), 2, "one group per account: {groups:?}");
    for g in &groups {
        let streams = client
            .describe_log_streams()
            .log_group_name(g)
            .send()
            .await
            .expect("streams");
        for s in streams.log_streams() {
            let name = s.log_stream_name().unwrap_or_default();
            assert!(name.contains('/'), "stream named region/category: {name}");
            let mut token: Option<String> = None;
            loop {
                let page = client
                    .get_log_events()
                    .log_group_name(g)
                    .log_stream_name(name)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .expect("get events");
                let evs = page.events();
                let ts: Vec<i64> = evs.iter().filter_map(|e| e.timestamp()).collect();
                assert!(
                    ts.windows(2).all(|w| w[0] <= w[1]),
                    "chronological within a stream"
                );
                got.extend(
                    evs.iter()
                        .filter_map(|e| e.message())
                        .map(|m| m.as_bytes().to_vec()),
                );
                let next = page.next_forward_token().map(str::to_string);
                if evs.is_empty() || next == token {
                    break;
                }
                token = next;
            }
        }
    }
    let mut expected = recent.clone();
    expected.sort();
    got.sort();
    assert_eq!(got.len(), expected.len());
    assert!(
        got == expected,
        "every recent record stored once, byte-identical"
    );

    let ov = overflow_records(&overflow);
    assert_eq!(ov.len(), old.len());
    assert!(ov.iter().all(|(label, _)| label == "too_old"));
    let mut ov_vals: Vec<String> = ov.iter().map(|(_, r)| canonical(r).to_string()).collect();
    let mut old_vals: Vec<String> = old.iter().map(|r| canonical(r).to_string()).collect();
    ov_vals.sort();
    old_vals.sort();
    assert_eq!(
        ov_vals, old_vals,
        "overflow holds exactly the records outside the window"
    );
}

fn checksum(records: &[Vec<u8>]) -> u64 {
    records
        .iter()
        .fold(0u64, |a, r| a.wrapping_add(message_hash(r)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcing_fake_under_throttling_loses_nothing_and_respects_the_rate() {
    let fake = FakeCwl::start(FakeOptions {
        throttle_ratio: 0.3,
        error_ratio: 0.05,
        ..Default::default()
    })
    .await
    .expect("fake starts");
    let tmp = tempfile::tempdir().expect("tempdir");
    let recent = corpus(
        &tmp.path().join("in/recent"),
        12_000,
        now_ms() - 6 * HOUR,
        3,
    );
    let old = corpus(
        &tmp.path().join("in/old"),
        300,
        now_ms() - 15 * 24 * HOUR,
        4,
    );
    let future = corpus(&tmp.path().join("in/future"), 200, now_ms() + 3 * HOUR, 5);
    let overflow = tmp.path().join("overflow.ndjson");
    let mut cfg = config("cwl", &fake.endpoint, &overflow);
    cfg.delivery.requests_per_second = 10;
    let moto_free_sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&fake.endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .load()
        .await;
    let sink = make(cfg, client_from(&moto_free_sdk), &overflow);
    let started = std::time::Instant::now();
    let (report, _) = ship(&tmp.path().join("in"), sink).await;
    let elapsed = started.elapsed().as_secs_f64();

    let (rejected, stored, sum, first_last) = fake.snapshot(|s| {
        let stored: u64 = s.streams.values().map(|d| d.events).sum();
        let sum = s
            .streams
            .values()
            .fold(0u64, |a, d| a.wrapping_add(d.checksum));
        let fl = (
            s.accepted_calls.first().map(|c| c.0),
            s.accepted_calls.last().map(|c| c.0),
        );
        (s.rejected_batches.clone(), stored, sum, fl)
    });
    assert!(rejected.is_empty(), "no batch broke a rule: {rejected:?}");
    assert_eq!(stored as usize, recent.len(), "{report:?}");
    assert_eq!(
        sum,
        checksum(&recent),
        "exactly the in-window records, byte-identical"
    );
    assert_eq!(report.dead_lettered as usize, old.len() + future.len());
    let labels: HashMap<String, usize> =
        overflow_records(&overflow)
            .into_iter()
            .fold(HashMap::new(), |mut m, (l, _)| {
                *m.entry(l).or_default() += 1;
                m
            });
    assert_eq!(labels.get("too_old").copied(), Some(old.len()));
    assert_eq!(labels.get("too_new").copied(), Some(future.len()));
    // Throttling and 503s both make the sink back off and lower its rate.
    let throttled = fake.throttled.load(std::sync::atomic::Ordering::Relaxed)
        + fake.errors.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        throttled > 0 && report.throttled == throttled,
        "{report:?} vs {throttled}"
    );
    assert!(report.retries >= throttled);
    // Every call, throttled or not, counts against the configured 10 requests/s.
    let calls = fake.put_calls.load(std::sync::atomic::Ordering::Relaxed) as f64;
    if let (Some(a), Some(b)) = first_last {
        let window = b.duration_since(a).as_secs_f64().max(0.001);
        assert!(
            calls / window.max(1.0) <= 10.0 * 1.1 + 1.0,
            "{calls} calls in {window:.2}s (run {elapsed:.2}s)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_nearly_full_and_never_break_a_rule() {
    let fake = FakeCwl::start(FakeOptions::default()).await.expect("fake");
    let tmp = tempfile::tempdir().expect("tempdir");
    let recent = corpus(&tmp.path().join("in"), 30_000, now_ms() - 10 * HOUR, 6);
    let overflow = tmp.path().join("overflow.ndjson");
    let mut cfg = config("cwl-full", &fake.endpoint, &overflow);
    // One destination, so the only partial batch is the last one.
    cfg.log_group = "/all".into();
    cfg.log_stream = "all".into();
    cfg.delivery.linger_ms = 5_000;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&fake.endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .load()
        .await;
    let sink = make(cfg, client_from(&sdk), &overflow);
    let (report, _) = ship(tmp.path(), sink).await;
    let (rejected, calls, stored) = fake.snapshot(|s| {
        (
            s.rejected_batches.clone(),
            s.accepted_calls.clone(),
            s.streams.values().map(|d| d.events).sum::<u64>(),
        )
    });
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(stored as usize, recent.len());
    assert_eq!(report.records as usize, recent.len());
    let fill: Vec<f64> = calls
        .iter()
        .map(|(_, n, b)| (*n as f64 / 10_000.0).max(*b as f64 / 1_048_576.0))
        .collect();
    let avg = fill.iter().sum::<f64>() / fill.len() as f64;
    assert!(
        avg >= 0.9,
        "average fill {avg:.3} over {} batches",
        fill.len()
    );
    // The live counters the metrics endpoint mirrors agree with the final report.
    let live = trailhose_pipeline::sink::live_sinks()
        .lock()
        .map(|g| g.iter().find(|c| c.name == "cwl-full").cloned())
        .ok()
        .flatten()
        .expect("sink registered its live counters");
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(live.records.load(Relaxed), report.records);
    assert_eq!(live.batches.load(Relaxed), report.batches);
}
