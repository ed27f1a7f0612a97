//! OTLP/HTTP export reaches a collector: a local HTTP endpoint receives protobuf metric and
//! trace posts carrying our instrument names and values.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tracing_subscriber::layer::SubscriberExt;

type Posts = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

async fn collector() -> (String, Posts) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let got: Posts = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let g = g.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (mut len, mut ctype) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end().to_string();
                        if h.is_empty() {
                            break;
                        }
                        let lower = h.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if let Some(v) = lower.strip_prefix("content-type:") {
                            ctype = v.trim().to_string();
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    g.lock().expect("lock").push((path, ctype, body));
                    let _ = w
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    (format!("http://{addr}"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_spans_reach_the_collector() {
    let (endpoint, got) = collector().await;
    let reg = trailhose_ops::Registry::new();
    reg.counter("trailhose_records", "records", vec![("sink", "cwl".into())])
        .add(42);
    let (guard, tracer) = trailhose_ops::otel::init(
        &endpoint,
        "trailhose-test",
        reg.clone(),
        Duration::from_millis(200),
    )
    .expect("init");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("object", bucket = "b", key = "k");
        let _e = span.enter();
        tracing::info!("delivered");
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    drop(guard);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = got.lock().expect("lock").clone();
    let metrics: Vec<_> = got.iter().filter(|(p, _, _)| p == "/v1/metrics").collect();
    let traces: Vec<_> = got.iter().filter(|(p, _, _)| p == "/v1/traces").collect();
    assert!(
        !metrics.is_empty(),
        "no metrics posted: {:?}",
        got.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    assert!(metrics.iter().all(|(_, c, _)| c.contains("protobuf")));
    let body = &metrics[0].2;
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"trailhose.records") && has(b"trailhose-test") && has(b"cwl"));
    assert!(!traces.is_empty(), "no spans posted");
    assert!(traces[0].2.windows(6).any(|w| w == b"object"));
}
