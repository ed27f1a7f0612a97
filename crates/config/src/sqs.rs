//! `[source] type = "sqs"`: the SQS → S3 worker. Field names follow the SQS API where one
//! exists; ranges are the API's (see `problems`).

use serde::Deserialize;
use std::path::PathBuf;
use trailhose_core::keys::KeyKind;

/// The SQS source: a queue of S3 notifications and the buckets it may make the worker read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsSourceConfig {
    pub queue_url: String,
    /// Region of the queue (and the default for buckets); absent = the SDK's default chain
    /// (`AWS_REGION`, profile).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override for every AWS client (emulators such as moto or LocalStack).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Concurrent ReceiveMessage loops.
    #[serde(default = "d_receivers")]
    pub receivers: usize,
    /// Messages per ReceiveMessage, 1..=10.
    #[serde(default = "d_max_messages")]
    pub max_messages: u32,
    /// Long-poll wait, 0..=20 s.
    #[serde(default = "d_wait")]
    pub wait_time_seconds: u32,
    /// Visibility timeout set on receive and renewed by the heartbeat, 1..=43200 s.
    #[serde(default = "d_visibility")]
    pub visibility_timeout_seconds: u32,
    /// How often the heartbeat renews the visibility of a message in flight; must be below the
    /// visibility timeout. Absent = a third of it.
    #[serde(default)]
    pub heartbeat_seconds: Option<u32>,
    /// Visibility set on a message whose object failed with a retryable error (its next try);
    /// 0 = leave the current timeout to run out.
    #[serde(default = "d_retry_visibility")]
    pub retry_visibility_seconds: u32,
    /// Objects read at once (also bounds messages held in flight unless
    /// `max_messages_in_flight` is set).
    #[serde(default = "d_in_flight")]
    pub max_objects_in_flight: usize,
    /// Messages held until their objects are acknowledged; 0 = `max_objects_in_flight`. Raise
    /// it for sinks that acknowledge late (the archive: up to `max_file_seconds`): a waiting
    /// message costs a heartbeat, not memory.
    #[serde(default)]
    pub max_messages_in_flight: usize,
    /// Bytes all object readers may hold at once (splitter buffers with their partial records,
    /// chunks being built, simd-json passes), enforced: a reader that needs more waits. Part of
    /// it is kept for one reader at a time, so one record of `limits.max_record_bytes` always
    /// makes progress; it must be at least that reserve. 0 (the default) = the reserve plus
    /// every object slot's steady need (see `check-config`).
    #[serde(default)]
    pub memory_budget_bytes: u64,
    /// Poison guard: a message received this many times that still fails is dead-lettered.
    #[serde(default = "d_max_receive")]
    pub max_receive_count: u32,
    /// Time to finish in-flight work after SIGTERM/SIGINT before releasing the rest.
    #[serde(default = "d_grace")]
    pub shutdown_grace_seconds: u64,
    /// Recently delivered objects remembered to suppress redelivered notifications; 0 = off.
    #[serde(default = "d_dedup")]
    pub dedup_cache_size: usize,
    /// The buckets (and key prefixes) the worker may read. A message naming any other bucket
    /// is refused and dead-lettered.
    #[serde(default)]
    pub buckets: Vec<BucketConfig>,
    /// Which CloudTrail key kinds are read; the others are skipped (counted) before download.
    #[serde(default = "d_kinds")]
    pub kinds: Vec<KeyKindConfig>,
    /// Where refused and unreadable messages go; absent = the top-level `[dead_letter]` file.
    #[serde(default)]
    pub dead_letter: Option<SqsDeadLetterConfig>,
}

/// One allow-listed bucket.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    pub name: String,
    /// Key prefixes the worker may read; absent or empty = the whole bucket. Objects outside
    /// them are skipped and counted, never downloaded.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Role assumed (STS AssumeRole) to read this bucket, for cross-account buckets.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Bucket region when the notification does not say (CloudTrail's own SNS notification).
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyKindConfig {
    Log,
    Insight,
    Digest,
}

impl KeyKindConfig {
    pub fn kind(self) -> KeyKind {
        match self {
            KeyKindConfig::Log => KeyKind::Log,
            KeyKindConfig::Insight => KeyKind::Insight,
            KeyKindConfig::Digest => KeyKind::Digest,
        }
    }
}

/// The dead-letter place of the SQS source.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SqsDeadLetterConfig {
    /// SendMessage to a queue: the original body, the reason in message attributes.
    Sqs { queue_url: String },
    /// One JSON line per message in a local file.
    File { path: PathBuf },
    /// One NDJSON.gz object per message under `s3://bucket/prefix/`, written before the
    /// message is deleted (for a fleet whose local disks are not durable).
    S3 {
        url: String,
        /// `"aws:kms"` (with `kms_key_id`, or the bucket's AWS managed key) or `"AES256"`.
        #[serde(default)]
        sse: Option<String>,
        #[serde(default)]
        kms_key_id: Option<String>,
    },
}

fn d_receivers() -> usize {
    2
}
fn d_max_messages() -> u32 {
    10
}
fn d_wait() -> u32 {
    20
}
fn d_visibility() -> u32 {
    300
}
fn d_retry_visibility() -> u32 {
    30
}
fn d_in_flight() -> usize {
    8
}
fn d_max_receive() -> u32 {
    5
}
fn d_grace() -> u64 {
    30
}
fn d_dedup() -> usize {
    10_000
}
fn d_kinds() -> Vec<KeyKindConfig> {
    vec![KeyKindConfig::Log, KeyKindConfig::Insight]
}

/// Environment variables that override the file (`TRAILHOSE_…`), for containers.
pub const ENV_OVERRIDES: &[&str] = &[
    "TRAILHOSE_SQS_QUEUE_URL",
    "TRAILHOSE_SQS_REGION",
    "TRAILHOSE_ENDPOINT_URL",
    "TRAILHOSE_SQS_RECEIVERS",
    "TRAILHOSE_SQS_MAX_OBJECTS_IN_FLIGHT",
    "TRAILHOSE_SQS_VISIBILITY_TIMEOUT_SECONDS",
    "TRAILHOSE_SQS_SHUTDOWN_GRACE_SECONDS",
    "TRAILHOSE_SQS_DEAD_LETTER_QUEUE_URL",
];

fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{name} = {value:?} is not a valid number"))
}

impl SqsSourceConfig {
    /// The heartbeat interval in force.
    pub fn heartbeat_interval_seconds(&self) -> u32 {
        self.heartbeat_seconds
            .unwrap_or((self.visibility_timeout_seconds / 3).max(1))
    }

    /// Messages held at once: enough for full receives, and at least one per object slot (or
    /// `max_messages_in_flight` when set). The worker's `WorkerSettings::message_capacity`.
    pub fn message_capacity(&self) -> usize {
        let wanted = if self.max_messages_in_flight > 0 {
            self.max_messages_in_flight
        } else {
            self.max_objects_in_flight
        };
        wanted.max(self.max_messages as usize).max(1)
    }

    /// The object readers' byte budget in force: `memory_budget_bytes`, or (0) the default
    /// derived from the object slots, the largest record and the chunk size.
    pub fn reader_budget_bytes(
        &self,
        limits: &crate::LimitsConfig,
        pipeline: &crate::PipelineConfig,
    ) -> u64 {
        if self.memory_budget_bytes > 0 {
            return self.memory_budget_bytes;
        }
        crate::memory::default_reader_budget(
            self.max_objects_in_flight.max(1),
            limits.max_record_bytes,
            pipeline.chunk_bytes,
        )
    }

    /// Applies the `TRAILHOSE_…` overrides found by `lookup` (normally `std::env::var`);
    /// returns the names applied. Run [`problems`](Self::problems) again afterwards.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<&'static str>, String> {
        let mut applied = Vec::new();
        for &name in ENV_OVERRIDES {
            let Some(v) = lookup(name) else { continue };
            match name {
                "TRAILHOSE_SQS_QUEUE_URL" => self.queue_url = v,
                "TRAILHOSE_SQS_REGION" => self.region = Some(v),
                "TRAILHOSE_ENDPOINT_URL" => self.endpoint_url = Some(v),
                "TRAILHOSE_SQS_RECEIVERS" => self.receivers = parse_env(name, &v)?,
                "TRAILHOSE_SQS_MAX_OBJECTS_IN_FLIGHT" => {
                    self.max_objects_in_flight = parse_env(name, &v)?
                }
                "TRAILHOSE_SQS_VISIBILITY_TIMEOUT_SECONDS" => {
                    self.visibility_timeout_seconds = parse_env(name, &v)?
                }
                "TRAILHOSE_SQS_SHUTDOWN_GRACE_SECONDS" => {
                    self.shutdown_grace_seconds = parse_env(name, &v)?
                }
                "TRAILHOSE_SQS_DEAD_LETTER_QUEUE_URL" => {
                    self.dead_letter = Some(SqsDeadLetterConfig::Sqs { queue_url: v })
                }
                _ => continue,
            }
            applied.push(name);
        }
        Ok(applied)
    }

    /// Semantic checks (SQS API ranges and the rules that keep the worker safe).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.queue_url.starts_with("https://") || self.queue_url.starts_with("http://")) {
            p.push(format!(
                "source.queue_url = {:?} is not an http(s) queue URL",
                self.queue_url
            ));
        }
        if let Some(e) = &self.endpoint_url {
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                p.push(format!("source.endpoint_url = {e:?} is not an http(s) URL"));
            }
        }
        if self.receivers == 0 || self.receivers > 64 {
            p.push(format!(
                "source.receivers = {} must be 1..=64",
                self.receivers
            ));
        }
        if !(1..=10).contains(&self.max_messages) {
            p.push(format!(
                "source.max_messages = {} must be 1..=10 (SQS limit)",
                self.max_messages
            ));
        }
        if self.wait_time_seconds > 20 {
            p.push(format!(
                "source.wait_time_seconds = {} must be 0..=20 (SQS limit)",
                self.wait_time_seconds
            ));
        }
        if !(1..=43_200).contains(&self.visibility_timeout_seconds) {
            p.push(format!(
                "source.visibility_timeout_seconds = {} must be 1..=43200 (SQS limit)",
                self.visibility_timeout_seconds
            ));
        }
        let hb = self.heartbeat_interval_seconds();
        if hb == 0 || hb >= self.visibility_timeout_seconds {
            p.push(format!(
                "source.heartbeat_seconds = {hb} must be at least 1 and below visibility_timeout_seconds = {}",
                self.visibility_timeout_seconds
            ));
        }
        if self.retry_visibility_seconds > 43_200 {
            p.push(format!(
                "source.retry_visibility_seconds = {} must be 0..=43200",
                self.retry_visibility_seconds
            ));
        }
        if self.max_messages_in_flight > 100_000 {
            p.push(format!(
                "source.max_messages_in_flight = {} must be at most 100000",
                self.max_messages_in_flight
            ));
        }
        if self.max_objects_in_flight == 0 || self.max_objects_in_flight > 1024 {
            p.push(format!(
                "source.max_objects_in_flight = {} must be 1..=1024",
                self.max_objects_in_flight
            ));
        }
        if self.max_receive_count == 0 {
            p.push("source.max_receive_count must be at least 1".into());
        }
        if self.shutdown_grace_seconds == 0 || self.shutdown_grace_seconds > 3600 {
            p.push(format!(
                "source.shutdown_grace_seconds = {} must be 1..=3600",
                self.shutdown_grace_seconds
            ));
        }
        if self.buckets.is_empty() {
            p.push(
                "source.buckets is empty: list every bucket the queue may name ([[source.buckets]] name = ...)"
                    .into(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for b in &self.buckets {
            if b.name.is_empty() {
                p.push("source.buckets: a bucket has an empty name".into());
            } else if !names.insert(b.name.as_str()) {
                p.push(format!("source.buckets: `{}` is listed twice", b.name));
            }
            if b.prefixes.iter().any(String::is_empty) {
                p.push(format!(
                    "source.buckets.{}: an empty prefix (omit `prefixes` to allow the whole bucket)",
                    b.name
                ));
            }
            if let Some(r) = &b.role_arn {
                if !r.starts_with("arn:") || !r.contains(":role/") {
                    p.push(format!(
                        "source.buckets.{}: role_arn {r:?} is not a role ARN",
                        b.name
                    ));
                }
            }
        }
        if self.kinds.is_empty() {
            p.push("source.kinds is empty: nothing would be read".into());
        }
        match &self.dead_letter {
            Some(SqsDeadLetterConfig::Sqs { queue_url }) => {
                if !(queue_url.starts_with("https://") || queue_url.starts_with("http://")) {
                    p.push(format!(
                        "source.dead_letter.queue_url = {queue_url:?} is not an http(s) queue URL"
                    ));
                } else if queue_url == &self.queue_url {
                    p.push("source.dead_letter.queue_url is the source queue itself".into());
                }
            }
            Some(SqsDeadLetterConfig::File { path }) if path.as_os_str().is_empty() => {
                p.push("source.dead_letter.path is empty".into());
            }
            Some(SqsDeadLetterConfig::File { path })
                if crate::is_s3_url(&path.to_string_lossy()) =>
            {
                p.push(format!(
                    "source.dead_letter.path = {path:?}: for S3 use type = \"s3\" with url = \"s3://bucket/prefix/\""
                ));
            }
            Some(SqsDeadLetterConfig::S3 {
                url,
                sse,
                kms_key_id,
            }) => {
                if !crate::is_s3_url(url) {
                    p.push(format!(
                        "source.dead_letter.url = {url:?} is not an s3://bucket/prefix/ URL"
                    ));
                }
                p.extend(crate::s3_target_problems("source.dead_letter.url", url));
                p.extend(crate::sse_problems(
                    "source.dead_letter",
                    true,
                    sse.as_deref(),
                    kms_key_id.as_deref(),
                ));
            }
            Some(SqsDeadLetterConfig::File { .. }) | None => {}
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<SqsSourceConfig, toml::de::Error> {
        toml::from_str(&format!(
            "queue_url = \"https://sqs.us-east-1.amazonaws.com/1/q\"\n{extra}\n[[buckets]]\nname = \"b\"\n"
        ))
    }

    #[test]
    fn defaults_and_derived_heartbeat() {
        let c = parse("").expect("valid");
        assert_eq!(c.receivers, 2);
        assert_eq!(c.max_messages, 10);
        assert_eq!(c.wait_time_seconds, 20);
        assert_eq!(c.visibility_timeout_seconds, 300);
        assert_eq!(c.heartbeat_interval_seconds(), 100);
        assert_eq!(c.kinds, vec![KeyKindConfig::Log, KeyKindConfig::Insight]);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn ranges_are_checked() {
        let c = parse(
            "max_messages = 11\nwait_time_seconds = 21\nvisibility_timeout_seconds = 30\nheartbeat_seconds = 30\nkinds = []",
        )
        .expect("parses");
        let p = c.problems().join("\n");
        for want in [
            "max_messages",
            "wait_time_seconds",
            "heartbeat_seconds",
            "kinds",
        ] {
            assert!(p.contains(want), "{want} missing in {p}");
        }
        let mut c = parse("").expect("parses");
        c.buckets.clear();
        assert!(c.problems().join("").contains("buckets is empty"));
    }

    #[test]
    fn dead_letter_shapes_and_unknown_keys() {
        let c = parse("[dead_letter]\ntype = \"sqs\"\nqueue_url = \"https://sqs.x/1/dlq\"")
            .expect("valid");
        assert_eq!(
            c.dead_letter,
            Some(SqsDeadLetterConfig::Sqs {
                queue_url: "https://sqs.x/1/dlq".into()
            })
        );
        assert!(parse("[dead_letter]\ntype = \"file\"\npath = \"x\"\nbogus = 1").is_err());
        let c = parse("[dead_letter]\ntype = \"s3\"\nurl = \"s3://dl/worker/\"\nsse = \"AES256\"")
            .expect("valid");
        assert_eq!(
            c.dead_letter,
            Some(SqsDeadLetterConfig::S3 {
                url: "s3://dl/worker/".into(),
                sse: Some("AES256".into()),
                kms_key_id: None,
            })
        );
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        for (bad, expect) in [
            ("type = \"s3\"\nurl = \"dl/worker\"", "not an s3://"),
            ("type = \"s3\"\nurl = \"s3://\"", "names no bucket"),
            (
                "type = \"s3\"\nurl = \"s3://b/\"\nkms_key_id = \"k\"",
                "needs sse",
            ),
            ("type = \"file\"\npath = \"s3://b/p/\"", "type = \"s3\""),
        ] {
            let p = parse(&format!("[dead_letter]\n{bad}"))
                .expect(bad)
                .problems();
            assert!(p.iter().any(|m| m.contains(expect)), "{bad}: {p:?}");
        }
        assert!(parse("max_mesages = 3").is_err());
    }

    #[test]
    fn env_overrides() {
        let mut c = parse("").expect("valid");
        let applied = c
            .apply_env(|k| match k {
                "TRAILHOSE_SQS_QUEUE_URL" => Some("http://localhost:5000/1/other".into()),
                "TRAILHOSE_SQS_RECEIVERS" => Some("4".into()),
                _ => None,
            })
            .expect("valid values");
        assert_eq!(applied.len(), 2);
        assert_eq!(c.queue_url, "http://localhost:5000/1/other");
        assert_eq!(c.receivers, 4);
        let e = c
            .apply_env(|k| (k == "TRAILHOSE_SQS_RECEIVERS").then(|| "many".into()))
            .expect_err("not a number");
        assert!(e.contains("TRAILHOSE_SQS_RECEIVERS"), "{e}");
    }
}
