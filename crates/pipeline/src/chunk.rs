//! The unit that travels through the pipeline: up to `chunk_records` records of one object in
//! one contiguous buffer (one allocation per chunk, not per record).

use std::ops::Range;
use std::sync::Arc;
use trailhose_core::KeyFields;

/// Where an object came from, for enrichment and for error messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// `s3://bucket/key` or a local path: what a human needs to find the file.
    pub source: String,
    pub bucket: Option<String>,
    pub key: String,
    /// From the key layout, when it follows CloudTrail's.
    pub account: Option<String>,
    pub region: Option<String>,
    pub org_id: Option<String>,
}

impl ObjectMeta {
    /// Metadata of an S3 object, with account/region/org from the key when it follows
    /// CloudTrail's layout.
    pub fn for_s3(bucket: &str, key: &str) -> ObjectMeta {
        let mut meta = ObjectMeta {
            source: format!("s3://{bucket}/{key}"),
            bucket: Some(bucket.to_owned()),
            key: key.to_owned(),
            ..Default::default()
        };
        if let trailhose_core::keys::KeyClass::CloudTrail(k) =
            trailhose_core::keys::classify_key(key)
        {
            meta.account = Some(k.account.to_owned());
            meta.region = Some(k.region.to_owned());
            meta.org_id = k.org_id.map(str::to_owned);
        }
        meta
    }
}

#[derive(Debug, Clone)]
pub struct RecordMeta {
    /// Byte range in [`RecordChunk::data`].
    pub range: Range<usize>,
    /// Index in the file's `Records` array.
    pub index: u64,
    pub fields: KeyFields,
    /// The source record spans lines (pretty-printed); line-oriented sinks compact it.
    pub has_line_break: bool,
}

#[derive(Debug)]
pub struct RecordChunk {
    pub object: Arc<ObjectMeta>,
    pub data: Vec<u8>,
    pub records: Vec<RecordMeta>,
}

impl RecordChunk {
    pub fn new(object: Arc<ObjectMeta>, capacity: usize) -> Self {
        RecordChunk {
            object,
            data: Vec::with_capacity(capacity.min(1 << 20)),
            records: Vec::new(),
        }
    }

    pub fn push(&mut self, bytes: &[u8], index: u64, fields: KeyFields, has_line_break: bool) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.records.push(RecordMeta {
            range: start..self.data.len(),
            index,
            fields,
            has_line_break,
        });
    }

    pub fn bytes_of(&self, r: &RecordMeta) -> &[u8] {
        &self.data[r.range.clone()]
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}
