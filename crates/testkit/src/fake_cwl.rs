//! A small local CloudWatch Logs endpoint (AWS JSON 1.1 over HTTP/1.1) that enforces the real
//! PutLogEvents limits — which moto does not — and injects throttling and 5xx answers. The SDK
//! talks to it through an endpoint override, exactly as it talks to AWS.
//!
//! Enforced per PutLogEvents call: group and stream exist; 1..=10,000 events;
//! Σ(UTF-8 bytes + 26) ≤ 1,048,576; chronological order; span ≤ 24 h; each message ≤ the
//! per-event limit. Violations answer `InvalidParameterException` and are counted as rejected
//! batches. Events older than 14 days or more than 2 h ahead are reported in
//! `rejectedLogEventsInfo`, as the service does.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Fraction of PutLogEvents calls answered with ThrottlingException.
    pub throttle_ratio: f64,
    /// Fraction answered with a 500 ServiceUnavailableException.
    pub error_ratio: f64,
    pub max_event_bytes: usize,
    /// Keep every stored message (small tests); otherwise only counts and checksums.
    pub keep_messages: bool,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            throttle_ratio: 0.0,
            error_ratio: 0.0,
            max_event_bytes: 1_048_576 - 26,
            keep_messages: false,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct StreamData {
    pub events: u64,
    pub bytes: u64,
    /// Order-independent checksum of the stored messages.
    pub checksum: u64,
    pub messages: Vec<(i64, String)>,
}

#[derive(Default)]
pub struct FakeState {
    pub groups: HashSet<String>,
    pub streams: HashMap<(String, String), StreamData>,
    pub retention: HashMap<String, i64>,
    /// (time, events, bytes) of every accepted PutLogEvents call.
    pub accepted_calls: Vec<(Instant, usize, usize)>,
    pub rejected_batches: Vec<String>,
    pub rejected_events: u64,
}

pub struct FakeCwl {
    pub endpoint: String,
    pub state: Arc<Mutex<FakeState>>,
    pub put_calls: Arc<AtomicU64>,
    pub throttled: Arc<AtomicU64>,
    pub errors: Arc<AtomicU64>,
}

/// FNV-1a; order-independent sums of these compare sets of messages.
pub fn message_hash(m: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in m {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn error(kind: &str, msg: &str) -> (u16, String) {
    (
        400,
        serde_json::json!({"__type": kind, "message": msg}).to_string(),
    )
}

impl FakeCwl {
    pub async fn start(opts: FakeOptions) -> std::io::Result<FakeCwl> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(FakeState::default()));
        let put_calls = Arc::new(AtomicU64::new(0));
        let throttled = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let shared = (
            state.clone(),
            put_calls.clone(),
            throttled.clone(),
            errors.clone(),
        );
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (st, calls, thr, errs) = shared.clone();
                let opts = opts.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, opts, st, calls, thr, errs).await;
                });
            }
        });
        Ok(FakeCwl {
            endpoint,
            state,
            put_calls,
            throttled,
            errors,
        })
    }

    pub fn snapshot<T>(&self, f: impl FnOnce(&FakeState) -> T) -> T {
        let g = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&g)
    }
}

async fn serve(
    sock: tokio::net::TcpStream,
    opts: FakeOptions,
    state: Arc<Mutex<FakeState>>,
    calls: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut target = String::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "x-amz-target" => target = v.trim().to_string(),
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        let op = target.rsplit('.').next().unwrap_or("").to_string();
        let (status, resp) = if op == "PutLogEvents" {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            // Deterministic spread of injected faults over the call sequence.
            let x = (message_hash(&n.to_le_bytes()) % 10_000) as f64 / 10_000.0;
            if x < opts.throttle_ratio {
                throttled.fetch_add(1, Ordering::Relaxed);
                error("ThrottlingException", "Rate exceeded")
            } else if x < opts.throttle_ratio + opts.error_ratio {
                errors.fetch_add(1, Ordering::Relaxed);
                (
                    500,
                    serde_json::json!({"__type": "ServiceUnavailableException", "message": "injected"})
                        .to_string(),
                )
            } else {
                handle(&op, &body, &opts, &state)
            }
        } else {
            handle(&op, &body, &opts, &state)
        };
        let head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nx-amzn-requestid: fake\r\n\r\n",
            if status == 200 { "OK" } else { "ERR" },
            resp.len()
        );
        w.write_all(head.as_bytes()).await?;
        w.write_all(resp.as_bytes()).await?;
        w.flush().await?;
    }
}

fn handle(op: &str, body: &[u8], opts: &FakeOptions, state: &Mutex<FakeState>) -> (u16, String) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return error("SerializationException", "body is not JSON");
    };
    let group = v["logGroupName"].as_str().unwrap_or("").to_string();
    let stream = v["logStreamName"].as_str().unwrap_or("").to_string();
    let mut st = match state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    match op {
        "CreateLogGroup" => {
            if group.is_empty() || group.len() > 512 || group.starts_with("aws/") {
                return error("InvalidParameterException", "bad log group name");
            }
            if !st.groups.insert(group) {
                return error(
                    "ResourceAlreadyExistsException",
                    "The specified log group already exists",
                );
            }
            (200, "{}".into())
        }
        "PutRetentionPolicy" => {
            st.retention
                .insert(group, v["retentionInDays"].as_i64().unwrap_or(0));
            (200, "{}".into())
        }
        "CreateLogStream" => {
            if !st.groups.contains(&group) {
                return error(
                    "ResourceNotFoundException",
                    "The specified log group does not exist.",
                );
            }
            if stream.is_empty() || stream.contains([':', '*']) {
                return error("InvalidParameterException", "bad log stream name");
            }
            if st.streams.contains_key(&(group.clone(), stream.clone())) {
                return error(
                    "ResourceAlreadyExistsException",
                    "The specified log stream already exists",
                );
            }
            st.streams.insert((group, stream), StreamData::default());
            (200, "{}".into())
        }
        "PutLogEvents" => put(&mut st, group, stream, &v, opts),
        _ => error("UnknownOperationException", op),
    }
}

fn put(
    st: &mut FakeState,
    group: String,
    stream: String,
    v: &serde_json::Value,
    opts: &FakeOptions,
) -> (u16, String) {
    let events = v["logEvents"].as_array().cloned().unwrap_or_default();
    let reject = |st: &mut FakeState, why: String| {
        st.rejected_batches.push(why.clone());
        error("InvalidParameterException", &why)
    };
    if !st.streams.contains_key(&(group.clone(), stream.clone())) {
        return error(
            "ResourceNotFoundException",
            "The specified log stream does not exist.",
        );
    }
    if events.is_empty() || events.len() > 10_000 {
        return reject(st, format!("{} events", events.len()));
    }
    let mut total = 0usize;
    let mut parsed = Vec::with_capacity(events.len());
    for e in &events {
        let ts = e["timestamp"].as_i64().unwrap_or(-1);
        let m = e["message"].as_str().unwrap_or("");
        if m.is_empty() || ts < 0 {
            return reject(st, "empty message or bad timestamp".into());
        }
        if m.len() > opts.max_event_bytes {
            return reject(st, format!("event of {} bytes", m.len()));
        }
        total += m.len() + 26;
        parsed.push((ts, m));
    }
    if total > 1_048_576 {
        return reject(st, format!("batch of {total} bytes"));
    }
    if parsed.windows(2).any(|w| w[0].0 > w[1].0) {
        return reject(
            st,
            "Log events in a single PutLogEvents request must be in chronological order.".into(),
        );
    }
    if let (Some(first), Some(last)) = (parsed.first(), parsed.last()) {
        if last.0 - first.0 > 24 * 3600 * 1000 {
            return reject(st, "batch spans more than 24 hours".into());
        }
    }
    let now = now_ms();
    let too_old_end = parsed
        .iter()
        .take_while(|(t, _)| *t < now - 14 * 86_400_000)
        .count();
    let too_new_start = parsed
        .iter()
        .position(|(t, _)| *t > now + 2 * 3_600_000)
        .unwrap_or(parsed.len());
    let data = st.streams.entry((group, stream)).or_default();
    let mut stored = 0;
    for (i, (ts, m)) in parsed.iter().enumerate() {
        if i < too_old_end || i >= too_new_start {
            continue;
        }
        stored += 1;
        data.events += 1;
        data.bytes += m.len() as u64;
        data.checksum = data.checksum.wrapping_add(message_hash(m.as_bytes()));
        if opts.keep_messages {
            data.messages.push((*ts, (*m).to_string()));
        }
    }
    st.rejected_events += (parsed.len() - stored) as u64;
    st.accepted_calls
        .push((Instant::now(), parsed.len(), total));
    let mut info = serde_json::Map::new();
    if too_old_end > 0 {
        info.insert("tooOldLogEventEndIndex".into(), too_old_end.into());
    }
    if too_new_start < parsed.len() {
        info.insert("tooNewLogEventStartIndex".into(), too_new_start.into());
    }
    let mut resp = serde_json::json!({"nextSequenceToken": "0"});
    if !info.is_empty() {
        resp["rejectedLogEventsInfo"] = serde_json::Value::Object(info);
    }
    (200, resp.to_string())
}
