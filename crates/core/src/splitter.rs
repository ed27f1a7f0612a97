//! Streaming record splitter: finds the byte range of each element of the top-level
//! `"Records"` array without building a document, so memory is bounded by the largest record,
//! not by the file.
//!
//! Each record is first offered to [`crate::fastscan`], which finds its end, validates it and
//! reads its key fields in one pass. A record it declines is split by the byte scan here, which
//! only tracks strings, escapes and nesting depth, and is validated afterwards by simd-json
//! when its key fields are read (see [`crate::fields`]). Either way every byte is checked.

use crate::blockscan::{self, escaped_by_backslashes, masks, prefix_xor, BLOCK};
use crate::error::ParseError;
use crate::fastscan::{FastScanner, Outcome};
use crate::fields::KeyFields;
use memchr::memchr2;

/// Resource limits that keep a hostile or broken file from taking the worker down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest record held in memory. CloudTrail caps events at 256 KB, so the default leaves a
    /// wide margin while still bounding memory.
    pub max_record_bytes: usize,
    /// Deepest nesting accepted inside a record.
    pub max_depth: u32,
    /// Largest decompressed size of one file.
    pub max_decompressed_bytes: u64,
    /// Largest decompressed:compressed ratio, checked once past `ratio_grace_bytes`.
    pub max_ratio: u64,
    /// Output below which the ratio is not checked (tiny files compress absurdly well).
    pub ratio_grace_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 16 * 1024 * 1024,
            max_depth: 128,
            max_decompressed_bytes: 16 * 1024 * 1024 * 1024,
            max_ratio: 1000,
            ratio_grace_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One record as it appears in the decompressed file.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// Position in the file's `Records` array.
    pub index: u64,
    /// Offset of the record's first byte in the decompressed stream.
    pub offset: u64,
    /// The exact bytes of the record, from `{` to its matching `}`.
    pub bytes: &'a [u8],
    /// The record holds a line break outside strings (pretty-printed source). NDJSON writers
    /// must then drop insignificant whitespace to keep one record per line.
    pub has_line_break: bool,
}

/// A record's place in the splitter's buffer (see [`RecordSplitter::next_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpan {
    pub index: u64,
    pub offset: u64,
    /// Byte range in the buffer the batch was taken from.
    pub start: usize,
    pub end: usize,
    pub has_line_break: bool,
    /// Set when the fast path already validated the record and read its key fields; `None`
    /// means the record still has to go through simd-json.
    pub fields: Option<KeyFields>,
}

impl RecordSpan {
    /// The record in `buf`, the buffer [`RecordSplitter::next_batch`] returned with this span.
    pub fn record<'a>(&self, buf: &'a [u8]) -> RawRecord<'a> {
        RawRecord {
            index: self.index,
            offset: self.offset,
            bytes: &buf[self.start..self.end],
            has_line_break: self.has_line_break,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level `{`.
    Start,
    /// After `{` or `,` at top level: a key (or `}` right after `{`).
    Key {
        first: bool,
    },
    /// Inside a top-level key string.
    KeyString,
    Colon,
    /// Before a top-level value.
    Value,
    /// Inside a top-level value we do not care about (any key but `Records`).
    SkipValue,
    /// Inside a scalar top-level value (number, literal).
    SkipScalar,
    /// Right after `[` of `Records`.
    ArrayFirst,
    /// After `,` inside `Records`.
    ArrayNext,
    /// Inside a record, scanned by [`crate::fastscan`].
    FastRecord,
    /// Inside a record the fast scan declined: the byte scan finds its end.
    InRecord,
    AfterRecord,
    /// After a top-level value: `,` or `}`.
    AfterValue,
    End,
}

/// Push-based splitter: feed decompressed bytes with [`push`](Self::push), take records with
/// [`next_record`](Self::next_record), call [`finish`](Self::finish) at end of input.
pub struct RecordSplitter {
    buf: Vec<u8>,
    /// Bytes of `buf` before this are done with and may be discarded.
    consumed: usize,
    /// Scan position in `buf`; may point one past the end after a trailing backslash.
    pos: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    state: State,
    depth: u32,
    in_string: bool,
    value_start: usize,
    line_break: bool,
    key: Vec<u8>,
    key_escape: bool,
    is_records_key: bool,
    saw_records: bool,
    index: u64,
    limits: Limits,
    failed: Option<ParseError>,
    fast: FastScanner,
    /// Whether the fast path reads key fields (see [`RecordSplitter::set_key_fields`]).
    key_fields: bool,
    fast_records: u64,
}

/// JSON's whitespace (not form feed, unlike `u8::is_ascii_whitespace`).
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn describe(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

enum Scan {
    Complete(usize),
    NeedMore,
}

/// Capacity the buffer may keep without holding a record: one read chunk plus a typical
/// partial record (CloudTrail caps events at 256 KB).
const SHRINK_FLOOR: usize = 1 << 20;

impl RecordSplitter {
    pub fn new(limits: Limits) -> Self {
        RecordSplitter {
            buf: Vec::with_capacity(256 * 1024),
            consumed: 0,
            pos: 0,
            base: 0,
            state: State::Start,
            depth: 0,
            in_string: false,
            value_start: 0,
            line_break: false,
            key: Vec::new(),
            key_escape: false,
            is_records_key: false,
            saw_records: false,
            index: 0,
            limits,
            failed: None,
            fast: FastScanner::default(),
            key_fields: true,
            fast_records: 0,
        }
    }

    /// Whether records come with their key fields (the default). Off, every record is still
    /// validated, but the fast path looks up no key: the [`KeyFields`] of the records it took
    /// are empty (those simd-json read keep theirs), so this is for consumers that ignore key
    /// fields (`FieldMode::ValidateOnly`, `cat`), which then skip about a third of the work on
    /// typical records.
    pub fn set_key_fields(&mut self, on: bool) {
        self.key_fields = on;
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Total bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Records handed out so far.
    pub fn records_seen(&self) -> u64 {
        self.index
    }

    /// Of those, the records the fast path validated (the rest went through simd-json).
    pub fn fast_records(&self) -> u64 {
        self.fast_records
    }

    /// Appends decompressed bytes. Discards what earlier records used first, so the buffer holds
    /// at most one partial record plus the new chunk.
    pub fn push(&mut self, data: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(data);
    }

    /// Gives a buffer to read into directly (saves a copy on the synchronous path). Call
    /// [`commit`](Self::commit) with the number of bytes written.
    pub fn spare(&mut self, want: usize) -> &mut [u8] {
        self.compact();
        let len = self.buf.len();
        self.buf.resize(len + want, 0);
        &mut self.buf[len..]
    }

    /// Keeps `n` bytes of the last [`spare`](Self::spare) buffer.
    pub fn commit(&mut self, spare_len: usize, n: usize) {
        let keep = self.buf.len() - spare_len + n.min(spare_len);
        self.buf.truncate(keep);
    }

    /// Bytes the buffer keeps at the next [`push`](Self::push) or [`spare`](Self::spare): the
    /// record in progress (or the unread tail), not what earlier records used. A reader that
    /// accounts for its memory adds what it is about to read to this.
    pub fn retained_bytes(&self) -> usize {
        self.buf.len() - self.consumed.min(self.value_start_if_holding())
    }

    fn compact(&mut self) {
        let cut = self.consumed.min(self.value_start_if_holding());
        if cut > 0 {
            self.buf.drain(..cut);
            self.base += cut as u64;
            self.consumed -= cut;
            self.pos -= cut;
            self.value_start = self.value_start.saturating_sub(cut);
        }
        // After a large record the buffer would keep its size (and its resident pages) for
        // the rest of the file; give it back once it is mostly empty.
        let keep = (2 * self.buf.len()).max(SHRINK_FLOOR);
        if self.buf.capacity() > 2 * keep {
            self.buf.shrink_to(keep);
        }
    }

    fn value_start_if_holding(&self) -> usize {
        if matches!(self.state, State::InRecord | State::FastRecord) {
            self.value_start
        } else {
            usize::MAX
        }
    }

    fn abs(&self, i: usize) -> u64 {
        self.base + i as u64
    }

    fn fail(&mut self, e: ParseError) -> ParseError {
        self.failed = Some(e.clone());
        e
    }

    /// Returns the next complete record, `Ok(None)` when more input is needed.
    pub fn next_record(&mut self) -> Result<Option<RawRecord<'_>>, ParseError> {
        Ok(self.next_span()?.map(|span| span.record(&self.buf)))
    }

    /// Takes every record already complete in the buffer, stopping once the records taken
    /// cover `max_bytes` (at least one is taken), so they can be validated in one parser call
    /// ([`crate::FieldParser::parse_batch`]). `out` is cleared first; it is left empty when
    /// more input is needed. When a fault follows some records, those records are returned and
    /// the fault comes with the next call. The spans point into the returned buffer, which
    /// stays valid until the next [`push`](Self::push) or [`spare`](Self::spare).
    pub fn next_batch(
        &mut self,
        max_bytes: usize,
        out: &mut Vec<RecordSpan>,
    ) -> Result<&[u8], ParseError> {
        out.clear();
        let mut taken = 0;
        while taken < max_bytes {
            match self.next_span() {
                Ok(Some(span)) => {
                    taken += span.end - span.start;
                    out.push(span);
                }
                Ok(None) => break,
                // The fault is kept in `failed`; the next call reports it.
                Err(_) if !out.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(&self.buf)
    }

    fn next_span(&mut self) -> Result<Option<RecordSpan>, ParseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            match self.state {
                State::FastRecord => {
                    let max_depth = self.limits.max_depth;
                    let rec = &self.buf[self.value_start..];
                    match self.fast.resume(rec, max_depth, self.key_fields) {
                        Outcome::Record {
                            len,
                            fields,
                            has_line_break,
                        } => {
                            self.fast_records += 1;
                            let end = self.value_start + len;
                            return self.record_done(end, has_line_break, Some(fields));
                        }
                        Outcome::NeedMore => return self.record_incomplete(),
                        Outcome::Declined => {
                            // The byte scan starts over from the record's `{`.
                            self.pos = self.value_start;
                            self.state = State::InRecord;
                        }
                    }
                }
                State::InRecord => match self.scan_value()? {
                    Scan::NeedMore => return self.record_incomplete(),
                    Scan::Complete(end) => return self.record_done(end, self.line_break, None),
                },
                State::SkipValue => match self.scan_value()? {
                    Scan::NeedMore => {
                        // Skipped values are never handed out, so they need not be held.
                        self.consumed = self.pos.min(self.buf.len());
                        return Ok(None);
                    }
                    Scan::Complete(end) => {
                        self.pos = end;
                        self.consumed = end;
                        self.state = State::AfterValue;
                    }
                },
                State::End => {
                    self.skip_trailing()?;
                    return Ok(None);
                }
                _ => {
                    if !self.step_structure()? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The record being scanned goes on past the buffer: fine unless it is already too large.
    fn record_incomplete(&mut self) -> Result<Option<RecordSpan>, ParseError> {
        let held = self.buf.len() - self.value_start;
        if held > self.limits.max_record_bytes {
            return Err(self.too_large());
        }
        Ok(None)
    }

    fn record_done(
        &mut self,
        end: usize,
        has_line_break: bool,
        fields: Option<KeyFields>,
    ) -> Result<Option<RecordSpan>, ParseError> {
        let start = self.value_start;
        if end - start > self.limits.max_record_bytes {
            return Err(self.too_large());
        }
        self.state = State::AfterRecord;
        self.consumed = end;
        self.pos = end;
        let index = self.index;
        self.index += 1;
        Ok(Some(RecordSpan {
            index,
            offset: self.abs(start),
            start,
            end,
            has_line_break,
            fields,
        }))
    }

    fn too_large(&mut self) -> ParseError {
        self.fail(ParseError::RecordTooLarge {
            index: self.index,
            offset: self.abs(self.value_start),
            limit: self.limits.max_record_bytes,
        })
    }

    /// Advances through the top-level structure by one token. Returns false when out of input.
    fn step_structure(&mut self) -> Result<bool, ParseError> {
        // Whitespace between tokens. Inside a key or a scalar it is content or the scalar's
        // end, which matters when a chunk boundary falls just before it.
        while self.pos < self.buf.len()
            && is_ws(self.buf[self.pos])
            && !matches!(self.state, State::KeyString | State::SkipScalar)
        {
            self.pos += 1;
        }
        self.consumed = self.pos.min(self.buf.len());
        let Some(&b) = self.buf.get(self.pos) else {
            return Ok(false);
        };
        let at = self.abs(self.pos);
        match self.state {
            State::Start => {
                if b != b'{' {
                    return Err(self.syntax(at, "'{' opening a CloudTrail file", b));
                }
                self.state = State::Key { first: true };
                self.pos += 1;
            }
            State::Key { first } => match b {
                b'"' => {
                    self.key.clear();
                    self.key_escape = false;
                    self.state = State::KeyString;
                    self.pos += 1;
                }
                b'}' if first => {
                    self.state = State::End;
                    self.pos += 1;
                }
                _ => return Err(self.syntax(at, "a key string", b)),
            },
            State::KeyString => {
                // Keys are short; a byte loop is fine here.
                while let Some(&c) = self.buf.get(self.pos) {
                    self.pos += 1;
                    if self.key_escape {
                        self.key_escape = false;
                    } else if c == b'\\' {
                        self.key_escape = true;
                    } else if c == b'"' {
                        self.is_records_key = self.key == b"Records";
                        self.state = State::Colon;
                        return Ok(true);
                    }
                    if self.key.len() < 1024 {
                        self.key.push(c);
                    }
                }
                self.consumed = self.pos;
                return Ok(false);
            }
            State::Colon => {
                if b != b':' {
                    return Err(self.syntax(at, "':' after a key", b));
                }
                self.state = State::Value;
                self.pos += 1;
            }
            State::Value => {
                if self.is_records_key {
                    if b != b'[' {
                        return Err(self.syntax(at, "'[' opening the Records array", b));
                    }
                    self.saw_records = true;
                    self.state = State::ArrayFirst;
                    self.pos += 1;
                } else {
                    self.value_start = self.pos;
                    match b {
                        b'{' | b'[' | b'"' => {
                            self.depth = 0;
                            self.in_string = false;
                            self.state = State::SkipValue;
                        }
                        _ => {
                            self.state = State::SkipScalar;
                        }
                    }
                }
            }
            State::SkipScalar => {
                while let Some(&c) = self.buf.get(self.pos) {
                    if c == b',' || c == b'}' || is_ws(c) {
                        self.state = State::AfterValue;
                        return Ok(true);
                    }
                    self.pos += 1;
                }
                self.consumed = self.pos;
                return Ok(false);
            }
            State::ArrayFirst | State::ArrayNext => {
                if b == b']' && self.state == State::ArrayFirst {
                    self.state = State::AfterValue;
                    self.pos += 1;
                } else if b == b'{' {
                    self.value_start = self.pos;
                    self.depth = 0;
                    self.in_string = false;
                    self.line_break = false;
                    self.state = if blockscan::ENABLED {
                        self.fast.start();
                        State::FastRecord
                    } else {
                        State::InRecord
                    };
                } else {
                    let e = ParseError::RecordNotObject {
                        index: self.index,
                        offset: at,
                        found: describe(b),
                    };
                    return Err(self.fail(e));
                }
            }
            State::AfterRecord => match b {
                b',' => {
                    self.state = State::ArrayNext;
                    self.pos += 1;
                }
                b']' => {
                    self.state = State::AfterValue;
                    self.pos += 1;
                }
                _ => return Err(self.syntax(at, "',' or ']' after a record", b)),
            },
            State::AfterValue => match b {
                b',' => {
                    self.state = State::Key { first: false };
                    self.pos += 1;
                }
                b'}' => {
                    self.state = State::End;
                    self.pos += 1;
                }
                _ => return Err(self.syntax(at, "',' or '}' after a top-level value", b)),
            },
            State::FastRecord | State::InRecord | State::SkipValue | State::End => {}
        }
        self.consumed = self.pos;
        Ok(true)
    }

    fn syntax(&mut self, offset: u64, expected: &'static str, found: u8) -> ParseError {
        self.fail(ParseError::Syntax {
            offset,
            expected,
            found: describe(found),
        })
    }

    fn skip_trailing(&mut self) -> Result<(), ParseError> {
        while let Some(&c) = self.buf.get(self.pos) {
            if !is_ws(c) {
                let at = self.abs(self.pos);
                return Err(self.syntax(at, "end of file after the top-level object", c));
            }
            self.pos += 1;
        }
        self.consumed = self.pos;
        Ok(())
    }

    /// Scans an object, array or string value from `pos`, resuming where the last call stopped.
    /// Inside a container it classifies 64 bytes at a time ([`crate::blockscan`]) and visits
    /// only brackets outside strings; the partial block at the end of the buffer and top-level
    /// strings go through the byte loop, which skips strings with `memchr2`.
    fn scan_value(&mut self) -> Result<Scan, ParseError> {
        let len = self.buf.len();
        let mut i = self.pos;
        let mut depth = self.depth;
        let mut in_string = self.in_string;
        let mut line_break = self.line_break;
        // Set when a block ended inside an odd run of backslashes: the next byte is escaped and
        // is skipped, exactly as the byte loop's `j + 2` does (which may also step past the end).
        let mut escape_pending = false;
        let result = loop {
            if escape_pending {
                escape_pending = false;
                i += 1;
            }
            if i >= len {
                break Scan::NeedMore;
            }
            // Inside a container, whole 64-byte blocks: only brackets outside strings matter.
            if blockscan::ENABLED && depth > 0 {
                if let Some(block) = self.buf[i..].first_chunk::<BLOCK>() {
                    let m = masks(block);
                    let (escaped, carry) = escaped_by_backslashes(m.backslash);
                    let quote = m.quote & !escaped;
                    let in_str = prefix_xor(quote) ^ if in_string { !0 } else { 0 };
                    let mut brackets = (m.open | m.close) & !in_str;
                    let mut end = None;
                    while brackets != 0 {
                        let t = brackets.trailing_zeros();
                        if m.open & (1u64 << t) != 0 {
                            depth += 1;
                            if depth > self.limits.max_depth {
                                return Err(self.too_deep());
                            }
                        } else {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(t as usize + 1);
                                break;
                            }
                        }
                        brackets &= brackets - 1;
                    }
                    let used = end.unwrap_or(BLOCK);
                    let upto = if used == BLOCK {
                        !0
                    } else {
                        (1u64 << used) - 1
                    };
                    // Escapes are applied to every quote here, so a backslash outside a string
                    // would split differently from the byte loop; it is never valid JSON.
                    let stray = m.backslash & !in_str & upto;
                    if stray != 0 {
                        let at = self.abs(i + stray.trailing_zeros() as usize);
                        return Err(self.syntax(at, "no backslash outside a string", b'\\'));
                    }
                    if m.line & !in_str & upto != 0 {
                        line_break = true;
                    }
                    i += used;
                    if end.is_some() {
                        in_string = false;
                        break Scan::Complete(i);
                    }
                    in_string = in_str >> 63 == 1;
                    escape_pending = carry;
                    continue;
                }
            }
            if in_string {
                match memchr2(b'"', b'\\', &self.buf[i..]) {
                    None => {
                        i = len;
                        break Scan::NeedMore;
                    }
                    Some(k) => {
                        let j = i + k;
                        if self.buf[j] == b'\\' {
                            // May step one past the end; the next call resumes after the
                            // escaped byte once it arrives.
                            i = j + 2;
                        } else {
                            in_string = false;
                            i = j + 1;
                            if depth == 0 {
                                break Scan::Complete(i);
                            }
                        }
                    }
                }
            } else {
                let c = self.buf[i];
                i += 1;
                match c {
                    b'"' => in_string = true,
                    b'{' | b'[' => {
                        depth += 1;
                        if depth > self.limits.max_depth {
                            return Err(self.too_deep());
                        }
                    }
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            break Scan::Complete(i);
                        }
                    }
                    b'\n' | b'\r' => line_break = true,
                    b'\\' => {
                        let at = self.abs(i - 1);
                        return Err(self.syntax(at, "no backslash outside a string", c));
                    }
                    _ => {}
                }
            }
        };
        self.pos = i;
        self.depth = depth;
        self.in_string = in_string;
        self.line_break = line_break;
        Ok(result)
    }

    fn too_deep(&mut self) -> ParseError {
        self.fail(ParseError::TooDeep {
            index: self.index,
            offset: self.abs(self.value_start),
            limit: self.limits.max_depth,
        })
    }

    /// Declares end of input. Fails if the file stopped before its closing brace.
    pub fn finish(&mut self) -> Result<(), ParseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        // Drain anything left (e.g. trailing whitespace after the top-level object).
        if self.state == State::End {
            self.skip_trailing()?;
        }
        let offset = self.bytes_seen();
        let context = match self.state {
            State::End if self.saw_records => return Ok(()),
            State::End => return Err(self.fail(ParseError::NoRecordsArray)),
            State::Start if offset == 0 => "an empty file",
            State::Start => "leading whitespace (no JSON object)",
            State::FastRecord | State::InRecord => "a record",
            State::ArrayFirst | State::ArrayNext | State::AfterRecord => "the Records array",
            State::KeyString => "a top-level key",
            _ => "the top-level object",
        };
        Err(self.fail(ParseError::Truncated { offset, context }))
    }
}

/// Rewrites a pretty-printed record onto one line by dropping whitespace outside strings. The
/// result is JSON-equal to the input; compact records (all real CloudTrail files) never need it.
pub fn compact_json_into(src: &[u8], out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escape = false;
    for &c in src {
        if in_string {
            if escape {
                escape = false;
            } else if c == b'\\' {
                escape = true;
            } else if c == b'"' {
                in_string = false;
            }
            out.push(c);
        } else if c == b'"' {
            in_string = true;
            out.push(c);
        } else if !is_ws(c) {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Split = (Vec<(u64, Vec<u8>)>, Result<(), ParseError>);

    fn split_chunks(input: &[u8], chunk: usize) -> Split {
        let mut s = RecordSplitter::new(Limits::default());
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            s.push(c);
            loop {
                match s.next_record() {
                    Ok(Some(r)) => out.push((r.offset, r.bytes.to_vec())),
                    Ok(None) => break,
                    Err(e) => return (out, Err(e)),
                }
            }
        }
        let end = s.finish();
        (out, end)
    }

    /// A backslash outside a string is invalid JSON; the block scan and the byte loop would
    /// split around it differently, so both refuse it at the same offset (found by the
    /// `record_oracle` fuzz target: a file accepted whole, rejected in chunks).
    #[test]
    fn backslash_outside_a_string_fails_the_same_in_any_chunking() {
        let pad = "x".repeat(70);
        for file in [
            format!(r#"{{"Records":[],"u":{{"t":"{pad}","a":1\":\"2{{"b":"}}"}}}}"#),
            format!(r#"{{"Records":[{{"t":"{pad}","a":1\":\"2}}]}}"#),
            r#"{"Records":[{"a":\"x"}]}"#.to_string(),
        ] {
            let at = file.find('\\').expect("a backslash") as u64;
            for chunk in [1, 7, 64, file.len()] {
                let (_, end) = split_chunks(file.as_bytes(), chunk);
                match end {
                    Err(ParseError::Syntax { offset, .. }) => {
                        assert_eq!(offset, at, "{file} in chunks of {chunk}")
                    }
                    other => panic!("{file} in chunks of {chunk}: {other:?}"),
                }
            }
        }
    }

    /// A top-level scalar ended by whitespace that arrives in the next chunk (found by the
    /// `record_oracle` fuzz target: the whitespace was skipped as if between tokens).
    #[test]
    fn top_level_scalar_end_across_chunks() {
        let file = br#"{"Records":[],"n":12 "x"}"#;
        let at = file.iter().rposition(|&b| b == b'"').expect("quote") - 2;
        for chunk in [1, 2, 19, 20, file.len()] {
            let (_, end) = split_chunks(file, chunk);
            assert!(
                matches!(end, Err(ParseError::Syntax { offset, .. }) if offset == at as u64),
                "chunks of {chunk}: {end:?}"
            );
        }
    }

    /// A reader accounts for `retained_bytes` plus what it reads next; after a large record
    /// the buffer gives its memory back instead of keeping the record's size for the file.
    #[test]
    fn retained_bytes_follow_the_record_in_progress_and_the_buffer_shrinks_after_it() {
        let big = format!(r#"{{"p":"{}"}}"#, "x".repeat(8 << 20));
        let file = format!(r#"{{"Records":[{big},{{"a":1}},{{"b":2}}]}}"#);
        let mut s = RecordSplitter::new(Limits::default());
        let mut peak_retained = 0;
        let mut records = 0;
        let mut input = file.as_bytes();
        while !input.is_empty() {
            let n = input.len().min(crate::reader::READ_CHUNK);
            let before = s.retained_bytes();
            let spare = s.spare(n);
            spare.copy_from_slice(&input[..n]);
            s.commit(n, n);
            // The buffer holds what was retained plus the new bytes, nothing more.
            assert!(s.buf.len() <= before + n);
            input = &input[n..];
            while let Ok(Some(_)) = s.next_record() {
                records += 1;
            }
            peak_retained = peak_retained.max(s.retained_bytes());
        }
        assert_eq!(s.finish(), Ok(()));
        assert_eq!(records, 3);
        assert!(
            peak_retained >= big.len() - crate::reader::READ_CHUNK,
            "{peak_retained}"
        );
        assert!(s.retained_bytes() < 64, "{}", s.retained_bytes());
        s.spare(16);
        assert!(
            s.buf.capacity() <= 2 * SHRINK_FLOOR,
            "capacity {} kept after the large record",
            s.buf.capacity()
        );
    }

    #[test]
    fn splits_records_byte_exact() {
        let input = br#"{"Records":[{"a":"x}\"]","b":[1,{"c":2}]},{"d":"\\"} , {}]}"#;
        for chunk in [1, 2, 3, 7, 1000] {
            let (recs, end) = split_chunks(input, chunk);
            assert_eq!(end, Ok(()));
            let bytes: Vec<&[u8]> = recs.iter().map(|(_, b)| b.as_slice()).collect();
            assert_eq!(
                bytes,
                vec![
                    &br#"{"a":"x}\"]","b":[1,{"c":2}]}"#[..],
                    &br#"{"d":"\\"}"#[..],
                    &b"{}"[..]
                ],
                "chunk {chunk}"
            );
            assert_eq!(recs[0].0, 12);
        }
    }

    /// Escapes, quotes and brackets at every position relative to the 64-byte blocks the
    /// splitter classifies at once.
    #[test]
    fn escapes_and_brackets_across_block_edges() {
        let tails = [
            r#"\\"}"#,
            r#"\""}"#,
            r#"x\\\"]}\\","z":[{"y":"}"}]}"#,
            r#""}"#,
            r#"","n":[[[{}]]],"m":"{["}"#,
        ];
        for pad in 0..140 {
            for tail in tails {
                let rec = format!(r#"{{"a":"{}{}"#, "p".repeat(pad), tail);
                let other = format!(r#"{{"q":"{}\"","r":{{}}}}"#, "é".repeat(pad % 50));
                let file = format!(r#"{{"Records":[{rec},{other}, {rec}]}}"#);
                for chunk in [1, 63, 64, 65, 100, 4096] {
                    let (recs, end) = split_chunks(file.as_bytes(), chunk);
                    assert_eq!(end, Ok(()), "pad {pad} tail {tail} chunk {chunk}");
                    let got: Vec<&[u8]> = recs.iter().map(|(_, b)| b.as_slice()).collect();
                    assert_eq!(
                        got,
                        vec![rec.as_bytes(), other.as_bytes(), rec.as_bytes()],
                        "pad {pad} tail {tail} chunk {chunk}"
                    );
                }
                serde_json::from_str::<serde_json::Value>(&rec).expect("test record is JSON");
            }
        }
    }

    #[test]
    fn line_breaks_are_seen_only_outside_strings() {
        let pad = "p".repeat(70);
        // A raw line break inside a string is not JSON, but it must not count as one outside.
        let compact = format!("{{\"a\":\"{pad}\n{pad}\",\"b\":[1,2]}}");
        let pretty = format!("{{\"a\":\"{pad}\",\n\"b\":[1,\r\n2]}}");
        let file = format!("{{\"Records\":[{compact},{pretty}]}}\n");
        let mut s = RecordSplitter::new(Limits::default());
        s.push(file.as_bytes());
        let r = s.next_record().expect("valid").expect("a record");
        assert!(!r.has_line_break);
        let r = s.next_record().expect("valid").expect("a record");
        assert!(r.has_line_break);
    }

    #[test]
    fn other_top_level_keys_are_skipped() {
        let input = br#" {"x":{"Records":[1]}, "n": 12 ,"Records":[{"a":1}],"s":"]}","t":true}  "#;
        let (recs, end) = split_chunks(input, 5);
        assert_eq!(end, Ok(()));
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].1, br#"{"a":1}"#);
    }

    #[test]
    fn empty_records_and_missing_records() {
        let (r, e) = split_chunks(br#"{"Records":[]}"#, 3);
        assert!(r.is_empty());
        assert_eq!(e, Ok(()));
        let (_, e) = split_chunks(br#"{"foo":[]}"#, 3);
        assert_eq!(e, Err(ParseError::NoRecordsArray));
        let (_, e) = split_chunks(b"", 3);
        assert!(matches!(e, Err(ParseError::Truncated { offset: 0, .. })));
    }

    #[test]
    fn truncation_keeps_earlier_records() {
        let input = br#"{"Records":[{"a":1},{"b":2},{"c":"#;
        let (recs, end) = split_chunks(input, 4);
        assert_eq!(recs.len(), 2);
        assert_eq!(
            end,
            Err(ParseError::Truncated {
                offset: input.len() as u64,
                context: "a record"
            })
        );
    }

    #[test]
    fn non_object_record_is_named() {
        let (recs, end) = split_chunks(br#"{"Records":[{"a":1}, 42]}"#, 100);
        assert_eq!(recs.len(), 1);
        assert_eq!(
            end,
            Err(ParseError::RecordNotObject {
                index: 1,
                offset: 21,
                found: "'4'".into()
            })
        );
    }

    #[test]
    fn depth_and_size_limits() {
        let deep = format!(r#"{{"Records":[{}{}]}}"#, "[".repeat(200), "]".repeat(200));
        let (_, e) = split_chunks(deep.as_bytes(), 64);
        assert!(matches!(e, Err(ParseError::RecordNotObject { .. })));
        let deep = format!(
            r#"{{"Records":[{{"a":{}{}}}]}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let (_, e) = split_chunks(deep.as_bytes(), 64);
        assert!(matches!(
            e,
            Err(ParseError::TooDeep {
                index: 0,
                limit: 128,
                ..
            })
        ));

        let mut s = RecordSplitter::new(Limits {
            max_record_bytes: 100,
            ..Limits::default()
        });
        s.push(br#"{"Records":[{"a":"1"},{"b":""#);
        s.push(&[b'x'; 200]);
        assert!(matches!(s.next_record(), Ok(Some(_))));
        assert!(matches!(
            s.next_record(),
            Err(ParseError::RecordTooLarge { index: 1, .. })
        ));
    }

    #[test]
    fn garbage_and_trailing_data() {
        let (_, e) = split_chunks(b"\x00\x01garbage", 4);
        assert!(matches!(e, Err(ParseError::Syntax { offset: 0, .. })));
        let (recs, e) = split_chunks(br#"{"Records":[{"a":1}]} x"#, 4);
        assert_eq!(recs.len(), 1);
        assert!(matches!(e, Err(ParseError::Syntax { offset: 22, .. })));
    }

    #[test]
    fn memory_is_bounded_by_the_largest_record() {
        let mut s = RecordSplitter::new(Limits::default());
        s.push(br#"{"Records":["#);
        let rec = br#"{"eventName":"x","p":"0123456789012345678901234567890123456789"},"#;
        for _ in 0..100_000 {
            s.push(rec);
            while let Ok(Some(_)) = s.next_record() {}
        }
        assert!(s.buf.capacity() < 1024 * 1024, "{}", s.buf.capacity());
        assert_eq!(s.records_seen(), 100_000);
    }

    #[test]
    fn compacts_pretty_records() {
        let mut out = Vec::new();
        compact_json_into(b"{\n  \"a\" : \"x y\\\" z\",\n  \"b\": [1, 2]\n}", &mut out);
        assert_eq!(out, br#"{"a":"x y\" z","b":[1,2]}"#);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        const STRUCTURE: &[u8] = b" \t\n\r,[:\"{}Records";

        fn json_value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::Bool),
                any::<i64>().prop_map(|n| serde_json::Value::Number(n.into())),
                // Quotes, backslashes, brackets and non-ASCII are what a splitter can trip on.
                "[a-z\\\"{}\\[\\],:é日😀 \n]{0,12}".prop_map(serde_json::Value::String),
                // Long strings put quotes, escapes and brackets across 64-byte block edges.
                "[a-z\\\\\"{}\\[\\] ]{40,150}".prop_map(serde_json::Value::String),
                "[a-z{}\\[\\] ,:]{40,150}".prop_map(serde_json::Value::String),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                    prop::collection::btree_map("[a-zA-Z\\\"}]{1,6}", inner, 0..5)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn record() -> impl Strategy<Value = Vec<u8>> {
            (
                prop::collection::btree_map("[a-zA-Z]{1,8}", json_value(), 0..6),
                any::<bool>(),
            )
                .prop_map(|(m, pretty)| {
                    let v = serde_json::Value::Object(m.into_iter().collect());
                    let r = if pretty {
                        serde_json::to_vec_pretty(&v)
                    } else {
                        serde_json::to_vec(&v)
                    };
                    r.unwrap_or_default()
                })
        }

        proptest! {
            #[test]
            fn split_and_rejoin_is_lossless(
                records in prop::collection::vec(record(), 0..12),
                seps in prop::collection::vec("[ \n\t]{0,2},[ \n\t]{0,2}", 12),
                chunk in prop_oneof![1usize..64, 64usize..8192],
            ) {
                let mut file = b"{\"Records\" : [ ".to_vec();
                for (i, r) in records.iter().enumerate() {
                    if i > 0 {
                        file.extend_from_slice(seps[i % seps.len()].as_bytes());
                    }
                    file.extend_from_slice(r);
                }
                file.extend_from_slice(b" ]}\n");
                let (got, end) = split_chunks(&file, chunk);
                prop_assert_eq!(end, Ok(()));
                prop_assert_eq!(got.len(), records.len());
                let mut rejoined = Vec::new();
                let mut last = 0usize;
                for ((offset, bytes), original) in got.iter().zip(&records) {
                    prop_assert_eq!(bytes, original);
                    let at = *offset as usize;
                    prop_assert_eq!(&file[at..at + bytes.len()], &bytes[..]);
                    // Only structure may lie between records.
                    let structural = file[last..at].iter().all(|b| STRUCTURE.contains(b));
                    prop_assert!(structural);
                    rejoined.extend_from_slice(&file[last..at]);
                    rejoined.extend_from_slice(bytes);
                    last = at + bytes.len();
                }
                rejoined.extend_from_slice(&file[last..]);
                prop_assert_eq!(rejoined, file);
            }

            #[test]
            fn never_panics_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..256), chunk in 1usize..16) {
                let _ = split_chunks(&data, chunk);
                let mut framed = b"{\"Records\":[".to_vec();
                framed.extend_from_slice(&data);
                let _ = split_chunks(&framed, chunk);
            }
        }
    }
}
