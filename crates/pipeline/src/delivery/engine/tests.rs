use super::*;
use crate::delivery::LocalDeadLetters;
use crate::{ObjectAck, ObjectOutcome};
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;

/// A destination with scripted answers: fails the first `fail_first` calls with `whole`,
/// splits batches above `max`, rejects ids starting with `bad`, records what it accepted.
struct Scripted {
    calls: AtomicU64,
    max: usize,
    fail_first: u64,
    whole: Verdict,
    /// While true, every call is refused as a whole (a broken IAM policy being fixed).
    refusing: AtomicBool,
    /// Every document answered with a transient error of its own.
    per_doc_retry: bool,
    accepted: Mutex<Vec<String>>,
}

impl Scripted {
    fn new(fail_first: u64, whole: Verdict) -> Self {
        Scripted {
            calls: AtomicU64::new(0),
            max: usize::MAX,
            fail_first,
            whole,
            refusing: AtomicBool::new(false),
            per_doc_retry: false,
            accepted: Mutex::new(Vec::new()),
        }
    }
}

impl Transport for Scripted {
    fn send<'a>(&'a self, docs: &'a [&'a Doc]) -> SendFuture<'a> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::Relaxed);
            if self.refusing.load(Ordering::Relaxed) {
                return Err(Verdict::refused("AccessDeniedException: not authorized"));
            }
            if n < self.fail_first {
                return Err(self.whole.clone());
            }
            if self.per_doc_retry {
                return Ok(vec![Verdict::retry("503 Service Unavailable"); docs.len()]);
            }
            if docs.len() > self.max {
                return Err(Verdict::Split {
                    reason: "too large".into(),
                });
            }
            let mut out = Vec::new();
            for d in docs {
                if d.id.starts_with("bad") {
                    out.push(Verdict::Reject {
                        reason: "bad document".into(),
                    });
                } else {
                    lock(&self.accepted).push(d.id.clone());
                    out.push(Verdict::Accepted);
                }
            }
            Ok(out)
        })
    }
}

fn raw() -> Prepare {
    Box::new(|chunk: &RecordChunk, r: &RecordMeta| {
        let bytes = chunk.bytes_of(r);
        if bytes.len() > 200 {
            return Err(Refusal {
                label: "too_large",
                reason: format!("{} bytes is above 200", bytes.len()),
                dest: String::new(),
            });
        }
        Ok(Prepared {
            body: bytes.to_vec(),
            dest: String::new(),
            time_ms: r.fields.event_time_ms,
        })
    })
}

fn chunk(ids: &[&str]) -> Arc<RecordChunk> {
    let mut c = RecordChunk::new(Arc::new(ObjectMeta::default()), 1024);
    let mut p = trailhose_core::FieldParser::new();
    for (i, id) in ids.iter().enumerate() {
        let rec = format!(r#"{{"eventID":"{id}","eventTime":"2026-11-01T00:00:00Z"}}"#);
        let f = p.parse(rec.as_bytes(), i as u64, 0).expect("valid");
        c.push(rec.as_bytes(), i as u64, f, false);
    }
    Arc::new(c)
}

fn cfg() -> DeliveryConfig {
    DeliveryConfig {
        max_events: 8,
        linger_ms: 5,
        backoff_ms: 1,
        max_backoff_ms: 2,
        probe_interval_ms: 5,
        max_probe_interval_ms: 20,
        requests_per_second: 10_000,
        ..Default::default()
    }
}

struct Run {
    outcome: tokio::sync::oneshot::Receiver<ObjectOutcome>,
    report: tokio::task::JoinHandle<SinkReport>,
}

fn start(
    sink: BatchSink<Scripted>,
    control: &DeliveryControl,
    ids: &[&str],
    selection: Option<Arc<[u32]>>,
) -> Run {
    let mut sink = Box::new(sink);
    sink.attach(control);
    let (tx, rx) = mpsc::channel(4);
    let report = tokio::spawn(sink.run(rx));
    let (ack, outcome) = ObjectAck::new();
    let d = Delivery {
        chunk: chunk(ids),
        selection,
        token: ack.token(),
    };
    tokio::spawn(async move {
        let _ = tx.send(d).await;
        drop(ack);
    });
    Run { outcome, report }
}

#[tokio::test]
async fn retries_splits_rejects_and_acks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut transport = Scripted::new(2, Verdict::throttled("busy"));
    transport.max = 3;
    let place = LocalDeadLetters::new(&dir.path().join("dl.ndjson"));
    let sink = BatchSink::new("t", &cfg(), transport, raw(), place.clone());
    let transport = sink.transport();
    let ids: Vec<String> = (0..20)
        .map(|i| {
            if i % 7 == 3 {
                format!("bad-{i}")
            } else {
                format!("ok-{i}")
            }
        })
        .collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let run = start(sink, &DeliveryControl::new(), &id_refs, None);
    let bad = ids.iter().filter(|i| i.starts_with("bad")).count();
    assert_eq!(
        run.outcome.await.ok(),
        Some(ObjectOutcome::Delivered {
            dead_lettered: bad as u64
        })
    );
    let report = run.report.await.expect("sink task");
    assert_eq!(report.records as usize, ids.len() - bad, "{report:?}");
    assert_eq!(report.dead_lettered as usize, bad);
    assert!(report.throttled >= 1 && report.retries >= 1, "{report:?}");
    let accepted = lock(&transport.accepted).clone();
    let unique: HashSet<&String> = accepted.iter().collect();
    assert_eq!(unique.len(), accepted.len(), "no document sent twice");
    let dl = std::fs::read_to_string(place.path()).expect("dead letters");
    assert_eq!(dl.lines().count(), bad);
    assert!(dl.contains("\"reason\":\"bad document\""));
}

#[tokio::test]
async fn a_record_the_destination_can_never_take_is_dead_lettered_before_sending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let place = LocalDeadLetters::new(&dir.path().join("dl.ndjson"));
    let sink = BatchSink::new(
        "t",
        &cfg(),
        Scripted::new(0, Verdict::retry("-")),
        raw(),
        place.clone(),
    );
    let long = "x".repeat(300);
    let run = start(sink, &DeliveryControl::new(), &["a", &long, "b"], None);
    assert_eq!(
        run.outcome.await.ok(),
        Some(ObjectOutcome::Delivered { dead_lettered: 1 })
    );
    let dl = std::fs::read_to_string(place.path()).expect("dead letters");
    assert!(dl.contains("\"label\":\"too_large\""), "{dl}");
}

#[tokio::test]
async fn transient_failures_past_max_retry_duration_fail_and_never_dead_letter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = cfg();
    c.max_retry_duration_seconds = 1;
    let place = LocalDeadLetters::new(&dir.path().join("dl.ndjson"));
    // Every document answered 503 on its own (a `_bulk` item): the destination answers, so
    // the breaker stays closed and max_retry_duration bounds the retries.
    let mut transport = Scripted::new(0, Verdict::retry("-"));
    transport.per_doc_retry = true;
    let sink = BatchSink::new("t", &c, transport, raw(), place.clone());
    let control = DeliveryControl::new();
    let run = start(sink, &control, &["a", "b"], Some(Arc::from(vec![1u32])));
    match run.outcome.await {
        Ok(ObjectOutcome::Failed { reasons }) => {
            assert!(reasons[0].contains("transient"), "{reasons:?}");
            assert!(reasons[0].contains("503"), "{reasons:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let report = run.report.await.expect("sink task");
    assert_eq!(report.failed_deliveries, 1);
    assert_eq!(report.dead_lettered, 0);
    assert!(!place.path().exists(), "nothing dead-lettered");
}

#[tokio::test]
async fn a_refused_sink_holds_its_deliveries_behind_the_breaker_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let transport = Scripted::new(0, Verdict::retry("-"));
    transport.refusing.store(true, Ordering::Relaxed);
    let place = LocalDeadLetters::new(&dir.path().join("dl.ndjson"));
    let sink = BatchSink::new("cwl", &cfg(), transport, raw(), place.clone());
    let transport = sink.transport();
    let control = DeliveryControl::new();
    let mut run = start(sink, &control, &["a", "b", "c"], None);
    // The breaker opens; the delivery is held, not failed.
    let mut changes = control.subscribe();
    while control.open_breakers().is_empty() {
        let _ = changes.changed().await;
    }
    let open = control.open_breakers();
    assert_eq!(open[0].sink, "cwl");
    assert_eq!(open[0].class, FailureClass::SinkRefused);
    assert!(open[0].reason.contains("AccessDenied"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(run.outcome.try_recv().is_err(), "still held");
    let probes = transport.calls.load(Ordering::Relaxed);
    assert!(probes >= 2, "probed while open: {probes}");
    // The policy is fixed: the next probe closes the breaker and everything is delivered.
    transport.refusing.store(false, Ordering::Relaxed);
    assert_eq!(
        run.outcome.await.ok(),
        Some(ObjectOutcome::Delivered { dead_lettered: 0 })
    );
    assert!(control.open_breakers().is_empty());
    let report = run.report.await.expect("sink task");
    assert_eq!(report.records, 3);
    assert!(!place.path().exists());
}

#[tokio::test]
async fn behind_an_open_breaker_a_delivery_waits_past_max_retry_duration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let transport = Scripted::new(0, Verdict::retry("-"));
    transport.refusing.store(true, Ordering::Relaxed);
    let mut c = cfg();
    c.max_retry_duration_seconds = 1;
    let place = LocalDeadLetters::new(&dir.path().join("dl.ndjson"));
    let sink = BatchSink::new("cwl", &c, transport, raw(), place.clone());
    let transport = sink.transport();
    let control = DeliveryControl::new();
    control.hold_while_open(true);
    let mut run = start(sink, &control, &["a", "b"], None);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        run.outcome.try_recv().is_err(),
        "held past max_retry_duration"
    );
    assert!(!control.open_breakers().is_empty());
    transport.refusing.store(false, Ordering::Relaxed);
    assert_eq!(
        run.outcome.await.ok(),
        Some(ObjectOutcome::Delivered { dead_lettered: 0 })
    );
    assert!(!place.path().exists());
}

#[tokio::test]
async fn a_source_that_cannot_wait_gets_a_failure_at_max_retry_duration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let transport = Scripted::new(0, Verdict::retry("-"));
    transport.refusing.store(true, Ordering::Relaxed);
    let mut c = cfg();
    c.max_retry_duration_seconds = 1;
    let place = LocalDeadLetters::new(&dir.path().join("dl.ndjson"));
    let sink = BatchSink::new("cwl", &c, transport, raw(), place.clone());
    let run = start(sink, &DeliveryControl::new(), &["a"], None);
    match tokio::time::timeout(Duration::from_secs(10), run.outcome).await {
        Ok(Ok(ObjectOutcome::Failed { reasons })) => {
            assert!(reasons[0].contains("sink_refused"), "{reasons:?}");
            assert!(reasons[0].contains("max_retry_duration"), "{reasons:?}");
            assert!(reasons[0].contains("AccessDenied"), "{reasons:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!place.path().exists());
}

#[tokio::test]
async fn stop_retrying_fails_held_deliveries_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let transport = Scripted::new(0, Verdict::retry("-"));
    transport.refusing.store(true, Ordering::Relaxed);
    let place = LocalDeadLetters::new(&dir.path().join("dl.ndjson"));
    let sink = BatchSink::new("cwl", &cfg(), transport, raw(), place.clone());
    let control = DeliveryControl::new();
    let run = start(sink, &control, &["a"], None);
    let mut changes = control.subscribe();
    while control.open_breakers().is_empty() {
        let _ = changes.changed().await;
    }
    control.stop_retrying();
    match tokio::time::timeout(Duration::from_secs(5), run.outcome).await {
        Ok(Ok(ObjectOutcome::Failed { reasons })) => {
            assert!(reasons[0].contains("sink_refused"), "{reasons:?}");
            assert!(reasons[0].contains("shutting down"), "{reasons:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!place.path().exists());
}

#[test]
fn content_ids_are_stable() {
    assert_eq!(content_id(b"abc"), content_id(b"abc"));
    assert_ne!(content_id(b"abc"), content_id(b"abd"));
    assert!(content_id(b"").starts_with("th-cbf29ce484222325"));
}
