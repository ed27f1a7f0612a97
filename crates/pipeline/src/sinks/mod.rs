//! Local sinks: NDJSON (rotating files or stdout) and a discarding sink for benchmarks.

pub mod discard;
pub mod ndjson;
