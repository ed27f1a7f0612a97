//! CloudWatch Logs filter patterns: the syntax tree and the parser.
//!
//! Supported (the CloudWatch Logs "filter and pattern syntax" for JSON events):
//!
//! - JSON patterns `{ SELECTOR OP VALUE }` with `=`, `!=`, `<`, `>`, `<=`, `>=`;
//!   `IS NULL`, `IS TRUE`, `IS FALSE`, `NOT EXISTS`; `&&` and `||` with the standard precedence
//!   `()` > `&&` > `||`; parentheses; selectors `$.a.b`, `$.list[0].id`, `$.m[0][1]`
//!   (names are ASCII letters, digits, `-` and `_`).
//! - Values: quoted strings (`\"` and `\\` are the only escapes), unquoted strings of letters,
//!   digits and `_ - . * +`, numbers (sign, decimals, exponent: `-1.5e3`), and `*` wildcards.
//! - Unstructured term patterns (`ERROR`, `?ERROR ?WARN`, `ERROR -Exiting`, `"quoted phrase"`),
//!   matched case-sensitively against the record's raw text; an empty pattern or `" "` matches
//!   everything.
//!
//! Not supported, each rejected with a precise error: regular expressions `%…%`,
//! space-delimited patterns `[a, b, ...]`, and the keywords `EXISTS` / `IS NOT` (which
//! CloudWatch Logs does not support either). Patterns longer than 1024 characters are rejected
//! as CloudWatch Logs does.
//!
//! How a comparison treats each kind of JSON value is documented on [`Test`] and in
//! `crates/detect/README.md`.

mod parse;

pub use parse::PatternError;

use std::fmt;

/// Longest pattern CloudWatch Logs accepts (`FilterPattern`, 0–1024 characters).
pub const MAX_PATTERN_CHARS: usize = 1024;

/// A parsed filter pattern. Compile one or many with [`crate::engine::Engine`] to evaluate
/// records.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPattern {
    text: String,
    pub(crate) kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// Empty pattern, `""` or `" "`: every record matches.
    All,
    Terms(Terms),
    Json(Expr),
}

/// Unstructured terms, matched against the raw record text (case-sensitive substrings).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Terms {
    /// Every one must occur.
    pub all: Vec<Vec<u8>>,
    /// `?term`: at least one must occur (when there are any).
    pub any: Vec<Vec<u8>>,
    /// `-term`: none may occur.
    pub none: Vec<Vec<u8>>,
}

impl Terms {
    pub(crate) fn matches(&self, raw: &[u8]) -> bool {
        let has = |t: &Vec<u8>| memchr::memmem::find(raw, t).is_some();
        self.all.iter().all(has)
            && (self.any.is_empty() || self.any.iter().any(has))
            && !self.none.iter().any(has)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Cond(Selector, Test),
}

/// A property selector such as `$.userIdentity.sessionContext.attributes.mfaAuthenticated` or
/// `$.resources[0].ARN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    pub(crate) segs: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Seg {
    Key(Box<str>),
    Index(u32),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for s in &self.segs {
            match s {
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// What a condition tests on the value its selector points to. A selector resolves to one of:
/// missing (absent, or a path through a non-container, or an index out of range), an object or
/// array, `null`, a boolean, a number, or a string.
///
/// | test | missing | object/array | null | bool | number | string |
/// |---|---|---|---|---|---|---|
/// | `= str` / `!= str` | false | false | false | text `true`/`false` | decimal text | the string |
/// | `= num` / `!= num` | false | false | false | text | numeric | text equals the literal's text |
/// | `<` `>` `<=` `>=` | false | false | false | false | numeric | false |
/// | `IS NULL` | false | false | true | false | false | false |
/// | `IS TRUE` / `IS FALSE` | false | false | false | equal | false | false |
/// | `NOT EXISTS` | true | false | false | false | false | false |
///
/// "Text" comparisons apply the wildcard rules of [`Glob`]; `!=` is the negation of `=` only
/// for values that can be compared at all (a missing field, an object, an array or `null`
/// matches neither `=` nor `!=`, as CloudWatch Logs documents for objects and arrays).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    Str { ne: bool, glob: Glob },
    Num { op: CmpOp, lit: NumLit },
    IsNull,
    IsTrue,
    IsFalse,
    NotExists,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// A numeric literal; its text is kept for comparisons against strings
/// (`$.recipientAccountId = 123456789012` matches the string `"123456789012"`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NumLit {
    pub text: Box<str>,
    pub value: f64,
    /// Set when the literal is an integer that fits `i64`: compared exactly with integers.
    pub int: Option<i64>,
}

/// A string with CloudWatch Logs wildcards: `*` at the start and/or the end matches any text
/// there (`*Event`, `Event*`, `*Event*`); a `*` elsewhere is a literal character (the
/// CloudWatch Logs guide: "`Ev*ent` will only match the actual string `Ev*ent`"); `*` alone
/// matches any value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Glob {
    Any,
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Contains(Box<str>),
}

impl Glob {
    pub(crate) fn new(text: &str) -> Glob {
        if !text.is_empty() && text.bytes().all(|b| b == b'*') {
            return Glob::Any;
        }
        let lead = text.starts_with('*');
        let trail = text.ends_with('*');
        let core: Box<str> = text.trim_start_matches('*').trim_end_matches('*').into();
        match (lead, trail) {
            (false, false) => Glob::Exact(core),
            (true, false) => Glob::Suffix(core),
            (false, true) => Glob::Prefix(core),
            (true, true) => Glob::Contains(core),
        }
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(c) => s == &**c,
            Glob::Prefix(c) => s.starts_with(&**c),
            Glob::Suffix(c) => s.ends_with(&**c),
            Glob::Contains(c) => s.contains(&**c),
        }
    }

    /// Whether some non-string scalar (a number's decimal text, `true`, `false`) could match.
    /// When not, a field that is absent or not a string can be decided without parsing it.
    pub(crate) fn could_match_non_string(&self) -> bool {
        let core = match self {
            Glob::Any => return true,
            Glob::Exact(c) | Glob::Prefix(c) | Glob::Suffix(c) | Glob::Contains(c) => c,
        };
        self.matches("true")
            || self.matches("false")
            || core
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    }
}

impl FilterPattern {
    /// Parses a pattern; errors carry the position and what was expected there.
    pub fn parse(text: &str) -> Result<FilterPattern, PatternError> {
        let kind = parse::parse(text)?;
        Ok(FilterPattern {
            text: text.to_owned(),
            kind,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is a JSON pattern (`{ ... }`).
    pub fn is_json(&self) -> bool {
        matches!(self.kind, Kind::Json(_))
    }

    /// The distinct selectors the pattern reads, in order of first use.
    pub fn selectors(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Kind::Json(e) = &self.kind {
            walk(e, &mut |s| {
                let t = s.to_string();
                if !out.contains(&t) {
                    out.push(t);
                }
            });
        }
        out
    }
}

fn walk(e: &Expr, f: &mut impl FnMut(&Selector)) {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| walk(x, f)),
        Expr::Cond(s, _) => f(s),
    }
}

impl fmt::Display for FilterPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert_eq!(Glob::new("*"), Glob::Any);
        assert_eq!(Glob::new("**"), Glob::Any);
        assert!(Glob::new("*Event").matches("PutEvent"));
        assert!(Glob::new("Event*").matches("EventName"));
        assert!(!Glob::new("Ev*ent").matches("Event"));
        assert!(Glob::new("Ev*ent").matches("Ev*ent"));
        assert!(Glob::new("*mid*").matches("a mid b"));
        assert!(Glob::new("").matches(""));
        assert!(!Glob::new("*UnauthorizedOperation").could_match_non_string());
        assert!(Glob::new("12*").could_match_non_string());
        assert!(Glob::new("tr*").could_match_non_string());
    }

    #[test]
    fn selectors_are_listed_once() {
        let p = FilterPattern::parse("{ $.a = 1 || ($.b[0].c = x && $.a != 2) }").expect("ok");
        assert_eq!(p.selectors(), vec!["$.a", "$.b[0].c"]);
        assert!(p.is_json());
    }
}
