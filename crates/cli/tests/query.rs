//! `trailhose query` and `trailhose lookup` over an archive written by `trailhose run`: every
//! answer is checked against the same question computed by hand over the NDJSON output of the
//! same run (the records as CloudTrail wrote them).

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trailhose"))
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

struct Fixture {
    _dir: tempfile::TempDir,
    archive: PathBuf,
    records: Vec<Value>,
}

/// One generated org trail (3 accounts × 2 regions), run once into NDJSON and the archive
/// (small files and few open files, so rolling and LRU commits happen).
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let sample = dir.path().join("sample");
        let opts = trailhose_gen::GenOptions {
            events: 6000,
            gzip_level: 1,
            events_per_file: 400,
            ..Default::default()
        };
        trailhose_gen::generate(&sample, &opts).expect("generate");
        let archive = dir.path().join("archive");
        let ndjson = dir.path().join("ndjson");
        let config = dir.path().join("run.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[source]
type = "dir"
path = {sample:?}

[dead_letter]
path = {dlq:?}

[[sinks]]
type = "ndjson"
name = "ndjson"
dir = {ndjson:?}

[[sinks]]
type = "archive"
name = "archive"
location = {archive:?}
max_file_bytes = 1048576
max_open_files = 3
"#,
                sample = sample.display().to_string(),
                dlq = dir.path().join("dlq.ndjson").display().to_string(),
                ndjson = ndjson.display().to_string(),
                archive = archive.display().to_string(),
            ),
        )
        .expect("config");
        ok(
            bin()
                .args(["run", "--config"])
                .arg(&config)
                .output()
                .expect("run"),
            "run",
        );
        let mut records = Vec::new();
        for f in std::fs::read_dir(&ndjson).expect("ndjson dir").flatten() {
            let text = std::fs::read_to_string(f.path()).expect("read");
            for line in text.lines() {
                records.push(serde_json::from_str::<Value>(line).expect("json line"));
            }
        }
        assert!(records.len() >= 6000, "{} records", records.len());
        Fixture {
            _dir: dir,
            archive,
            records,
        }
    })
}

fn query(sql: &str) -> Vec<Value> {
    let f = fixture();
    let out = bin()
        .args(["query", "--format", "json", "--archive"])
        .arg(&f.archive)
        .arg(sql)
        .output()
        .expect("query runs");
    serde_json::from_str(&ok(out, sql)).expect("a JSON array")
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str()
}

/// `{key: n}` from rows `{k: .., n: ..}` (a missing key is NULL).
fn counts(rows: &[Value], key: &str) -> BTreeMap<Option<String>, u64> {
    rows.iter()
        .map(|r| {
            (
                r.get(key).and_then(Value::as_str).map(str::to_owned),
                r["n"].as_u64().expect("n"),
            )
        })
        .collect()
}

fn tally<'a>(keys: impl Iterator<Item = Option<&'a str>>) -> BTreeMap<Option<String>, u64> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k.map(str::to_owned)).or_default() += 1;
    }
    m
}

#[test]
fn the_briefs_query_runs_verbatim_and_returns_the_admin_user_rows() {
    let rows = query("SELECT eventTime, eventName, userIdentity.username FROM cloudtrail_logs WHERE userIdentity.username = 'admin_user' ORDER BY eventTime DESC LIMIT 10;");
    let mut expected: Vec<(&str, &str)> = fixture()
        .records
        .iter()
        .filter(|r| str_of(r, &["userIdentity", "userName"]) == Some("admin_user"))
        .map(|r| {
            (
                str_of(r, &["eventTime"]).unwrap_or(""),
                str_of(r, &["eventName"]).unwrap_or(""),
            )
        })
        .collect();
    assert!(expected.len() > 10, "the corpus has an admin_user history");
    expected.sort_by(|a, b| b.0.cmp(a.0));
    let got: Vec<&str> = rows
        .iter()
        .map(|r| r["eventtime"].as_str().unwrap_or(""))
        .collect();
    let want: Vec<&str> = expected.iter().take(10).map(|e| e.0).collect();
    assert_eq!(got, want);
    for r in &rows {
        let user = r
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.contains("username")));
        assert_eq!(
            user.map(|(_, v)| v.as_str()),
            Some(Some("admin_user")),
            "{r}"
        );
        // Each returned (time, name) pair exists among admin_user's events.
        let pair = (
            r["eventtime"].as_str().unwrap_or(""),
            r["eventname"].as_str().unwrap_or(""),
        );
        assert!(expected.contains(&pair), "{pair:?}");
    }
}

#[test]
fn athena_style_aggregates_match_the_ndjson() {
    let recs = &fixture().records;
    let total = query("SELECT count(*) AS n FROM cloudtrail_logs");
    assert_eq!(total[0]["n"].as_u64(), Some(recs.len() as u64));

    let by_source =
        query("SELECT eventsource, count(*) AS n FROM cloudtrail_logs GROUP BY eventsource");
    assert_eq!(
        counts(&by_source, "eventsource"),
        tally(recs.iter().map(|r| str_of(r, &["eventSource"])))
    );

    let errors = query(
        "SELECT errorcode, count(*) AS n FROM cloudtrail_logs WHERE errorcode IS NOT NULL GROUP BY errorcode ORDER BY n DESC",
    );
    let hand = tally(
        recs.iter()
            .filter_map(|r| str_of(r, &["errorCode"]).map(Some)),
    );
    assert!(!hand.is_empty(), "the corpus has errors");
    assert_eq!(counts(&errors, "errorcode"), hand);

    let mut times: Vec<&str> = recs
        .iter()
        .filter_map(|r| str_of(r, &["eventTime"]))
        .collect();
    times.sort_unstable();
    let (t1, t2) = (times[times.len() / 4], times[3 * times.len() / 4]);
    let ranged = query(&format!(
        "SELECT count(*) AS n FROM cloudtrail_logs WHERE eventtime >= '{t1}' AND eventtime < '{t2}'"
    ));
    let hand = times.iter().filter(|t| **t >= t1 && **t < t2).count() as u64;
    assert_eq!(ranged[0]["n"].as_u64(), Some(hand));
    let by_ts = query(&format!(
        "SELECT count(*) AS n FROM cloudtrail_logs WHERE from_iso8601_timestamp(eventtime) >= from_iso8601_timestamp('{t1}') AND eventtimestamp < TIMESTAMP '{t2}'"
    ));
    assert_eq!(by_ts[0]["n"].as_u64(), Some(hand));

    let buckets = query(
        "SELECT json_extract_scalar(requestparameters, '$.bucketName') AS bucket, count(*) AS n FROM cloudtrail_logs WHERE eventsource = 's3.amazonaws.com' GROUP BY 1",
    );
    let hand = tally(
        recs.iter()
            .filter(|r| str_of(r, &["eventSource"]) == Some("s3.amazonaws.com"))
            .map(|r| str_of(r, &["requestParameters", "bucketName"])),
    );
    assert!(hand.keys().any(Option::is_some), "S3 events name buckets");
    assert_eq!(counts(&buckets, "bucket"), hand);

    let by_partition = query(
        "SELECT concat(account, '/', region) AS k, count(*) AS n FROM cloudtrail_logs GROUP BY account, region",
    );
    let keys: Vec<String> = recs
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                str_of(r, &["recipientAccountId"]).unwrap_or(""),
                str_of(r, &["awsRegion"]).unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        counts(&by_partition, "k"),
        tally(keys.iter().map(|k| Some(k.as_str())))
    );
    assert_eq!(by_partition.len(), 6, "3 accounts × 2 regions");
}

#[test]
fn partition_predicates_prune_directories() {
    let account = str_of(&fixture().records[0], &["recipientAccountId"]).expect("account");
    let plan = query(&format!(
        "EXPLAIN SELECT count(*) FROM cloudtrail_logs WHERE account = '{account}' AND eventname LIKE '%e%'"
    ));
    let text = plan.iter().map(|r| r.to_string()).collect::<String>();
    assert!(text.contains(&format!("account={account}")), "{text}");
    let others: Vec<&str> = fixture()
        .records
        .iter()
        .filter_map(|r| str_of(r, &["recipientAccountId"]))
        .filter(|a| *a != account)
        .collect();
    assert!(!others.is_empty());
    for other in others {
        assert!(
            !text.contains(&format!("account={other}")),
            "the plan reads account {other}: {text}"
        );
    }
}

fn lookup(args: &[&str]) -> Vec<Value> {
    let f = fixture();
    let out = bin()
        .arg("lookup")
        .arg("--archive")
        .arg(&f.archive)
        .args(args)
        .output()
        .expect("lookup runs");
    let v: Value = serde_json::from_str(&ok(out, &format!("lookup {args:?}"))).expect("JSON");
    v["Events"].as_array().cloned().expect("Events[]")
}

/// The console user name, as `lookup` documents it.
fn username(r: &Value) -> Option<String> {
    let ui = &r["userIdentity"];
    if let Some(u) = ui["userName"].as_str() {
        return Some(u.to_owned());
    }
    match ui["type"].as_str() {
        Some("AssumedRole" | "FederatedUser" | "WebIdentityUser" | "SAMLUser") => ui["arn"]
            .as_str()
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_owned()),
        Some("Root") => Some("root".into()),
        _ => ui["invokedBy"].as_str().map(str::to_owned),
    }
}

fn resource_values(r: &Value, field: &str) -> Vec<String> {
    r["resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x[field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Event ids newest first (ties by event id, descending), as lookup orders them.
fn newest_first(mut recs: Vec<&Value>) -> Vec<String> {
    let ms = |r: &Value| {
        trailhose_core::timefmt::parse_rfc3339_ms(r["eventTime"].as_str().unwrap_or(""))
            .unwrap_or(i64::MIN)
    };
    recs.sort_by(|a, b| {
        ms(b)
            .cmp(&ms(a))
            .then_with(|| b["eventID"].as_str().cmp(&a["eventID"].as_str()))
    });
    recs.iter()
        .map(|r| r["eventID"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["EventId"].as_str().unwrap_or("").to_owned())
        .collect()
}

type Matcher<'a> = Box<dyn Fn(&Value) -> bool + 'a>;

#[test]
fn lookup_equals_filtering_by_hand_for_every_attribute_key() {
    let recs = &fixture().records;
    let with_resources = recs
        .iter()
        .find(|r| !resource_values(r, "ARN").is_empty())
        .expect("a record with resources");
    let with_key = recs
        .iter()
        .find(|r| r["userIdentity"]["accessKeyId"].is_string())
        .expect("a record with an access key");
    let cases: Vec<(&str, String, Matcher)> = vec![
        (
            "EventId",
            recs[17]["eventID"].as_str().unwrap_or("").to_owned(),
            Box::new(|r: &Value| r["eventID"] == recs[17]["eventID"]),
        ),
        (
            "EventName",
            "ConsoleLogin".into(),
            Box::new(|r: &Value| r["eventName"] == "ConsoleLogin"),
        ),
        (
            "ReadOnly",
            "false".into(),
            Box::new(|r: &Value| r["readOnly"] == false),
        ),
        (
            "Username",
            "admin_user".into(),
            Box::new(|r: &Value| username(r).as_deref() == Some("admin_user")),
        ),
        (
            "ResourceType",
            resource_values(with_resources, "type")[0].clone(),
            {
                let t = resource_values(with_resources, "type")[0].clone();
                Box::new(move |r: &Value| resource_values(r, "type").contains(&t))
            },
        ),
        (
            "ResourceName",
            resource_values(with_resources, "ARN")[0].clone(),
            {
                let a = resource_values(with_resources, "ARN")[0].clone();
                Box::new(move |r: &Value| resource_values(r, "ARN").contains(&a))
            },
        ),
        (
            "EventSource",
            "iam.amazonaws.com".into(),
            Box::new(|r: &Value| r["eventSource"] == "iam.amazonaws.com"),
        ),
        (
            "AccessKeyId",
            with_key["userIdentity"]["accessKeyId"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            {
                let k = with_key["userIdentity"]["accessKeyId"].clone();
                Box::new(move |r: &Value| r["userIdentity"]["accessKeyId"] == k)
            },
        ),
    ];
    for (key, value, matches) in cases {
        let attr = format!("AttributeKey={key},AttributeValue={value}");
        let got = lookup(&["--lookup-attributes", &attr]);
        let want = newest_first(recs.iter().filter(|r| matches(r)).collect());
        assert!(!want.is_empty(), "{attr}: the corpus has matches");
        assert_eq!(ids(&got), want, "{attr}");
    }
}

#[test]
fn lookup_answers_in_the_cli_shape_with_time_range_and_limit() {
    let recs = &fixture().records;
    let mut times: Vec<&str> = recs
        .iter()
        .filter_map(|r| r["eventTime"].as_str())
        .collect();
    times.sort_unstable();
    let (start, end) = (times[times.len() / 3], times[2 * times.len() / 3]);
    let got = lookup(&[
        "--lookup-attributes",
        "AttributeKey=ReadOnly,AttributeValue=true",
        "--start-time",
        start,
        "--end-time",
        end,
        "--max-results",
        "25",
    ]);
    let want = newest_first(
        recs.iter()
            .filter(|r| r["readOnly"] == true)
            .filter(|r| {
                let t = r["eventTime"].as_str().unwrap_or("");
                t >= start && t <= end
            })
            .collect(),
    );
    assert_eq!(ids(&got), want[..25.min(want.len())].to_vec());
    let by_id: BTreeMap<&str, &Value> = recs
        .iter()
        .map(|r| (r["eventID"].as_str().unwrap_or(""), r))
        .collect();
    for e in &got {
        let o = e.as_object().expect("object");
        for k in [
            "EventId",
            "EventName",
            "ReadOnly",
            "EventTime",
            "EventSource",
            "Resources",
            "CloudTrailEvent",
        ] {
            assert!(o.contains_key(k), "{k} missing in {e}");
        }
        let rec = by_id[e["EventId"].as_str().unwrap_or("")];
        let original: Value =
            serde_json::from_str(e["CloudTrailEvent"].as_str().expect("string")).expect("JSON");
        assert_eq!(&original, rec, "CloudTrailEvent is the record");
        let t = e["EventTime"].as_str().expect("EventTime");
        assert!(
            t.ends_with("+00:00") && t.starts_with(&rec["eventTime"].as_str().unwrap_or("")[..19]),
            "{t}"
        );
        assert_eq!(e["ReadOnly"], "true");
        assert_eq!(e["Username"].as_str().map(str::to_owned), username(rec));
    }
}

#[test]
fn bad_questions_get_one_clear_error() {
    let f = fixture();
    let out = bin()
        .args(["query", "--archive"])
        .arg(&f.archive)
        .arg("SELECT nosuchcolumn FROM cloudtrail_logs")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosuchcolumn"), "{err}");

    let out = bin()
        .args(["query", "--archive", "/nonexistent/archive", "SELECT 1"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/archive"));

    let out = bin()
        .arg("lookup")
        .arg("--archive")
        .arg(&f.archive)
        .args([
            "--lookup-attributes",
            "AttributeKey=Colour,AttributeValue=red",
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown AttributeKey `Colour`"));
}

fn moto_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

#[test]
fn an_s3_archive_is_uploaded_in_parts_encrypted_and_queryable() {
    let moto = trailhose_testkit::moto();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let bucket = format!("archive-{}", std::process::id());
    let s3 = rt.block_on(async {
        let sdk = moto.sdk_config("us-east-1").await;
        let s3 = trailhose_testkit::s3_client_for(&sdk);
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        s3
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("sample");
    let generated = trailhose_gen::generate(
        &sample,
        &trailhose_gen::GenOptions {
            events: 8000,
            gzip_level: 1,
            accounts: 1,
            regions: 1,
            ..Default::default()
        },
    )
    .expect("generate");
    let config = dir.path().join("s3.toml");
    // Uncompressed Parquet, so one file passes the 5 MiB multipart threshold.
    std::fs::write(
        &config,
        format!(
            r#"
[source]
type = "dir"
path = {sample:?}

[dead_letter]
path = {dlq:?}

[[sinks]]
type = "archive"
name = "s3-archive"
location = "s3://{bucket}/cloudtrail"
endpoint_url = "{endpoint}"
region = "us-east-1"
compression = "none"
sse = "aws:kms"
part_bytes = 5242880
multipart_threshold_bytes = 5242880
"#,
            sample = sample.display().to_string(),
            dlq = dir.path().join("dlq.ndjson").display().to_string(),
            endpoint = moto.endpoint,
        ),
    )
    .expect("config");
    ok(
        moto_env(bin().args(["run", "--config"]).arg(&config))
            .output()
            .expect("run"),
        "run",
    );

    let objects = rt.block_on(async {
        let list = s3
            .list_objects_v2()
            .bucket(&bucket)
            .prefix("cloudtrail/")
            .send()
            .await
            .expect("list");
        let mut out = Vec::new();
        for o in list.contents() {
            let key = o.key().unwrap_or_default().to_owned();
            let head = s3
                .head_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .expect("head");
            out.push((
                key,
                o.size().unwrap_or(0),
                head.server_side_encryption().map(|s| s.as_str().to_owned()),
                head.e_tag().unwrap_or_default().to_owned(),
            ));
        }
        out
    });
    assert!(!objects.is_empty());
    for (key, _, sse, _) in &objects {
        assert!(
            key.starts_with("cloudtrail/account=") && key.ends_with(".parquet"),
            "{key}"
        );
        assert!(key.contains("/region=") && key.contains("/dt="), "{key}");
        assert_eq!(sse.as_deref(), Some("aws:kms"), "{key}");
    }
    assert!(
        objects
            .iter()
            .any(|(_, size, _, etag)| *size > 5 << 20 && etag.contains('-')),
        "one file went up as a multipart upload: {objects:?}"
    );

    let out = moto_env(
        bin()
            .args(["query", "--format", "json", "--archive"])
            .arg(format!("s3://{bucket}/cloudtrail"))
            .args(["--endpoint-url", &moto.endpoint, "--region", "us-east-1"])
            .arg("SELECT count(*) AS n, count(DISTINCT eventid) AS ids FROM cloudtrail_logs"),
    )
    .output()
    .expect("query");
    let rows: Vec<Value> = serde_json::from_str(&ok(out, "query s3")).expect("json");
    assert_eq!(rows[0]["n"].as_u64(), Some(generated.records));
    assert_eq!(rows[0]["ids"].as_u64(), Some(generated.records));
}
