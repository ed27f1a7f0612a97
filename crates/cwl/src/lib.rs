//! CloudWatch Logs sink.
//!
//! - [`batch`]: the PutLogEvents rules as pure functions (admission, batch cutting,
//!   `rejectedLogEventsInfo`), property-tested.
//! - [`rate`]: governor limiters, AIMD on throttling, backoff (the pipeline's, re-exported).
//! - [`sink`]: the destination, the rules and the error classes on top of the shared
//!   delivery engine, which batches, retries, opens the breaker and dead-letters.

pub mod batch;
pub mod rate;
pub mod sink;

pub use sink::{classify, client_for, client_from, sink, system_now_ms, CloudWatchLogsSink};
