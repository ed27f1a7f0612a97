//! The delivery contract every sink keeps, and the engine the batched network sinks share.
//!
//! - [`config`]: `[sinks.delivery]`, one set of names for every sink.
//! - [`breaker`]: the per-sink circuit breaker and the [`DeliveryControl`] board the source
//!   watches (pause receiving while a sink is refused or down; stop retrying on shutdown).
//! - [`dead_letters`]: where records the destination can never take go, durably.
//! - [`engine`]: batching, linger, bounded requests in flight, rate limits with AIMD, jittered
//!   backoff honouring `Retry-After`, the failure classes, per-record refusal and the
//!   acknowledgement bookkeeping; a sink supplies only a [`Transport`].
//!
//! Failure classes (the same for every sink):
//!
//! | what happened | example | the engine does |
//! |---|---|---|
//! | the destination can never take *this record* | too old, too large, `rejectedLogEventsInfo`, a per-item 4xx | dead-letter the record with its reason, acknowledge it |
//! | transient | throttling, 5xx, timeout, connection refused, DNS, disk full | retry with backoff; while the breaker is closed up to `max_retry_duration`, then fail the delivery (the object comes back); three whole-request failures in a row (not throttling) open the breaker |
//! | the sink itself is refused | AccessDenied, expired credentials, 401/403, KMS denied | open the breaker |
//! | (breaker open) | | hold every delivery behind it, one probe at a time; fail only on shutdown |

pub mod breaker;
pub mod config;
pub mod dead_letters;
pub mod engine;

pub use breaker::{
    far_future, pause, Admission, Breaker, DeliveryControl, FailureClass, OpenBreaker,
    ProbeSchedule,
};
pub use config::{DeliveryConfig, DeliveryOverrides};
pub use dead_letters::{DeadLetterPlace, LocalDeadLetters, RefusedRecord};
pub use engine::{BatchSink, Doc, Prepared, Refusal, Transport, Verdict};
