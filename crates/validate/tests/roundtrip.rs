//! Round trips on generated chains: a valid chain passes; each kind of tampering is caught,
//! named, and nothing else is flagged.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use trailhose_validate::chain::{resign_digest_file, sign_digest};
use trailhose_validate::digest::{parse_digest, DigestJson};
use trailhose_validate::loghash::gunzip_one;
use trailhose_validate::{
    validate, write_digest_chains, ChainSpec, ChainsWritten, KeyRing, LocalStore, LogFileSpec,
    Options, ProblemKind, Report, SigningKey,
};

const BUCKET: &str = "trail-bucket";

fn key_a() -> SigningKey {
    SigningKey::from_bytes(
        include_bytes!("fixtures/test-key-a.pem"),
        Path::new("test-key-a.pem"),
    )
    .unwrap()
}

fn key_b() -> SigningKey {
    SigningKey::from_bytes(
        include_bytes!("fixtures/test-key-b.pem"),
        Path::new("test-key-b.pem"),
    )
    .unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    written: ChainsWritten,
    keys: Arc<KeyRing>,
}

impl Fixture {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, key: &str) -> std::path::PathBuf {
        self.root().join(key)
    }

    /// Digests of the first chain, oldest first.
    fn chain0(&self) -> Vec<String> {
        let first = self.written.digests[0]
            .split("/CloudTrail-Digest/")
            .next()
            .unwrap()
            .to_owned();
        self.written
            .digests
            .iter()
            .filter(|k| k.starts_with(&first) && k.contains("/us-east-1/"))
            .cloned()
            .collect()
    }

    fn digest_json(&self, key: &str) -> serde_json::Value {
        let gz = std::fs::read(self.path(key)).unwrap();
        serde_json::from_slice(&gunzip_one(&gz, 1 << 30).unwrap().1).unwrap()
    }

    fn logs_of(&self, digest_key: &str) -> Vec<String> {
        self.digest_json(digest_key)["logFiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["s3Object"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// 2 accounts × 1 Region, a file every 5 minutes for ~5 hours: 2 chains of 6 digests.
fn fixture(stopped: &[usize]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let g = trailhose_gen::generate(
        dir.path(),
        &trailhose_gen::GenOptions {
            events: 600,
            accounts: 2,
            regions: 1,
            events_per_file: 5,
            gzip_level: 1,
            seed: 7,
            ..Default::default()
        },
    )
    .unwrap();
    let logs: Vec<LogFileSpec> = g
        .files
        .iter()
        .map(|f| LogFileSpec {
            key: f.key.clone(),
            delivery_ms: f.delivery_time_ms,
        })
        .collect();
    let key = key_a();
    let spec = ChainSpec {
        bucket: BUCKET.into(),
        stopped_windows: stopped.to_vec(),
        jobs: 2,
        ..Default::default()
    };
    let written = write_digest_chains(dir.path(), &logs, &spec, &key).unwrap();
    let mut ring = KeyRing::new();
    ring.add_der(key.public_der().to_vec(), "test key a");
    Fixture {
        dir,
        written,
        keys: Arc::new(ring),
    }
}

async fn check(f: &Fixture, strict: bool) -> Report {
    check_with(
        f,
        Options {
            strict,
            jobs: 3,
            ..Default::default()
        },
    )
    .await
}

async fn check_with(f: &Fixture, opts: Options) -> Report {
    let store = Arc::new(LocalStore::new(f.root(), Some(BUCKET.into())));
    validate(store, f.keys.clone(), &opts).await.unwrap()
}

/// The (kind, key) of every problem, sorted.
fn problems(r: &Report) -> Vec<(ProblemKind, String)> {
    let mut v: Vec<_> = r.problems.iter().map(|p| (p.kind, p.key.clone())).collect();
    v.sort();
    v
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_chain_passes_in_both_modes() {
    let f = fixture(&[]);
    assert_eq!(f.written.chains, 2);
    assert_eq!(f.written.digests.len(), 12, "{:?}", f.written.digests);
    assert_eq!(f.written.log_files, 120);
    for strict in [false, true] {
        let r = check(&f, strict).await;
        assert_eq!(problems(&r), vec![], "strict={strict}\n{}", r.to_text());
        assert!(r.ok);
        assert_eq!(r.digests.valid, 12);
        assert_eq!(r.digests.invalid, 0);
        assert_eq!(r.log_files.valid, 120);
        assert_eq!(r.chains.len(), 2);
        assert!(r.uncompressed_bytes_hashed > 0);
        assert!(r.to_text().contains("RESULT: valid"));
        assert!(r.found_start.is_some());
    }
    // The JSON report is machine-readable.
    let r = check(&f, false).await;
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["digests"]["valid"], 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_changed_in_a_log_file() {
    let f = fixture(&[]);
    let victim = f.logs_of(&f.chain0()[2])[1].clone();
    let mut raw = gunzip(&std::fs::read(f.path(&victim)).unwrap());
    let i = raw.len() / 2;
    raw[i] = if raw[i] == b'a' { b'b' } else { b'a' };
    std::fs::write(f.path(&victim), gz(&raw)).unwrap();
    for strict in [false, true] {
        let r = check(&f, strict).await;
        assert_eq!(
            problems(&r),
            vec![(ProblemKind::LogModified, victim.clone())]
        );
        assert!(!r.ok);
        assert_eq!(r.log_files.invalid, 1);
        assert!(r.problems[0].reason.contains("hash value doesn't match"));
        assert_eq!(
            r.problems[0].digest_key.as_deref(),
            Some(f.chain0()[2].as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_changed_in_the_compressed_file() {
    let f = fixture(&[]);
    let victim = f.logs_of(&f.chain0()[1])[0].clone();
    let mut z = std::fs::read(f.path(&victim)).unwrap();
    let i = z.len() / 2;
    z[i] ^= 0x10;
    std::fs::write(f.path(&victim), z).unwrap();
    let r = check(&f, false).await;
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].1, victim);
    assert!(
        matches!(
            p[0].0,
            ProblemKind::LogInvalidFormat | ProblemKind::LogModified
        ),
        "{p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_data_after_the_gzip_stream() {
    let f = fixture(&[]);
    let victim = f.logs_of(&f.chain0()[3])[0].clone();
    let mut z = std::fs::read(f.path(&victim)).unwrap();
    z.extend(gz(b"{\"Records\":[]}"));
    std::fs::write(f.path(&victim), z).unwrap();
    let r = check(&f, false).await;
    assert_eq!(problems(&r), vec![(ProblemKind::LogTrailingData, victim)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_deleted() {
    let f = fixture(&[]);
    let victim = f.logs_of(&f.chain0()[4])[2].clone();
    std::fs::remove_file(f.path(&victim)).unwrap();
    for strict in [false, true] {
        let r = check(&f, strict).await;
        assert_eq!(
            problems(&r),
            vec![(ProblemKind::LogMissing, victim.clone())]
        );
        assert_eq!(r.log_files.missing, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_deleted_in_the_middle() {
    let f = fixture(&[]);
    let chain = f.chain0();
    let victim = chain[3].clone();
    let its_logs = f.logs_of(&victim);
    std::fs::remove_file(f.path(&victim)).unwrap();
    let r = check(&f, false).await;
    assert_eq!(
        problems(&r),
        vec![(ProblemKind::DigestMissing, victim.clone())]
    );
    assert_eq!(r.digests.valid, 11);
    assert_eq!(r.digests.missing, 1);
    assert!(
        r.problems[0].reason.contains(&chain[4]),
        "names the digest pointing to it"
    );
    // Strict mode also names the files nothing vouches for any more.
    let r = check(&f, true).await;
    let mut want = vec![(ProblemKind::DigestMissing, victim)];
    want.extend(its_logs.into_iter().map(|k| (ProblemKind::LogUnlisted, k)));
    want.sort();
    assert_eq!(problems(&r), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_re_signed_with_another_key() {
    let f = fixture(&[]);
    let victim = f.chain0()[2].clone();
    resign_digest_file(f.root(), &victim, &key_b()).unwrap();
    for strict in [false, true] {
        let r = check(&f, strict).await;
        assert_eq!(
            problems(&r),
            vec![(ProblemKind::DigestBadSignature, victim.clone())],
            "{}",
            r.to_text()
        );
        assert_eq!(r.digests.invalid, 1);
        // Its log files are not vouched for: not counted valid.
        assert_eq!(r.log_files.valid as usize, 120 - f.logs_of(&victim).len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_forged_with_another_key_and_its_fingerprint() {
    let f = fixture(&[]);
    let victim = f.chain0()[2].clone();
    let b = key_b();
    let mut v = f.digest_json(&victim);
    v["digestPublicKeyFingerprint"] = b.fingerprint().into();
    let bytes = serde_json::to_vec(&v).unwrap();
    std::fs::write(f.path(&victim), gz(&bytes)).unwrap();
    resign_digest_file(f.root(), &victim, &b).unwrap();
    for strict in [false, true] {
        let r = check(&f, strict).await;
        assert_eq!(
            problems(&r),
            vec![(ProblemKind::DigestUnknownKey, victim.clone())]
        );
        assert!(r.problems[0].reason.contains(b.fingerprint()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_edited() {
    let f = fixture(&[]);
    let victim = f.chain0()[3].clone();
    let mut v = f.digest_json(&victim);
    v["logFiles"][0]["hashValue"] =
        "0000000000000000000000000000000000000000000000000000000000000000".into();
    std::fs::write(f.path(&victim), gz(&serde_json::to_vec(&v).unwrap())).unwrap();
    for strict in [false, true] {
        let r = check(&f, strict).await;
        assert_eq!(
            problems(&r),
            vec![(ProblemKind::DigestBadSignature, victim.clone())]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_gap() {
    let f = fixture(&[2]);
    assert_eq!(f.written.digests.len(), 10);
    assert!(!f.written.undigested.is_empty());
    // The digest after the stop starts a new chain, in each of the two chains.
    let restarts: Vec<String> = f
        .written
        .digests
        .iter()
        .filter(|k| {
            let gz = std::fs::read(f.path(k)).unwrap();
            let d = parse_digest(&gunzip_one(&gz, 1 << 30).unwrap().1).unwrap();
            d.previous_object.is_none()
        })
        .cloned()
        .collect();
    assert_eq!(restarts.len(), 4, "two chain starts and two restarts");
    let r = check(&f, false).await;
    let p = problems(&r);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p
        .iter()
        .all(|(k, key)| *k == ProblemKind::ChainGap && restarts.contains(key)));
    assert_eq!(r.gaps, 2);
    assert!(!r.ok);
    assert!(r.problems[0].reason.contains("no log files were delivered"));
    // Allowed gaps are still reported but do not fail the run.
    let r = check_with(
        &f,
        Options {
            allow_gaps: true,
            ..Default::default()
        },
    )
    .await;
    assert!(r.ok);
    assert_eq!(r.gaps, 2);
    // Strict: the files delivered while logging was off are listed by no digest.
    let r = check(&f, true).await;
    let mut want = p.clone();
    want.extend(
        f.written
            .undigested
            .iter()
            .map(|k| (ProblemKind::LogUnlisted, k.clone())),
    );
    want.sort();
    assert_eq!(problems(&r), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_replayed_at_another_key_is_moved() {
    let f = fixture(&[]);
    let chain = f.chain0();
    std::fs::copy(f.path(&chain[2]), f.path(&chain[3])).unwrap();
    std::fs::copy(
        f.path(&format!("{}.sig", chain[2])),
        f.path(&format!("{}.sig", chain[3])),
    )
    .unwrap();
    let r = check(&f, false).await;
    assert_eq!(
        problems(&r),
        vec![(ProblemKind::DigestMoved, chain[3].clone())]
    );
    assert!(r.problems[0]
        .reason
        .contains("moved from its original location"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_sidecar_is_a_signature_failure() {
    let f = fixture(&[]);
    let victim = f.chain0()[5].clone();
    std::fs::remove_file(f.path(&format!("{victim}.sig"))).unwrap();
    let r = check(&f, false).await;
    assert_eq!(
        problems(&r),
        vec![(ProblemKind::DigestBadSignature, victim)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_link_checks_catch_a_mismatched_previous_hash() {
    // A digest correctly signed (we hold the key) but whose previousDigestHashValue is wrong:
    // aws-cli accepts it; strict mode does not.
    let f = fixture(&[]);
    let chain = f.chain0();
    let victim = chain[4].clone();
    let mut v = f.digest_json(&victim);
    v["previousDigestHashValue"] =
        "1111111111111111111111111111111111111111111111111111111111111111".into();
    let json: DigestJson = DigestJson {
        aws_account_id: v["awsAccountId"].as_str().unwrap().into(),
        digest_start_time: v["digestStartTime"].as_str().unwrap().into(),
        digest_end_time: v["digestEndTime"].as_str().unwrap().into(),
        digest_s3_bucket: BUCKET.into(),
        digest_s3_object: victim.clone(),
        digest_public_key_fingerprint: key_a().fingerprint().into(),
        digest_signature_algorithm: "SHA256withRSA".into(),
        newest_event_time: None,
        oldest_event_time: None,
        previous_digest_s3_bucket: Some(BUCKET.into()),
        previous_digest_s3_object: Some(chain[3].clone()),
        previous_digest_hash_value: Some(v["previousDigestHashValue"].as_str().unwrap().into()),
        previous_digest_hash_algorithm: Some("SHA-256".into()),
        previous_digest_signature: Some(v["previousDigestSignature"].as_str().unwrap().into()),
        log_files: serde_json::from_value(v["logFiles"].clone()).unwrap(),
    };
    let signed = sign_digest(&json, &key_a()).unwrap();
    signed.write(f.root(), &victim, &BTreeMap::new()).unwrap();
    // The next digest's link to the rewritten one now mismatches too (hash and signature).
    let r = check(&f, false).await;
    assert_eq!(problems(&r), vec![], "aws-cli semantics accept it");
    let r = check(&f, true).await;
    assert_eq!(
        problems(&r),
        vec![
            (ProblemKind::ChainLinkMismatch, victim.clone()),
            (ProblemKind::ChainLinkMismatch, chain[5].clone()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_digests_are_walked_separately() {
    let f = fixture(&[]);
    let chain = f.chain0();
    let base = f.digest_json(&chain[2]);
    let key = chain[2].replace(".json.gz", "_backfill.json.gz");
    let json = DigestJson {
        aws_account_id: base["awsAccountId"].as_str().unwrap().into(),
        digest_start_time: base["digestStartTime"].as_str().unwrap().into(),
        digest_end_time: base["digestEndTime"].as_str().unwrap().into(),
        digest_s3_bucket: BUCKET.into(),
        digest_s3_object: key.clone(),
        digest_public_key_fingerprint: key_a().fingerprint().into(),
        digest_signature_algorithm: "SHA256withRSA".into(),
        newest_event_time: None,
        oldest_event_time: None,
        previous_digest_s3_bucket: None,
        previous_digest_s3_object: None,
        previous_digest_hash_value: None,
        previous_digest_hash_algorithm: None,
        previous_digest_signature: None,
        log_files: serde_json::from_value(serde_json::json!([base["logFiles"][0]])).unwrap(),
    };
    let signed = sign_digest(&json, &key_a()).unwrap();
    let meta = BTreeMap::from([(
        "backfill-generation-timestamp".to_owned(),
        "2026-11-02T00:00:00Z".to_owned(),
    )]);
    signed.write(f.root(), &key, &meta).unwrap();
    let r = check(&f, true).await;
    assert_eq!(problems(&r), vec![], "{}", r.to_text());
    assert_eq!(r.backfill_digests.valid, 1);
    assert_eq!(r.log_files.valid, 121);

    // A second, unlinked backfill digest: the break is reported but does not fail the run.
    let key2 = chain[4].replace(".json.gz", "_backfill.json.gz");
    let base2 = f.digest_json(&chain[4]);
    let json2 = DigestJson {
        digest_start_time: base2["digestStartTime"].as_str().unwrap().into(),
        digest_end_time: base2["digestEndTime"].as_str().unwrap().into(),
        digest_s3_object: key2.clone(),
        log_files: Vec::new(),
        ..json.clone()
    };
    sign_digest(&json2, &key_a())
        .unwrap()
        .write(f.root(), &key2, &meta)
        .unwrap();
    let r = check(&f, true).await;
    assert_eq!(problems(&r), vec![(ProblemKind::ChainGap, key2.clone())]);
    assert!(r.ok && r.problems[0].backfill && !r.problems[0].fails);
    assert_eq!(r.gaps, 0);
    assert_eq!(r.backfill_digests.valid, 2);
    std::fs::remove_file(f.path(&key2)).unwrap();

    // Without its generation timestamp, a backfill digest is invalid (as in aws-cli).
    signed.write(f.root(), &key, &BTreeMap::new()).unwrap();
    let r = check(&f, false).await;
    assert_eq!(problems(&r), vec![(ProblemKind::DigestInvalidFormat, key)]);
    assert!(r.problems[0].backfill);
    assert!(r.to_text().contains("(backfill) Digest file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_time_range() {
    let f = fixture(&[]);
    let account = f.chain0()[0].split('/').nth(2).unwrap().to_owned();
    let r = check_with(
        &f,
        Options {
            account_ids: vec![account.clone()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.chains.len(), 1);
    assert_eq!(r.chains[0].account_id, account);
    assert_eq!(r.digests.valid, 6);

    let r = check_with(
        &f,
        Options {
            trail_name: Some("another-trail".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.digests.total(), 0);
    assert!(r.to_text().contains("No digests found"));

    // Two hours after the first window start: the walk stops after the first digest that
    // starts before the range.
    let start = f.written.first_start_ms + 2 * 3_600_000 + 60_000;
    let end = start + 3_600_000;
    let r = check_with(
        &f,
        Options {
            start_ms: Some(start),
            end_ms: end,
            ..Default::default()
        },
    )
    .await;
    assert!(r.ok, "{}", r.to_text());
    // Listed: digests whose end stamp is within [start, end + 1 h]: windows 2 and 3. The walk
    // starts at 3 and stops after 2, the first that starts before `start`.
    assert_eq!(r.digests.valid, 2 * 2, "{}", r.to_text());

    let bad = validate(
        Arc::new(LocalStore::new(f.root(), None)),
        f.keys.clone(),
        &Options {
            start_ms: Some(10),
            end_ms: 5,
            ..Default::default()
        },
    )
    .await;
    assert!(bad.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_bucket_is_learned_and_verbose_lists_valid_objects() {
    let f = fixture(&[]);
    let store = Arc::new(LocalStore::new(f.root(), None));
    let r = validate(
        store,
        f.keys.clone(),
        &Options {
            verbose: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(r.valid_objects.len(), 12 + 120);
    assert!(r
        .to_text()
        .contains(&format!("Digest file\ts3://{BUCKET}/")));

    // A store told another bucket name sees every digest as moved.
    let store = Arc::new(LocalStore::new(f.root(), Some("other".into())));
    let r = validate(store, f.keys.clone(), &Options::default())
        .await
        .unwrap();
    assert_eq!(r.problems_of(ProblemKind::DigestMoved).count(), 12);
}
