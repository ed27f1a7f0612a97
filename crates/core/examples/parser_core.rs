//! The parser core's throughput on already-decompressed bytes (records with key fields),
//! per record-size class, best of 15 runs over 16 MiB in memory:
//!
//! - `splitter`: [`RecordSplitter`] + [`FieldParser::next_batch`], the records and their key
//!   fields as the S3 path drives them (bytes pushed in 256 KB chunks);
//! - `resident`: the same over bytes already in the splitter's buffer (pushed whole before the
//!   clock starts), i.e. the parser core without the copy that stands in for decompression
//!   writing into the buffer; this is what simdjson's figures compare with;
//! - `read_records`: the synchronous read path over an in-memory `Read`;
//! - `validate-only`: the same without key fields (`FieldMode::ValidateOnly`, what `cat` does).
//!
//! `--ndjson DIR` also writes each corpus's records, one per line, for outside baselines
//! (`benches/simdjson-baseline.sh` runs simdjson on them in the same run).
//!
//! ```text
//! cargo run --release -p trailhose-core --example parser_core [-- --ndjson DIR]
//! ```

use std::time::Instant;
use trailhose_core::{read_records, FieldMode, FieldParser, Limits, RecordSplitter};
use trailhose_gen::{bench_records_file, bench_size_classes};

fn best_mib_s(bytes: usize, mut run: impl FnMut() -> u64) -> (f64, u64) {
    best_mib_s_prepared(bytes, || (), |()| run())
}

/// Like [`best_mib_s`], with `prepare` run before each timed `run` and not counted.
fn best_mib_s_prepared<T>(
    bytes: usize,
    mut prepare: impl FnMut() -> T,
    mut run: impl FnMut(T) -> u64,
) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut check = 0;
    for _ in 0..15 {
        let input = prepare();
        let t = Instant::now();
        check = run(input);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (bytes as f64 / best / 1_048_576.0, check)
}

/// Takes every record (with key fields) out of `s`; returns the records with an event time,
/// plus one if the file's end checks out.
fn drain(s: &mut RecordSplitter, p: &mut FieldParser) -> u64 {
    let mut n = 0u64;
    while p
        .next_batch(s, 32 * 1024, |_, fields| {
            n += u64::from(fields.event_time_ms.is_some())
        })
        .unwrap_or(false)
    {}
    n
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ndjson_dir = match args.as_slice() {
        [] => None,
        [flag, dir] if flag == "--ndjson" => Some(std::path::PathBuf::from(dir)),
        _ => return Err("usage: parser_core [--ndjson DIR]".into()),
    };
    let limits = Limits::default();
    for (name, size) in bench_size_classes() {
        let file = bench_records_file(size, 16 << 20);
        let (splitter, records) = best_mib_s(file.len(), || {
            let mut s = RecordSplitter::new(limits.clone());
            let mut p = FieldParser::new();
            let mut n = 0u64;
            for chunk in file.chunks(256 * 1024) {
                s.push(chunk);
                n += drain(&mut s, &mut p);
            }
            n + u64::from(s.finish().is_ok())
        });
        let (resident, resident_records) = best_mib_s_prepared(
            file.len(),
            || {
                let mut s = RecordSplitter::new(limits.clone());
                s.push(&file);
                s
            },
            |mut s| {
                let n = drain(&mut s, &mut FieldParser::new());
                n + u64::from(s.finish().is_ok())
            },
        );
        assert_eq!(records, resident_records, "both ways find the same records");
        let (read_path, _) = best_mib_s(file.len(), || {
            let mut n = 0u64;
            let (_, r) = read_records(&file[..], &limits, FieldMode::Extract, |rec| {
                n += u64::from(rec.fields.is_some_and(|f| f.event_time_ms.is_some()));
            });
            n + u64::from(r.is_ok())
        });
        let (validate_only, _) = best_mib_s(file.len(), || {
            let (stats, r) = read_records(&file[..], &limits, FieldMode::ValidateOnly, |_| {});
            stats.records + u64::from(r.is_ok())
        });
        println!(
            "{name:8} splitter {splitter:7.1} MiB/s   resident {resident:7.1} MiB/s   read_records {read_path:7.1} MiB/s   ({records} records incl. the end check)   validate-only {validate_only:7.1} MiB/s"
        );
        if let Some(dir) = &ndjson_dir {
            let mut s = RecordSplitter::new(limits.clone());
            s.push(&file);
            let mut out = Vec::with_capacity(file.len());
            while let Some(r) = s.next_record()? {
                out.extend_from_slice(r.bytes);
                out.push(b'\n');
            }
            std::fs::write(dir.join(format!("{name}.ndjson")), out)?;
        }
    }
    Ok(())
}
