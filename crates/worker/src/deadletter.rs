//! The worker's dead-letter place: an SQS queue (the original body, the reason in message
//! attributes, so the message can be inspected and redriven), a local NDJSON file, or (for a
//! fleet whose disks are not durable) an S3 prefix holding one NDJSON.gz object per message —
//! a [`DeadLetterFile`] built remote by `trailhose_aws::open_source_dead_letters`. Either way
//! [`DeadLetterTarget::send`] returns only once the entry is stored, and the worker deletes the
//! message only after that.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;
use serde::Serialize;
use std::sync::Arc;
use trailhose_pipeline::deadletter::{now_rfc3339, DeadLetterFile};

/// Message attribute names set on SQS dead letters.
pub mod attr {
    pub const KIND: &str = "trailhose.kind";
    pub const REASON: &str = "trailhose.reason";
    pub const SOURCE_QUEUE: &str = "trailhose.source_queue";
    pub const MESSAGE_ID: &str = "trailhose.message_id";
    pub const RECEIVE_COUNT: &str = "trailhose.receive_count";
}

/// Longest reason kept in an attribute (SQS counts attributes against the message size).
pub const MAX_REASON_BYTES: usize = 4096;

/// One refused or failed message.
#[derive(Debug, Clone, Copy)]
pub struct MessageDeadLetter<'a> {
    pub kind: &'a str,
    pub reason: &'a str,
    pub queue_url: &'a str,
    pub message_id: &'a str,
    pub receive_count: u32,
    pub body: &'a str,
}

#[derive(Serialize)]
struct FileEntry<'a> {
    source: String,
    kind: &'a str,
    reason: &'a str,
    time: String,
    queue_url: &'a str,
    message_id: &'a str,
    receive_count: u32,
    body: &'a str,
}

#[derive(Clone)]
pub enum DeadLetterTarget {
    Sqs {
        client: aws_sdk_sqs::Client,
        queue_url: String,
    },
    /// A local file, or an `s3://` prefix (one object per message).
    File(Arc<DeadLetterFile>),
}

impl std::fmt::Debug for DeadLetterTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeadLetterTarget::Sqs { queue_url, .. } => write!(f, "sqs:{queue_url}"),
            DeadLetterTarget::File(file) if file.is_remote() => f.write_str(&file.describe()),
            DeadLetterTarget::File(file) => write!(f, "file:{}", file.describe()),
        }
    }
}

/// Keeps only characters SQS accepts in strings and cuts to `max` bytes on a char boundary.
pub fn sqs_safe(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let ok = matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            || c >= '\u{10000}';
        let c = if ok { c } else { '\u{FFFD}' };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

fn string_attr(value: &str) -> Result<MessageAttributeValue, String> {
    let v = sqs_safe(value, MAX_REASON_BYTES);
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(if v.is_empty() { "-".to_owned() } else { v })
        .build()
        .map_err(|e| e.to_string())
}

impl DeadLetterTarget {
    /// Records one message. An error means the message must not be deleted.
    pub async fn send(&self, entry: &MessageDeadLetter<'_>) -> Result<(), String> {
        match self {
            DeadLetterTarget::Sqs { client, queue_url } => {
                let count = MessageAttributeValue::builder()
                    .data_type("Number")
                    .string_value(entry.receive_count.to_string())
                    .build()
                    .map_err(|e| e.to_string())?;
                let body = if entry.body.is_empty() {
                    "(empty body)".to_owned()
                } else {
                    sqs_safe(entry.body, 1 << 20)
                };
                client
                    .send_message()
                    .queue_url(queue_url)
                    .message_body(body)
                    .message_attributes(attr::KIND, string_attr(entry.kind)?)
                    .message_attributes(attr::REASON, string_attr(entry.reason)?)
                    .message_attributes(attr::SOURCE_QUEUE, string_attr(entry.queue_url)?)
                    .message_attributes(attr::MESSAGE_ID, string_attr(entry.message_id)?)
                    .message_attributes(attr::RECEIVE_COUNT, count)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| DisplayErrorContext(&e).to_string())
            }
            DeadLetterTarget::File(file) => {
                let line = FileEntry {
                    source: format!("sqs message {}", entry.message_id),
                    kind: entry.kind,
                    reason: entry.reason,
                    time: now_rfc3339(),
                    queue_url: entry.queue_url,
                    message_id: entry.message_id,
                    receive_count: entry.receive_count,
                    body: entry.body,
                };
                file.write_json(&line).await.map_err(|e| e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_made_sqs_safe() {
        assert_eq!(sqs_safe("a\u{0}b\u{1}c", 100), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(sqs_safe("tab\tok\n", 100), "tab\tok\n");
        assert_eq!(sqs_safe("ééé", 5), "éé", "cut on a char boundary");
        assert_eq!(sqs_safe("🦀", 10), "🦀");
    }

    #[tokio::test]
    async fn file_entries_keep_body_and_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dl.ndjson");
        let target = DeadLetterTarget::File(Arc::new(DeadLetterFile::new(&path)));
        target
            .send(&MessageDeadLetter {
                kind: "bad_notification",
                reason: "message body is not JSON",
                queue_url: "http://q",
                message_id: "m-1",
                receive_count: 2,
                body: "garbage",
            })
            .await
            .expect("written");
        let text = std::fs::read_to_string(&path).expect("file");
        let v: serde_json::Value = serde_json::from_str(text.trim()).expect("json line");
        assert_eq!(v["kind"], "bad_notification");
        assert_eq!(v["body"], "garbage");
        assert_eq!(v["receive_count"], 2);
        assert_eq!(v["message_id"], "m-1");
    }
}
