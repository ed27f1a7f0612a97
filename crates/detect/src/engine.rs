//! Compiled patterns and their evaluation against records.
//!
//! A record is decided in up to three steps, each cheaper than the next:
//!
//! 1. **Index.** Each pattern's necessary condition on a key field (e.g. "eventName is one of
//!    these 16 names") is put in a hash index, so a record only visits the patterns that can
//!    possibly match it.
//! 2. **Key fields.** The candidates are evaluated in three-valued logic against the
//!    [`KeyFields`] the pipeline already extracted (eventName, eventSource, errorCode,
//!    userIdentity.type, ...). Most decisions end here without touching the record again.
//! 3. **Tape.** Only when a candidate needs a field that is not a key field (e.g.
//!    `$.additionalEventData.MFAUsed`) is the record parsed with simd-json, once for all
//!    candidates, and every selector the set uses is resolved in one walk over the tape.
//!
//! Step 2 is exact: a key field is present in [`KeyFields`] exactly when the record has it as a
//! string; an absent key field decides `= "literal"` only when the literal could not match a
//! number or boolean's text, and leaves every other test to step 3. Duplicate JSON keys: the
//! last occurrence wins in both steps (as in [`trailhose_core::FieldParser`]).

use crate::pattern::{CmpOp, Expr, FilterPattern, Glob, Kind, NumLit, Seg, Selector, Terms, Test};
use simd_json::{Buffers, Node, StaticNode, Tape};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use trailhose_core::KeyFields;

/// FxHash: fast for the short keys (event names) the index holds; no DoS concern since the
/// keys come from the rule files.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl Fx {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// Per indexed key-field path: value → patterns that require it.
type Index = Vec<(u32, FxMap<Box<str>, Vec<u32>>)>;

type Getter = for<'a> fn(&'a KeyFields) -> Option<&'a str>;

/// Selectors answered by [`KeyFields`] without parsing the record.
const FAST: &[(&str, Getter)] = &[
    ("$.eventName", KeyFields::event_name),
    ("$.eventSource", KeyFields::event_source),
    ("$.userIdentity.type", KeyFields::user_type),
    ("$.errorCode", KeyFields::error_code),
    ("$.eventType", KeyFields::event_type),
    ("$.eventCategory", KeyFields::event_category),
    ("$.awsRegion", KeyFields::aws_region),
    ("$.recipientAccountId", KeyFields::recipient_account_id),
    ("$.sourceIPAddress", KeyFields::source_ip_address),
    ("$.eventTime", KeyFields::event_time),
    ("$.eventID", KeyFields::event_id),
    ("$.eventVersion", KeyFields::event_version),
    ("$.userIdentity.arn", KeyFields::user_arn),
    ("$.userIdentity.accountId", KeyFields::user_account_id),
    ("$.userIdentity.principalId", KeyFields::user_principal_id),
    ("$.userIdentity.userName", KeyFields::user_name),
];

const MISSING: u32 = u32::MAX;

/// A resolved value. Numbers keep their simd-json representation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Missing,
    Container,
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(&'a str),
}

/// What the key fields say about a selector.
#[derive(Clone, Copy)]
enum Fast<'a> {
    Known(Val<'a>),
    /// A key field that [`KeyFields`] does not hold: absent, or present but not a string.
    StringAbsent,
    /// Not a key field.
    Unknown,
}

#[derive(Debug, Clone)]
enum CExpr {
    All,
    Terms(Terms),
    And(Vec<CExpr>),
    Or(Vec<CExpr>),
    Leaf {
        path: u32,
        test: Test,
    },
    /// `path = "a" || path = "b" || ...` with exact strings.
    InSet {
        path: u32,
        set: FxMap<Box<str>, ()>,
        could_match_non_string: bool,
    },
}

struct PathInfo {
    fast: Option<Getter>,
    /// Rank among [`FAST`] (lower = more selective), for choosing index keys.
    rank: usize,
}

#[derive(Default)]
struct TrieNode {
    keys: Vec<(Box<str>, u32)>,
    idx: Vec<(u32, u32)>,
    path: Option<u32>,
    /// Every path id in this subtree (reset when a duplicate key is met: last one wins).
    sub: Vec<u32>,
}

/// Counters of how records were decided, per [`Scratch`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalStats {
    pub records: u64,
    /// Records that needed the simd-json pass (a candidate read a non-key field).
    pub full_parses: u64,
    /// Records that were not valid JSON when a full parse was needed (counted as no match).
    pub invalid: u64,
}

/// Reusable per-thread buffers for evaluation.
pub struct Scratch {
    buf: Vec<u8>,
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    slots: Vec<u32>,
    cands: Vec<u32>,
    pending: Vec<u32>,
    hits: Vec<u32>,
    pub stats: EvalStats,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            buf: Vec::with_capacity(16 * 1024),
            buffers: Buffers::new(16 * 1024),
            tape: Some(Tape::null().reset()),
            slots: Vec::new(),
            cands: Vec::new(),
            pending: Vec::new(),
            hits: Vec::new(),
            stats: EvalStats::default(),
        }
    }
}

/// A compiled set of patterns (a rule set, or a single pattern).
pub struct Engine {
    progs: Vec<CExpr>,
    paths: Vec<PathInfo>,
    trie: Vec<TrieNode>,
    index: Index,
    unindexed: Vec<u32>,
    all: Vec<u32>,
}

impl Engine {
    pub fn new(patterns: &[&FilterPattern]) -> Engine {
        let mut c = Compiler::default();
        let progs: Vec<CExpr> = patterns.iter().map(|p| c.compile(p)).collect();
        let paths: Vec<PathInfo> = c
            .paths
            .iter()
            .map(|sel| {
                let text = sel.to_string();
                let hit = FAST.iter().position(|(s, _)| *s == text);
                PathInfo {
                    fast: hit.map(|i| FAST[i].1),
                    rank: hit.unwrap_or(usize::MAX),
                }
            })
            .collect();
        let mut trie = vec![TrieNode::default()];
        for (id, sel) in c.paths.iter().enumerate() {
            let id = id as u32;
            let mut t = 0usize;
            trie[0].sub.push(id);
            for seg in &sel.segs {
                let existing = match seg {
                    Seg::Key(k) => trie[t].keys.iter().find(|(x, _)| x == k).map(|x| x.1),
                    Seg::Index(i) => trie[t].idx.iter().find(|(x, _)| x == i).map(|x| x.1),
                };
                let next = match existing {
                    Some(n) => n as usize,
                    None => {
                        let n = trie.len();
                        trie.push(TrieNode::default());
                        match seg {
                            Seg::Key(k) => trie[t].keys.push((k.clone(), n as u32)),
                            Seg::Index(i) => trie[t].idx.push((*i, n as u32)),
                        }
                        n
                    }
                };
                trie[next].sub.push(id);
                t = next;
            }
            trie[t].path = Some(id);
        }
        let mut engine = Engine {
            all: (0..progs.len() as u32).collect(),
            progs,
            paths,
            trie,
            index: Vec::new(),
            unindexed: Vec::new(),
        };
        engine.build_index();
        engine
    }

    fn build_index(&mut self) {
        for (i, p) in self.progs.iter().enumerate() {
            match required(p, &self.paths) {
                Some((path, values)) => {
                    let slot = match self.index.iter().position(|(x, _)| *x == path) {
                        Some(s) => s,
                        None => {
                            self.index.push((path, FxMap::default()));
                            self.index.len() - 1
                        }
                    };
                    for v in values {
                        self.index[slot].1.entry(v).or_default().push(i as u32);
                    }
                }
                None => self.unindexed.push(i as u32),
            }
        }
        // Most selective first: fewer wasted lookups when a key field is absent.
        self.index
            .sort_by_key(|(p, _)| self.paths[*p as usize].rank);
    }

    pub fn len(&self) -> usize {
        self.progs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.progs.is_empty()
    }

    /// How many patterns every record has to visit (no indexable condition).
    pub fn unindexed(&self) -> usize {
        self.unindexed.len()
    }

    /// Indices of the patterns `record` matches, ascending, into `out` (cleared first).
    /// `fields` must be the key fields of these same bytes (or `None`).
    pub fn matching(
        &self,
        s: &mut Scratch,
        record: &[u8],
        fields: Option<&KeyFields>,
        out: &mut Vec<u32>,
    ) {
        out.clear();
        s.stats.records += 1;
        let fields = fields.filter(|f| trusted(f));
        let mut cands = std::mem::take(&mut s.cands);
        let mut pending = std::mem::take(&mut s.pending);
        cands.clear();
        pending.clear();
        match fields {
            Some(f) => {
                cands.extend_from_slice(&self.unindexed);
                for (path, map) in &self.index {
                    let Some(get) = self.paths[*path as usize].fast else {
                        continue;
                    };
                    if let Some(v) = get(f).and_then(|v| map.get(v)) {
                        cands.extend_from_slice(v);
                    }
                }
                if self.index.len() > 1 || !self.unindexed.is_empty() {
                    cands.sort_unstable();
                }
                for &c in &cands {
                    let get = |p: u32| match self.paths[p as usize].fast {
                        Some(g) => match g(f) {
                            Some(v) => Fast::Known(Val::Str(v)),
                            None => Fast::StringAbsent,
                        },
                        None => Fast::Unknown,
                    };
                    match eval3(&self.progs[c as usize], record, &get) {
                        Some(true) => out.push(c),
                        Some(false) => {}
                        None => pending.push(c),
                    }
                }
            }
            None => pending.extend_from_slice(&self.all),
        }
        if !pending.is_empty() {
            self.full(s, record, &pending, out);
            out.sort_unstable();
        }
        s.cands = cands;
        s.pending = pending;
    }

    /// Whether `record` matches pattern 0 (for single-pattern engines). Allocation-free.
    pub fn matches(&self, s: &mut Scratch, record: &[u8], fields: Option<&KeyFields>) -> bool {
        let mut out = std::mem::take(&mut s.hits);
        self.matching(s, record, fields, &mut out);
        let hit = out.first() == Some(&0);
        s.hits = out;
        hit
    }

    fn full(&self, s: &mut Scratch, record: &[u8], pending: &[u32], out: &mut Vec<u32>) {
        // Patterns without selectors (terms, everything) need no parse.
        if self.paths.is_empty() {
            for &c in pending {
                if eval_full(&self.progs[c as usize], record, &|_| Val::Missing) {
                    out.push(c);
                }
            }
            return;
        }
        s.stats.full_parses += 1;
        let Scratch {
            buf,
            buffers,
            tape,
            slots,
            stats,
            ..
        } = s;
        buf.clear();
        buf.extend_from_slice(record);
        let mut t = tape.take().unwrap_or_else(|| Tape::null().reset()).reset();
        if simd_json::fill_tape(buf, buffers, &mut t).is_err() {
            stats.invalid += 1;
            *tape = Some(t.reset());
            return;
        }
        slots.clear();
        slots.resize(self.paths.len(), MISSING);
        resolve(&t.0, 0, &self.trie, 0, slots);
        let nodes = &t.0;
        let val = |p: u32| node_val(nodes, slots[p as usize]);
        for &c in pending {
            if eval_full(&self.progs[c as usize], record, &val) {
                out.push(c);
            }
        }
        *tape = Some(t.reset());
    }
}

/// Key fields are used only when they were extracted (a CloudTrail record always has at least
/// one of these); default (unextracted) fields would otherwise read as "absent".
fn trusted(f: &KeyFields) -> bool {
    f.event_time().is_some()
        || f.event_name().is_some()
        || f.event_source().is_some()
        || f.event_id().is_some()
}

/// A necessary condition `path ∈ values` for the pattern to match, on a key-field path, with
/// values that only a string can equal.
fn required(e: &CExpr, paths: &[PathInfo]) -> Option<(u32, Vec<Box<str>>)> {
    let fast = |p: &u32| paths[*p as usize].fast.is_some();
    match e {
        CExpr::Leaf {
            path,
            test:
                Test::Str {
                    ne: false,
                    glob: g @ Glob::Exact(s),
                },
        } if fast(path) && !g.could_match_non_string() => Some((*path, vec![s.clone()])),
        CExpr::InSet {
            path,
            set,
            could_match_non_string: false,
        } if fast(path) => Some((*path, set.keys().cloned().collect())),
        CExpr::And(cs) => cs
            .iter()
            .filter_map(|c| required(c, paths))
            .min_by_key(|(p, v)| (paths[*p as usize].rank, v.len())),
        CExpr::Or(cs) => {
            let mut path = None;
            let mut values = Vec::new();
            for c in cs {
                let (p, v) = required(c, paths)?;
                if *path.get_or_insert(p) != p {
                    return None;
                }
                values.extend(v);
            }
            path.map(|p| (p, values))
        }
        _ => None,
    }
}

fn span_of(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => *count + 1,
        _ => 1,
    }
}

/// Walks the tape once along the selector trie, recording the node index of every selector.
fn resolve(nodes: &[Node<'_>], at: usize, trie: &[TrieNode], t: usize, slots: &mut [u32]) {
    let Some(tn) = trie.get(t) else { return };
    if let Some(p) = tn.path {
        slots[p as usize] = at as u32;
    }
    match nodes.get(at) {
        Some(Node::Object { len, .. }) if !tn.keys.is_empty() => {
            let mut i = at + 1;
            for _ in 0..*len {
                let Some(Node::String(key)) = nodes.get(i) else {
                    return;
                };
                i += 1;
                let Some(v) = nodes.get(i) else { return };
                if let Some(&(_, child)) = tn.keys.iter().find(|(k, _)| **k == **key) {
                    let child = child as usize;
                    for &p in &trie[child].sub {
                        slots[p as usize] = MISSING;
                    }
                    resolve(nodes, i, trie, child, slots);
                }
                i += span_of(v);
            }
        }
        Some(Node::Array { len, .. }) if !tn.idx.is_empty() => {
            let max = tn.idx.iter().map(|(i, _)| *i).max().unwrap_or(0) as usize;
            let mut i = at + 1;
            for e in 0..(*len).min(max + 1) {
                let Some(v) = nodes.get(i) else { return };
                if let Some(&(_, child)) = tn.idx.iter().find(|(x, _)| *x as usize == e) {
                    resolve(nodes, i, trie, child as usize, slots);
                }
                i += span_of(v);
            }
        }
        _ => {}
    }
}

fn node_val<'a>(nodes: &[Node<'a>], slot: u32) -> Val<'a> {
    if slot == MISSING {
        return Val::Missing;
    }
    match nodes.get(slot as usize) {
        None => Val::Missing,
        Some(Node::String(s)) => Val::Str(s),
        Some(Node::Object { .. } | Node::Array { .. }) => Val::Container,
        Some(Node::Static(s)) => match s {
            StaticNode::Null => Val::Null,
            StaticNode::Bool(b) => Val::Bool(*b),
            StaticNode::I64(i) => Val::I64(*i),
            StaticNode::U64(u) => Val::U64(*u),
            StaticNode::F64(f) => Val::F64(*f),
        },
    }
}

/// A scalar's text for string comparisons: strings as they are, numbers in decimal (Rust's
/// shortest round-trip form for fractions), booleans `true`/`false`.
fn with_text<R>(v: Val<'_>, f: impl FnOnce(&str) -> R) -> Option<R> {
    match v {
        Val::Str(s) => Some(f(s)),
        Val::Bool(b) => Some(f(if b { "true" } else { "false" })),
        Val::I64(i) => Some(f(&i.to_string())),
        Val::U64(u) => Some(f(&u.to_string())),
        Val::F64(x) => Some(f(&x.to_string())),
        Val::Missing | Val::Container | Val::Null => None,
    }
}

fn num_cmp(op: CmpOp, v: Val<'_>, lit: &NumLit) -> bool {
    let ord = match (v, lit.int) {
        (Val::I64(i), Some(l)) => Some(i.cmp(&l)),
        (Val::U64(u), Some(l)) => Some(i128::from(u).cmp(&i128::from(l))),
        (Val::I64(i), None) => (i as f64).partial_cmp(&lit.value),
        (Val::U64(u), None) => (u as f64).partial_cmp(&lit.value),
        (Val::F64(x), _) => x.partial_cmp(&lit.value),
        _ => None,
    };
    let Some(ord) = ord else { return false };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

/// The semantics table of [`Test`].
pub(crate) fn test_val(test: &Test, v: Val<'_>) -> bool {
    match test {
        Test::Str { ne, glob } => with_text(v, |s| glob.matches(s) != *ne).unwrap_or(false),
        Test::Num { op, lit } => match v {
            Val::I64(_) | Val::U64(_) | Val::F64(_) => num_cmp(*op, v, lit),
            Val::Str(_) | Val::Bool(_) => match op {
                CmpOp::Eq => with_text(v, |s| s == &*lit.text).unwrap_or(false),
                CmpOp::Ne => with_text(v, |s| s != &*lit.text).unwrap_or(false),
                _ => false,
            },
            Val::Missing | Val::Container | Val::Null => false,
        },
        Test::IsNull => matches!(v, Val::Null),
        Test::IsTrue => matches!(v, Val::Bool(true)),
        Test::IsFalse => matches!(v, Val::Bool(false)),
        Test::NotExists => matches!(v, Val::Missing),
    }
}

fn in_set(set: &FxMap<Box<str>, ()>, v: Val<'_>) -> bool {
    with_text(v, |s| set.contains_key(s)).unwrap_or(false)
}

/// Three-valued (Kleene) evaluation on key fields: `None` when a needed field is not known.
fn eval3<'a>(e: &CExpr, raw: &[u8], get: &impl Fn(u32) -> Fast<'a>) -> Option<bool> {
    match e {
        CExpr::All => Some(true),
        CExpr::Terms(t) => Some(t.matches(raw)),
        CExpr::And(cs) => {
            let mut unknown = false;
            for c in cs {
                match eval3(c, raw, get) {
                    Some(false) => return Some(false),
                    None => unknown = true,
                    Some(true) => {}
                }
            }
            (!unknown).then_some(true)
        }
        CExpr::Or(cs) => {
            let mut unknown = false;
            for c in cs {
                match eval3(c, raw, get) {
                    Some(true) => return Some(true),
                    None => unknown = true,
                    Some(false) => {}
                }
            }
            (!unknown).then_some(false)
        }
        CExpr::Leaf { path, test } => match get(*path) {
            Fast::Known(v) => Some(test_val(test, v)),
            Fast::StringAbsent => match test {
                Test::Str { ne: false, glob } if !glob.could_match_non_string() => Some(false),
                _ => None,
            },
            Fast::Unknown => None,
        },
        CExpr::InSet {
            path,
            set,
            could_match_non_string,
        } => match get(*path) {
            Fast::Known(v) => Some(in_set(set, v)),
            Fast::StringAbsent if !could_match_non_string => Some(false),
            _ => None,
        },
    }
}

fn eval_full<'a>(e: &CExpr, raw: &[u8], val: &impl Fn(u32) -> Val<'a>) -> bool {
    match e {
        CExpr::All => true,
        CExpr::Terms(t) => t.matches(raw),
        CExpr::And(cs) => cs.iter().all(|c| eval_full(c, raw, val)),
        CExpr::Or(cs) => cs.iter().any(|c| eval_full(c, raw, val)),
        CExpr::Leaf { path, test } => test_val(test, val(*path)),
        CExpr::InSet { path, set, .. } => in_set(set, val(*path)),
    }
}

#[derive(Default)]
struct Compiler {
    paths: Vec<Selector>,
    ids: HashMap<Selector, u32>,
}

impl Compiler {
    fn compile(&mut self, p: &FilterPattern) -> CExpr {
        match &p.kind {
            Kind::All => CExpr::All,
            Kind::Terms(t) => CExpr::Terms(t.clone()),
            Kind::Json(e) => optimise(self.expr(e)),
        }
    }

    fn path(&mut self, s: &Selector) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.paths.len() as u32;
        self.paths.push(s.clone());
        self.ids.insert(s.clone(), id);
        id
    }

    fn expr(&mut self, e: &Expr) -> CExpr {
        match e {
            Expr::And(v) => CExpr::And(v.iter().map(|x| self.expr(x)).collect()),
            Expr::Or(v) => CExpr::Or(v.iter().map(|x| self.expr(x)).collect()),
            Expr::Cond(s, t) => CExpr::Leaf {
                path: self.path(s),
                test: t.clone(),
            },
        }
    }
}

/// Flattens nested `&&`/`||` and turns `p = "a" || p = "b" || ...` into one set lookup.
fn optimise(e: CExpr) -> CExpr {
    match e {
        CExpr::And(cs) => {
            let mut out = Vec::with_capacity(cs.len());
            for c in cs.into_iter().map(optimise) {
                match c {
                    CExpr::And(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            CExpr::And(out)
        }
        CExpr::Or(cs) => {
            let mut flat = Vec::with_capacity(cs.len());
            for c in cs.into_iter().map(optimise) {
                match c {
                    CExpr::Or(inner) => flat.extend(inner),
                    other => flat.push(other),
                }
            }
            let mut sets: Vec<(u32, Vec<Box<str>>)> = Vec::new();
            let mut rest = Vec::new();
            for c in flat {
                match c {
                    CExpr::Leaf {
                        path,
                        test:
                            Test::Str {
                                ne: false,
                                glob: Glob::Exact(s),
                            },
                    } => match sets.iter_mut().find(|(p, _)| *p == path) {
                        Some((_, v)) => v.push(s),
                        None => sets.push((path, vec![s])),
                    },
                    other => rest.push(other),
                }
            }
            for (path, values) in sets {
                if values.len() == 1 {
                    let s = values.into_iter().next().unwrap_or_default();
                    rest.push(CExpr::Leaf {
                        path,
                        test: Test::Str {
                            ne: false,
                            glob: Glob::Exact(s),
                        },
                    });
                } else {
                    let could = values
                        .iter()
                        .any(|v| Glob::Exact(v.clone()).could_match_non_string());
                    rest.push(CExpr::InSet {
                        path,
                        set: values.into_iter().map(|v| (v, ())).collect(),
                        could_match_non_string: could,
                    });
                }
            }
            if rest.len() == 1 {
                rest.pop().unwrap_or(CExpr::Or(Vec::new()))
            } else {
                CExpr::Or(rest)
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhose_core::FieldParser;

    fn engine(ps: &[&str]) -> Engine {
        let parsed: Vec<FilterPattern> = ps
            .iter()
            .map(|p| FilterPattern::parse(p).expect("valid pattern"))
            .collect();
        let refs: Vec<&FilterPattern> = parsed.iter().collect();
        Engine::new(&refs)
    }

    const REC: &[u8] = br#"{"eventVersion":"1.08","userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root"},"eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","eventTime":"2020-01-01T00:00:00Z","responseElements":{"ConsoleLogin":"Success"},"additionalEventData":{"MFAUsed":"No"},"eventType":"AwsConsoleSignIn","n":5,"f":2.5,"list":[1,{"id":"x"}]}"#;

    #[test]
    fn key_fields_and_tape_agree() {
        let e = engine(&[
            "{ $.eventName = ConsoleLogin }",
            "{ $.eventName = ConsoleLogin && $.additionalEventData.MFAUsed != \"Yes\" }",
            "{ $.userIdentity.type = Root && $.userIdentity.invokedBy NOT EXISTS }",
            "{ $.errorCode = \"AccessDenied*\" }",
            "{ $.eventName = A || $.eventName = B || $.eventName = ConsoleLogin }",
            "{ $.n > 4 && $.f < 3 && $.list[1].id = x }",
            "{ $.list = 1 || $.list != 1 }",
            "ConsoleLogin -Failure",
        ]);
        let k = FieldParser::new().parse(REC, 0, 0).expect("valid");
        let mut s = Scratch::new();
        let mut with = Vec::new();
        let mut without = Vec::new();
        e.matching(&mut s, REC, Some(&k), &mut with);
        e.matching(&mut s, REC, None, &mut without);
        assert_eq!(with, vec![0, 1, 2, 4, 5, 7]);
        assert_eq!(with, without);
        // Unextracted (default) fields are not trusted.
        e.matching(&mut s, REC, Some(&KeyFields::default()), &mut without);
        assert_eq!(with, without);
    }

    #[test]
    fn index_skips_unrelated_patterns() {
        let e = engine(&[
            "{ ($.eventSource = kms.amazonaws.com) && (($.eventName = DisableKey) || ($.eventName = ScheduleKeyDeletion)) }",
            "{ $.eventName = X || $.eventName = Y }",
            "{ ($.errorCode = \"*UnauthorizedOperation\") || ($.errorCode = \"AccessDenied*\") }",
            "{ $.userIdentity.type = \"Root\" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != \"AwsServiceEvent\" }",
        ]);
        assert_eq!(e.unindexed(), 1);
        let rec = br#"{"eventName":"DescribeInstances","eventSource":"ec2.amazonaws.com","userIdentity":{"type":"IAMUser"}}"#;
        let k = FieldParser::new().parse(rec, 0, 0).expect("valid");
        let mut s = Scratch::new();
        let mut out = Vec::new();
        e.matching(&mut s, rec, Some(&k), &mut out);
        assert!(out.is_empty());
        assert_eq!(s.stats.full_parses, 0);
    }
}
