//! The configuration file. Unknown keys are errors (a typo must not silently fall back to a
//! default), and semantic checks run after parsing so `check-config` reports everything a run
//! would trip over.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;
use trailhose_core::Limits;
use trailhose_pipeline::delivery::DeliveryConfig;
use trailhose_pipeline::dir_source::Layout;
use trailhose_pipeline::filter::RecordFilter;
use trailhose_pipeline::sinks::ndjson::{self, Shape};

pub mod archive;
pub mod cwl;
pub mod detect;
pub mod memory;
pub mod ops;
pub mod siem;
pub mod sqs;

pub use sqs::{BucketConfig, KeyKindConfig, SqsDeadLetterConfig, SqsSourceConfig};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("{path}: {}", .problems.join("; "))]
    Invalid { path: String, problems: Vec<String> },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    #[serde(default)]
    pub ops: ops::OpsConfig,
    /// `[detection]`: rules and anomaly detection on the stream; absent = off.
    #[serde(default)]
    pub detection: Option<detect::DetectionConfig>,
}

// Parsed once per run; boxing the larger variant would only add noise at every use.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// A local directory in S3 key layout.
    Dir(DirSourceConfig),
    /// S3 notifications from an SQS queue (the AWS worker).
    Sqs(SqsSourceConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSourceConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub layout: Layout,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Files parsed at once; 0 = one per core.
    pub parse_workers: usize,
    /// Bound of every channel, in chunks.
    pub channel_capacity: usize,
    pub chunk_records: usize,
    pub chunk_bytes: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            parse_workers: 0,
            channel_capacity: 16,
            chunk_records: 1000,
            chunk_bytes: 1 << 20,
        }
    }
}

impl PipelineConfig {
    pub fn workers(&self) -> usize {
        if self.parse_workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.parse_workers
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_record_bytes: usize,
    pub max_depth: u32,
    pub max_decompressed_bytes: u64,
    pub max_ratio: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            max_record_bytes: l.max_record_bytes,
            max_depth: l.max_depth,
            max_decompressed_bytes: l.max_decompressed_bytes,
            max_ratio: l.max_ratio,
        }
    }
}

impl LimitsConfig {
    pub fn to_limits(&self) -> Limits {
        Limits {
            max_record_bytes: self.max_record_bytes,
            max_depth: self.max_depth,
            max_decompressed_bytes: self.max_decompressed_bytes,
            max_ratio: self.max_ratio,
            ..Limits::default()
        }
    }
}

/// `[dead_letter]`: where the source puts objects (and the SQS worker messages) it cannot
/// process. A local file (the default), or `s3://bucket/prefix/` for a fleet whose disks are
/// not durable: every entry is then one NDJSON.gz object, written before the acknowledgement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// A local file, or `s3://bucket/prefix/`.
    pub path: PathBuf,
    /// S3 only: `"aws:kms"` (with `kms_key_id`, or the bucket's AWS managed key) or `"AES256"`.
    pub sse: Option<String>,
    pub kms_key_id: Option<String>,
    /// S3 only: region and endpoint (default: the SQS source's, else the SDK's default chain).
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            path: PathBuf::from("trailhose-dead-letter.ndjson"),
            sse: None,
            kms_key_id: None,
            region: None,
            endpoint_url: None,
        }
    }
}

impl DeadLetterConfig {
    /// The path or URL as written.
    pub fn target(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    pub fn is_s3(&self) -> bool {
        is_s3_url(&self.target())
    }

    pub fn problems(&self) -> Vec<String> {
        let target = self.target();
        let mut p = Vec::new();
        if target.trim().is_empty() {
            p.push("dead_letter.path is empty (a file or s3://bucket/prefix/)".into());
        }
        p.extend(s3_target_problems("dead_letter.path", &target));
        p.extend(sse_problems(
            "dead_letter",
            self.is_s3(),
            self.sse.as_deref(),
            self.kms_key_id.as_deref(),
        ));
        if !self.is_s3() && (self.region.is_some() || self.endpoint_url.is_some()) {
            p.push("dead_letter: region/endpoint_url apply to s3:// paths only".into());
        }
        p
    }
}

/// `s3://…`: a dead-letter place (or another location) in S3 rather than on local disk.
pub fn is_s3_url(target: &str) -> bool {
    target.starts_with("s3://")
}

/// An `s3://` target must name a bucket.
pub fn s3_target_problems(at: &str, target: &str) -> Vec<String> {
    match target.strip_prefix("s3://") {
        Some(rest) if rest.split('/').next().unwrap_or("").is_empty() => {
            vec![format!("{at} = `{target}` names no bucket")]
        }
        _ => Vec::new(),
    }
}

/// The archive sink's SSE rules, for every S3 place: `sse` is `"aws:kms"` or `"AES256"`,
/// `kms_key_id` needs `"aws:kms"`, and neither applies to a local place.
pub fn sse_problems(
    at: &str,
    s3: bool,
    sse: Option<&str>,
    kms_key_id: Option<&str>,
) -> Vec<String> {
    let mut p = Vec::new();
    if !s3 && (sse.is_some() || kms_key_id.is_some()) {
        p.push(format!("{at}: sse/kms_key_id apply to s3:// places only"));
    }
    if let Some(s) = sse {
        if s != "aws:kms" && s != "AES256" {
            p.push(format!(
                "{at}: sse = `{s}`: expected \"aws:kms\" or \"AES256\""
            ));
        }
    }
    if kms_key_id.is_some() && sse != Some("aws:kms") {
        p.push(format!("{at}: kms_key_id needs sse = \"aws:kms\""));
    }
    p
}

/// What `check-config` warns about: a worker (SQS source) in a container whose dead letters go
/// to local disk, which is gone with the container.
pub const LOCAL_DEAD_LETTER_WARNING: &str =
    "local disk is not durable in a container; use s3://bucket/prefix/";

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Rotating NDJSON files.
    Ndjson(NdjsonSinkConfig),
    Stdout(StdoutSinkConfig),
    /// Counts and drops (benchmarks).
    Discard(DiscardSinkConfig),
    /// CloudWatch Logs PutLogEvents.
    CloudwatchLogs(cwl::CloudWatchLogsSinkConfig),
    /// Splunk HTTP Event Collector.
    SplunkHec(siem::SplunkHecSinkConfig),
    /// OpenSearch / Elasticsearch `_bulk`.
    Opensearch(siem::OpenSearchSinkConfig),
    /// Generic HTTP (NDJSON or JSON array batches).
    Http(siem::HttpSinkConfig),
    /// Kafka producer.
    Kafka(siem::KafkaSinkConfig),
    /// Parquet / NDJSON.gz archive, partitioned as Athena's CloudTrail tables.
    Archive(archive::ArchiveSinkConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonSinkConfig {
    pub name: String,
    pub dir: PathBuf,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    #[serde(default)]
    pub fsync: bool,
    #[serde(default)]
    pub shape: Shape,
    #[serde(default)]
    pub filter: RecordFilter,
    /// `[sinks.delivery]`: how long a delivery is held and retried while the directory
    /// cannot be written (`max_retry_duration_seconds`, `backoff_ms`, `max_backoff_ms`,
    /// `probe_interval_ms`, `max_probe_interval_ms`); other keys are errors.
    #[serde(
        default = "ndjson::file_delivery_defaults",
        deserialize_with = "ndjson::file_delivery"
    )]
    pub delivery: DeliveryConfig,
}

fn default_prefix() -> String {
    "records".into()
}

fn default_max_file_bytes() -> u64 {
    128 << 20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    pub name: String,
    #[serde(default)]
    pub shape: Shape,
    #[serde(default)]
    pub filter: RecordFilter,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardSinkConfig {
    pub name: String,
    #[serde(default)]
    pub filter: RecordFilter,
}

impl SinkConfig {
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::Ndjson(c) => &c.name,
            SinkConfig::Stdout(c) => &c.name,
            SinkConfig::Discard(c) => &c.name,
            SinkConfig::CloudwatchLogs(c) => &c.name,
            SinkConfig::SplunkHec(c) => &c.name,
            SinkConfig::Opensearch(c) => &c.name,
            SinkConfig::Http(c) => &c.name,
            SinkConfig::Kafka(c) => &c.name,
            SinkConfig::Archive(c) => &c.name,
        }
    }

    /// The sink's `[sinks.filter]`.
    pub fn filter(&self) -> &RecordFilter {
        match self {
            SinkConfig::Ndjson(c) => &c.filter,
            SinkConfig::Stdout(c) => &c.filter,
            SinkConfig::Discard(c) => &c.filter,
            SinkConfig::CloudwatchLogs(c) => &c.filter,
            SinkConfig::SplunkHec(c) => &c.filter,
            SinkConfig::Opensearch(c) => &c.filter,
            SinkConfig::Http(c) => &c.filter,
            SinkConfig::Kafka(c) => &c.filter,
            SinkConfig::Archive(c) => &c.filter,
        }
    }

    /// Where the sink puts records its destination can never take (a file or `s3://…`),
    /// for sinks that have such a place.
    pub fn dead_letter(&self) -> Option<&str> {
        match self {
            SinkConfig::CloudwatchLogs(c) => Some(&c.dead_letter),
            SinkConfig::SplunkHec(c) => Some(&c.dead_letter),
            SinkConfig::Opensearch(c) => Some(&c.dead_letter),
            SinkConfig::Http(c) => Some(&c.dead_letter),
            SinkConfig::Kafka(c) => Some(&c.dead_letter),
            SinkConfig::Ndjson(_)
            | SinkConfig::Stdout(_)
            | SinkConfig::Discard(_)
            | SinkConfig::Archive(_) => None,
        }
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// 1-based line of the first `key = ...` assignment.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

impl Config {
    pub fn from_toml(text: &str, path: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            // serde loses the key's span inside tagged tables; find the offending line so the
            // error points at it rather than at the table header.
            let line = unknown_field(&message)
                .and_then(|k| key_line(text, k))
                .or_else(|| {
                    e.span()
                        .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                });
            ConfigError::Parse {
                path: match line {
                    Some(l) => format!("{path}:{l}"),
                    None => path.to_string(),
                },
                reason: message,
            }
        })?;
        let problems = cfg.problems();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_string(),
                problems,
            })
        }
    }

    /// The worst-case memory of a run, term by term (see [`memory`]); `cores` stands for the
    /// machine's core count (`pipeline.parse_workers = 0`).
    pub fn memory_bound(&self, cores: usize) -> memory::MemoryBound {
        memory::memory_bound(self, cores)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let mut cfg = Config::from_toml(&text, &shown)?;
        cfg.resolve_relative_to(path.parent().unwrap_or(Path::new(".")));
        Ok(cfg)
    }

    /// Relative paths in a config file are relative to the current directory, like every
    /// command-line tool; this is a hook should that ever change. Kept explicit on purpose.
    fn resolve_relative_to(&mut self, _dir: &Path) {}

    /// Semantic checks that types cannot express.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.sinks.is_empty() {
            p.push("no [[sinks]] configured: records would have nowhere to go".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.sinks {
            if s.name().is_empty() {
                p.push("a sink has an empty name".into());
            } else if !names.insert(s.name()) {
                p.push(format!("sink name `{}` is used twice", s.name()));
            }
            if let SinkConfig::CloudwatchLogs(c) = s {
                p.extend(c.problems());
            }
            match s {
                SinkConfig::SplunkHec(c) => p.extend(c.problems()),
                SinkConfig::Opensearch(c) => p.extend(c.problems()),
                SinkConfig::Http(c) => p.extend(c.problems()),
                SinkConfig::Kafka(c) => p.extend(c.problems()),
                SinkConfig::Archive(c) => p.extend(c.problems()),
                _ => {}
            }
            if let SinkConfig::Ndjson(n) = s {
                if n.max_file_bytes < 1024 {
                    p.push(format!(
                        "sinks.{}: max_file_bytes = {} is below 1024",
                        n.name, n.max_file_bytes
                    ));
                }
                if n.prefix.is_empty() || n.prefix.contains('/') {
                    p.push(format!(
                        "sinks.{}: prefix must be a non-empty file name part",
                        n.name
                    ));
                }
                n.delivery
                    .problems(&format!("sinks.{}.delivery", n.name), &mut p);
            }
        }
        let pl = &self.pipeline;
        if pl.channel_capacity == 0 || pl.channel_capacity > 4096 {
            p.push(format!(
                "pipeline.channel_capacity = {} must be 1..=4096",
                pl.channel_capacity
            ));
        }
        if pl.chunk_records == 0 || pl.chunk_records > 100_000 {
            p.push(format!(
                "pipeline.chunk_records = {} must be 1..=100000",
                pl.chunk_records
            ));
        }
        if pl.chunk_bytes < 1024 || pl.chunk_bytes > 64 << 20 {
            p.push(format!(
                "pipeline.chunk_bytes = {} must be 1 KiB..=64 MiB",
                pl.chunk_bytes
            ));
        }
        if pl.parse_workers > 256 {
            p.push(format!(
                "pipeline.parse_workers = {} is above 256",
                pl.parse_workers
            ));
        }
        let l = &self.limits;
        if l.max_record_bytes < 1024 {
            p.push(format!(
                "limits.max_record_bytes = {} is below 1024",
                l.max_record_bytes
            ));
        }
        if l.max_depth < 4 {
            p.push(format!("limits.max_depth = {} is below 4", l.max_depth));
        }
        if l.max_ratio < 2 {
            p.push(format!("limits.max_ratio = {} is below 2", l.max_ratio));
        }
        p.extend(self.ops.problems());
        if let Some(d) = &self.detection {
            p.extend(d.problems());
        }
        if let SourceConfig::Sqs(s) = &self.source {
            p.extend(s.problems());
            let reserve = memory::record_reserve_bytes(l.max_record_bytes, pl.chunk_bytes);
            let b = s.memory_budget_bytes;
            if b > 0 && b < reserve {
                p.push(format!(
                    "source.memory_budget_bytes = {b} is below {reserve}, what one record of limits.max_record_bytes = {} needs (raise it or lower the limit)",
                    l.max_record_bytes
                ));
            }
        }
        p.extend(self.dead_letter.problems());
        p
    }

    /// Things that work but are probably not meant: an SQS-sourced config (a worker, usually
    /// in a container) whose dead letters go to a local file — the top-level `[dead_letter]`
    /// when the worker uses it, the source's own `dead_letter` file, or a sink's dead-letter
    /// (overflow) file.
    pub fn warnings(&self) -> Vec<String> {
        let SourceConfig::Sqs(source) = &self.source else {
            return Vec::new();
        };
        let mut local: Vec<(String, String)> = Vec::new();
        match &source.dead_letter {
            None if !self.dead_letter.is_s3() => {
                local.push(("dead_letter.path".into(), self.dead_letter.target()))
            }
            Some(SqsDeadLetterConfig::File { path }) => local.push((
                "source.dead_letter.path".into(),
                path.to_string_lossy().into_owned(),
            )),
            _ => {}
        }
        for s in &self.sinks {
            if let Some(target) = s.dead_letter() {
                local.push((
                    format!("sinks.{}.dead_letter", s.name()),
                    target.to_string(),
                ));
            }
        }
        local
            .into_iter()
            .filter(|(_, target)| !is_s3_url(target))
            .map(|(at, target)| format!("{at} = {target:?}: {LOCAL_DEAD_LETTER_WARNING}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[source]
type = "dir"
path = "sample"

[[sinks]]
type = "ndjson"
name = "files"
dir = "out"
shape = "envelope"
[sinks.filter]
event_category = ["Management"]

[[sinks]]
type = "stdout"
name = "console"
"#;

    #[test]
    fn parses_a_full_config() {
        let c = Config::from_toml(GOOD, "t.toml").expect("valid");
        assert_eq!(c.sinks.len(), 2);
        assert_eq!(c.pipeline.chunk_records, 1000);
        match &c.sinks[0] {
            SinkConfig::Ndjson(n) => {
                assert_eq!(n.shape, Shape::Envelope);
                assert_eq!(n.filter.event_category, vec!["Management".to_string()]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_errors_with_location() {
        let bad = GOOD.replace("shape = \"envelope\"", "shaep = \"envelope\"");
        let e = Config::from_toml(&bad, "t.toml").expect_err("typo");
        let s = e.to_string();
        assert!(s.contains("shaep") && s.contains("t.toml:10"), "{s}");
        let bad = GOOD.replace("[source]", "[source]\nbogus = 1");
        let s = Config::from_toml(&bad, "t.toml")
            .expect_err("typo")
            .to_string();
        assert!(s.contains("bogus"), "{s}");
        let bad = GOOD.replace("type = \"stdout\"", "type = \"carrier-pigeon\"");
        let s = Config::from_toml(&bad, "t.toml")
            .expect_err("bad type")
            .to_string();
        assert!(s.contains("carrier-pigeon"), "{s}");
    }

    const SQS: &str = r#"
[source]
type = "sqs"
queue_url = "https://sqs.us-east-1.amazonaws.com/1/q"
[[source.buckets]]
name = "b"

[[sinks]]
type = "stdout"
name = "console"
"#;

    #[test]
    fn dead_letters_may_live_in_s3_with_sse() {
        let c = Config::from_toml(
            &format!(
                "{SQS}\n[dead_letter]\npath = \"s3://dl-bucket/dead/\"\nsse = \"aws:kms\"\nkms_key_id = \"k\"\n"
            ),
            "t.toml",
        )
        .expect("valid");
        assert!(c.dead_letter.is_s3());
        assert_eq!(c.dead_letter.target(), "s3://dl-bucket/dead/");
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        for (bad, expect) in [
            ("path = \"s3:///x\"", "names no bucket"),
            (
                "path = \"dl.ndjson\"\nsse = \"AES256\"",
                "s3:// places only",
            ),
            ("path = \"s3://b/\"\nsse = \"rot13\"", "expected"),
            ("path = \"s3://b/\"\nkms_key_id = \"k\"", "needs sse"),
            (
                "path = \"dl.ndjson\"\nregion = \"eu-west-1\"",
                "s3:// paths only",
            ),
        ] {
            let e = Config::from_toml(&format!("{SQS}\n[dead_letter]\n{bad}\n"), "t.toml")
                .expect_err(bad)
                .to_string();
            assert!(e.contains(expect), "{bad}: {e}");
        }
    }

    #[test]
    fn an_sqs_config_with_local_dead_letters_is_warned_about() {
        // The default top-level place is a local file.
        let c = Config::from_toml(SQS, "t.toml").expect("valid");
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("dead_letter.path = \"trailhose-dead-letter.ndjson\"")
                && w[0].contains("not durable in a container")
                && w[0].contains("s3://"),
            "{w:?}"
        );
        // The source's own file is used instead of the top-level one; an SQS DLQ is durable.
        let own = SQS.replace(
            "[[source.buckets]]",
            "[source.dead_letter]\ntype = \"file\"\npath = \"/var/dl.ndjson\"\n[[source.buckets]]",
        );
        let w = Config::from_toml(&own, "t.toml").expect("valid").warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("source.dead_letter.path"), "{w:?}");
        let dlq = SQS.replace(
            "[[source.buckets]]",
            "[source.dead_letter]\ntype = \"sqs\"\nqueue_url = \"https://sqs.x/1/dlq\"\n[[source.buckets]]",
        );
        assert!(Config::from_toml(&dlq, "t.toml")
            .expect("valid")
            .warnings()
            .is_empty());
        // A sink's local dead-letter (overflow) file too.
        let cwl = format!(
            "{SQS}\n[[sinks]]\ntype = \"cloudwatch_logs\"\nname = \"cw\"\noverflow_path = \"/var/overflow.ndjson\"\n"
        )
        .replace("[[source.buckets]]", "[source.dead_letter]\ntype = \"s3\"\nurl = \"s3://dl/w/\"\n[[source.buckets]]");
        let w = Config::from_toml(&cwl, "t.toml").expect("valid").warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("sinks.cw.dead_letter = \"/var/overflow.ndjson\""),
            "{w:?}"
        );
        // A directory source runs where its files are: no warning.
        assert!(Config::from_toml(GOOD, "t.toml")
            .expect("valid")
            .warnings()
            .is_empty());
    }

    #[test]
    fn ndjson_delivery_keys_override_the_file_defaults() {
        let c = Config::from_toml(GOOD, "t.toml").expect("valid");
        let SinkConfig::Ndjson(n) = &c.sinks[0] else {
            panic!("ndjson first")
        };
        assert_eq!(n.delivery, ndjson::file_delivery_defaults());
        let with = GOOD.replace(
            "[sinks.filter]",
            "[sinks.delivery]\nmax_retry_duration_seconds = 120\nprobe_interval_ms = 250\n\n[sinks.filter]",
        );
        let c = Config::from_toml(&with, "t.toml").expect("valid");
        let SinkConfig::Ndjson(n) = &c.sinks[0] else {
            panic!("ndjson first")
        };
        assert_eq!(n.delivery.max_retry_duration_seconds, 120);
        assert_eq!(n.delivery.probe_interval_ms, 250);
        assert_eq!(
            n.delivery.max_probe_interval_ms,
            ndjson::file_delivery_defaults().max_probe_interval_ms
        );
        // Batch keys mean nothing for local files: named as errors, not ignored.
        let batch = GOOD.replace(
            "[sinks.filter]",
            "[sinks.delivery]\nmax_events = 10\n\n[sinks.filter]",
        );
        let s = Config::from_toml(&batch, "t.toml")
            .expect_err("unknown key")
            .to_string();
        assert!(s.contains("max_events"), "{s}");
        let bad = GOOD.replace(
            "[sinks.filter]",
            "[sinks.delivery]\nmax_retry_duration_seconds = 0\n\n[sinks.filter]",
        );
        let s = Config::from_toml(&bad, "t.toml")
            .expect_err("invalid")
            .to_string();
        assert!(
            s.contains("sinks.files.delivery.max_retry_duration_seconds"),
            "{s}"
        );
    }

    #[test]
    fn shipped_configs_parse_with_their_ndjson_delivery_keys() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        for name in ["local.toml", "aws.toml"] {
            let p = root.join(name);
            let text = std::fs::read_to_string(&p).expect("shipped config");
            let c = Config::from_toml(&text, name).unwrap_or_else(|e| panic!("{e}"));
            let n = c
                .sinks
                .iter()
                .find_map(|s| match s {
                    SinkConfig::Ndjson(n) => Some(n),
                    _ => None,
                })
                .expect("an ndjson sink");
            assert_eq!(n.delivery.max_retry_duration_seconds, 900, "{name}");
        }
    }

    #[test]
    fn semantic_problems_are_all_listed() {
        let bad = GOOD.replace("name = \"console\"", "name = \"files\"")
            + "\n[pipeline]\nchannel_capacity = 0\n";
        let s = Config::from_toml(&bad, "t.toml")
            .expect_err("invalid")
            .to_string();
        assert!(
            s.contains("used twice") && s.contains("channel_capacity"),
            "{s}"
        );
    }
}
