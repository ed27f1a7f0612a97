//! Backfill against moto's S3 (real SDK, real HTTP): a generated trail is shipped once, a date
//! range selects days, and a killed run resumes from its checkpoint without re-shipping what
//! it recorded.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use trailhose_backfill::checkpoint::Checkpoint;
use trailhose_backfill::plan::{days, parse_target};
use trailhose_backfill::{run_backfill, BackfillOptions};
use trailhose_pipeline::deadletter::DeadLetterFile;
use trailhose_pipeline::sinks::ndjson::{NdjsonSink, Shape, Target as FileTarget};
use trailhose_pipeline::{Pipeline, SinkSpec};

const DAY: i64 = 86_400_000;

async fn upload(s3: &aws_sdk_s3::Client, bucket: &str, root: &Path) -> Vec<(String, Vec<Vec<u8>>)> {
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
    let mut objects = Vec::new();
    for f in trailhose_pipeline::dir_source::list_files(root).expect("list") {
        let key = f
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .replace('\\', "/");
        let body = std::fs::read(&f).expect("read");
        let mut recs = Vec::new();
        let (_, r) = trailhose_core::read_records(
            &body[..],
            &Default::default(),
            trailhose_core::FieldMode::ValidateOnly,
            |r| recs.push(r.raw.bytes.to_vec()),
        );
        r.expect("valid generated file");
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .expect("put");
        objects.push((key, recs));
    }
    objects
}

fn opts(bucket: &str, start: &str, end: &str) -> BackfillOptions {
    BackfillOptions {
        target: parse_target(&format!("s3://{bucket}/AWSLogs/")).expect("target"),
        days: days(start, end).expect("days"),
        accounts: Vec::new(),
        regions: Vec::new(),
        list_concurrency: 4,
        objects_in_flight: 4,
        limits: Default::default(),
        chunking: Default::default(),
    }
}

async fn run_once(
    s3: &aws_sdk_s3::Client,
    o: BackfillOptions,
    cp: Arc<Checkpoint>,
    out: &Path,
) -> trailhose_backfill::BackfillReport {
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink: Box::new(NdjsonSink {
                name: "out".into(),
                target: FileTarget::Dir {
                    dir: out.to_path_buf(),
                    prefix: "records".into(),
                    max_file_bytes: 1 << 30,
                    fsync: false,
                },
                shape: Shape::Raw,
            }),
            filter: Default::default(),
        }],
        8,
    );
    let dlq = Arc::new(DeadLetterFile::new(&out.join("dlq.ndjson")));
    let report = run_backfill(s3.clone(), o, cp, pipeline.input(), dlq, None)
        .await
        .expect("backfill runs");
    pipeline.shutdown().await;
    report
}

fn lines(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in trailhose_pipeline::dir_source::list_files(dir).unwrap_or_default() {
        if f.extension().is_some_and(|e| e == "ndjson") && !f.ends_with("dlq.ndjson") {
            let data = std::fs::read(f).expect("read");
            out.extend(
                data.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
    out
}

fn gen_trail(dir: &Path, start_ms: i64) {
    // One file every ~5 minutes per account/region: 2 accounts × 1 region × 900 files span
    // about three days.
    let o = trailhose_gen::GenOptions {
        events: 3600,
        events_per_file: 2,
        accounts: 2,
        regions: 1,
        start_time_ms: start_ms,
        gzip_level: 1,
        ..Default::default()
    };
    trailhose_gen::generate(dir, &o).expect("generate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_ships_every_record_once_and_honours_the_range() {
    let moto = trailhose_testkit::moto();
    let sdk = moto.sdk_config("us-east-1").await;
    let s3 = trailhose_testkit::s3_client_for(&sdk);
    let tmp = tempfile::tempdir().expect("tempdir");
    // 2026-10-01T00:00Z
    let start = trailhose_core::timefmt::days_from_civil(2026, 10, 1) * DAY;
    gen_trail(&tmp.path().join("trail"), start);
    let objects = upload(&s3, "backfill-all", &tmp.path().join("trail")).await;
    let all: Vec<Vec<u8>> = objects.iter().flat_map(|(_, r)| r.clone()).collect();
    let days_present: HashSet<String> = objects
        .iter()
        .map(|(k, _)| k.split('/').skip(5).take(3).collect::<Vec<_>>().join("-"))
        .collect();
    assert!(
        days_present.len() >= 3,
        "trail spans days: {days_present:?}"
    );

    let cp = Arc::new(Checkpoint::open(&tmp.path().join("cp1")).expect("checkpoint"));
    let report = run_once(
        &s3,
        opts("backfill-all", "2026-09-30", "2026-10-31"),
        cp,
        &tmp.path().join("out1"),
    )
    .await;
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    assert_eq!(report.delivered as usize, objects.len());
    let mut got = lines(&tmp.path().join("out1"));
    let mut want = all.clone();
    got.sort();
    want.sort();
    assert!(
        got == want,
        "every record exactly once ({} vs {})",
        got.len(),
        want.len()
    );

    // Only the first day.
    let cp = Arc::new(Checkpoint::open(&tmp.path().join("cp2")).expect("checkpoint"));
    let report = run_once(
        &s3,
        opts("backfill-all", "2026-10-01", "2026-10-01"),
        cp,
        &tmp.path().join("out2"),
    )
    .await;
    let first_day: usize = objects
        .iter()
        .filter(|(k, _)| k.contains("/2026/10/01/"))
        .map(|(_, r)| r.len())
        .sum();
    assert_eq!(report.records as usize, first_day);
    assert_eq!(lines(&tmp.path().join("out2")).len(), first_day);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backfill_resumes_without_reshipping() {
    let moto = trailhose_testkit::moto();
    let sdk = moto.sdk_config("us-east-1").await;
    let s3 = trailhose_testkit::s3_client_for(&sdk);
    let tmp = tempfile::tempdir().expect("tempdir");
    let start = trailhose_core::timefmt::days_from_civil(2026, 9, 1) * DAY;
    gen_trail(&tmp.path().join("trail"), start);
    let objects = upload(&s3, "backfill-resume", &tmp.path().join("trail")).await;
    let cp_path = tmp.path().join("resume.checkpoint");

    // First run, killed once a third of the objects are checkpointed.
    let cp = Arc::new(Checkpoint::open(&cp_path).expect("checkpoint"));
    let out1 = tmp.path().join("out1");
    let run = tokio::spawn({
        let s3 = s3.clone();
        let cp = cp.clone();
        let out1 = out1.clone();
        async move {
            run_once(
                &s3,
                opts("backfill-resume", "2026-08-31", "2026-09-30"),
                cp,
                &out1,
            )
            .await
        }
    });
    let target = objects.len() / 3;
    loop {
        let n = std::fs::read_to_string(&cp_path)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= target || run.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    run.abort();
    let _ = run.await;
    drop(cp);

    let cp = Arc::new(Checkpoint::open(&cp_path).expect("reopen"));
    let done: HashSet<String> = std::fs::read_to_string(&cp_path)
        .expect("checkpoint")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    assert!(
        !done.is_empty() && done.len() < objects.len(),
        "killed mid-way: {}",
        done.len()
    );
    let out2 = tmp.path().join("out2");
    let report = run_once(
        &s3,
        opts("backfill-resume", "2026-08-31", "2026-09-30"),
        cp,
        &out2,
    )
    .await;
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    assert_eq!(report.skipped_checkpoint as usize, done.len());

    let second: HashSet<Vec<u8>> = lines(&out2).into_iter().collect();
    for (key, recs) in &objects {
        if done.contains(key) {
            assert!(
                recs.iter().all(|r| !second.contains(r)),
                "{key} re-shipped after it was checkpointed"
            );
        }
    }
    let mut union: HashSet<Vec<u8>> = lines(&out1).into_iter().collect();
    union.extend(second);
    let all: HashSet<Vec<u8>> = objects.iter().flat_map(|(_, r)| r.clone()).collect();
    assert_eq!(union, all, "nothing lost across the kill");
}
