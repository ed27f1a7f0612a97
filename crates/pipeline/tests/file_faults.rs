//! The NDJSON file sink against real file-system faults, on real file systems.
//!
//! How each fault is produced (these tests run as root, and root ignores permission bits):
//!
//! - **ENOSPC**: a 256–512 KiB `tmpfs` mounted for the test (`mount -t tmpfs -o size=…`) and
//!   filled by a filler file until the kernel answers ENOSPC; the fix is deleting the filler.
//!   Mid-run, the filler leaves a page free so a delivery's write is cut short by the kernel
//!   (a real partial write) before ENOSPC.
//! - **EACCES**: the test thread drops `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH` from its
//!   effective capabilities (`capset(2)` is per thread; the runtime's threads are created
//!   after it and inherit the set), so the kernel applies the permission bits to this root
//!   test like to any user: a directory `chmod 0o500` refuses new files with EACCES. The fix
//!   is `chmod 0o755`. Other tests in the process keep their capabilities.
//! - **EROFS**: a `tmpfs` remounted read-only (`mount -o remount,ro`), fixed by remounting it
//!   read-write.
//!
//! A test that cannot mount or drop capabilities fails loudly; none is skipped.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use trailhose_core::KeyFields;
use trailhose_pipeline::delivery::{DeliveryConfig, DeliveryControl, FailureClass};
use trailhose_pipeline::linefile::LineFile;
use trailhose_pipeline::sinks::ndjson::{FileTarget, NdjsonSink, Shape, Target};
use trailhose_pipeline::{
    Delivery, ObjectAck, ObjectMeta, ObjectOutcome, RecordChunk, Sink, SinkReport,
};

const WAIT: Duration = Duration::from_secs(30);

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {} — these tests need root with mount privileges (CAP_SYS_ADMIN)",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("fs");
        std::fs::create_dir(&dir).expect("mount point");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir));
        Tmpfs { dir, _tmp: tmp }
    }

    fn remount(&self, how: &str) {
        run(Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(&self.dir));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the file system holding `dir` until the kernel answers ENOSPC, then frees `leave`
/// bytes (page-granular on tmpfs). Returns the filler.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).expect("filler");
    let buf = vec![b'#'; 64 * 1024];
    let mut len = 0u64;
    loop {
        match f.write(&buf) {
            Ok(0) => break,
            Ok(n) => len += n as u64,
            Err(e) => {
                assert_eq!(
                    e.raw_os_error(),
                    Some(libc::ENOSPC),
                    "filling the tmpfs: {e}"
                );
                break;
            }
        }
    }
    assert!(len > 0, "the tmpfs had no room at all");
    f.set_len(len.saturating_sub(leave)).expect("leave room");
    p
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from this thread's effective set (threads
/// it creates afterwards inherit that), so permission bits apply to it although it is root.
fn drop_dac_override_for_this_thread() {
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_DAC_OVERRIDE: u32 = 1;
    const CAP_DAC_READ_SEARCH: u32 = 2;
    let mut hdr = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget/capset with a v3 header and the two data words the kernel expects.
    let got = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    assert_eq!(got, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH));
    // SAFETY: as above.
    let set = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    assert_eq!(set, 0, "capset: {}", std::io::Error::last_os_error());
}

/// Sets a directory's mode; restores 0o755 on drop (the tests' fix, and so the temporary
/// directory can go even when a test fails).
struct Mode(PathBuf);

impl Mode {
    fn set(dir: &Path, mode: u32) -> Mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
        Mode(dir.to_path_buf())
    }
}

impl Drop for Mode {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

/// A byte cannot be written: the file system is really full.
fn assert_full(dir: &Path) {
    let p = dir.join("probe-by-the-test");
    let e = std::fs::write(&p, b"x").expect_err("the file system must be full");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    std::fs::remove_file(&p).expect("remove the probe");
}

fn assert_really_refused(dir: &Path, errno: i32) {
    let e = std::fs::File::create(dir.join("probe-by-the-test"))
        .expect_err("the fault must be real for this thread");
    assert_eq!(e.raw_os_error(), Some(errno), "{e}");
}

/// `n` records of about `pad` bytes each; every seventh is pretty-printed (it must be
/// compacted onto one line).
fn chunk(obj: usize, n: usize, pad: usize) -> Arc<RecordChunk> {
    let mut c = RecordChunk::new(
        Arc::new(ObjectMeta {
            source: format!("test://o{obj}"),
            key: format!("o{obj}"),
            ..Default::default()
        }),
        n * (pad + 64),
    );
    for i in 0..n {
        let id = format!("o{obj}-r{i}");
        let pretty = i % 7 == 3;
        let rec = if pretty {
            format!(
                "{{\n  \"eventID\": \"{id}\",\n  \"pad\": \"{}\"\n}}",
                "p".repeat(pad)
            )
        } else {
            format!("{{\"eventID\":\"{id}\",\"pad\":\"{}\"}}", "p".repeat(pad))
        };
        c.push(rec.as_bytes(), i as u64, KeyFields::default(), pretty);
    }
    Arc::new(c)
}

fn delivery_config() -> DeliveryConfig {
    DeliveryConfig {
        max_retry_duration_seconds: 600,
        backoff_ms: 10,
        max_backoff_ms: 50,
        probe_interval_ms: 50,
        max_probe_interval_ms: 200,
        ..DeliveryConfig::default()
    }
}

struct Running {
    control: DeliveryControl,
    tx: Option<mpsc::Sender<Delivery>>,
    task: tokio::task::JoinHandle<SinkReport>,
    /// (object, records) sent.
    sent: Vec<(usize, usize)>,
}

fn start(dir: &Path, max_file_bytes: u64, fsync: bool, delivery: DeliveryConfig) -> Running {
    let mut sink = NdjsonSink {
        name: "files".into(),
        target: Target::Files(FileTarget::new(
            dir.to_path_buf(),
            "records".into(),
            max_file_bytes,
            fsync,
            delivery,
        )),
        shape: Shape::Raw,
    };
    let control = DeliveryControl::new();
    sink.attach(&control);
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(Box::new(sink).run(rx));
    Running {
        control,
        tx: Some(tx),
        task,
        sent: Vec::new(),
    }
}

impl Running {
    async fn send(&mut self, obj: usize, n: usize, pad: usize) -> oneshot::Receiver<ObjectOutcome> {
        let (ack, outcome) = ObjectAck::new();
        let d = Delivery {
            chunk: chunk(obj, n, pad),
            selection: None,
            token: ack.token(),
        };
        self.tx
            .as_ref()
            .expect("open")
            .send(d)
            .await
            .map_err(|_| "sink gone")
            .expect("send");
        self.sent.push((obj, n));
        outcome
    }

    async fn finish(mut self) -> SinkReport {
        drop(self.tx.take());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("sink finishes")
            .expect("sink task")
    }

    fn expected(&self) -> HashSet<String> {
        self.sent
            .iter()
            .flat_map(|&(o, n)| (0..n).map(move |i| format!("o{o}-r{i}")))
            .collect()
    }

    /// Waits until the breaker is open and checks its class.
    async fn wait_open(&self, class: FailureClass) {
        let t = tokio::time::Instant::now();
        loop {
            let open = self.control.open_breakers();
            if let Some(b) = open.first() {
                assert_eq!(b.sink, "files");
                assert_eq!(b.class, class, "{b:?}");
                return;
            }
            assert!(t.elapsed() < WAIT, "the breaker never opened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn assert_held(outcomes: &mut [oneshot::Receiver<ObjectOutcome>]) {
    for o in outcomes.iter_mut() {
        match o.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => {}
            other => panic!("a delivery was answered while the sink cannot write: {other:?}"),
        }
    }
}

async fn assert_delivered(outcomes: Vec<oneshot::Receiver<ObjectOutcome>>) {
    for o in outcomes {
        let got = tokio::time::timeout(WAIT, o)
            .await
            .expect("answered after the fix")
            .expect("outcome");
        assert_eq!(got, ObjectOutcome::Delivered { dead_lettered: 0 });
    }
}

/// Every output file: whole lines of valid JSON, no line twice, at most `max` bytes. Returns
/// the event ids per file name.
fn check_files(dir: &Path, max: u64) -> BTreeMap<String, Vec<String>> {
    let mut seen = HashSet::new();
    let mut by_file = BTreeMap::new();
    if !dir.exists() {
        return by_file;
    }
    for e in std::fs::read_dir(dir).expect("ls") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".ndjson") {
            continue;
        }
        let bytes = std::fs::read(e.path()).expect("read");
        assert!(
            bytes.is_empty() || bytes.ends_with(b"\n"),
            "{name}: torn last line"
        );
        assert!(
            bytes.len() as u64 <= max,
            "{name}: {} bytes is above max_file_bytes {max}",
            bytes.len()
        );
        let mut ids = Vec::new();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_else(|err| {
                panic!(
                    "{name}: not one JSON value per line ({err}): {}",
                    String::from_utf8_lossy(line)
                )
            });
            let id = v["eventID"].as_str().expect("eventID").to_string();
            assert!(seen.insert(id.clone()), "{name}: {id} written twice");
            ids.push(id);
        }
        by_file.insert(name, ids);
    }
    by_file
}

fn all_ids(files: &BTreeMap<String, Vec<String>>) -> HashSet<String> {
    files.values().flatten().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_at_start_holds_deliveries_until_space_returns() {
    let fs = Tmpfs::mount("256k");
    let out = fs.dir.join("out");
    let filler = fill(&fs.dir, 0);
    assert_full(&fs.dir);
    let max = 16 * 1024;
    let mut sink = start(&out, max, false, delivery_config());
    let mut outcomes = Vec::new();
    for obj in 0..10 {
        outcomes.push(sink.send(obj, 20, 150).await);
    }
    sink.wait_open(FailureClass::Transient).await;
    assert_held(&mut outcomes);
    // Probes keep failing; still nothing answered, nothing partial in any file.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_held(&mut outcomes);
    assert!(!sink.control.open_breakers().is_empty());
    assert!(all_ids(&check_files(&out, max)).is_empty());

    std::fs::remove_file(&filler).expect("free the space");
    assert_delivered(outcomes).await;
    assert!(sink.control.open_breakers().is_empty());
    let expected = sink.expected();
    let report = sink.finish().await;
    assert_eq!(report.records, 200);
    assert_eq!(report.failed_deliveries, 0);
    assert!(report.retries > 0, "{report:?}");
    let files = check_files(&out, max);
    assert_eq!(all_ids(&files), expected);
    assert!(files.len() > 1, "rotation happened: {files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_mid_run_cuts_the_partial_write_and_writes_each_line_once() {
    let fs = Tmpfs::mount("512k");
    let out = fs.dir.join("out");
    let max = 32 * 1024;
    // fsync on: acknowledged only after the group is synced.
    let mut sink = start(&out, max, true, delivery_config());
    let mut first = Vec::new();
    for obj in 0..5 {
        first.push(sink.send(obj, 30, 200).await);
    }
    assert_delivered(first).await;
    // One page left: the next block (~7 KiB) is cut short by the kernel, then ENOSPC.
    let filler = fill(&fs.dir, 4096);
    let mut outcomes = Vec::new();
    for obj in 5..15 {
        outcomes.push(sink.send(obj, 30, 200).await);
    }
    sink.wait_open(FailureClass::Transient).await;
    assert_held(&mut outcomes);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_held(&mut outcomes);
    // While the disk is full: every file holds whole lines only.
    let during = check_files(&out, max);
    assert!(all_ids(&during).len() >= 150, "{}", all_ids(&during).len());

    std::fs::remove_file(&filler).expect("free the space");
    assert_delivered(outcomes).await;
    let expected = sink.expected();
    let report = sink.finish().await;
    assert_eq!(report.records, 450);
    assert_eq!(report.failed_deliveries, 0);
    let files = check_files(&out, max);
    assert_eq!(all_ids(&files), expected);
}

/// Builds a runtime on this thread after it dropped CAP_DAC_OVERRIDE: every thread of the
/// runtime is then subject to permission bits.
fn without_dac_override<F: std::future::Future<Output = ()>>(f: F) {
    drop_dac_override_for_this_thread();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(f);
}

#[test]
fn eacces_at_start_the_directory_cannot_be_created_until_permissions_are_fixed() {
    without_dac_override(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let parent = tmp.path().join("locked");
        std::fs::create_dir(&parent).expect("mkdir");
        let out = parent.join("out");
        let mode = Mode::set(&parent, 0o500);
        assert_really_refused(&parent, libc::EACCES);
        let max = 16 * 1024;
        let mut sink = start(&out, max, true, delivery_config());
        let mut outcomes = Vec::new();
        for obj in 0..8 {
            outcomes.push(sink.send(obj, 20, 150).await);
        }
        sink.wait_open(FailureClass::SinkRefused).await;
        assert_held(&mut outcomes);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_held(&mut outcomes);
        assert!(!out.exists());

        // The fix: the directory is writable again (0o755).
        drop(mode);
        assert_delivered(outcomes).await;
        assert!(sink.control.open_breakers().is_empty());
        let expected = sink.expected();
        let report = sink.finish().await;
        assert_eq!(report.records, 160);
        assert_eq!(report.failed_deliveries, 0);
        assert_eq!(all_ids(&check_files(&out, max)), expected);
    });
}

#[test]
fn eacces_mid_run_at_rotation_holds_until_permissions_are_fixed() {
    without_dac_override(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("out");
        // Deliveries of about 5 KiB: three fill the first file, the fourth needs a new one.
        let max = 16 * 1024;
        let mut sink = start(&out, max, false, delivery_config());
        let mut first = Vec::new();
        for obj in 0..3 {
            first.push(sink.send(obj, 20, 200).await);
        }
        assert_delivered(first).await;
        let mode = Mode::set(&out, 0o500);
        assert_really_refused(&out, libc::EACCES);
        let mut outcomes = Vec::new();
        for obj in 3..9 {
            outcomes.push(sink.send(obj, 20, 200).await);
        }
        sink.wait_open(FailureClass::SinkRefused).await;
        assert_held(&mut outcomes);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_held(&mut outcomes);
        assert_eq!(all_ids(&check_files(&out, max)).len(), 60);

        // The fix: the directory is writable again (0o755).
        drop(mode);
        assert_delivered(outcomes).await;
        let expected = sink.expected();
        let report = sink.finish().await;
        assert_eq!(report.records, 180);
        assert_eq!(report.failed_deliveries, 0);
        let files = check_files(&out, max);
        assert_eq!(all_ids(&files), expected);
        assert!(files.len() >= 3, "{files:?}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erofs_at_start_holds_until_the_file_system_is_writable() {
    let fs = Tmpfs::mount("1m");
    let out = fs.dir.join("out");
    std::fs::create_dir(&out).expect("mkdir");
    fs.remount("ro");
    assert_really_refused(&out, libc::EROFS);
    let max = 16 * 1024;
    let mut sink = start(&out, max, true, delivery_config());
    let mut outcomes = Vec::new();
    for obj in 0..4 {
        outcomes.push(sink.send(obj, 10, 100).await);
    }
    sink.wait_open(FailureClass::SinkRefused).await;
    assert_held(&mut outcomes);
    fs.remount("rw");
    assert_delivered(outcomes).await;
    let expected = sink.expected();
    let report = sink.finish().await;
    assert_eq!(report.failed_deliveries, 0);
    assert_eq!(all_ids(&check_files(&out, max)), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_held_fails_the_deliveries_and_leaves_no_line() {
    let fs = Tmpfs::mount("256k");
    let out = fs.dir.join("out");
    let _filler = fill(&fs.dir, 4096);
    let max = 16 * 1024;
    let mut sink = start(&out, max, true, delivery_config());
    let mut outcomes = Vec::new();
    for obj in 0..4 {
        outcomes.push(sink.send(obj, 30, 200).await);
    }
    sink.wait_open(FailureClass::Transient).await;
    assert_held(&mut outcomes);
    sink.control.stop_retrying();
    for o in outcomes {
        let got = tokio::time::timeout(WAIT, o)
            .await
            .expect("answered")
            .expect("outcome");
        match got {
            ObjectOutcome::Failed { reasons } => {
                assert!(
                    reasons[0].contains("not delivered (transient)")
                        && reasons[0].contains("shutting down"),
                    "{reasons:?}"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    let report = sink.finish().await;
    assert_eq!(report.failed_deliveries, 4);
    assert_eq!(report.dead_lettered, 0);
    assert_eq!(report.records, 0);
    assert!(all_ids(&check_files(&out, max)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_retry_duration_fails_the_held_delivery() {
    let fs = Tmpfs::mount("256k");
    let out = fs.dir.join("out");
    let _filler = fill(&fs.dir, 0);
    let max = 16 * 1024;
    let cfg = DeliveryConfig {
        max_retry_duration_seconds: 1,
        ..delivery_config()
    };
    let mut sink = start(&out, max, false, cfg);
    let o = sink.send(0, 10, 100).await;
    let got = tokio::time::timeout(WAIT, o)
        .await
        .expect("answered")
        .expect("outcome");
    match got {
        ObjectOutcome::Failed { reasons } => {
            assert!(reasons[0].contains("max_retry_duration"), "{reasons:?}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let report = sink.finish().await;
    assert_eq!(report.failed_deliveries, 1);
    assert_eq!(report.dead_lettered, 0);
    assert!(all_ids(&check_files(&out, max)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_acknowledges_a_drained_group_after_one_commit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let mut sink = NdjsonSink {
        name: "files".into(),
        target: Target::Files(FileTarget::new(
            out.clone(),
            "records".into(),
            1 << 30,
            true,
            delivery_config(),
        )),
        shape: Shape::Raw,
    };
    sink.attach(&DeliveryControl::new());
    let (tx, rx) = mpsc::channel(64);
    let mut outcomes = Vec::new();
    // Queued before the sink runs: it drains them into one group.
    for obj in 0..40 {
        let (ack, outcome) = ObjectAck::new();
        tx.send(Delivery {
            chunk: chunk(obj, 5, 50),
            selection: None,
            token: ack.token(),
        })
        .await
        .map_err(|_| "closed")
        .expect("send");
        outcomes.push(outcome);
    }
    drop(tx);
    let report = tokio::time::timeout(WAIT, Box::new(sink).run(rx))
        .await
        .expect("finishes");
    assert_delivered(outcomes).await;
    assert_eq!(report.records, 200);
    assert_eq!(
        report.batches, 1,
        "one write pass and one sync for the group"
    );
    assert_eq!(all_ids(&check_files(&out, 1 << 30)).len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_files_of_dead_writers_are_repaired_and_live_ones_left_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    // A worker killed with -9 mid-write: two whole lines and the start of a third.
    let dead = out.join("records-oldhost-7-0badc0de-000003.ndjson");
    std::fs::write(
        &dead,
        b"{\"eventID\":\"old-1\"}\n{\"eventID\":\"old-2\"}\n{\"eventID\":\"old-3\",\"pa",
    )
    .expect("write");
    // A live writer (it holds its file's lock) caught in the middle of a write.
    let live_path = out.join("records-otherhost-9-00c0ffee-000000.ndjson");
    let mut live = LineFile::create_new(&live_path).expect("live file");
    live.append(b"{\"eventID\":\"live-1\"}\n").expect("append");
    let mut raw = std::fs::OpenOptions::new()
        .append(true)
        .open(&live_path)
        .expect("open");
    raw.write_all(b"{\"eventID\":\"li").expect("write");

    let mut sink = start(&out, 1 << 20, false, delivery_config());
    let o = sink.send(0, 3, 10).await;
    assert_delivered(vec![o]).await;
    let report = sink.finish().await;
    assert_eq!(report.records, 3);
    assert_eq!(
        std::fs::read(&dead).expect("read"),
        b"{\"eventID\":\"old-1\"}\n{\"eventID\":\"old-2\"}\n"
    );
    assert_eq!(
        std::fs::read(&live_path).expect("read"),
        b"{\"eventID\":\"live-1\"}\n{\"eventID\":\"li"
    );
    drop(live);
    // The sink's own file is a third, distinct name.
    let names: Vec<String> = std::fs::read_dir(&out)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let mine: Vec<&String> = names
        .iter()
        .filter(|n| n.contains(&format!("-{}-", std::process::id())))
        .collect();
    assert_eq!(mine.len(), 1, "{names:?}");
    assert!(mine[0].starts_with("records-") && mine[0].ends_with("-000000.ndjson"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_sharing_a_directory_never_share_a_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let max = 8 * 1024;
    let mut a = start(&out, max, false, delivery_config());
    let mut b = start(&out, max, false, delivery_config());
    let mut outcomes = Vec::new();
    for obj in 0..12 {
        outcomes.push(a.send(obj, 10, 100).await);
        outcomes.push(b.send(100 + obj, 10, 100).await);
    }
    assert_delivered(outcomes).await;
    let mut expected = a.expected();
    expected.extend(b.expected());
    a.finish().await;
    b.finish().await;
    let files = check_files(&out, max);
    assert_eq!(all_ids(&files), expected);
    // Each file holds one writer's records only, and the two writers' names differ.
    let mut stems = HashSet::new();
    for (name, ids) in &files {
        let stem = name
            .rsplit_once('-')
            .map(|(s, _)| s.to_string())
            .expect("stem");
        let from_a = ids.iter().all(|id| {
            id[1..]
                .split('-')
                .next()
                .and_then(|o| o.parse::<usize>().ok())
                .is_some_and(|o| o < 100)
        });
        let from_b = ids.iter().all(|id| {
            id[1..]
                .split('-')
                .next()
                .and_then(|o| o.parse::<usize>().ok())
                .is_some_and(|o| o >= 100)
        });
        assert!(from_a ^ from_b, "{name} mixes writers: {ids:?}");
        stems.insert((stem, from_a));
    }
    let names: HashSet<&String> = stems.iter().map(|(s, _)| s).collect();
    assert_eq!(stems.len(), 2, "{stems:?}");
    assert_eq!(names.len(), 2, "{stems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_on_a_full_disk_leave_nothing_partial_and_go_in_once_later() {
    use trailhose_pipeline::delivery::{DeadLetterPlace, LocalDeadLetters, RefusedRecord};
    let fs = Tmpfs::mount("256k");
    let place = LocalDeadLetters::new(&fs.dir.join("dl/dead.ndjson"));
    let record = format!("{{\"eventID\":\"big\",\"pad\":\"{}\"}}", "p".repeat(12_000));
    let entry = |i: u64| RefusedRecord {
        reason: "too large",
        label: "too_large",
        destination: "",
        source: "test://o",
        record_index: i,
        record: record.as_bytes(),
    };
    place.write("s", &[entry(0)]).await.expect("first");
    // One page left: the next line (~12 KiB) is cut short by the kernel, then ENOSPC.
    let filler = fill(&fs.dir, 4096);
    let e = place.write("s", &[entry(1)]).await.expect_err("disk full");
    assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
    let text = std::fs::read_to_string(place.path()).expect("read");
    assert_eq!(text.lines().count(), 1);
    assert!(text.ends_with('\n'));
    std::fs::remove_file(&filler).expect("free");
    place.write("s", &[entry(1)]).await.expect("after the fix");
    let text = std::fs::read_to_string(place.path()).expect("read");
    let idx: Vec<u64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON value per line");
            v["dead_letter"]["record_index"].as_u64().expect("index")
        })
        .collect();
    assert_eq!(idx, vec![0, 1]);
    assert_eq!(place.count(), 2);
}
