//! The HTTP client the HTTP-based sinks share: hyper 1 over rustls (the AWS SDK's stack, so no
//! extra crates), trusting the system's roots plus an optional CA file, with a connect timeout
//! and a deadline on every request that covers sending it and reading the whole response.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use trailhose_config::siem::TlsConfig;

/// Responses larger than this are cut off (a `_bulk` response for 100k documents is ~20 MB).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

#[derive(Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    /// `Retry-After` in delay-seconds form (what HEC, OpenSearch and most APIs send); an
    /// HTTP-date or garbage is ignored and the sink's own backoff applies.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.headers
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_secs)
    }

    /// The body as text for error messages, shortened.
    pub fn body_excerpt(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        let mut out: String = s.chars().take(300).collect();
        if s.chars().count() > 300 {
            out.push('…');
        }
        out
    }
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// Builds the rustls configuration: system roots (unless `only_ca_file`) plus `ca_file`.
pub fn tls_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if !tls.only_ca_file {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    if let Some(path) = &tls.ca_file {
        use rustls::pki_types::pem::PemObject;
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut n = 0;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{}: {e:?}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            n += 1;
        }
        if n == 0 {
            return Err(format!("{}: no PEM certificates", path.display()));
        }
    }
    if roots.is_empty() {
        return Err("no trusted CA certificates (system roots empty and no ca_file)".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl HttpClient {
    /// `https` says whether TLS will be used; without it a missing root store is no error.
    pub fn new(
        tls: &TlsConfig,
        https: bool,
        connect_timeout: Duration,
        request_timeout: Duration,
        max_idle_per_host: usize,
    ) -> Result<HttpClient, String> {
        let cfg = match tls_config(tls) {
            Ok(c) => c,
            Err(e) if https => return Err(e),
            // Plain HTTP: TLS is never used, any (even root-less) config will do.
            Err(_) => rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        };
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(cfg)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(max_idle_per_host.max(1))
            .build(connector);
        Ok(HttpClient {
            client,
            timeout: request_timeout,
        })
    }

    /// Sends a request and reads the whole response within the request timeout. An error is a
    /// transport failure (no HTTP status): always worth retrying.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<HttpResponse, String> {
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the response: {e}"))?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no complete response within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Gzip with a fast level (the sinks compress on the hot path).
pub fn gzip(body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body).map_err(|e| format!("gzip: {e}"))?;
    enc.finish().map_err(|e| format!("gzip: {e}"))
}

/// Joins a base URL and a path (`https://h:9200/` + `/_bulk`).
pub fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_tls() {
        assert_eq!(join_url("http://h:1/", "/_bulk"), "http://h:1/_bulk");
        assert_eq!(join_url("http://h:1/es", "_bulk"), "http://h:1/es/_bulk");
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a certificate").expect("write");
        let e = tls_config(&TlsConfig {
            ca_file: Some(bad),
            only_ca_file: true,
        })
        .expect_err("no certs");
        assert!(e.contains("no PEM certificates"), "{e}");
        let e = tls_config(&TlsConfig {
            ca_file: Some(dir.path().join("missing.pem")),
            only_ca_file: false,
        })
        .expect_err("missing file");
        assert!(e.contains("missing.pem"), "{e}");
    }
}
