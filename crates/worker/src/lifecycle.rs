//! Pure decisions of the message lifecycle: what a body means ([`plan`]), whether an object is
//! read ([`object_filter`]), and what happens to the message once every object has an answer
//! ([`decide`]). No I/O here; the worker executes the decisions.

use crate::allow::{Admission, AllowList};
use trailhose_core::keys::{classify_key, KeyClass, KeyKind};
use trailhose_core::notify::{Notification, NotificationError, NotificationShape, ObjectRef};

/// Stable dead-letter kinds of message-level refusals.
pub mod kind {
    pub const BAD_NOTIFICATION: &str = "bad_notification";
    pub const BUCKET_NOT_ALLOWED: &str = "bucket_not_allowed";
    pub const MAX_RECEIVE_COUNT: &str = "max_receive_count";
    /// A sink did not take every record (the shared settle rule's label).
    pub const SINK_FAILED: &str = trailhose_pipeline::settle::kind::SINK_FAILED;
}

/// Retry policy of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A message received this many times whose processing still fails is dead-lettered.
    pub max_receive_count: u32,
    /// Visibility set after a retryable failure; 0 = leave the running timeout.
    pub retry_visibility_seconds: u32,
}

/// What a message body asks for, before any object is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to read: an `s3:TestEvent`.
    TestEvent,
    /// Nothing to read: a well-formed message naming no object (SNS handshakes, other
    /// EventBridge detail types).
    Ignored { reason: String },
    /// Refuse the message: dead-letter it with this reason, read nothing.
    Refuse { kind: &'static str, reason: String },
    /// Read these objects. `ignored_records` counts records of the body that named no
    /// created object (e.g. `ObjectRemoved`).
    Read {
        shape: NotificationShape,
        objects: Vec<ObjectRef>,
        ignored_records: u64,
    },
}

/// Decides what a parsed body asks for. A message naming any bucket outside the allow-list is
/// refused as a whole.
pub fn plan(parsed: Result<Notification, NotificationError>, allow: &AllowList) -> Plan {
    match parsed {
        Err(e) => Plan::Refuse {
            kind: kind::BAD_NOTIFICATION,
            reason: e.to_string(),
        },
        Ok(Notification::TestEvent { .. }) => Plan::TestEvent,
        Ok(Notification::Ignored { reason }) => Plan::Ignored { reason },
        Ok(Notification::Objects {
            shape,
            objects,
            ignored,
            ..
        }) => {
            let refused = allow.refused_buckets(&objects);
            if !refused.is_empty() {
                return Plan::Refuse {
                    kind: kind::BUCKET_NOT_ALLOWED,
                    reason: format!(
                        "message names bucket(s) outside source.buckets: {}",
                        refused.join(", ")
                    ),
                };
            }
            Plan::Read {
                shape,
                objects,
                ignored_records: ignored.len() as u64,
            }
        }
    }
}

/// Skip labels (metric attributes).
pub mod skip {
    pub const PREFIX_NOT_ALLOWED: &str = "prefix_not_allowed";
    pub const NOT_CLOUDTRAIL: &str = "not_cloudtrail_key";
    pub const NOT_OBJECT_CREATED: &str = "not_object_created";
}

/// Whether an object is read, by allow-list prefix and key kind. `Err` holds the skip label.
pub fn object_filter(
    allow: &AllowList,
    kinds: &[KeyKind],
    bucket: &str,
    key: &str,
) -> Result<(), &'static str> {
    match allow.admit(bucket, key) {
        Admission::Allowed => {}
        Admission::PrefixNotAllowed | Admission::BucketNotAllowed => {
            return Err(skip::PREFIX_NOT_ALLOWED)
        }
    }
    match classify_key(key) {
        KeyClass::CloudTrail(k) if kinds.contains(&k.kind) => Ok(()),
        KeyClass::CloudTrail(k) => Err(k.kind.as_str()),
        KeyClass::Other { .. } => Err(skip::NOT_CLOUDTRAIL),
    }
}

/// How one object named by a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectResult {
    /// Every record reached every sink (or its dead-letter place).
    Delivered { records: u64 },
    /// Not read: key filter. Counts as done.
    Skipped { reason: String },
    /// Not read: delivered recently by this process. Counts as done.
    Duplicate,
    /// May succeed on another try (S3 throttling, network, a sink failure).
    Retryable { kind: String, reason: String },
    /// Will never succeed (corrupt file, not CloudTrail, missing object).
    Permanent {
        kind: String,
        reason: String,
        records_before_fault: u64,
    },
    /// Stopped by shutdown before it was done.
    Interrupted,
}

/// What to do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Delete,
    /// Record it in the dead-letter place, then delete it. If recording fails the message is
    /// left to come back.
    DeadLetter {
        kind: String,
        reason: String,
    },
    /// Make it visible again now (shutdown): another worker takes it at once.
    Release,
    /// Leave it for another try; `Some(s)` sets its visibility to `s` seconds first.
    Retry {
        visibility_seconds: Option<u32>,
    },
    /// A sink could not take the records (down, refused, out of retry time): leave it for
    /// another try like `Retry`, but the receive this cost is not the message's fault, so it
    /// does not count toward the poison guard and the message is never dead-lettered for it.
    SinkRetry {
        visibility_seconds: Option<u32>,
        reason: String,
    },
}

/// The poison guard before any work: a message received more often than allowed (a worker
/// died on it each time) is dead-lettered without being processed again. Receives that a
/// failing sink caused (`sink_failures`, known to this process) are not the message's fault
/// and do not count.
pub fn poison_check(receive_count: u32, sink_failures: u32, policy: &Policy) -> Option<Decision> {
    let counted = receive_count.saturating_sub(sink_failures);
    (counted > policy.max_receive_count).then(|| Decision::DeadLetter {
        kind: kind::MAX_RECEIVE_COUNT.into(),
        reason: format!(
            "received {receive_count} times ({sink_failures} of them ended by a failing sink), \
             more than max_receive_count = {}",
            policy.max_receive_count
        ),
    })
}

/// How often this process saw each message fail because of a sink, so the poison guard can
/// leave those receives out. Bounded: the oldest entries go first.
#[derive(Debug)]
pub struct SinkFailures {
    counts: std::collections::HashMap<String, u32>,
    order: std::collections::VecDeque<String>,
    capacity: usize,
}

impl SinkFailures {
    pub fn new(capacity: usize) -> Self {
        SinkFailures {
            counts: std::collections::HashMap::new(),
            order: std::collections::VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, message_id: &str) -> u32 {
        self.counts.get(message_id).copied().unwrap_or(0)
    }

    pub fn note(&mut self, message_id: &str) {
        if let Some(n) = self.counts.get_mut(message_id) {
            *n += 1;
            return;
        }
        while self.counts.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.counts.remove(&old);
                }
                None => break,
            }
        }
        self.counts.insert(message_id.to_string(), 1);
        self.order.push_back(message_id.to_string());
    }

    /// The message is settled for good.
    pub fn forget(&mut self, message_id: &str) {
        if self.counts.remove(message_id).is_some() {
            self.order.retain(|m| m != message_id);
        }
    }
}

/// The decision once every object of a message has a result. `results` pairs each object's
/// label (`s3://bucket/key`) with its result; `receive_count` leaves out receives a failing
/// sink caused.
///
/// Precedence: shutdown interruption releases; a retryable failure of the message's own (S3
/// read, network) retries the whole message (delivered objects are then suppressed by the
/// dedup cache) until the receive count reaches the maximum; a failure only of sinks retries
/// without counting and is never dead-lettered; permanent failures dead-letter; otherwise
/// delete.
pub fn decide(results: &[(String, ObjectResult)], receive_count: u32, policy: &Policy) -> Decision {
    if results
        .iter()
        .any(|(_, r)| matches!(r, ObjectResult::Interrupted))
    {
        return Decision::Release;
    }
    let retryable = |sink: bool| -> Vec<String> {
        results
            .iter()
            .filter_map(|(label, r)| match r {
                ObjectResult::Retryable { kind: k, reason } if (k == kind::SINK_FAILED) == sink => {
                    Some(format!("{label}: {k}: {reason}"))
                }
                _ => None,
            })
            .collect()
    };
    let visibility_seconds =
        (policy.retry_visibility_seconds > 0).then_some(policy.retry_visibility_seconds);
    let own = retryable(false);
    if !own.is_empty() {
        if receive_count >= policy.max_receive_count {
            return Decision::DeadLetter {
                kind: kind::MAX_RECEIVE_COUNT.into(),
                reason: format!(
                    "still failing after {receive_count} receives (max_receive_count = {}): {}",
                    policy.max_receive_count,
                    own.join("; ")
                ),
            };
        }
        return Decision::Retry { visibility_seconds };
    }
    let sinks = retryable(true);
    if !sinks.is_empty() {
        return Decision::SinkRetry {
            visibility_seconds,
            reason: sinks.join("; "),
        };
    }
    let mut first_kind = None;
    let permanent: Vec<String> = results
        .iter()
        .filter_map(|(label, r)| match r {
            ObjectResult::Permanent {
                kind,
                reason,
                records_before_fault,
            } => {
                first_kind.get_or_insert_with(|| kind.clone());
                Some(format!(
                    "{label}: {reason} ({records_before_fault} records before the fault were delivered)"
                ))
            }
            _ => None,
        })
        .collect();
    match first_kind {
        Some(kind) => Decision::DeadLetter {
            kind,
            reason: permanent.join("; "),
        },
        None => Decision::Delete,
    }
}

/// Form-url-decodes a key (`+` is a space, `%XX` a byte) for the EventBridge fallback: its key
/// encoding is undocumented, so on `NoSuchKey` the decoded key is tried once. `None` when
/// decoding changes nothing or does not give UTF-8.
pub fn form_decoded_key(key: &str) -> Option<String> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8(out).ok()?;
    (decoded != key).then_some(decoded)
}

/// Epoch ms of a CloudTrail key's delivery stamp (`YYYYMMDDTHHmmZ` or `YYYYMMDDTHHMMSSZ`), for
/// the lag gauge.
pub fn key_time_ms(key: &str) -> Option<i64> {
    let KeyClass::CloudTrail(k) = classify_key(key) else {
        return None;
    };
    let s = k.delivery_time;
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    if date.len() != 8 || !(time.len() == 4 || time.len() == 6) {
        return None;
    }
    let sec = if time.len() == 6 { &time[4..6] } else { "00" };
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &date[0..4],
        &date[4..6],
        &date[6..8],
        &time[0..2],
        &time[2..4],
        sec
    );
    trailhose_core::timefmt::parse_rfc3339_ms(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhose_config::BucketConfig;
    use trailhose_core::notify::parse_notification;

    const POLICY: Policy = Policy {
        max_receive_count: 3,
        retry_visibility_seconds: 30,
    };

    fn allow() -> AllowList {
        AllowList::new(&[BucketConfig {
            name: "trail".into(),
            prefixes: vec!["AWSLogs/".into()],
            role_arn: None,
            region: None,
        }])
    }

    fn s3_event(bucket: &str, key: &str) -> String {
        format!(
            r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"{bucket}"}},"object":{{"key":"{key}","size":1,"eTag":"e"}}}}}}]}}"#
        )
    }

    const LOG_KEY: &str =
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/111122223333_CloudTrail_us-east-1_20261101T0005Z_abcdefghijklmnop.json.gz";

    #[test]
    fn plans_every_body_kind() {
        let a = allow();
        assert_eq!(
            plan(
                parse_notification(
                    r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"trail"}"#
                ),
                &a
            ),
            Plan::TestEvent
        );
        match plan(parse_notification("garbage"), &a) {
            Plan::Refuse { kind, .. } => assert_eq!(kind, kind::BAD_NOTIFICATION),
            other => panic!("unexpected {other:?}"),
        }
        match plan(parse_notification(&s3_event("evil", LOG_KEY)), &a) {
            Plan::Refuse { kind, reason } => {
                assert_eq!(kind, kind::BUCKET_NOT_ALLOWED);
                assert!(reason.contains("evil"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        match plan(parse_notification(&s3_event("trail", LOG_KEY)), &a) {
            Plan::Read { objects, .. } => assert_eq!(objects[0].key, LOG_KEY),
            other => panic!("unexpected {other:?}"),
        }
        let removed =
            s3_event("trail", LOG_KEY).replace("ObjectCreated:Put", "ObjectRemoved:Delete");
        assert!(matches!(
            plan(parse_notification(&removed), &a),
            Plan::Read { ref objects, ignored_records: 1, .. } if objects.is_empty()
        ));
    }

    #[test]
    fn key_filter_by_prefix_and_kind() {
        let a = allow();
        let kinds = [KeyKind::Log, KeyKind::Insight];
        assert_eq!(object_filter(&a, &kinds, "trail", LOG_KEY), Ok(()));
        let digest = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/01/111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20261101T000512Z.json.gz";
        assert_eq!(object_filter(&a, &kinds, "trail", digest), Err("digest"));
        assert_eq!(
            object_filter(&a, &[KeyKind::Digest], "trail", LOG_KEY),
            Err("log")
        );
        assert_eq!(
            object_filter(&a, &kinds, "trail", "AWSLogs/notes.txt"),
            Err(skip::NOT_CLOUDTRAIL)
        );
        assert_eq!(
            object_filter(&a, &kinds, "trail", "other/AWSLogs/x"),
            Err(skip::PREFIX_NOT_ALLOWED)
        );
    }

    fn r(label: &str, result: ObjectResult) -> (String, ObjectResult) {
        (label.to_owned(), result)
    }

    fn retryable() -> ObjectResult {
        ObjectResult::Retryable {
            kind: "s3_transient".into(),
            reason: "SlowDown".into(),
        }
    }

    fn permanent() -> ObjectResult {
        ObjectResult::Permanent {
            kind: "corrupt_compression".into(),
            reason: "bad gzip".into(),
            records_before_fault: 7,
        }
    }

    #[test]
    fn all_done_deletes() {
        let results = [
            r("a", ObjectResult::Delivered { records: 5 }),
            r(
                "b",
                ObjectResult::Skipped {
                    reason: "digest".into(),
                },
            ),
            r("c", ObjectResult::Duplicate),
        ];
        assert_eq!(decide(&results, 1, &POLICY), Decision::Delete);
        assert_eq!(
            decide(&[], 1, &POLICY),
            Decision::Delete,
            "e.g. only ObjectRemoved"
        );
    }

    #[test]
    fn permanent_failure_dead_letters_with_reason() {
        let results = [
            r("a", ObjectResult::Delivered { records: 5 }),
            r("s3://b/k", permanent()),
        ];
        match decide(&results, 1, &POLICY) {
            Decision::DeadLetter { kind, reason } => {
                assert_eq!(kind, "corrupt_compression");
                assert!(
                    reason.contains("s3://b/k") && reason.contains("7 records"),
                    "{reason}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn retryable_wins_over_permanent_until_max_receives() {
        let results = [r("a", permanent()), r("b", retryable())];
        assert_eq!(
            decide(&results, 1, &POLICY),
            Decision::Retry {
                visibility_seconds: Some(30)
            }
        );
        let no_backoff = Policy {
            retry_visibility_seconds: 0,
            ..POLICY
        };
        assert_eq!(
            decide(&results, 2, &no_backoff),
            Decision::Retry {
                visibility_seconds: None
            }
        );
        match decide(&results, 3, &POLICY) {
            Decision::DeadLetter { kind, reason } => {
                assert_eq!(kind, kind::MAX_RECEIVE_COUNT);
                assert!(reason.contains("SlowDown"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn interruption_releases_whatever_else_happened() {
        let results = [
            r("a", permanent()),
            r("b", retryable()),
            r("c", ObjectResult::Interrupted),
        ];
        assert_eq!(decide(&results, 99, &POLICY), Decision::Release);
    }

    #[test]
    fn poison_guard() {
        assert_eq!(poison_check(3, 0, &POLICY), None);
        assert!(matches!(
            poison_check(4, 0, &POLICY),
            Some(Decision::DeadLetter { ref kind, .. }) if kind == kind::MAX_RECEIVE_COUNT
        ));
        // Receives a failing sink ended are not the message's fault.
        assert_eq!(poison_check(40, 37, &POLICY), None);
        assert!(poison_check(40, 36, &POLICY).is_some());
    }

    fn sink_failed() -> ObjectResult {
        ObjectResult::Retryable {
            kind: kind::SINK_FAILED.into(),
            reason: "cwl: not delivered (sink_refused): AccessDeniedException".into(),
        }
    }

    #[test]
    fn a_failing_sink_never_dead_letters_good_data() {
        let results = [
            r("a", ObjectResult::Delivered { records: 5 }),
            r("s3://b/k", sink_failed()),
        ];
        for receives in [1, 3, 50, 10_000] {
            match decide(&results, receives, &POLICY) {
                Decision::SinkRetry {
                    visibility_seconds,
                    reason,
                } => {
                    assert_eq!(visibility_seconds, Some(30));
                    assert!(reason.contains("AccessDenied"), "{reason}");
                }
                other => panic!("{receives} receives: unexpected {other:?}"),
            }
        }
        // A failure of the message's own still counts, and wins.
        let mixed = [r("a", sink_failed()), r("b", retryable())];
        assert!(matches!(
            decide(&mixed, 3, &POLICY),
            Decision::DeadLetter { .. }
        ));
        assert!(matches!(decide(&mixed, 1, &POLICY), Decision::Retry { .. }));
    }

    #[test]
    fn sink_failure_counts_are_bounded_and_forgotten() {
        let mut f = SinkFailures::new(2);
        f.note("m1");
        f.note("m1");
        f.note("m2");
        assert_eq!(f.get("m1"), 2);
        f.note("m3");
        assert_eq!(f.get("m1"), 0, "oldest evicted");
        assert_eq!(f.get("m3"), 1);
        f.forget("m3");
        assert_eq!(f.get("m3"), 0);
        assert_eq!(f.get("m2"), 1);
    }

    #[test]
    fn eventbridge_key_fallback_decoding() {
        assert_eq!(form_decoded_key("a+b%2Fc"), Some("a b/c".into()));
        assert_eq!(form_decoded_key("plain/key.json.gz"), None);
        assert_eq!(form_decoded_key("100%"), None, "a lone % stays");
        assert_eq!(form_decoded_key("%C3%A9"), Some("é".into()));
        assert_eq!(form_decoded_key("%FF"), None, "not UTF-8");
    }

    #[test]
    fn key_time_for_lag() {
        assert_eq!(
            key_time_ms(LOG_KEY),
            trailhose_core::timefmt::parse_rfc3339_ms("2026-11-01T00:05:00Z")
        );
        assert_eq!(key_time_ms("not/a/key"), None);
    }
}
