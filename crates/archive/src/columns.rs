//! Records → Arrow columns, following [`crate::schema`]. Pure: bytes in, a `RecordBatch` out.
//!
//! A record's members are read once as raw JSON slices (serde_json `RawValue`), matched to
//! columns by case-insensitive name, and each slice becomes a string or JSON text. Nothing
//! about a member's type is assumed: a number where a string was expected keeps its JSON
//! text, an object where a struct was expected but that is not an object becomes a null
//! struct — and the original bytes are always in `cloudtrailevent`, so nothing is lost.

use crate::schema::{self, Kind, Spec};
use arrow_array::builder::{StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, Schema};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

/// The members of one JSON object, in order, values unparsed.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(24));
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    let val: &'de RawValue = m.next_value()?;
                    v.push((k, val));
                }
                Ok(Members(v))
            }
        }
        d.deserialize_map(V)
    }
}

fn members(raw: &RawValue) -> Option<Members<'_>> {
    if !raw.get().starts_with('{') {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// A member as column text: a string's content, `null` as null, anything else its JSON text.
pub fn text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    match s.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<&str>(s)
            .map(Cow::Borrowed)
            .or_else(|_| serde_json::from_str::<String>(s).map(Cow::Owned))
            .ok(),
        Some(b'n') if s == "null" => None,
        _ => Some(Cow::Borrowed(s)),
    }
}

enum Col {
    Text(StringBuilder),
    Struct(StructCol),
    List {
        item: Arc<arrow_schema::Field>,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        values: StructCol,
    },
}

struct StructCol {
    specs: &'static [Spec],
    children: Vec<Col>,
    nulls: NullBufferBuilder,
}

impl Col {
    fn new(spec: &'static Spec) -> Col {
        match spec.kind {
            Kind::Text | Kind::Json => Col::Text(StringBuilder::new()),
            Kind::Struct(fields) => Col::Struct(StructCol::new(fields)),
            Kind::List(fields) => Col::List {
                item: Arc::new(schema::list_item(fields)),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
                values: StructCol::new(fields),
            },
        }
    }

    fn append(&mut self, raw: Option<&RawValue>) {
        match self {
            Col::Text(b) => b.append_option(raw.and_then(text)),
            Col::Struct(s) => s.append(raw),
            Col::List {
                offsets,
                nulls,
                values,
                ..
            } => {
                let items = raw
                    .filter(|r| r.get().starts_with('['))
                    .and_then(|r| serde_json::from_str::<Vec<&RawValue>>(r.get()).ok());
                let last = offsets.last().copied().unwrap_or(0);
                match items {
                    Some(items) => {
                        for item in &items {
                            values.append(Some(item));
                        }
                        offsets.push(last + items.len() as i32);
                        nulls.append_non_null();
                    }
                    None => {
                        offsets.push(last);
                        nulls.append_null();
                    }
                }
            }
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Col::Text(b) => Arc::new(b.finish()),
            Col::Struct(s) => Arc::new(s.finish()?),
            Col::List {
                item,
                offsets,
                nulls,
                values,
            } => {
                let offs = std::mem::replace(offsets, vec![0]);
                let values = Arc::new(values.finish()?);
                Arc::new(ListArray::try_new(
                    item.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offs)),
                    values,
                    nulls.finish(),
                )?)
            }
        })
    }
}

/// The value of each column's member, by case-insensitive name (first one wins), as Athena's
/// case-insensitive column names read CloudTrail's camelCase members.
fn slots<'a>(specs: &[Spec], m: &Members<'a>) -> Vec<Option<&'a RawValue>> {
    let mut slots = vec![None; specs.len()];
    for (k, v) in &m.0 {
        if let Some(i) = specs.iter().position(|s| s.name.eq_ignore_ascii_case(k)) {
            if slots[i].is_none() {
                slots[i] = Some(*v);
            }
        }
    }
    slots
}

impl StructCol {
    fn new(specs: &'static [Spec]) -> StructCol {
        StructCol {
            specs,
            children: specs.iter().map(Col::new).collect(),
            nulls: NullBufferBuilder::new(0),
        }
    }

    fn append(&mut self, raw: Option<&RawValue>) {
        match raw.and_then(members) {
            Some(m) => {
                for (c, v) in self.children.iter_mut().zip(slots(self.specs, &m)) {
                    c.append(v);
                }
                self.nulls.append_non_null();
            }
            None => {
                for c in &mut self.children {
                    c.append(None);
                }
                self.nulls.append_null();
            }
        }
    }

    fn finish(&mut self) -> Result<StructArray, ArrowError> {
        let arrays = self
            .children
            .iter_mut()
            .map(Col::finish)
            .collect::<Result<Vec<_>, _>>()?;
        StructArray::try_new(schema::fields_of(self.specs), arrays, self.nulls.finish())
    }
}

/// Accumulates records into the columns of one `RecordBatch`.
pub struct BatchBuilder {
    schema: Arc<Schema>,
    top: Vec<Col>,
    event_time: TimestampMillisecondBuilder,
    raw: StringBuilder,
    rows: usize,
    bytes: usize,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    pub fn new() -> BatchBuilder {
        BatchBuilder {
            schema: schema::file_schema(),
            top: schema::RECORD.iter().map(Col::new).collect(),
            event_time: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            raw: StringBuilder::new(),
            rows: 0,
            bytes: 0,
        }
    }

    /// Adds one record. `event_time_ms` is the parser core's eventTime. Never fails: a record
    /// whose members cannot be read gets null columns and keeps its bytes in `cloudtrailevent`.
    pub fn push(&mut self, record: &[u8], event_time_ms: Option<i64>) {
        let json = String::from_utf8_lossy(record);
        let parsed: Option<Members<'_>> = serde_json::from_str(&json).ok();
        match parsed {
            Some(m) => {
                for (c, v) in self.top.iter_mut().zip(slots(schema::RECORD, &m)) {
                    c.append(v);
                }
            }
            None => {
                for c in &mut self.top {
                    c.append(None);
                }
            }
        }
        self.event_time.append_option(event_time_ms);
        self.raw.append_value(&json);
        self.rows += 1;
        self.bytes += record.len();
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Record bytes pushed since the last [`finish`](Self::finish): the columns hold about
    /// twice this (the original bytes plus the extracted values).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let mut columns = self
            .top
            .iter_mut()
            .map(Col::finish)
            .collect::<Result<Vec<_>, _>>()?;
        columns.push(Arc::new(self.event_time.finish()));
        columns.push(Arc::new(self.raw.finish()));
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, StringArray};

    fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a StringArray {
        b.column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .unwrap_or_else(|| panic!("no string column {name}"))
    }

    fn field<'a>(s: &'a StructArray, name: &str) -> &'a ArrayRef {
        s.column_by_name(name)
            .unwrap_or_else(|| panic!("no field {name}"))
    }

    #[test]
    fn members_map_to_columns_case_insensitively() {
        let rec = br#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDA1","arn":"arn:aws:iam::111122223333:user/admin_user","accountId":"111122223333","accessKeyId":"AKIA1","userName":"admin_user","sessionContext":{"attributes":{"creationDate":"2024-01-01T00:00:00Z","mfaAuthenticated":"true"},"sessionIssuer":{"type":"Role","userName":"r"}}},"eventTime":"2024-01-15T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"10.0.0.1","userAgent":"aws-cli","requestParameters":{"bucketName":"b","key":"k \"q\""},"responseElements":null,"requestID":"R1","eventID":"E1","readOnly":true,"resources":[{"ARN":"arn:aws:s3:::b","accountId":"1","type":"AWS::S3::Bucket"},{"type":"AWS::S3::Object"}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"111122223333","sharedEventID":"S1","eventCategory":"Data","tlsDetails":{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"b.s3.amazonaws.com"}}"#;
        let mut b = BatchBuilder::new();
        b.push(rec, Some(1_705_312_800_000));
        let batch = b.finish().expect("batch");
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(col(&batch, "eventname").value(0), "GetObject");
        assert_eq!(col(&batch, "sourceipaddress").value(0), "10.0.0.1");
        assert_eq!(col(&batch, "requestid").value(0), "R1");
        assert_eq!(col(&batch, "eventid").value(0), "E1");
        assert_eq!(col(&batch, "sharedeventid").value(0), "S1");
        assert_eq!(col(&batch, "readonly").value(0), "true");
        assert_eq!(col(&batch, "managementevent").value(0), "false");
        assert!(col(&batch, "responseelements").is_null(0));
        assert!(col(&batch, "errorcode").is_null(0));
        assert_eq!(
            col(&batch, "requestparameters").value(0),
            r#"{"bucketName":"b","key":"k \"q\""}"#
        );
        assert_eq!(col(&batch, "cloudtrailevent").value(0).as_bytes(), &rec[..]);
        let ui = batch
            .column_by_name("useridentity")
            .and_then(|c| c.as_any().downcast_ref::<StructArray>())
            .expect("useridentity");
        let user = field(ui, "username").as_any().downcast_ref::<StringArray>();
        assert_eq!(user.map(|u| u.value(0)), Some("admin_user"));
        let sc = field(ui, "sessioncontext")
            .as_any()
            .downcast_ref::<StructArray>()
            .expect("sc");
        let attrs = field(sc, "attributes")
            .as_any()
            .downcast_ref::<StructArray>()
            .expect("a");
        let mfa = field(attrs, "mfaauthenticated")
            .as_any()
            .downcast_ref::<StringArray>();
        assert_eq!(mfa.map(|m| m.value(0)), Some("true"));
        let res = batch
            .column_by_name("resources")
            .and_then(|c| c.as_any().downcast_ref::<ListArray>())
            .expect("resources");
        assert_eq!(res.value_length(0), 2);
        let items = res.value(0);
        let items = items.as_any().downcast_ref::<StructArray>().expect("items");
        let arn = field(items, "arn")
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("arn");
        assert_eq!(arn.value(0), "arn:aws:s3:::b");
        assert!(arn.is_null(1));
        let tls = batch
            .column_by_name("tlsdetails")
            .and_then(|c| c.as_any().downcast_ref::<StructArray>())
            .expect("tls");
        assert!(tls.is_valid(0));
    }

    #[test]
    fn odd_shapes_keep_the_row_and_the_bytes() {
        let records: [&[u8]; 4] = [
            br#"{"eventName":7,"userIdentity":"not an object","resources":{"a":1}}"#,
            br#"{"eventName":"A\u00e9\n","errorCode":{"x":[1,2]}}"#,
            b"[1,2,3]",
            b"{\"eventName\":\"cut",
        ];
        let mut b = BatchBuilder::new();
        for r in records {
            b.push(r, None);
        }
        let batch = b.finish().expect("batch");
        assert_eq!(batch.num_rows(), 4);
        let name = col(&batch, "eventname");
        assert_eq!(name.value(0), "7");
        assert_eq!(name.value(1), "Aé\n");
        assert!(name.is_null(2) && name.is_null(3));
        assert_eq!(col(&batch, "errorcode").value(1), r#"{"x":[1,2]}"#);
        let ui = batch.column_by_name("useridentity").expect("ui");
        assert!(ui.is_null(0));
        let res = batch.column_by_name("resources").expect("res");
        assert!(res.is_null(0));
        for (i, r) in records.iter().enumerate() {
            assert_eq!(col(&batch, "cloudtrailevent").value(i).as_bytes(), *r);
        }
    }

    #[test]
    fn builder_is_reusable_after_finish() {
        let mut b = BatchBuilder::new();
        b.push(br#"{"eventName":"A","resources":[{"ARN":"x"}]}"#, Some(1));
        assert_eq!(b.finish().expect("first").num_rows(), 1);
        b.push(br#"{"eventName":"B"}"#, None);
        b.push(br#"{"eventName":"C","resources":[]}"#, None);
        let second = b.finish().expect("second");
        assert_eq!(second.num_rows(), 2);
        assert_eq!(col(&second, "eventname").value(1), "C");
    }
}
