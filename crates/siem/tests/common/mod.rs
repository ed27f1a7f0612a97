//! Shared by the sink tests: a generated corpus, the pipeline run, and a minimal HTTP/1.1
//! server (keep-alive, Content-Length or chunked bodies, gzip) whose handler sees every request
//! and decides the answer.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use trailhose_pipeline::deadletter::DeadLetterFile;
use trailhose_pipeline::dir_source::{run_dir_source, DirSource, Layout, SourceReport};
use trailhose_pipeline::{Pipeline, Sink, SinkReport, SinkSpec};

/// Generates `events` records under `dir`; returns eventID → original record bytes.
pub fn corpus(dir: &Path, events: u64, seed: u64) -> HashMap<String, Vec<u8>> {
    let opts = trailhose_gen::GenOptions {
        events,
        seed,
        gzip_level: 1,
        accounts: 2,
        regions: 2,
        ..Default::default()
    };
    trailhose_gen::generate(dir, &opts).expect("generate");
    let mut out = HashMap::new();
    for f in trailhose_pipeline::dir_source::list_files(dir).expect("list") {
        let file = std::fs::File::open(&f).expect("open");
        let (_, r) = trailhose_core::read_records(
            file,
            &trailhose_core::Limits::default(),
            trailhose_core::FieldMode::Extract,
            |rec| {
                let id = rec
                    .fields
                    .as_ref()
                    .and_then(|f| f.event_id())
                    .expect("generated records have an eventID")
                    .to_string();
                let prev = out.insert(id, rec.raw.bytes.to_vec());
                assert!(prev.is_none(), "eventIDs are unique in the corpus");
            },
        );
        r.expect("generated files are valid");
    }
    assert_eq!(out.len() as u64, events);
    out
}

/// Runs the directory source through a pipeline with one sink; every object must be answered.
pub async fn ship(dir: &Path, sink: Box<dyn Sink>) -> (SinkReport, SourceReport) {
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink,
            filter: Default::default(),
        }],
        8,
    );
    let dlq = Arc::new(DeadLetterFile::new(&dir.join("../source-dlq.ndjson")));
    let src = DirSource {
        path: dir.to_path_buf(),
        layout: Layout::S3,
        parse_workers: 2,
        limits: Default::default(),
        chunking: Default::default(),
    };
    let report = run_dir_source(src, pipeline.input(), dlq)
        .await
        .expect("source runs");
    assert_eq!(report.files_failed, 0);
    let mut sinks = pipeline.shutdown().await;
    (sinks.remove(0), report)
}

#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: HashMap<String, String>,
    /// Decompressed when the request says `Content-Encoding: gzip`.
    pub body: Vec<u8>,
    /// The body as sent.
    pub raw_len: usize,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
    /// Extra header lines, e.g. `Retry-After: 1`.
    pub headers: Vec<String>,
}

impl Resp {
    pub fn json(status: u16, v: serde_json::Value) -> Resp {
        Resp {
            status,
            body: v.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, line: &str) -> Resp {
        self.headers.push(line.to_owned());
        self
    }
}

pub type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

pub struct Server {
    pub url: String,
    /// Every request received, in order.
    pub requests: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(handler: Handler) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let handler = handler.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                while let Some(req) = read_request(&mut r).await {
                    log.lock().expect("log").push(req.clone());
                    let resp = handler(&req);
                    let extra: String = resp.headers.iter().map(|h| format!("{h}\r\n")).collect();
                    let head = format!(
                        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n",
                        resp.status,
                        resp.body.len()
                    );
                    if w.write_all(head.as_bytes()).await.is_err()
                        || w.write_all(&resp.body).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Server {
        url: format!("http://{addr}"),
        requests,
        task,
    }
}

async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<Req> {
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    assert_eq!(parts.next(), Some("HTTP/1.1"), "request line {line:?}");
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).await.ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let mut body = Vec::new();
    if let Some(n) = headers.get("content-length") {
        let n: usize = n.parse().ok()?;
        body.resize(n, 0);
        r.read_exact(&mut body).await.ok()?;
    } else if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await.ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let raw_len = body.len();
    if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .expect("gzip body");
        body = out;
    }
    Some(Req {
        method,
        path,
        headers,
        body,
        raw_len,
    })
}

/// Lines of a dead-letter file: (reason, record as JSON).
pub fn dead_letters(path: &Path) -> Vec<(String, serde_json::Value)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("dead-letter line is JSON");
            (
                v["dead_letter"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                v["record"].clone(),
            )
        })
        .collect()
}

/// The local dead-letter place a sink config names.
pub fn local_dead_letters(path: &str) -> Arc<dyn trailhose_pipeline::delivery::DeadLetterPlace> {
    trailhose_pipeline::delivery::LocalDeadLetters::new(Path::new(path))
}
