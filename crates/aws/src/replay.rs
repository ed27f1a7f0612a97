//! `trailhose replay`: ship dead-lettered records again.
//!
//! Reads dead-letter lines (`{"dead_letter":{sink,reason,label,destination,source,record_index,
//! time},"record":{…}}`, see [`trailhose_pipeline::delivery::dead_letters`]) from every
//! NDJSON(.gz) object under an `s3://bucket/prefix/`, or from one local file, rebuilds record
//! chunks (key fields read again by [`FieldParser`], the original object named as the chunk's
//! source) and sends each record through the normal pipeline to the sink its line names (or to
//! one sink for all, `--sink`), each sink in a pipeline of its own. A dead-letter object is
//! *acknowledged* when every sink answered for every record in it: delivered, or dead-lettered
//! again (into that sink's own place). With `delete`, an object is removed only then, and only
//! when every line of it was a record line for a sink of the config; anything else in it
//! (entries of objects or messages the source could not read, lines for unknown sinks,
//! unreadable lines) keeps it.
//!
//! Memory stays bounded: objects are streamed line by line (a line is at most
//! [`ReplayOptions::max_line_bytes`]) into chunks of at most [`ChunkLimits`] on the pipeline's
//! bounded channels.

use async_compression::tokio::bufread::GzipDecoder;
use aws_sdk_s3::error::DisplayErrorContext;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};
use trailhose_core::FieldParser;
use trailhose_pipeline::emit::ChunkLimits;
use trailhose_pipeline::filter::CompiledFilter;
use trailhose_pipeline::{
    ObjectAck, ObjectMeta, ObjectOutcome, Pipeline, RecordChunk, Routed, SinkReport, SinkSpec,
};

/// Where the dead letters are.
#[derive(Debug, Clone)]
pub enum ReplaySource {
    /// Every `.ndjson.gz` / `.ndjson` object under `prefix` (or the one object it names).
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        /// As given, without a leading slash.
        prefix: String,
    },
    /// One local dead-letter file (plain or gzip).
    Local(PathBuf),
}

impl ReplaySource {
    /// `s3://bucket/prefix/` read with `client`, or a local file.
    pub fn parse(target: &str, client: Option<aws_sdk_s3::Client>) -> Result<Self, ReplayError> {
        let Some(rest) = target.strip_prefix("s3://") else {
            return Ok(ReplaySource::Local(PathBuf::from(target)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ReplayError::Target(format!(
                "{target}: expected s3://bucket/prefix/"
            )));
        }
        let client = client.ok_or_else(|| {
            ReplayError::Target(format!("{target}: an s3:// source needs an S3 client"))
        })?;
        Ok(ReplaySource::S3 {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.trim_start_matches('/').to_owned(),
        })
    }

    fn describe(&self) -> String {
        match self {
            ReplaySource::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
            ReplaySource::Local(p) => p.display().to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay: {0}")]
    Target(String),
    #[error("replay: listing {0}")]
    List(String),
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Send every record to this sink instead of the one its line names.
    pub sink_override: Option<String>,
    /// Remove each dead-letter object (file) once all its records are acknowledged.
    pub delete: bool,
    pub chunking: ChunkLimits,
    /// Bound, in chunks, of every channel of the pipelines.
    pub channel_capacity: usize,
    /// Longest line accepted; a longer one stops reading its object (which is then kept).
    pub max_line_bytes: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            sink_override: None,
            delete: false,
            chunking: ChunkLimits::default(),
            channel_capacity: 16,
            max_line_bytes: trailhose_core::Limits::default().max_record_bytes + (64 << 10),
        }
    }
}

/// Builds the sink called `name` (`Ok(None)`: the config has no such sink). Called once per
/// sink name, when the first record for it is met.
pub type BuildSink<'a> = dyn FnMut(&str) -> BuildFuture + 'a;
pub type BuildFuture = Pin<Box<dyn Future<Output = Result<Option<SinkSpec>, String>>>>;

/// What a replay did.
#[derive(Debug, Default, Clone)]
pub struct ReplayReport {
    /// Dead-letter objects (or files) read.
    pub objects: u64,
    /// Objects under the prefix that are not `.ndjson` / `.ndjson.gz`, left alone.
    pub objects_skipped: u64,
    pub lines: u64,
    /// Records sent, by sink.
    pub records: BTreeMap<String, u64>,
    /// Lines that are not record dead letters (the source's entries for objects or messages
    /// it could not read): not replayable, they keep their object.
    pub other_lines: u64,
    /// Records whose sink the config does not have (or could not build), by sink name.
    pub unknown_sink: BTreeMap<String, u64>,
    /// Lines that are not JSON, or whose record is not a JSON object.
    pub invalid_lines: u64,
    /// Objects every sink answered for (delivered or dead-lettered again).
    pub objects_acknowledged: u64,
    /// Objects with a delivery that failed (they stay, to be replayed again).
    pub objects_failed: u64,
    /// Records the sinks refused again and put in their dead-letter places.
    pub dead_lettered_again: u64,
    pub deleted: u64,
    /// With `delete`: acknowledged objects kept because not every line of them was replayed.
    pub kept: u64,
    /// Read, delivery and delete errors (at most 100).
    pub errors: Vec<String>,
    pub sinks: Vec<SinkReport>,
}

impl ReplayReport {
    /// Every record line was delivered (or dead-lettered again), nothing failed or was unknown.
    pub fn is_clean(&self) -> bool {
        self.objects_failed == 0
            && self.errors.is_empty()
            && self.unknown_sink.is_empty()
            && self.invalid_lines == 0
            && self.sinks.iter().all(|s| s.failed_deliveries == 0)
    }

    fn note(&mut self, e: String) {
        if self.errors.len() < 100 {
            self.errors.push(e);
        }
    }

    pub fn records_sent(&self) -> u64 {
        self.records.values().sum()
    }
}

/// One dead-letter object to read.
#[derive(Debug, Clone)]
struct Item {
    /// The S3 key or the local path.
    name: String,
}

struct Route {
    pipeline: Pipeline,
    input: Option<mpsc::Sender<Routed>>,
}

/// An object whose records are in the pipelines, waiting for its outcome.
struct Pending {
    read: Read,
    outcome: oneshot::Receiver<ObjectOutcome>,
}

/// What reading an object found.
struct Read {
    item: Item,
    /// Every line was a record for a known sink and read without fault.
    complete: bool,
    /// Local files: the size read, to see whether it grew meanwhile.
    size: u64,
}

/// Replays every dead-letter object of `source` through the sinks `build` makes.
pub async fn replay(
    source: &ReplaySource,
    build: &mut BuildSink<'_>,
    opts: &ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    let mut report = ReplayReport::default();
    let items = list(source, &mut report).await?;
    let mut routes: HashMap<String, Option<Route>> = HashMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut parser = FieldParser::new();
    for item in items {
        let p = read_object(
            source,
            item,
            build,
            opts,
            &mut routes,
            &mut parser,
            &mut report,
        )
        .await;
        pending.push(p);
        // Settle (and delete) the objects already answered for, so a long replay frees them
        // as it goes.
        let mut still = Vec::with_capacity(pending.len());
        for mut p in pending {
            match p.outcome.try_recv() {
                Ok(outcome) => settle(source, &p.read, Ok(outcome), opts, &mut report).await,
                Err(oneshot::error::TryRecvError::Empty) => still.push(p),
                Err(oneshot::error::TryRecvError::Closed) => {
                    settle(source, &p.read, Err(()), opts, &mut report).await
                }
            }
        }
        pending = still;
    }
    // Closing the inputs lets batching sinks flush and acknowledge at once.
    for r in routes.values_mut().flatten() {
        r.input = None;
    }
    for p in pending {
        let outcome = p.outcome.await.map_err(|_| ());
        settle(source, &p.read, outcome, opts, &mut report).await;
    }
    let mut names: Vec<String> = routes.keys().cloned().collect();
    names.sort();
    for name in names {
        if let Some(Some(r)) = routes.remove(&name) {
            report.sinks.extend(r.pipeline.shutdown().await);
        }
    }
    Ok(report)
}

async fn list(source: &ReplaySource, report: &mut ReplayReport) -> Result<Vec<Item>, ReplayError> {
    let (client, bucket, prefix) = match source {
        ReplaySource::Local(p) => {
            return Ok(vec![Item {
                name: p.display().to_string(),
            }])
        }
        ReplaySource::S3 {
            client,
            bucket,
            prefix,
        } => (client, bucket, prefix),
    };
    if is_dead_letter_key(prefix) {
        // One object named in full.
        return Ok(vec![Item {
            name: prefix.clone(),
        }]);
    }
    // `dl` lists `dl/…`, not `dl2/…`.
    let listed = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.clone()
    } else {
        format!("{prefix}/")
    };
    let mut items = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&listed)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            ReplayError::List(format!(
                "s3://{bucket}/{listed}: {}",
                DisplayErrorContext(&e)
            ))
        })?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            if is_dead_letter_key(key) {
                items.push(Item {
                    name: key.to_owned(),
                });
            } else {
                report.objects_skipped += 1;
            }
        }
    }
    Ok(items)
}

fn is_dead_letter_key(key: &str) -> bool {
    key.ends_with(".ndjson.gz") || key.ends_with(".ndjson")
}

type Lines = Pin<Box<dyn AsyncBufRead + Send>>;

/// Opens an object or file as decompressed bytes (gzip recognised by its magic bytes), with
/// the size of a local file.
async fn open(source: &ReplaySource, item: &Item) -> Result<(Lines, u64), String> {
    let (raw, size): (Lines, u64) = match source {
        ReplaySource::S3 { client, bucket, .. } => {
            let o = client
                .get_object()
                .bucket(bucket)
                .key(&item.name)
                .send()
                .await
                .map_err(|e| format!("GetObject: {}", DisplayErrorContext(&e)))?;
            (Box::pin(o.body.into_async_read()), 0)
        }
        ReplaySource::Local(path) => {
            let f = tokio::fs::File::open(path)
                .await
                .map_err(|e| e.to_string())?;
            let size = f.metadata().await.map_err(|e| e.to_string())?.len();
            (Box::pin(tokio::io::BufReader::new(f)), size)
        }
    };
    let mut raw = raw;
    let mut magic = Vec::with_capacity(2);
    while magic.len() < 2 {
        let available = raw.fill_buf().await.map_err(|e| e.to_string())?;
        if available.is_empty() {
            break;
        }
        let n = available.len().min(2 - magic.len());
        magic.extend_from_slice(&available[..n]);
        raw.consume(n);
    }
    let gzip = magic == [0x1f, 0x8b];
    let body = io::Cursor::new(magic).chain(raw);
    let lines: Lines = if gzip {
        let mut d = GzipDecoder::new(body);
        d.multiple_members(true);
        Box::pin(tokio::io::BufReader::with_capacity(256 << 10, d))
    } else {
        Box::pin(body)
    };
    Ok((lines, size))
}

/// The next line (without its `\n`) into `line`; `Ok(false)` at the end.
async fn next_line(r: &mut Lines, line: &mut Vec<u8>, max: usize) -> io::Result<bool> {
    line.clear();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(!line.is_empty());
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i, Some(i + 1)),
            None => (buf.len(), None),
        };
        if line.len() + take > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a line is longer than {max} bytes"),
            ));
        }
        line.extend_from_slice(&buf[..take]);
        match done {
            Some(n) => {
                r.consume(n);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(true);
            }
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    dead_letter: Option<Header<'a>>,
    #[serde(borrow, default)]
    record: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    sink: Cow<'a, str>,
    #[serde(borrow, default)]
    source: Cow<'a, str>,
    #[serde(default)]
    record_index: u64,
}

/// The chunk being filled for one sink: records of one original object.
struct Open {
    source: String,
    chunk: RecordChunk,
}

/// The original object's metadata (account and region from a CloudTrail key), so templates
/// and enrichment see what they saw the first time.
fn meta_of(source: &str) -> ObjectMeta {
    if let Some(rest) = source.strip_prefix("s3://") {
        if let Some((bucket, key)) = rest.split_once('/') {
            return ObjectMeta::for_s3(bucket, key);
        }
    }
    let mut meta = ObjectMeta {
        source: source.to_owned(),
        key: source.to_owned(),
        ..Default::default()
    };
    if let trailhose_core::keys::KeyClass::CloudTrail(k) =
        trailhose_core::keys::classify_key(source)
    {
        meta.account = Some(k.account.to_owned());
        meta.region = Some(k.region.to_owned());
        meta.org_id = k.org_id.map(str::to_owned);
    }
    meta
}

async fn route_for<'r>(
    routes: &'r mut HashMap<String, Option<Route>>,
    name: &str,
    build: &mut BuildSink<'_>,
    opts: &ReplayOptions,
    report: &mut ReplayReport,
) -> Option<&'r mut Route> {
    if !routes.contains_key(name) {
        let route = match build(name).await {
            Ok(Some(spec)) => {
                // The record was routed to this sink once (or the operator says so): its
                // filter is not asked again.
                let mut pipeline = Pipeline::start(
                    vec![SinkSpec {
                        sink: spec.sink,
                        filter: CompiledFilter::pass_all(),
                    }],
                    opts.channel_capacity,
                );
                let input = Some(pipeline.take_input());
                Some(Route { pipeline, input })
            }
            Ok(None) => None,
            Err(e) => {
                report.note(format!("sink {name}: {e}"));
                None
            }
        };
        routes.insert(name.to_owned(), route);
    }
    routes.get_mut(name).and_then(Option::as_mut)
}

async fn send(route: &mut Route, chunk: RecordChunk, ack: &ObjectAck) {
    let routed = Routed {
        chunk: Arc::new(chunk),
        token: ack.token(),
    };
    match &route.input {
        Some(tx) => {
            if let Err(mpsc::error::SendError(r)) = tx.send(routed).await {
                r.token.fail("the sink's pipeline closed during the replay");
            }
        }
        None => routed.token.fail("the sink's pipeline is closed"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn read_object(
    source: &ReplaySource,
    item: Item,
    build: &mut BuildSink<'_>,
    opts: &ReplayOptions,
    routes: &mut HashMap<String, Option<Route>>,
    parser: &mut FieldParser,
    report: &mut ReplayReport,
) -> Pending {
    let where_ = match source {
        ReplaySource::S3 { bucket, .. } => format!("s3://{bucket}/{}", item.name),
        ReplaySource::Local(_) => item.name.clone(),
    };
    let (ack, outcome) = ObjectAck::new();
    let mut complete = true;
    let mut open_chunks: HashMap<String, Open> = HashMap::new();
    let (mut lines, size) = match open(source, &item).await {
        Ok(l) => l,
        Err(e) => {
            // Noted with the object's name when its outcome (failed) is settled.
            ack.fail(e);
            drop(ack);
            return Pending {
                read: Read {
                    item,
                    complete: false,
                    size: 0,
                },
                outcome,
            };
        }
    };
    report.objects += 1;
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        match next_line(&mut lines, &mut line, opts.max_line_bytes).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                report.note(format!("{where_}: after line {number}: {e}"));
                complete = false;
                break;
            }
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        report.lines += 1;
        let parsed: Line<'_> = match serde_json::from_slice(&line) {
            Ok(l) => l,
            Err(e) => {
                report.invalid_lines += 1;
                report.note(format!(
                    "{where_}: line {number}: not a dead-letter line: {e}"
                ));
                complete = false;
                continue;
            }
        };
        let (header, record) = match (parsed.dead_letter, parsed.record) {
            (Some(h), Some(r)) => (h, r),
            _ => {
                report.other_lines += 1;
                complete = false;
                continue;
            }
        };
        let bytes = record.get().as_bytes();
        let fields = match parser.parse(bytes, header.record_index, 0) {
            Ok(f) => f,
            Err(e) => {
                report.invalid_lines += 1;
                report.note(format!("{where_}: line {number}: record: {e}"));
                complete = false;
                continue;
            }
        };
        let sink = opts
            .sink_override
            .clone()
            .unwrap_or_else(|| header.sink.clone().into_owned());
        let Some(route) = route_for(routes, &sink, build, opts, report).await else {
            *report.unknown_sink.entry(sink).or_default() += 1;
            complete = false;
            continue;
        };
        // A chunk holds records of one original object.
        let same = open_chunks
            .get(&sink)
            .is_some_and(|o| o.source == header.source);
        if !same {
            if let Some(o) = open_chunks.remove(&sink) {
                send(route, o.chunk, &ack).await;
            }
            open_chunks.insert(
                sink.clone(),
                Open {
                    source: header.source.clone().into_owned(),
                    chunk: RecordChunk::new(
                        Arc::new(meta_of(&header.source)),
                        opts.chunking.max_bytes,
                    ),
                },
            );
        }
        let Some(o) = open_chunks.get_mut(&sink) else {
            continue;
        };
        o.chunk.push(bytes, header.record_index, fields, false);
        *report.records.entry(sink.clone()).or_default() += 1;
        if o.chunk.len() >= opts.chunking.max_records
            || o.chunk.data.len() >= opts.chunking.max_bytes
        {
            if let Some(o) = open_chunks.remove(&sink) {
                send(route, o.chunk, &ack).await;
            }
        }
    }
    for (sink, o) in open_chunks {
        if let Some(Some(route)) = routes.get_mut(&sink) {
            send(route, o.chunk, &ack).await;
        }
    }
    // The outcome fires once every sink answered for every chunk sent.
    drop(ack);
    Pending {
        read: Read {
            item,
            complete,
            size,
        },
        outcome,
    }
}

async fn settle(
    source: &ReplaySource,
    p: &Read,
    outcome: Result<ObjectOutcome, ()>,
    opts: &ReplayOptions,
    report: &mut ReplayReport,
) {
    let where_ = match source {
        ReplaySource::S3 { bucket, .. } => format!("s3://{bucket}/{}", p.item.name),
        ReplaySource::Local(_) => p.item.name.clone(),
    };
    match outcome {
        Ok(ObjectOutcome::Delivered { dead_lettered }) => {
            report.objects_acknowledged += 1;
            report.dead_lettered_again += dead_lettered;
        }
        Ok(ObjectOutcome::Failed { reasons }) => {
            report.objects_failed += 1;
            report.note(format!("{where_}: not delivered: {}", reasons.join("; ")));
            return;
        }
        Err(()) => {
            report.objects_failed += 1;
            report.note(format!("{where_}: no outcome"));
            return;
        }
    }
    if !opts.delete {
        return;
    }
    if !p.complete {
        report.kept += 1;
        return;
    }
    match delete(source, p).await {
        Ok(true) => report.deleted += 1,
        Ok(false) => {
            report.kept += 1;
            report.note(format!(
                "{where_}: kept: it grew while it was replayed (a sink dead-lettered into it?)"
            ));
        }
        Err(e) => {
            report.kept += 1;
            report.note(format!("{where_}: delete: {e}"));
        }
    }
}

/// Removes a replayed object; a local file only if it is still the size that was read.
async fn delete(source: &ReplaySource, p: &Read) -> Result<bool, String> {
    match source {
        ReplaySource::S3 { client, bucket, .. } => client
            .delete_object()
            .bucket(bucket)
            .key(&p.item.name)
            .send()
            .await
            .map(|_| true)
            .map_err(|e| format!("DeleteObject: {}", DisplayErrorContext(&e))),
        ReplaySource::Local(path) => {
            let now = tokio::fs::metadata(path)
                .await
                .map_err(|e| e.to_string())?
                .len();
            if now != p.size {
                return Ok(false);
            }
            tokio::fs::remove_file(path)
                .await
                .map(|()| true)
                .map_err(|e| e.to_string())
        }
    }
}

/// A one-line summary per count, for the command line.
pub fn summary(source: &ReplaySource, r: &ReplayReport) -> Vec<String> {
    let mut out = vec![format!(
        "{}: {} objects read ({} skipped), {} lines, {} records sent",
        source.describe(),
        r.objects,
        r.objects_skipped,
        r.lines,
        r.records_sent()
    )];
    for (sink, n) in &r.records {
        out.push(format!("  to sink {sink}: {n} records"));
    }
    for (sink, n) in &r.unknown_sink {
        out.push(format!(
            "  sink {sink} is not in the config: {n} records not sent"
        ));
    }
    if r.other_lines > 0 {
        out.push(format!(
            "  {} lines are not record dead letters (objects/messages the source could not read): not replayed",
            r.other_lines
        ));
    }
    if r.invalid_lines > 0 {
        out.push(format!("  {} lines unreadable", r.invalid_lines));
    }
    out.push(format!(
        "objects acknowledged: {} ({} records dead-lettered again), failed: {}, deleted: {}, kept: {}",
        r.objects_acknowledged, r.dead_lettered_again, r.objects_failed, r.deleted, r.kept
    ));
    for s in &r.sinks {
        out.push(format!(
            "sink {}: {} records, {} dead-lettered, {} failed deliveries",
            s.name, s.records, s.dead_lettered, s.failed_deliveries
        ));
    }
    for e in &r.errors {
        out.push(format!("error: {e}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8]) -> Lines {
        Box::pin(io::Cursor::new(bytes))
    }

    #[tokio::test]
    async fn lines_are_split_bounded_and_the_last_may_lack_its_newline() {
        let mut r = reader(b"{\"a\":1}\r\n\n{\"b\":2}");
        let mut line = Vec::new();
        let mut got = Vec::new();
        while next_line(&mut r, &mut line, 64).await.expect("line") {
            got.push(String::from_utf8(line.clone()).expect("utf-8"));
        }
        assert_eq!(got, ["{\"a\":1}", "", "{\"b\":2}"]);
        let mut r = reader(b"0123456789\nx\n");
        let e = next_line(&mut r, &mut line, 5).await.expect_err("too long");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn the_original_object_is_named_again() {
        let m = meta_of(
            "s3://trail/AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/01/111122223333_CloudTrail_eu-west-1_20261101T0000Z_abcdefabcdefabcd.json.gz",
        );
        assert_eq!(m.bucket.as_deref(), Some("trail"));
        assert_eq!(m.account.as_deref(), Some("111122223333"));
        assert_eq!(m.region.as_deref(), Some("eu-west-1"));
        let local = meta_of(
            "/data/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/111122223333_CloudTrail_us-east-1_20261101T0000Z_abcdefabcdefabcd.json.gz",
        );
        assert_eq!(local.bucket, None);
        assert_eq!(local.region.as_deref(), Some("us-east-1"));
        assert_eq!(meta_of("whatever").source, "whatever");
    }

    #[test]
    fn targets() {
        assert!(matches!(
            ReplaySource::parse("dl.ndjson", None),
            Ok(ReplaySource::Local(_))
        ));
        assert!(ReplaySource::parse("s3:///p", None).is_err());
        assert!(
            ReplaySource::parse("s3://b/p/", None).is_err(),
            "needs a client"
        );
        assert!(is_dead_letter_key(
            "dl/cwl/dt=2026-11-01/h-1-0-t-000000.ndjson.gz"
        ));
        assert!(!is_dead_letter_key("dl/README.txt"));
    }
}
