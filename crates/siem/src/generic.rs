//! Generic HTTP: a batch of documents as one NDJSON or JSON-array body, optionally gzipped,
//! with configured headers (secret ones from the environment). Any 2xx accepts the batch;
//! 429/503 slow down and retry; 5xx/408 retry; 413 and other 4xx split the batch down to the
//! document the endpoint refuses, which is dead-lettered; 401/403/404/405 fail the deliveries.

use crate::engine::{batch_sink, BatchSink, Doc, SendFuture, Transport, Verdict};
use crate::http::{gzip, HttpClient};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use http::{Method, Request};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;
use trailhose_config::siem::{HttpBody, HttpSinkConfig};
use trailhose_pipeline::delivery::DeadLetterPlace;

pub struct HttpTransport {
    http: HttpClient,
    url: String,
    method: Method,
    body: HttpBody,
    gzip: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl HttpTransport {
    pub fn new(cfg: &HttpSinkConfig) -> Result<HttpTransport, String> {
        let n = &cfg.name;
        let d = &cfg.delivery;
        let http = HttpClient::new(
            &cfg.tls,
            cfg.url.starts_with("https://"),
            Duration::from_millis(d.connect_timeout_ms),
            Duration::from_millis(d.request_timeout_ms),
            d.max_in_flight,
        )?;
        let mut headers = Vec::new();
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("sinks.{n}.headers: {k:?} is not a header name"))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| format!("sinks.{n}.headers.{k}: not a valid header value"))?;
            headers.push((name, value));
        }
        for (k, var) in &cfg.headers_from_env {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("sinks.{n}.headers_from_env: {k:?} is not a header name"))?;
            let v = std::env::var(var).map_err(|e| {
                format!("sinks.{n}.headers_from_env.{k}: environment variable {var}: {e}")
            })?;
            let mut value = HeaderValue::from_str(v.trim()).map_err(|_| {
                format!("sinks.{n}.headers_from_env.{k}: {var} is not a valid header value")
            })?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        let method = match cfg.method.as_str() {
            "PUT" => Method::PUT,
            _ => Method::POST,
        };
        Ok(HttpTransport {
            http,
            url: cfg.url.clone(),
            method,
            body: cfg.body,
            gzip: cfg.gzip,
            headers,
        })
    }

    pub fn body(&self, docs: &[&Doc]) -> Vec<u8> {
        let mut out = Vec::with_capacity(docs.iter().map(|d| d.body.len() + 1).sum::<usize>() + 2);
        match self.body {
            HttpBody::Ndjson => {
                for d in docs {
                    out.extend_from_slice(&d.body);
                    out.push(b'\n');
                }
            }
            HttpBody::JsonArray => {
                out.push(b'[');
                for (i, d) in docs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&d.body);
                }
                out.push(b']');
            }
        }
        out
    }
}

pub fn classify(status: u16, what: String, retry_after: Option<std::time::Duration>) -> Verdict {
    match status {
        429 | 503 => Verdict::throttled_after(what, retry_after),
        401 | 403 | 404 | 405 => Verdict::SinkRefused { reason: what },
        408 => Verdict::retry(what),
        s if s >= 500 => Verdict::retry(what),
        _ => Verdict::Split { reason: what },
    }
}

impl Transport for HttpTransport {
    fn overhead(&self) -> usize {
        1
    }

    fn send<'a>(&'a self, docs: &'a [&'a Doc]) -> SendFuture<'a> {
        Box::pin(async move {
            let body = self.body(docs);
            let (body, encoded) = if self.gzip {
                (
                    gzip(&body).map_err(|e| Verdict::SinkRefused { reason: e })?,
                    true,
                )
            } else {
                (body, false)
            };
            let content_type = match self.body {
                HttpBody::Ndjson => "application/x-ndjson",
                HttpBody::JsonArray => "application/json",
            };
            let mut b = Request::builder()
                .method(self.method.clone())
                .uri(&self.url)
                .header(CONTENT_TYPE, content_type);
            if encoded {
                b = b.header(CONTENT_ENCODING, "gzip");
            }
            for (k, v) in &self.headers {
                b = b.header(k.clone(), v.clone());
            }
            let req = b
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| Verdict::SinkRefused {
                    reason: format!("building the request: {e}"),
                })?;
            let resp = self.http.send(req).await.map_err(Verdict::retry)?;
            if resp.status.is_success() {
                return Ok(vec![Verdict::Accepted; docs.len()]);
            }
            Err(classify(
                resp.status.as_u16(),
                format!("HTTP {}: {}", resp.status.as_u16(), resp.body_excerpt()),
                resp.retry_after(),
            ))
        })
    }
}

/// The generic HTTP sink.
pub fn sink(
    cfg: &HttpSinkConfig,
    dead_letters: Arc<dyn DeadLetterPlace>,
) -> Result<BatchSink<HttpTransport>, String> {
    let transport = HttpTransport::new(cfg)?;
    Ok(batch_sink(
        &cfg.name,
        cfg.format,
        &cfg.delivery,
        None,
        dead_letters,
        transport,
    ))
}
