//! Validation through S3 (moto's server): digests carry their signatures in object metadata,
//! log files are streamed from GetObject.

use std::path::Path;
use std::sync::Arc;
use trailhose_validate::s3::upload_tree;
use trailhose_validate::{
    validate, write_digest_chains, ChainSpec, KeyRing, LogFileSpec, Options, ProblemKind, S3Store,
    SigningKey, Store,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validates_a_chain_in_s3() {
    let moto = trailhose_testkit::moto();
    let cfg = moto.sdk_config("us-east-1").await;
    let bucket = "validate-moto-bucket";
    let prefix = "team/trail";

    let dir = tempfile::tempdir().unwrap();
    let g = trailhose_gen::generate(
        dir.path(),
        &trailhose_gen::GenOptions {
            events: 400,
            accounts: 1,
            regions: 2,
            events_per_file: 5,
            gzip_level: 1,
            ..Default::default()
        },
    )
    .unwrap();
    // Keys in the bucket carry the prefix, and so must the digests' own fields.
    let tree = tempfile::tempdir().unwrap();
    let mut logs = Vec::new();
    for f in &g.files {
        let key = format!("{prefix}/{}", f.key);
        let dst = tree.path().join(&key);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(dir.path().join(&f.path), &dst).unwrap();
        logs.push(LogFileSpec {
            key,
            delivery_ms: f.delivery_time_ms,
        });
    }
    let key = SigningKey::from_bytes(
        include_bytes!("fixtures/test-key-a.pem"),
        Path::new("test-key-a.pem"),
    )
    .unwrap();
    let written = write_digest_chains(
        tree.path(),
        &logs,
        &ChainSpec {
            bucket: bucket.into(),
            jobs: 2,
            ..Default::default()
        },
        &key,
    )
    .unwrap();
    assert_eq!(written.chains, 2);
    assert!(written.digests.len() >= 6, "{:?}", written.digests);

    let s3 = trailhose_testkit::s3_client_for(&cfg);
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let uploaded = upload_tree(&s3, bucket, "", tree.path()).await.unwrap();
    assert_eq!(uploaded, g.files.len() + written.digests.len());

    let store = Arc::new(S3Store::from_sdk_config(&cfg, bucket.into(), prefix.into()).await);
    assert_eq!(store.describe(), format!("s3://{bucket}/{prefix}"));
    let mut ring = KeyRing::new();
    ring.add_der(key.public_der().to_vec(), "test key");
    let ring = Arc::new(ring);
    let opts = Options {
        prefix: prefix.into(),
        strict: true,
        jobs: 4,
        ..Default::default()
    };
    let r = validate(store.clone(), ring.clone(), &opts).await.unwrap();
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(r.digests.valid as usize, written.digests.len());
    assert_eq!(r.log_files.valid as usize, g.files.len());
    assert_eq!(r.chains.len(), 2);

    // Tamper in S3: delete a log file, strip a digest's signature metadata.
    let victim_log = logs[3].key.clone();
    s3.delete_object()
        .bucket(bucket)
        .key(&victim_log)
        .send()
        .await
        .unwrap();
    let victim_digest = written.digests[2].clone();
    s3.copy_object()
        .bucket(bucket)
        .key(&victim_digest)
        .copy_source(format!("{bucket}/{victim_digest}"))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("note", "signature removed")
        .send()
        .await
        .unwrap();
    let r = validate(
        store,
        ring,
        &Options {
            strict: false,
            ..opts
        },
    )
    .await
    .unwrap();
    let mut p: Vec<_> = r.problems.iter().map(|p| (p.kind, p.key.clone())).collect();
    p.sort();
    let listed_by_victim = {
        // The deleted log is only reported if the stripped digest does not list it.
        let gz = std::fs::read(tree.path().join(&victim_digest)).unwrap();
        let inflated = trailhose_validate::loghash::gunzip_one(&gz, 1 << 30)
            .unwrap()
            .1;
        String::from_utf8(inflated).unwrap().contains(&victim_log)
    };
    let mut want = vec![(ProblemKind::DigestBadSignature, victim_digest)];
    if !listed_by_victim {
        want.push((ProblemKind::LogMissing, victim_log));
    }
    want.sort();
    assert_eq!(p, want, "{}", r.to_text());
    assert!(!r.ok);
}
