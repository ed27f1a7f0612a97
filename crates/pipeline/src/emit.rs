//! Turns one object's bytes into chunks on the router's channel. Shared by every source: the
//! directory source calls [`emit_reader`] on a blocking thread; the S3 source drives a
//! [`ChunkBuilder`] from its async stream.

use crate::ack::ObjectAck;
use crate::chunk::{ObjectMeta, RecordChunk};
use crate::router::Routed;
use std::io::Read;
use std::sync::Arc;
use tokio::sync::mpsc;
use trailhose_core::{read_records, FieldMode, FileStats, Limits, ParseError, Record};

/// How records are grouped for the trip through the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    pub max_records: usize,
    pub max_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_records: 1000,
            max_bytes: 1 << 20,
        }
    }
}

/// Accumulates records of one object and yields a chunk when a limit is reached.
pub struct ChunkBuilder {
    object: Arc<ObjectMeta>,
    limits: ChunkLimits,
    current: RecordChunk,
}

impl ChunkBuilder {
    pub fn new(object: Arc<ObjectMeta>, limits: ChunkLimits) -> Self {
        let current = RecordChunk::new(object.clone(), limits.max_bytes);
        ChunkBuilder {
            object,
            limits,
            current,
        }
    }

    /// Adds a record; returns a full chunk when this one filled it.
    pub fn push(&mut self, rec: Record<'_>) -> Option<RecordChunk> {
        let fields = rec.fields.unwrap_or_default();
        self.current
            .push(rec.raw.bytes, rec.raw.index, fields, rec.raw.has_line_break);
        if self.current.len() >= self.limits.max_records
            || self.current.data.len() >= self.limits.max_bytes
        {
            return Some(self.take());
        }
        None
    }

    /// Record bytes in the chunk being built (below `max_bytes`: a full chunk is handed out).
    pub fn pending_bytes(&self) -> usize {
        self.current.data.len()
    }

    /// The partial chunk, if any.
    pub fn finish(mut self) -> Option<RecordChunk> {
        (!self.current.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> RecordChunk {
        std::mem::replace(
            &mut self.current,
            RecordChunk::new(self.object.clone(), self.limits.max_bytes),
        )
    }
}

/// Reads one object synchronously and sends its chunks, blocking on a full channel. Must run
/// on a blocking thread. Records before a parse fault are sent; the fault is returned.
pub fn emit_reader<R: Read>(
    input: R,
    object: Arc<ObjectMeta>,
    limits: &Limits,
    chunking: ChunkLimits,
    ack: &ObjectAck,
    tx: &mpsc::Sender<Routed>,
) -> (FileStats, Result<(), ParseError>) {
    let mut builder = ChunkBuilder::new(object, chunking);
    let mut closed = false;
    let send = |chunk: RecordChunk, closed: &mut bool| {
        if *closed {
            return;
        }
        let routed = Routed {
            chunk: Arc::new(chunk),
            token: ack.token(),
        };
        if let Err(mpsc::error::SendError(r)) = tx.blocking_send(routed) {
            r.token
                .fail("pipeline closed while the object was being read");
            *closed = true;
        }
    };
    let (stats, result) = read_records(input, limits, FieldMode::Extract, |rec| {
        if let Some(chunk) = builder.push(rec) {
            send(chunk, &mut closed);
        }
    });
    if let Some(chunk) = builder.finish() {
        send(chunk, &mut closed);
    }
    (stats, result)
}
