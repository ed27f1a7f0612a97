//! The JSON path subset Athena's `json_extract` / `json_extract_scalar` take in CloudTrail
//! queries: `$`, `.name`, `["name"]` / `['name']`, `[index]`. Pure.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Parses `$.a.b[0]["c d"]`; the error says where the path stopped making sense.
pub fn parse(path: &str) -> Result<Vec<Step>, String> {
    let rest = path
        .trim()
        .strip_prefix('$')
        .ok_or_else(|| format!("JSON path `{path}` must start with `$`"))?;
    let b = rest.as_bytes();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end] != b'.' && b[end] != b'[' {
                    end += 1;
                }
                if end == start {
                    return Err(format!(
                        "JSON path `{path}`: empty name at column {}",
                        start + 1
                    ));
                }
                steps.push(Step::Key(rest[start..end].to_owned()));
                i = end;
            }
            b'[' => {
                let close = rest[i..].find(']').map(|c| c + i).ok_or_else(|| {
                    format!("JSON path `{path}`: unclosed `[` at column {}", i + 2)
                })?;
                let inner = rest[i + 1..close].trim();
                let quoted = inner.len() >= 2
                    && ((inner.starts_with('"') && inner.ends_with('"'))
                        || (inner.starts_with('\'') && inner.ends_with('\'')));
                if quoted {
                    steps.push(Step::Key(inner[1..inner.len() - 1].to_owned()));
                } else {
                    let n = inner.parse::<usize>().map_err(|_| {
                        format!(
                            "JSON path `{path}`: `[{inner}]` is neither an index nor a quoted name"
                        )
                    })?;
                    steps.push(Step::Index(n));
                }
                i = close + 1;
            }
            other => {
                return Err(format!(
                    "JSON path `{path}`: unexpected `{}` at column {}",
                    other as char,
                    i + 2
                ))
            }
        }
    }
    Ok(steps)
}

pub fn walk<'v>(mut v: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    for s in steps {
        v = match s {
            Step::Key(k) => v.as_object()?.get(k)?,
            Step::Index(n) => v.as_array()?.get(*n)?,
        };
    }
    Some(v)
}

/// `json_extract_scalar`: the value as text when it is a string, number or boolean; NULL for
/// objects, arrays, null, a missing path or text that is not JSON (as Presto/Athena do).
pub fn extract_scalar(json: &str, steps: &[Step]) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    match walk(&v, steps)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `json_extract`: the value as JSON text; NULL for a missing path or text that is not JSON.
pub fn extract(json: &str, steps: &[Step]) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    walk(&v, steps).map(Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str =
        r#"{"bucketName":"b","n":3,"ok":true,"tags":[{"k":"x"},{"k":"y"}],"a b":{"c":null}}"#;

    fn scalar(path: &str) -> Option<String> {
        extract_scalar(DOC, &parse(path).expect(path))
    }

    #[test]
    fn scalars() {
        assert_eq!(scalar("$.bucketName").as_deref(), Some("b"));
        assert_eq!(scalar("$.n").as_deref(), Some("3"));
        assert_eq!(scalar("$.ok").as_deref(), Some("true"));
        assert_eq!(scalar("$.tags[1].k").as_deref(), Some("y"));
        assert_eq!(scalar("$[\"a b\"]"), None);
        assert_eq!(scalar("$['a b'].c"), None);
        assert_eq!(scalar("$.tags"), None);
        assert_eq!(scalar("$.missing"), None);
        assert_eq!(extract_scalar("not json", &[]), None);
    }

    #[test]
    fn json_values() {
        let p = parse("$.tags[0]").expect("path");
        assert_eq!(extract(DOC, &p).as_deref(), Some(r#"{"k":"x"}"#));
        assert_eq!(
            extract(DOC, &parse("$").expect("root")).map(|s| s.len()),
            Some(DOC.len())
        );
    }

    #[test]
    fn bad_paths_say_where() {
        assert!(parse("bucketName")
            .unwrap_err()
            .contains("must start with `$`"));
        assert!(parse("$.a[").unwrap_err().contains("unclosed"));
        assert!(parse("$.a[x]").unwrap_err().contains("neither an index"));
        assert!(parse("$..a").unwrap_err().contains("empty name"));
    }
}
