//! The cost of detection: throughput with the full built-in pack (CIS metric filters and the
//! essentials) against the same work without rules. Target: ≥ 80% of the rule-less throughput.
//!
//! - `detect_parse`: decompressed bytes → records + key fields (simd-json), with and without
//!   evaluating every record against the pack; plus the pack with key fields withheld (every
//!   record parsed a second time), the cost the key-field path avoids.
//! - `detect_pipeline`: the whole local pipeline (directory source, gzip, parse, router) into
//!   a discarding sink, with and without the `detect` stage (alerts built, no output I/O).
//!
//! The corpus is the generator's default mix with the injected violations, so alerts happen
//! (the generator's natural violation rate is far above a real trail's, ~7% of records).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::Path;
use std::sync::Arc;
use trailhose_core::{read_records, FieldMode, Limits};
use trailhose_detect::engine::Scratch;
use trailhose_detect::rules::{RuleSet, RuleSources};
use trailhose_detect::DetectSink;
use trailhose_gen::{generate, Compression, GenOptions, Inject};
use trailhose_pipeline::deadletter::DeadLetterFile;
use trailhose_pipeline::dir_source::{list_files, run_dir_source, DirSource, Layout};
use trailhose_pipeline::emit::ChunkLimits;
use trailhose_pipeline::filter::CompiledFilter;
use trailhose_pipeline::sinks::discard::DiscardSink;
use trailhose_pipeline::{Pipeline, SinkSpec};

const EVENTS: u64 = 40_000;

fn corpus(dir: &Path, compression: Compression) {
    generate(
        dir,
        &GenOptions {
            events: EVENTS,
            seed: 11,
            compression,
            gzip_level: 6,
            inject: Inject {
                violations: true,
                anomalies: false,
            },
            ..GenOptions::default()
        },
    )
    .expect("generate");
}

fn pack() -> RuleSet {
    RuleSet::load(&RuleSources {
        builtin: true,
        ..Default::default()
    })
    .expect("pack")
}

fn parse(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    corpus(tmp.path(), Compression::None);
    let files: Vec<Vec<u8>> = list_files(tmp.path())
        .expect("list")
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect();
    let bytes: u64 = files.iter().map(|f| f.len() as u64).sum();
    let limits = Limits::default();
    let rules = pack();
    let mut g = c.benchmark_group("detect_parse");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function(BenchmarkId::new("records+key_fields", "no_rules"), |b| {
        b.iter(|| {
            let mut n = 0u64;
            for f in &files {
                let (_, r) = read_records(&f[..], &limits, FieldMode::Extract, |rec| {
                    n += rec
                        .fields
                        .map_or(0, |k| k.event_time_ms.unwrap_or(0) as u64 & 1);
                });
                black_box(r.is_ok());
            }
            black_box(n)
        })
    });
    g.bench_function(BenchmarkId::new("records+key_fields", "cis_pack"), |b| {
        let mut scratch = Scratch::new();
        let mut out = Vec::new();
        b.iter(|| {
            let mut n = 0u64;
            for f in &files {
                let (_, r) = read_records(&f[..], &limits, FieldMode::Extract, |rec| {
                    rules.matching(&mut scratch, rec.raw.bytes, rec.fields.as_ref(), &mut out);
                    n += out.len() as u64;
                });
                black_box(r.is_ok());
            }
            black_box(n)
        })
    });
    g.bench_function(
        BenchmarkId::new("records+key_fields", "cis_pack_without_key_fields"),
        |b| {
            let mut scratch = Scratch::new();
            let mut out = Vec::new();
            b.iter(|| {
                let mut n = 0u64;
                for f in &files {
                    let (_, r) = read_records(&f[..], &limits, FieldMode::Extract, |rec| {
                        rules.matching(&mut scratch, rec.raw.bytes, None, &mut out);
                        n += out.len() as u64;
                    });
                    black_box(r.is_ok());
                }
                black_box(n)
            })
        },
    );
    g.finish();

    // The rules alone, on records already split and with their key fields: the per-record
    // cost of the pack.
    let mut records = Vec::new();
    for f in &files {
        let (_, r) = read_records(&f[..], &limits, FieldMode::Extract, |rec| {
            records.push((rec.raw.bytes.to_vec(), rec.fields.unwrap_or_default()));
        });
        r.expect("valid corpus");
    }
    let mut g = c.benchmark_group("detect_rules_only");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.sample_size(20);
    g.bench_function("cis_pack_per_record", |b| {
        let mut scratch = Scratch::new();
        let mut out = Vec::new();
        b.iter(|| {
            let mut n = 0usize;
            for (bytes, fields) in &records {
                rules.matching(&mut scratch, bytes, Some(fields), &mut out);
                n += out.len();
            }
            black_box(n)
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("corpus");
    corpus(&dir, Compression::Gzip);
    let bytes: u64 = {
        let mut n = 0u64;
        for f in list_files(&dir).expect("list") {
            let file = std::fs::File::open(&f).expect("open");
            let (s, _) = read_records(file, &Limits::default(), FieldMode::ValidateOnly, |_| {});
            n += s.decompressed_bytes;
        }
        n
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rules = Arc::new(pack());
    let run = |with_detect: bool| {
        let mut sinks = vec![SinkSpec {
            sink: Box::new(DiscardSink {
                name: "discard".into(),
            }),
            filter: CompiledFilter::pass_all(),
        }];
        if with_detect {
            sinks.push(SinkSpec {
                sink: Box::new(DetectSink::new(
                    "detect",
                    Some(rules.clone()),
                    Vec::new(),
                    tmp.path().join("failed.ndjson"),
                    None,
                )),
                filter: CompiledFilter::pass_all(),
            });
        }
        rt.block_on(async {
            let p = Pipeline::start(sinks, 16);
            let src = DirSource {
                path: dir.clone(),
                layout: Layout::S3,
                parse_workers: 2,
                limits: Limits::default(),
                chunking: ChunkLimits::default(),
            };
            let dlq = Arc::new(DeadLetterFile::new(&tmp.path().join("dlq.ndjson")));
            let r = run_dir_source(src, p.input(), dlq).await.expect("source");
            black_box(p.shutdown().await);
            r.records
        })
    };
    let mut g = c.benchmark_group("detect_pipeline");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("gzip_dir_to_discard", "no_rules"), |b| {
        b.iter(|| black_box(run(false)))
    });
    g.bench_function(BenchmarkId::new("gzip_dir_to_discard", "cis_pack"), |b| {
        b.iter(|| black_box(run(true)))
    });
    g.finish();
}

criterion_group!(benches, parse, pipeline);
criterion_main!(benches);
