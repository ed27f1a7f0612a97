//! `[detection]`: filter-pattern rules evaluated on every record, and Insights-style anomaly
//! detection. Present = enabled; the run then adds a `detect` stage that sees every record.
//!
//! ```toml
//! [detection]
//! builtin_rules = true            # the embedded CIS + essentials pack
//! rules_dir = "config/my-rules"   # more *.toml rule files; same id replaces a built-in rule
//! disable = ["cis-vpc-changes"]
//!
//! [[detection.outputs]]
//! type = "ndjson"                 # also: stdout, sns, webhook
//! path = "out/alerts.ndjson"
//!
//! [detection.anomaly]
//! state_path = "trailhose-insights-state.json"
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionConfig {
    /// Include the rule pack embedded in the binary (`config/rules/*.toml`).
    #[serde(default = "yes")]
    pub builtin_rules: bool,
    /// A directory of rule files (`*.toml`).
    pub rules_dir: Option<PathBuf>,
    /// Rule ids to turn off.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Where alerts go; every output gets every alert at or above its `min_severity`.
    #[serde(default)]
    pub outputs: Vec<AlertOutputConfig>,
    /// Alerts an output could not take (after its retries), one JSON line each with the reason.
    #[serde(default = "default_failed_alerts")]
    pub failed_alerts_path: PathBuf,
    /// `[detection.delivery]`: how long and how the stage retries an output that is down,
    /// throttled or refusing (`max_retry_duration_seconds`, `backoff_ms`, `max_backoff_ms`,
    /// `probe_interval_ms`, `max_probe_interval_ms`); the other keys are not used here.
    #[serde(default)]
    pub delivery: trailhose_pipeline::delivery::DeliveryConfig,
    /// Severity given to Insights events when they are sent as alerts.
    #[serde(default = "default_insight_severity")]
    pub insight_severity: String,
    pub anomaly: Option<AnomalyConfig>,
}

fn yes() -> bool {
    true
}

fn default_failed_alerts() -> PathBuf {
    PathBuf::from("trailhose-failed-alerts.ndjson")
}

fn default_insight_severity() -> String {
    "medium".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertOutputConfig {
    /// Appends one JSON line per alert.
    Ndjson(NdjsonAlertOutput),
    Stdout(StdoutAlertOutput),
    /// Publishes each alert to an SNS topic (subject: a one-line summary).
    Sns(SnsAlertOutput),
    /// POSTs each alert as `application/json`.
    Webhook(WebhookAlertOutput),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonAlertOutput {
    pub path: PathBuf,
    /// fsync after every batch of alerts.
    #[serde(default)]
    pub fsync: bool,
    pub min_severity: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutAlertOutput {
    pub min_severity: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsAlertOutput {
    pub topic_arn: String,
    /// Region of the topic (default: from the ARN).
    pub region: Option<String>,
    /// Endpoint override (tests, VPC endpoints).
    pub endpoint_url: Option<String>,
    pub min_severity: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAlertOutput {
    /// `http://` or `https://`.
    pub url: String,
    /// Extra request headers (e.g. an authorization token).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Before 0.2: retries of a failed POST. Still read, no longer used: the detection
    /// stage retries every output under `[detection.delivery]` (the delivery contract).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    pub min_severity: Option<String>,
}

fn default_timeout_ms() -> u64 {
    5000
}

fn default_retries() -> u32 {
    3
}

/// Insights-style anomaly detection. Unset tuning values take the detector's defaults
/// (documented in `crates/detect/src/anomaly/mod.rs` and the README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The learned baseline, kept across restarts.
    #[serde(default = "default_state_path")]
    pub state_path: PathBuf,
    /// Also append the Insights events (CloudTrail format) to this NDJSON file.
    pub insights_path: Option<PathBuf>,
    /// How often (wall clock) the state file is rewritten while running; always at shutdown.
    #[serde(default = "default_persist_secs")]
    pub persist_interval_secs: u64,
    pub baseline_window_minutes: Option<u32>,
    pub bucket_minutes: Option<u32>,
    pub detection_window_minutes: Option<u32>,
    pub min_baseline_minutes: Option<u32>,
    pub p_value: Option<f64>,
    pub min_ratio: Option<f64>,
    pub min_count: Option<u32>,
    pub lateness_minutes: Option<u32>,
    pub max_keys: Option<usize>,
    pub max_insight_minutes: Option<u32>,
    pub call_rate: Option<bool>,
    pub error_rate: Option<bool>,
    pub include_data_events: Option<bool>,
}

fn default_state_path() -> PathBuf {
    PathBuf::from("trailhose-insights-state.json")
}

fn default_persist_secs() -> u64 {
    60
}

impl AlertOutputConfig {
    pub fn min_severity(&self) -> Option<&str> {
        match self {
            AlertOutputConfig::Ndjson(c) => c.min_severity.as_deref(),
            AlertOutputConfig::Stdout(c) => c.min_severity.as_deref(),
            AlertOutputConfig::Sns(c) => c.min_severity.as_deref(),
            AlertOutputConfig::Webhook(c) => c.min_severity.as_deref(),
        }
    }
}

impl DetectionConfig {
    /// Problems the types cannot express. Rule files and anomaly tuning are checked when the
    /// detector is built (`trailhose check-config` does that too).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let sev = |where_: &str, s: &str, p: &mut Vec<String>| {
            if !SEVERITIES.contains(&s) {
                p.push(format!(
                    "{where_} = \"{s}\" is not one of {}",
                    SEVERITIES.join(", ")
                ));
            }
        };
        sev("detection.insight_severity", &self.insight_severity, &mut p);
        for (i, o) in self.outputs.iter().enumerate() {
            if let Some(s) = o.min_severity() {
                sev(&format!("detection.outputs[{i}].min_severity"), s, &mut p);
            }
            match o {
                AlertOutputConfig::Sns(s) if !s.topic_arn.starts_with("arn:") => p.push(format!(
                    "detection.outputs[{i}]: topic_arn `{}` is not an ARN",
                    s.topic_arn
                )),
                AlertOutputConfig::Webhook(w) => {
                    if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                        p.push(format!(
                            "detection.outputs[{i}]: url `{}` must start with http:// or https://",
                            w.url
                        ));
                    }
                    if w.timeout_ms == 0 {
                        p.push(format!(
                            "detection.outputs[{i}]: timeout_ms must be above 0"
                        ));
                    }
                }
                _ => {}
            }
        }
        if !self.builtin_rules && self.rules_dir.is_none() && self.anomaly.is_none() {
            p.push(
                "[detection] has no rules (builtin_rules = false, no rules_dir) and no anomaly \
                 detection: nothing to detect"
                    .into(),
            );
        }
        if self.outputs.is_empty()
            && self
                .anomaly
                .as_ref()
                .is_none_or(|a| a.insights_path.is_none())
        {
            p.push("[detection] has no [[detection.outputs]]: alerts would only be counted".into());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    const BASE: &str = r#"
[source]
type = "dir"
path = "sample"

[[sinks]]
type = "discard"
name = "d"
"#;

    #[test]
    fn parses_every_output_and_anomaly_tuning() {
        let text = format!(
            "{BASE}\n[detection]\ndisable = [\"cis-vpc-changes\"]\n\n[[detection.outputs]]\ntype = \"ndjson\"\npath = \"a.ndjson\"\n\n[[detection.outputs]]\ntype = \"stdout\"\nmin_severity = \"high\"\n\n[[detection.outputs]]\ntype = \"sns\"\ntopic_arn = \"arn:aws:sns:us-east-1:123456789012:alerts\"\n\n[[detection.outputs]]\ntype = \"webhook\"\nurl = \"https://example.com/hook\"\nheaders = {{ Authorization = \"Bearer x\" }}\n\n[detection.anomaly]\nstate_path = \"s.json\"\nmin_count = 20\n"
        );
        let c = Config::from_toml(&text, "t.toml").expect("valid");
        let d = c.detection.expect("detection section");
        assert!(d.builtin_rules);
        assert_eq!(d.outputs.len(), 4);
        let a = d.anomaly.expect("anomaly");
        assert_eq!(a.min_count, Some(20));
        assert_eq!(a.p_value, None);
    }

    #[test]
    fn detection_is_optional_and_validated() {
        let c = Config::from_toml(BASE, "t.toml").expect("valid");
        assert!(c.detection.is_none());
        let bad = format!(
            "{BASE}\n[detection]\ninsight_severity = \"urgent\"\n[[detection.outputs]]\ntype = \"webhook\"\nurl = \"ftp://x\"\n"
        );
        let e = Config::from_toml(&bad, "t.toml")
            .expect_err("invalid")
            .to_string();
        assert!(e.contains("urgent") && e.contains("ftp://x"), "{e}");
        let typo = format!("{BASE}\n[detection]\nrule_dir = \"x\"\n");
        let e = Config::from_toml(&typo, "t.toml")
            .expect_err("typo")
            .to_string();
        assert!(e.contains("rule_dir"), "{e}");
    }
}
