#![no_main]
//! Differential check of the fast record scanner against simd-json: the input is one record,
//! wrapped as `{"Records":[input]}`. Whatever the fast path accepts, simd-json
//! (`FieldParser::parse`, the path every declined record takes) must accept too, with the same
//! key fields; and each record must be the exact bytes at its offset. The file is fed whole and in
//! small chunks, so the scanner also resumes across block and buffer edges.

use libfuzzer_sys::fuzz_target;
use trailhose_core::{FieldParser, KeyFields, Limits, RecordSplitter};

type Got = Vec<(u64, Vec<u8>, KeyFields)>;

fn records(file: &[u8], chunk: usize) -> (Got, bool) {
    let mut s = RecordSplitter::new(Limits::default());
    let mut p = FieldParser::new();
    let mut out = Vec::new();
    for c in file.chunks(chunk) {
        s.push(c);
        loop {
            match p.next_batch(&mut s, 32 * 1024, |r, k| out.push((r.offset, r.bytes.to_vec(), k))) {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => return (out, false),
            }
        }
    }
    let ok = s.finish().is_ok();
    (out, ok)
}

fuzz_target!(|data: &[u8]| {
    let mut file = b"{\"Records\":[".to_vec();
    file.extend_from_slice(data);
    file.extend_from_slice(b"]}");
    let (whole, ok) = records(&file, file.len());
    for step in [7usize, 64] {
        let (pieces, pieces_ok) = records(&file, step);
        assert_eq!(pieces, whole, "chunks of {step}");
        assert_eq!(pieces_ok, ok, "chunks of {step}");
    }
    let mut reference = FieldParser::new();
    for (offset, bytes, fields) in &whole {
        let expected = reference
            .parse(bytes, 0, 0)
            .expect("a record handed out must be valid for simd-json");
        assert_eq!(&expected, fields);
        let at = *offset as usize;
        assert_eq!(&file[at..at + bytes.len()], bytes.as_slice(), "exact bytes");
    }
});
