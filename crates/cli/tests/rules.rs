//! `trailhose rules test|list` and `generate --inject` through the binary.

use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trailhose"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the trailhose binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn generate_injects_and_rules_test_finds_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = dir.path().join("corpus");
    let manifest = dir.path().join("manifest.json");
    let out = run(bin()
        .args([
            "generate",
            "--events",
            "4000",
            "--gzip-level",
            "1",
            "--inject",
        ])
        .arg("violations")
        .arg("--inject-manifest")
        .arg(&manifest)
        .arg("--out")
        .arg(&corpus));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("injected 21 violations"));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    let stop = m["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .find(|v| v["label"] == "cloudtrail-stop-logging")
        .expect("stop logging injected");
    let stop_id = stop["eventID"].as_str().expect("id");

    // One pattern: one line per matching record, a summary on stderr.
    let out = run(bin()
        .args([
            "rules",
            "test",
            "--rule",
            r#"{ $.eventName = "StopLogging" }"#,
        ])
        .arg(&corpus));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    assert!(
        lines.lines().all(|l| l.contains(" StopLogging ")),
        "{lines}"
    );
    assert!(lines.contains(stop_id), "{lines}");
    let n = lines.lines().count();
    assert!(
        text(&out.stderr).contains(&format!("{n} of 4021 records matched")),
        "{}",
        text(&out.stderr)
    );

    // --records prints the matching records themselves.
    let out = run(bin()
        .args([
            "rules",
            "test",
            "--records",
            "--id",
            "cloudtrail-stopped-or-deleted",
        ])
        .arg(&corpus));
    assert!(out.status.success());
    for l in text(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("record json");
        assert!(v["eventName"] == "StopLogging" || v["eventName"] == "DeleteTrail");
    }

    // NDJSON input (what `cat` writes) works the same.
    let cat = run(bin().arg("cat").arg(&corpus));
    assert!(cat.status.success());
    let ndjson = dir.path().join("all.ndjson");
    std::fs::write(&ndjson, &cat.stdout).expect("write");
    let out = run(bin()
        .args([
            "rules",
            "test",
            "--rule",
            r#"{ $.eventName = "StopLogging" }"#,
        ])
        .arg(&ndjson));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), n);

    // The whole pack: per-rule counts on stderr.
    let out = run(bin().args(["rules", "test"]).arg(&corpus));
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cis-root-usage") && err.contains("root-access-key-created"),
        "{err}"
    );
}

#[test]
fn malformed_patterns_and_unknown_ids_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("one.ndjson");
    std::fs::write(
        &f,
        b"{\"eventName\":\"X\",\"eventTime\":\"2026-01-01T00:00:00Z\"}\n",
    )
    .expect("write");
    let out = run(bin()
        .args(["rules", "test", "--rule", "{ $.eventName = }"])
        .arg(&f));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("column 17: expected a value after `=`") && err.contains("^"),
        "{err}"
    );
    let out = run(bin()
        .args(["rules", "test", "--id", "no-such-rule"])
        .arg(&f));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no-such-rule"));
}

#[test]
fn rules_list_shows_the_pack_and_user_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("mine.toml"),
        "[[rule]]\nid = \"bucket-deleted\"\ntitle = \"Bucket deleted\"\nseverity = \"high\"\npattern = '{ $.eventName = DeleteBucket }'\n",
    )
    .expect("write");
    let out = run(bin()
        .args(["rules", "list", "--patterns", "--rules-dir"])
        .arg(dir.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    for id in [
        "cis-unauthorized-api-calls",
        "cis-organizations-changes",
        "root-access-key-created",
        "bucket-deleted",
    ] {
        assert!(s.contains(id), "{id} missing:\n{s}");
    }
    assert!(s.contains("{ $.eventName = DeleteBucket }"));
    assert!(s.contains("21 rules"), "{s}");
}
