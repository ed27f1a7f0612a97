#![no_main]
//! Any bytes, fed as a file in arbitrary chunkings, must yield records or a typed error, never
//! a panic; and every record handed out must be an exact slice of the input.

use libfuzzer_sys::fuzz_target;
use trailhose_core::{read_records, FieldMode, Limits, RecordSplitter};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_record_bytes: 1 << 16,
        max_decompressed_bytes: 1 << 24,
        ratio_grace_bytes: 1 << 20,
        ..Limits::default()
    };
    let _ = read_records(data, &limits, FieldMode::Extract, |rec| {
        let at = rec.raw.offset as usize;
        // Plain JSON input: offsets index the input itself.
        if data.first() == Some(&b'{') {
            assert_eq!(&data[at..at + rec.raw.bytes.len()], rec.raw.bytes);
        }
    });
    let step = (data.first().copied().unwrap_or(1) as usize % 7) + 1;
    let mut s = RecordSplitter::new(limits);
    for c in data.chunks(step) {
        s.push(c);
        while let Ok(Some(r)) = s.next_record() {
            let at = r.offset as usize;
            assert_eq!(&data[at..at + r.bytes.len()], r.bytes);
        }
    }
    let _ = s.finish();
});
