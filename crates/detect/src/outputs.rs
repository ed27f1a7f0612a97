//! Alert outputs: NDJSON file, stdout, SNS topic, HTTP webhook. Each `send` makes one attempt
//! and reports, per alert it could not deliver, the reason and its class: refused *for good*
//! (too large for SNS, a 4xx the webhook will never accept) — the detection stage keeps those
//! in the failed-alerts file — or transient / the output itself refused, which the stage
//! retries under the delivery contract (backoff, the breaker, `max_retry_duration`) and never
//! writes to the failed-alerts file.

use crate::alert::AlertMessage;
use crate::rules::Severity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use trailhose_config::detect::AlertOutputConfig;
use trailhose_pipeline::delivery::FailureClass;
use trailhose_pipeline::linefile::AppendFile;

/// Why an output did not take an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    /// `None`: the output can never take this alert (it goes to the failed-alerts file).
    pub class: Option<FailureClass>,
}

impl Failure {
    fn permanent(reason: String) -> Failure {
        Failure {
            reason,
            class: None,
        }
    }

    fn io(reason: String, e: &std::io::Error) -> Failure {
        use std::io::ErrorKind as K;
        let class = match e.kind() {
            K::PermissionDenied | K::ReadOnlyFilesystem | K::NotADirectory | K::BrokenPipe => {
                FailureClass::SinkRefused
            }
            _ => FailureClass::Transient,
        };
        Failure {
            reason,
            class: Some(class),
        }
    }
}

/// Sorts an SNS `Publish` error: refused for good (a bad parameter), the output refused
/// (credentials, IAM, KMS, a missing topic) or transient (throttling, 5xx, network).
fn sns_failure<E, R>(e: &aws_sdk_sns::error::SdkError<E, R>, reason: String) -> Failure
where
    E: aws_sdk_sns::error::ProvideErrorMetadata,
{
    use aws_sdk_sns::error::SdkError;
    let class = match e {
        SdkError::ServiceError(se) => match se.err().code().unwrap_or("") {
            "InvalidParameter" | "InvalidParameterValue" | "ValidationError" => None,
            "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "KMSThrottling"
            | "" => Some(FailureClass::Transient),
            _ => Some(FailureClass::SinkRefused),
        },
        SdkError::ConstructionFailure(_) => Some(FailureClass::SinkRefused),
        _ => Some(FailureClass::Transient),
    };
    Failure { reason, class }
}

/// SNS accepts messages up to 256 KiB; keep a margin for the attributes.
pub const SNS_MAX_MESSAGE: usize = 256 * 1024 - 2048;

pub struct Output {
    name: String,
    min_severity: Severity,
    kind: Kind,
}

enum Kind {
    Ndjson {
        fsync: bool,
        file: Arc<AppendFile>,
    },
    Stdout,
    Sns {
        client: aws_sdk_sns::Client,
        topic_arn: String,
    },
    Webhook(Box<Webhook>),
}

pub fn parse_severity(s: &str) -> Option<Severity> {
    match s {
        "info" => Some(Severity::Info),
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

/// The region in `arn:aws:sns:REGION:ACCOUNT:NAME`.
fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

impl Output {
    /// An NDJSON file output (also used for the Insights events file).
    pub fn ndjson(path: PathBuf, fsync: bool) -> Output {
        Output {
            name: format!("ndjson:{}", path.display()),
            min_severity: Severity::Info,
            kind: Kind::Ndjson {
                fsync,
                file: Arc::new(AppendFile::new(&path)),
            },
        }
    }

    pub fn stdout() -> Output {
        Output {
            name: "stdout".into(),
            min_severity: Severity::Info,
            kind: Kind::Stdout,
        }
    }

    pub fn sns(client: aws_sdk_sns::Client, topic_arn: String) -> Output {
        Output {
            name: format!("sns:{topic_arn}"),
            min_severity: Severity::Info,
            kind: Kind::Sns { client, topic_arn },
        }
    }

    pub fn webhook(w: Webhook) -> Output {
        Output {
            name: format!("webhook:{}", w.uri),
            min_severity: Severity::Info,
            kind: Kind::Webhook(Box::new(w)),
        }
    }

    pub fn with_min_severity(mut self, s: Severity) -> Output {
        self.min_severity = s;
        self
    }

    pub async fn from_config(c: &AlertOutputConfig) -> Result<Output, String> {
        let out = match c {
            AlertOutputConfig::Ndjson(n) => Output::ndjson(n.path.clone(), n.fsync),
            AlertOutputConfig::Stdout(_) => Output::stdout(),
            AlertOutputConfig::Sns(s) => {
                let sdk = trailhose_awsconf::load_sdk_config(&trailhose_awsconf::AwsSettings {
                    region: s
                        .region
                        .clone()
                        .or_else(|| arn_region(&s.topic_arn).map(str::to_owned)),
                    endpoint_url: s.endpoint_url.clone(),
                })
                .await;
                Output::sns(aws_sdk_sns::Client::new(&sdk), s.topic_arn.clone())
            }
            AlertOutputConfig::Webhook(w) => Output::webhook(Webhook::new(
                &w.url,
                &w.headers,
                Duration::from_millis(w.timeout_ms),
            )?),
        };
        Ok(match c.min_severity() {
            Some(s) => out.with_min_severity(
                parse_severity(s).ok_or_else(|| format!("unknown severity `{s}`"))?,
            ),
            None => out,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn wants(&self, a: &AlertMessage) -> bool {
        a.severity >= self.min_severity
    }

    /// Sends what this output wants of `alerts`, once; returns the ones it could not take,
    /// with the reason and its class.
    pub async fn send<'a>(
        &mut self,
        alerts: &[&'a AlertMessage],
    ) -> Vec<(&'a AlertMessage, Failure)> {
        let mine: Vec<&AlertMessage> = alerts.iter().copied().filter(|a| self.wants(a)).collect();
        if mine.is_empty() {
            return Vec::new();
        }
        let name = self.name.clone();
        match &mut self.kind {
            Kind::Ndjson { fsync, file } => {
                let mut buf = Vec::new();
                for a in &mine {
                    buf.extend_from_slice(&a.body);
                    buf.push(b'\n');
                }
                match append_lines(file.clone(), buf, *fsync).await {
                    Ok(()) => Vec::new(),
                    Err(e) => {
                        let f = Failure::io(format!("{name}: {e}"), &e);
                        mine.into_iter().map(|a| (a, f.clone())).collect()
                    }
                }
            }
            Kind::Stdout => {
                let mut buf = Vec::new();
                for a in &mine {
                    buf.extend_from_slice(&a.body);
                    buf.push(b'\n');
                }
                let mut out = tokio::io::stdout();
                match async {
                    out.write_all(&buf).await?;
                    out.flush().await
                }
                .await
                {
                    Ok(()) => Vec::new(),
                    Err(e) => {
                        let f = Failure::io(format!("{name}: {e}"), &e);
                        mine.into_iter().map(|a| (a, f.clone())).collect()
                    }
                }
            }
            Kind::Sns { client, topic_arn } => {
                let mut failed = Vec::new();
                for a in mine {
                    let Some(body) = a.body_within(
                        SNS_MAX_MESSAGE,
                        "alert larger than SNS's 256 KiB message limit",
                    ) else {
                        failed.push((
                            a,
                            Failure::permanent(format!("{name}: alert larger than 256 KiB")),
                        ));
                        continue;
                    };
                    let message = String::from_utf8_lossy(&body).into_owned();
                    let attr = |v: &str| {
                        aws_sdk_sns::types::MessageAttributeValue::builder()
                            .data_type("String")
                            .string_value(v)
                            .build()
                    };
                    let (Ok(sev), Ok(id)) = (attr(a.severity.as_str()), attr(&a.id)) else {
                        failed.push((
                            a,
                            Failure::permanent(format!("{name}: cannot build message attributes")),
                        ));
                        continue;
                    };
                    let r = client
                        .publish()
                        .topic_arn(topic_arn.as_str())
                        .subject(&a.subject)
                        .message(message)
                        .message_attributes("severity", sev)
                        .message_attributes("alertId", id)
                        .send()
                        .await;
                    if let Err(e) = r {
                        let reason = format!(
                            "{name}: Publish failed: {}",
                            aws_sdk_sns::error::DisplayErrorContext(&e)
                        );
                        failed.push((a, sns_failure(&e, reason)));
                    }
                }
                failed
            }
            Kind::Webhook(w) => {
                let mut failed = Vec::new();
                for a in mine {
                    if let Err(mut f) = w.post(a.body.clone()).await {
                        f.reason = format!("{name}: {}", f.reason);
                        failed.push((a, f));
                    }
                }
                failed
            }
        }
    }
}

/// Appends whole lines through the project's one line writer (nothing partial or doubled
/// is left by a failed write; a torn line a killed writer left is cut), off the runtime.
pub(crate) async fn append_lines(
    file: Arc<AppendFile>,
    buf: Vec<u8>,
    sync: bool,
) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || file.append(&buf, sync))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("writer task failed: {e}"))))
}

enum HttpClient {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

/// A generic webhook: `POST <url>` with the alert as the JSON body.
pub struct Webhook {
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    client: HttpClient,
}

impl Webhook {
    pub fn new(
        url: &str,
        headers: &std::collections::BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Webhook, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("webhook url `{url}`: {e}"))?;
        let mut hs = Vec::new();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| format!("webhook header name `{k}`: {e}"))?;
            let mut value =
                HeaderValue::from_str(v).map_err(|e| format!("webhook header `{k}`: {e}"))?;
            value.set_sensitive(true);
            hs.push((name, value));
        }
        let client = match uri.scheme_str() {
            Some("http") => {
                HttpClient::Plain(Client::builder(TokioExecutor::new()).build(HttpConnector::new()))
            }
            Some("https") => {
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(provider)
                    .map_err(|e| format!("webhook TLS setup: {e}"))?
                    .https_only()
                    .enable_http1()
                    .build();
                HttpClient::Tls(Client::builder(TokioExecutor::new()).build(connector))
            }
            _ => return Err(format!("webhook url `{url}` must be http:// or https://")),
        };
        Ok(Webhook {
            uri,
            headers: hs,
            timeout,
            client,
        })
    }

    /// One POST: 2xx accepted; 429, 5xx, timeouts and connection errors transient; 401, 403,
    /// 404 and 405 the webhook refusing us; any other 4xx refuses this alert for good.
    pub async fn post(&self, body: Vec<u8>) -> Result<(), Failure> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("trailhose/", env!("CARGO_PKG_VERSION")));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::permanent(format!("building the request: {e}")))?;
        let transient = |reason: String| Failure {
            reason,
            class: Some(FailureClass::Transient),
        };
        let fut = async {
            let resp = match &self.client {
                HttpClient::Plain(c) => c.request(req).await,
                HttpClient::Tls(c) => c.request(req).await,
            }
            .map_err(|e| transient(format!("POST failed: {e}")))?;
            let status = resp.status();
            // Drain (a little of) the body so the connection can be reused.
            let _ = Limited::new(resp.into_body(), 64 * 1024).collect().await;
            let reason = format!("POST answered {status}");
            match status.as_u16() {
                200..=299 => Ok(()),
                429 | 500..=599 => Err(transient(reason)),
                401 | 403 | 404 | 405 => Err(Failure {
                    reason,
                    class: Some(FailureClass::SinkRefused),
                }),
                _ => Err(Failure::permanent(reason)),
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(transient(format!(
                "POST timed out after {:?}",
                self.timeout
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_and_arns() {
        assert_eq!(parse_severity("high"), Some(Severity::High));
        assert_eq!(parse_severity("HIGH"), None);
        assert_eq!(
            arn_region("arn:aws:sns:eu-west-1:123456789012:alerts"),
            Some("eu-west-1")
        );
        assert!(Webhook::new("ftp://x", &Default::default(), Duration::from_secs(1)).is_err());
    }
}
