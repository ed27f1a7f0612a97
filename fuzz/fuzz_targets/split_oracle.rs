#![no_main]
//! Differential check of the splitter and the batched simd-json validation against serde_json:
//! whenever serde_json accepts the input as `{"Records":[object, ...]}` (and nothing the
//! splitter rejects by design, such as duplicate `Records` keys), `read_records` must hand out
//! exactly that many records, in order, each JSON-equal to serde_json's element, and finish
//! without error. The input is pushed whole and in chunks, so the 64-byte block scan and the
//! byte loop both run over it.

use libfuzzer_sys::fuzz_target;
use trailhose_core::{read_records, FieldMode, Limits, RecordSplitter};

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(top)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        return;
    };
    let Some(serde_json::Value::Array(expected)) = top.get("Records") else {
        return;
    };
    if !expected.iter().all(|v| v.is_object()) || data.first() != Some(&b'{') {
        return;
    }
    // serde_json keeps the last of duplicate top-level keys; the splitter takes the first
    // `Records` array. Skip inputs where that differs.
    let records_keys = data.windows(9).filter(|w| w == b"\"Records\"").count();
    if records_keys != 1 {
        return;
    }
    let limits = Limits::default();
    let mut got = Vec::new();
    let (_, result) = read_records(data, &limits, FieldMode::Extract, |rec| {
        got.push(serde_json::from_slice::<serde_json::Value>(rec.raw.bytes).ok());
    });
    assert_eq!(result, Ok(()), "serde_json accepted the file");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g.as_ref(), Some(e));
    }
    for step in [1usize, 63, 64, 65] {
        let mut s = RecordSplitter::new(limits.clone());
        let mut n = 0;
        for c in data.chunks(step) {
            s.push(c);
            while let Ok(Some(r)) = s.next_record() {
                let v: serde_json::Value =
                    serde_json::from_slice(r.bytes).expect("record is the element's bytes");
                assert_eq!(Some(&v), expected.get(n));
                n += 1;
            }
        }
        assert_eq!(s.finish(), Ok(()));
        assert_eq!(n, expected.len());
    }
});
