//! The streaming S3 read: GetObject → ByteStream → tokio `AsyncBufRead` → format sniff →
//! gzip (multi-member) / zstd / plain → [`RecordSplitter`] → [`FieldParser`] →
//! [`ChunkBuilder`] → the pipeline's bounded channel. A full channel makes the read wait
//! (backpressure); memory per object is one read chunk, the decoder state and one partial
//! record. The [`DecompressGuard`] is checked against the compressed bytes actually consumed.
//!
//! With a [`ReadBudget`] (the SQS worker's), the reader holds a [`Grant`] sized, before every
//! read, to twice its record in progress plus the read chunk (the splitter's bytes and their
//! copy into chunks) plus the chunk being built, and before every simd-json pass to that plus
//! the pass ([`parse_scratch_bytes`]); it waits when the budget is spent.

use crate::budget::{Grant, ReadBudget};
use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;
use trailhose_core::decompress::{classify_io_error, sniff, SNIFF_LEN};
use trailhose_core::fields::parse_scratch_bytes;
use trailhose_core::reader::READ_CHUNK;
use trailhose_core::sync::lock;
use trailhose_core::{
    DecompressGuard, FieldParser, Format, Limits, ParseError, Record, RecordSpan, RecordSplitter,
    PARSE_BATCH_BYTES,
};
use trailhose_pipeline::emit::{ChunkBuilder, ChunkLimits};
use trailhose_pipeline::{ObjectAck, ObjectMeta, RecordChunk, Routed};

/// What one object read produced, whether or not it ended in an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    pub format: Option<Format>,
    /// Bytes of the object body consumed.
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    /// Records sent to the pipeline.
    pub records: u64,
    pub chunks: u64,
    /// GetObject call until response headers.
    pub first_byte: Option<Duration>,
}

/// Why an object could not be read to its end. Records before a content fault have been sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("NoSuchKey: the object does not exist")]
    NoSuchKey,
    /// Retryable: a policy or trust relationship may be fixed; the caller's receive-count
    /// guard turns a persistent denial into a dead letter.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Throttling, 5xx, network, timeouts, a connection lost mid-stream.
    #[error("transient S3 error: {0}")]
    Transient(String),
    /// Any other refusal by S3 (e.g. `NoSuchBucket`, `InvalidObjectState`): retrying the same
    /// request cannot succeed.
    #[error("S3 refused the request: {0}")]
    Refused(String),
    #[error(transparent)]
    Content(ParseError),
    #[error("the pipeline closed while the object was being read")]
    PipelineClosed,
}

impl ReadError {
    /// Stable label for metrics and dead-letter reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            ReadError::NoSuchKey => "no_such_key",
            ReadError::AccessDenied(_) => "access_denied",
            ReadError::Transient(_) => "s3_transient",
            ReadError::Refused(_) => "s3_refused",
            ReadError::Content(e) => e.kind(),
            ReadError::PipelineClosed => "pipeline_closed",
        }
    }

    /// Whether reading the same object again could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReadError::AccessDenied(_) | ReadError::Transient(_) | ReadError::PipelineClosed => {
                true
            }
            ReadError::Content(e) => e.is_retryable(),
            ReadError::NoSuchKey | ReadError::Refused(_) => false,
        }
    }
}

impl From<ParseError> for ReadError {
    fn from(e: ParseError) -> Self {
        ReadError::Content(e)
    }
}

/// Maps a GetObject failure to retryable / permanent.
pub fn classify_get_object_error(e: &SdkError<GetObjectError, HttpResponse>) -> ReadError {
    let text = DisplayErrorContext(e).to_string();
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            if err.is_no_such_key() {
                return ReadError::NoSuchKey;
            }
            classify_code(err.code(), Some(se.raw().status().as_u16()), text)
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            ReadError::Transient(text)
        }
        // Construction failures (e.g. no credentials yet) may clear up; the receive-count guard
        // bounds the retries.
        _ => ReadError::Transient(text),
    }
}

/// Classifies an S3 error by its code and, when known, the HTTP status.
pub fn classify_code(code: Option<&str>, status: Option<u16>, text: String) -> ReadError {
    match code {
        Some("NoSuchKey") => ReadError::NoSuchKey,
        Some(
            "AccessDenied"
            | "AllAccessDisabled"
            | "InvalidAccessKeyId"
            | "ExpiredToken"
            | "InvalidToken"
            | "SignatureDoesNotMatch"
            | "KMS.AccessDeniedException",
        ) => ReadError::AccessDenied(text),
        Some(
            "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestTimeout"
            | "InternalError"
            | "ServiceUnavailable"
            | "RequestTimeTooSkewed"
            | "KMS.ThrottlingException",
        ) => ReadError::Transient(text),
        Some(
            "NoSuchBucket" | "InvalidObjectState" | "InvalidRange" | "PermanentRedirect"
            | "InvalidBucketName" | "MethodNotAllowed",
        ) => ReadError::Refused(text),
        _ => match status {
            Some(s) if s >= 500 || s == 429 || s == 408 => ReadError::Transient(text),
            Some(403) => ReadError::AccessDenied(text),
            Some(404) => ReadError::NoSuchKey,
            Some(_) => ReadError::Refused(text),
            // No code and no status: a response we could not read; try again.
            None if code.is_none() => ReadError::Transient(text),
            None => ReadError::Refused(text),
        },
    }
}

/// Counts consumed bytes and remembers whether the underlying transport failed, so a decoder
/// error caused by a dropped connection is not mistaken for a corrupt file.
#[derive(Debug, Default)]
struct Probe {
    consumed: AtomicU64,
    transport_error: Mutex<Option<String>>,
}

impl Probe {
    fn transport_error(&self) -> Option<String> {
        lock(&self.transport_error).clone()
    }

    fn set_transport_error(&self, e: &io::Error) {
        let mut g = lock(&self.transport_error);
        if g.is_none() {
            *g = Some(e.to_string());
        }
    }
}

struct Counted<R> {
    inner: R,
    probe: Arc<Probe>,
}

impl<R: AsyncBufRead + Unpin> AsyncBufRead for Counted<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_fill_buf(cx) {
            Poll::Ready(Err(e)) => {
                this.probe.set_transport_error(&e);
                Poll::Ready(Err(e))
            }
            other => other,
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.probe.consumed.fetch_add(amt as u64, Ordering::Relaxed);
        Pin::new(&mut this.inner).consume(amt);
    }
}

impl<R: AsyncBufRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = match self.as_mut().poll_fill_buf(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(available)) => {
                let n = available.len().min(buf.remaining());
                buf.put_slice(&available[..n]);
                n
            }
        };
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

/// Reads one object body from any async buffered reader into the pipeline. Records before a
/// content fault are sent; the fault is returned with the report of what was read. Dropping
/// the future (e.g. at shutdown) stops the read at once.
pub async fn read_into_pipeline<R>(
    input: R,
    object: Arc<ObjectMeta>,
    limits: &Limits,
    chunking: ChunkLimits,
    ack: &ObjectAck,
    tx: &mpsc::Sender<Routed>,
) -> (ReadReport, Result<(), ReadError>)
where
    R: AsyncBufRead + Unpin + Send,
{
    let budget = ReadBudget::unlimited();
    read_into_pipeline_within(input, object, limits, chunking, &budget, ack, tx).await
}

/// [`read_into_pipeline`] holding its buffers within `budget` (see the module docs).
#[allow(clippy::too_many_arguments)]
pub async fn read_into_pipeline_within<R>(
    input: R,
    object: Arc<ObjectMeta>,
    limits: &Limits,
    chunking: ChunkLimits,
    budget: &ReadBudget,
    ack: &ObjectAck,
    tx: &mpsc::Sender<Routed>,
) -> (ReadReport, Result<(), ReadError>)
where
    R: AsyncBufRead + Unpin + Send,
{
    let probe = Arc::new(Probe::default());
    let mut report = ReadReport::default();
    let mut grant = budget.grant();
    let result = drive(
        input,
        &probe,
        object,
        limits,
        chunking,
        &mut grant,
        ack,
        tx,
        &mut report,
    )
    .await;
    report.compressed_bytes = probe.consumed.load(Ordering::Relaxed);
    (report, result)
}

#[allow(clippy::too_many_arguments)]
async fn drive<R>(
    input: R,
    probe: &Arc<Probe>,
    object: Arc<ObjectMeta>,
    limits: &Limits,
    chunking: ChunkLimits,
    grant: &mut Grant,
    ack: &ObjectAck,
    tx: &mpsc::Sender<Routed>,
    report: &mut ReadReport,
) -> Result<(), ReadError>
where
    R: AsyncBufRead + Unpin + Send,
{
    let transport = |e: &io::Error, probe: &Probe, offset: u64| ParseError::Io {
        decompressed_offset: offset,
        reason: probe.transport_error().unwrap_or_else(|| e.to_string()),
    };
    let mut input = Counted {
        inner: input,
        probe: probe.clone(),
    };
    // Sniff the first bytes; a network chunk may be shorter than SNIFF_LEN, so collect them.
    let mut prefix = Vec::with_capacity(SNIFF_LEN);
    while prefix.len() < SNIFF_LEN {
        let available = match input.fill_buf().await {
            Ok(a) => a,
            Err(e) => return Err(transport(&e, probe, 0).into()),
        };
        if available.is_empty() {
            break;
        }
        let n = available.len().min(SNIFF_LEN - prefix.len());
        prefix.extend_from_slice(&available[..n]);
        input.consume(n);
    }
    let format = sniff(&prefix)?;
    report.format = Some(format);
    let body = io::Cursor::new(prefix).chain(input);
    let mut decoder: Box<dyn AsyncRead + Unpin + Send> = match format {
        Format::Gzip => {
            let mut d = GzipDecoder::new(body);
            // CloudTrail files are sometimes several gzip members back to back.
            d.multiple_members(true);
            Box::new(d)
        }
        Format::Zstd => {
            let mut d = ZstdDecoder::new(body);
            d.multiple_members(true);
            Box::new(d)
        }
        Format::Json => Box::new(body),
    };

    let guard = DecompressGuard::new(limits);
    let mut splitter = RecordSplitter::new(limits.clone());
    let mut fields = FieldParser::new();
    let mut builder = ChunkBuilder::new(object, chunking);
    let mut batch = Batch::default();
    loop {
        // The splitter will hold what it keeps plus this read; complete records are copied
        // into chunks while it still holds them; the chunk being built stays until it fills.
        let holding = 2 * (splitter.retained_bytes() + READ_CHUNK) + builder.pending_bytes();
        grant.resize(holding).await;
        batch.holding = holding;
        let spare = splitter.spare(READ_CHUNK);
        let spare_len = spare.len();
        let read = decoder.read(spare).await;
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                splitter.commit(spare_len, 0);
                let offset = splitter.bytes_seen();
                if probe.transport_error().is_some() {
                    // The connection failed, not the file: retry the whole object.
                    return Err(transport(&e, probe, offset).into());
                }
                let fault = classify_io_error(format, offset, &e);
                // Records complete before a content fault still go out.
                drain(
                    &mut splitter,
                    &mut fields,
                    &mut builder,
                    &mut batch,
                    grant,
                    ack,
                    tx,
                    report,
                )
                .await?;
                flush_partial(builder, ack, tx, report).await?;
                return Err(fault.into());
            }
        };
        splitter.commit(spare_len, n);
        report.decompressed_bytes = splitter.bytes_seen();
        let checked = guard
            .check(
                probe.consumed.load(Ordering::Relaxed),
                report.decompressed_bytes,
            )
            .map_err(ReadError::from);
        let drained = match checked {
            Ok(()) => {
                drain(
                    &mut splitter,
                    &mut fields,
                    &mut builder,
                    &mut batch,
                    grant,
                    ack,
                    tx,
                    report,
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = drained {
            if !matches!(e, ReadError::PipelineClosed) {
                flush_partial(builder, ack, tx, report).await?;
            }
            return Err(e);
        }
        if n == 0 {
            let finished = splitter.finish().map_err(ReadError::from);
            flush_partial(builder, ack, tx, report).await?;
            return finished;
        }
    }
}

/// What `drain` reuses across calls, and what the grant covers without a simd-json pass.
#[derive(Default)]
struct Batch {
    spans: Vec<RecordSpan>,
    full: Vec<RecordChunk>,
    holding: usize,
}

/// [`FieldParser::next_batch`] in two halves, so the simd-json pass over records the fast path
/// declined is covered by the grant before it runs, and its buffers are given back after.
#[allow(clippy::too_many_arguments)]
async fn drain(
    splitter: &mut RecordSplitter,
    fields: &mut FieldParser,
    builder: &mut ChunkBuilder,
    batch: &mut Batch,
    grant: &mut Grant,
    ack: &ObjectAck,
    tx: &mpsc::Sender<Routed>,
    report: &mut ReadReport,
) -> Result<(), ReadError> {
    // A batch is at most PARSE_BATCH_BYTES past one record, so it fills few chunks.
    loop {
        let Batch {
            spans,
            full,
            holding,
        } = &mut *batch;
        let buf = splitter.next_batch(PARSE_BATCH_BYTES, spans)?;
        if spans.is_empty() {
            return Ok(());
        }
        let scratch = parse_scratch_bytes(buf, spans);
        if scratch > 0 {
            grant.resize(*holding + scratch).await;
        }
        let taken = fields.take_batch(buf, spans, |raw, kf| {
            report.records += 1;
            full.extend(builder.push(Record {
                raw,
                fields: Some(kf),
            }));
        });
        if scratch > 0 {
            fields.release_memory();
            grant.shrink_to(*holding);
        }
        // Chunks completed before a fault still go out.
        for chunk in full.drain(..) {
            send(chunk, ack, tx, report).await?;
        }
        taken?;
    }
}

async fn flush_partial(
    builder: ChunkBuilder,
    ack: &ObjectAck,
    tx: &mpsc::Sender<Routed>,
    report: &mut ReadReport,
) -> Result<(), ReadError> {
    match builder.finish() {
        Some(chunk) => send(chunk, ack, tx, report).await,
        None => Ok(()),
    }
}

async fn send(
    chunk: RecordChunk,
    ack: &ObjectAck,
    tx: &mpsc::Sender<Routed>,
    report: &mut ReadReport,
) -> Result<(), ReadError> {
    let routed = Routed {
        chunk: Arc::new(chunk),
        token: ack.token(),
    };
    match tx.send(routed).await {
        Ok(()) => {
            report.chunks += 1;
            Ok(())
        }
        Err(mpsc::error::SendError(r)) => {
            r.token
                .fail("pipeline closed while the object was being read");
            Err(ReadError::PipelineClosed)
        }
    }
}

/// GetObject `bucket`/`key` and stream it into the pipeline.
#[allow(clippy::too_many_arguments)]
pub async fn stream_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    object: Arc<ObjectMeta>,
    limits: &Limits,
    chunking: ChunkLimits,
    ack: &ObjectAck,
    tx: &mpsc::Sender<Routed>,
) -> (ReadReport, Result<(), ReadError>) {
    let budget = ReadBudget::unlimited();
    stream_object_within(
        client, bucket, key, object, limits, chunking, &budget, ack, tx,
    )
    .await
}

/// [`stream_object`] holding its buffers within `budget` (see the module docs).
#[allow(clippy::too_many_arguments)]
pub async fn stream_object_within(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    object: Arc<ObjectMeta>,
    limits: &Limits,
    chunking: ChunkLimits,
    budget: &ReadBudget,
    ack: &ObjectAck,
    tx: &mpsc::Sender<Routed>,
) -> (ReadReport, Result<(), ReadError>) {
    let started = Instant::now();
    let response = client.get_object().bucket(bucket).key(key).send().await;
    let output = match response {
        Ok(o) => o,
        Err(e) => return (ReadReport::default(), Err(classify_get_object_error(&e))),
    };
    let first_byte = started.elapsed();
    let body: Pin<Box<dyn AsyncBufRead + Send>> = Box::pin(output.body.into_async_read());
    let (mut report, result) =
        read_into_pipeline_within(body, object, limits, chunking, budget, ack, tx).await;
    report.first_byte = Some(first_byte);
    (report, result)
}

impl trailhose_pipeline::settle::ReadFault for ReadError {
    fn kind(&self) -> &'static str {
        ReadError::kind(self)
    }

    fn is_retryable(&self) -> bool {
        ReadError::is_retryable(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use trailhose_pipeline::ObjectOutcome;

    const FILE: &[u8] = br#"{"Records":[{"eventName":"A","eventID":"1"},{"eventName":"B","eventID":"2"},{"eventName":"C","eventID":"3"}]}"#;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("in-memory write");
        e.finish().expect("in-memory write")
    }

    /// Feeds `data` in pieces of `piece` bytes, optionally failing after `fail_after` bytes.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        piece: usize,
        fail_after: Option<usize>,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(limit) = self.fail_after {
                if self.pos >= limit {
                    return Poll::Ready(Err(io::Error::other("connection reset by peer")));
                }
            }
            let end = (self.pos + self.piece)
                .min(self.data.len())
                .min(self.fail_after.unwrap_or(usize::MAX));
            let n = (end - self.pos).min(buf.remaining());
            buf.put_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    fn trickle(data: Vec<u8>, piece: usize, fail_after: Option<usize>) -> impl AsyncBufRead {
        tokio::io::BufReader::with_capacity(
            piece,
            Trickle {
                data,
                pos: 0,
                piece,
                fail_after,
            },
        )
    }

    async fn run(
        input: impl AsyncBufRead + Unpin + Send,
        limits: Limits,
    ) -> (
        Vec<Vec<u8>>,
        ReadReport,
        Result<(), ReadError>,
        ObjectOutcome,
    ) {
        let (tx, mut rx) = mpsc::channel::<Routed>(4);
        let collector = tokio::spawn(async move {
            let mut out = Vec::new();
            while let Some(r) = rx.recv().await {
                for m in &r.chunk.records {
                    out.push(r.chunk.bytes_of(m).to_vec());
                }
                r.token.ack();
            }
            out
        });
        let (ack, outcome) = ObjectAck::new();
        let meta = Arc::new(ObjectMeta::default());
        let chunking = ChunkLimits {
            max_records: 2,
            max_bytes: 1 << 20,
        };
        let (report, result) = read_into_pipeline(input, meta, &limits, chunking, &ack, &tx).await;
        drop(ack);
        drop(tx);
        let records = collector.await.expect("collector");
        let outcome = outcome.await.expect("outcome");
        (records, report, result, outcome)
    }

    fn expected() -> Vec<Vec<u8>> {
        vec![
            br#"{"eventName":"A","eventID":"1"}"#.to_vec(),
            br#"{"eventName":"B","eventID":"2"}"#.to_vec(),
            br#"{"eventName":"C","eventID":"3"}"#.to_vec(),
        ]
    }

    #[tokio::test]
    async fn gzip_multimember_zstd_and_plain_in_tiny_pieces() {
        let mut multi = gz(&FILE[..40]);
        multi.extend(gz(&FILE[40..]));
        let zst = zstd::encode_all(FILE, 1).expect("zstd");
        for (data, format) in [
            (FILE.to_vec(), Format::Json),
            (gz(FILE), Format::Gzip),
            (multi.clone(), Format::Gzip),
            (zst, Format::Zstd),
        ] {
            let len = data.len() as u64;
            let (records, report, result, outcome) =
                run(trickle(data, 3, None), Limits::default()).await;
            assert_eq!(result, Ok(()));
            assert_eq!(records, expected());
            assert_eq!(report.format, Some(format));
            assert_eq!(report.records, 3);
            assert_eq!(report.chunks, 2, "chunks of at most 2 records");
            assert_eq!(report.compressed_bytes, len);
            assert_eq!(report.decompressed_bytes, FILE.len() as u64);
            assert_eq!(outcome, ObjectOutcome::Delivered { dead_lettered: 0 });
        }
    }

    #[tokio::test]
    async fn corrupt_gzip_is_permanent_and_records_before_it_are_sent() {
        let mut data = gz(FILE);
        data.truncate(data.len() - 12);
        let (_records, _report, result, _) = run(trickle(data, 7, None), Limits::default()).await;
        let e = result.expect_err("truncated gzip");
        assert!(!e.is_retryable(), "{e:?}");
        assert_eq!(e.kind(), "corrupt_compression");

        let (records, _, result, _) = run(
            trickle(b"not json at all".to_vec(), 4, None),
            Limits::default(),
        )
        .await;
        assert!(records.is_empty());
        assert_eq!(result.map_err(|e| e.kind()), Err("unknown_format"));

        // A bad record after two good ones: the two go out, the file is a content fault.
        let bad = br#"{"Records":[{"a":1},{"b":2},{"c":}]}"#;
        let (records, _, result, _) = run(trickle(bad.to_vec(), 5, None), Limits::default()).await;
        assert_eq!(records.len(), 2);
        assert!(!result.expect_err("invalid record").is_retryable());
    }

    #[tokio::test]
    async fn transport_failure_mid_gzip_is_retryable() {
        let big: Vec<u8> = {
            let mut v = b"{\"Records\":[".to_vec();
            for i in 0..2000 {
                if i > 0 {
                    v.push(b',');
                }
                v.extend_from_slice(
                    format!("{{\"eventID\":\"{i}\",\"pad\":\"{i:0>40}\"}}").as_bytes(),
                );
            }
            v.extend_from_slice(b"]}");
            v
        };
        let data = gz(&big);
        let cut = data.len() / 2;
        let (_, report, result, _) = run(trickle(data, 64, Some(cut)), Limits::default()).await;
        let e = result.expect_err("reset");
        assert!(e.is_retryable(), "{e:?}");
        assert!(e.to_string().contains("connection reset"), "{e}");
        assert_eq!(report.compressed_bytes, cut as u64);
    }

    #[tokio::test]
    async fn ratio_guard_counts_compressed_bytes() {
        let mut big = b"{\"Records\":[{\"pad\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'a', 4 << 20));
        big.extend_from_slice(b"\"}]}");
        let limits = Limits {
            max_ratio: 10,
            ratio_grace_bytes: 64 * 1024,
            ..Limits::default()
        };
        let (_, _, result, _) = run(trickle(gz(&big), 4096, None), limits).await;
        assert_eq!(result.map_err(|e| e.kind()), Err("ratio_exceeded"));
    }

    /// Six objects, each with a 3 MiB record (one of them declined by the fast scanner, so it
    /// goes through simd-json) among small ones, read at once within a budget that has room
    /// for one such record beyond a small pool: every record arrives, the readers take turns,
    /// and together they never hold more than the budget.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_large_records_stay_within_a_shared_budget() {
        const MIB: usize = 1 << 20;
        let records_of = |i: usize| {
            let big = "x".repeat(3 * MIB);
            // An exponent makes the fast scanner decline the record.
            let number = if i == 0 { "1e5" } else { "15" };
            vec![
                format!(r#"{{"eventID":"{i}-a"}}"#).into_bytes(),
                format!(r#"{{"eventID":"{i}-big","n":{number},"pad":"{big}"}}"#).into_bytes(),
                format!(r#"{{"eventID":"{i}-b"}}"#).into_bytes(),
            ]
        };
        let file = |i: usize| {
            [
                &b"{\"Records\":["[..],
                &records_of(i).join(&b","[..]),
                b"]}",
            ]
            .concat()
        };
        // One record: twice (3 MiB + a read chunk) + a chunk, and for the declined one a
        // simd-json pass of three copies: about 17 MiB.
        let budget = ReadBudget::new(22 * MIB as u64, 18 * MIB as u64);
        let limits = Limits {
            max_record_bytes: 4 * MIB,
            ..Limits::default()
        };
        let (tx, mut rx) = mpsc::channel::<Routed>(2);
        let collector = tokio::spawn(async move {
            let mut out = Vec::new();
            while let Some(r) = rx.recv().await {
                for m in &r.chunk.records {
                    out.push(r.chunk.bytes_of(m).to_vec());
                }
                drop(r.chunk);
                r.token.ack();
            }
            out
        });
        let mut reads = tokio::task::JoinSet::new();
        for i in 0..6 {
            let (tx, budget, limits) = (tx.clone(), budget.clone(), limits.clone());
            let data = gz(&file(i));
            reads.spawn(async move {
                let (ack, outcome) = ObjectAck::new();
                let (report, result) = read_into_pipeline_within(
                    trickle(data, 64 * 1024, None),
                    Arc::new(ObjectMeta::default()),
                    &limits,
                    ChunkLimits::default(),
                    &budget,
                    &ack,
                    &tx,
                )
                .await;
                drop(ack);
                (report, result, outcome.await)
            });
        }
        drop(tx);
        while let Some(done) = reads.join_next().await {
            let (report, result, outcome) = done.expect("read task");
            assert_eq!(result, Ok(()));
            assert_eq!(report.records, 3);
            assert_eq!(
                outcome.expect("outcome"),
                ObjectOutcome::Delivered { dead_lettered: 0 }
            );
        }
        let mut records = collector.await.expect("collector");
        records.sort();
        let mut expected: Vec<Vec<u8>> = (0..6).flat_map(records_of).collect();
        expected.sort();
        assert_eq!(records, expected, "every record, byte-exact");
        assert_eq!(budget.held_bytes(), 0, "every grant given back");
        assert!(
            budget.peak_bytes() <= 22 * MIB as u64,
            "peak {}",
            budget.peak_bytes()
        );
        assert!(budget.waits() > 0, "six 3 MiB records in 22 MiB took turns");
        assert_eq!(budget.overdrafts(), 0);
    }

    #[test]
    fn error_codes_are_classified() {
        let t = || "x".to_owned();
        assert_eq!(
            classify_code(Some("NoSuchKey"), None, t()),
            ReadError::NoSuchKey
        );
        assert!(classify_code(Some("SlowDown"), Some(503), t()).is_retryable());
        assert!(classify_code(None, Some(500), t()).is_retryable());
        assert!(classify_code(Some("AccessDenied"), Some(403), t()).is_retryable());
        assert!(!classify_code(Some("NoSuchBucket"), Some(404), t()).is_retryable());
        assert!(!classify_code(Some("InvalidObjectState"), Some(403), t()).is_retryable());
        assert!(!ReadError::Content(ParseError::NoRecordsArray).is_retryable());
        assert!(ReadError::Content(ParseError::Io {
            decompressed_offset: 0,
            reason: "reset".into()
        })
        .is_retryable());
    }
}
