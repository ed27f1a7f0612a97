//! What an SRE needs to run trailhose: metrics (Prometheus text on the ops listener),
//! health and readiness, and progress reporting for long local commands.

pub mod http;
pub mod metrics;
pub mod otel;
pub mod progress;

pub use http::{serve, Health};
pub use metrics::{Counter, Gauge, Histogram, Registry};
