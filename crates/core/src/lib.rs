//! Pure CloudTrail parsing: no I/O of its own, no async runtime. Everything that decides what
//! bytes mean lives here so it can be tested and benchmarked without AWS.
//!
//! - [`decompress`]: format sniffing by magic bytes, the size/ratio guard.
//! - [`splitter`]: streaming split of `{"Records":[...]}` into exact record byte ranges.
//! - `fastscan`: one-pass validation and key fields for the records CloudTrail writes.
//! - [`fields`]: key fields of a record with simd-json (the reference, and the slow path).
//! - [`reader`]: the synchronous path from a `Read` to records.
//! - [`keys`]: S3 key layouts (log, digest, insight).
//! - [`notify`]: SQS message bodies to the S3 objects they name.
//! - [`timefmt`]: RFC 3339 timestamps.

mod blockscan;
pub mod decompress;
pub mod error;
mod fastscan;
pub mod fields;
pub mod keys;
pub mod notify;
pub mod reader;
pub mod splitter;
pub mod sync;
pub mod timefmt;

pub use decompress::{DecompressGuard, Format};
pub use error::ParseError;
pub use fields::{FieldParser, KeyFields};
pub use reader::{read_records, FieldMode, FileStats, Record, PARSE_BATCH_BYTES};
pub use splitter::{Limits, RawRecord, RecordSpan, RecordSplitter};
