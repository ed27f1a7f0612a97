//! End-to-end tests of the `trailhose` binary on generated corpora.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trailhose"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the trailhose binary runs")
}

fn generate(dir: &Path, events: u64) -> Vec<PathBuf> {
    let opts = trailhose_gen::GenOptions {
        events,
        gzip_level: 1,
        events_per_file: 500,
        ..Default::default()
    };
    let s = trailhose_gen::generate(dir, &opts).expect("generate corpus");
    s.files.iter().map(|f| dir.join(&f.path)).collect()
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut d = flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("open"));
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut d, &mut v).expect("valid gzip");
    v
}

/// The exact record slices of a compact `{"Records":[...]}` file, found independently of the
/// splitter (serde_json's RawValue keeps the original bytes).
fn records_of(json: &[u8]) -> Vec<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct File<'a> {
        #[serde(borrow, rename = "Records")]
        records: Vec<&'a serde_json::value::RawValue>,
    }
    let f: File = serde_json::from_slice(json).expect("valid CloudTrail JSON");
    f.records
        .iter()
        .map(|r| r.get().as_bytes().to_vec())
        .collect()
}

#[test]
fn cat_is_byte_identical_and_ordered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = generate(dir.path(), 3000);
    let out = run(bin().arg("cat").args(&files));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected = Vec::new();
    for f in &files {
        for r in records_of(&gunzip(f)) {
            expected.extend_from_slice(&r);
            expected.push(b'\n');
        }
    }
    assert_eq!(out.stdout.len(), expected.len());
    assert!(
        out.stdout == expected,
        "output differs from the source records"
    );
}

#[test]
fn cat_of_a_directory_skips_digests_and_keeps_going_past_bad_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = generate(dir.path(), 1500);
    let good_records: usize = files.iter().map(|f| records_of(&gunzip(f)).len()).sum();
    let parent = files[0].parent().expect("file has a parent");
    // A truncated gzip, a garbage file and a file whose record is not an object.
    let whole = std::fs::read(&files[0]).expect("read");
    let truncated =
        parent.join("111122223333_CloudTrail_us-east-1_20261101T0000Z_TRUNCATED0000000.json.gz");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).expect("write");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, b"this is not json").expect("write");
    let not_object = dir.path().join("not-object.json");
    std::fs::write(&not_object, br#"{"Records":[{"eventName":"A"},42]}"#).expect("write");

    let out = run(bin().arg("cat").arg(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "one line per bad file: {stderr}");
    assert!(
        stderr.contains("TRUNCATED0000000") && stderr.contains("corrupt gzip"),
        "{stderr}"
    );
    assert!(
        stderr.contains("garbage.json") && stderr.contains("neither gzip, zstd nor a JSON object"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not-object.json")
            && stderr.contains("record 1")
            && stderr.contains("not a JSON object"),
        "{stderr}"
    );
    let n = out.stdout.iter().filter(|&&b| b == b'\n').count();
    // All good files complete, plus the records before each fault (1 from not-object.json, some
    // from the truncated copy).
    assert!(n > good_records, "{n} <= {good_records}");
    assert!(n < 2 * good_records);
}

#[test]
fn pretty_printed_records_become_single_json_equal_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("pretty.json");
    let doc = serde_json::json!({"Records": [
        {"eventName": "A", "nested": {"x": [1, 2, "a \" b"]}},
        {"eventName": "B\nC"}
    ]});
    std::fs::write(&f, serde_json::to_vec_pretty(&doc).expect("json")).expect("write");
    let out = run(bin().arg("cat").arg(&f));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(
        lines,
        doc["Records"].as_array().cloned().unwrap_or_default()
    );
}

#[test]
fn check_config_reports_unknown_keys_and_accepts_shipped_configs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    for entry in std::fs::read_dir(&root).expect("config dir") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|e| e == "toml") {
            let out = run(bin().arg("check-config").arg(&p));
            assert!(
                out.status.success(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[source]\ntype = \"dir\"\npath = \"x\"\nlayuot = \"s3\"\n[[sinks]]\ntype = \"stdout\"\nname = \"o\"\n").expect("write");
    let out = run(bin().arg("check-config").arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field `layuot`") && err.contains("bad.toml:4"),
        "{err}"
    );
}

#[test]
fn run_ships_every_record_and_dead_letters_bad_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("sample");
    let files = generate(&sample, 2000);
    let total: usize = files.iter().map(|f| records_of(&gunzip(f)).len()).sum();
    // A digest file (skipped, not parsed) and a corrupt log file (dead-lettered).
    let digest_dir = sample.join("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/01");
    std::fs::create_dir_all(&digest_dir).expect("mkdir");
    std::fs::write(
        digest_dir.join(
            "111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20261101T000512Z.json.gz",
        ),
        b"{}",
    )
    .expect("write");
    let name = files[0]
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 name");
    let stem = &name[..name.len() - "XXXXXXXXXXXXXXXX.json.gz".len()];
    let bad = files[0].with_file_name(format!("{stem}BADBADBADBADBAD0.json.gz"));
    std::fs::write(&bad, b"\x1f\x8b\x08\x00garbage").expect("write");
    let out_dir = dir.path().join("out");
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\ntype = \"dir\"\npath = {:?}\n[dead_letter]\npath = {:?}\n[[sinks]]\ntype = \"ndjson\"\nname = \"all\"\ndir = {:?}\nmax_file_bytes = 1000000\n[[sinks]]\ntype = \"ndjson\"\nname = \"mgmt\"\ndir = {:?}\nshape = \"envelope\"\n[sinks.filter]\nevent_category = [\"Management\"]\n",
            sample.display().to_string(),
            out_dir.join("dlq.ndjson").display().to_string(),
            out_dir.join("all").display().to_string(),
            out_dir.join("mgmt").display().to_string(),
        ),
    )
    .expect("write config");
    let out = run(bin().arg("run").arg("--config").arg(&cfg));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a dead-lettered file makes the run unclean: {stderr}"
    );
    assert!(stderr.contains("files skipped: 1 (digest)"), "{stderr}");

    let mut all = Vec::new();
    let all_files = trailhose_pipeline::dir_source::list_files(&out_dir.join("all")).expect("list");
    assert!(all_files.len() > 1, "rotation by size");
    for f in all_files {
        all.extend(std::fs::read(f).expect("read"));
    }
    let mut expected: Vec<Vec<u8>> = files.iter().flat_map(|f| records_of(&gunzip(f))).collect();
    let mut got: Vec<Vec<u8>> = all
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(got.len(), total);
    expected.sort();
    got.sort();
    assert!(got == expected, "every record exactly once, byte-identical");

    let mut mgmt = 0;
    for f in trailhose_pipeline::dir_source::list_files(&out_dir.join("mgmt")).expect("list") {
        for line in std::fs::read_to_string(f).expect("read").lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            assert_eq!(v["record"]["eventCategory"], "Management");
            assert!(v["trailhose"]["account"].is_string() && v["trailhose"]["key"].is_string());
            mgmt += 1;
        }
    }
    assert!(mgmt > 0 && mgmt < total);

    let dlq = std::fs::read_to_string(out_dir.join("dlq.ndjson")).expect("dead letters written");
    let entries: Vec<serde_json::Value> = dlq
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(entries.len(), 1);
    assert!(entries[0]["source"]
        .as_str()
        .is_some_and(|s| s.contains("BADBADBADBADBAD0")));
    assert_eq!(entries[0]["kind"], "corrupt_compression");
}

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(bin()
        .args(["demo", "--events", "3000", "--dir"])
        .arg(dir.path()));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains("ok: every record"), "{all}");
    assert!(
        all.contains("events by account / region / category"),
        "{all}"
    );
}

#[test]
fn log_level_comes_from_the_config_unless_the_environment_sets_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    generate(&dir.path().join("sample"), 200);
    let cfg = |level: &str| {
        let p = dir.path().join(format!("run-{}.toml", level.len()));
        std::fs::write(
            &p,
            format!(
                "[source]\ntype = \"dir\"\npath = {:?}\n[[sinks]]\ntype = \"discard\"\nname = \"null\"\n[ops]\nlisten = \"127.0.0.1:0\"\nlog_level = {level:?}\n",
                dir.path().join("sample").display().to_string()
            ),
        )
        .expect("write config");
        p
    };
    let quiet = run(bin()
        .arg("run")
        .arg("--config")
        .arg(cfg("warn"))
        .env_remove("TRAILHOSE_LOG"));
    assert!(quiet.status.success());
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("ops listener"));
    let info = run(bin()
        .arg("run")
        .arg("--config")
        .arg(cfg("info"))
        .env_remove("TRAILHOSE_LOG"));
    assert!(info.status.success());
    assert!(
        String::from_utf8_lossy(&info.stderr).contains("ops listener"),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let env_wins = run(bin()
        .arg("run")
        .arg("--config")
        .arg(cfg("info"))
        .env("TRAILHOSE_LOG", "error"));
    assert!(!String::from_utf8_lossy(&env_wins.stderr).contains("ops listener"));
}

#[test]
fn run_reports_what_each_named_drop_rule_kept_from_its_sink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("sample");
    let files = generate(&sample, 1500);
    let total: usize = files.iter().map(|f| records_of(&gunzip(f)).len()).sum();
    let out_dir = dir.path().join("out");
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\ntype = \"dir\"\npath = {:?}\n[dead_letter]\npath = {:?}\n[[sinks]]\ntype = \"ndjson\"\nname = \"writes\"\ndir = {:?}\n[sinks.filter]\nname = \"drop-read-only\"\nread_only = false\n",
            sample.display().to_string(),
            out_dir.join("dlq.ndjson").display().to_string(),
            out_dir.join("writes").display().to_string(),
        ),
    )
    .expect("write config");
    let out = run(bin().arg("run").arg("--config").arg(&cfg));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kept: usize = std::fs::read_dir(out_dir.join("writes"))
        .expect("output dir")
        .flatten()
        .map(|f| {
            std::fs::read(f.path())
                .expect("read")
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
        })
        .sum();
    assert!(kept > 0 && kept < total, "{kept} of {total}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "records dropped by rule drop-read-only: {}",
            total - kept
        )),
        "{stderr}"
    );
}
