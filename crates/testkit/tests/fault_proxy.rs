//! The fault proxy between the real AWS SDK (CloudWatch Logs client) and moto's server: every
//! mode as the SDK sees it.

use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::Client;
use std::sync::atomic::{AtomicU32, Ordering};
use trailhose_testkit::fault_proxy::{FaultProxy, Mode, Outcome, CWL_TARGET, PUT_LOG_EVENTS};
use trailhose_testkit::{moto, sdk_config_at, Moto};

const REGION: &str = "us-east-1";

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A CloudWatch Logs client for `endpoint` with the SDK's retries off, so each fault shows
/// as it is.
async fn client(endpoint: &str) -> Client {
    let sdk = sdk_config_at(endpoint, REGION).await;
    Client::from_conf(
        aws_sdk_cloudwatchlogs::config::Builder::from(&sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn destination(c: &Client) -> (String, String) {
    let (group, stream) = (unique("/fault/group"), unique("s"));
    c.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .expect("create group");
    c.create_log_stream()
        .log_group_name(&group)
        .log_stream_name(&stream)
        .send()
        .await
        .expect("create stream");
    (group, stream)
}

type PutResult = Result<
    aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsOutput,
    SdkError<aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError>,
>;

async fn put(c: &Client, group: &str, stream: &str, message: &str) -> PutResult {
    c.put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .log_events(
            InputLogEvent::builder()
                .timestamp(now_ms())
                .message(message)
                .build()
                .expect("event"),
        )
        .send()
        .await
}

async fn messages(c: &Client, group: &str, stream: &str) -> Vec<String> {
    let mut out: Vec<String> = c
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(true)
        .send()
        .await
        .expect("get events")
        .events
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.message)
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn pass_forwards_every_request_and_counts_it() {
    let m = moto();
    let proxy = FaultProxy::start(&m.endpoint).await.expect("proxy");
    let c = client(&proxy.endpoint()).await;
    let (group, stream) = destination(&c).await;
    put(&c, &group, &stream, "one").await.expect("put one");
    put(&c, &group, &stream, "two").await.expect("put two");
    // Read straight from moto: the events went through to it.
    let direct = client(&m.endpoint).await;
    assert_eq!(messages(&direct, &group, &stream).await, ["one", "two"]);
    let counts = proxy.counts();
    assert_eq!(counts.forwarded_to(&m.endpoint, PUT_LOG_EVENTS), 2);
    assert_eq!(counts.get(Outcome::Forwarded, CWL_TARGET), 4, "{counts:#?}");
    assert_eq!(counts.get(Outcome::Refused, ""), 0);
}

#[tokio::test]
async fn refuse_answers_access_denied_as_the_sdk_parses_it_and_forwards_the_rest() {
    let m = moto();
    let proxy = FaultProxy::start(&m.endpoint).await.expect("proxy");
    let c = client(&proxy.endpoint()).await;
    proxy.set_mode(Mode::access_denied(PUT_LOG_EVENTS)).await;
    // Other operations still reach moto.
    let (group, stream) = destination(&c).await;
    let err = put(&c, &group, &stream, "denied")
        .await
        .expect_err("PutLogEvents refused");
    assert!(matches!(err, SdkError::ServiceError(_)), "{err:?}");
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    let msg = err.message().unwrap_or_default().to_string();
    assert!(
        msg.contains("is not authorized to perform: logs:PutLogEvents"),
        "{msg}"
    );
    let counts = proxy.counts();
    assert_eq!(counts.get(Outcome::Refused, PUT_LOG_EVENTS), 1);
    assert_eq!(counts.get(Outcome::Forwarded, PUT_LOG_EVENTS), 0);
    assert_eq!(counts.get(Outcome::Forwarded, CWL_TARGET), 2, "{counts:#?}");

    // A configurable code and status, for every CloudWatch Logs operation.
    proxy
        .set_mode(Mode::Refuse {
            target_prefix: CWL_TARGET.into(),
            status: 400,
            code: "UnrecognizedClientException".into(),
            message: "The security token included in the request is invalid.".into(),
        })
        .await;
    let err = c
        .describe_log_groups()
        .send()
        .await
        .expect_err("refused too");
    assert_eq!(err.code(), Some("UnrecognizedClientException"), "{err:?}");

    proxy.set_mode(Mode::Pass).await;
    put(&c, &group, &stream, "after").await.expect("fixed");
    assert_eq!(messages(&c, &group, &stream).await, ["after"]);
}

#[tokio::test]
async fn down_is_unreachable_and_pass_listens_on_the_same_port_again() {
    let m = moto();
    let proxy = FaultProxy::start(&m.endpoint).await.expect("proxy");
    let endpoint = proxy.endpoint();
    let c = client(&endpoint).await;
    // A kept-alive connection exists when the proxy goes down.
    let (group, stream) = destination(&c).await;
    proxy.set_mode(Mode::Down).await;
    let refused = tokio::net::TcpStream::connect(proxy.addr()).await;
    assert_eq!(
        refused.expect_err("nothing listens").kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    for _ in 0..2 {
        let err = put(&c, &group, &stream, "lost")
            .await
            .expect_err("unreachable");
        assert!(
            matches!(err, SdkError::DispatchFailure(_)),
            "a dispatch (I/O) failure, not an answer: {err:?}"
        );
        assert_eq!(err.code(), None);
    }
    proxy.set_mode(Mode::Pass).await;
    assert_eq!(proxy.endpoint(), endpoint, "same port");
    put(&c, &group, &stream, "back").await.expect("back up");
    assert_eq!(messages(&c, &group, &stream).await, ["back"]);
    assert_eq!(proxy.counts().get(Outcome::Forwarded, PUT_LOG_EVENTS), 1);
}

#[tokio::test]
async fn throttle_answers_a_fraction_with_throttling_exception() {
    let m = moto();
    let proxy = FaultProxy::start(&m.endpoint).await.expect("proxy");
    let c = client(&proxy.endpoint()).await;
    let (group, stream) = destination(&c).await;
    proxy.set_mode(Mode::throttle(PUT_LOG_EVENTS, 0.5)).await;
    let mut accepted = Vec::new();
    let mut throttled = 0;
    for i in 0..40 {
        match put(&c, &group, &stream, &format!("m{i:02}")).await {
            Ok(_) => accepted.push(format!("m{i:02}")),
            Err(e) => {
                assert_eq!(e.code(), Some("ThrottlingException"), "{e:?}");
                throttled += 1;
            }
        }
    }
    assert!((5..=35).contains(&throttled), "{throttled} of 40 throttled");
    let counts = proxy.counts();
    assert_eq!(counts.get(Outcome::Throttled, PUT_LOG_EVENTS), throttled);
    assert_eq!(
        counts.get(Outcome::Forwarded, PUT_LOG_EVENTS),
        accepted.len() as u64
    );
    assert_eq!(messages(&c, &group, &stream).await, accepted);
}

#[tokio::test]
async fn upstream_switches_to_a_second_independent_moto() {
    let first = moto();
    let second = Moto::start();
    assert_ne!(first.endpoint, second.endpoint);
    let proxy = FaultProxy::start(&first.endpoint).await.expect("proxy");
    let c = client(&proxy.endpoint()).await;
    let (g1, s1) = destination(&c).await;
    proxy.set_mode(Mode::Down).await;
    proxy
        .set_mode(Mode::Upstream(second.endpoint.clone()))
        .await;
    assert_eq!(proxy.mode(), Mode::Pass);
    assert_eq!(proxy.upstream(), second.endpoint);
    // The second emulator has its own, empty state.
    let err = put(&c, &g1, &s1, "where")
        .await
        .expect_err("no such group on the second moto");
    assert_eq!(err.code(), Some("ResourceNotFoundException"), "{err:?}");
    let (g2, s2) = destination(&c).await;
    put(&c, &g2, &s2, "second")
        .await
        .expect("put on the second");
    let on_second = client(&second.endpoint).await;
    assert_eq!(messages(&on_second, &g2, &s2).await, ["second"]);
    let on_first = client(&first.endpoint).await;
    let groups = on_first
        .describe_log_groups()
        .log_group_name_prefix(&g2)
        .send()
        .await
        .expect("describe on the first")
        .log_groups
        .unwrap_or_default();
    assert!(groups.is_empty(), "{groups:?}");
    let counts = proxy.counts();
    assert_eq!(counts.forwarded_to(&first.endpoint, CWL_TARGET), 2);
    assert_eq!(counts.forwarded_to(&second.endpoint, PUT_LOG_EVENTS), 2);
    drop(second);
    // The dropped emulator is gone: the proxy resets the client's connection.
    let err = put(&c, &g2, &s2, "gone").await.expect_err("upstream gone");
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    assert_eq!(
        proxy.counts().get(Outcome::UpstreamFailed, PUT_LOG_EVENTS),
        1
    );
}
