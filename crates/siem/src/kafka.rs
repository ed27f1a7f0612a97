//! Kafka, through `rskafka` (pure Rust). Each document is a message with key = `eventID`, on
//! a topic from the sink's template, on the partition Kafka's default partitioner would pick
//! for that key (murmur2), so every consumer sees a record's re-deliveries on one partition
//! and compacted topics keep one copy. The client connects on first use, so a broker that is
//! down at start-up only delays delivery. A message larger than `max_message_bytes` is
//! dead-lettered; broker errors that can pass (leadership changes, timeouts, throttling)
//! are retried by the engine.
//!
//! TLS to the brokers with `[sinks.tls]` (the same root store rules as the HTTP sinks, rustls
//! with an explicit aws-lc provider). Not supported: idempotent/transactional producing.

use crate::engine::{batch_sink, BatchSink, Doc, Router, SendFuture, Transport, Verdict};
use crate::secret::Secret;
use rskafka::chrono::{DateTime, Utc};
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use rskafka::BackoffConfig;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};
use trailhose_config::siem::{topic_char, KafkaCompression, KafkaSinkConfig, SaslMechanism};
use trailhose_pipeline::delivery::DeadLetterPlace;
use trailhose_pipeline::template::{NameKind, Template};

type Partitions = Arc<Vec<Arc<PartitionClient>>>;

pub struct KafkaTransport {
    brokers: Vec<String>,
    client_id: String,
    sasl: Option<SaslConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
    client: OnceCell<Client>,
    topics: Mutex<HashMap<String, Partitions>>,
    compression: Compression,
    create_topics: bool,
    partitions: i32,
    replication_factor: i16,
    max_message_bytes: usize,
    timeout: Duration,
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), for the default partitioner.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives a keyed message.
pub fn partition_for(key: &[u8], partitions: usize) -> usize {
    if partitions == 0 {
        return 0;
    }
    ((murmur2(key) & 0x7fff_ffff) as usize) % partitions
}

/// The engine's verdict on a Kafka error.
pub fn classify(e: &KafkaError) -> Verdict {
    let msg: String = e.to_string().chars().take(300).collect();
    match e {
        KafkaError::ServerError { protocol_error, .. } => match protocol_error {
            ProtocolError::MessageTooLarge | ProtocolError::RecordListTooLarge => {
                Verdict::Split { reason: msg }
            }
            ProtocolError::InvalidRecord
            | ProtocolError::CorruptMessage
            | ProtocolError::InvalidTimestamp => Verdict::Split { reason: msg },
            ProtocolError::TopicAuthorizationFailed
            | ProtocolError::ClusterAuthorizationFailed
            | ProtocolError::SaslAuthenticationFailed
            | ProtocolError::InvalidTopicException
            | ProtocolError::UnsupportedVersion
            | ProtocolError::UnsupportedCompressionType => Verdict::SinkRefused { reason: msg },
            ProtocolError::ThrottlingQuotaExceeded => Verdict::throttled(msg),
            _ => Verdict::retry(msg),
        },
        _ => Verdict::retry(msg),
    }
}

impl KafkaTransport {
    pub fn new(cfg: &KafkaSinkConfig) -> Result<KafkaTransport, String> {
        let sasl = match &cfg.sasl {
            Some(s) => {
                let password =
                    Secret::resolve(&s.password, &format!("sinks.{}.sasl.password", cfg.name))?;
                let c = Credentials::new(s.username.clone(), password.expose().to_string());
                Some(match s.mechanism {
                    SaslMechanism::Plain => SaslConfig::Plain(c),
                    SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(c),
                    SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(c),
                })
            }
            None => None,
        };
        let tls = match &cfg.tls {
            Some(t) => Some(Arc::new(
                crate::http::tls_config(t).map_err(|e| format!("sinks.{}.tls: {e}", cfg.name))?,
            )),
            None => None,
        };
        Ok(KafkaTransport {
            brokers: cfg.brokers.clone(),
            client_id: cfg.client_id.clone(),
            sasl,
            tls,
            client: OnceCell::new(),
            topics: Mutex::new(HashMap::new()),
            compression: match cfg.compression {
                KafkaCompression::None => Compression::NoCompression,
                KafkaCompression::Gzip => Compression::Gzip,
            },
            create_topics: cfg.create_topics,
            partitions: cfg.partitions,
            replication_factor: cfg.replication_factor,
            max_message_bytes: cfg.max_message_bytes,
            timeout: Duration::from_millis(cfg.delivery.request_timeout_ms),
        })
    }

    async fn within<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, KafkaError>>,
    ) -> Result<T, Verdict> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(match classify(&e) {
                Verdict::Retry {
                    reason,
                    throttled,
                    after,
                } => Verdict::Retry {
                    reason: format!("{what}: {reason}"),
                    throttled,
                    after,
                },
                other => other,
            }),
            Err(_) => Err(Verdict::retry(format!(
                "{what}: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    async fn client(&self) -> Result<&Client, Verdict> {
        self.client
            .get_or_try_init(|| async {
                let mut b = ClientBuilder::new(self.brokers.clone())
                    .client_id(self.client_id.clone())
                    // rskafka retries internally; bound it so the engine's retries and the
                    // request timeout stay in charge.
                    .backoff_config(BackoffConfig {
                        init_backoff: Duration::from_millis(50),
                        max_backoff: Duration::from_secs(2),
                        base: 2.0,
                        deadline: Some(self.timeout),
                    });
                if let Some(s) = &self.sasl {
                    b = b.sasl_config(s.clone());
                }
                if let Some(t) = &self.tls {
                    b = b.tls_config(t.clone());
                }
                self.within("connecting to Kafka", b.build()).await
            })
            .await
    }

    async fn partitions(&self, topic: &str) -> Result<Partitions, Verdict> {
        let mut cache = self.topics.lock().await;
        if let Some(p) = cache.get(topic) {
            return Ok(p.clone());
        }
        let client = self.client().await?;
        let find = || async {
            let topics = self.within("listing topics", client.list_topics()).await?;
            Ok::<_, Verdict>(
                topics
                    .into_iter()
                    .find(|t| t.name == topic)
                    .map(|t| t.partitions.into_iter().collect::<Vec<i32>>()),
            )
        };
        let mut ids = find().await?;
        if ids.is_none() {
            if !self.create_topics {
                return Err(Verdict::SinkRefused {
                    reason: format!("Kafka topic {topic:?} does not exist (create_topics is off)"),
                });
            }
            let controller = client
                .controller_client()
                .map_err(|e| Verdict::retry(format!("controller: {e}")))?;
            let created = tokio::time::timeout(
                self.timeout,
                controller.create_topic(
                    topic,
                    self.partitions,
                    self.replication_factor,
                    self.timeout.as_millis().min(i32::MAX as u128) as i32,
                ),
            )
            .await;
            match created {
                Ok(Ok(())) => {}
                Ok(Err(KafkaError::ServerError {
                    protocol_error: ProtocolError::TopicAlreadyExists,
                    ..
                })) => {}
                Ok(Err(e)) => return Err(classify(&e)),
                Err(_) => {
                    return Err(Verdict::retry(format!(
                        "creating topic {topic:?} timed out"
                    )))
                }
            }
            ids = find().await?;
        }
        let Some(mut ids) = ids.filter(|v| !v.is_empty()) else {
            return Err(Verdict::retry(format!(
                "Kafka topic {topic:?} has no partitions yet"
            )));
        };
        ids.sort_unstable();
        let mut clients = Vec::with_capacity(ids.len());
        for p in ids {
            let pc = self
                .within(
                    "partition leader",
                    client.partition_client(topic, p, UnknownTopicHandling::Retry),
                )
                .await?;
            clients.push(Arc::new(pc));
        }
        let parts: Partitions = Arc::new(clients);
        cache.insert(topic.to_string(), parts.clone());
        Ok(parts)
    }

    async fn forget(&self, topic: &str) {
        self.topics.lock().await.remove(topic);
    }

    fn record(d: &Doc) -> Record {
        let timestamp = d
            .time_ms
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                DateTime::<Utc>::from_timestamp_millis(now)
            })
            .unwrap_or_default();
        let mut headers = BTreeMap::new();
        headers.insert("source".to_string(), d.object().source.as_bytes().to_vec());
        Record {
            key: Some(d.id.as_bytes().to_vec()),
            value: Some(d.body.clone()),
            headers,
            timestamp,
        }
    }
}

impl Transport for KafkaTransport {
    fn overhead(&self) -> usize {
        64
    }

    fn send<'a>(&'a self, docs: &'a [&'a Doc]) -> SendFuture<'a> {
        Box::pin(async move {
            let mut verdicts: Vec<Option<Verdict>> = vec![None; docs.len()];
            // (topic, partition) → documents, in order.
            let mut groups: BTreeMap<(Arc<str>, usize), Vec<usize>> = BTreeMap::new();
            let mut topic_parts: HashMap<Arc<str>, Result<Partitions, Verdict>> = HashMap::new();
            for (i, d) in docs.iter().enumerate() {
                let size = d.body.len() + d.id.len() + d.object().source.len() + 64;
                if size > self.max_message_bytes {
                    verdicts[i] = Some(Verdict::Reject {
                        reason: format!(
                            "message of {size} bytes is above max_message_bytes = {}",
                            self.max_message_bytes
                        ),
                    });
                    continue;
                }
                if !topic_parts.contains_key(&d.dest) {
                    let p = self.partitions(&d.dest).await;
                    topic_parts.insert(d.dest.clone(), p);
                }
                match topic_parts.get(&d.dest) {
                    Some(Ok(parts)) => {
                        let p = partition_for(d.id.as_bytes(), parts.len());
                        groups.entry((d.dest.clone(), p)).or_default().push(i);
                    }
                    Some(Err(v)) => verdicts[i] = Some(v.clone()),
                    None => verdicts[i] = Some(Verdict::retry("topic lookup lost")),
                }
            }
            let mut tasks = tokio::task::JoinSet::new();
            for ((topic, p), idx) in groups {
                let Some(Ok(parts)) = topic_parts.get(&topic) else {
                    continue;
                };
                let Some(pc) = parts.get(p).cloned() else {
                    continue;
                };
                // One produce request per ≤ max_message_bytes run of this partition's documents.
                let mut runs: Vec<(Vec<usize>, Vec<Record>)> = vec![(Vec::new(), Vec::new())];
                let mut run_bytes = 0usize;
                for i in idx {
                    let Some(d) = docs.get(i) else { continue };
                    let size = d.body.len() + d.id.len() + 64;
                    let full = run_bytes + size > self.max_message_bytes;
                    if full && runs.last().is_some_and(|r| !r.0.is_empty()) {
                        runs.push((Vec::new(), Vec::new()));
                        run_bytes = 0;
                    }
                    run_bytes += size;
                    if let Some(r) = runs.last_mut() {
                        r.0.push(i);
                        r.1.push(Self::record(d));
                    }
                }
                for (idx, records) in runs.into_iter().filter(|r| !r.0.is_empty()) {
                    let pc = pc.clone();
                    let compression = self.compression;
                    let timeout = self.timeout;
                    let topic = topic.clone();
                    tasks.spawn(async move {
                        let r =
                            tokio::time::timeout(timeout, pc.produce(records, compression)).await;
                        let v = match r {
                            Ok(Ok(_offsets)) => Verdict::Accepted,
                            Ok(Err(e)) => classify(&e),
                            Err(_) => Verdict::retry(format!(
                                "produce to {topic}/{p}: no answer within {} ms",
                                timeout.as_millis()
                            )),
                        };
                        (topic, idx, v)
                    });
                }
            }
            while let Some(done) = tasks.join_next().await {
                let Ok((topic, idx, v)) = done else { continue };
                if let Verdict::Retry { .. } = v {
                    // Leadership or metadata may have moved: look the topic up again.
                    self.forget(&topic).await;
                }
                for i in idx {
                    if let Some(slot) = verdicts.get_mut(i) {
                        *slot = Some(v.clone());
                    }
                }
            }
            Ok(verdicts
                .into_iter()
                .map(|v| v.unwrap_or_else(|| Verdict::retry("produce task failed")))
                .collect())
        })
    }
}

fn sanitize_topic(name: String) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if topic_char(c) { c } else { '_' })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        s = "cloudtrail".into();
    }
    s.truncate(249);
    s
}

/// The Kafka sink.
pub fn sink(
    cfg: &KafkaSinkConfig,
    dead_letters: Arc<dyn DeadLetterPlace>,
) -> Result<BatchSink<KafkaTransport>, String> {
    let template = Template::parse(&cfg.topic, NameKind::Stream)
        .map_err(|e| format!("sinks.{}.topic: {e}", cfg.name))?;
    let transport = KafkaTransport::new(cfg)?;
    Ok(batch_sink(
        &cfg.name,
        cfg.format,
        &cfg.delivery,
        Some(Router {
            template,
            sanitize: sanitize_topic,
        }),
        dead_letters,
        transport,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Vectors from Apache Kafka's UtilsTest.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (k, h) in cases {
            assert_eq!(murmur2(k), h, "{}", String::from_utf8_lossy(k));
        }
        assert!(partition_for(b"x", 7) < 7);
        assert_eq!(partition_for(b"x", 0), 0);
    }

    #[test]
    fn topic_names_are_made_legal() {
        assert_eq!(sanitize_topic("ct/111:x".into()), "ct_111_x");
        assert_eq!(sanitize_topic("..".into()), "cloudtrail");
    }
}
