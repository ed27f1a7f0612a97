//! SIEM sinks and output shapes.
//!
//! - [`format`]: `raw`, `ecs` (Elastic Common Schema as the Elastic CloudTrail integration
//!   maps it) and `ocsf` (OCSF 1.1 API Activity as Security Lake maps it), table-driven.
//! - [`engine`]: how a record becomes a document (shape, destination); batching, retries, the
//!   breaker, dead letters and acknowledgements are the shared delivery engine's.
//! - [`hec`]: Splunk HTTP Event Collector (optional indexer acknowledgement).
//! - [`bulk`]: OpenSearch / Elasticsearch `_bulk`, `_id` = eventID, per-item errors.
//! - [`generic`]: any HTTP endpoint, NDJSON or JSON array, gzip, headers.
//! - [`kafka`]: Kafka via `rskafka`, topic template, key = eventID.
//! - [`http`]: the hyper/rustls client (system roots + optional CA file, timeouts).
//! - [`secret`]: tokens and passwords from the environment or a file, never from the config.
//! - [`routing`]: compiles `[sinks.filter] pattern` (filter-pattern syntax) for the router.

pub mod bulk;
pub mod engine;
pub mod format;
pub mod generic;
pub mod hec;
pub mod http;
pub mod kafka;
pub mod routing;
pub mod secret;

pub use engine::{BatchSink, Doc, Transport, Verdict};

use trailhose_config::SinkConfig;
use trailhose_pipeline::SinkSpec;

/// Builds the pipeline sink for a SIEM sink config (`splunk_hec`, `opensearch`, `http`,
/// `kafka`). Secrets are read here, from the environment or files the config names. Errors
/// for any other sink type.
pub fn spec(
    cfg: &SinkConfig,
    dead_letters: std::sync::Arc<dyn trailhose_pipeline::delivery::DeadLetterPlace>,
) -> Result<SinkSpec, String> {
    let dl = dead_letters;
    let (sink, filter): (Box<dyn trailhose_pipeline::Sink>, _) = match cfg {
        SinkConfig::SplunkHec(c) => (Box::new(hec::sink(c, dl)?), c.filter.clone()),
        SinkConfig::Opensearch(c) => (Box::new(bulk::sink(c, dl)?), c.filter.clone()),
        SinkConfig::Http(c) => (Box::new(generic::sink(c, dl)?), c.filter.clone()),
        SinkConfig::Kafka(c) => (Box::new(kafka::sink(c, dl)?), c.filter.clone()),
        other => return Err(format!("sink {} is not a SIEM sink", other.name())),
    };
    let filter = routing::compile(filter).map_err(|e| format!("sink {}: {e}", cfg.name()))?;
    Ok(SinkSpec { sink, filter })
}
