//! The archive sink through its pipeline interface: what is acknowledged is in committed
//! files (and only then), every record lands once in the partition of its account, region and
//! day, and a write failure fails the object instead of losing it.

use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use trailhose_archive::ArchiveSink;
use trailhose_config::archive::{ArchiveFormat, ArchiveSinkConfig};
use trailhose_core::fields::FieldParser;
use trailhose_pipeline::ack::{ObjectAck, ObjectOutcome};
use trailhose_pipeline::chunk::{ObjectMeta, RecordChunk};
use trailhose_pipeline::{Delivery, Sink};

fn config(location: &Path, max_file_seconds: u64) -> ArchiveSinkConfig {
    let text = format!(
        "name = \"archive\"\nlocation = {:?}\nmax_file_seconds = {max_file_seconds}\nmax_open_files = 2\n",
        location.display().to_string()
    );
    toml::from_str(&text).expect("archive config")
}

fn record(i: usize, account: &str, day: u32) -> Vec<u8> {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","userName":"u{i}"}},"eventTime":"2024-03-{day:02}T10:00:{:02}Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"eu-west-1","eventID":"id-{i}","recipientAccountId":"{account}","requestParameters":{{"bucketName":"b{i}"}}}}"#,
        i % 60
    )
    .into_bytes()
}

/// One chunk holding `records`, whose object outcome arrives on the returned receiver.
fn delivery(records: &[Vec<u8>]) -> (Delivery, tokio::sync::oneshot::Receiver<ObjectOutcome>) {
    let mut chunk = RecordChunk::new(
        Arc::new(ObjectMeta {
            source: "test-object".into(),
            ..Default::default()
        }),
        1 << 16,
    );
    let mut parser = FieldParser::new();
    for (i, r) in records.iter().enumerate() {
        let fields = parser.parse(r, i as u64, 0).expect("valid record");
        chunk.push(r, i as u64, fields, false);
    }
    let (ack, outcome) = ObjectAck::new();
    let d = Delivery {
        chunk: Arc::new(chunk),
        selection: None,
        token: ack.token(),
    };
    drop(ack);
    (d, outcome)
}

fn parquet_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// eventID → partition directory, read back from the files.
fn archived(root: &Path) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    for f in parquet_files(root) {
        assert!(
            f.extension().is_some_and(|e| e == "parquet"),
            "unexpected file {}",
            f.display()
        );
        let dir = f
            .parent()
            .and_then(|p| p.strip_prefix(root).ok())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).expect("open"))
                .expect("a complete parquet file")
                .build()
                .expect("reader");
        for batch in reader {
            let batch = batch.expect("batch");
            let col = batch.column_by_name("eventid").expect("eventid");
            let col = col
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .expect("utf8");
            for i in 0..col.len() {
                let previous = ids.insert(col.value(i).to_owned(), dir.clone());
                assert!(previous.is_none(), "{} archived twice", col.value(i));
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledges_only_committed_records_partitioned_by_account_and_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("archive");
    let sink = Box::new(ArchiveSink::new(config(&root, 2), None).expect("sink"));
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(sink.run(rx));

    // Three partitions (two accounts, two days) through a sink that keeps at most two open.
    let records: Vec<Vec<u8>> = (0..300)
        .map(|i| {
            record(
                i,
                ["111111111111", "222222222222"][i % 2],
                1 + (i % 3 == 0) as u32,
            )
        })
        .collect();
    let (d, mut outcome) = delivery(&records);
    tx.send(d).await.expect("send");
    // Not acknowledged while a file holding its records is still open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        outcome.try_recv().is_err(),
        "acknowledged before every file holding its records was committed"
    );
    let verdict = tokio::time::timeout(Duration::from_secs(10), outcome)
        .await
        .expect("the age limit commits the files")
        .expect("outcome");
    assert_eq!(verdict, ObjectOutcome::Delivered { dead_lettered: 0 });
    let ids = archived(&root);
    assert_eq!(ids.len(), 300);
    for i in 0..300 {
        let account = ["111111111111", "222222222222"][i % 2];
        let day = 1 + (i % 3 == 0) as u32;
        assert_eq!(
            ids.get(&format!("id-{i}")).map(String::as_str),
            Some(format!("account={account}/region=eu-west-1/dt=2024-03-{day:02}").as_str())
        );
    }
    drop(tx);
    let report = task.await.expect("sink task");
    assert_eq!(report.records, 300);
    assert!(
        report.batches >= 4,
        "max_open_files = 2 forces early commits: {report:?}"
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_input_commits_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("archive");
    let mut cfg = config(&root, 3600);
    cfg.format = ArchiveFormat::NdjsonGz;
    let sink = Box::new(ArchiveSink::new(cfg, None).expect("sink"));
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(sink.run(rx));
    let records: Vec<Vec<u8>> = (0..50).map(|i| record(i, "333333333333", 5)).collect();
    let (d, outcome) = delivery(&records);
    tx.send(d).await.expect("send");
    drop(tx);
    let report = task.await.expect("sink task");
    assert_eq!(
        outcome.await.ok(),
        Some(ObjectOutcome::Delivered { dead_lettered: 0 })
    );
    assert_eq!(report.records, 50);
    let files = parquet_files(&root);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().ends_with(".ndjson.gz"));
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&files[0]).expect("open")),
        &mut text,
    )
    .expect("gzip");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 50);
    assert_eq!(
        lines[7].as_bytes(),
        &records[7][..],
        "original bytes, one per line"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_failure_fails_the_object_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("archive");
    let sink = Box::new(ArchiveSink::new(config(&root, 3600), None).expect("sink"));
    // The partition directory cannot be created: a file is in its way.
    std::fs::write(root.join("account=444444444444"), b"in the way").expect("blocker");
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(sink.run(rx));
    let records: Vec<Vec<u8>> = (0..10).map(|i| record(i, "444444444444", 7)).collect();
    let (d, outcome) = delivery(&records);
    tx.send(d).await.expect("send");
    drop(tx);
    let report = task.await.expect("sink task");
    match outcome.await {
        Ok(ObjectOutcome::Failed { reasons }) => {
            assert!(
                reasons.iter().any(|r| r.contains("account=444444444444")),
                "{reasons:?}"
            );
        }
        other => panic!("expected a failed object, got {other:?}"),
    }
    assert_eq!(report.records, 0);
    assert_eq!(report.failed_deliveries, 1);
}
