//! A fault-injecting HTTP/1.1 proxy for tests: the SDK's endpoint override points at it, it
//! forwards to an upstream (moto's server), and the test switches what it does at run time:
//!
//! - [`Mode::Pass`]: forward every request;
//! - [`Mode::Refuse`]: answer requests whose `X-Amz-Target` starts with a prefix the way AWS
//!   refuses them (AWS JSON 1.1: status, `x-amzn-errortype` header and a
//!   `{"__type","message"}` body, so the SDK's `code()` is the given code), forward the rest;
//! - [`Mode::Down`]: unreachable: the listener is closed (connections are refused) and open
//!   connections are reset; any other mode binds the same port again;
//! - [`Mode::Throttle`]: answer a fraction of the matching requests with `ThrottlingException`;
//! - [`Mode::Upstream`]: forward everything to another upstream (a second moto) from now on.
//!
//! Every request is counted by what happened to it and its target ([`Counts`]).
//!
//! Requests are forwarded one per upstream connection (`Connection: close`); the client side
//! keeps its connections alive as the SDK expects. Bodies are read by `Content-Length` or
//! relayed chunk by chunk (`Transfer-Encoding: chunked`); `Expect: 100-continue` is answered by
//! the proxy itself.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// Every CloudWatch Logs operation's `X-Amz-Target` starts with this.
pub const CWL_TARGET: &str = "Logs_20140328.";
/// PutLogEvents' `X-Amz-Target`.
pub const PUT_LOG_EVENTS: &str = "Logs_20140328.PutLogEvents";

/// What the proxy does with the requests it receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Pass,
    /// Requests whose `X-Amz-Target` starts with `target_prefix` get `status` with the error
    /// `code` and `message` (`{operation}` in it becomes the request's operation name, e.g.
    /// `PutLogEvents`); the others are forwarded.
    Refuse {
        target_prefix: String,
        status: u16,
        code: String,
        message: String,
    },
    /// Nothing listens; open connections are reset.
    Down,
    /// About `ratio` (0..=1) of the requests whose `X-Amz-Target` starts with `target_prefix`
    /// are answered 400 `ThrottlingException` (spread by a hash of the request's sequence
    /// number, so the fraction holds over any long run); the rest are forwarded.
    Throttle {
        target_prefix: String,
        ratio: f64,
    },
    /// Forward everything to this upstream (`http://host:port`) from now on; afterwards the
    /// mode reads as [`Mode::Pass`] and [`FaultProxy::upstream`] names the new upstream.
    Upstream(String),
}

impl Mode {
    /// AccessDeniedException (HTTP 400) for every request under `target_prefix`, worded as IAM
    /// words it for an assumed role.
    pub fn access_denied(target_prefix: &str) -> Mode {
        Mode::Refuse {
            target_prefix: target_prefix.to_string(),
            status: 400,
            code: "AccessDeniedException".into(),
            message: "User: arn:aws:sts::123456789012:assumed-role/x is not authorized to \
                      perform: logs:{operation}"
                .into(),
        }
    }

    pub fn throttle(target_prefix: &str, ratio: f64) -> Mode {
        Mode::Throttle {
            target_prefix: target_prefix.to_string(),
            ratio,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Mode::Pass | Mode::Upstream(_) => "pass",
            Mode::Refuse { .. } => "refuse",
            Mode::Down => "down",
            Mode::Throttle { .. } => "throttle",
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Forwarded and the upstream's answer relayed (whatever its status).
    Forwarded,
    /// Answered with the [`Mode::Refuse`] error.
    Refused,
    /// Answered with `ThrottlingException`.
    Throttled,
    /// The connection was reset because the proxy went [`Mode::Down`] (target empty when no
    /// request was in progress on it).
    Reset,
    /// The upstream could not be reached or answered garbage; the client's connection was
    /// reset.
    UpstreamFailed,
}

/// One counter's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hit {
    pub outcome: Outcome,
    /// The mode the request met: `pass`, `refuse`, `throttle`, `down`.
    pub mode: &'static str,
    /// `X-Amz-Target`, or `METHOD /path` for requests without one (S3).
    pub target: String,
    /// Where a forwarded request went; empty otherwise.
    pub upstream: String,
}

/// Requests seen, by what happened to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub hits: BTreeMap<Hit, u64>,
}

impl Counts {
    /// Requests with this outcome whose target starts with `target_prefix` (`""`: all).
    pub fn get(&self, outcome: Outcome, target_prefix: &str) -> u64 {
        self.hits
            .iter()
            .filter(|(h, _)| h.outcome == outcome && h.target.starts_with(target_prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests under `target_prefix` forwarded to `upstream`.
    pub fn forwarded_to(&self, upstream: &str, target_prefix: &str) -> u64 {
        self.hits
            .iter()
            .filter(|(h, _)| {
                h.outcome == Outcome::Forwarded
                    && h.upstream == upstream
                    && h.target.starts_with(target_prefix)
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Every request under `target_prefix` whatever happened to it.
    pub fn total(&self, target_prefix: &str) -> u64 {
        self.hits
            .iter()
            .filter(|(h, _)| h.target.starts_with(target_prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

struct State {
    mode: Mode,
    upstream: String,
}

struct Inner {
    state: Mutex<State>,
    counts: Mutex<Counts>,
    /// Bumped when the proxy goes down: every open connection is reset.
    kill: watch::Sender<u64>,
    throttle_seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Inner {
    fn count(&self, outcome: Outcome, mode: &'static str, target: &str, upstream: &str) {
        let hit = Hit {
            outcome,
            mode,
            target: target.to_string(),
            upstream: upstream.to_string(),
        };
        *lock(&self.counts).hits.entry(hit).or_insert(0) += 1;
    }
}

/// Listener commands: `true` = listen (bind again if closed), `false` = stop listening.
type Command = (bool, oneshot::Sender<io::Result<()>>);

/// A running proxy. Dropping it closes the listener and resets its connections.
pub struct FaultProxy {
    inner: Arc<Inner>,
    addr: SocketAddr,
    ctl: mpsc::UnboundedSender<Command>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.inner.kill.send_modify(|g| *g = g.wrapping_add(1));
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> io::Result<FaultProxy> {
        parse_upstream(upstream)?;
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                mode: Mode::Pass,
                upstream: upstream.to_string(),
            }),
            counts: Mutex::new(Counts::default()),
            kill: watch::channel(0).0,
            throttle_seq: AtomicU64::new(0),
        });
        let (ctl, rx) = mpsc::unbounded_channel();
        tokio::spawn(acceptor(inner.clone(), addr, Some(listener), rx));
        Ok(FaultProxy { inner, addr, ctl })
    }

    /// `http://127.0.0.1:PORT`: the endpoint override for the SDK. It stays the same across
    /// [`Mode::Down`].
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the mode; returns once it is in force (the listener closed for
    /// [`Mode::Down`], bound again when leaving it). Panics when the port cannot be bound
    /// again within 10 s.
    pub async fn set_mode(&self, mode: Mode) {
        let listen = mode != Mode::Down;
        {
            let mut s = lock(&self.inner.state);
            match mode {
                Mode::Upstream(url) => {
                    if let Err(e) = parse_upstream(&url) {
                        panic!("fault proxy: bad upstream {url}: {e}");
                    }
                    s.upstream = url;
                    s.mode = Mode::Pass;
                }
                m => s.mode = m,
            }
        }
        let (tx, rx) = oneshot::channel();
        if self.ctl.send((listen, tx)).is_err() {
            panic!("fault proxy: the listener task is gone");
        }
        match rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("fault proxy: cannot listen on {} again: {e}", self.addr),
            Err(_) => panic!("fault proxy: the listener task is gone"),
        }
    }

    pub fn mode(&self) -> Mode {
        lock(&self.inner.state).mode.clone()
    }

    pub fn upstream(&self) -> String {
        lock(&self.inner.state).upstream.clone()
    }

    pub fn counts(&self) -> Counts {
        lock(&self.inner.counts).clone()
    }

    /// An SDK config whose endpoint is this proxy (static test credentials).
    pub async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        crate::sdk_config_at(&self.endpoint(), region).await
    }
}

async fn accept_on(l: &Option<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn acceptor(
    inner: Arc<Inner>,
    addr: SocketAddr,
    mut listener: Option<TcpListener>,
    mut ctl: mpsc::UnboundedReceiver<Command>,
) {
    loop {
        tokio::select! {
            cmd = ctl.recv() => {
                let Some((listen, ack)) = cmd else { return };
                let result = if listen {
                    if listener.is_none() {
                        match rebind(addr).await {
                            Ok(l) => {
                                listener = Some(l);
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    } else {
                        Ok(())
                    }
                } else {
                    listener = None;
                    inner.kill.send_modify(|g| *g = g.wrapping_add(1));
                    Ok(())
                };
                let _ = ack.send(result);
            }
            conn = accept_on(&listener) => match conn {
                Ok((sock, _)) => {
                    let _ = sock.set_nodelay(true);
                    let inner = inner.clone();
                    tokio::spawn(async move { connection(inner, sock).await });
                }
                // EMFILE and the like: the client sees a refused connection; try again.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// Binds the proxy's port again (another socket may hold it for a moment).
async fn rebind(addr: SocketAddr) -> io::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Serves one client connection until it closes, the proxy goes down, or a fault resets it.
async fn connection(inner: Arc<Inner>, sock: TcpStream) {
    let mut kill = inner.kill.subscribe();
    // The request in progress, for counting a reset.
    let current = Arc::new(Mutex::new(String::new()));
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let reset = tokio::select! {
        reset = serve(&inner, &mut r, &mut w, &current) => reset,
        _ = kill.changed() => {
            let target = lock(&current).clone();
            inner.count(Outcome::Reset, "down", &target, "");
            true
        }
    };
    if reset {
        if let Ok(sock) = r.into_inner().reunite(w) {
            // RST instead of FIN: the client sees "connection reset", as from a dead peer.
            let _ = sock.set_zero_linger();
            drop(sock);
        }
    }
}

type ClientRead = BufReader<tokio::net::tcp::OwnedReadHalf>;
type ClientWrite = tokio::net::tcp::OwnedWriteHalf;

/// Answers requests on one connection; true when the connection is to be reset.
async fn serve(
    inner: &Inner,
    r: &mut ClientRead,
    w: &mut ClientWrite,
    current: &Mutex<String>,
) -> bool {
    loop {
        let head = match read_head(r).await {
            Ok(Some(h)) => h,
            // Closed between requests, or garbage: just close.
            Ok(None) | Err(_) => return false,
        };
        let Some(req) = Request::parse(&head) else {
            return false;
        };
        let target = req
            .header("x-amz-target")
            .map(str::to_string)
            .unwrap_or_else(|| format!("{} {}", req.method, req.path));
        *lock(current) = target.clone();
        if req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            && w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
        {
            return false;
        }
        let body = match read_body(r, &req.headers, false).await {
            Ok(b) => b,
            Err(_) => return false,
        };
        let (mode, upstream) = {
            let s = lock(&inner.state);
            (s.mode.clone(), s.upstream.clone())
        };
        let label = mode.label();
        let keep_alive = !req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let answer = match &mode {
            Mode::Down => {
                inner.count(Outcome::Reset, label, &target, "");
                return true;
            }
            Mode::Refuse {
                target_prefix,
                status,
                code,
                message,
            } if target.starts_with(target_prefix.as_str()) => {
                inner.count(Outcome::Refused, label, &target, "");
                let op = target.rsplit('.').next().unwrap_or("");
                error_response(*status, code, &message.replace("{operation}", op))
            }
            Mode::Throttle {
                target_prefix,
                ratio,
            } if target.starts_with(target_prefix.as_str())
                && throttle_this(&inner.throttle_seq, *ratio) =>
            {
                inner.count(Outcome::Throttled, label, &target, "");
                error_response(400, "ThrottlingException", "Rate exceeded")
            }
            _ => match forward(&upstream, &req, &head, &body).await {
                Ok(resp) => {
                    inner.count(Outcome::Forwarded, label, &target, &upstream);
                    resp
                }
                Err(_) => {
                    inner.count(Outcome::UpstreamFailed, label, &target, &upstream);
                    return true;
                }
            },
        };
        if w.write_all(&answer).await.is_err() || w.flush().await.is_err() {
            return false;
        }
        lock(current).clear();
        if !keep_alive {
            return false;
        }
    }
}

fn throttle_this(seq: &AtomicU64, ratio: f64) -> bool {
    let n = seq.fetch_add(1, Ordering::Relaxed);
    let x = (crate::fake_cwl::message_hash(&n.to_le_bytes()) % 10_000) as f64 / 10_000.0;
    x < ratio
}

/// An AWS JSON 1.1 error: the SDK reads the code from `x-amzn-errortype` (and `__type`).
fn error_response(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({"__type": code, "message": message}).to_string();
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/x-amz-json-1.1\r\n\
         x-amzn-errortype: {code}:http://internal.amazon.com/coral/com.amazon.coral.service/\r\n\
         x-amzn-requestid: fault-proxy-{status}\r\ncontent-length: {}\r\n\r\n",
        reason_phrase(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The longest request or response head accepted.
const MAX_HEAD: usize = 64 << 10;

/// Reads up to and including the blank line after the headers; `None` at a clean EOF before
/// any byte.
async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = r.read_until(b'\n', &mut head).await?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                // A stray blank line before a request: ignore it.
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl Request {
    fn parse(head: &[u8]) -> Option<Request> {
        let text = std::str::from_utf8(head).ok()?;
        let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
        let first = lines.next()?;
        let mut parts = first.split(' ');
        let method = parts.next()?.to_string();
        let path = parts.next()?.to_string();
        Some(Request {
            method,
            path,
            headers: parse_headers(lines.take_while(|l| !l.is_empty())),
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Reads a message body as framed by `headers`: chunked bodies are returned as their chunked
/// bytes (relayed verbatim) unless `decode`; `until_eof` bodies only for responses.
async fn read_body<R: AsyncBufRead + Unpin>(
    r: &mut R,
    headers: &[(String, String)],
    decode: bool,
) -> io::Result<Vec<u8>> {
    let chunked = header(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut raw = Vec::new();
        let mut decoded = Vec::new();
        loop {
            let start = raw.len();
            if r.read_until(b'\n', &mut raw).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let line = String::from_utf8_lossy(&raw[start..]).to_string();
            let size_text = line.trim().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers up to the blank line.
                loop {
                    let t = raw.len();
                    if r.read_until(b'\n', &mut raw).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    let l = &raw[t..];
                    if l == b"\r\n" || l == b"\n" {
                        break;
                    }
                }
                return Ok(if decode { decoded } else { raw });
            }
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk).await?;
            decoded.extend_from_slice(&chunk[..size]);
            raw.extend_from_slice(&chunk);
        }
    }
    let len: usize = match header(headers, "content-length") {
        Some(v) => v
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?,
        None => 0,
    };
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(body)
}

fn parse_upstream(url: &str) -> io::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "only http:// upstreams"))?;
    let hostport = rest.split('/').next().unwrap_or("");
    if hostport.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no host"));
    }
    Ok(if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    })
}

/// Headers that belong to one hop and are not forwarded.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "proxy-connection" | "expect" | "upgrade" | "te"
    )
}

/// Sends one request upstream on a fresh connection and returns the response to relay
/// (re-framed by `Content-Length` for the client's kept-alive connection).
async fn forward(upstream: &str, req: &Request, head: &[u8], body: &[u8]) -> io::Result<Vec<u8>> {
    let hostport = parse_upstream(upstream)?;
    let mut up = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&hostport))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect to upstream"))??;
    let _ = up.set_nodelay(true);
    let text = String::from_utf8_lossy(head);
    let mut out = Vec::with_capacity(head.len() + body.len() + 32);
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        if i > 0 {
            let name = line
                .split_once(':')
                .map(|(k, _)| k.trim().to_ascii_lowercase())
                .unwrap_or_default();
            if hop_by_hop(&name) {
                continue;
            }
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(body);
    up.write_all(&out).await?;
    up.flush().await?;
    let mut r = BufReader::new(up);
    // Skip interim answers (100 Continue).
    let (status_line, headers) = loop {
        let head = read_head(&mut r)
            .await?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let text = String::from_utf8_lossy(&head).to_string();
        let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
        let status_line = lines.next().unwrap_or("").to_string();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
        if (100..200).contains(&status) {
            continue;
        }
        let headers = parse_headers(lines.take_while(|l| !l.is_empty()));
        break ((status_line, status), headers);
    };
    let (status_line, status) = status_line;
    let no_body = req.method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304;
    let mut resp = Vec::new();
    resp.extend_from_slice(status_line.as_bytes());
    resp.extend_from_slice(b"\r\n");
    for (k, v) in &headers {
        let framing = k == "transfer-encoding" || k == "content-length";
        if hop_by_hop(k) || (framing && !no_body) {
            continue;
        }
        resp.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if no_body {
        resp.extend_from_slice(b"\r\n");
        return Ok(resp);
    }
    let framed = header(&headers, "transfer-encoding").is_some()
        || header(&headers, "content-length").is_some();
    let body = if framed {
        read_body(&mut r, &headers, true).await?
    } else {
        let mut all = Vec::new();
        r.read_to_end(&mut all).await?;
        all
    };
    resp.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    resp.extend_from_slice(&body);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse_to_host_and_port() {
        assert_eq!(
            parse_upstream("http://127.0.0.1:5000").expect("ok"),
            "127.0.0.1:5000"
        );
        assert_eq!(
            parse_upstream("http://localhost/x").expect("ok"),
            "localhost:80"
        );
        assert!(parse_upstream("https://x:1").is_err());
    }

    #[test]
    fn the_throttled_fraction_is_near_the_ratio() {
        let seq = AtomicU64::new(0);
        let n = (0..10_000).filter(|_| throttle_this(&seq, 0.3)).count();
        assert!((2_700..=3_300).contains(&n), "{n}");
        let none = AtomicU64::new(0);
        assert_eq!((0..1000).filter(|_| throttle_this(&none, 0.0)).count(), 0);
    }

    #[tokio::test]
    async fn chunked_bodies_are_relayed_verbatim_or_decoded() {
        let raw = b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\nT: v\r\n\r\nNEXT";
        let headers = vec![("transfer-encoding".to_string(), "chunked".to_string())];
        let mut r = BufReader::new(&raw[..]);
        let body = read_body(&mut r, &headers, false).await.expect("chunked");
        assert_eq!(body, &raw[..raw.len() - 4]);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.expect("rest");
        assert_eq!(rest, b"NEXT", "stops at the end of the body");
        let mut r = BufReader::new(&raw[..]);
        let decoded = read_body(&mut r, &headers, true).await.expect("decoded");
        assert_eq!(decoded, b"Wikipedia");
    }

    #[test]
    fn errors_carry_the_code_in_header_and_body() {
        let e = error_response(400, "AccessDeniedException", "no");
        let text = String::from_utf8(e).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("x-amzn-errortype: AccessDeniedException:"));
        let body = text.split("\r\n\r\n").nth(1).expect("body");
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["__type"], "AccessDeniedException");
        assert_eq!(v["message"], "no");
    }
}
