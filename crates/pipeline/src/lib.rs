//! The pipeline: sources produce record chunks, the router fans them out to sinks over bounded
//! channels, and acknowledgements flow back per object so a source knows when every record of
//! an object reached every sink.
//!
//! - [`ack`]: per-object acknowledgement (what lets the SQS worker delete a message safely).
//! - [`chunk`]: the unit of transport.
//! - [`emit`]: object bytes → chunks (shared by all sources).
//! - [`router`]: the fan-out stage and run counters.
//! - [`filter`]: per-sink record selection.
//! - [`sink`]: the sink contract; [`sinks`]: local sinks.
//! - [`dir_source`]: local directory source; [`deadletter`]: the local dead-letter file.
//! - [`linefile`]: the one writer of line-oriented files (whole lines, no torn or doubled
//!   line, rotation, unique names per process).
//! - [`delivery`]: the delivery contract: one engine for batched sinks, failure classes,
//!   circuit breakers, durable dead-letter places.
//! - [`settle`]: the one rule by which every source settles an object (forget, dead-letter,
//!   retry).
//! - [`rate`]: request/byte rate limits, AIMD and backoff shared by the batched network sinks.

pub mod ack;
pub mod chunk;
pub mod deadletter;
pub mod delivery;
pub mod dir_source;
pub mod dispatch;
pub mod emit;
pub mod filter;
pub mod linefile;
pub mod rate;
pub mod router;
pub mod settle;
pub mod sink;
pub mod sinks;
pub mod template;

pub use ack::{AckToken, ObjectAck, ObjectOutcome};
pub use chunk::{ObjectMeta, RecordChunk, RecordMeta};
pub use router::{Pipeline, PipelineStats, Routed, SinkSpec};
pub use sink::{Delivery, Sink, SinkFuture, SinkReport};
