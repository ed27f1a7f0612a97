//! The detection stage end to end with its alert outputs: the NDJSON file and acknowledgements,
//! SNS on moto's emulator (delivered through a subscribed SQS queue), a webhook against a local
//! HTTP server (retries on 5xx, none on 4xx), and the failed-alerts file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use trailhose_core::FieldParser;
use trailhose_detect::outputs::{Output, Webhook};
use trailhose_detect::rules::{RuleSet, RuleSources};
use trailhose_detect::DetectSink;
use trailhose_pipeline::delivery::FailureClass;
use trailhose_pipeline::filter::CompiledFilter;
use trailhose_pipeline::{
    ObjectAck, ObjectMeta, ObjectOutcome, Pipeline, RecordChunk, Routed, SinkSpec,
};

const STOP: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/Ops/x","accountId":"111122223333"},"eventTime":"2026-11-02T11:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"eu-west-1","sourceIPAddress":"192.0.2.1","userAgent":"aws-cli/2","requestParameters":{"name":"org-trail"},"responseElements":null,"eventID":"e-stop","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management"}"#;
const QUIET: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","accountId":"111122223333"},"eventTime":"2026-11-02T11:00:01Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"eu-west-1","eventID":"e-quiet","readOnly":true,"eventType":"AwsApiCall","recipientAccountId":"111122223333","eventCategory":"Management"}"#;

fn pack() -> Arc<RuleSet> {
    Arc::new(
        RuleSet::load(&RuleSources {
            builtin: true,
            ..Default::default()
        })
        .expect("pack"),
    )
}

fn chunk(records: &[&str]) -> Arc<RecordChunk> {
    let object = Arc::new(ObjectMeta {
        source: "s3://bucket/AWSLogs/111122223333/CloudTrail/eu-west-1/x.json.gz".into(),
        account: Some("111122223333".into()),
        region: Some("eu-west-1".into()),
        ..Default::default()
    });
    let mut c = RecordChunk::new(object, 1 << 16);
    let mut p = FieldParser::new();
    for (i, r) in records.iter().enumerate() {
        let f = p.parse(r.as_bytes(), i as u64, 0).expect("valid record");
        c.push(r.as_bytes(), i as u64, f, false);
    }
    Arc::new(c)
}

/// Runs one chunk through a pipeline holding only `sink`; returns the object's outcome.
async fn one_object(
    sink: DetectSink,
    records: &[&str],
) -> (ObjectOutcome, trailhose_pipeline::SinkReport) {
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink: Box::new(sink),
            filter: CompiledFilter::pass_all(),
        }],
        4,
    );
    let (ack, rx) = ObjectAck::new();
    let sent = pipeline
        .input()
        .send(Routed {
            chunk: chunk(records),
            token: ack.token(),
        })
        .await;
    assert!(sent.is_ok(), "pipeline closed");
    drop(ack);
    let outcome = rx.await.expect("outcome");
    let mut reports = pipeline.shutdown().await;
    (outcome, reports.remove(0))
}

#[tokio::test]
async fn ndjson_alerts_counts_and_acknowledgement() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let alerts = tmp.path().join("a/alerts.ndjson");
    let sink = DetectSink::new(
        "detect",
        Some(pack()),
        vec![Output::ndjson(alerts.clone(), true)],
        tmp.path().join("failed.ndjson"),
        None,
    );
    let stats = sink.stats.clone();
    let (outcome, report) = one_object(sink, &[QUIET, STOP, QUIET]).await;
    assert_eq!(outcome, ObjectOutcome::Delivered { dead_lettered: 0 });
    assert_eq!(report.records, 3);
    let text = std::fs::read_to_string(&alerts).expect("alerts");
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            assert_eq!(v["eventID"], "e-stop");
            assert!(l.ends_with(&format!(",\"record\":{STOP}}}")));
            v["ruleId"].as_str().expect("ruleId").to_owned()
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            "cis-cloudtrail-config-changes",
            "cloudtrail-stopped-or-deleted"
        ]
    );
    let counts: Vec<(String, u64)> = stats
        .rule_counts()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(counts.len(), 2);
    assert_eq!(stats.records.load(Ordering::Relaxed), 3);
    assert!(!tmp.path().join("failed.ndjson").exists());
}

#[tokio::test]
async fn refused_alerts_go_to_the_failed_file_and_an_unwritable_one_fails_the_object() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The webhook refuses these alerts for good (400): they go to the failed-alerts file.
    let s = server(vec![400, 400]).await;
    let hook = || Webhook::new(&s.url, &Default::default(), Duration::from_secs(2)).expect("hook");
    let failed = tmp.path().join("failed.ndjson");
    let sink = DetectSink::new(
        "detect",
        Some(pack()),
        vec![Output::webhook(hook())],
        failed.clone(),
        None,
    );
    let stats = sink.stats.clone();
    let (outcome, _) = one_object(sink, &[STOP]).await;
    assert_eq!(outcome, ObjectOutcome::Delivered { dead_lettered: 0 });
    assert_eq!(stats.failed_alerts.load(Ordering::Relaxed), 2);
    let text = std::fs::read_to_string(&failed).expect("failed alerts");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let reason = v["reason"].as_str().expect("reason");
        assert!(reason.contains("webhook:") && reason.contains("400"), "{v}");
        assert_eq!(v["alert"]["eventID"], "e-stop");
    }
    // The failed-alerts file cannot be created (its parent is a file): the object fails.
    let s = server(vec![400, 400]).await;
    let blocker = tmp.path().join("blocker");
    std::fs::write(&blocker, b"x").expect("write");
    let sink = DetectSink::new(
        "detect",
        Some(pack()),
        vec![Output::webhook(
            Webhook::new(&s.url, &Default::default(), Duration::from_secs(2)).expect("hook"),
        )],
        blocker.join("failed.ndjson"),
        None,
    );
    let (outcome, report) = one_object(sink, &[STOP]).await;
    assert!(
        matches!(outcome, ObjectOutcome::Failed { .. }),
        "{outcome:?}"
    );
    assert_eq!(report.failed_deliveries, 1);
}

#[tokio::test]
async fn an_output_that_is_down_fails_the_delivery_and_never_fills_the_failed_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Nothing listens on this port: every POST is refused by the kernel (transient).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let hook = Webhook::new(
        &format!("http://127.0.0.1:{port}/hook"),
        &Default::default(),
        Duration::from_secs(2),
    )
    .expect("webhook");
    let failed = tmp.path().join("failed.ndjson");
    let delivery = trailhose_pipeline::delivery::DeliveryConfig {
        max_retry_duration_seconds: 1,
        backoff_ms: 20,
        max_backoff_ms: 100,
        probe_interval_ms: 50,
        max_probe_interval_ms: 100,
        ..Default::default()
    };
    let sink = DetectSink::new(
        "detect",
        Some(pack()),
        vec![Output::webhook(hook)],
        failed.clone(),
        None,
    )
    .with_delivery(delivery);
    let stats = sink.stats.clone();
    let (outcome, report) = one_object(sink, &[STOP]).await;
    match &outcome {
        ObjectOutcome::Failed { reasons } => {
            assert!(reasons[0].contains("transient"), "{reasons:?}");
            assert!(reasons[0].contains("max_retry_duration"), "{reasons:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(report.retries >= 1, "{report:?}");
    assert_eq!(stats.failed_alerts.load(Ordering::Relaxed), 0);
    assert!(!failed.exists(), "a down output is not a failed alert");
}

/// A minimal HTTP/1.1 server: answers each POST with the next status of `script` (then 200),
/// and keeps the bodies and headers it received.
/// (request head, body) of every request received.
type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

struct Server {
    url: String,
    requests: Requests,
    hits: Arc<AtomicUsize>,
}

async fn server(script: Vec<u16>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/alerts", listener.local_addr().expect("addr"));
    let requests: Requests = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (reqs, counter) = (requests.clone(), hits.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (reqs, counter, script) = (reqs.clone(), counter.clone(), script.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // Read one request: headers, then Content-Length bytes.
                    let head_end = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                        let mut tmp = [0u8; 4096];
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut tmp = [0u8; 4096];
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let body = buf[head_end..head_end + len].to_vec();
                    buf.drain(..head_end + len);
                    let i = counter.fetch_add(1, Ordering::SeqCst);
                    let status = script.get(i).copied().unwrap_or(200);
                    reqs.lock().expect("lock").push((head, body));
                    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Server {
        url,
        requests,
        hits,
    }
}

#[tokio::test]
async fn webhook_posts_alert_json_with_headers_and_retries_server_errors() {
    let s = server(vec![503, 500]).await;
    let mut headers = std::collections::BTreeMap::new();
    headers.insert("Authorization".to_string(), "Bearer test-token".to_string());
    let hook = Webhook::new(&s.url, &headers, Duration::from_secs(5)).expect("webhook");
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = DetectSink::new(
        "detect",
        Some(pack()),
        vec![Output::webhook(hook)],
        tmp.path().join("failed.ndjson"),
        None,
    );
    let (outcome, _) = one_object(sink, &[STOP, QUIET]).await;
    assert_eq!(outcome, ObjectOutcome::Delivered { dead_lettered: 0 });
    // Two alerts; the first needed two retries.
    assert_eq!(s.hits.load(Ordering::SeqCst), 4);
    let reqs = s.requests.lock().expect("lock").clone();
    let mut rules = Vec::new();
    for (head, body) in &reqs {
        assert!(head.starts_with("POST /alerts HTTP/1.1"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/json"), "{head}");
        assert!(lower.contains("authorization: bearer test-token"), "{head}");
        let v: serde_json::Value = serde_json::from_slice(body).expect("json body");
        assert_eq!(v["record"]["eventID"], "e-stop");
        rules.push(v["ruleId"].as_str().expect("ruleId").to_owned());
    }
    assert_eq!(
        rules[2..],
        [
            "cis-cloudtrail-config-changes",
            "cloudtrail-stopped-or-deleted"
        ]
    );
    assert!(!tmp.path().join("failed.ndjson").exists());

    // A 4xx other than 401/403/404/405/429 refuses the alert for good; 5xx and 429 are
    // transient; 401/403 refuse the output itself.
    let s = server(vec![400, 503, 429, 403]).await;
    let hook = Webhook::new(&s.url, &Default::default(), Duration::from_secs(5)).expect("webhook");
    let e = hook.post(b"{}".to_vec()).await.expect_err("400");
    assert!(e.reason.contains("400") && e.class.is_none(), "{e:?}");
    for want in [
        FailureClass::Transient,
        FailureClass::Transient,
        FailureClass::SinkRefused,
    ] {
        let e = hook.post(b"{}".to_vec()).await.expect_err("refused");
        assert_eq!(e.class, Some(want), "{e:?}");
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_output_publishes_to_a_topic_on_moto() {
    let moto = trailhose_testkit::moto();
    let sdk = moto.sdk_config("us-east-1").await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name("trailhose-alerts-test")
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("arn");
    let queue_url = sqs
        .create_queue()
        .queue_name("trailhose-alerts-test-q")
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("url");
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let queue_arn = attrs
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue arn");
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .expect("subscribe");

    // A record too large for SNS: its alert goes out without the record.
    let big = STOP.replace(
        r#""name":"org-trail""#,
        &format!(
            r#""name":"org-trail","padding":"{}""#,
            "x".repeat(300 * 1024)
        ),
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = DetectSink::new(
        "detect",
        Some(pack()),
        vec![Output::sns(sns.clone(), topic.clone())],
        tmp.path().join("failed.ndjson"),
        None,
    );
    let (outcome, _) = one_object(sink, &[STOP, QUIET, &big]).await;
    assert_eq!(outcome, ObjectOutcome::Delivered { dead_lettered: 0 });
    assert!(!tmp.path().join("failed.ndjson").exists());

    let mut got = Vec::new();
    for _ in 0..20 {
        let r = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for m in r.messages.unwrap_or_default() {
            got.push(m.body.unwrap_or_default());
        }
        if got.len() >= 4 {
            break;
        }
    }
    assert_eq!(got.len(), 4, "{got:?}");
    let mut omitted = 0;
    for body in &got {
        let envelope: serde_json::Value = serde_json::from_str(body).expect("SNS envelope");
        assert_eq!(envelope["Type"], "Notification");
        assert_eq!(envelope["TopicArn"], topic.as_str());
        let subject = envelope["Subject"].as_str().expect("subject");
        assert!(
            subject.starts_with("[CRITICAL]") || subject.starts_with("[HIGH]"),
            "{subject}"
        );
        assert!(subject.len() <= 100);
        let sev = envelope["MessageAttributes"]["severity"]["Value"]
            .as_str()
            .expect("severity attribute");
        assert!(sev == "critical" || sev == "high", "{sev}");
        let alert: serde_json::Value =
            serde_json::from_str(envelope["Message"].as_str().expect("message")).expect("alert");
        assert_eq!(alert["eventName"], "StopLogging");
        if alert.get("recordOmitted").is_some() {
            omitted += 1;
            assert!(alert.get("record").is_none());
        } else {
            assert_eq!(alert["record"]["eventID"], "e-stop");
        }
    }
    assert_eq!(omitted, 2);
}

fn api_call(ms: i64, name: &str, read_only: bool) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/bot","accountId":"111122223333"}},"eventTime":"{}","eventSource":"ec2.amazonaws.com","eventName":"{name}","awsRegion":"eu-west-1","sourceIPAddress":"192.0.2.1","userAgent":"terraform/1.9","requestParameters":null,"responseElements":null,"eventID":"id-{ms}-{name}","readOnly":{read_only},"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management"}}"#,
        trailhose_core::timefmt::format_rfc3339_s(ms)
    )
}

#[tokio::test]
async fn anomaly_stage_writes_insights_and_persists_its_state() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().display();
    let cfg: trailhose_config::detect::DetectionConfig = toml::from_str(&format!(
        r#"
builtin_rules = false
failed_alerts_path = "{d}/failed.ndjson"
[[outputs]]
type = "ndjson"
path = "{d}/alerts.ndjson"
[anomaly]
state_path = "{d}/state.json.gz"
insights_path = "{d}/insights.ndjson"
baseline_window_minutes = 120
bucket_minutes = 10
min_baseline_minutes = 30
lateness_minutes = 1
"#
    ))
    .expect("config");
    let base: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000;
    let minute = |m: i64| base + m * 60_000;
    let mut records: Vec<Vec<String>> = Vec::new();
    for block in 0..12 {
        let mut chunk = Vec::new();
        for m in block * 10..block * 10 + 10 {
            chunk.push(api_call(minute(m) + 500, "DescribeRegions", true));
            if m % 5 == 0 {
                chunk.push(api_call(minute(m) + 1000, "CreateTags", false));
            }
            if (100..103).contains(&m) {
                for s in 0..20 {
                    chunk.push(api_call(minute(m) + 2000 + s * 2000, "CreateTags", false));
                }
            }
        }
        records.push(chunk);
    }
    let sink = DetectSink::from_config("detect", &cfg).await.expect("sink");
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink: Box::new(sink),
            filter: CompiledFilter::pass_all(),
        }],
        4,
    );
    let mut outcomes = Vec::new();
    for chunk_records in &records {
        let refs: Vec<&str> = chunk_records.iter().map(String::as_str).collect();
        let (ack, rx) = ObjectAck::new();
        let sent = pipeline
            .input()
            .send(Routed {
                chunk: chunk(&refs),
                token: ack.token(),
            })
            .await;
        assert!(sent.is_ok());
        drop(ack);
        outcomes.push(rx);
    }
    for rx in outcomes {
        assert_eq!(
            rx.await.expect("outcome"),
            ObjectOutcome::Delivered { dead_lettered: 0 }
        );
    }
    pipeline.shutdown().await;

    let insights = std::fs::read_to_string(tmp.path().join("insights.ndjson")).expect("insights");
    let events: Vec<serde_json::Value> = insights
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(events.len(), 2, "{insights}");
    assert_eq!(events[0]["insightDetails"]["state"], "Start");
    assert_eq!(events[1]["insightDetails"]["state"], "End");
    assert_eq!(events[0]["insightDetails"]["eventName"], "CreateTags");
    assert_eq!(
        events[0]["eventTime"],
        trailhose_core::timefmt::format_rfc3339_s(minute(100))
    );
    assert_eq!(
        events[1]["eventTime"],
        trailhose_core::timefmt::format_rfc3339_s(minute(103))
    );
    assert_eq!(events[0]["sharedEventID"], events[1]["sharedEventID"]);
    // The same events went to the alert output.
    let alerts = std::fs::read_to_string(tmp.path().join("alerts.ndjson")).expect("alerts");
    assert_eq!(alerts, insights);
    // The state survives: a new stage starts from it.
    let bytes = std::fs::read(tmp.path().join("state.json.gz")).expect("state file");
    let opts = trailhose_detect::sink::anomaly_options(cfg.anomaly.as_ref().expect("anomaly"));
    let restored =
        trailhose_detect::AnomalyDetector::from_state_bytes(&bytes, &opts).expect("restores");
    assert_eq!(restored.keys(), 2);
    assert_eq!(restored.stats.starts, 1);
}
