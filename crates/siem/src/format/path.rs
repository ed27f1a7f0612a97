//! Dotted paths into JSON objects and the conversions a mapping row can apply.

use serde_json::{Map, Value};

/// How a mapping row carries a value over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    /// The value as it is, with null and empty members dropped (as the Elastic pipeline's
    /// first step does to the whole record).
    Copy,
    /// Like `Copy`, but only when the target is still unset: the first present source wins.
    CopyIfUnset,
    /// An RFC 3339 timestamp, normalised to UTC with milliseconds (`…T00:00:07.000Z`).
    Date,
    /// An RFC 3339 timestamp as epoch milliseconds (OCSF `timestamp_t`).
    EpochMs,
    /// The compact JSON text of the value (objects and arrays; strings stay strings).
    JsonText,
    /// `true`/`false` from a boolean or the strings CloudTrail writes (`"true"`, `"false"`).
    Bool,
}

/// One line of a mapping table: `target` (in the output) ← `source` (in the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub target: &'static str,
    pub source: &'static str,
    pub conv: Conv,
}

pub const fn row(target: &'static str, source: &'static str, conv: Conv) -> Row {
    Row {
        target,
        source,
        conv,
    }
}

impl Conv {
    pub fn apply(self, v: &Value) -> Option<Value> {
        match self {
            Conv::Copy | Conv::CopyIfUnset => prune(v.clone()),
            Conv::Date => {
                let ms = trailhose_core::timefmt::parse_rfc3339_ms(v.as_str()?)?;
                Some(Value::String(super::format_ms(ms)))
            }
            Conv::EpochMs => {
                let ms = trailhose_core::timefmt::parse_rfc3339_ms(v.as_str()?)?;
                Some(Value::from(ms))
            }
            Conv::JsonText => match prune(v.clone())? {
                Value::String(s) => Some(Value::String(s)),
                other => Some(Value::String(other.to_string())),
            },
            Conv::Bool => match v {
                Value::Bool(b) => Some(Value::Bool(*b)),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Some(Value::Bool(true)),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Some(Value::Bool(false)),
                _ => None,
            },
        }
    }
}

/// The value at a dotted path, when present and not null or empty.
pub fn get<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = obj.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    if is_empty(cur) {
        None
    } else {
        Some(cur)
    }
}

pub fn get_str<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a str> {
    get(obj, path).and_then(Value::as_str)
}

/// Sets a dotted path, creating objects on the way; a non-object in the way is replaced.
pub fn set(obj: &mut Map<String, Value>, path: &str, v: Value) {
    let mut cur = obj;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), v);
            return;
        }
        let slot = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(m) => cur = m,
            _ => return,
        }
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Drops null, `""`, and containers left empty, recursively; `None` if nothing is left.
pub fn prune(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            let m: Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => {
            let a: Vec<Value> = a.into_iter().filter_map(prune).collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        other if is_empty(&other) => None,
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn get_set_and_prune() {
        let rec = obj(json!({"a":{"b":{"c":1},"e":""},"x":null}));
        assert_eq!(get(&rec, "a.b.c"), Some(&json!(1)));
        assert_eq!(get(&rec, "a.e"), None);
        assert_eq!(get(&rec, "x"), None);
        assert_eq!(get(&rec, "a.b.c.d"), None);
        let mut out = Map::new();
        set(&mut out, "p.q.r", json!("v"));
        set(&mut out, "p.s", json!(2));
        assert_eq!(Value::Object(out), json!({"p":{"q":{"r":"v"},"s":2}}));
        assert_eq!(
            prune(json!({"a":null,"b":[null,""],"c":{"d":{}},"e":[1,{}]})),
            Some(json!({"e":[1]}))
        );
        assert_eq!(prune(json!({})), None);
    }

    #[test]
    fn conversions() {
        assert_eq!(
            Conv::Date.apply(&json!("2026-11-01T00:00:07Z")),
            Some(json!("2026-11-01T00:00:07.000Z"))
        );
        assert_eq!(
            Conv::EpochMs.apply(&json!("1970-01-01T00:00:01.5Z")),
            Some(json!(1500))
        );
        assert_eq!(Conv::Date.apply(&json!("yesterday")), None);
        assert_eq!(
            Conv::JsonText.apply(&json!({"k":"v","n":null})),
            Some(json!("{\"k\":\"v\"}"))
        );
        assert_eq!(Conv::Bool.apply(&json!("false")), Some(json!(false)));
        assert_eq!(Conv::Bool.apply(&json!(true)), Some(json!(true)));
        assert_eq!(Conv::Bool.apply(&json!("maybe")), None);
    }
}
