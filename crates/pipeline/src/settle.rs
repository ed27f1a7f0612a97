//! The one rule every source follows once an object is read and its acknowledgement is in:
//! forget it (delete the SQS message, checkpoint the key, count it delivered), record it in
//! the dead-letter place then forget it, or leave it for another try. The directory source,
//! the SQS worker and backfill each execute the answer their own way (a file, a message, a
//! checkpoint line), but none decides it on its own.

use crate::ack::ObjectOutcome;

/// A read fault, as the settle rule needs to see it.
pub trait ReadFault: std::fmt::Display {
    /// A short stable label (`corrupt_compression`, `no_such_key`, …).
    fn kind(&self) -> &'static str;
    /// Whether reading the same object again could succeed (transport faults).
    fn is_retryable(&self) -> bool;
}

impl ReadFault for trailhose_core::ParseError {
    fn kind(&self) -> &'static str {
        trailhose_core::ParseError::kind(self)
    }

    fn is_retryable(&self) -> bool {
        trailhose_core::ParseError::is_retryable(self)
    }
}

/// What to do with an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Every record reached every sink or its dead-letter place: forget the object.
    Delivered { records: u64 },
    /// The object cannot be read past `records_before_fault` (those were delivered): record
    /// it in the dead-letter place with the reason, then forget it.
    DeadLetter {
        kind: &'static str,
        reason: String,
        records_before_fault: u64,
    },
    /// Try again later. `sink_caused`: a sink did not take every record (the object itself is
    /// fine, so this must never count toward a poison limit).
    Retry {
        kind: &'static str,
        reason: String,
        sink_caused: bool,
    },
}

/// Stable labels of retries.
pub mod kind {
    pub const SINK_FAILED: &str = "sink_failed";
    pub const ACK_LOST: &str = "ack_lost";
}

/// Decides an object's fate from how its read ended (`records` read before the end or the
/// fault) and its acknowledgement (`None`: it was lost). A transient read fault retries
/// whatever the sinks said; a sink's failure retries; a permanent fault dead-letters only
/// once the records before it are delivered.
pub fn settle<E: ReadFault>(
    read: Result<(), &E>,
    records: u64,
    outcome: Option<&ObjectOutcome>,
) -> Settlement {
    if let Err(e) = read {
        if e.is_retryable() {
            return Settlement::Retry {
                kind: e.kind(),
                reason: e.to_string(),
                sink_caused: false,
            };
        }
    }
    match (read, outcome) {
        (_, Some(ObjectOutcome::Failed { reasons })) => Settlement::Retry {
            kind: kind::SINK_FAILED,
            reason: reasons.join("; "),
            sink_caused: true,
        },
        (_, None) => Settlement::Retry {
            kind: kind::ACK_LOST,
            reason: "the acknowledgement was lost".into(),
            sink_caused: false,
        },
        (Ok(()), Some(ObjectOutcome::Delivered { .. })) => Settlement::Delivered { records },
        (Err(e), Some(ObjectOutcome::Delivered { .. })) => Settlement::DeadLetter {
            kind: e.kind(),
            reason: e.to_string(),
            records_before_fault: records,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhose_core::ParseError;

    fn delivered() -> Option<ObjectOutcome> {
        Some(ObjectOutcome::Delivered { dead_lettered: 0 })
    }

    #[test]
    fn every_combination_has_one_answer() {
        let corrupt = ParseError::Truncated {
            offset: 10,
            context: "record",
        };
        let io = ParseError::Io {
            decompressed_offset: 0,
            reason: "connection reset".into(),
        };
        let failed = Some(ObjectOutcome::Failed {
            reasons: vec!["cwl: not delivered (sink_refused): AccessDenied".into()],
        });
        assert_eq!(
            settle::<ParseError>(Ok(()), 5, delivered().as_ref()),
            Settlement::Delivered { records: 5 }
        );
        match settle(Err(&corrupt), 3, delivered().as_ref()) {
            Settlement::DeadLetter {
                kind,
                records_before_fault,
                ..
            } => {
                assert_eq!(kind, "truncated");
                assert_eq!(records_before_fault, 3);
            }
            other => panic!("{other:?}"),
        }
        // A sink's failure wins over a permanent fault: the delivered part comes back too.
        assert!(matches!(
            settle(Err(&corrupt), 3, failed.as_ref()),
            Settlement::Retry {
                sink_caused: true,
                ..
            }
        ));
        assert!(matches!(
            settle::<ParseError>(Ok(()), 3, failed.as_ref()),
            Settlement::Retry { sink_caused: true, ref reason, .. } if reason.contains("AccessDenied")
        ));
        // A transport fault retries whatever the sinks said, and is not the sinks' fault.
        assert!(matches!(
            settle(Err(&io), 3, delivered().as_ref()),
            Settlement::Retry {
                sink_caused: false,
                kind: "io",
                ..
            }
        ));
        assert!(matches!(
            settle::<ParseError>(Ok(()), 3, None),
            Settlement::Retry {
                sink_caused: false,
                kind: kind::ACK_LOST,
                ..
            }
        ));
    }
}
