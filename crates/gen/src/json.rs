//! A minimal compact-JSON writer over a reusable byte buffer.
//!
//! Records are written straight into bytes instead of going through
//! `serde_json::Value` because the generator must produce gigabytes quickly;
//! building and dropping a tree per record would dominate the run time.
//! Validity is kept by construction: separators are tracked on a nesting
//! stack and every string value goes through [`escape_into`] unless the caller
//! explicitly vouches for it with a `*_raw` method.

/// Appends `s` to `buf` as the body of a JSON string (no surrounding quotes).
///
/// Only what RFC 8259 requires is escaped; non-ASCII is left as UTF-8, which
/// is what CloudTrail itself does.
pub(crate) fn escape_into(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                buf.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[usize::from(b >> 4)]);
                buf.push(HEX[usize::from(b & 0xf)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(esc);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

pub(crate) fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Fixed-width zero-padded decimal, used for timestamps and account ids.
pub(crate) fn push_padded(buf: &mut Vec<u8>, mut v: u64, width: usize) {
    let start = buf.len();
    buf.resize(start + width, b'0');
    let mut i = start + width;
    while v > 0 && i > start {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[derive(Default)]
pub(crate) struct Json {
    pub(crate) buf: Vec<u8>,
    /// One entry per open container: `true` until its first member is written.
    first: Vec<bool>,
    /// Set right after a key so the following value does not emit a comma.
    after_key: bool,
}

impl Json {
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Json {
            buf: Vec::with_capacity(cap),
            first: Vec::with_capacity(16),
            after_key: false,
        }
    }

    /// Adopts an existing buffer so callers can reuse their allocation.
    pub(crate) fn from_vec(buf: Vec<u8>) -> Self {
        Json {
            buf,
            ..Json::default()
        }
    }

    /// True when no container or key is left open, i.e. the buffer holds a
    /// sequence of complete values.
    pub(crate) fn is_balanced(&self) -> bool {
        self.first.is_empty() && !self.after_key
    }

    fn sep(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(first) = self.first.last_mut() {
            if *first {
                *first = false;
            } else {
                self.buf.push(b',');
            }
        }
    }

    pub(crate) fn begin_obj(&mut self) {
        self.sep();
        self.buf.push(b'{');
        self.first.push(true);
    }

    pub(crate) fn end_obj(&mut self) {
        debug_assert!(!self.after_key, "object closed right after a key");
        self.first.pop();
        self.buf.push(b'}');
    }

    pub(crate) fn begin_arr(&mut self) {
        self.sep();
        self.buf.push(b'[');
        self.first.push(true);
    }

    pub(crate) fn end_arr(&mut self) {
        self.first.pop();
        self.buf.push(b']');
    }

    pub(crate) fn key(&mut self, k: &str) {
        self.sep();
        self.buf.push(b'"');
        escape_into(&mut self.buf, k);
        self.buf.extend_from_slice(b"\":");
        self.after_key = true;
    }

    pub(crate) fn str(&mut self, v: &str) {
        self.sep();
        self.buf.push(b'"');
        escape_into(&mut self.buf, v);
        self.buf.push(b'"');
    }

    /// Writes a string whose body is already valid JSON-escaped text. Used to
    /// plant escape sequences (`\u00e9`, `\/`) that a plain escaper would
    /// never emit but real producers do.
    pub(crate) fn str_raw(&mut self, escaped_body: &str) {
        self.sep();
        self.buf.push(b'"');
        self.buf.extend_from_slice(escaped_body.as_bytes());
        self.buf.push(b'"');
    }

    /// Opens a string value that is then filled piecewise; avoids allocating
    /// temporaries for ARNs and other composed identifiers.
    pub(crate) fn begin_str(&mut self) {
        self.sep();
        self.buf.push(b'"');
    }

    pub(crate) fn part(&mut self, s: &str) {
        escape_into(&mut self.buf, s);
    }

    pub(crate) fn part_u64(&mut self, v: u64) {
        push_u64(&mut self.buf, v);
    }

    pub(crate) fn end_str(&mut self) {
        self.buf.push(b'"');
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.sep();
        push_u64(&mut self.buf, v);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.sep();
        self.buf
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
    }

    pub(crate) fn null(&mut self) {
        self.sep();
        self.buf.extend_from_slice(b"null");
    }

    pub(crate) fn kv_str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.str(v);
    }

    pub(crate) fn kv_u64(&mut self, k: &str, v: u64) {
        self.key(k);
        self.u64(v);
    }

    pub(crate) fn kv_bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.bool(v);
    }

    pub(crate) fn kv_null(&mut self, k: &str) {
        self.key(k);
        self.null();
    }

    /// Writes an already valid JSON value verbatim.
    pub(crate) fn raw(&mut self, json: &str) {
        self.sep();
        self.buf.extend_from_slice(json.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut b = Vec::new();
        escape_into(&mut b, s);
        String::from_utf8(b).unwrap_or_default()
    }

    #[test]
    fn escapes_required_characters_only() {
        assert_eq!(esc("plain"), "plain");
        assert_eq!(esc("a\"b\\c\nd\re\tf"), "a\\\"b\\\\c\\nd\\re\\tf");
        assert_eq!(esc("\u{1}\u{8}\u{c}\u{1f}"), "\\u0001\\b\\f\\u001f");
        assert_eq!(esc("é日本語🚀/"), "é日本語🚀/");
    }

    #[test]
    fn separators_are_tracked_per_level() {
        let mut j = Json::default();
        j.begin_obj();
        j.kv_str("a", "x");
        j.key("b");
        j.begin_arr();
        j.u64(1);
        j.begin_obj();
        j.end_obj();
        j.null();
        j.end_arr();
        j.kv_bool("c", false);
        j.key("d");
        j.begin_str();
        j.part("p\"");
        j.part_u64(42);
        j.end_str();
        j.end_obj();
        assert!(j.is_balanced());
        assert_eq!(
            std::str::from_utf8(&j.buf).unwrap_or_default(),
            r#"{"a":"x","b":[1,{},null],"c":false,"d":"p\"42"}"#
        );
    }

    #[test]
    fn numbers() {
        let mut b = Vec::new();
        push_u64(&mut b, 0);
        b.push(b' ');
        push_u64(&mut b, u64::MAX);
        b.push(b' ');
        push_padded(&mut b, 7, 3);
        b.push(b' ');
        push_padded(&mut b, 2026, 4);
        assert_eq!(b, b"0 18446744073709551615 007 2026");
    }
}
