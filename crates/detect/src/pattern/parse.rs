//! A hand-written recursive-descent parser: every error names the column and what was expected
//! there, because a rule file is edited by people who need to see where they went wrong.

use super::{CmpOp, Expr, Glob, Kind, NumLit, Seg, Selector, Terms, Test, MAX_PATTERN_CHARS};
use std::fmt;

/// Why a pattern did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// Byte offset in the pattern.
    pub offset: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What the parser expected at that position.
    pub expected: String,
    /// What it found instead (a short token, or "end of pattern").
    pub found: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "column {}: expected {}, found {}",
            self.column, self.expected, self.found
        )
    }
}

impl std::error::Error for PatternError {}

impl PatternError {
    /// The pattern with a caret under the error position, for terminals.
    pub fn render(&self, pattern: &str) -> String {
        format!(
            "{self}\n  {pattern}\n  {}^",
            " ".repeat(self.column.saturating_sub(1))
        )
    }
}

const OPS_HINT: &str =
    "an operator (`=`, `!=`, `<`, `>`, `<=`, `>=`) or `IS NULL`, `IS TRUE`, `IS FALSE`, `NOT EXISTS`";
const BARE_HINT: &str =
    "quote values that contain characters other than letters, digits, `_`, `-`, `.`, `*`, `+`";

pub(super) fn parse(text: &str) -> Result<Kind, PatternError> {
    let mut p = Parser { src: text, pos: 0 };
    if let Some((i, _)) = text.char_indices().nth(MAX_PATTERN_CHARS) {
        return Err(p.err_at(
            i,
            format!("at most {MAX_PATTERN_CHARS} characters (the CloudWatch Logs limit)"),
        ));
    }
    p.skip_ws();
    match p.peek() {
        None => Ok(Kind::All),
        Some('{') => {
            p.bump();
            let e = p.or_expr(Close::Brace)?;
            p.skip_ws();
            p.expect_char('}', "`&&`, `||` or `}`")?;
            p.skip_ws();
            if p.peek().is_some() {
                return Err(p.err("the end of the pattern after `}`"));
            }
            Ok(Kind::Json(e))
        }
        Some('[') => Err(p.err(
            "a JSON pattern `{ ... }` or search terms (space-delimited `[...]` patterns do not \
             apply to CloudTrail's JSON records)",
        )),
        Some(_) => p.terms(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    Brace,
    Paren,
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_bare_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '*' | '+')
}

fn is_term_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`
fn is_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if i < b.len() && matches!(b[i], b'+' | b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

fn num_lit(text: &str) -> Option<NumLit> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let int = text.parse::<i64>().ok();
    Some(NumLit {
        text: text.into(),
        value,
        int,
    })
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn column_of(&self, offset: usize) -> usize {
        self.src[..offset.min(self.src.len())].chars().count() + 1
    }

    fn found_at(&self, offset: usize) -> String {
        let rest = &self.src[offset.min(self.src.len())..];
        let Some(c) = rest.chars().next() else {
            return "end of pattern".into();
        };
        for two in ["&&", "||", "!=", "<=", ">=", "=="] {
            if rest.starts_with(two) {
                return format!("`{two}`");
            }
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(24)
                .collect();
            return format!("`{word}`");
        }
        format!("`{c}`")
    }

    fn err_at(&self, offset: usize, expected: impl Into<String>) -> PatternError {
        PatternError {
            offset,
            column: self.column_of(offset),
            expected: expected.into(),
            found: self.found_at(offset),
        }
    }

    fn err(&self, expected: impl Into<String>) -> PatternError {
        self.err_at(self.pos, expected)
    }

    fn expect_char(&mut self, c: char, expected: &str) -> Result<(), PatternError> {
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.err(expected))
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn or_expr(&mut self, close: Close) -> Result<Expr, PatternError> {
        let mut items = vec![self.and_expr(close)?];
        loop {
            self.skip_ws();
            if self.eat("||") {
                items.push(self.and_expr(close)?);
            } else {
                self.check_connective(close)?;
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::Or(Vec::new()))
        } else {
            Expr::Or(items)
        })
    }

    fn and_expr(&mut self, close: Close) -> Result<Expr, PatternError> {
        let mut items = vec![self.primary()?];
        loop {
            self.skip_ws();
            if self.eat("&&") {
                items.push(self.primary()?);
            } else {
                self.check_connective(close)?;
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::And(Vec::new()))
        } else {
            Expr::And(items)
        })
    }

    /// After a condition only `&&`, `||` or the closing bracket may follow.
    fn check_connective(&self, close: Close) -> Result<(), PatternError> {
        let closing = match close {
            Close::Brace => '}',
            Close::Paren => ')',
        };
        // A closing bracket of the other kind, or the end, is reported by whoever expects
        // the closing bracket, with a better message.
        match self.peek() {
            Some('&') if !self.rest().starts_with("&&") => Err(self.err("`&&`")),
            Some('|') if !self.rest().starts_with("||") => Err(self.err("`||`")),
            None | Some('&' | '|' | ')' | '}') => Ok(()),
            _ => Err(self.err(format!("`&&`, `||` or `{closing}`"))),
        }
    }

    fn primary(&mut self) -> Result<Expr, PatternError> {
        self.skip_ws();
        match self.peek() {
            Some('(') => {
                let open = self.pos;
                self.bump();
                let e = self.or_expr(Close::Paren)?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(self.err(format!(
                        "`)` to close the `(` at column {}",
                        self.column_of(open)
                    )));
                }
                self.bump();
                Ok(e)
            }
            Some('$') => self.condition(),
            _ => Err(self.err(
                "a condition such as `$.eventName = ConsoleLogin`, or `(` (selectors start with `$.`)",
            )),
        }
    }

    fn selector(&mut self) -> Result<Selector, PatternError> {
        // At `$`.
        self.bump();
        if self.peek() != Some('.') {
            return Err(self.err(
                "`.` after `$` (selectors look like `$.eventName` or `$.resources[0].ARN`; an \
                 array index must follow a property)",
            ));
        }
        let mut segs = Vec::new();
        loop {
            // At `.`.
            self.bump();
            let start = self.pos;
            while self.peek().is_some_and(is_name_char) {
                self.bump();
            }
            if self.pos == start {
                return Err(self.err("a property name after `.` (letters, digits, `-` and `_`)"));
            }
            segs.push(Seg::Key(self.src[start..self.pos].into()));
            while self.peek() == Some('[') {
                self.bump();
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
                if self.pos == start {
                    return Err(self.err("an array index (digits) after `[`"));
                }
                let idx: u32 = self.src[start..self.pos]
                    .parse()
                    .map_err(|_| self.err_at(start, "an array index below 4294967296"))?;
                self.expect_char(']', "`]` after the array index")?;
                segs.push(Seg::Index(idx));
            }
            if self.peek() != Some('.') {
                break;
            }
        }
        Ok(Selector { segs })
    }

    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.bump();
        }
        &self.src[start..self.pos]
    }

    fn condition(&mut self) -> Result<Expr, PatternError> {
        let sel = self.selector()?;
        self.skip_ws();
        let op_at = self.pos;
        let op = if self.eat("!=") {
            CmpOp::Ne
        } else if self.eat("<=") {
            CmpOp::Le
        } else if self.eat(">=") {
            CmpOp::Ge
        } else if self.rest().starts_with("==") {
            return Err(self.err("`=` (equality is a single `=`)"));
        } else if self.eat("=") {
            CmpOp::Eq
        } else if self.eat("<") {
            CmpOp::Lt
        } else if self.eat(">") {
            CmpOp::Gt
        } else {
            let word = self.word();
            let test = match word {
                "IS" => {
                    self.skip_ws();
                    let at = self.pos;
                    match self.word() {
                        "NULL" => Test::IsNull,
                        "TRUE" => Test::IsTrue,
                        "FALSE" => Test::IsFalse,
                        "NOT" => {
                            return Err(self.err_at(
                                at,
                                "`NULL`, `TRUE` or `FALSE` after `IS` (`IS NOT` is not \
                                 supported by CloudWatch Logs; use `NOT EXISTS` or `!=`)",
                            ))
                        }
                        _ => return Err(self.err_at(at, "`NULL`, `TRUE` or `FALSE` after `IS`")),
                    }
                }
                "NOT" => {
                    self.skip_ws();
                    let at = self.pos;
                    if self.word() != "EXISTS" {
                        return Err(self.err_at(at, "`EXISTS` after `NOT`"));
                    }
                    Test::NotExists
                }
                "EXISTS" => {
                    return Err(self.err_at(
                        op_at,
                        format!(
                            "{OPS_HINT} (`EXISTS` alone is not supported by CloudWatch Logs; \
                             use `NOT EXISTS` or `= *`)"
                        ),
                    ))
                }
                _ => return Err(self.err_at(op_at, format!("{OPS_HINT} after `{sel}`"))),
            };
            return Ok(Expr::Cond(sel, test));
        };
        let op_text = &self.src[op_at..self.pos];
        self.skip_ws();
        let value_at = self.pos;
        let (text, quoted) = match self.peek() {
            Some('"') => (self.quoted()?, true),
            Some('%') => {
                return Err(self.err(
                    "a value (regular expressions `%...%` are not supported; use `*` wildcards)",
                ))
            }
            Some(c) if is_bare_value_char(c) => {
                let start = self.pos;
                while self.peek().is_some_and(is_bare_value_char) {
                    self.bump();
                }
                let t = self.src[start..self.pos].to_owned();
                match self.peek() {
                    None => {}
                    Some(c) if c.is_whitespace() || matches!(c, ')' | '}' | '&' | '|') => {}
                    Some(_) => return Err(self.err(format!("the end of the value ({BARE_HINT})"))),
                }
                (t, false)
            }
            _ => {
                return Err(self.err(format!(
                    "a value after `{op_text}` (a string, a quoted string or a number)"
                )))
            }
        };
        let test = match op {
            CmpOp::Eq | CmpOp::Ne if quoted || !is_number(&text) => Test::Str {
                ne: op == CmpOp::Ne,
                glob: Glob::new(&text),
            },
            _ => {
                let lit = (!quoted && is_number(&text))
                    .then(|| num_lit(&text))
                    .flatten()
                    .ok_or_else(|| {
                        self.err_at(
                            value_at,
                            format!("a number after `{op_text}` (such as `500`, `-1.5` or `1e3`)"),
                        )
                    })?;
                Test::Num { op, lit }
            }
        };
        Ok(Expr::Cond(sel, test))
    }

    /// A double-quoted string at the current position; `\"` and `\\` are escapes, any other
    /// backslash is kept as written.
    fn quoted(&mut self) -> Result<String, PatternError> {
        let open = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.err(format!(
                        "`\"` to close the string opened at column {}",
                        self.column_of(open)
                    )))
                }
                Some('"') => {
                    self.bump();
                    return Ok(out);
                }
                Some('\\') => {
                    self.bump();
                    match self.peek() {
                        Some(c @ ('"' | '\\')) => {
                            out.push(c);
                            self.bump();
                        }
                        _ => out.push('\\'),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.bump();
                }
            }
        }
    }

    fn terms(&mut self) -> Result<Kind, PatternError> {
        let mut t = Terms::default();
        loop {
            self.skip_ws();
            let Some(c) = self.peek() else { break };
            let (list, prefixed) = match c {
                '?' => (1, true),
                '-' => (2, true),
                _ => (0, false),
            };
            if prefixed {
                self.bump();
                if list == 2 {
                    // `"ERROR" - "Exiting"`: the guide separates the minus from its term.
                    self.skip_ws();
                }
            }
            let term: Vec<u8> = match self.peek() {
                Some('"') => {
                    let q = self.quoted()?;
                    if q.trim().is_empty() {
                        // `" "` and `""` match everything: they add no condition.
                        continue;
                    }
                    q.into_bytes()
                }
                Some('%') => {
                    return Err(
                        self.err("a search term (regular expressions `%...%` are not supported)")
                    )
                }
                Some('{') => {
                    return Err(self
                        .err("a search term (a JSON pattern `{ ... }` must be the whole pattern)"))
                }
                Some(c) if is_term_char(c) => {
                    let start = self.pos;
                    while self.peek().is_some_and(is_term_char) {
                        self.bump();
                    }
                    match self.peek() {
                        Some(c) if !c.is_whitespace() => {
                            return Err(self.err(
                                "the end of the term (quote terms that contain characters other \
                                 than letters, digits and `_`)",
                            ))
                        }
                        _ => {}
                    }
                    self.src.as_bytes()[start..self.pos].to_vec()
                }
                _ => {
                    return Err(self.err("a search term (letters, digits, `_`, or a quoted phrase)"))
                }
            };
            match list {
                1 => t.any.push(term),
                2 => t.none.push(term),
                _ => t.all.push(term),
            }
        }
        if t == Terms::default() {
            return Ok(Kind::All);
        }
        Ok(Kind::Terms(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: &str) -> PatternError {
        match parse(p) {
            Err(e) => e,
            Ok(k) => panic!("{p:?} parsed as {k:?}"),
        }
    }

    #[test]
    fn numbers() {
        for ok in [
            "1", "+1000", "-2", "1.5", ".5", "5.", "10e3", "10e-3", "1E+2",
        ] {
            assert!(is_number(ok), "{ok}");
        }
        for bad in ["", "+", ".", "e3", "1e", "1.2.3", "123.123.*", "1-2", "abc"] {
            assert!(!is_number(bad), "{bad}");
        }
    }

    #[test]
    fn precedence_is_and_over_or() {
        let Kind::Json(e) = parse("{ $.a = 1 || $.b = 2 && $.c = 3 }").expect("ok") else {
            panic!("not json")
        };
        match e {
            Expr::Or(v) => {
                assert_eq!(v.len(), 2);
                assert!(matches!(&v[1], Expr::And(a) if a.len() == 2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_column_and_expectation() {
        let e = err("{ $.eventName = }");
        assert_eq!(e.column, 17);
        assert!(e.expected.contains("a value after `=`"), "{e}");
        assert_eq!(e.found, "`}`");

        let e = err("{ $.a = 1 && }");
        assert_eq!((e.column, e.found.as_str()), (14, "`}`"));
        assert!(e.expected.contains("condition"), "{e}");

        let e = err("{ ($.a = 1 }");
        assert!(
            e.expected.contains("`)` to close the `(` at column 3"),
            "{e}"
        );

        let e = err("{ $.a = \"x }");
        assert!(
            e.expected.contains("close the string opened at column 9"),
            "{e}"
        );
        assert_eq!(e.found, "end of pattern");

        let e = err("{ $.a IS NOT NULL }");
        assert_eq!(e.column, 10);
        assert!(e.expected.contains("IS NOT"), "{e}");

        let e = err("{ $.a EXISTS }");
        assert_eq!(e.column, 7);

        let e = err("{ $[0] = 1 }");
        assert_eq!(e.column, 4);

        let e = err("{ $.a > abc }");
        assert!(e.expected.contains("a number after `>`"), "{e}");
        assert_eq!(e.column, 9);

        let e = err("{ $.a = x@y }");
        assert_eq!(e.column, 10);
        assert!(e.expected.contains("quote values"), "{e}");

        let e = err("{ $.a = 1 & $.b = 2 }");
        assert_eq!((e.column, e.expected.as_str()), (11, "`&&`"));

        let e = err("{ $.a = 1 } trailing");
        assert_eq!(e.column, 13);

        let e = err("{ $.a = %reg% }");
        assert!(e.expected.contains("regular expressions"), "{e}");

        let e = err("[ip, user]");
        assert_eq!(e.column, 1);

        let e = err("{ $.a == 1 }");
        assert!(e.expected.contains("single `=`"), "{e}");

        let e = err("{ $.a. = 1 }");
        assert!(e.expected.contains("property name"), "{e}");

        let e = err("{ $.a[] = 1 }");
        assert!(e.expected.contains("array index"), "{e}");

        let e = err("{ $.a = 1 $.b = 2 }");
        assert_eq!(e.column, 11);

        let long = format!("{{ $.a = \"{}\" }}", "x".repeat(1100));
        assert_eq!(err(&long).column, 1025);

        let e = err("ERROR [x]");
        assert!(e.expected.contains("search term"), "{e}");
        let rendered = err("{ $.a = }").render("{ $.a = }");
        assert!(rendered.ends_with("        ^"), "{rendered}");
    }

    #[test]
    fn terms_and_everything() {
        assert_eq!(parse("").expect("ok"), Kind::All);
        assert_eq!(parse("   ").expect("ok"), Kind::All);
        assert_eq!(parse("\" \"").expect("ok"), Kind::All);
        let Kind::Terms(t) = parse("ERROR ?a ?b -\"x y\" - Exiting").expect("ok") else {
            panic!("not terms")
        };
        assert_eq!(t.all, vec![b"ERROR".to_vec()]);
        assert_eq!(t.any.len(), 2);
        assert_eq!(t.none, vec![b"x y".to_vec(), b"Exiting".to_vec()]);
    }
}
