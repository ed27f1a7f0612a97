//! OpenSearch / Elasticsearch `_bulk`: NDJSON action line + document per record, `_id` =
//! `eventID`, so a re-delivered record lands on the same document (with the default `create`
//! action a repeat is a 409 conflict, counted as already delivered). A 200 response can still
//! refuse single items: those with 429 or 5xx are retried alone, other refusals (mapping
//! errors) go to the dead-letter file with the item's error.

use crate::engine::{batch_sink, BatchSink, Doc, Router, SendFuture, Transport, Verdict};
use crate::http::{gzip, join_url, HttpClient};
use crate::secret::{base64, Secret};
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use http::{Method, Request};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;
use trailhose_config::siem::{index_char, BulkAction, OpenSearchSinkConfig};
use trailhose_pipeline::delivery::DeadLetterPlace;
use trailhose_pipeline::template::{NameKind, Template};

pub struct BulkTransport {
    http: HttpClient,
    url: String,
    auth: Option<HeaderValue>,
    action: BulkAction,
    gzip: bool,
}

impl BulkTransport {
    pub fn new(cfg: &OpenSearchSinkConfig) -> Result<BulkTransport, String> {
        let d = &cfg.delivery;
        let http = HttpClient::new(
            &cfg.tls,
            cfg.url.starts_with("https://"),
            Duration::from_millis(d.connect_timeout_ms),
            Duration::from_millis(d.request_timeout_ms),
            d.max_in_flight,
        )?;
        let n = &cfg.name;
        let auth = if let Some(user) = &cfg.username {
            let pass = Secret::resolve(&cfg.password, &format!("sinks.{n}.password"))?;
            Some(format!(
                "Basic {}",
                base64(format!("{user}:{}", pass.expose()).as_bytes())
            ))
        } else if cfg.api_key.is_set() {
            let key = Secret::resolve(&cfg.api_key, &format!("sinks.{n}.api_key"))?;
            Some(format!("ApiKey {}", key.expose()))
        } else {
            None
        };
        let auth = match auth {
            Some(a) => {
                let mut h = HeaderValue::from_str(&a)
                    .map_err(|_| format!("sinks.{n}: credentials are not a valid header value"))?;
                h.set_sensitive(true);
                Some(h)
            }
            None => None,
        };
        let mut url = join_url(&cfg.url, "/_bulk");
        if let Some(p) = &cfg.pipeline {
            url.push_str("?pipeline=");
            url.extend(form_encode(p));
        }
        Ok(BulkTransport {
            http,
            url,
            auth,
            action: cfg.action,
            gzip: cfg.gzip,
        })
    }

    fn action_name(&self) -> &'static str {
        match self.action {
            BulkAction::Create => "create",
            BulkAction::Index => "index",
        }
    }

    /// The NDJSON body: `{"create":{"_index":…,"_id":…}}\n<doc>\n` per document.
    pub fn body(&self, docs: &[&Doc]) -> Vec<u8> {
        let mut out = Vec::with_capacity(docs.iter().map(|d| d.body.len() + 128).sum());
        for d in docs {
            out.extend_from_slice(b"{\"");
            out.extend_from_slice(self.action_name().as_bytes());
            out.extend_from_slice(b"\":{\"_index\":");
            // Serialising a &str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, &*d.dest);
            out.extend_from_slice(b",\"_id\":");
            let _ = serde_json::to_writer(&mut out, &d.id);
            out.extend_from_slice(b"}}\n");
            out.extend_from_slice(&d.body);
            out.push(b'\n');
        }
        out
    }
}

fn form_encode(s: &str) -> impl Iterator<Item = char> + '_ {
    s.bytes().flat_map(|b| {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        let chars: Vec<char> = if keep {
            vec![char::from(b)]
        } else {
            format!("%{b:02X}").chars().collect()
        };
        chars
    })
}

/// The verdict on one `_bulk` item from its status and error.
pub fn item_verdict(action: BulkAction, item: &serde_json::Value) -> Verdict {
    // Each item is `{"<action>": {...}}`; take the single value whatever the action name.
    let body = item
        .as_object()
        .and_then(|m| m.values().next())
        .cloned()
        .unwrap_or_default();
    let status = body["status"].as_u64().unwrap_or(0);
    let error = &body["error"];
    let reason = || {
        format!(
            "bulk item {status}: {}: {}",
            error["type"].as_str().unwrap_or("error"),
            error["reason"].as_str().unwrap_or("")
        )
    };
    match status {
        200..=299 => Verdict::Accepted,
        // `create` of an `_id` that exists: this record was delivered before.
        409 if action == BulkAction::Create => Verdict::Accepted,
        429 => Verdict::throttled(reason()),
        s if s >= 500 => Verdict::retry(reason()),
        0 => Verdict::retry("bulk item without a status"),
        _ => Verdict::Reject { reason: reason() },
    }
}

impl Transport for BulkTransport {
    fn overhead(&self) -> usize {
        96
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
            let mut b = Request::builder()
                .method(Method::POST)
                .uri(&self.url)
                .header(CONTENT_TYPE, "application/x-ndjson");
            if encoded {
                b = b.header(CONTENT_ENCODING, "gzip");
            }
            if let Some(a) = &self.auth {
                b = b.header(AUTHORIZATION, a.clone());
            }
            let req = b
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| Verdict::SinkRefused {
                    reason: format!("building the request: {e}"),
                })?;
            let resp = self.http.send(req).await.map_err(Verdict::retry)?;
            let what = || {
                format!(
                    "_bulk HTTP {}: {}",
                    resp.status.as_u16(),
                    resp.body_excerpt()
                )
            };
            match resp.status.as_u16() {
                200 => {}
                429 | 503 => return Err(Verdict::throttled_after(what(), resp.retry_after())),
                401 | 403 | 404 | 405 => return Err(Verdict::SinkRefused { reason: what() }),
                400 | 413 => return Err(Verdict::Split { reason: what() }),
                s if s >= 500 || s == 408 => return Err(Verdict::retry(what())),
                _ => return Err(Verdict::Split { reason: what() }),
            }
            let v: serde_json::Value = serde_json::from_slice(&resp.body)
                .map_err(|e| Verdict::retry(format!("_bulk response is not JSON: {e}")))?;
            let Some(items) = v["items"].as_array() else {
                return Err(Verdict::retry("_bulk response without items"));
            };
            if items.len() != docs.len() {
                return Err(Verdict::retry(format!(
                    "_bulk answered {} items for {} documents",
                    items.len(),
                    docs.len()
                )));
            }
            if v["errors"].as_bool() == Some(false) {
                return Ok(vec![Verdict::Accepted; docs.len()]);
            }
            Ok(items.iter().map(|i| item_verdict(self.action, i)).collect())
        })
    }
}

fn sanitize_index(name: String) -> String {
    let mut s: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if index_char(c) { c } else { '_' })
        .collect();
    while s.starts_with(['-', '_', '+']) {
        s.remove(0);
    }
    if s.is_empty() || s == "." || s == ".." {
        s = "cloudtrail".into();
    }
    s.truncate(255);
    s
}

/// The OpenSearch / Elasticsearch sink.
pub fn sink(
    cfg: &OpenSearchSinkConfig,
    dead_letters: Arc<dyn DeadLetterPlace>,
) -> Result<BatchSink<BulkTransport>, String> {
    let template = Template::parse(&cfg.index, NameKind::Stream)
        .map_err(|e| format!("sinks.{}.index: {e}", cfg.name))?;
    let transport = BulkTransport::new(cfg)?;
    Ok(batch_sink(
        &cfg.name,
        cfg.format,
        &cfg.delivery,
        Some(Router {
            template,
            sanitize: sanitize_index,
        }),
        dead_letters,
        transport,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn item_verdicts() {
        let c = BulkAction::Create;
        assert_eq!(
            item_verdict(c, &json!({"create":{"status":201}})),
            Verdict::Accepted
        );
        assert_eq!(
            item_verdict(
                c,
                &json!({"create":{"status":409,"error":{"type":"version_conflict_engine_exception"}}})
            ),
            Verdict::Accepted
        );
        assert!(matches!(
            item_verdict(
                BulkAction::Index,
                &json!({"index":{"status":409,"error":{"type":"x"}}})
            ),
            Verdict::Reject { .. }
        ));
        assert!(matches!(
            item_verdict(
                c,
                &json!({"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}})
            ),
            Verdict::Retry {
                throttled: true,
                ..
            }
        ));
        match item_verdict(
            c,
            &json!({"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse"}}}),
        ) {
            Verdict::Reject { reason } => {
                assert!(reason.contains("mapper_parsing_exception: failed to parse"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn index_names_are_made_legal() {
        assert_eq!(
            sanitize_index("CloudTrail-111/x".into()),
            "cloudtrail-111_x"
        );
        assert_eq!(sanitize_index("_x".into()), "x");
        assert_eq!(sanitize_index("".into()), "cloudtrail");
        assert_eq!(form_encode("a b/c").collect::<String>(), "a%20b%2Fc");
    }
}
