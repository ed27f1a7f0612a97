//! The worst-case memory of a run, term by term, from the configuration alone. `check-config`
//! prints it; the deployment manifests' memory limits are derived from it; the SQS worker
//! enforces the object-reader term (`source.memory_budget_bytes`) with a byte budget that all
//! of its object readers share.
//!
//! Everything here is a pure function of the configuration (and the core count, for the
//! directory source's parse workers), so it is unit-tested without running anything.
//!
//! What one object reader holds, whatever the source:
//! - the splitter: the record in progress (at most `limits.max_record_bytes`, or the file
//!   fails) plus one read chunk ([`READ_CHUNK`]);
//! - the same bytes again once complete records are copied into chunks, and the chunk being
//!   built (below `pipeline.chunk_bytes` plus one record);
//! - for records the fast scanner declines, simd-json's pass: two or three copies of the
//!   records plus 28 bytes per structural character (see
//!   [`trailhose_core::fields::simd_json_bytes`]); [`PARSE_FACTOR`] times the record for
//!   CloudTrail-shaped JSON.

use crate::{Config, SinkConfig, SourceConfig};
use trailhose_core::reader::READ_CHUNK;
use trailhose_core::PARSE_BATCH_BYTES;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The process with no data in flight: the binary, the tokio runtime and its threads, the AWS
/// SDK clients (TLS roots, connection pools), logging and metrics. Measured idle RSS of
/// `trailhose run` with `config/aws.toml` against moto: about 25 MiB; this leaves room for
/// allocator slack and more clients (per region and assumed role).
pub const PROCESS_BASELINE_BYTES: u64 = 64 * MIB;

/// Per record in a chunk, beyond its bytes: its `RecordMeta` and key-field text (the key
/// fields of a CloudTrail record are typically under 300 bytes).
pub const RECORD_META_BYTES: u64 = 512;

/// An SQS message held until its objects are acknowledged: the body (up to SQS's default
/// maximum message size of 256 KiB, which the Terraform module keeps; S3 notifications are a
/// few KiB), its receipt handle and attributes, its task and heartbeat.
pub const MESSAGE_BYTES: u64 = 256 * KIB + 8 * KIB;

/// One remembered delivered object in the dedup cache (bucket, key, version or ETag, slot).
pub const DEDUP_ENTRY_BYTES: u64 = 512;

/// One object being streamed, outside the reader budget: the HTTP response body's buffers
/// (hyper reads up to ~400 KiB ahead), the gzip decoder's window and state, the task. A zstd
/// object adds its window (8 MiB at levels up to 19).
pub const OBJECT_STREAM_BYTES: u64 = MIB;

/// simd-json's pass over a declined record, as a multiple of the record, for CloudTrail-shaped
/// JSON (one structural character per 6–7 bytes; measured 6.3× on a 15 MiB record of EC2
/// instance items). Structurally denser records need up to 31×; the reader charges them at
/// their counted size, and one that does not fit the reserve overdraws it (logged).
pub const PARSE_FACTOR: u64 = 8;

/// The SQS worker's detection stage: compiled rules and alert outputs.
const DETECT_RULES_BYTES: u64 = 8 * MIB;

/// What one object reader needs for a single record of `limits.max_record_bytes`: the
/// reserve one reader at a time may draw on, so such a record always makes progress.
pub fn record_reserve_bytes(max_record_bytes: usize, chunk_bytes: usize) -> u64 {
    let record = max_record_bytes as u64;
    2 * (record + READ_CHUNK as u64)
        + chunk_bytes as u64
        + PARSE_FACTOR * (record + PARSE_BATCH_BYTES as u64)
}

/// What one object reader holds with CloudTrail's records (at most 256 KB each): a partial
/// record and a read chunk, their copy, the chunk being built, a simd-json pass over a batch.
pub fn reader_steady_bytes(chunk_bytes: usize) -> u64 {
    2 * (2 * READ_CHUNK as u64) + chunk_bytes as u64 + PARSE_FACTOR * PARSE_BATCH_BYTES as u64
}

/// The default `source.memory_budget_bytes`: the reserve for one record of the largest size,
/// plus every object slot's steady need.
pub fn default_reader_budget(
    max_objects_in_flight: usize,
    max_record_bytes: usize,
    chunk_bytes: usize,
) -> u64 {
    record_reserve_bytes(max_record_bytes, chunk_bytes)
        + max_objects_in_flight as u64 * reader_steady_bytes(chunk_bytes)
}

/// One term of the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub name: &'static str,
    /// How it is computed, with the knobs' values.
    pub detail: String,
    pub bytes: u64,
}

/// The bound: the sum of its terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBound {
    pub terms: Vec<Term>,
}

impl MemoryBound {
    pub fn total_bytes(&self) -> u64 {
        self.terms.iter().map(|t| t.bytes).sum()
    }

    pub fn term(&self, name: &str) -> Option<&Term> {
        self.terms.iter().find(|t| t.name == name)
    }

    /// The lines `check-config` prints: the total, then each term.
    pub fn render(&self) -> String {
        let total = self.total_bytes();
        let mut s = format!("worst-case memory: {} ({total} bytes)\n", human(total));
        let width = self.terms.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &self.terms {
            s.push_str(&format!(
                "  {:<width$}  {:>10}  {}\n",
                t.name,
                human(t.bytes),
                t.detail
            ));
        }
        s
    }
}

/// Bytes as MiB with one decimal (KiB below 1 MiB).
pub fn human(bytes: u64) -> String {
    if bytes < MIB {
        format!("{:.1} KiB", bytes as f64 / KIB as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

fn mib(bytes: u64) -> String {
    human(bytes)
}

/// The worst case of a run of `cfg`, every term named. `cores` stands for the machine's core
/// count where `pipeline.parse_workers = 0` (one per core).
pub fn memory_bound(cfg: &Config, cores: usize) -> MemoryBound {
    let max_record = cfg.limits.max_record_bytes as u64;
    let pl = &cfg.pipeline;
    let chunk_bytes = pl.chunk_bytes as u64;
    let mut terms = vec![Term {
        name: "process baseline",
        detail: "runtime, threads, SDK clients, TLS, metrics (fixed)".into(),
        bytes: PROCESS_BASELINE_BYTES,
    }];

    match &cfg.source {
        SourceConfig::Sqs(s) => {
            let messages = s.message_capacity();
            terms.push(Term {
                name: "sqs messages in flight",
                detail: format!(
                    "{messages} messages (max of max_messages_in_flight or max_objects_in_flight, and max_messages) × {} (body up to SQS's default 256 KiB maximum)",
                    mib(MESSAGE_BYTES)
                ),
                bytes: messages as u64 * MESSAGE_BYTES,
            });
            terms.push(Term {
                name: "dedup cache",
                detail: format!(
                    "dedup_cache_size {} × {DEDUP_ENTRY_BYTES} B",
                    s.dedup_cache_size
                ),
                bytes: s.dedup_cache_size as u64 * DEDUP_ENTRY_BYTES,
            });
            let objects = s.max_objects_in_flight as u64;
            terms.push(Term {
                name: "object streams",
                detail: format!(
                    "max_objects_in_flight {objects} × {} (HTTP body buffers, gzip state)",
                    mib(OBJECT_STREAM_BYTES)
                ),
                bytes: objects * OBJECT_STREAM_BYTES,
            });
            let budget = s.reader_budget_bytes(&cfg.limits, pl);
            let reserve = record_reserve_bytes(cfg.limits.max_record_bytes, pl.chunk_bytes);
            let set = if s.memory_budget_bytes > 0 {
                "source.memory_budget_bytes".to_string()
            } else {
                format!(
                    "default: reserve + {objects} objects × {} steady",
                    mib(reader_steady_bytes(pl.chunk_bytes))
                )
            };
            terms.push(Term {
                name: "object readers (enforced)",
                detail: format!(
                    "{set}; splitters (partial record ≤ max_record_bytes + 256 KiB read), chunk builders, simd-json passes; {} of it is the reserve one reader at a time uses for a record up to max_record_bytes {}",
                    mib(reserve),
                    mib(max_record)
                ),
                bytes: budget,
            });
        }
        SourceConfig::Dir(_) => {
            let workers = if pl.parse_workers == 0 {
                cores.max(1)
            } else {
                pl.parse_workers
            } as u64;
            let per = record_reserve_bytes(cfg.limits.max_record_bytes, pl.chunk_bytes);
            terms.push(Term {
                name: "file readers",
                detail: format!(
                    "{workers} parse workers × {} (a record up to max_record_bytes {} in the splitter, its chunk copy, a simd-json pass, the chunk being built)",
                    mib(per),
                    mib(max_record)
                ),
                bytes: workers * per,
            });
        }
    }

    let stages = 1 + cfg.sinks.len() as u64 + u64::from(cfg.detection.is_some());
    let chunk = chunk_bytes + max_record + pl.chunk_records as u64 * RECORD_META_BYTES;
    let held = pl.channel_capacity as u64 + 1;
    terms.push(Term {
        name: "pipeline channels",
        detail: format!(
            "(channel_capacity {} + 1 in hand) × {stages} channels (router + sinks) × {} per chunk (chunk_bytes + max_record_bytes + chunk_records × {RECORD_META_BYTES} B)",
            pl.channel_capacity,
            mib(chunk)
        ),
        bytes: held * stages * chunk,
    });

    for s in &cfg.sinks {
        if let Some(t) = sink_term(s, chunk, max_record) {
            terms.push(t);
        }
    }
    if let Some(d) = &cfg.detection {
        let mut bytes = DETECT_RULES_BYTES;
        let mut detail = format!("rules and alert outputs {}", mib(DETECT_RULES_BYTES));
        if let Some(a) = d.anomaly.as_ref().filter(|a| a.enabled) {
            let keys = a.max_keys.unwrap_or(10_000) as u64;
            let buckets = u64::from(a.baseline_window_minutes.unwrap_or(7 * 1440))
                / u64::from(a.bucket_minutes.unwrap_or(60).max(1));
            let per_key = buckets * 16 + 2 * KIB;
            bytes += keys * per_key;
            detail.push_str(&format!(
                "; anomaly state max_keys {keys} × {per_key} B ({buckets} baseline buckets)"
            ));
        }
        terms.push(Term {
            name: "detection",
            detail,
            bytes,
        });
    }
    MemoryBound { terms }
}

fn sink_term(s: &SinkConfig, chunk: u64, max_record: u64) -> Option<Term> {
    let (detail, bytes) = match s {
        SinkConfig::Ndjson(_) | SinkConfig::Stdout(_) => (
            format!(
                "1 MiB file buffer + one delivery formatted ({} chunk, envelopes)",
                mib(chunk)
            ),
            MIB + 2 * chunk,
        ),
        SinkConfig::Discard(_) => return None,
        SinkConfig::CloudwatchLogs(c) => {
            // A PutLogEvents batch is at most 1 MiB; while it is sent, its events are held,
            // copied into the request and serialised as JSON (escaping grows them). The engine
            // holds max_in_flight batches queued and as many being sent.
            let d = c.delivery();
            let batch = 4 * MIB;
            (
                format!(
                    "delivery.max_buffered_bytes {} + 2 × delivery.max_in_flight {} × {} per batch (events, their request copy, the JSON body)",
                    mib(d.max_buffered_bytes as u64),
                    d.max_in_flight,
                    mib(batch)
                ),
                d.max_buffered_bytes as u64 + 2 * d.max_in_flight as u64 * batch,
            )
        }
        SinkConfig::SplunkHec(c) => siem(&c.delivery, max_record),
        SinkConfig::Opensearch(c) => siem(&c.delivery, max_record),
        SinkConfig::Http(c) => siem(&c.delivery, max_record),
        SinkConfig::Kafka(c) => siem(&c.delivery, max_record),
        SinkConfig::Archive(c) => (
            format!(
                "max_open_files {} × 2 × row_group_bytes {}{}",
                c.max_open_files,
                mib(c.row_group_bytes as u64),
                if c.is_s3() {
                    format!(" + one upload part {}", mib(c.part_bytes))
                } else {
                    String::new()
                }
            ),
            c.memory_bound_bytes(),
        ),
    };
    Some(Term {
        name: sink_kind(s),
        detail: format!("{}: {detail}", s.name()),
        bytes,
    })
}

/// A SIEM sink: the batch being filled, `max_in_flight` batches queued and as many being sent;
/// each held as rendered documents, the request body and its compressed copy.
fn siem(d: &crate::siem::DeliveryConfig, max_record: u64) -> (String, u64) {
    let batch = d.max_bytes as u64 + max_record;
    let batches = 1 + 2 * d.max_in_flight as u64;
    (
        format!(
            "(1 filling + 2 × max_in_flight {}) batches × 3 copies × {} (max_bytes + one record)",
            d.max_in_flight,
            mib(batch)
        ),
        batches * 3 * batch,
    )
}

fn sink_kind(s: &SinkConfig) -> &'static str {
    match s {
        SinkConfig::Ndjson(_) => "sink ndjson",
        SinkConfig::Stdout(_) => "sink stdout",
        SinkConfig::Discard(_) => "sink discard",
        SinkConfig::CloudwatchLogs(_) => "sink cloudwatch_logs",
        SinkConfig::SplunkHec(_) => "sink splunk_hec",
        SinkConfig::Opensearch(_) => "sink opensearch",
        SinkConfig::Http(_) => "sink http",
        SinkConfig::Kafka(_) => "sink kafka",
        SinkConfig::Archive(_) => "sink archive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqs(extra_source: &str, rest: &str) -> Config {
        let text = format!(
            r#"
[source]
type = "sqs"
queue_url = "https://sqs.us-east-1.amazonaws.com/1/q"
{extra_source}
[[source.buckets]]
name = "b"

[[sinks]]
type = "ndjson"
name = "records"
dir = "out"
{rest}
"#
        );
        Config::from_toml(&text, "t.toml").expect("valid config")
    }

    fn bytes(b: &MemoryBound, name: &str) -> u64 {
        b.term(name)
            .map(|t| t.bytes)
            .unwrap_or_else(|| panic!("no term {name}"))
    }

    #[test]
    fn objects_in_flight_and_the_budget_are_in_the_bound() {
        let eight = memory_bound(&sqs("", ""), 2);
        let thirty_two = memory_bound(&sqs("max_objects_in_flight = 32", ""), 2);
        // The default budget grows with the object slots, so does the bound.
        let steady = reader_steady_bytes(1 << 20);
        assert_eq!(
            bytes(&thirty_two, "object readers (enforced)")
                - bytes(&eight, "object readers (enforced)"),
            24 * steady
        );
        assert_eq!(
            bytes(&thirty_two, "object streams") - bytes(&eight, "object streams"),
            24 * OBJECT_STREAM_BYTES
        );
        assert!(thirty_two.total_bytes() > eight.total_bytes());
        // Messages: at least a full receive of 10, else one per object slot.
        assert_eq!(bytes(&eight, "sqs messages in flight"), 10 * MESSAGE_BYTES);
        assert_eq!(
            bytes(&thirty_two, "sqs messages in flight"),
            32 * MESSAGE_BYTES
        );
        let archive_like = memory_bound(&sqs("max_messages_in_flight = 2000", ""), 2);
        assert_eq!(
            bytes(&archive_like, "sqs messages in flight"),
            2000 * MESSAGE_BYTES
        );
        // An explicit budget replaces the derived one, whatever the object slots.
        let set = memory_bound(
            &sqs(
                "max_objects_in_flight = 32\nmemory_budget_bytes = 400000000",
                "",
            ),
            2,
        );
        assert_eq!(bytes(&set, "object readers (enforced)"), 400_000_000);
    }

    #[test]
    fn every_term_is_the_documented_product_of_its_knobs() {
        let c = sqs(
            "max_objects_in_flight = 16\ndedup_cache_size = 1000",
            r#"
[pipeline]
channel_capacity = 4
chunk_records = 100
chunk_bytes = 65536

[limits]
max_record_bytes = 1048576

[[sinks]]
type = "cloudwatch_logs"
name = "cw"
overflow_path = "o.ndjson"
max_buffered_bytes = 8388608
max_in_flight = 2

[[sinks]]
type = "splunk_hec"
name = "hec"
url = "https://splunk:8088"
token = { env = "T" }
dead_letter_path = "dl.ndjson"
[sinks.delivery]
max_bytes = 1048576
max_in_flight = 3

[[sinks]]
type = "archive"
name = "arch"
location = "archive"
max_open_files = 4
row_group_bytes = 1048576
"#,
        );
        let b = memory_bound(&c, 2);
        let chunk = 65536 + MIB + 100 * RECORD_META_BYTES;
        assert_eq!(bytes(&b, "pipeline channels"), 5 * 5 * chunk);
        assert_eq!(bytes(&b, "dedup cache"), 1000 * DEDUP_ENTRY_BYTES);
        assert_eq!(bytes(&b, "sink ndjson"), MIB + 2 * chunk);
        assert_eq!(bytes(&b, "sink cloudwatch_logs"), 8 * MIB + 2 * 2 * 4 * MIB);
        assert_eq!(bytes(&b, "sink splunk_hec"), 7 * 3 * (2 * MIB));
        assert_eq!(bytes(&b, "sink archive"), 4 * 2 * MIB);
        let reserve = 2 * (MIB + 256 * KIB) + 65536 + PARSE_FACTOR * (MIB + 32 * KIB);
        assert_eq!(record_reserve_bytes(1 << 20, 65536), reserve);
        assert_eq!(
            bytes(&b, "object readers (enforced)"),
            reserve + 16 * reader_steady_bytes(65536)
        );
        assert_eq!(
            b.total_bytes(),
            b.terms.iter().map(|t| t.bytes).sum::<u64>()
        );
        let text = b.render();
        assert!(
            text.starts_with(&format!("worst-case memory: {}", human(b.total_bytes()))),
            "{text}"
        );
        for t in &b.terms {
            assert!(text.contains(t.name), "{} missing in {text}", t.name);
        }
    }

    #[test]
    fn the_dir_source_counts_one_record_per_parse_worker() {
        let c = Config::from_toml(
            "[source]\ntype = \"dir\"\npath = \"s\"\n[[sinks]]\ntype = \"discard\"\nname = \"d\"\n",
            "t.toml",
        )
        .expect("valid");
        let per = record_reserve_bytes(16 << 20, 1 << 20);
        assert_eq!(bytes(&memory_bound(&c, 4), "file readers"), 4 * per);
        assert_eq!(bytes(&memory_bound(&c, 1), "file readers"), per);
        assert!(memory_bound(&c, 4).term("sink discard").is_none());
        assert!(memory_bound(&c, 4)
            .term("object readers (enforced)")
            .is_none());
    }

    #[test]
    fn a_budget_below_one_records_reserve_is_refused() {
        let text = |budget: u64| {
            format!(
                "[source]\ntype = \"sqs\"\nqueue_url = \"https://q\"\nmemory_budget_bytes = {budget}\n[[source.buckets]]\nname = \"b\"\n[limits]\nmax_record_bytes = 1048576\n[[sinks]]\ntype = \"discard\"\nname = \"d\"\n"
            )
        };
        let reserve = record_reserve_bytes(1 << 20, 1 << 20);
        let e = Config::from_toml(&text(reserve - 1), "t.toml")
            .expect_err("too small")
            .to_string();
        assert!(e.contains("source.memory_budget_bytes"), "{e}");
        assert!(Config::from_toml(&text(reserve), "t.toml").is_ok());
    }

    /// The user's case from issue #21: 15 MiB records, 32 objects in flight, one sink, two
    /// cores. The old bound (578 MiB) ignored the objects; the worker peaked at 825 MiB.
    #[test]
    fn the_bound_of_issue_21_exceeds_what_was_measured() {
        let b = memory_bound(&sqs("max_objects_in_flight = 32", ""), 2);
        assert!(b.total_bytes() > 825 * MIB, "{}", b.render());
    }
}
