//! The S3 dead-letter place and `replay` against moto's server through the real SDK: a write
//! returns only once its object is in the bucket, the object gunzips to exactly the lines
//! `encode_lines` makes, SSE is applied, failures name the bucket and key but no secret, and
//! replay ships the records to the sink each line names, deleting only acknowledged objects.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use trailhose_aws::replay::{replay, BuildFuture, ReplayOptions, ReplaySource};
use trailhose_aws::{open_dead_letters, open_source_dead_letters, SseOptions};
use trailhose_pipeline::deadletter::DeadLetter;
use trailhose_pipeline::delivery::dead_letters::encode_lines;
use trailhose_pipeline::delivery::RefusedRecord;
use trailhose_pipeline::filter::CompiledFilter;
use trailhose_pipeline::sink::{Delivery, Sink, SinkFuture, SinkReport};
use trailhose_pipeline::SinkSpec;

const REGION: &str = "us-east-1";

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

async fn setup() -> (aws_config::SdkConfig, aws_sdk_s3::Client, String) {
    let sdk = trailhose_testkit::moto().sdk_config(REGION).await;
    let s3 = trailhose_testkit::s3_client_for(&sdk);
    let bucket = unique("dl");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    (sdk, s3, bucket)
}

async fn keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list");
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip object");
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

const PRETTY: &[u8] =
    b"{\n  \"eventID\": \"e1\",\n  \"eventName\": \"RunInstances\",\n  \"a\": [1, 2]\n}";
const COMPACT: &[u8] =
    br#"{"eventVersion":"1.08","eventID":"e2","eventName":"PutObject","x":"\u00e9\"q"}"#;

fn entries() -> Vec<RefusedRecord<'static>> {
    vec![
        RefusedRecord {
            reason: "older than 14 days",
            label: "too_old",
            destination: "/cloudtrail/1/us-east-1",
            source: "s3://trail/AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/01/f.json.gz",
            record_index: 7,
            record: PRETTY,
        },
        RefusedRecord {
            reason: "event too large",
            label: "too_large",
            destination: "",
            source: "s3://trail/x.json.gz",
            record_index: 0,
            record: COMPACT,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_returns_once_its_object_is_stored_and_it_gunzips_to_the_exact_lines() {
    let (sdk, s3, bucket) = setup().await;
    let place = open_dead_letters(
        &format!("s3://{bucket}/dead/letters/"),
        &SseOptions::default(),
        &sdk,
    )
    .expect("s3 place");
    assert_eq!(place.describe(), format!("s3://{bucket}/dead/letters/"));
    let entries = entries();
    // `encode_lines` stamps the time to the second: the object holds one of these.
    let mut before = Vec::new();
    encode_lines("cwl", &entries, &mut before);
    place.write("cwl", &entries).await.expect("written");
    let mut after = Vec::new();
    encode_lines("cwl", &entries, &mut after);
    // No waiting, no flush: the object is there when the write returned.
    let stored = keys(&s3, &bucket, "dead/letters/").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let key = &stored[0];
    let pid = format!("-{}-", std::process::id());
    assert!(
        key.starts_with("dead/letters/cwl/dt=")
            && key.ends_with(".ndjson.gz")
            && key.contains(&pid),
        "{key}"
    );
    let lines = gunzip(&get(&s3, &bucket, key).await);
    assert!(
        lines == before || lines == after,
        "{}",
        String::from_utf8_lossy(&lines)
    );
    assert_eq!(place.count(), 2);
    // The pretty record is compacted; the compact one keeps its exact bytes.
    let text = String::from_utf8(lines).expect("utf-8");
    let second = text.lines().nth(1).expect("two lines");
    assert!(
        second.ends_with(&format!(
            ",\"record\":{}}}",
            std::str::from_utf8(COMPACT).expect("utf-8")
        )),
        "{second}"
    );
    // Every write is an object of its own.
    place.write("cwl", &entries[..1]).await.expect("written");
    place.write("siem", &entries[1..]).await.expect("written");
    assert_eq!(keys(&s3, &bucket, "dead/letters/cwl/").await.len(), 2);
    assert_eq!(keys(&s3, &bucket, "dead/letters/siem/").await.len(), 1);
    assert_eq!(place.count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_encrypted_as_configured() {
    let (sdk, s3, bucket) = setup().await;
    for (sse, tag) in [
        (
            SseOptions {
                sse: Some("AES256".into()),
                kms_key_id: None,
            },
            "aes",
        ),
        (
            SseOptions {
                sse: Some("aws:kms".into()),
                kms_key_id: Some("alias/trailhose-dl".into()),
            },
            "kms",
        ),
    ] {
        let place = open_dead_letters(&format!("s3://{bucket}/{tag}"), &sse, &sdk).expect("place");
        place.write("cwl", &entries()).await.expect("written");
        let stored = keys(&s3, &bucket, &format!("{tag}/")).await;
        assert_eq!(stored.len(), 1);
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(&stored[0])
            .send()
            .await
            .expect("head");
        assert_eq!(
            head.server_side_encryption().map(|s| s.as_str()),
            sse.sse.as_deref(),
            "{tag}"
        );
        if let Some(k) = &sse.kms_key_id {
            assert!(
                head.ssekms_key_id()
                    .is_some_and(|got| got.contains(k.trim_start_matches("alias/"))),
                "{:?}",
                head.ssekms_key_id()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_put_is_an_error_naming_bucket_and_key_and_never_the_secret() {
    let (sdk, _s3, _bucket) = setup().await;
    let secret = "wJalrXUtnFEMI-K7MDENG-SECRET-sentinel";
    let sdk = sdk
        .to_builder()
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new("AKIDSENTINEL", secret, None, None, "test"),
        ))
        .build();
    let missing = unique("no-such-bucket");
    let place = open_dead_letters(&format!("s3://{missing}/dl/"), &SseOptions::default(), &sdk)
        .expect("place");
    let e = place
        .write("cwl", &entries())
        .await
        .expect_err("the bucket does not exist")
        .to_string();
    assert!(
        e.contains(&format!("s3://{missing}/dl/cwl/dt=")) && e.contains("NoSuchBucket"),
        "{e}"
    );
    assert!(!e.contains(secret), "{e}");
    assert_eq!(place.count(), 0, "nothing counted as written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sources_place_writes_one_object_per_entry() {
    let (sdk, s3, bucket) = setup().await;
    let dlq = open_source_dead_letters(&format!("s3://{bucket}/dl"), &SseOptions::default(), &sdk)
        .expect("place");
    assert!(dlq.is_remote());
    for kind in ["corrupt_compression", "not_cloudtrail"] {
        dlq.write(&DeadLetter {
            source: "s3://trail/k.json.gz",
            kind,
            reason: "bad",
            records_before_fault: 3,
            time: "2024-01-01T00:00:00Z".into(),
        })
        .await
        .expect("written");
    }
    let stored = keys(&s3, &bucket, "dl/_source/dt=").await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    let mut kinds = Vec::new();
    for k in &stored {
        let lines = gunzip(&get(&s3, &bucket, k).await);
        let v: serde_json::Value = serde_json::from_slice(&lines).expect("one JSON line");
        assert_eq!(v["records_before_fault"], 3);
        kinds.push(v["kind"].as_str().unwrap_or_default().to_owned());
    }
    kinds.sort();
    assert_eq!(kinds, ["corrupt_compression", "not_cloudtrail"]);
}

/// (source object, record bytes)
type Got = (String, Vec<u8>);

/// Collects record bytes (and the source object of each); `refuse` dead-letters everything
/// instead, `fail` fails everything.
#[derive(Clone)]
struct Collect {
    name: String,
    out: Arc<Mutex<Vec<Got>>>,
    mode: Mode,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Take,
    Refuse,
    Fail,
}

impl Sink for Collect {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, mut rx: mpsc::Receiver<Delivery>) -> SinkFuture {
        Box::pin(async move {
            let mut report = SinkReport {
                name: self.name.clone(),
                ..Default::default()
            };
            while let Some(d) = rx.recv().await {
                let n = d.record_count() as u64;
                match self.mode {
                    Mode::Take => {
                        let mut out = self.out.lock().expect("collector");
                        for r in d.records() {
                            out.push((d.chunk.object.source.clone(), d.chunk.bytes_of(r).to_vec()));
                        }
                        report.records += n;
                        d.token.ack();
                    }
                    Mode::Refuse => {
                        report.dead_lettered += n;
                        d.token.dead_lettered(n);
                    }
                    Mode::Fail => {
                        report.failed_deliveries += 1;
                        d.token.fail("down");
                    }
                }
            }
            report
        })
    }
}

struct Sinks(BTreeMap<String, Collect>);

impl Sinks {
    fn builder(&self) -> impl FnMut(&str) -> BuildFuture + '_ {
        move |name: &str| {
            let spec = self.0.get(name).map(|c| SinkSpec {
                sink: Box::new(c.clone()),
                filter: CompiledFilter::pass_all(),
            });
            Box::pin(async move { Ok(spec) })
        }
    }

    fn got(&self, name: &str) -> Vec<Got> {
        self.0[name].out.lock().expect("collector").clone()
    }
}

fn sinks(specs: &[(&str, Mode)]) -> Sinks {
    Sinks(
        specs
            .iter()
            .map(|(n, m)| {
                (
                    (*n).to_owned(),
                    Collect {
                        name: (*n).to_owned(),
                        out: Arc::default(),
                        mode: *m,
                    },
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_ships_each_record_to_its_sink_and_deletes_only_acknowledged_whole_objects() {
    let (sdk, s3, bucket) = setup().await;
    let url = format!("s3://{bucket}/dl/");
    let place = open_dead_letters(&url, &SseOptions::default(), &sdk).expect("place");
    let e = entries();
    place.write("a", &e).await.expect("to a");
    place.write("b", &e[1..]).await.expect("to b");
    place.write("refusing", &e[..1]).await.expect("to refusing");
    place.write("down", &e[..1]).await.expect("to down");
    place
        .write("gone", &e[..1])
        .await
        .expect("to a sink not in the config");
    // The source's own entries live under the same prefix: not replayable, kept.
    let src = open_source_dead_letters(&url, &SseOptions::default(), &sdk).expect("place");
    src.write_json(&serde_json::json!({"source": "s3://t/k", "kind": "x", "reason": "y"}))
        .await
        .expect("source entry");
    // Something else under the prefix is left alone.
    s3.put_object()
        .bucket(&bucket)
        .key("dl/README.txt")
        .body(b"hello".to_vec().into())
        .send()
        .await
        .expect("put");
    // A sibling prefix is not part of `dl/`.
    s3.put_object()
        .bucket(&bucket)
        .key("dl2/a/x.ndjson.gz")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("put");

    let sinks = sinks(&[
        ("a", Mode::Take),
        ("b", Mode::Take),
        ("refusing", Mode::Refuse),
        ("down", Mode::Fail),
    ]);
    let source = ReplaySource::parse(
        &format!("s3://{bucket}/dl"),
        Some(trailhose_testkit::s3_client_for(&sdk)),
    )
    .expect("source");
    let opts = ReplayOptions {
        delete: true,
        ..Default::default()
    };
    let mut build = sinks.builder();
    let r = replay(&source, &mut build, &opts).await.expect("replay");
    assert_eq!(r.objects, 6, "{r:#?}");
    assert_eq!(r.objects_skipped, 1, "README.txt");
    assert_eq!(r.lines, 7);
    assert_eq!(r.records_sent(), 5);
    assert_eq!(r.other_lines, 1);
    assert_eq!(r.unknown_sink, BTreeMap::from([("gone".to_owned(), 1)]));
    assert_eq!(r.objects_failed, 1, "the object for `down`");
    assert_eq!(r.dead_lettered_again, 1);
    assert_eq!(r.deleted, 3, "a, b and refusing: {r:#?}");
    assert_eq!(
        r.kept, 2,
        "the unknown sink's and the source entry's objects"
    );
    assert!(!r.is_clean());

    // The exact record bytes (compacted where the source was pretty), with the original object.
    let compact_pretty = br#"{"eventID":"e1","eventName":"RunInstances","a":[1,2]}"#.to_vec();
    let mut a = sinks.got("a");
    a.sort();
    assert_eq!(
        a,
        vec![
            (e[0].source.to_owned(), compact_pretty),
            (e[1].source.to_owned(), COMPACT.to_vec()),
        ]
    );
    assert_eq!(
        sinks.got("b"),
        vec![(e[1].source.to_owned(), COMPACT.to_vec())]
    );

    let left = keys(&s3, &bucket, "dl/").await;
    let groups: Vec<&str> = left
        .iter()
        .map(|k| k.split('/').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        groups,
        ["README.txt", "_source", "down", "gone"],
        "{left:?}"
    );
    assert_eq!(keys(&s3, &bucket, "dl2/").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_local_file_can_send_everything_to_one_sink() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("dl.ndjson");
    let mut lines = Vec::new();
    encode_lines("old-name", &entries(), &mut lines);
    std::fs::write(&path, &lines).expect("file");
    let sinks = sinks(&[("new", Mode::Take)]);
    let source = ReplaySource::parse(&path.display().to_string(), None).expect("local");
    let mut build = sinks.builder();
    let opts = ReplayOptions {
        sink_override: Some("new".into()),
        delete: true,
        ..Default::default()
    };
    let r = replay(&source, &mut build, &opts).await.expect("replay");
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(r.records_sent(), 2);
    assert_eq!(r.deleted, 1);
    assert!(!path.exists(), "deleted after acknowledgement");
    let got: Vec<Vec<u8>> = sinks.got("new").into_iter().map(|(_, b)| b).collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1], COMPACT);

    // A gzip file is read too; without `delete` it stays.
    let gz_path = tmp.path().join("dl.ndjson.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &lines).expect("gzip");
    std::fs::write(&gz_path, gz.finish().expect("gzip")).expect("file");
    let source = ReplaySource::parse(&gz_path.display().to_string(), None).expect("local");
    let opts = ReplayOptions {
        sink_override: Some("new".into()),
        ..Default::default()
    };
    let r = replay(&source, &mut build, &opts).await.expect("replay");
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(r.records_sent(), 2);
    assert!(gz_path.exists());
}
