//! End-to-end tests of `trailhose generate --digests` and `trailhose validate`: local trees,
//! S3 through moto, and the cross-check against aws-cli's own validator.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trailhose"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the trailhose binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Generates a signed corpus; returns (corpus dir, public key dir).
fn signed_corpus(root: &Path) -> (PathBuf, PathBuf) {
    let corpus = root.join("corpus");
    let o = run(bin()
        .args([
            "generate",
            "--events",
            "1200",
            "--accounts",
            "2",
            "--regions",
            "1",
        ])
        .args(["--events-per-file", "10", "--gzip-level", "1", "--digests"])
        .arg("--out")
        .arg(&corpus)
        .arg("--signing-key")
        .arg(root.join("keys/signing.pem")));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("new 2048-bit key"), "{}", text(&o));
    (corpus, root.join("keys/public-keys"))
}

fn validate(corpus: &Path, keys: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let o = run(bin()
        .arg("validate")
        .arg(corpus)
        .arg("--public-keys")
        .arg(keys)
        .args(["--format", "json"])
        .args(extra));
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("JSON report ({e}): {}", text(&o)));
    (o, v)
}

fn first_log(corpus: &Path) -> PathBuf {
    let mut stack = vec![corpus.join("AWSLogs")];
    let mut logs = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains("_CloudTrail_") {
                logs.push(p);
            }
        }
    }
    logs.sort();
    logs.swap_remove(logs.len() / 2)
}

#[test]
fn generate_digests_then_validate_then_catch_tampering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (corpus, keys) = signed_corpus(dir.path());

    let (o, v) = validate(&corpus, &keys, &["--strict"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(v["ok"], true);
    assert_eq!(v["log_files"]["valid"], 120);
    assert!(v["digests"]["valid"].as_u64().unwrap_or(0) >= 4);

    // Text mode, verbose: aws-cli-like lines.
    let o = run(bin()
        .arg("validate")
        .arg(&corpus)
        .arg("--public-keys")
        .arg(&keys)
        .arg("--verbose"));
    assert_eq!(o.status.code(), Some(0));
    let t = text(&o);
    assert!(
        t.contains("Digest file\ts3://trailhose-sample/AWSLogs/"),
        "{t}"
    );
    assert!(t.contains("\tvalid"), "{t}");
    assert!(t.contains("RESULT: valid"), "{t}");

    // One byte of one log file.
    let victim = first_log(&corpus);
    let original = std::fs::read(&victim).expect("read");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&original[..])
        .read_to_end(&mut raw)
        .expect("gunzip");
    let i = raw.len() / 2;
    raw[i] = if raw[i] == b'q' { b'r' } else { b'q' };
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&raw).expect("gzip");
    std::fs::write(&victim, e.finish().expect("gzip")).expect("write");
    let (o, v) = validate(&corpus, &keys, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let problems = v["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["kind"], "log_modified");
    let key = problems[0]["key"].as_str().unwrap_or_default();
    assert!(victim.to_string_lossy().ends_with(key), "{key}");

    // Filters: the other account alone is still valid.
    let account = key.split('/').nth(2).unwrap_or_default();
    let chains = v["chains"].as_array().expect("chains");
    let other = chains
        .iter()
        .map(|c| c["account_id"].as_str().unwrap_or_default())
        .find(|a| *a != account)
        .expect("a second account");
    let (o, v) = validate(
        &corpus,
        &keys,
        &["--account-id", other, "--region", "us-east-1"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(v["chains"].as_array().map(Vec::len), Some(1));

    // A trail ARN of another trail finds nothing (aws-cli semantics: name, home Region, account).
    let (o, v) = validate(
        &corpus,
        &keys,
        &[
            "--trail-arn",
            "arn:aws:cloudtrail:us-east-1:123456789012:trail/other",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(v["digests"]["valid"], 0);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run(bin().arg("validate").arg(dir.path()));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no public keys"), "{}", text(&o));
    let o = run(bin()
        .arg("validate")
        .arg(dir.path())
        .args(["--public-keys", "/nonexistent-keys"]));
    assert_eq!(o.status.code(), Some(2));
    let o = run(bin().args(["validate", "s3://", "--public-keys", "x"]));
    assert_eq!(o.status.code(), Some(2));
    let o = run(bin().arg("validate").arg(dir.path()).args([
        "--trail-arn",
        "arn:aws:cloudtrail:us-east-1:12:trail/x",
        "--public-keys",
        "x",
    ]));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("Invalid trail ARN"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validates_s3_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = dir.path().join("corpus");
    let o = run(bin()
        .args([
            "generate",
            "--events",
            "600",
            "--accounts",
            "1",
            "--regions",
            "1",
        ])
        .args(["--events-per-file", "10", "--gzip-level", "1", "--digests"])
        .args(["--digest-bucket", "cli-validate-bucket"])
        .arg("--out")
        .arg(&corpus)
        .arg("--signing-key")
        .arg(dir.path().join("k.pem")));
    assert!(o.status.success(), "{}", text(&o));

    let moto = trailhose_testkit::moto();
    let cfg = moto.sdk_config("us-east-1").await;
    let s3 = trailhose_testkit::s3_client_for(&cfg);
    s3.create_bucket()
        .bucket("cli-validate-bucket")
        .send()
        .await
        .expect("create bucket");
    trailhose_validate::s3::upload_tree(&s3, "cli-validate-bucket", "", &corpus)
        .await
        .expect("upload");

    let o = run(bin()
        .args(["validate", "s3://cli-validate-bucket", "--format", "json"])
        .arg("--public-keys")
        .arg(dir.path().join("public-keys"))
        .args([
            "--endpoint-url",
            &moto.endpoint,
            "--aws-region",
            "us-east-1",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["log_files"]["valid"], 60);
    assert_eq!(v["source"], "s3://cli-validate-bucket");
}

/// aws-cli's own validator classes accept the chains `generate --digests` writes, and reject
/// the same tampering trailhose rejects (tests/awscli_crosscheck.py).
#[test]
fn awscli_validator_agrees() {
    let has_awscli = Command::new("python3")
        .args(["-c", "import awscli.customizations.cloudtrail.validation"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_awscli,
        "the cross-check needs the AWS CLI's Python package: python3 -m pip install awscli"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/awscli_crosscheck.py");
    let o = run(Command::new("python3")
        .arg(script)
        .arg("--trailhose")
        .arg(env!("CARGO_BIN_EXE_trailhose")));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("8 passed, 0 failed"), "{}", text(&o));
}

/// A stand-in for CloudTrail's `ListPublicKeys` (moto does not implement it): the AWS JSON
/// 1.1 protocol, two pages, checking the target and the requested time range.
async fn list_public_keys_endpoint(
    der: Vec<u8>,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use base64ct::Encoding;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let fp = trailhose_validate::fingerprint(&der);
    let value = base64ct::Base64::encode_string(&der);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (log, fp, value) = (log.clone(), fp.clone(), value.clone());
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut len = 0usize;
                    let mut target = String::new();
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':') {
                            match k.to_ascii_lowercase().as_str() {
                                "content-length" => len = v.trim().parse().unwrap_or(0),
                                "x-amz-target" => target = v.trim().to_owned(),
                                _ => {}
                            }
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    log.lock()
                        .expect("log")
                        .push(serde_json::json!({"target": target, "body": req}));
                    let answer = if target != "CloudTrail_20131101.ListPublicKeys" {
                        (
                            400,
                            serde_json::json!({"__type": "UnknownOperationException"}),
                        )
                    } else if req.get("NextToken").is_none() {
                        // Page 1: a key of another period, and more to come.
                        (
                            200,
                            serde_json::json!({
                                "PublicKeyList": [{"Value": "AAEC", "Fingerprint": "00000000000000000000000000000000",
                                                   "ValidityStartTime": 1.3832640E9, "ValidityEndTime": 1.4E9}],
                                "NextToken": "page-2"
                            }),
                        )
                    } else {
                        (
                            200,
                            serde_json::json!({
                                "PublicKeyList": [{"Value": value, "Fingerprint": fp,
                                                   "ValidityStartTime": 1.7E9, "ValidityEndTime": 1.9E9}]
                            }),
                        )
                    };
                    let text = answer.1.to_string();
                    let head = format!(
                        "HTTP/1.1 {} X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n",
                        answer.0,
                        text.len()
                    );
                    if w.write_all(head.as_bytes()).await.is_err()
                        || w.write_all(text.as_bytes()).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_validation_fetches_keys_with_list_public_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = dir.path().join("corpus");
    let o = run(bin()
        .args([
            "generate",
            "--events",
            "300",
            "--accounts",
            "1",
            "--regions",
            "1",
        ])
        .args(["--events-per-file", "10", "--gzip-level", "1", "--digests"])
        .args(["--digest-bucket", "cli-listkeys-bucket"])
        .arg("--out")
        .arg(&corpus)
        .arg("--signing-key")
        .arg(dir.path().join("k.pem")));
    assert!(o.status.success(), "{}", text(&o));
    let der_file = std::fs::read_dir(dir.path().join("public-keys"))
        .expect("public keys")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "der"))
        .expect("a .der key");
    let (endpoint, seen) = list_public_keys_endpoint(std::fs::read(&der_file).expect("der")).await;

    let moto = trailhose_testkit::moto();
    let cfg = moto.sdk_config("us-east-1").await;
    let s3 = trailhose_testkit::s3_client_for(&cfg);
    s3.create_bucket()
        .bucket("cli-listkeys-bucket")
        .send()
        .await
        .expect("create bucket");
    trailhose_validate::s3::upload_tree(&s3, "cli-listkeys-bucket", "", &corpus)
        .await
        .expect("upload");

    let o = run(bin()
        .args(["validate", "s3://cli-listkeys-bucket", "--format", "json"])
        .args([
            "--endpoint-url",
            &moto.endpoint,
            "--aws-region",
            "us-east-1",
        ])
        .args(["--cloudtrail-endpoint-url", &endpoint])
        .args(["--start-time", "2026-10-01"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["log_files"]["valid"], 30, "{v}");
    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 2, "two pages: {seen:?}");
    let start = seen[0]["body"]["StartTime"]
        .as_f64()
        .expect("StartTime sent");
    assert!(
        (start - 1_790_812_800.0).abs() < 1.0,
        "StartTime = --start-time: {start}"
    );
    assert!(seen[0]["body"]["EndTime"].is_number());
    assert_eq!(seen[1]["body"]["NextToken"], "page-2");
}
