//! Splunk HTTP Event Collector: batches of JSON event envelopes to `/services/collector/event`
//! with `Authorization: Splunk <token>`; `time` from `eventTime` (epoch seconds with
//! milliseconds), `sourcetype` `aws:cloudtrail` by default, `source` the object the record came
//! from. With `indexer_ack`, a batch counts as accepted only when `/services/collector/ack`
//! reports its `ackId` indexed; one not acknowledged within `ack_timeout_ms` is sent again (HEC
//! has no idempotency key, so that can duplicate events in Splunk, never lose them).

use crate::engine::{batch_sink, BatchSink, Doc, SendFuture, Transport, Verdict};
use crate::http::{gzip, join_url, HttpClient, HttpResponse};
use crate::secret::Secret;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use std::sync::Arc;
use std::time::{Duration, Instant};
use trailhose_config::siem::SplunkHecSinkConfig;
use trailhose_pipeline::delivery::DeadLetterPlace;

pub struct HecTransport {
    http: HttpClient,
    event_url: String,
    ack_url: String,
    auth: HeaderValue,
    channel: Option<HeaderValue>,
    sourcetype: String,
    source: Option<String>,
    index: Option<String>,
    host: Option<String>,
    gzip: bool,
    indexer_ack: bool,
    ack_timeout: Duration,
    ack_poll: Duration,
}

/// A random GUID (version 4 layout) for an HEC channel.
pub fn random_guid() -> String {
    let a: u128 = rand::random();
    let b = (a & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn sensitive(v: &str, what: &str) -> Result<HeaderValue, String> {
    let mut h =
        HeaderValue::from_str(v).map_err(|_| format!("{what} is not a valid header value"))?;
    h.set_sensitive(true);
    Ok(h)
}

impl HecTransport {
    pub fn new(cfg: &SplunkHecSinkConfig, token: &Secret) -> Result<HecTransport, String> {
        let d = &cfg.delivery;
        let http = HttpClient::new(
            &cfg.tls,
            cfg.url.starts_with("https://"),
            Duration::from_millis(d.connect_timeout_ms),
            Duration::from_millis(d.request_timeout_ms),
            d.max_in_flight,
        )?;
        let channel = match (&cfg.channel, cfg.indexer_ack) {
            (Some(c), _) => Some(c.clone()),
            (None, true) => Some(random_guid()),
            (None, false) => None,
        };
        let channel = match channel {
            Some(c) => Some(
                HeaderValue::from_str(&c)
                    .map_err(|_| format!("sinks.{}.channel is not a valid header", cfg.name))?,
            ),
            None => None,
        };
        Ok(HecTransport {
            http,
            event_url: join_url(&cfg.url, "/services/collector/event"),
            ack_url: join_url(&cfg.url, "/services/collector/ack"),
            auth: sensitive(
                &format!("Splunk {}", token.expose()),
                &format!("sinks.{}.token", cfg.name),
            )?,
            channel,
            sourcetype: cfg.sourcetype.clone(),
            source: cfg.source.clone(),
            index: cfg.index.clone(),
            host: cfg.host.clone(),
            gzip: cfg.gzip,
            indexer_ack: cfg.indexer_ack,
            ack_timeout: Duration::from_millis(cfg.ack_timeout_ms),
            ack_poll: Duration::from_millis(cfg.ack_poll_ms.max(1)),
        })
    }

    /// `{"time":…,"host":…,"source":…,"sourcetype":…,"index":…,"event":<doc>}`
    pub fn envelope(&self, d: &Doc, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{");
        if let Some(ms) = d.time_ms {
            out.extend_from_slice(
                format!(
                    "\"time\":{}.{:03},",
                    ms.div_euclid(1000),
                    ms.rem_euclid(1000)
                )
                .as_bytes(),
            );
        }
        let mut kv = |k: &str, v: &str| {
            // Serialising a &str cannot fail.
            let _ = serde_json::to_writer(&mut *out, k);
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, v);
            out.push(b',');
        };
        if let Some(h) = &self.host {
            kv("host", h);
        }
        kv(
            "source",
            self.source.as_deref().unwrap_or(&d.object().source),
        );
        kv("sourcetype", &self.sourcetype);
        if let Some(i) = &self.index {
            kv("index", i);
        }
        out.extend_from_slice(b"\"event\":");
        out.extend_from_slice(&d.body);
        out.push(b'}');
    }

    fn request(
        &self,
        url: &str,
        body: Vec<u8>,
        compress: bool,
    ) -> Result<Request<Full<Bytes>>, String> {
        let (body, encoded) = if compress {
            (gzip(&body)?, true)
        } else {
            (body, false)
        };
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json");
        if encoded {
            b = b.header(CONTENT_ENCODING, "gzip");
        }
        if let Some(c) = &self.channel {
            b = b.header("X-Splunk-Request-Channel", c.clone());
        }
        b.body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("building the request: {e}"))
    }

    async fn wait_for_ack(&self, ack_id: u64) -> Result<(), Verdict> {
        let deadline = Instant::now() + self.ack_timeout;
        let body = format!("{{\"acks\":[{ack_id}]}}");
        let mut last: String;
        loop {
            tokio::time::sleep(self.ack_poll).await;
            let req = self
                .request(&self.ack_url, body.clone().into_bytes(), false)
                .map_err(|e| Verdict::SinkRefused { reason: e })?;
            match self.http.send(req).await {
                Ok(resp) if resp.status == StatusCode::OK => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&resp.body).unwrap_or_default();
                    if v["acks"][ack_id.to_string()].as_bool() == Some(true) {
                        return Ok(());
                    }
                    last = format!("ackId {ack_id} not yet indexed");
                }
                Ok(resp) => {
                    let v = classify(&resp);
                    if matches!(v, Verdict::SinkRefused { .. }) {
                        return Err(v);
                    }
                    last = format!("ack poll: HTTP {}", resp.status.as_u16());
                }
                Err(e) => last = format!("ack poll: {e}"),
            }
            if Instant::now() >= deadline {
                return Err(Verdict::retry(format!(
                    "HEC indexer acknowledgement not received within {} ms ({last})",
                    self.ack_timeout.as_millis()
                )));
            }
        }
    }
}

/// HEC's answer to a non-200 response.
pub fn classify(resp: &HttpResponse) -> Verdict {
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    let code = v["code"].as_i64();
    let text = v["text"].as_str().unwrap_or("");
    let what = format!(
        "HEC HTTP {} (code {}: {})",
        resp.status.as_u16(),
        code.map_or_else(|| "-".to_string(), |c| c.to_string()),
        if text.is_empty() {
            resp.body_excerpt()
        } else {
            text.to_string()
        }
    );
    match resp.status.as_u16() {
        429 | 503 => Verdict::throttled_after(what, resp.retry_after()),
        401 | 403 | 404 => Verdict::SinkRefused { reason: what },
        // Incorrect index: every event of this sink would be refused the same way.
        400 if code == Some(7) => Verdict::SinkRefused { reason: what },
        400 | 413 => Verdict::Split { reason: what },
        408 => Verdict::retry(what),
        s if s >= 500 => Verdict::retry(what),
        _ => Verdict::Split { reason: what },
    }
}

impl Transport for HecTransport {
    fn overhead(&self) -> usize {
        160 + self.source.as_ref().map_or(120, String::len)
    }

    fn send<'a>(&'a self, docs: &'a [&'a Doc]) -> SendFuture<'a> {
        Box::pin(async move {
            let mut body = Vec::with_capacity(docs.iter().map(|d| d.body.len() + 256).sum());
            for d in docs {
                self.envelope(d, &mut body);
                body.push(b'\n');
            }
            let req = self
                .request(&self.event_url, body, self.gzip)
                .map_err(|e| Verdict::SinkRefused { reason: e })?;
            let resp = self.http.send(req).await.map_err(Verdict::retry)?;
            if resp.status != StatusCode::OK {
                return Err(classify(&resp));
            }
            if self.indexer_ack {
                let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
                let Some(ack_id) = v["ackId"].as_u64() else {
                    return Err(Verdict::SinkRefused {
                        reason: "indexer_ack is on but HEC returned no ackId (is acknowledgement enabled on the token?)".into(),
                    });
                };
                self.wait_for_ack(ack_id).await?;
            }
            Ok(vec![Verdict::Accepted; docs.len()])
        })
    }
}

/// The Splunk HEC sink.
pub fn sink(
    cfg: &SplunkHecSinkConfig,
    dead_letters: Arc<dyn DeadLetterPlace>,
) -> Result<BatchSink<HecTransport>, String> {
    let token = Secret::resolve(&cfg.token, &format!("sinks.{}.token", cfg.name))?;
    let transport = HecTransport::new(cfg, &token)?;
    Ok(batch_sink(
        &cfg.name,
        cfg.format,
        &cfg.delivery,
        None,
        dead_letters,
        transport,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_look_like_guids() {
        let g = random_guid();
        assert_eq!(g.len(), 36);
        assert_eq!(g.as_bytes()[14], b'4');
        assert!(matches!(g.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{g}");
        assert_ne!(g, random_guid());
    }

    #[test]
    fn classifies_hec_errors() {
        let r = |status: u16, body: &str| HttpResponse {
            status: StatusCode::from_u16(status).expect("status"),
            headers: Default::default(),
            body: Bytes::from(body.to_string()),
        };
        assert!(matches!(
            classify(&r(503, r#"{"text":"Server is busy","code":9}"#)),
            Verdict::Retry {
                throttled: true,
                ..
            }
        ));
        assert!(matches!(
            classify(&r(403, r#"{"text":"Invalid token","code":4}"#)),
            Verdict::SinkRefused { .. }
        ));
        assert!(matches!(
            classify(&r(
                400,
                r#"{"text":"Invalid data format","code":6,"invalid-event-number":3}"#
            )),
            Verdict::Split { .. }
        ));
        assert!(matches!(
            classify(&r(400, r#"{"text":"Incorrect index","code":7}"#)),
            Verdict::SinkRefused { .. }
        ));
        assert!(matches!(
            classify(&r(500, "oops")),
            Verdict::Retry {
                throttled: false,
                ..
            }
        ));
    }
}
