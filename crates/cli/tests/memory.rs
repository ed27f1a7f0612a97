//! Bounded memory: a 1 GB (uncompressed) single file through `cat` stays far below 64 MB of
//! RSS. A test binary of its own, so the peak RSS of child processes is this test's alone.

use std::io::Write;
use std::process::Command;

fn peak_child_rss_kb() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss
}

#[test]
fn memory_stays_bounded_on_a_large_single_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.json.gz");
    let file = std::fs::File::create(&path).expect("create");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let params = trailhose_gen::LogFileParams::default();
    let bytes = trailhose_gen::write_log_file(&mut gz, 9, 650_000, &params).expect("write");
    gz.finish().expect("finish").flush().expect("flush");
    assert!(bytes > 1_000_000_000, "file is {bytes} bytes");
    let out = Command::new(env!("CARGO_BIN_EXE_trailhose"))
        .arg("cat")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run");
    assert!(out.success());
    let rss_kb = peak_child_rss_kb();
    // A file this size read whole would need > 1 GB; streaming keeps it to a few MB.
    assert!(
        rss_kb < 64 * 1024,
        "peak RSS {rss_kb} KiB for a {bytes}-byte file"
    );
}
