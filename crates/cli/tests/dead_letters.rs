//! Dead letters for a fleet, through the binary and moto's server: `trailhose replay` from an
//! S3 prefix into NDJSON file sinks (exact record bytes, the sink each line names, `--delete`
//! only after acknowledgement), `run` with `[dead_letter] path = "s3://…"`, and the
//! `check-config` warning about local dead letters in an SQS config.

use std::path::Path;
use std::process::{Command, Output};
use trailhose_aws::{open_dead_letters, SseOptions};
use trailhose_pipeline::delivery::RefusedRecord;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trailhose"));
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    c
}

fn output(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().expect("the trailhose binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut v)
        .expect("valid gzip");
    v
}

/// Every record of the generated corpus, with the object it came from.
fn corpus(dir: &Path, events: u64) -> Vec<(String, Vec<u8>)> {
    #[derive(serde::Deserialize)]
    struct File<'a> {
        #[serde(borrow, rename = "Records")]
        records: Vec<&'a serde_json::value::RawValue>,
    }
    let s = trailhose_gen::generate(
        dir,
        &trailhose_gen::GenOptions {
            events,
            events_per_file: 20,
            gzip_level: 1,
            ..Default::default()
        },
    )
    .expect("corpus");
    let mut out = Vec::new();
    for f in &s.files {
        let json = gunzip(&std::fs::read(dir.join(&f.path)).expect("file"));
        let parsed: File = serde_json::from_slice(&json).expect("CloudTrail JSON");
        for r in parsed.records {
            out.push((format!("s3://trail/{}", f.key), r.get().as_bytes().to_vec()));
        }
    }
    out
}

fn lines_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for f in trailhose_pipeline::dir_source::list_files(dir).unwrap_or_default() {
        let bytes = std::fs::read(f).expect("output file");
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

async fn keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    s3.list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_an_s3_prefix_delivers_each_record_to_its_sink_byte_for_byte() {
    let moto = trailhose_testkit::moto();
    let sdk = moto.sdk_config("us-east-1").await;
    let s3 = trailhose_testkit::s3_client_for(&sdk);
    let bucket = format!("cli-replay-{}", std::process::id());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = corpus(&tmp.path().join("src"), 120);
    assert!(records.len() >= 100);

    // What two sinks refused once, in several writes (objects), as a fleet would leave them.
    let place = open_dead_letters(
        &format!("s3://{bucket}/fleet/dead-letters/"),
        &SseOptions::default(),
        &sdk,
    )
    .expect("place");
    let (to_files, to_siem) = records.split_at(records.len() - 30);
    for (sink, part) in [("files", to_files), ("siem", to_siem)] {
        for batch in part.chunks(25) {
            let entries: Vec<RefusedRecord<'_>> = batch
                .iter()
                .enumerate()
                .map(|(i, (source, bytes))| RefusedRecord {
                    reason: "refused for the test",
                    label: "rejected",
                    destination: "",
                    source,
                    record_index: i as u64,
                    record: bytes,
                })
                .collect();
            place.write(sink, &entries).await.expect("dead letters");
        }
    }
    let written = keys(&s3, &bucket, "fleet/dead-letters/").await;
    assert!(written.len() >= 5, "{written:?}");

    let out = tmp.path().join("out");
    let cfg = tmp.path().join("replay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\ntype = \"dir\"\npath = \"unused\"\n\
             [[sinks]]\ntype = \"ndjson\"\nname = \"files\"\ndir = {:?}\n\
             [[sinks]]\ntype = \"ndjson\"\nname = \"siem\"\ndir = {:?}\nshape = \"envelope\"\n\
             [[sinks]]\ntype = \"ndjson\"\nname = \"untouched\"\ndir = {:?}\n",
            out.join("files").display().to_string(),
            out.join("siem").display().to_string(),
            out.join("untouched").display().to_string(),
        ),
    )
    .expect("config");
    let (o, stderr) = output(
        bin()
            .args([
                "replay",
                &format!("s3://{bucket}/fleet/dead-letters/"),
                "--config",
            ])
            .arg(&cfg)
            .args([
                "--region",
                "us-east-1",
                "--endpoint-url",
                &moto.endpoint,
                "--delete",
            ]),
    );
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{} records sent", records.len()))
            && stderr.contains(&format!("to sink files: {} records", to_files.len()))
            && stderr.contains(&format!("to sink siem: {} records", to_siem.len()))
            && stderr.contains(&format!("deleted: {}", written.len())),
        "{stderr}"
    );

    // The `files` sink holds exactly the bytes of the records it refused.
    let mut expected: Vec<Vec<u8>> = to_files.iter().map(|(_, b)| b.clone()).collect();
    expected.sort();
    assert!(
        lines_in(&out.join("files")) == expected,
        "byte-identical records"
    );
    // The `siem` sink (envelope shape) got its records with their original object.
    let siem = lines_in(&out.join("siem"));
    assert_eq!(siem.len(), to_siem.len());
    let mut got: Vec<(String, String)> = siem
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).expect("envelope line");
            let t = &v["trailhose"];
            assert!(t["account"].is_string() && t["region"].is_string(), "{t}");
            (
                format!(
                    "s3://{}/{}",
                    t["bucket"].as_str().unwrap_or_default(),
                    t["key"].as_str().unwrap_or_default()
                ),
                v["record"].to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = to_siem
        .iter()
        .map(|(s, b)| {
            let v: serde_json::Value = serde_json::from_slice(b).expect("record");
            (s.clone(), v.to_string())
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert!(lines_in(&out.join("untouched")).is_empty());
    // Every object was acknowledged, so every object is gone.
    assert!(keys(&s3, &bucket, "fleet/dead-letters/").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_puts_unreadable_files_in_an_s3_dead_letter_prefix() {
    let moto = trailhose_testkit::moto();
    let sdk = moto.sdk_config("us-east-1").await;
    let s3 = trailhose_testkit::s3_client_for(&sdk);
    let bucket = format!("cli-run-dl-{}", std::process::id());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let tmp = tempfile::tempdir().expect("tempdir");
    let sample = tmp.path().join("sample");
    corpus(&sample, 40);
    let bad = sample.join(
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/111122223333_CloudTrail_us-east-1_20261101T0100Z_BADBADBADBADBAD0.json.gz",
    );
    std::fs::create_dir_all(bad.parent().expect("parent")).expect("mkdir");
    std::fs::write(&bad, b"\x1f\x8b\x08\x00garbage").expect("write");
    let cfg = tmp.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\ntype = \"dir\"\npath = {:?}\n\
             [dead_letter]\npath = \"s3://{bucket}/dl/\"\nsse = \"AES256\"\nregion = \"us-east-1\"\nendpoint_url = {:?}\n\
             [[sinks]]\ntype = \"discard\"\nname = \"null\"\n",
            sample.display().to_string(),
            moto.endpoint,
        ),
    )
    .expect("config");
    let (o, stderr) = output(bin().args(["run", "--config"]).arg(&cfg));
    assert_eq!(o.status.code(), Some(1), "a dead-lettered file: {stderr}");
    assert!(
        stderr.contains(&format!("written to s3://{bucket}/dl/")),
        "{stderr}"
    );
    let stored = keys(&s3, &bucket, "dl/_source/").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let body = s3
        .get_object()
        .bucket(&bucket)
        .key(&stored[0])
        .send()
        .await
        .expect("get");
    assert_eq!(
        body.server_side_encryption().map(|s| s.as_str()),
        Some("AES256")
    );
    let bytes = body.body.collect().await.expect("body").into_bytes();
    let v: serde_json::Value = serde_json::from_slice(&gunzip(&bytes)).expect("one JSON line");
    assert_eq!(v["kind"], "corrupt_compression");
    assert!(v["source"]
        .as_str()
        .is_some_and(|s| s.contains("BADBADBADBADBAD0")));
}

#[test]
fn check_config_warns_when_an_sqs_config_dead_letters_to_local_disk() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = "[source]\ntype = \"sqs\"\nqueue_url = \"https://sqs.us-east-1.amazonaws.com/1/q\"\n[[source.buckets]]\nname = \"trail\"\n[[sinks]]\ntype = \"stdout\"\nname = \"console\"\n";
    let check = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).expect("config");
        let (o, stderr) = output(bin().arg("check-config").arg(&p));
        assert!(o.status.success(), "a warning is not an error: {stderr}");
        stderr
    };
    let local = check(
        "local.toml",
        &format!("{base}[dead_letter]\npath = \"/var/lib/trailhose/dl.ndjson\"\n"),
    );
    assert!(
        local.contains("warning: dead_letter.path = \"/var/lib/trailhose/dl.ndjson\"")
            && local.contains("local disk is not durable in a container; use s3://"),
        "{local}"
    );
    let s3 = check(
        "s3.toml",
        &format!("{base}[dead_letter]\npath = \"s3://dl-bucket/trailhose/\"\n"),
    );
    assert!(!s3.contains("warning"), "{s3}");
    // A directory source reads local files anyway: no warning.
    let dir = check(
        "dir.toml",
        "[source]\ntype = \"dir\"\npath = \"x\"\n[[sinks]]\ntype = \"stdout\"\nname = \"o\"\n",
    );
    assert!(!dir.contains("warning"), "{dir}");
}
