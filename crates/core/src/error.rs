//! Typed errors of the parser core. Every variant says what failed and where, so a one-line
//! message naming the file (added by the caller) is enough to act on it.

use thiserror::Error;

/// Why a CloudTrail file could not be read to its end. Records before the fault have already
/// been handed out when this is returned.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("unrecognised input: {0}")]
    UnknownFormat(String),
    #[error("corrupt {format} stream after {decompressed_offset} decompressed bytes: {reason}")]
    Decompress {
        format: &'static str,
        decompressed_offset: u64,
        reason: String,
    },
    #[error("I/O error after {decompressed_offset} decompressed bytes: {reason}")]
    Io {
        decompressed_offset: u64,
        reason: String,
    },
    #[error("decompressed size exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("decompression ratio {ratio}:1 exceeds the limit of {limit}:1 (possible zip bomb)")]
    RatioExceeded { ratio: u64, limit: u64 },
    #[error("truncated JSON at byte {offset}: input ended inside {context}")]
    Truncated { offset: u64, context: &'static str },
    #[error("invalid JSON at byte {offset}: expected {expected}, found {found}")]
    Syntax {
        offset: u64,
        expected: &'static str,
        found: String,
    },
    #[error("file has no top-level \"Records\" array")]
    NoRecordsArray,
    #[error("record {index} at byte {offset} is not a JSON object (found {found})")]
    RecordNotObject {
        index: u64,
        offset: u64,
        found: String,
    },
    #[error("record {index} at byte {offset} nests deeper than the limit of {limit}")]
    TooDeep { index: u64, offset: u64, limit: u32 },
    #[error("record {index} at byte {offset} is larger than the limit of {limit} bytes")]
    RecordTooLarge {
        index: u64,
        offset: u64,
        limit: usize,
    },
    #[error("record {index} at byte {offset} is not valid JSON: {reason}")]
    InvalidRecord {
        index: u64,
        offset: u64,
        reason: String,
    },
}

impl ParseError {
    /// A short stable label, used as a metric attribute and in dead-letter reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::UnknownFormat(_) => "unknown_format",
            ParseError::Decompress { .. } => "corrupt_compression",
            ParseError::Io { .. } => "io",
            ParseError::TooLarge { .. } => "too_large",
            ParseError::RatioExceeded { .. } => "ratio_exceeded",
            ParseError::Truncated { .. } => "truncated",
            ParseError::Syntax { .. } => "syntax",
            ParseError::NoRecordsArray => "no_records_array",
            ParseError::RecordNotObject { .. } => "record_not_object",
            ParseError::TooDeep { .. } => "too_deep",
            ParseError::RecordTooLarge { .. } => "record_too_large",
            ParseError::InvalidRecord { .. } => "invalid_record",
        }
    }

    /// Whether retrying the same bytes could succeed. Only transport faults qualify; every
    /// content fault is permanent and belongs in the dead-letter place.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ParseError::Io { .. })
    }
}
