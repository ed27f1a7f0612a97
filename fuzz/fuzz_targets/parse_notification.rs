#![no_main]
//! SQS bodies and S3 keys come from outside; parsing them must never panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = trailhose_core::notify::parse_notification(s);
        let _ = trailhose_core::keys::classify_key(s);
    }
});
