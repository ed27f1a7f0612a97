//! The CloudWatch Logs sink: the shared delivery engine
//! ([`trailhose_pipeline::delivery::engine`]) with what is CloudWatch's own — the destination
//! (log group and stream from templates, created on demand), the PutLogEvents rules
//! ([`crate::batch`]: admission, order, 24 h span, 10,000 events, 1 MiB), the answer
//! (`rejectedLogEventsInfo`) and the error classes ([`classify`]).

use crate::batch::{admit, cut_batches, rejected_indices, BatchRules, EVENT_OVERHEAD};
use aws_sdk_cloudwatchlogs::config::http::HttpResponse;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::{InputLogEvent, LogGroupClass};
use aws_sdk_cloudwatchlogs::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;
use trailhose_config::cwl::CloudWatchLogsSinkConfig;
use trailhose_core::sync::lock;
use trailhose_pipeline::delivery::engine::{Prepare, Prepared, Refusal, SendFuture};
use trailhose_pipeline::delivery::{BatchSink, DeadLetterPlace, Doc, Transport, Verdict};
use trailhose_pipeline::template::{NameKind, Template};
use trailhose_pipeline::{RecordChunk, RecordMeta};

/// Builds the CloudWatch Logs client for a sink. SDK retries are off: the delivery engine
/// retries, so backoff, AIMD, the breaker and `max_retry_duration` are under its control.
pub async fn client_for(cfg: &CloudWatchLogsSinkConfig) -> Client {
    let sdk = trailhose_awsconf::load_sdk_config(&trailhose_awsconf::AwsSettings {
        region: cfg.region.clone(),
        endpoint_url: cfg.endpoint_url.clone(),
    })
    .await;
    client_from_with_timeout(
        &sdk,
        Duration::from_millis(cfg.delivery().request_timeout_ms),
    )
}

pub fn client_from(sdk: &aws_config::SdkConfig) -> Client {
    client_from_with_timeout(sdk, Duration::from_secs(30))
}

fn client_from_with_timeout(sdk: &aws_config::SdkConfig, timeout: Duration) -> Client {
    let conf = aws_sdk_cloudwatchlogs::config::Builder::from(sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(timeout)
                .connect_timeout(Duration::from_secs(10).min(timeout))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// The CloudWatch Logs sink, as the pipeline runs it.
pub type CloudWatchLogsSink = BatchSink<CwlTransport>;

/// Separates group and stream in a document's destination: a line break is legal in neither.
const DEST_SEP: char = '\n';

pub fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Builds the sink. `now_ms` is the wall clock (tests pin it); records are admitted against
/// it (14 days back, 2 hours ahead, retention, size).
pub fn sink(
    cfg: CloudWatchLogsSinkConfig,
    client: Client,
    dead_letters: Arc<dyn DeadLetterPlace>,
    now_ms: fn() -> i64,
) -> Result<CloudWatchLogsSink, String> {
    let group = Template::parse(&cfg.log_group, NameKind::Group)?;
    let stream = Template::parse(&cfg.log_stream, NameKind::Stream)?;
    let delivery = cfg.delivery();
    let rules = BatchRules {
        max_event_bytes: cfg.max_event_bytes,
        max_events: delivery.max_events.clamp(1, crate::batch::MAX_BATCH_EVENTS),
        max_bytes: delivery
            .max_bytes
            .clamp(1024, crate::batch::MAX_BATCH_BYTES),
        ..BatchRules::default()
    };
    let mut engine_delivery = delivery.clone();
    engine_delivery.max_events = rules.max_events;
    engine_delivery.max_bytes = rules.max_bytes;
    let retention = cfg.retention_days;
    let prepare: Prepare = Box::new(move |chunk: &RecordChunk, r: &RecordMeta| {
        let g = group.render(&r.fields, &chunk.object);
        let s = stream.render(&r.fields, &chunk.object);
        let mut dest = String::with_capacity(g.len() + s.len() + 1);
        dest.push_str(&g);
        dest.push(DEST_SEP);
        dest.push_str(&s);
        let bytes = chunk.bytes_of(r);
        match admit(
            r.fields.event_time_ms,
            bytes.len(),
            now_ms(),
            retention,
            &rules,
        ) {
            Ok(ts) => Ok(Prepared {
                body: bytes.to_vec(),
                dest,
                time_ms: Some(ts),
            }),
            Err(reject) => Err(Refusal {
                label: reject.label(),
                reason: reject.to_string(),
                dest: format!("{g}/{s}"),
            }),
        }
    });
    if !cfg.legacy_keys().is_empty() {
        tracing::warn!(
            sink = %cfg.name,
            keys = ?cfg.legacy_keys(),
            "keys of an older config: they belong in [sinks.delivery] now (see config/cloudwatch.toml)"
        );
    }
    let name = cfg.name.clone();
    let transport = CwlTransport {
        client,
        cfg,
        rules,
        created_groups: Mutex::new(HashMap::new()),
        created_streams: Mutex::new(HashMap::new()),
    };
    Ok(BatchSink::new(
        &name,
        &engine_delivery,
        transport,
        prepare,
        dead_letters,
    ))
}

type Dest = (Arc<str>, Arc<str>);

pub struct CwlTransport {
    client: Client,
    cfg: CloudWatchLogsSinkConfig,
    rules: BatchRules,
    /// Destinations known to exist. Creation is attempted once per destination, never a
    /// Describe call per batch.
    created_groups: Mutex<HashMap<Arc<str>, Arc<OnceCell<()>>>>,
    created_streams: Mutex<HashMap<Dest, Arc<OnceCell<()>>>>,
}

fn split_dest(dest: &str) -> Dest {
    match dest.split_once(DEST_SEP) {
        Some((g, s)) => (Arc::from(g), Arc::from(s)),
        None => (Arc::from(dest), Arc::from("")),
    }
}

impl Transport for CwlTransport {
    fn send<'a>(&'a self, docs: &'a [&'a Doc]) -> SendFuture<'a> {
        Box::pin(async move {
            let Some(first) = docs.first() else {
                return Ok(Vec::new());
            };
            let dest = split_dest(&first.dest);
            self.ensure_destination(&dest).await?;
            let mut events = Vec::with_capacity(docs.len());
            for d in docs {
                // Records passed JSON validation, so they are UTF-8; the lossy conversion is a
                // copy that cannot panic if a bug elsewhere broke that.
                let message = String::from_utf8_lossy(&d.body).into_owned();
                let event = InputLogEvent::builder()
                    .timestamp(d.time_ms.unwrap_or(0))
                    .message(message)
                    .build()
                    .map_err(|e| Verdict::Reject {
                        reason: format!("cannot build the log event: {e}"),
                    })?;
                events.push(event);
            }
            let put = |events: Vec<InputLogEvent>| {
                self.client
                    .put_log_events()
                    .log_group_name(&*dest.0)
                    .log_stream_name(&*dest.1)
                    .set_log_events(Some(events))
                    .send()
            };
            let mut result = put(events.clone()).await;
            if matches!(&result, Err(e) if e.code() == Some("ResourceNotFoundException")) {
                // The group or stream went away behind our back (deleted, or a new endpoint):
                // create it again and send once more, rather than count a failure per cached
                // destination against the breaker.
                self.forget(&dest);
                self.ensure_destination(&dest).await?;
                result = put(events).await;
            }
            match result {
                Ok(resp) => {
                    let mut verdicts = vec![Verdict::Accepted; docs.len()];
                    if let Some(r) = resp.rejected_log_events_info() {
                        for (i, why) in rejected_indices(
                            docs.len(),
                            r.too_new_log_event_start_index(),
                            r.too_old_log_event_end_index(),
                            r.expired_log_event_end_index(),
                        ) {
                            if let Some(v) = verdicts.get_mut(i) {
                                *v = Verdict::Reject {
                                    reason: format!("{why} (rejectedLogEventsInfo)"),
                                };
                            }
                        }
                    }
                    Ok(verdicts)
                }
                Err(e) => {
                    let verdict = classify(&e, "PutLogEvents");
                    if e.code() == Some("ResourceNotFoundException") {
                        // Deleted behind our back: create it again on the next attempt.
                        self.forget(&dest);
                    }
                    Err(verdict)
                }
            }
        })
    }

    fn overhead(&self) -> usize {
        EVENT_OVERHEAD
    }

    fn one_destination_per_request(&self) -> bool {
        true
    }

    fn cut(&self, docs: Vec<Doc>) -> Vec<Vec<Doc>> {
        let events: Vec<(i64, usize, Doc)> = docs
            .into_iter()
            .map(|d| (d.time_ms.unwrap_or(0), d.body.len(), d))
            .collect();
        cut_batches(events, &self.rules)
            .into_iter()
            .map(|b| b.into_iter().map(|(_, _, d)| d).collect())
            .collect()
    }
}

impl CwlTransport {
    async fn ensure_destination(&self, dest: &Dest) -> Result<(), Verdict> {
        let group_cell = lock(&self.created_groups)
            .entry(dest.0.clone())
            .or_default()
            .clone();
        group_cell
            .get_or_try_init(|| self.create_group(&dest.0))
            .await?;
        let stream_cell = lock(&self.created_streams)
            .entry(dest.clone())
            .or_default()
            .clone();
        stream_cell
            .get_or_try_init(|| async {
                match self
                    .client
                    .create_log_stream()
                    .log_group_name(&*dest.0)
                    .log_stream_name(&*dest.1)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if e.code() == Some("ResourceAlreadyExistsException") => Ok(()),
                    Err(e) => {
                        if e.code() == Some("ResourceNotFoundException") {
                            lock(&self.created_groups).remove(&dest.0);
                        }
                        Err(classify(
                            &e,
                            &format!("CreateLogStream {}/{}", dest.0, dest.1),
                        ))
                    }
                }
            })
            .await?;
        Ok(())
    }

    async fn create_group(&self, group: &str) -> Result<(), Verdict> {
        let cfg = &self.cfg;
        let mut req = self.client.create_log_group().log_group_name(group);
        if let Some(k) = &cfg.kms_key_id {
            req = req.kms_key_id(k);
        }
        if let Some(c) = &cfg.log_group_class {
            req = req.log_group_class(LogGroupClass::from(c.as_str()));
        }
        for (k, v) in &cfg.tags {
            req = req.tags(k, v);
        }
        let created = match req.send().await {
            Ok(_) => true,
            Err(e) if e.code() == Some("ResourceAlreadyExistsException") => false,
            Err(e) => return Err(classify(&e, &format!("CreateLogGroup {group}"))),
        };
        if let (true, Some(days)) = (created, cfg.retention_days) {
            self.client
                .put_retention_policy()
                .log_group_name(group)
                .retention_in_days(days)
                .send()
                .await
                .map_err(|e| classify(&e, &format!("PutRetentionPolicy {group}")))?;
        }
        Ok(())
    }

    fn forget(&self, dest: &Dest) {
        lock(&self.created_groups).remove(&dest.0);
        lock(&self.created_streams).remove(dest);
    }
}

/// Error codes that mean the sink itself is refused: nothing it sends can succeed until an
/// operator acts (IAM policy, credentials, KMS key policy, quotas on log groups).
const REFUSED_CODES: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "NotAuthorized",
    "UnauthorizedOperation",
    "OptInRequired",
    "KMSInvalidStateException",
    "KMSAccessDeniedException",
    "LimitExceededException",
];

/// Codes that are worth another try: throttling and the service's own trouble.
const THROTTLED_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailableException",
    "ServiceQuotaExceededException",
];

const TRANSIENT_CODES: &[&str] = &[
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "OperationAbortedException",
    "ResourceNotFoundException",
    "DataAlreadyAcceptedException",
    "InvalidSequenceTokenException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Sorts an SDK error into the delivery engine's classes. `what` names the call in messages.
pub fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, HttpResponse>,
    what: &str,
) -> Verdict {
    let short = |s: String| -> String { s.chars().take(400).collect() };
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("");
            let status = se.raw().status().as_u16();
            let msg = short(format!(
                "{what}: {} (HTTP {status}): {}",
                if code.is_empty() { "error" } else { code },
                err.message().unwrap_or("")
            ));
            if REFUSED_CODES.contains(&code) {
                Verdict::refused(msg)
            } else if THROTTLED_CODES.contains(&code) || status == 429 {
                Verdict::throttled(msg)
            } else if TRANSIENT_CODES.contains(&code) || status >= 500 {
                Verdict::retry(msg)
            } else if code == "InvalidParameterException" && what == "PutLogEvents" {
                // One event in the batch breaks a rule the sink did not foresee: halves find
                // it, and it alone is dead-lettered.
                Verdict::Split { reason: msg }
            } else {
                // An answer we cannot read as transient: never dead-letter on a guess; hold
                // the sink and let an operator see the reason.
                Verdict::refused(msg)
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Verdict::retry(short(format!("{what}: {}", DisplayErrorContext(e))))
        }
        SdkError::ConstructionFailure(_) => {
            Verdict::refused(short(format!("{what}: {}", DisplayErrorContext(e))))
        }
        _ => Verdict::retry(short(format!("{what}: {}", DisplayErrorContext(e)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatchlogs::error::ErrorMetadata;
    use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
    use aws_smithy_types::body::SdkBody;

    fn service(code: &str, status: u16) -> SdkError<PutLogEventsError, HttpResponse> {
        let err = PutLogEventsError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("User: arn:aws:sts::123456789012:assumed-role/x is not authorized")
                .build(),
        );
        let status = aws_smithy_runtime_api::http::StatusCode::try_from(status).expect("status");
        SdkError::service_error(err, HttpResponse::new(status, SdkBody::empty()))
    }

    #[test]
    fn refusals_of_the_sink_are_not_transient() {
        for code in [
            "AccessDeniedException",
            "UnrecognizedClientException",
            "ExpiredTokenException",
            "KMSAccessDeniedException",
        ] {
            let v = classify(&service(code, 400), "PutLogEvents");
            assert!(
                matches!(&v, Verdict::SinkRefused { reason } if reason.contains(code)),
                "{v:?}"
            );
        }
        // An unknown 4xx is held, never dead-lettered on a guess.
        assert!(matches!(
            classify(&service("SomethingNew", 403), "PutLogEvents"),
            Verdict::SinkRefused { .. }
        ));
    }

    #[test]
    fn throttling_and_server_errors_are_transient() {
        assert!(matches!(
            classify(&service("ThrottlingException", 400), "PutLogEvents"),
            Verdict::Retry {
                throttled: true,
                ..
            }
        ));
        assert!(matches!(
            classify(&service("ServiceUnavailableException", 503), "PutLogEvents"),
            Verdict::Retry {
                throttled: true,
                ..
            }
        ));
        assert!(matches!(
            classify(&service("", 500), "PutLogEvents"),
            Verdict::Retry {
                throttled: false,
                ..
            }
        ));
        assert!(matches!(
            classify(&service("ResourceNotFoundException", 400), "PutLogEvents"),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn a_bad_event_splits_the_batch() {
        assert!(matches!(
            classify(&service("InvalidParameterException", 400), "PutLogEvents"),
            Verdict::Split { .. }
        ));
        assert!(matches!(
            classify(
                &service("InvalidParameterException", 400),
                "CreateLogGroup /g"
            ),
            Verdict::SinkRefused { .. }
        ));
    }

    #[test]
    fn network_failures_are_transient() {
        let refused: SdkError<PutLogEventsError, HttpResponse> =
            SdkError::dispatch_failure(aws_smithy_runtime_api::client::result::ConnectorError::io(
                Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            ));
        assert!(matches!(
            classify(&refused, "PutLogEvents"),
            Verdict::Retry {
                throttled: false,
                ..
            }
        ));
        let timeout: SdkError<PutLogEventsError, HttpResponse> =
            SdkError::timeout_error("attempt timeout");
        assert!(matches!(
            classify(&timeout, "PutLogEvents"),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn destinations_round_trip() {
        let (g, s) = split_dest("/cloudtrail/111122223333\nus-east-1/Management");
        assert_eq!(&*g, "/cloudtrail/111122223333");
        assert_eq!(&*s, "us-east-1/Management");
    }
}
