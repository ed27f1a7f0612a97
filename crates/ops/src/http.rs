//! The operations listener: `/metrics` (Prometheus), `/healthz` (alive), `/readyz` (can reach
//! its dependencies and is not shutting down). A minimal HTTP/1.1 server: it answers GETs on
//! three paths and nothing else, so a full HTTP stack is not worth its build time.

use crate::metrics::Registry;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

pub type Check =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Readiness: false while starting and once shutdown begins; dependency checks are run at most
/// every `cache_for` so probes cannot hammer SQS.
pub struct Health {
    started: AtomicBool,
    shutting_down: AtomicBool,
    checks: Mutex<Vec<(String, Check)>>,
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    cache_for: Duration,
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health {
            started: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            checks: Mutex::new(Vec::new()),
            last: tokio::sync::Mutex::new(None),
            cache_for: Duration::from_secs(5),
        })
    }

    pub fn add_check(&self, name: &str, check: Check) {
        let mut g = match self.checks.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.push((name.to_string(), check));
    }

    pub fn set_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub async fn ready(&self) -> Result<(), String> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err("shutting down".into());
        }
        if !self.started.load(Ordering::SeqCst) {
            return Err("starting".into());
        }
        let mut last = self.last.lock().await;
        if let Some((at, r)) = last.as_ref() {
            if at.elapsed() < self.cache_for {
                return r.clone();
            }
        }
        let checks: Vec<(String, Check)> = match self.checks.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let mut result = Ok(());
        for (name, check) in checks {
            if let Err(e) = check().await {
                result = Err(format!("{name}: {e}"));
                break;
            }
        }
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

/// Binds the listener and serves until the task is dropped. Returns the bound address.
pub async fn serve(
    addr: &str,
    registry: Arc<Registry>,
    health: Arc<Health>,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let registry = registry.clone();
            let health = health.clone();
            tokio::spawn(async move {
                let _ = answer(sock, registry, health).await;
            });
        }
    });
    Ok(local)
}

async fn answer(
    sock: tokio::net::TcpStream,
    registry: Arc<Registry>,
    health: Arc<Health>,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let mut request_line = String::new();
    tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut request_line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request line"))??;
    loop {
        let mut h = String::new();
        let n = tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut h))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "headers"))??;
        if n == 0 || h.trim().is_empty() {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let (status, ctype, body) = match path {
        "/metrics" => (200, "text/plain; version=0.0.4", registry.render()),
        "/healthz" => (200, "text/plain", "ok\n".to_string()),
        "/readyz" => match health.ready().await {
            Ok(()) => (200, "text/plain", "ready\n".to_string()),
            Err(e) => (503, "text/plain", format!("not ready: {e}\n")),
        },
        _ => (404, "text/plain", "not found\n".to_string()),
    };
    let reason = match status {
        200 => "OK",
        503 => "Service Unavailable",
        _ => "Not Found",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    w.write_all(head.as_bytes()).await?;
    w.write_all(body.as_bytes()).await?;
    w.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.expect("read");
        let status = resp
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let reg = Registry::new();
        reg.counter("trailhose_records", "records", vec![]).add(7);
        let health = Health::new();
        let fail = Arc::new(AtomicBool::new(false));
        let f = fail.clone();
        health.add_check(
            "sqs",
            Arc::new(move || {
                let f = f.clone();
                Box::pin(async move {
                    if f.load(Ordering::SeqCst) {
                        Err("unreachable".into())
                    } else {
                        Ok(())
                    }
                })
            }),
        );
        let addr = serve("127.0.0.1:0", reg, health.clone())
            .await
            .expect("bind");
        assert_eq!(get(addr, "/healthz").await.0, 200);
        assert_eq!(get(addr, "/readyz").await.0, 503, "not ready before start");
        health.set_started();
        assert_eq!(get(addr, "/readyz").await.0, 200);
        let (s, body) = get(addr, "/metrics").await;
        assert_eq!(s, 200);
        assert!(body.contains("trailhose_records_total 7"), "{body}");
        health.set_shutting_down();
        let (s, body) = get(addr, "/readyz").await;
        assert_eq!(s, 503);
        assert!(body.contains("shutting down"));
        assert_eq!(get(addr, "/nope").await.0, 404);
    }
}
