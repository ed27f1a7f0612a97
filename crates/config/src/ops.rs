//! `[ops]`: the operations listener and OpenTelemetry export.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// Address of the `/metrics`, `/healthz`, `/readyz` listener; empty = off.
    pub listen: String,
    /// OTLP/HTTP endpoint (e.g. `http://otel-collector:4318`); empty = no export.
    pub otlp_endpoint: String,
    pub service_name: String,
    pub export_interval_seconds: u64,
    /// Log filter (e.g. `info`, `trailhose_worker=debug,warn`); `TRAILHOSE_LOG` overrides it.
    pub log_level: String,
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig {
            listen: String::new(),
            otlp_endpoint: String::new(),
            service_name: "trailhose".into(),
            export_interval_seconds: 10,
            log_level: String::new(),
        }
    }
}

impl OpsConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.listen.is_empty() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!(
                "ops.listen = {:?} is not an address like 0.0.0.0:9898",
                self.listen
            ));
        }
        if !self.otlp_endpoint.is_empty()
            && !self.otlp_endpoint.starts_with("http://")
            && !self.otlp_endpoint.starts_with("https://")
        {
            p.push(format!(
                "ops.otlp_endpoint = {:?} must be an http(s) URL",
                self.otlp_endpoint
            ));
        }
        if self.export_interval_seconds == 0 {
            p.push("ops.export_interval_seconds must be > 0".into());
        }
        p
    }
}
