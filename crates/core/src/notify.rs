//! Decoding of SQS message bodies into the S3 objects they announce.
//!
//! A queue fed from a CloudTrail bucket can receive any of several shapes,
//! depending on how the account was wired: S3 event notifications (direct or
//! through SNS), CloudTrail's own SNS notification, EventBridge "Object
//! Created" events, and S3's one-off `s3:TestEvent`. All of them are decoded
//! here so the consumer only deals with [`ObjectRef`]s.
//!
//! Bodies are parsed with `serde_json` rather than simd-json because the body
//! is untrusted: simd-json builds its DOM recursively and a deeply nested body
//! overflows the stack (an abort, not an error), while `serde_json` stops at a
//! fixed nesting limit. Notification bodies are small, so speed is irrelevant.

use std::cmp::Ordering;

use serde_json::{Map, Value};

type Object = Map<String, Value>;

/// One S3 object named by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// Decoded key, ready for `GetObject`.
    pub key: String,
    /// Bucket region when the notification states it (CloudTrail's own
    /// notification does not).
    pub region: Option<String>,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    /// Per-key ordering token; see [`compare_sequencer`].
    pub sequencer: Option<String>,
}

/// Which producer wrote the notification, independent of SNS wrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationShape {
    /// S3 event notification (`Records[]` with `eventSource: aws:s3`).
    S3Event,
    /// CloudTrail's SNS notification (`s3Bucket` + `s3ObjectKey[]`).
    CloudTrail,
    /// EventBridge `Object Created` event from `aws.s3`.
    EventBridge,
}

impl NotificationShape {
    /// Stable label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            NotificationShape::S3Event => "s3_event",
            NotificationShape::CloudTrail => "cloudtrail",
            NotificationShape::EventBridge => "eventbridge",
        }
    }
}

/// What a message body means for the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Objects to process. `objects` may be empty, e.g. when every record was
    /// an `ObjectRemoved` event; `ignored` says why each skipped record was
    /// skipped so the caller can count it.
    Objects {
        shape: NotificationShape,
        via_sns: bool,
        objects: Vec<ObjectRef>,
        ignored: Vec<String>,
    },
    /// S3 sends this once when a notification configuration is saved; it
    /// names no object and should simply be deleted.
    TestEvent { bucket: Option<String> },
    /// A well-formed message that names nothing to process (SNS subscription
    /// handshakes, EventBridge events other than `Object Created`).
    Ignored { reason: String },
}

/// Why a body could not be decoded. Such messages will never succeed on
/// retry, so callers typically dead-letter them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("message body is not JSON: {0}")]
    NotJson(String),
    #[error("message body is a JSON {0}, not an object")]
    NotAnObject(&'static str),
    #[error("unrecognised notification shape: {0}")]
    UnknownShape(String),
    #[error("field `{field}` {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("object key {key:?} is not valid form-urlencoded UTF-8: {reason}")]
    BadKeyEncoding { key: String, reason: &'static str },
    #[error("SNS envelope nested inside another SNS envelope")]
    NestedSns,
}

/// Decode one SQS message body.
///
/// Precedence when a body could match several shapes: SNS envelope, then
/// `s3:TestEvent`, then S3 `Records[]`, then CloudTrail's notification, then
/// EventBridge. At most one SNS layer is unwrapped.
pub fn parse_notification(body: &str) -> Result<Notification, NotificationError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| NotificationError::NotJson(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or(NotificationError::NotAnObject(json_type(&value)))?;
    route(object, false)
}

/// Order two S3 sequencers for the same key: the greater one is the later
/// event. AWS specifies right-padding the shorter with `0` and comparing as
/// strings. Sequencers are upper-case hex; case is folded so a lower-cased
/// copy from some other system still orders correctly.
pub fn compare_sequencer(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(b'0').to_ascii_uppercase();
        let y = b.get(i).copied().unwrap_or(b'0').to_ascii_uppercase();
        match x.cmp(&y) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
    }
    Ordering::Equal
}

fn route(object: &Object, inside_sns: bool) -> Result<Notification, NotificationError> {
    match object.get("Type").and_then(Value::as_str) {
        Some("Notification") => {
            if inside_sns {
                return Err(NotificationError::NestedSns);
            }
            return unwrap_sns(object);
        }
        Some(kind @ ("SubscriptionConfirmation" | "UnsubscribeConfirmation")) => {
            if inside_sns {
                return Err(NotificationError::NestedSns);
            }
            return Ok(Notification::Ignored {
                reason: format!("SNS {kind} message"),
            });
        }
        _ => {}
    }

    if object.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        let bucket = opt_str(object, "Bucket", "Bucket", None)?;
        return Ok(Notification::TestEvent {
            bucket: bucket.map(str::to_owned),
        });
    }

    if let Some(records) = object.get("Records").and_then(Value::as_array) {
        // A CloudTrail log file also has top-level `Records[]`; requiring an
        // S3 record keeps one pasted into the queue from passing as an event.
        let from_s3 = records.is_empty()
            || records
                .iter()
                .any(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:s3"));
        if from_s3 {
            return s3_event(records, inside_sns);
        }
    }

    if object.contains_key("s3Bucket") && object.contains_key("s3ObjectKey") {
        return cloudtrail(object, inside_sns);
    }

    if object.get("source").and_then(Value::as_str) == Some("aws.s3")
        && object.contains_key("detail-type")
    {
        return eventbridge(object, inside_sns);
    }

    Err(NotificationError::UnknownShape(describe(object)))
}

fn unwrap_sns(envelope: &Object) -> Result<Notification, NotificationError> {
    let message = req_str(envelope, "Message", "Message", None)?;
    let inner: Value = serde_json::from_str(message).map_err(|e| NotificationError::BadField {
        field: "Message",
        reason: format!("is not JSON: {e}"),
    })?;
    let inner = inner
        .as_object()
        .ok_or_else(|| NotificationError::BadField {
            field: "Message",
            reason: format!("is a JSON {}, not an object", json_type(&inner)),
        })?;
    route(inner, true)
}

fn s3_event(records: &[Value], via_sns: bool) -> Result<Notification, NotificationError> {
    let mut objects = Vec::with_capacity(records.len());
    let mut ignored = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let at = Some(i);
        let record = record
            .as_object()
            .ok_or_else(|| NotificationError::BadField {
                field: "Records[]",
                reason: format!("record {i} is a JSON {}, not an object", json_type(record)),
            })?;

        let source = opt_str(record, "eventSource", "Records[].eventSource", at)?;
        if source != Some("aws:s3") {
            ignored.push(format!(
                "record {i}: eventSource {} is not aws:s3",
                quoted_or_missing(source)
            ));
            continue;
        }

        // Only version 2 is documented; a new major version could move the
        // fields we read, so it is refused rather than guessed at.
        let version = req_str(record, "eventVersion", "Records[].eventVersion", at)?;
        if !is_event_version_2(version) {
            return Err(NotificationError::BadField {
                field: "Records[].eventVersion",
                reason: format!("record {i}: unsupported version {version:?}, expected 2.x"),
            });
        }

        let name = req_str(record, "eventName", "Records[].eventName", at)?;
        if !name.starts_with("ObjectCreated:") {
            ignored.push(format!(
                "record {i}: eventName {name:?} does not create an object"
            ));
            continue;
        }

        let region = opt_str(record, "awsRegion", "Records[].awsRegion", at)?;
        let s3 = req_obj(record, "s3", "Records[].s3", at)?;
        let bucket = req_obj(s3, "bucket", "Records[].s3.bucket", at)?;
        let bucket = req_str(bucket, "name", "Records[].s3.bucket.name", at)?;
        let object = req_obj(s3, "object", "Records[].s3.object", at)?;
        let raw_key = req_str(object, "key", "Records[].s3.object.key", at)?;
        let key = decode_form_key(raw_key)?;
        if key.is_empty() {
            return Err(empty_field("Records[].s3.object.key", at));
        }
        objects.push(ObjectRef {
            bucket: non_empty(bucket, "Records[].s3.bucket.name", at)?,
            key,
            region: region.map(str::to_owned),
            size: opt_u64(object, "size", "Records[].s3.object.size", at)?,
            etag: owned(opt_str(object, "eTag", "Records[].s3.object.eTag", at)?),
            version_id: owned(opt_str(
                object,
                "versionId",
                "Records[].s3.object.versionId",
                at,
            )?),
            sequencer: owned(opt_str(
                object,
                "sequencer",
                "Records[].s3.object.sequencer",
                at,
            )?),
        });
    }
    Ok(Notification::Objects {
        shape: NotificationShape::S3Event,
        via_sns,
        objects,
        ignored,
    })
}

fn cloudtrail(object: &Object, via_sns: bool) -> Result<Notification, NotificationError> {
    let bucket = req_str(object, "s3Bucket", "s3Bucket", None)?;
    let bucket = non_empty(bucket, "s3Bucket", None)?;
    let keys = object
        .get("s3ObjectKey")
        .and_then(Value::as_array)
        .ok_or_else(|| NotificationError::BadField {
            field: "s3ObjectKey",
            reason: "is not an array".to_owned(),
        })?;
    let mut objects = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        // CloudTrail sends keys verbatim, unlike S3 event notifications.
        let key = match key {
            Value::String(k) if !k.is_empty() => k,
            Value::String(_) => {
                return Err(NotificationError::BadField {
                    field: "s3ObjectKey[]",
                    reason: format!("element {i} is empty"),
                })
            }
            other => {
                return Err(NotificationError::BadField {
                    field: "s3ObjectKey[]",
                    reason: format!("element {i} is a JSON {}, not a string", json_type(other)),
                })
            }
        };
        objects.push(ObjectRef {
            bucket: bucket.clone(),
            key: key.clone(),
            region: None,
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
        });
    }
    Ok(Notification::Objects {
        shape: NotificationShape::CloudTrail,
        via_sns,
        objects,
        ignored: Vec::new(),
    })
}

fn eventbridge(event: &Object, via_sns: bool) -> Result<Notification, NotificationError> {
    let detail_type = req_str(event, "detail-type", "detail-type", None)?;
    if detail_type != "Object Created" {
        return Ok(Notification::Ignored {
            reason: format!("EventBridge detail-type {detail_type:?} does not create an object"),
        });
    }
    let region = opt_str(event, "region", "region", None)?;
    let detail = req_obj(event, "detail", "detail", None)?;
    let bucket = req_obj(detail, "bucket", "detail.bucket", None)?;
    let bucket = req_str(bucket, "name", "detail.bucket.name", None)?;
    let object = req_obj(detail, "object", "detail.object", None)?;
    // EventBridge delivers keys verbatim, unlike S3 event notifications.
    let key = req_str(object, "key", "detail.object.key", None)?;
    let object_ref = ObjectRef {
        bucket: non_empty(bucket, "detail.bucket.name", None)?,
        key: non_empty(key, "detail.object.key", None)?,
        region: region.map(str::to_owned),
        size: opt_u64(object, "size", "detail.object.size", None)?,
        etag: owned(opt_str(object, "etag", "detail.object.etag", None)?),
        version_id: owned(opt_str(
            object,
            "version-id",
            "detail.object.version-id",
            None,
        )?),
        sequencer: owned(opt_str(
            object,
            "sequencer",
            "detail.object.sequencer",
            None,
        )?),
    };
    Ok(Notification::Objects {
        shape: NotificationShape::EventBridge,
        via_sns,
        objects: vec![object_ref],
        ignored: Vec::new(),
    })
}

/// `2`, `2.0`, `2.1`, `2.2`, … — every minor version only adds fields.
fn is_event_version_2(version: &str) -> bool {
    match version.split_once('.') {
        None => version == "2",
        Some((major, minor)) => {
            major == "2" && !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

/// S3 event notifications carry keys form-urlencoded: `+` is a space and
/// `%XX` a byte, and the bytes are UTF-8. `form_urlencoded::parse` is not
/// used because it replaces invalid UTF-8 instead of reporting it, and would
/// split keys on `&` and `=`.
fn decode_form_key(raw: &str) -> Result<String, NotificationError> {
    let bad = |reason| NotificationError::BadKeyEncoding {
        key: raw.to_owned(),
        reason,
    };
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&b| hex_value(b));
                let lo = bytes.get(i + 2).and_then(|&b| hex_value(b));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    // S3 always escapes a literal `%`, so a bare one means
                    // the key was mangled and fetching it would 404 or worse.
                    return Err(bad("`%` is not followed by two hex digits"));
                };
                out.push((hi << 4) | lo);
                i += 3;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad("decoded bytes are not UTF-8"))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Prefix for field errors inside `Records[]`, so the index of the bad record
/// is in the message.
fn locate(at: Option<usize>, reason: &str) -> String {
    match at {
        Some(i) => format!("record {i}: {reason}"),
        None => reason.to_owned(),
    }
}

fn missing(field: &'static str, at: Option<usize>) -> NotificationError {
    NotificationError::BadField {
        field,
        reason: locate(at, "is missing"),
    }
}

fn empty_field(field: &'static str, at: Option<usize>) -> NotificationError {
    NotificationError::BadField {
        field,
        reason: locate(at, "is empty"),
    }
}

fn wrong_type(
    field: &'static str,
    at: Option<usize>,
    want: &str,
    got: &Value,
) -> NotificationError {
    NotificationError::BadField {
        field,
        reason: locate(
            at,
            &format!("is a JSON {}, expected {want}", json_type(got)),
        ),
    }
}

/// JSON `null` counts as absent: producers differ on omitting vs nulling.
fn present<'v>(object: &'v Object, name: &str) -> Option<&'v Value> {
    object.get(name).filter(|v| !v.is_null())
}

fn opt_str<'v>(
    object: &'v Object,
    name: &str,
    field: &'static str,
    at: Option<usize>,
) -> Result<Option<&'v str>, NotificationError> {
    match present(object, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(field, at, "a string", other)),
    }
}

fn req_str<'v>(
    object: &'v Object,
    name: &str,
    field: &'static str,
    at: Option<usize>,
) -> Result<&'v str, NotificationError> {
    opt_str(object, name, field, at)?.ok_or_else(|| missing(field, at))
}

fn req_obj<'v>(
    object: &'v Object,
    name: &str,
    field: &'static str,
    at: Option<usize>,
) -> Result<&'v Object, NotificationError> {
    match present(object, name) {
        None => Err(missing(field, at)),
        Some(Value::Object(o)) => Ok(o),
        Some(other) => Err(wrong_type(field, at, "an object", other)),
    }
}

fn opt_u64(
    object: &Object,
    name: &str,
    field: &'static str,
    at: Option<usize>,
) -> Result<Option<u64>, NotificationError> {
    match present(object, name) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| wrong_type(field, at, "a non-negative integer", value)),
    }
}

fn non_empty(
    value: &str,
    field: &'static str,
    at: Option<usize>,
) -> Result<String, NotificationError> {
    if value.is_empty() {
        Err(empty_field(field, at))
    } else {
        Ok(value.to_owned())
    }
}

fn owned(value: Option<&str>) -> Option<String> {
    value.map(str::to_owned)
}

fn quoted_or_missing(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_owned(), |v| format!("{v:?}"))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Short, bounded summary of an unrecognised object for logs: its first few
/// keys, truncated, since the body is untrusted and may be huge.
fn describe(object: &Object) -> String {
    const MAX_KEYS: usize = 8;
    const MAX_KEY_CHARS: usize = 40;
    // Sorted so the text does not depend on serde_json's map ordering.
    let mut sorted: Vec<&String> = object.keys().collect();
    sorted.sort_unstable();
    let mut keys: Vec<String> = sorted
        .into_iter()
        .take(MAX_KEYS)
        .map(|k| {
            let short: String = k.chars().take(MAX_KEY_CHARS).collect();
            if short.len() < k.len() {
                format!("{short:?}…")
            } else {
                format!("{short:?}")
            }
        })
        .collect();
    if object.len() > MAX_KEYS {
        keys.push(format!("… {} more", object.len() - MAX_KEYS));
    }
    if keys.is_empty() {
        "empty object".to_owned()
    } else {
        format!("object with keys [{}]", keys.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn s3_record(event_name: &str, key: &str) -> Value {
        json!({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2024-05-01T12:00:00.000Z",
            "eventName": event_name,
            "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "203.0.113.7"},
            "responseElements": {
                "x-amz-request-id": "C3D13FE58DE4C810",
                "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "trailhose",
                "bucket": {
                    "name": "trail-bucket",
                    "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                    "arn": "arn:aws:s3:::trail-bucket"
                },
                "object": {
                    "key": key,
                    "size": 1024,
                    "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                    "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
                    "sequencer": "0055AED6DCD90281E5"
                }
            }
        })
    }

    fn s3_event_body(records: Vec<Value>) -> String {
        json!({ "Records": records }).to_string()
    }

    fn sns_envelope(message: &str) -> String {
        json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:111122223333:trail-topic",
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": "2024-05-01T12:00:01.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:111122223333:trail-topic:example"
        })
        .to_string()
    }

    const CLOUDTRAIL_BODY: &str = r#"{"s3Bucket":"trail-bucket","s3ObjectKey":["AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/111122223333_CloudTrail_us-east-1_20240501T1200Z_abcdefghijklmnop.json.gz","AWSLogs/111122223333/CloudTrail/eu-west-1/2024/05/01/111122223333_CloudTrail_eu-west-1_20240501T1200Z_ABCDEFGHIJKLMNOP.json.gz","AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/key with+plus%20.json.gz"]}"#;

    const TEST_EVENT_BODY: &str = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2014-10-13T15:57:02.089Z","Bucket":"bucketname","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}"#;

    fn eventbridge_body(detail_type: &str) -> String {
        json!({
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": detail_type,
            "source": "aws.s3",
            "account": "111122223333",
            "time": "2021-11-12T00:00:00Z",
            "region": "ca-central-1",
            "resources": ["arn:aws:s3:::example-bucket"],
            "detail": {
                "version": "0",
                "bucket": {"name": "example-bucket"},
                "object": {
                    "key": "AWSLogs/my file+x.json.gz",
                    "size": 5,
                    "etag": "b1946ac92492d2347c6235b4d2611184",
                    "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                    "sequencer": "617f08299329d189"
                },
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": "123456789012",
                "source-ip-address": "1.2.3.4",
                "reason": "PutObject"
            }
        })
        .to_string()
    }

    fn objects_of(body: &str) -> (NotificationShape, bool, Vec<ObjectRef>, Vec<String>) {
        match parse_notification(body) {
            Ok(Notification::Objects {
                shape,
                via_sns,
                objects,
                ignored,
            }) => (shape, via_sns, objects, ignored),
            other => panic!("expected objects from {body}, got {other:?}"),
        }
    }

    fn error(body: &str) -> NotificationError {
        match parse_notification(body) {
            Err(e) => e,
            Ok(n) => panic!("expected an error from {body}, got {n:?}"),
        }
    }

    fn single_key(raw: &str) -> Result<String, NotificationError> {
        match parse_notification(&s3_event_body(vec![s3_record("ObjectCreated:Put", raw)]))? {
            Notification::Objects { mut objects, .. } if objects.len() == 1 => {
                Ok(objects.remove(0).key)
            }
            other => panic!("expected one object, got {other:?}"),
        }
    }

    #[test]
    fn direct_s3_event() {
        let body = s3_event_body(vec![s3_record(
            "ObjectCreated:Put",
            "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/f.json.gz",
        )]);
        let (shape, via_sns, objects, ignored) = objects_of(&body);
        assert_eq!(shape, NotificationShape::S3Event);
        assert!(!via_sns);
        assert!(ignored.is_empty());
        assert_eq!(
            objects,
            vec![ObjectRef {
                bucket: "trail-bucket".to_owned(),
                key: "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/f.json.gz".to_owned(),
                region: Some("us-east-1".to_owned()),
                size: Some(1024),
                etag: Some("d41d8cd98f00b204e9800998ecf8427e".to_owned()),
                version_id: Some("096fKKXTRTtl3on89fVO.nfljtsv6qko".to_owned()),
                sequencer: Some("0055AED6DCD90281E5".to_owned()),
            }]
        );
    }

    #[test]
    fn s3_event_optional_object_fields() {
        let mut record = s3_record("ObjectCreated:CompleteMultipartUpload", "k");
        if let Some(object) = record
            .pointer_mut("/s3/object")
            .and_then(Value::as_object_mut)
        {
            object.remove("size");
            object.remove("eTag");
            object.insert("versionId".to_owned(), Value::Null);
            object.remove("sequencer");
        }
        if let Some(record) = record.as_object_mut() {
            record.remove("awsRegion");
        }
        let (_, _, objects, _) = objects_of(&s3_event_body(vec![record]));
        assert_eq!(
            objects,
            vec![ObjectRef {
                bucket: "trail-bucket".to_owned(),
                key: "k".to_owned(),
                region: None,
                size: None,
                etag: None,
                version_id: None,
                sequencer: None,
            }]
        );
    }

    #[test]
    fn form_encoded_keys_are_decoded() {
        assert_eq!(
            single_key("red+flower.jpg"),
            Ok("red flower.jpg".to_owned())
        );
        assert_eq!(single_key("a%2Bb"), Ok("a+b".to_owned()));
        assert_eq!(single_key("a%2bb"), Ok("a+b".to_owned()));
        assert_eq!(
            single_key("caf%C3%A9%2F%E6%97%A5"),
            Ok("café/日".to_owned())
        );
        assert_eq!(single_key("%F0%9F%98%80.json"), Ok("😀.json".to_owned()));
        assert_eq!(single_key("a%26b%3Dc"), Ok("a&b=c".to_owned()));
        assert_eq!(single_key("100%25"), Ok("100%".to_owned()));
        // Already-decoded non-ASCII passes through untouched.
        assert_eq!(single_key("日本.json"), Ok("日本.json".to_owned()));
    }

    #[test]
    fn badly_encoded_keys_are_errors() {
        for (raw, reason) in [
            ("%C3%28", "decoded bytes are not UTF-8"),
            ("%FF", "decoded bytes are not UTF-8"),
            ("%E6%97", "decoded bytes are not UTF-8"),
            ("100%", "`%` is not followed by two hex digits"),
            ("a%2", "`%` is not followed by two hex digits"),
            ("a%zzb", "`%` is not followed by two hex digits"),
        ] {
            assert_eq!(
                single_key(raw),
                Err(NotificationError::BadKeyEncoding {
                    key: raw.to_owned(),
                    reason
                }),
                "{raw}"
            );
        }
    }

    #[test]
    fn empty_key_is_an_error() {
        assert_eq!(
            single_key(""),
            Err(NotificationError::BadField {
                field: "Records[].s3.object.key",
                reason: "record 0: is empty".to_owned(),
            })
        );
    }

    #[test]
    fn multiple_records_keep_order_and_report_removals() {
        let body = s3_event_body(vec![
            s3_record("ObjectCreated:Put", "one"),
            s3_record("ObjectRemoved:Delete", "gone"),
            s3_record("ObjectCreated:Copy", "two"),
            s3_record("s3:ReducedRedundancyLostObject", "lost"),
        ]);
        let (_, _, objects, ignored) = objects_of(&body);
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["one", "two"]);
        assert_eq!(
            ignored,
            [
                "record 1: eventName \"ObjectRemoved:Delete\" does not create an object",
                "record 3: eventName \"s3:ReducedRedundancyLostObject\" does not create an object",
            ]
        );
    }

    #[test]
    fn only_removals_give_no_objects() {
        let body = s3_event_body(vec![s3_record("ObjectRemoved:DeleteMarkerCreated", "k")]);
        let (shape, _, objects, ignored) = objects_of(&body);
        assert_eq!(shape, NotificationShape::S3Event);
        assert!(objects.is_empty());
        assert_eq!(ignored.len(), 1);
        assert!(ignored[0].contains("ObjectRemoved:DeleteMarkerCreated"));
    }

    #[test]
    fn empty_records_array() {
        let (shape, via_sns, objects, ignored) = objects_of(r#"{"Records":[]}"#);
        assert_eq!(shape, NotificationShape::S3Event);
        assert!(!via_sns);
        assert!(objects.is_empty());
        assert!(ignored.is_empty());
    }

    #[test]
    fn mixed_event_sources_skip_foreign_records() {
        let mut foreign = s3_record("ObjectCreated:Put", "x");
        if let Some(r) = foreign.as_object_mut() {
            r.insert("eventSource".to_owned(), json!("aws:sqs"));
        }
        let mut sourceless = s3_record("ObjectCreated:Put", "y");
        if let Some(r) = sourceless.as_object_mut() {
            r.remove("eventSource");
        }
        let body = s3_event_body(vec![
            foreign,
            s3_record("ObjectCreated:Put", "k"),
            sourceless,
        ]);
        let (_, _, objects, ignored) = objects_of(&body);
        assert_eq!(objects.len(), 1);
        assert_eq!(
            ignored,
            [
                "record 0: eventSource \"aws:sqs\" is not aws:s3",
                "record 2: eventSource missing is not aws:s3",
            ]
        );
    }

    #[test]
    fn cloudtrail_log_file_is_not_an_s3_event() {
        let body = r#"{"Records":[{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"PutObject"}]}"#;
        assert_eq!(
            error(body),
            NotificationError::UnknownShape("object with keys [\"Records\"]".to_owned())
        );
    }

    #[test]
    fn missing_and_mistyped_s3_fields_are_named() {
        let cases: [(&str, &'static str, &str); 7] = [
            (
                "/s3/object/key",
                "Records[].s3.object.key",
                "record 0: is missing",
            ),
            ("/s3/object", "Records[].s3.object", "record 0: is missing"),
            (
                "/s3/bucket/name",
                "Records[].s3.bucket.name",
                "record 0: is missing",
            ),
            ("/s3/bucket", "Records[].s3.bucket", "record 0: is missing"),
            ("/s3", "Records[].s3", "record 0: is missing"),
            ("/eventName", "Records[].eventName", "record 0: is missing"),
            (
                "/eventVersion",
                "Records[].eventVersion",
                "record 0: is missing",
            ),
        ];
        for (pointer, field, reason) in cases {
            let mut record = s3_record("ObjectCreated:Put", "k");
            let (parent, leaf) = pointer.rsplit_once('/').unwrap_or(("", pointer));
            if let Some(p) = record.pointer_mut(parent).and_then(Value::as_object_mut) {
                p.remove(leaf);
            }
            assert_eq!(
                error(&s3_event_body(vec![record])),
                NotificationError::BadField {
                    field,
                    reason: reason.to_owned()
                },
                "{pointer}"
            );
        }

        let mut record = s3_record("ObjectCreated:Put", "k");
        if let Some(o) = record
            .pointer_mut("/s3/object")
            .and_then(Value::as_object_mut)
        {
            o.insert("size".to_owned(), json!("12"));
        }
        assert_eq!(
            error(&s3_event_body(vec![
                s3_record("ObjectCreated:Put", "ok"),
                record
            ])),
            NotificationError::BadField {
                field: "Records[].s3.object.size",
                reason: "record 1: is a JSON string, expected a non-negative integer".to_owned()
            }
        );

        let mut record = s3_record("ObjectCreated:Put", "k");
        if let Some(o) = record
            .pointer_mut("/s3/object")
            .and_then(Value::as_object_mut)
        {
            o.insert("key".to_owned(), json!(42));
        }
        assert_eq!(
            error(&s3_event_body(vec![record])),
            NotificationError::BadField {
                field: "Records[].s3.object.key",
                reason: "record 0: is a JSON number, expected a string".to_owned()
            }
        );
    }

    #[test]
    fn non_object_record_is_an_error() {
        let body = r#"{"Records":[7, {"eventSource":"aws:s3"}]}"#;
        assert_eq!(
            error(body),
            NotificationError::BadField {
                field: "Records[]",
                reason: "record 0 is a JSON number, not an object".to_owned()
            }
        );
    }

    #[test]
    fn event_versions() {
        for version in ["2.0", "2.1", "2.2", "2.10", "2"] {
            let mut record = s3_record("ObjectCreated:Put", "k");
            if let Some(r) = record.as_object_mut() {
                r.insert("eventVersion".to_owned(), json!(version));
            }
            assert_eq!(
                objects_of(&s3_event_body(vec![record])).2.len(),
                1,
                "{version}"
            );
        }
        for version in ["1.0", "3.0", "2.", "2.x", "20.1", ""] {
            let mut record = s3_record("ObjectCreated:Put", "k");
            if let Some(r) = record.as_object_mut() {
                r.insert("eventVersion".to_owned(), json!(version));
            }
            assert_eq!(
                error(&s3_event_body(vec![record])),
                NotificationError::BadField {
                    field: "Records[].eventVersion",
                    reason: format!("record 0: unsupported version {version:?}, expected 2.x"),
                },
                "{version}"
            );
        }
    }

    #[test]
    fn test_event() {
        assert_eq!(
            parse_notification(TEST_EVENT_BODY),
            Ok(Notification::TestEvent {
                bucket: Some("bucketname".to_owned())
            })
        );
    }

    #[test]
    fn moto_test_event_without_request_ids() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T00:00:00.000Z","Bucket":"b"}"#;
        assert_eq!(
            parse_notification(body),
            Ok(Notification::TestEvent {
                bucket: Some("b".to_owned())
            })
        );
        assert_eq!(
            parse_notification(r#"{"Event":"s3:TestEvent"}"#),
            Ok(Notification::TestEvent { bucket: None })
        );
    }

    #[test]
    fn sns_wrapped_s3_event() {
        let inner = s3_event_body(vec![
            s3_record("ObjectCreated:Put", "AWSLogs/a+b%2Bc.json.gz"),
            s3_record("ObjectRemoved:Delete", "old"),
        ]);
        let (shape, via_sns, objects, ignored) = objects_of(&sns_envelope(&inner));
        assert_eq!(shape, NotificationShape::S3Event);
        assert!(via_sns);
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].key, "AWSLogs/a b+c.json.gz");
        assert_eq!(objects[0].bucket, "trail-bucket");
        assert_eq!(ignored.len(), 1);
    }

    #[test]
    fn sns_wrapped_cloudtrail_notification_with_several_keys() {
        let (shape, via_sns, objects, ignored) = objects_of(&sns_envelope(CLOUDTRAIL_BODY));
        assert_eq!(shape, NotificationShape::CloudTrail);
        assert!(via_sns);
        assert!(ignored.is_empty());
        assert_eq!(objects.len(), 3);
        assert!(objects
            .iter()
            .all(|o| o.bucket == "trail-bucket" && o.region.is_none()));
        assert_eq!(
            objects[1].key,
            "AWSLogs/111122223333/CloudTrail/eu-west-1/2024/05/01/111122223333_CloudTrail_eu-west-1_20240501T1200Z_ABCDEFGHIJKLMNOP.json.gz"
        );
        // CloudTrail keys are not URL-encoded, so `+` and `%20` stay literal.
        assert_eq!(
            objects[2].key,
            "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/key with+plus%20.json.gz"
        );
    }

    #[test]
    fn raw_cloudtrail_notification() {
        let (shape, via_sns, objects, _) = objects_of(CLOUDTRAIL_BODY);
        assert_eq!(shape, NotificationShape::CloudTrail);
        assert!(!via_sns);
        assert_eq!(objects.len(), 3);
        assert_eq!(objects[0].size, None);
        assert_eq!(objects[0].sequencer, None);
    }

    #[test]
    fn cloudtrail_notification_errors() {
        assert_eq!(
            error(r#"{"s3Bucket":"b","s3ObjectKey":"k"}"#),
            NotificationError::BadField {
                field: "s3ObjectKey",
                reason: "is not an array".to_owned()
            }
        );
        assert_eq!(
            error(r#"{"s3Bucket":"b","s3ObjectKey":["k",null]}"#),
            NotificationError::BadField {
                field: "s3ObjectKey[]",
                reason: "element 1 is a JSON null, not a string".to_owned()
            }
        );
        assert_eq!(
            error(r#"{"s3Bucket":7,"s3ObjectKey":[]}"#),
            NotificationError::BadField {
                field: "s3Bucket",
                reason: "is a JSON number, expected a string".to_owned()
            }
        );
        assert_eq!(
            error(r#"{"s3Bucket":"","s3ObjectKey":["k"]}"#),
            NotificationError::BadField {
                field: "s3Bucket",
                reason: "is empty".to_owned()
            }
        );
        assert_eq!(
            error(r#"{"s3Bucket":"b","s3ObjectKey":[""]}"#),
            NotificationError::BadField {
                field: "s3ObjectKey[]",
                reason: "element 0 is empty".to_owned()
            }
        );
        let (_, _, objects, _) = objects_of(r#"{"s3Bucket":"b","s3ObjectKey":[]}"#);
        assert!(objects.is_empty());
    }

    #[test]
    fn sns_wrapped_test_event() {
        assert_eq!(
            parse_notification(&sns_envelope(TEST_EVENT_BODY)),
            Ok(Notification::TestEvent {
                bucket: Some("bucketname".to_owned())
            })
        );
    }

    #[test]
    fn sns_envelope_with_message_attributes_and_no_subject() {
        let body = json!({
            "Type": "Notification",
            "MessageId": "m",
            "TopicArn": "arn:aws:sns:us-east-1:111122223333:t",
            "Message": CLOUDTRAIL_BODY,
            "Timestamp": "2024-05-01T12:00:01.000Z",
            "MessageAttributes": {"k": {"Type": "String", "Value": "v"}}
        })
        .to_string();
        assert_eq!(objects_of(&body).0, NotificationShape::CloudTrail);
    }

    #[test]
    fn sns_subscription_handshakes_are_ignored() {
        for kind in ["SubscriptionConfirmation", "UnsubscribeConfirmation"] {
            let body = json!({
                "Type": kind,
                "MessageId": "m",
                "Token": "t",
                "TopicArn": "arn:aws:sns:us-east-1:111122223333:t",
                "Message": "You have chosen to subscribe to the topic",
                "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
            })
            .to_string();
            assert_eq!(
                parse_notification(&body),
                Ok(Notification::Ignored {
                    reason: format!("SNS {kind} message")
                })
            );
        }
    }

    #[test]
    fn nested_sns_is_an_error() {
        let twice = sns_envelope(&sns_envelope(CLOUDTRAIL_BODY));
        assert_eq!(error(&twice), NotificationError::NestedSns);
        let handshake_inside = sns_envelope(r#"{"Type":"SubscriptionConfirmation"}"#);
        assert_eq!(error(&handshake_inside), NotificationError::NestedSns);
    }

    #[test]
    fn sns_message_problems() {
        assert_eq!(
            error(&sns_envelope("not json")),
            NotificationError::BadField {
                field: "Message",
                reason: "is not JSON: expected ident at line 1 column 2".to_owned()
            }
        );
        assert_eq!(
            error(&sns_envelope("[1]")),
            NotificationError::BadField {
                field: "Message",
                reason: "is a JSON array, not an object".to_owned()
            }
        );
        assert_eq!(
            error(&sns_envelope(r#"{"hello":"world"}"#)),
            NotificationError::UnknownShape("object with keys [\"hello\"]".to_owned())
        );
        assert_eq!(
            error(r#"{"Type":"Notification"}"#),
            NotificationError::BadField {
                field: "Message",
                reason: "is missing".to_owned()
            }
        );
        assert_eq!(
            error(r#"{"Type":"Notification","Message":{"Records":[]}}"#),
            NotificationError::BadField {
                field: "Message",
                reason: "is a JSON object, expected a string".to_owned()
            }
        );
    }

    #[test]
    fn eventbridge_object_created() {
        let (shape, via_sns, objects, ignored) = objects_of(&eventbridge_body("Object Created"));
        assert_eq!(shape, NotificationShape::EventBridge);
        assert!(!via_sns);
        assert!(ignored.is_empty());
        assert_eq!(
            objects,
            vec![ObjectRef {
                bucket: "example-bucket".to_owned(),
                // Raw, not form-decoded.
                key: "AWSLogs/my file+x.json.gz".to_owned(),
                region: Some("ca-central-1".to_owned()),
                size: Some(5),
                etag: Some("b1946ac92492d2347c6235b4d2611184".to_owned()),
                version_id: Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e".to_owned()),
                sequencer: Some("617f08299329d189".to_owned()),
            }]
        );
    }

    #[test]
    fn eventbridge_via_sns() {
        let (shape, via_sns, objects, _) =
            objects_of(&sns_envelope(&eventbridge_body("Object Created")));
        assert_eq!(shape, NotificationShape::EventBridge);
        assert!(via_sns);
        assert_eq!(objects.len(), 1);
    }

    #[test]
    fn eventbridge_other_detail_types_are_ignored() {
        assert_eq!(
            parse_notification(&eventbridge_body("Object Deleted")),
            Ok(Notification::Ignored {
                reason: "EventBridge detail-type \"Object Deleted\" does not create an object"
                    .to_owned()
            })
        );
    }

    #[test]
    fn eventbridge_missing_key_is_named() {
        let mut event: Value =
            serde_json::from_str(&eventbridge_body("Object Created")).unwrap_or_default();
        if let Some(o) = event
            .pointer_mut("/detail/object")
            .and_then(Value::as_object_mut)
        {
            o.remove("key");
        }
        assert_eq!(
            error(&event.to_string()),
            NotificationError::BadField {
                field: "detail.object.key",
                reason: "is missing".to_owned()
            }
        );
        let minimal = r#"{"source":"aws.s3","detail-type":"Object Created","detail":{"bucket":{"name":"b"},"object":{"key":"k"}}}"#;
        assert_eq!(
            objects_of(minimal).2,
            vec![ObjectRef {
                bucket: "b".to_owned(),
                key: "k".to_owned(),
                region: None,
                size: None,
                etag: None,
                version_id: None,
                sequencer: None,
            }]
        );
    }

    #[test]
    fn other_eventbridge_sources_are_unknown() {
        let body = r#"{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":{}}"#;
        assert!(matches!(error(body), NotificationError::UnknownShape(_)));
    }

    #[test]
    fn unknown_object_describes_its_keys() {
        assert_eq!(
            error(r#"{"foo":1,"bar":{"baz":2}}"#),
            NotificationError::UnknownShape("object with keys [\"bar\", \"foo\"]".to_owned())
        );
        assert_eq!(
            error("{}"),
            NotificationError::UnknownShape("empty object".to_owned())
        );
        let many: Map<String, Value> = (0..20).map(|i| (format!("k{i:02}"), json!(i))).collect();
        let description = match error(&Value::Object(many).to_string()) {
            NotificationError::UnknownShape(d) => d,
            other => panic!("{other:?}"),
        };
        assert!(description.ends_with("… 12 more]"), "{description}");
        let long_key = format!(r#"{{"{}":1}}"#, "x".repeat(1000));
        let description = error(&long_key).to_string();
        assert!(description.len() < 120, "{description}");
    }

    #[test]
    fn not_json_and_not_objects() {
        assert!(matches!(error("not json"), NotificationError::NotJson(_)));
        assert!(matches!(error(""), NotificationError::NotJson(_)));
        assert!(matches!(
            error("{\"Records\":"),
            NotificationError::NotJson(_)
        ));
        assert!(matches!(
            error("{} trailing"),
            NotificationError::NotJson(_)
        ));
        assert_eq!(error("[]"), NotificationError::NotAnObject("array"));
        assert_eq!(
            error("[{\"Records\":[]}]"),
            NotificationError::NotAnObject("array")
        );
        assert_eq!(error("\"s\""), NotificationError::NotAnObject("string"));
        assert_eq!(error("42"), NotificationError::NotAnObject("number"));
        assert_eq!(error("null"), NotificationError::NotAnObject("null"));
        assert_eq!(error("true"), NotificationError::NotAnObject("boolean"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(error(&deep), NotificationError::NotJson(_)));
        let deep = format!(
            r#"{{"a":{}1{}}}"#,
            "{\"b\":".repeat(100_000),
            "}".repeat(100_000)
        );
        assert!(matches!(error(&deep), NotificationError::NotJson(_)));
    }

    #[test]
    fn precedence_between_overlapping_shapes() {
        // SNS envelope first, even if it also carries other shape markers.
        let body =
            json!({"Type":"Notification","Message":TEST_EVENT_BODY,"Records":[]}).to_string();
        assert_eq!(
            parse_notification(&body),
            Ok(Notification::TestEvent {
                bucket: Some("bucketname".to_owned())
            })
        );
        // Test event before Records.
        let body = r#"{"Event":"s3:TestEvent","Records":[]}"#;
        assert_eq!(
            parse_notification(body),
            Ok(Notification::TestEvent { bucket: None })
        );
        // Records before CloudTrail notification.
        let body = r#"{"Records":[],"s3Bucket":"b","s3ObjectKey":["k"]}"#;
        assert_eq!(objects_of(body).0, NotificationShape::S3Event);
        // CloudTrail notification before EventBridge.
        let body = r#"{"s3Bucket":"b","s3ObjectKey":["k"],"source":"aws.s3","detail-type":"Object Created"}"#;
        assert_eq!(objects_of(body).0, NotificationShape::CloudTrail);
    }

    #[test]
    fn other_sns_types_are_not_unwrapped() {
        let body = r#"{"Type":"Something","Message":"{}"}"#;
        assert!(matches!(error(body), NotificationError::UnknownShape(_)));
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert_eq!(
            NotificationError::BadField {
                field: "Records[].s3.object.key",
                reason: "record 0: is missing".to_owned()
            }
            .to_string(),
            "field `Records[].s3.object.key` record 0: is missing"
        );
        assert_eq!(
            NotificationError::NotAnObject("array").to_string(),
            "message body is a JSON array, not an object"
        );
    }

    #[test]
    fn sequencer_ordering() {
        assert_eq!(
            compare_sequencer("0055AED6DCD90281E5", "0055AED6DCD90281E5"),
            Ordering::Equal
        );
        assert_eq!(
            compare_sequencer("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
            Ordering::Less
        );
        assert_eq!(
            compare_sequencer("0055AED6DCD90281F0", "0055AED6DCD90281E6"),
            Ordering::Greater
        );
        // Shorter is right-padded with zeros, so trailing zeros don't matter…
        assert_eq!(
            compare_sequencer("0055AED6DC", "0055AED6DC00"),
            Ordering::Equal
        );
        // …but a longer one with any non-zero tail is later.
        assert_eq!(
            compare_sequencer("0055AED6DC", "0055AED6DC01"),
            Ordering::Less
        );
        assert_eq!(
            compare_sequencer("0055AED6DD", "0055AED6DC99"),
            Ordering::Greater
        );
        assert_eq!(compare_sequencer("", ""), Ordering::Equal);
        assert_eq!(compare_sequencer("", "000"), Ordering::Equal);
        assert_eq!(compare_sequencer("", "1"), Ordering::Less);
        assert_eq!(
            compare_sequencer("0055aed6dc", "0055AED6DC"),
            Ordering::Equal
        );
        assert_eq!(compare_sequencer("A", "9"), Ordering::Greater);
    }

    #[test]
    fn shape_labels() {
        assert_eq!(NotificationShape::S3Event.as_str(), "s3_event");
        assert_eq!(NotificationShape::CloudTrail.as_str(), "cloudtrail");
        assert_eq!(NotificationShape::EventBridge.as_str(), "eventbridge");
    }

    fn valid_bodies() -> Vec<String> {
        vec![
            s3_event_body(vec![
                s3_record("ObjectCreated:Put", "a+b%2Bc%C3%A9"),
                s3_record("ObjectRemoved:Delete", "x"),
            ]),
            sns_envelope(&s3_event_body(vec![s3_record("ObjectCreated:Put", "k")])),
            sns_envelope(CLOUDTRAIL_BODY),
            CLOUDTRAIL_BODY.to_owned(),
            TEST_EVENT_BODY.to_owned(),
            sns_envelope(TEST_EVENT_BODY),
            eventbridge_body("Object Created"),
        ]
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Replace(usize, u8),
        Insert(usize, u8),
        Delete(usize),
        Truncate(usize),
    }

    fn edit_strategy() -> impl Strategy<Value = Edit> {
        // Bias towards bytes that matter to JSON and to key decoding.
        let byte = prop_oneof![
            any::<u8>(),
            prop::sample::select(b"{}[]\":,\\%+0aZ ".to_vec()),
        ];
        prop_oneof![
            (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
            (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<usize>().prop_map(Edit::Delete),
            any::<usize>().prop_map(Edit::Truncate),
        ]
    }

    fn apply(body: &str, edits: &[Edit]) -> String {
        let mut bytes = body.as_bytes().to_vec();
        for edit in edits {
            let len = bytes.len().max(1);
            match *edit {
                Edit::Replace(i, b) => {
                    if let Some(slot) = bytes.get_mut(i % len) {
                        *slot = b;
                    }
                }
                Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
                Edit::Delete(i) => {
                    if !bytes.is_empty() {
                        bytes.remove(i % len);
                    }
                }
                Edit::Truncate(i) => bytes.truncate(i % len),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_strings(body in ".{0,300}") {
            let _ = parse_notification(&body);
        }

        #[test]
        fn never_panics_on_json_like_strings(body in "[{}\\[\\]\":,a-zA-Z0-9%+ .\\\\-]{0,200}") {
            let _ = parse_notification(&body);
        }

        #[test]
        fn never_panics_on_mutated_valid_messages(
            which in 0usize..7,
            edits in prop::collection::vec(edit_strategy(), 1..8),
        ) {
            let bodies = valid_bodies();
            prop_assert_eq!(bodies.len(), 7);
            if let Some(body) = bodies.get(which) {
                prop_assert!(parse_notification(body).is_ok());
                let _ = parse_notification(&apply(body, &edits));
            }
        }

        #[test]
        fn any_key_round_trips_through_form_encoding(key in "\\PC{1,60}") {
            let encoded: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
            prop_assert_eq!(single_key(&encoded), Ok(key));
        }

        #[test]
        fn sequencer_padding_is_consistent(a in "[0-9A-F]{0,20}", b in "[0-9A-F]{0,20}") {
            let width = a.len().max(b.len());
            let pad = |s: &str| format!("{s:0<width$}");
            prop_assert_eq!(compare_sequencer(&a, &b), pad(&a).cmp(&pad(&b)));
            prop_assert_eq!(compare_sequencer(&a, &b), compare_sequencer(&b, &a).reverse());
        }
    }
}
