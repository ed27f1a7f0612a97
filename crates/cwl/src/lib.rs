//! CloudWatch Logs sink.
//!
//! - [`batch`]: the PutLogEvents rules as pure functions (admission, batch cutting,
//!   `rejectedLogEventsInfo`), property-tested.
//! - [`rate`]: governor limiters, AIMD on throttling, backoff.
//! - [`overflow`]: the overflow file for records CloudWatch Logs cannot take.
//! - [`sink`]: the pipeline sink that puts it together.

pub mod batch;
pub mod overflow;
pub mod rate;
pub mod sink;

pub use sink::{client_for, client_from, CloudWatchLogsSink};
