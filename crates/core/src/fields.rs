//! Key fields of a record, read with simd-json: the reference parser, and the path of every
//! record the fast scanner ([`crate::fastscan`]) declines. The member table ([`top_member`],
//! [`user_member`], [`KeyFields::set`]) is shared by both, so they cannot disagree on what a
//! key field is. The record's original bytes are never touched: they are copied to a scratch
//! buffer because simd-json unescapes in place.

use crate::error::ParseError;
use crate::splitter::{RawRecord, RecordSpan, RecordSplitter};
use crate::timefmt::parse_rfc3339_ms;
use simd_json::{Buffers, Node, StaticNode, Tape};

/// A field's location inside [`KeyFields::text`]. `u32` keeps the struct small; key fields are
/// short by CloudTrail's own limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
    present: bool,
}

macro_rules! key_fields {
    ($( $field:ident / $slot:ident => $json:literal ),* $(,)?) => {
        /// The fields every stage needs without parsing the record again. All strings share one
        /// allocation.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct KeyFields {
            text: String,
            /// `eventTime` as epoch milliseconds; `None` when absent or not RFC 3339.
            pub event_time_ms: Option<i64>,
            pub read_only: Option<bool>,
            pub management_event: Option<bool>,
            /// Indexed by [`Slot`]: an array, so that setting a field is an indexed store
            /// rather than a jump per slot.
            spans: [Span; SLOTS],
        }

        impl KeyFields {
            $(
                #[doc = concat!("`", $json, "`")]
                pub fn $field(&self) -> Option<&str> {
                    self.get(self.spans[Slot::$slot as usize])
                }
            )*

            /// Every string field as (JSON path, value), for generic consumers (routing, tests).
            pub fn strings(&self) -> Vec<(&'static str, &str)> {
                let mut v = Vec::new();
                $( if let Some(s) = self.$field() { v.push(($json, s)); } )*
                v
            }
        }

        const SLOTS: usize = [$( Slot::$slot ),*].len();

        /// A string field of [`KeyFields`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Slot { $( $slot, )* }
    };
}

key_fields! {
    event_time / EventTime => "eventTime",
    event_id / EventId => "eventID",
    event_name / EventName => "eventName",
    event_source / EventSource => "eventSource",
    aws_region / AwsRegion => "awsRegion",
    event_type / EventType => "eventType",
    event_category / EventCategory => "eventCategory",
    event_version / EventVersion => "eventVersion",
    recipient_account_id / RecipientAccountId => "recipientAccountId",
    source_ip_address / SourceIpAddress => "sourceIPAddress",
    error_code / ErrorCode => "errorCode",
    user_type / UserType => "userIdentity.type",
    user_arn / UserArn => "userIdentity.arn",
    user_account_id / UserAccountId => "userIdentity.accountId",
    user_principal_id / UserPrincipalId => "userIdentity.principalId",
    user_name / UserName => "userIdentity.userName",
}

impl KeyFields {
    fn get(&self, s: Span) -> Option<&str> {
        if !s.present {
            return None;
        }
        self.text.get(s.start as usize..(s.start + s.len) as usize)
    }

    pub(crate) fn with_text_capacity(n: usize) -> Self {
        KeyFields {
            text: String::with_capacity(n),
            ..KeyFields::default()
        }
    }

    /// [`KeyFields::set`] for a string field.
    #[inline]
    pub(crate) fn set_text(&mut self, slot: Slot, s: &str) {
        if slot == Slot::EventTime {
            self.event_time_ms = parse_rfc3339_ms(s);
        }
        let span = self.put(s);
        self.spans[slot as usize] = span;
    }

    fn put(&mut self, s: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Span {
            start,
            len: s.len() as u32,
            present: true,
        }
    }

    /// The account a record belongs to: `recipientAccountId`, else the caller's account.
    pub fn account(&self) -> Option<&str> {
        self.recipient_account_id().or(self.user_account_id())
    }

    /// Records the value of one member named by [`top_member`] or [`user_member`]. Both parsers
    /// (simd-json's tape, [`crate::fastscan`]) call this in document order, so a duplicate key's
    /// last value wins and the two build identical values.
    pub(crate) fn set(&mut self, member: Member, value: Scalar<'_>) {
        match (member, value) {
            (Member::Text(slot), Scalar::Str(s)) => self.set_text(slot, s),
            (Member::ReadOnly, v) => self.read_only = v.as_bool(),
            (Member::ManagementEvent, v) => self.management_event = v.as_bool(),
            // Text fields ignore values of another type; `userIdentity` is walked by the caller.
            (Member::Text(_) | Member::UserIdentity, _) => {}
        }
    }
}

/// What a member of the record (or of its `userIdentity`) is to [`KeyFields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Member {
    Text(Slot),
    ReadOnly,
    ManagementEvent,
    /// The object whose members [`user_member`] names.
    UserIdentity,
}

/// A member's value, as far as key fields care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar<'a> {
    Str(&'a str),
    Bool(bool),
    /// A number, null, object or array.
    Other,
}

impl Scalar<'_> {
    fn as_bool(self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(b),
            // Older records and some services write booleans as strings.
            Scalar::Str("true") => Some(true),
            Scalar::Str("false") => Some(false),
            _ => None,
        }
    }
}

/// The key fields among a record's top-level members.
const TOP_NAMES: [(&[u8], Member); 14] = {
    use Member::Text;
    [
        (b"eventTime", Text(Slot::EventTime)),
        (b"eventID", Text(Slot::EventId)),
        (b"eventName", Text(Slot::EventName)),
        (b"eventSource", Text(Slot::EventSource)),
        (b"eventType", Text(Slot::EventType)),
        (b"eventCategory", Text(Slot::EventCategory)),
        (b"eventVersion", Text(Slot::EventVersion)),
        (b"awsRegion", Text(Slot::AwsRegion)),
        (b"recipientAccountId", Text(Slot::RecipientAccountId)),
        (b"sourceIPAddress", Text(Slot::SourceIpAddress)),
        (b"errorCode", Text(Slot::ErrorCode)),
        (b"readOnly", Member::ReadOnly),
        (b"managementEvent", Member::ManagementEvent),
        (b"userIdentity", Member::UserIdentity),
    ]
};

/// The key fields among the members of `userIdentity`.
const USER_NAMES: [(&[u8], Member); 5] = [
    (b"type", Member::Text(Slot::UserType)),
    (b"arn", Member::Text(Slot::UserArn)),
    (b"accountId", Member::Text(Slot::UserAccountId)),
    (b"principalId", Member::Text(Slot::UserPrincipalId)),
    (b"userName", Member::Text(Slot::UserName)),
];

/// A name as little-endian words, zero past its end. Every key-field name fits in
/// [`NAME_MAX`] bytes, so a lookup is one hash and four compares instead of a walk through
/// the bytes (every record has some twenty top-level keys; measured ~2 % faster on natural
/// records than the byte-wise match it replaced).
type Words = [u64; 3];
const NAME_MAX: usize = 24;

/// One slot of a member table: open addressing without probing, since the multipliers below
/// were chosen so that the names' first words do not collide (checked when the table is
/// built, at compile time).
#[derive(Clone, Copy)]
struct Entry {
    len: usize,
    words: Words,
    member: Option<Member>,
}

struct Table<const N: usize> {
    mul: u64,
    slots: [Entry; N],
}

const fn words_of(name: &[u8]) -> Words {
    let mut w = [0u64; 3];
    let mut i = 0;
    while i < name.len() && i < NAME_MAX {
        w[i / 8] |= (name[i] as u64) << (8 * (i % 8));
        i += 1;
    }
    w
}

impl<const N: usize> Table<N> {
    const fn new(names: &[(&[u8], Member)], mul: u64) -> Self {
        let empty = Entry {
            len: usize::MAX,
            words: [0; 3],
            member: None,
        };
        let mut slots = [empty; N];
        let mut i = 0;
        while i < names.len() {
            let (name, member) = names[i];
            assert!(name.len() <= NAME_MAX);
            let words = words_of(name);
            let slot = Self::slot(mul, words[0]);
            assert!(slots[slot].member.is_none(), "two names share a slot");
            slots[slot] = Entry {
                len: name.len(),
                words,
                member: Some(member),
            };
            i += 1;
        }
        Table { mul, slots }
    }

    #[inline(always)]
    const fn slot(mul: u64, first: u64) -> usize {
        (first.wrapping_mul(mul) >> (64 - N.trailing_zeros())) as usize
    }

    #[inline(always)]
    fn get(&self, len: usize, words: Words) -> Option<Member> {
        let e = &self.slots[Self::slot(self.mul, words[0]) % N];
        // `&`, not `&&`, and a select: whether a key is a key field follows no pattern the
        // branch predictor could learn (about half of a record's keys are), so no branches.
        let hit = (e.len == len)
            & (e.words[0] == words[0])
            & (e.words[1] == words[1])
            & (e.words[2] == words[2]);
        if hit {
            e.member
        } else {
            None
        }
    }

    /// The member named by the first `len` bytes of `bytes` (none when `len` is over
    /// [`NAME_MAX`]; bytes past `len` are ignored).
    #[inline(always)]
    fn prefix(&self, bytes: &[u8; NAME_MAX], len: usize) -> Option<Member> {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            let keep = len.saturating_sub(8 * i);
            let mask = if keep >= 8 {
                !0
            } else {
                (1u64 << (8 * keep)) - 1
            };
            u64::from_le_bytes(w) & mask
        };
        // A longer name's length matches no entry.
        self.get(len, [word(0), word(1), word(2)])
    }

    /// The member named by `name`.
    fn name(&self, name: &[u8]) -> Option<Member> {
        if name.len() > NAME_MAX {
            return None;
        }
        self.get(name.len(), words_of(name))
    }

    /// The member named by `buf[start..end]`, read as three word loads when `buf` has
    /// [`NAME_MAX`] bytes from `start` (it does, but at the very end of a buffer).
    #[inline(always)]
    fn name_in(&self, buf: &[u8], start: usize, end: usize) -> Option<Member> {
        match buf.get(start..).and_then(|b| b.first_chunk::<NAME_MAX>()) {
            Some(bytes) => self.prefix(bytes, end - start),
            None => self.name(&buf[start..end]),
        }
    }
}

/// Where a key is looked up: among the record's members or `userIdentity`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Members {
    Top = 0,
    User = 1,
}

/// Indexed by [`Members`].
static TABLES: [Table<32>; 2] = [
    Table::new(&TOP_NAMES, 0x612e_7696_a6ce_cc1b),
    Table::new(&USER_NAMES, 0x5c6e_4337_15ba_2bdd),
];

/// The key field a top-level member named `key` is.
pub(crate) fn top_member(key: &[u8]) -> Option<Member> {
    TABLES[Members::Top as usize].name(key)
}

/// The key field a `userIdentity` member named `key` is.
pub(crate) fn user_member(key: &[u8]) -> Option<Member> {
    TABLES[Members::User as usize].name(key)
}

/// The key field `buf[start..end]` names among `members`: three word loads, a hash and four
/// compares, without a branch.
#[inline(always)]
pub(crate) fn member_in(members: Members, buf: &[u8], start: usize, end: usize) -> Option<Member> {
    TABLES[members as usize].name_in(buf, start, end)
}

/// An upper bound of the memory [`FieldParser::take_batch`] needs for the records of `spans`
/// the fast path declined (0 when it took them all): simd-json copies a run of records twice
/// (the scratch copy and its aligned input) and may unescape strings into a third buffer, and
/// keeps a 4-byte structural index and a tape node for every structural character, string,
/// number and literal. Runs are parsed one after another in the same buffers, so the largest
/// run counts.
pub fn parse_scratch_bytes(buf: &[u8], spans: &[RecordSpan]) -> usize {
    let mut worst = 0;
    let mut i = 0;
    while i < spans.len() {
        if spans[i].fields.is_some() {
            i += 1;
            continue;
        }
        let end = spans[i..]
            .iter()
            .position(|s| s.fields.is_some())
            .map_or(spans.len(), |n| i + n);
        let run = &buf[spans[i].start..spans[end - 1].end];
        worst = worst.max(simd_json_bytes(run));
        i = end;
    }
    worst
}

/// See [`parse_scratch_bytes`]: one simd-json pass over `json`.
pub fn simd_json_bytes(json: &[u8]) -> usize {
    const PER_STRUCTURAL: usize = std::mem::size_of::<u32>() + std::mem::size_of::<Node<'_>>();
    // The buffers a FieldParser starts with, and simd-json's padding.
    const BASE: usize = 3 * 64 * 1024;
    3 * json.len() + PER_STRUCTURAL * structural_bound(json) + BASE
}

/// At least as many as simd-json's structural indexes (and tape nodes) for `json`: every
/// `{}[]:,`, one per string (half the quotes, escaped ones included), and one per number or
/// literal, each of which follows `[`, `,` or `:` (whitespace aside). Bytes inside strings
/// count too, which only overestimates.
fn structural_bound(json: &[u8]) -> usize {
    let (mut n, mut quotes, mut after_separator) = (1usize, 0usize, true);
    for &b in json {
        match b {
            b'{' | b'}' | b']' => {
                n += 1;
                after_separator = false;
            }
            b'[' | b',' | b':' => {
                n += 1;
                after_separator = true;
            }
            b'"' => {
                quotes += 1;
                after_separator = false;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => {
                n += usize::from(after_separator);
                after_separator = false;
            }
        }
    }
    n + quotes.div_ceil(2)
}

/// Reuses simd-json's buffers across records, so reading key fields allocates only the
/// [`KeyFields`] text.
pub struct FieldParser {
    scratch: Vec<u8>,
    /// Reused by [`next_batch`](Self::next_batch).
    spans: Vec<RecordSpan>,
    buffers: Buffers,
    tape: Option<Tape<'static>>,
}

impl Default for FieldParser {
    fn default() -> Self {
        Self::new()
    }
}

fn span_of(node: &Node<'_>) -> usize {
    match node {
        // The header node itself is not in `count`.
        Node::Object { count, .. } | Node::Array { count, .. } => *count + 1,
        _ => 1,
    }
}

impl FieldParser {
    pub fn new() -> Self {
        FieldParser {
            scratch: Vec::with_capacity(64 * 1024),
            spans: Vec::new(),
            buffers: Buffers::new(64 * 1024),
            tape: Some(Tape::null().reset()),
        }
    }

    /// Validates `record` as a JSON object and reads its key fields. `index` and `offset` only
    /// label the error.
    pub fn parse(
        &mut self,
        record: &[u8],
        index: u64,
        offset: u64,
    ) -> Result<KeyFields, ParseError> {
        self.scratch.clear();
        self.scratch.extend_from_slice(record);
        let mut tape = self
            .tape
            .take()
            .unwrap_or_else(|| Tape::null().reset())
            .reset();
        let result = match simd_json::fill_tape(&mut self.scratch, &mut self.buffers, &mut tape) {
            Ok(()) => extract(&tape.0).ok_or_else(|| ParseError::RecordNotObject {
                index,
                offset,
                found: "a non-object value".into(),
            }),
            Err(e) => Err(ParseError::InvalidRecord {
                index,
                offset,
                reason: format!("{:?} at byte {}", e.error(), offset + e.index() as u64),
            }),
        };
        self.tape = Some(tape.reset());
        result
    }

    /// Takes the next batch of complete records from `splitter` (at most `max_bytes` past the
    /// first, see [`RecordSplitter::next_batch`]) and hands each, with its key fields, to
    /// `each`. `Ok(false)` when the splitter needs more input. On a fault the records before it
    /// have been handed out.
    pub fn next_batch(
        &mut self,
        splitter: &mut RecordSplitter,
        max_bytes: usize,
        each: impl FnMut(RawRecord<'_>, KeyFields),
    ) -> Result<bool, ParseError> {
        let mut spans = std::mem::take(&mut self.spans);
        let result = splitter.next_batch(max_bytes, &mut spans).and_then(|buf| {
            if spans.is_empty() {
                return Ok(false);
            }
            self.take_batch(buf, &mut spans, each)?;
            Ok(true)
        });
        self.spans = spans;
        result
    }

    /// The second half of [`next_batch`](Self::next_batch), for callers that take the batch
    /// from the splitter themselves (to account for [`parse_scratch_bytes`] first): records
    /// the fast path already read go straight out; each run of the others is parsed in one
    /// simd-json call.
    pub fn take_batch(
        &mut self,
        buf: &[u8],
        spans: &mut [RecordSpan],
        mut each: impl FnMut(RawRecord<'_>, KeyFields),
    ) -> Result<(), ParseError> {
        let mut i = 0;
        while i < spans.len() {
            if let Some(k) = spans[i].fields.take() {
                each(spans[i].record(buf), k);
                i += 1;
                continue;
            }
            let run_end = spans[i..]
                .iter()
                .position(|s| s.fields.is_some())
                .map_or(spans.len(), |n| i + n);
            self.parse_batch(buf, &spans[i..run_end], |span, k| each(span.record(buf), k))?;
            i = run_end;
        }
        Ok(())
    }

    /// Drops the buffers a large simd-json pass grew (they keep their size otherwise).
    pub fn release_memory(&mut self) {
        if self.scratch.capacity() > 1 << 20 {
            *self = FieldParser::new();
        }
    }

    /// Validates and reads the key fields of several records of one buffer in a single
    /// simd-json call: the records and the separators between them, as the file has them, are
    /// parsed as one array `[r0 , r1 , …]`. Per-call costs (buffer set-up, padding, the stage
    /// switch) are then paid once per batch instead of once per record. Should the batch not
    /// parse, each record is parsed alone, so the fault is reported for the right record, at
    /// the right offset, after the records before it were handed to `each`.
    pub fn parse_batch(
        &mut self,
        buf: &[u8],
        spans: &[RecordSpan],
        mut each: impl FnMut(&RecordSpan, KeyFields),
    ) -> Result<(), ParseError> {
        let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
            return Ok(());
        };
        if spans.len() > 1 {
            self.scratch.clear();
            self.scratch.push(b'[');
            self.scratch.extend_from_slice(&buf[first.start..last.end]);
            self.scratch.push(b']');
            let mut tape = self
                .tape
                .take()
                .unwrap_or_else(|| Tape::null().reset())
                .reset();
            let mut whole = false;
            if simd_json::fill_tape(&mut self.scratch, &mut self.buffers, &mut tape).is_ok() {
                let nodes = &tape.0;
                if let Some(Node::Array { len, .. }) = nodes.first() {
                    whole = *len == spans.len();
                }
                if whole {
                    let mut idx = 1;
                    for span in spans {
                        let k = nodes
                            .get(idx)
                            .and_then(|node| nodes.get(idx..idx + span_of(node)));
                        idx += k.map_or(0, <[Node]>::len);
                        let Some(k) = k.and_then(extract) else {
                            let e = ParseError::RecordNotObject {
                                index: span.index,
                                offset: span.offset,
                                found: "a non-object value".into(),
                            };
                            self.tape = Some(tape.reset());
                            return Err(e);
                        };
                        each(span, k);
                    }
                }
            }
            self.tape = Some(tape.reset());
            if whole {
                return Ok(());
            }
        }
        for span in spans {
            let k = self.parse(&buf[span.start..span.end], span.index, span.offset)?;
            each(span, k);
        }
        Ok(())
    }
}

fn as_str<'a>(n: &Node<'a>) -> Option<&'a str> {
    match n {
        Node::String(s) => Some(s),
        _ => None,
    }
}

fn scalar<'a>(n: &Node<'a>) -> Scalar<'a> {
    match n {
        Node::String(s) => Scalar::Str(s),
        Node::Static(StaticNode::Bool(b)) => Scalar::Bool(*b),
        _ => Scalar::Other,
    }
}

/// Walks the members of the object at `nodes[0]`, calling `f(key, value_nodes)`.
fn members<'t, 'i>(
    nodes: &'t [Node<'i>],
    mut f: impl FnMut(&'i str, &'t [Node<'i>]),
) -> Option<()> {
    let Node::Object { len, .. } = nodes.first()? else {
        return None;
    };
    let mut idx = 1;
    for _ in 0..*len {
        let key = as_str(nodes.get(idx)?)?;
        idx += 1;
        let n = span_of(nodes.get(idx)?);
        f(key, nodes.get(idx..idx + n)?);
        idx += n;
    }
    Some(())
}

fn extract(nodes: &[Node<'_>]) -> Option<KeyFields> {
    let mut k = KeyFields::default();
    members(nodes, |key, v| match top_member(key.as_bytes()) {
        Some(Member::UserIdentity) => {
            // A `userIdentity` that is not an object has no fields to read.
            let _ = members(v, |ukey, uv| {
                if let Some(m) = user_member(ukey.as_bytes()) {
                    k.set(m, scalar(&uv[0]));
                }
            });
        }
        Some(m) => k.set(m, scalar(&v[0])),
        None => {}
    })?;
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: &[u8] = br#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDA","arn":"arn:aws:iam::111122223333:user/Alice","accountId":"111122223333","accessKeyId":"AKIA","userName":"Al\u00e9ce","sessionContext":{"attributes":{"mfaAuthenticated":"false"}}},"eventTime":"2020-07-21T20:56:00Z","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","awsRegion":"us-east-2","sourceIPAddress":"192.0.2.1","requestParameters":{"x":[1,2,{"y":null}]},"responseElements":null,"eventID":"e-1","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"444455556666","eventCategory":"Management","errorCode":"AccessDenied"}"#;

    /// The parse-memory bound covers simd-json's structural indexes and its tape.
    #[test]
    fn structural_bound_covers_simd_jsons_index_and_tape() {
        let dense = format!("{{\"a\":[{}1]}}", "1,".repeat(5000));
        let strings = format!(r#"{{"s":"{}","t":"a, b: [c]"}}"#, "x".repeat(5000));
        let nested = format!("{}{}", "[".repeat(60), "]".repeat(60));
        let docs: Vec<&[u8]> = vec![
            REC,
            dense.as_bytes(),
            strings.as_bytes(),
            nested.as_bytes(),
            br#" { "a" : true , "b" : [ null , -1.5e3 , "q\"" ] } "#,
            b"1",
        ];
        for doc in docs {
            let mut copy = doc.to_vec();
            let tape = simd_json::to_tape(&mut copy).expect("valid JSON");
            let (mut outside, mut in_string, mut escaped) = (0, false, false);
            for &b in doc {
                match (in_string, escaped, b) {
                    (true, true, _) => escaped = false,
                    (true, false, b'\\') => escaped = true,
                    (_, false, b'"') => in_string = !in_string,
                    (false, _, b'{' | b'}' | b'[' | b']' | b':' | b',') => outside += 1,
                    _ => {}
                }
            }
            // simd-json's structural indexes: the characters above, and the first byte of
            // every string and scalar (the tape's nodes but its containers).
            let containers = tape
                .0
                .iter()
                .filter(|n| matches!(n, Node::Object { .. } | Node::Array { .. }))
                .count();
            let indexes = outside + tape.0.len() - containers;
            let bound = structural_bound(doc);
            assert!(
                bound >= indexes && bound >= tape.0.len(),
                "{}: bound {bound}, {indexes} indexes, {} nodes",
                String::from_utf8_lossy(&doc[..doc.len().min(40)]),
                tape.0.len()
            );
            assert!(simd_json_bytes(doc) >= 3 * doc.len() + 28 * bound);
        }
        // A run of declined records counts; records the fast path took do not.
        let spans = |fields: Option<KeyFields>| RecordSpan {
            index: 0,
            offset: 0,
            start: 0,
            end: REC.len(),
            has_line_break: false,
            fields,
        };
        assert_eq!(
            parse_scratch_bytes(REC, &[spans(Some(KeyFields::default()))]),
            0
        );
        assert_eq!(
            parse_scratch_bytes(REC, &[spans(None)]),
            simd_json_bytes(REC)
        );
    }

    #[test]
    fn member_tables_name_exactly_the_key_fields() {
        let mut buf = Vec::new();
        for (names, lookup, members) in [
            (
                &TOP_NAMES[..],
                top_member as fn(&[u8]) -> Option<Member>,
                Members::Top,
            ),
            (&USER_NAMES[..], user_member, Members::User),
        ] {
            for &(name, member) in names {
                assert_eq!(lookup(name), Some(member));
                // Near misses: one byte changed, added or removed, at either end.
                let mut near: Vec<Vec<u8>> = vec![
                    name[1..].to_vec(),
                    name[..name.len() - 1].to_vec(),
                    [name, b"x"].concat(),
                    [b"x", name].concat(),
                    [name, b"\0"].concat(),
                ];
                for i in 0..name.len() {
                    let mut v = name.to_vec();
                    v[i] ^= 0x20;
                    near.push(v);
                }
                for candidate in std::iter::once(name.to_vec()).chain(near) {
                    let expected = (candidate == name).then_some(member);
                    assert_eq!(lookup(&candidate), expected, "{:?}", candidate);
                    // In a buffer, with bytes after it, and at the very end of one.
                    for tail in [
                        &b"\":\"value\",\"next\":1}xxxxxxxxxxxxxxxxxxxxxxxx"[..],
                        b"",
                    ] {
                        buf.clear();
                        buf.extend_from_slice(b"{\"");
                        buf.extend_from_slice(&candidate);
                        let end = buf.len();
                        buf.extend_from_slice(tail);
                        assert_eq!(
                            member_in(members, &buf, 2, end),
                            expected,
                            "{:?}",
                            candidate
                        );
                    }
                }
            }
        }
        assert_eq!(top_member(b""), None);
        assert_eq!(top_member(&[b'e'; 40]), None);
        assert_eq!(member_in(Members::Top, &[b'e'; 40], 0, 40), None);
    }

    /// Splits `file` with the splitter and parses each batch; returns what `each` saw and the
    /// first error.
    fn batch_parse(file: &[u8]) -> (Vec<(u64, KeyFields)>, Result<(), ParseError>) {
        let mut splitter = crate::RecordSplitter::new(crate::Limits::default());
        splitter.push(file);
        let mut p = FieldParser::new();
        let mut got = Vec::new();
        loop {
            match p.next_batch(&mut splitter, usize::MAX, |r, k| got.push((r.index, k))) {
                Ok(true) => {}
                Ok(false) => return (got, splitter.finish()),
                Err(e) => return (got, Err(e)),
            }
        }
    }

    #[test]
    fn batch_parse_equals_one_by_one() {
        let other = br#"{"eventName":"B","eventName":"C","userIdentity":{"type":"Root","type":"AWSService"},"eventTime":"2020-07-21T20:56:00.123Z"}"#;
        let mut file = br#"{"Records":[ "#.to_vec();
        for i in 0..5 {
            if i > 0 {
                file.extend_from_slice(b" ,\n ");
            }
            file.extend_from_slice(if i % 2 == 0 { REC } else { other });
        }
        file.extend_from_slice(b"]}");
        let (got, end) = batch_parse(&file);
        assert_eq!(end, Ok(()));
        let mut p = FieldParser::new();
        let one = p.parse(REC, 0, 0).expect("valid");
        let two = p.parse(other, 0, 0).expect("valid");
        assert_eq!(two.event_name(), Some("C"), "last duplicate key wins");
        let expected: Vec<(u64, KeyFields)> = (0..5)
            .map(|i| (i, if i % 2 == 0 { one.clone() } else { two.clone() }))
            .collect();
        assert_eq!(got, expected);
    }

    /// JSON puts no bound on integers; simd-json alone refuses those past 64 bits, which would
    /// reject a valid record (found by the `split_oracle` fuzz target against serde_json).
    #[test]
    fn integers_past_64_bits_are_valid_json() {
        let rec = br#"{"eventName":"E","requestParameters":{"n":99999999999999999999999999,"m":-18446744073709551617}}"#;
        let k = FieldParser::new().parse(rec, 0, 0).expect("valid JSON");
        assert_eq!(k.event_name(), Some("E"));
    }

    #[test]
    fn batch_fault_names_the_record_and_keeps_the_ones_before() {
        let file = br#"{"Records":[{"eventName":"A"},{"eventName":"B"},{"eventName":tru},{"eventName":"D"}]}"#;
        let (got, end) = batch_parse(file);
        let names: Vec<_> = got.iter().map(|(_, k)| k.event_name()).collect();
        assert_eq!(names, vec![Some("A"), Some("B")]);
        match end {
            Err(ParseError::InvalidRecord {
                index: 2, offset, ..
            }) => {
                assert_eq!(
                    &file[offset as usize..offset as usize + 13],
                    b"{\"eventName\":"
                )
            }
            other => panic!("expected record 2 to be invalid, got {other:?}"),
        }
        // Invalid UTF-8 inside a string of the last record.
        let mut bad = br#"{"Records":[{"a":"x"},{"a":"#.to_vec();
        bad.extend_from_slice(b"\"\xff\xfe\"}]}");
        let (got, end) = batch_parse(&bad);
        assert_eq!(got.len(), 1);
        assert!(
            matches!(end, Err(ParseError::InvalidRecord { index: 1, .. })),
            "{end:?}"
        );
    }

    #[test]
    fn reads_every_key_field() {
        let mut p = FieldParser::new();
        let k = p.parse(REC, 0, 0).expect("valid record");
        assert_eq!(k.event_time_ms, Some(1_595_364_960_000));
        assert_eq!(k.event_time(), Some("2020-07-21T20:56:00Z"));
        assert_eq!(k.event_id(), Some("e-1"));
        assert_eq!(k.event_name(), Some("RunInstances"));
        assert_eq!(k.event_source(), Some("ec2.amazonaws.com"));
        assert_eq!(k.aws_region(), Some("us-east-2"));
        assert_eq!(k.event_type(), Some("AwsApiCall"));
        assert_eq!(k.event_category(), Some("Management"));
        assert_eq!(k.read_only, Some(false));
        assert_eq!(k.management_event, Some(true));
        assert_eq!(k.recipient_account_id(), Some("444455556666"));
        assert_eq!(k.account(), Some("444455556666"));
        assert_eq!(k.user_type(), Some("IAMUser"));
        assert_eq!(k.user_arn(), Some("arn:aws:iam::111122223333:user/Alice"));
        assert_eq!(k.user_account_id(), Some("111122223333"));
        assert_eq!(k.user_principal_id(), Some("AIDA"));
        assert_eq!(k.user_name(), Some("Aléce"));
        assert_eq!(k.source_ip_address(), Some("192.0.2.1"));
        assert_eq!(k.error_code(), Some("AccessDenied"));
        // Reuse of buffers must not leak fields from one record into the next.
        let k2 = p.parse(br#"{"eventName":"X"}"#, 1, 0).expect("valid");
        assert_eq!(k2.event_name(), Some("X"));
        assert_eq!(k2.user_name(), None);
        assert_eq!(k2.event_time_ms, None);
    }

    #[test]
    fn invalid_records_are_errors() {
        let mut p = FieldParser::new();
        assert!(matches!(
            p.parse(br#"{"a":}"#, 3, 10),
            Err(ParseError::InvalidRecord {
                index: 3,
                offset: 10,
                ..
            })
        ));
        assert!(matches!(
            p.parse(b"{\"a\":\"\xff\"}", 0, 0),
            Err(ParseError::InvalidRecord { .. })
        ));
        assert!(matches!(
            p.parse(b"[1]", 0, 0),
            Err(ParseError::RecordNotObject { .. })
        ));
        assert!(p.parse(br#"{"ok":1}"#, 0, 0).is_ok());
    }
}
