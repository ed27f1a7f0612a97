//! `[[sinks]] type = "splunk_hec" | "opensearch" | "http" | "kafka"`: the SIEM sinks.
//!
//! Secrets (HEC tokens, passwords, API keys, header values) are never part of the config: the
//! config names an environment variable or a file, and the sink reads the value when it starts.
//! So printing or logging a config can never leak one.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use trailhose_pipeline::filter::RecordFilter;
use trailhose_pipeline::template::{NameKind, Template};

/// The shape of each document a SIEM sink sends.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// The record's original bytes.
    #[default]
    Raw,
    /// Elastic Common Schema, as the Elastic AWS CloudTrail integration maps it.
    Ecs,
    /// OCSF 1.1 API Activity (class 6003), as Amazon Security Lake maps CloudTrail.
    Ocsf,
}

/// Where a secret comes from: exactly one of an environment variable or a file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// Name of an environment variable holding the secret.
    pub env: Option<String>,
    /// A file holding the secret (surrounding whitespace is trimmed).
    pub file: Option<PathBuf>,
}

impl SecretSource {
    pub fn is_set(&self) -> bool {
        self.env.is_some() || self.file.is_some()
    }

    fn problems(&self, at: &str, required: bool, p: &mut Vec<String>) {
        match (&self.env, &self.file) {
            (Some(_), Some(_)) => p.push(format!("{at}: set `env` or `file`, not both")),
            (None, None) if required => p.push(format!(
                "{at}: set `env` (a variable name) or `file` (a path)"
            )),
            (Some(e), None) if e.is_empty() => p.push(format!("{at}.env is empty")),
            _ => {}
        }
    }
}

pub use trailhose_pipeline::delivery::DeliveryConfig;

/// TLS for HTTPS endpoints (`[sinks.tls]`): the system's roots, plus an optional CA file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file with extra trusted CA certificates (e.g. a private PKI).
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the system roots.
    pub only_ca_file: bool,
}

/// `type = "splunk_hec"`: Splunk HTTP Event Collector, `/services/collector/event`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecSinkConfig {
    pub name: String,
    /// Base URL, e.g. `https://splunk.example.com:8088`.
    pub url: String,
    /// The HEC token (sent as `Authorization: Splunk <token>`).
    pub token: SecretSource,
    #[serde(default)]
    pub format: OutputFormat,
    #[serde(default = "default_sourcetype")]
    pub sourcetype: String,
    /// Event `source`; default: the object the record came from (`s3://bucket/key`).
    pub source: Option<String>,
    pub index: Option<String>,
    pub host: Option<String>,
    /// Wait for indexer acknowledgement (`/services/collector/ack`) before acknowledging.
    #[serde(default)]
    pub indexer_ack: bool,
    /// HEC channel (a GUID) for indexer acknowledgement; a random one when absent.
    pub channel: Option<String>,
    /// Give up waiting for an indexer acknowledgement after this long and resend the batch.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    #[serde(default = "default_ack_poll_ms")]
    pub ack_poll_ms: u64,
    #[serde(default)]
    pub gzip: bool,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    /// Records the destination can never take, one JSON line each with the reason: a file or
    /// `s3://bucket/prefix/`. (`dead_letter_path` before 0.2.)
    #[serde(alias = "dead_letter_path")]
    pub dead_letter: String,
    #[serde(default)]
    pub filter: RecordFilter,
}

/// The `_bulk` action.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// `create`: a re-delivered document is a 409 conflict, counted as already there. Works
    /// with data streams.
    #[default]
    Create,
    /// `index`: a re-delivered document overwrites itself.
    Index,
}

/// `type = "opensearch"`: OpenSearch or Elasticsearch `_bulk`, `_id` = eventID.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSearchSinkConfig {
    pub name: String,
    /// Base URL, e.g. `https://search.example.com:9200`.
    pub url: String,
    /// Index (or data stream) name template, from record fields like `cloudtrail-{account}`.
    #[serde(default = "default_index")]
    pub index: String,
    #[serde(default)]
    pub action: BulkAction,
    /// Ingest pipeline (`?pipeline=`).
    pub pipeline: Option<String>,
    #[serde(default)]
    pub format: OutputFormat,
    /// Basic authentication user; the password comes from `password`.
    pub username: Option<String>,
    #[serde(default)]
    pub password: SecretSource,
    /// `Authorization: ApiKey <key>` (Elasticsearch API key, base64 form).
    #[serde(default)]
    pub api_key: SecretSource,
    #[serde(default)]
    pub gzip: bool,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(alias = "dead_letter_path")]
    pub dead_letter: String,
    #[serde(default)]
    pub filter: RecordFilter,
}

/// Body of a generic HTTP request.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HttpBody {
    /// One document per line (`application/x-ndjson`).
    #[default]
    Ndjson,
    /// `[doc,doc,...]` (`application/json`).
    JsonArray,
}

/// `type = "http"`: any HTTP endpoint taking batches of JSON documents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    pub name: String,
    pub url: String,
    /// `POST` or `PUT`.
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub body: HttpBody,
    #[serde(default)]
    pub gzip: bool,
    #[serde(default)]
    pub format: OutputFormat,
    /// Header → value, for values that are not secret.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Header → environment variable holding its value (e.g. `Authorization`).
    #[serde(default)]
    pub headers_from_env: BTreeMap<String, String>,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(alias = "dead_letter_path")]
    pub dead_letter: String,
    #[serde(default)]
    pub filter: RecordFilter,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KafkaCompression {
    #[default]
    None,
    Gzip,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: SecretSource,
}

/// `type = "kafka"`: produce to Kafka, key = eventID.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    pub name: String,
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Topic name template from record fields, e.g. `cloudtrail.{eventCategory}`.
    #[serde(default = "default_topic")]
    pub topic: String,
    #[serde(default)]
    pub format: OutputFormat,
    #[serde(default)]
    pub compression: KafkaCompression,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    pub sasl: Option<SaslConfig>,
    /// `[sinks.tls]`: connect to the brokers over TLS (system roots plus `ca_file`, or only
    /// `ca_file`). Absent: plaintext.
    pub tls: Option<TlsConfig>,
    /// Create a missing topic with `partitions` × `replication_factor`.
    #[serde(default)]
    pub create_topics: bool,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_replication")]
    pub replication_factor: i16,
    /// Bytes of one produced message set at most (the broker's `message.max.bytes`).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(alias = "dead_letter_path")]
    pub dead_letter: String,
    #[serde(default)]
    pub filter: RecordFilter,
}

fn default_sourcetype() -> String {
    "aws:cloudtrail".into()
}
fn default_ack_timeout_ms() -> u64 {
    60_000
}
fn default_ack_poll_ms() -> u64 {
    1000
}
fn default_index() -> String {
    "cloudtrail".into()
}
fn default_method() -> String {
    "POST".into()
}
fn default_topic() -> String {
    "cloudtrail".into()
}
fn default_client_id() -> String {
    "trailhose".into()
}
fn default_partitions() -> i32 {
    3
}
fn default_replication() -> i16 {
    1
}
fn default_max_message_bytes() -> usize {
    1_000_000
}

fn url_problems(n: &str, url: &str, p: &mut Vec<String>) {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => {}
        _ => p.push(format!(
            "sinks.{n}.url = {url:?} must be an http:// or https:// URL with a host"
        )),
    }
    if url.contains('@') {
        p.push(format!(
            "sinks.{n}.url must not carry credentials; use the sink's secret settings"
        ));
    }
}

/// Checks a name template and the characters its literal parts may hold.
fn template_problems(
    at: &str,
    text: &str,
    allowed: fn(char) -> bool,
    what: &str,
    p: &mut Vec<String>,
) {
    if let Err(e) = Template::parse(text, NameKind::Stream) {
        p.push(format!("{at}: {e}"));
        return;
    }
    let mut literal = String::new();
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            c if depth == 0 => literal.push(c),
            _ => {}
        }
    }
    if let Some(c) = literal.chars().find(|c| !allowed(*c)) {
        p.push(format!("{at}: `{c}` is not allowed in {what}"));
    }
}

pub fn index_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.' | '+')
}

pub fn topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

impl SplunkHecSinkConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let n = &self.name;
        url_problems(n, &self.url, &mut p);
        self.token
            .problems(&format!("sinks.{n}.token"), true, &mut p);
        self.delivery
            .problems(&format!("sinks.{n}.delivery"), &mut p);
        if self.sourcetype.is_empty() {
            p.push(format!("sinks.{n}.sourcetype is empty"));
        }
        if self.indexer_ack && (self.ack_timeout_ms < 100 || self.ack_poll_ms == 0) {
            p.push(format!(
                "sinks.{n}: ack_timeout_ms must be ≥ 100 and ack_poll_ms > 0"
            ));
        }
        p
    }
}

impl OpenSearchSinkConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let n = &self.name;
        url_problems(n, &self.url, &mut p);
        template_problems(
            &format!("sinks.{n}.index"),
            &self.index,
            index_char,
            "an index name (lowercase a-z, 0-9, - _ . +)",
            &mut p,
        );
        if self.index.starts_with(['-', '_', '+']) {
            p.push(format!(
                "sinks.{n}.index must not start with `-`, `_` or `+`"
            ));
        }
        self.password
            .problems(&format!("sinks.{n}.password"), false, &mut p);
        self.api_key
            .problems(&format!("sinks.{n}.api_key"), false, &mut p);
        if self.username.is_some() != self.password.is_set() {
            p.push(format!("sinks.{n}: `username` and `password` go together"));
        }
        if self.username.is_some() && self.api_key.is_set() {
            p.push(format!(
                "sinks.{n}: use basic authentication or an API key, not both"
            ));
        }
        self.delivery
            .problems(&format!("sinks.{n}.delivery"), &mut p);
        p
    }
}

impl HttpSinkConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let n = &self.name;
        url_problems(n, &self.url, &mut p);
        if !["POST", "PUT"].contains(&self.method.as_str()) {
            p.push(format!(
                "sinks.{n}.method = {:?} must be POST or PUT",
                self.method
            ));
        }
        for h in self.headers.keys().chain(self.headers_from_env.keys()) {
            let ok = !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !ok {
                p.push(format!("sinks.{n}: {h:?} is not a valid header name"));
            }
        }
        for h in self.headers.keys() {
            if self.headers_from_env.contains_key(h) {
                p.push(format!(
                    "sinks.{n}: header {h:?} is in both headers and headers_from_env"
                ));
            }
            if h.eq_ignore_ascii_case("authorization") {
                p.push(format!(
                    "sinks.{n}: put the Authorization header in headers_from_env, not in the config"
                ));
            }
        }
        self.delivery
            .problems(&format!("sinks.{n}.delivery"), &mut p);
        p
    }
}

impl KafkaSinkConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let n = &self.name;
        if self.brokers.is_empty() {
            p.push(format!("sinks.{n}.brokers is empty"));
        }
        for b in &self.brokers {
            let port_ok = b
                .rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                p.push(format!("sinks.{n}.brokers: {b:?} is not host:port"));
            }
        }
        template_problems(
            &format!("sinks.{n}.topic"),
            &self.topic,
            topic_char,
            "a topic name (a-z A-Z 0-9 . _ -)",
            &mut p,
        );
        if let Some(s) = &self.sasl {
            s.password
                .problems(&format!("sinks.{n}.sasl.password"), true, &mut p);
        }
        if self.partitions <= 0 || self.replication_factor <= 0 {
            p.push(format!(
                "sinks.{n}: partitions and replication_factor must be > 0"
            ));
        }
        if self.max_message_bytes < 1024 {
            p.push(format!("sinks.{n}.max_message_bytes must be ≥ 1024"));
        }
        self.delivery
            .problems(&format!("sinks.{n}.delivery"), &mut p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_need_exactly_one_source() {
        let mut p = Vec::new();
        SecretSource::default().problems("t", true, &mut p);
        SecretSource {
            env: Some("A".into()),
            file: Some("f".into()),
        }
        .problems("u", true, &mut p);
        SecretSource::default().problems("v", false, &mut p);
        assert_eq!(p.len(), 2, "{p:?}");
    }

    const SINKS: &str = r#"
[source]
type = "dir"
path = "in"

[[sinks]]
type = "splunk_hec"
name = "splunk"
url = "https://splunk.example.com:8088"
dead_letter = "dl/splunk.ndjson"
format = "ecs"
indexer_ack = true
[sinks.token]
env = "SPLUNK_HEC_TOKEN"
[sinks.tls]
ca_file = "/etc/ssl/private-ca.pem"

[[sinks]]
type = "opensearch"
name = "search"
url = "http://localhost:9200"
index = "cloudtrail-{account}"
username = "shipper"
dead_letter = "dl/search.ndjson"
[sinks.password]
file = "/run/secrets/os"
[sinks.delivery]
max_events = 1000

[[sinks]]
type = "http"
name = "hook"
url = "https://collector.example.com/ingest"
body = "json_array"
gzip = true
dead_letter = "dl/hook.ndjson"
[sinks.headers_from_env]
Authorization = "HOOK_AUTH"

[[sinks]]
type = "kafka"
name = "bus"
brokers = ["kafka-1:9092", "kafka-2:9092"]
topic = "cloudtrail.{eventCategory}"
format = "ocsf"
dead_letter = "dl/bus.ndjson"
[sinks.sasl]
mechanism = "SCRAM-SHA-512"
username = "trailhose"
[sinks.sasl.password]
env = "KAFKA_PASSWORD"
"#;

    #[test]
    fn parses_every_siem_sink() {
        let c = crate::Config::from_toml(SINKS, "t.toml").expect("valid");
        let names: Vec<&str> = c.sinks.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["splunk", "search", "hook", "bus"]);
        match &c.sinks[0] {
            crate::SinkConfig::SplunkHec(h) => {
                assert_eq!(h.sourcetype, "aws:cloudtrail");
                assert_eq!(h.format, OutputFormat::Ecs);
                assert_eq!(h.token.env.as_deref(), Some("SPLUNK_HEC_TOKEN"));
            }
            other => panic!("unexpected {other:?}"),
        }
        match &c.sinks[3] {
            crate::SinkConfig::Kafka(k) => {
                assert_eq!(
                    k.sasl.as_ref().map(|s| s.mechanism),
                    Some(SaslMechanism::ScramSha512)
                );
                assert_eq!(k.delivery, DeliveryConfig::default());
            }
            other => panic!("unexpected {other:?}"),
        }
        // The config holds where secrets are, never a secret.
        let shown = format!("{c:?}");
        assert!(shown.contains("SPLUNK_HEC_TOKEN") && shown.contains("/run/secrets/os"));
    }

    #[test]
    fn siem_sink_problems_are_reported() {
        let cases = [
            (
                "[sinks.token]\nenv = \"SPLUNK_HEC_TOKEN\"",
                "[sinks.token]",
                "sinks.splunk.token",
            ),
            (
                "url = \"https://splunk.example.com:8088\"",
                "url = \"ftp://x\"",
                "sinks.splunk.url",
            ),
            (
                "index = \"cloudtrail-{account}\"",
                "index = \"CloudTrail\"",
                "sinks.search.index",
            ),
            (
                "username = \"shipper\"\n",
                "",
                "`username` and `password` go together",
            ),
            (
                "brokers = [\"kafka-1:9092\", \"kafka-2:9092\"]",
                "brokers = [\"kafka-1\"]",
                "is not host:port",
            ),
            (
                "topic = \"cloudtrail.{eventCategory}\"",
                "topic = \"ct/{eventCategory}\"",
                "sinks.bus.topic",
            ),
            (
                "[sinks.delivery]\nmax_events = 1000",
                "[sinks.delivery]\nmax_events = 0",
                "max_events = 0",
            ),
            (
                "Authorization = \"HOOK_AUTH\"",
                "\"Bad Header\" = \"HOOK_AUTH\"",
                "not a valid header name",
            ),
        ];
        for (from, to, want) in cases {
            assert!(SINKS.contains(from), "{from}");
            let text = SINKS.replacen(from, to, 1);
            let e = crate::Config::from_toml(&text, "t.toml")
                .expect_err(want)
                .to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        let typo = SINKS.replacen("gzip = true", "gzpi = true", 1);
        let e = crate::Config::from_toml(&typo, "t.toml")
            .expect_err("typo")
            .to_string();
        assert!(e.contains("gzpi"), "{e}");
    }

    #[test]
    fn templates_are_checked_for_the_destination() {
        let mut p = Vec::new();
        template_problems("a", "cloudtrail-{account}", index_char, "x", &mut p);
        template_problems("b", "CloudTrail-{account}", index_char, "x", &mut p);
        template_problems("c", "ct/{account}", topic_char, "x", &mut p);
        template_problems("d", "ct.{nope}", topic_char, "x", &mut p);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("b:") && p[1].starts_with("c:") && p[2].starts_with("d:"));
    }
}
