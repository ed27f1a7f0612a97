//! Parser-core benchmarks on generated CloudTrail data, reported in bytes/s of decompressed
//! input: decompress+unroll (gzip), unroll of already-decompressed bytes (the ≥1 GB/s/core
//! target), the splitter alone, notification parsing and key classification.

use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};
use std::io::Write;
use trailhose_core::keys::classify_key;
use trailhose_core::notify::parse_notification;
use trailhose_core::{read_records, FieldMode, FieldParser, Limits, RecordSplitter};
use trailhose_gen::{bench_records_file, bench_size_classes};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).expect("in-memory gzip");
    e.finish().expect("in-memory gzip")
}

fn unroll(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("unroll_decompressed");
    for (name, size) in bench_size_classes() {
        let file = bench_records_file(size, 16 << 20);
        g.throughput(Throughput::Bytes(file.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("records+key_fields", name),
            &file,
            |b, f| {
                b.iter(|| {
                    let mut n = 0u64;
                    let (_, r) = read_records(&f[..], &limits, FieldMode::Extract, |rec| {
                        n += rec
                            .fields
                            .map_or(0, |k| k.event_time_ms.unwrap_or(0) as u64 & 1);
                    });
                    black_box((n, r))
                })
            },
        );
        // The parser core alone: the bytes are in the splitter's buffer before the clock
        // starts (no stand-in copy for decompression).
        g.bench_with_input(
            BenchmarkId::new("resident_records+key_fields", name),
            &file,
            |b, f| {
                b.iter_batched(
                    || {
                        let mut s = RecordSplitter::new(limits.clone());
                        s.push(f);
                        s
                    },
                    |mut s| {
                        let mut p = FieldParser::new();
                        let mut n = 0u64;
                        while p
                            .next_batch(&mut s, 32 * 1024, |_, k| {
                                n += k.event_time_ms.unwrap_or(0) as u64 & 1
                            })
                            .unwrap_or(false)
                        {}
                        black_box((n, s.finish()))
                    },
                    BatchSize::LargeInput,
                )
            },
        );
        g.bench_with_input(
            BenchmarkId::new("splitter_with_fast_scan", name),
            &file,
            |b, f| {
                b.iter(|| {
                    let mut s = RecordSplitter::new(limits.clone());
                    let mut n = 0usize;
                    for chunk in f.chunks(256 * 1024) {
                        s.push(chunk);
                        while let Ok(Some(r)) = s.next_record() {
                            n += r.bytes.len();
                        }
                    }
                    black_box((n, s.finish()))
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("decompress_and_unroll_gzip");
    for (name, size) in bench_size_classes() {
        let file = bench_records_file(size, 16 << 20);
        let gz = gzip(&file);
        g.throughput(Throughput::Bytes(file.len() as u64));
        g.bench_with_input(BenchmarkId::new("records+key_fields", name), &gz, |b, f| {
            b.iter(|| {
                let mut n = 0u64;
                let (_, r) = read_records(&f[..], &limits, FieldMode::Extract, |_| n += 1);
                black_box((n, r))
            })
        });
    }
    g.finish();
}

const S3_EVENT: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-01T00:05:00.000Z","eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AWS:AROA"},"requestParameters":{"sourceIPAddress":"10.0.0.1"},"responseElements":{"x-amz-request-id":"R","x-amz-id-2":"H"},"s3":{"s3SchemaVersion":"1.0","configurationId":"ct","bucket":{"name":"org-trail","ownerIdentity":{"principalId":"A"},"arn":"arn:aws:s3:::org-trail"},"object":{"key":"AWSLogs/o-abcdefghij/111122223333/CloudTrail/us-east-1/2026/11/01/111122223333_CloudTrail_us-east-1_20261101T0005Z_Mu0KsOhtH1ar15ZZ.json.gz","size":12345,"eTag":"abc","sequencer":"0055AED6DCD90281E5"}}}]}"#;

fn notifications(c: &mut Criterion) {
    let sns = serde_json::json!({
        "Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:111122223333:t",
        "Message": S3_EVENT, "Timestamp": "2026-11-01T00:05:01.000Z", "SignatureVersion": "1",
        "Signature": "x", "SigningCertURL": "https://x", "UnsubscribeURL": "https://x"
    })
    .to_string();
    let ct = r#"{"s3Bucket":"org-trail","s3ObjectKey":["AWSLogs/111122223333/CloudTrail/us-east-2/2016/08/11/111122223333_CloudTrail_us-east-2_20160811T2100Z_kpaMYavMQA9Ahp7L.json.gz"]}"#;
    let mut g = c.benchmark_group("notification");
    for (name, body) in [
        ("s3_event", S3_EVENT),
        ("sns_wrapped_s3", sns.as_str()),
        ("cloudtrail_sns", ct),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(parse_notification(black_box(body))))
        });
    }
    g.finish();

    let keys = [
        "AWSLogs/o-abcdefghij/111122223333/CloudTrail/us-east-1/2026/11/01/111122223333_CloudTrail_us-east-1_20261101T0005Z_Mu0KsOhtH1ar15ZZ.json.gz",
        "prefix/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/01/111122223333_CloudTrail-Digest_us-east-1_my_trail_us-east-1_20261101T000512Z.json.gz",
        "AWSLogs/111122223333/Config/us-east-1/2026/11/01/ConfigSnapshot/x.json.gz",
    ];
    let mut g = c.benchmark_group("classify_key");
    for (i, k) in keys.iter().enumerate() {
        g.bench_function(["log", "digest", "other"][i], |b| {
            b.iter(|| black_box(classify_key(black_box(k)).cloudtrail().is_some()))
        });
    }
    g.finish();
}

criterion_group!(benches, unroll, notifications);
criterion_main!(benches);
