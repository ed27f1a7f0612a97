//! The synchronous read path: any `Read` (a file, a pipe) through decompression and the
//! splitter to records with key fields. The asynchronous S3 path drives the same
//! [`RecordSplitter`] and [`DecompressGuard`] from its own stream.

use crate::decompress::{classify_io_error, sniff, DecompressGuard, Format, SNIFF_LEN};
use crate::error::ParseError;
use crate::fields::{FieldParser, KeyFields};
use crate::splitter::{Limits, RawRecord, RecordSplitter};
use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};

/// Decompressed bytes read per step; large enough to amortise calls, small enough to stay in
/// cache and to keep memory bounded.
pub const READ_CHUNK: usize = 256 * 1024;

/// Records validated per simd-json call: enough to amortise the call, small enough that the
/// copy, the structural index and the tape stay in L2.
pub const PARSE_BATCH_BYTES: usize = 32 * 1024;

/// What one file produced, whether or not it ended in an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStats {
    pub format: Option<Format>,
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    pub records: u64,
}

/// A record handed to the caller: its original bytes and, when asked for, its key fields.
pub struct Record<'a> {
    pub raw: RawRecord<'a>,
    pub fields: Option<KeyFields>,
}

/// Whether to read key fields. Validation needs simd-json's pass either way; skipping the
/// field extraction only saves the copy into [`KeyFields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldMode {
    /// Validate each record and extract key fields.
    Extract,
    /// Validate each record but do not keep key fields (e.g. `cat`).
    ValidateOnly,
}

struct Counting<'c, R> {
    inner: R,
    count: &'c Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Reads every record of one CloudTrail file. Records before a fault are delivered; the fault
/// is returned with the stats of what was read.
pub fn read_records<R: Read>(
    input: R,
    limits: &Limits,
    mode: FieldMode,
    mut on_record: impl FnMut(Record<'_>),
) -> (FileStats, Result<(), ParseError>) {
    let compressed = Cell::new(0u64);
    let mut stats = FileStats::default();
    let mut input = BufReader::with_capacity(
        READ_CHUNK,
        Counting {
            inner: input,
            count: &compressed,
        },
    );
    let result = (|| {
        let prefix = match input.fill_buf() {
            Ok(p) => p,
            Err(e) => {
                return Err(ParseError::Io {
                    decompressed_offset: 0,
                    reason: e.to_string(),
                })
            }
        };
        let format = sniff(&prefix[..prefix.len().min(SNIFF_LEN)])?;
        stats.format = Some(format);
        let mut decoder: Box<dyn Read + '_> = match format {
            Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(&mut input)),
            Format::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(&mut input)
                    .map_err(|e| classify_io_error(format, 0, &e))?,
            ),
            Format::Json => Box::new(&mut input),
        };
        drive(
            &mut *decoder,
            format,
            limits,
            mode,
            &compressed,
            &mut stats,
            &mut on_record,
        )
    })();
    stats.compressed_bytes = compressed.get();
    (stats, result)
}

fn drive(
    decoder: &mut dyn Read,
    format: Format,
    limits: &Limits,
    mode: FieldMode,
    compressed: &Cell<u64>,
    stats: &mut FileStats,
    on_record: &mut impl FnMut(Record<'_>),
) -> Result<(), ParseError> {
    let guard = DecompressGuard::new(limits);
    let mut splitter = RecordSplitter::new(limits.clone());
    splitter.set_key_fields(mode == FieldMode::Extract);
    let mut fields = FieldParser::new();
    loop {
        let spare = splitter.spare(READ_CHUNK);
        let spare_len = spare.len();
        let n = loop {
            match decoder.read(spare) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    splitter.commit(spare_len, 0);
                    // Records complete before the fault still go out.
                    drain(&mut splitter, &mut fields, mode, stats, on_record)?;
                    return Err(classify_io_error(format, splitter.bytes_seen(), &e));
                }
            }
        };
        splitter.commit(spare_len, n);
        stats.decompressed_bytes = splitter.bytes_seen();
        guard.check(compressed.get(), stats.decompressed_bytes)?;
        drain(&mut splitter, &mut fields, mode, stats, on_record)?;
        if n == 0 {
            return splitter.finish();
        }
    }
}

fn drain(
    splitter: &mut RecordSplitter,
    fields: &mut FieldParser,
    mode: FieldMode,
    stats: &mut FileStats,
    on_record: &mut impl FnMut(Record<'_>),
) -> Result<(), ParseError> {
    while fields.next_batch(splitter, PARSE_BATCH_BYTES, |raw, kf| {
        stats.records += 1;
        on_record(Record {
            raw,
            fields: match mode {
                FieldMode::Extract => Some(kf),
                FieldMode::ValidateOnly => None,
            },
        });
    })? {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("in-memory write");
        e.finish().expect("in-memory write")
    }

    fn collect(input: &[u8], limits: &Limits) -> (Vec<Vec<u8>>, FileStats, Result<(), ParseError>) {
        let mut out = Vec::new();
        let (stats, r) = read_records(input, limits, FieldMode::Extract, |rec| {
            out.push(rec.raw.bytes.to_vec())
        });
        (out, stats, r)
    }

    const FILE: &[u8] =
        br#"{"Records":[{"eventName":"A","eventTime":"2020-01-01T00:00:00Z"},{"eventName":"B"}]}"#;

    #[test]
    fn plain_gzip_multimember_and_zstd() {
        let plain = collect(FILE, &Limits::default());
        assert_eq!(plain.0.len(), 2);
        assert_eq!(plain.2, Ok(()));
        assert_eq!(plain.1.format, Some(Format::Json));

        let g = gz(FILE);
        let r = collect(&g, &Limits::default());
        assert_eq!(r.0, plain.0);
        assert_eq!(r.1.compressed_bytes, g.len() as u64);
        assert_eq!(r.1.decompressed_bytes, FILE.len() as u64);

        // Two gzip members that split the file mid-record.
        let mut mm = gz(&FILE[..30]);
        mm.extend(gz(&FILE[30..]));
        let r = collect(&mm, &Limits::default());
        assert_eq!(r.0, plain.0);
        assert_eq!(r.2, Ok(()));

        let z = zstd::stream::encode_all(FILE, 3).expect("in-memory zstd");
        let r = collect(&z, &Limits::default());
        assert_eq!(r.0, plain.0);
        assert_eq!(r.1.format, Some(Format::Zstd));
    }

    #[test]
    fn corrupt_gzip_is_named() {
        let mut g = gz(FILE);
        let n = g.len();
        g[n / 2] ^= 0xff;
        g[n / 2 + 1] ^= 0xff;
        let (_, _, r) = collect(&g, &Limits::default());
        let e = r.expect_err("corruption detected");
        assert!(
            matches!(
                e,
                ParseError::Decompress { format: "gzip", .. }
                    | ParseError::InvalidRecord { .. }
                    | ParseError::Syntax { .. }
            ),
            "{e}"
        );
        // A truncated gzip stream: the records already complete still arrive.
        let big: Vec<u8> = {
            let mut v = br#"{"Records":["#.to_vec();
            for i in 0..2000 {
                if i > 0 {
                    v.push(b',');
                }
                v.extend_from_slice(format!(r#"{{"eventName":"E{i}"}}"#).as_bytes());
            }
            v.extend_from_slice(b"]}");
            v
        };
        let g = gz(&big);
        let (recs, _, r) = collect(&g[..g.len() - 10], &Limits::default());
        assert!(matches!(r, Err(ParseError::Decompress { .. })), "{r:?}");
        assert!(recs.len() > 1000, "{}", recs.len());
    }

    #[test]
    fn ratio_limit_stops_bombs() {
        let mut bomb = br#"{"Records":[{"a":""#.to_vec();
        bomb.extend(std::iter::repeat_n(b'a', 4 << 20));
        bomb.extend_from_slice(br#""}]}"#);
        let g = gz(&bomb);
        let limits = Limits {
            max_ratio: 50,
            ratio_grace_bytes: 1 << 20,
            ..Limits::default()
        };
        let (_, _, r) = collect(&g, &limits);
        assert!(matches!(r, Err(ParseError::RatioExceeded { .. })), "{r:?}");
    }

    #[test]
    fn validate_only_yields_the_same_records_and_faults() {
        // Generated records, then ones the fast path treats differently without key fields
        // (an escaped key field, a pretty-printed record), then a fault.
        let mut body =
            trailhose_gen::bench_records_file(trailhose_gen::bench_size_classes()[0].1, 1 << 20);
        body.truncate(body.len() - 2); // `]}`
        body.extend_from_slice(br#",{"eventName":"Put\u0041","userIdentity":{"arn":"a\"b"}}"#);
        body.extend_from_slice(b",{\n  \"eventName\": \"x\",\n  \"n\": [1, 2]\n}");
        for tail in [&b"]}"[..], &b",{\"eventName\":\"y\" \"z\"}]}"[..]] {
            let file = [&body[..], tail].concat();
            let run = |mode| {
                let mut out = Vec::new();
                let (stats, r) = read_records(&file[..], &Limits::default(), mode, |rec| {
                    out.push((rec.raw.offset, rec.raw.bytes.to_vec(), rec.fields.is_some()))
                });
                (out, stats.records, r)
            };
            let (with, n, r) = run(FieldMode::Extract);
            let (without, m, r2) = run(FieldMode::ValidateOnly);
            assert!(n > 100 && n == m, "{n} {m}");
            assert_eq!(r, r2);
            let strip = |v: &[(u64, Vec<u8>, bool)]| {
                v.iter()
                    .map(|(o, b, _)| (*o, b.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip(&with), strip(&without));
            assert!(with.iter().all(|r| r.2) && without.iter().all(|r| !r.2));
        }
    }
}
