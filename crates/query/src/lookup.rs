//! `lookup`: the `aws cloudtrail lookup-events` request and answer, over the archive.
//!
//! Request: lookup attributes (shorthand `AttributeKey=EventName,AttributeValue=ConsoleLogin`
//! or the CLI's JSON form), a time range, a result limit. Unlike the API, several attributes
//! may be given (all must match), there is no 90-day window, data events are included, and
//! there is no 2 TPS limit. Answer: `{"Events":[…]}` newest first, each with `EventId`,
//! `EventName`, `ReadOnly`, `AccessKeyId`, `EventTime`, `EventSource`, `Username`,
//! `Resources` and `CloudTrailEvent` (the record exactly as archived).
//!
//! `Username` is what the CloudTrail console shows: `userIdentity.userName`; for assumed
//! roles and federated users the session name (the last segment of the ARN); `root` for the
//! root user; for AWS services the invoking service. `Resources` are the record's
//! `resources[]` (`type` → `ResourceType`, `ARN` → `ResourceName`); `ResourceName` lookups
//! match the ARN.

use datafusion::arrow::array::{Array, AsArray, ListArray, StringArray, StructArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeKey {
    EventId,
    EventName,
    ReadOnly,
    Username,
    ResourceType,
    ResourceName,
    EventSource,
    AccessKeyId,
}

pub const ATTRIBUTE_KEYS: [(&str, AttributeKey); 8] = [
    ("EventId", AttributeKey::EventId),
    ("EventName", AttributeKey::EventName),
    ("ReadOnly", AttributeKey::ReadOnly),
    ("Username", AttributeKey::Username),
    ("ResourceType", AttributeKey::ResourceType),
    ("ResourceName", AttributeKey::ResourceName),
    ("EventSource", AttributeKey::EventSource),
    ("AccessKeyId", AttributeKey::AccessKeyId),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub key: AttributeKey,
    pub value: String,
}

fn key_named(name: &str) -> Result<AttributeKey, String> {
    ATTRIBUTE_KEYS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            let names: Vec<&str> = ATTRIBUTE_KEYS.iter().map(|(n, _)| *n).collect();
            format!("unknown AttributeKey `{name}`: one of {}", names.join(", "))
        })
}

/// Parses one `--lookup-attributes` argument: shorthand (`AttributeKey=K,AttributeValue=V`, the
/// value may hold commas) or JSON (`[{"AttributeKey":"K","AttributeValue":"V"}]` or one object).
pub fn parse_attributes(arg: &str) -> Result<Vec<Attribute>, String> {
    let t = arg.trim();
    if t.starts_with('[') || t.starts_with('{') {
        let v: Value =
            serde_json::from_str(t).map_err(|e| format!("--lookup-attributes JSON: {e}"))?;
        let items = match v {
            Value::Array(a) => a,
            o @ Value::Object(_) => vec![o],
            _ => return Err("--lookup-attributes JSON must be an object or array".into()),
        };
        return items
            .iter()
            .map(|o| {
                let k = o.get("AttributeKey").and_then(Value::as_str);
                let v = o.get("AttributeValue").and_then(Value::as_str);
                match (k, v) {
                    (Some(k), Some(v)) => Ok(Attribute {
                        key: key_named(k)?,
                        value: v.to_owned(),
                    }),
                    _ => Err(format!(
                        "--lookup-attributes: {o} needs AttributeKey and AttributeValue strings"
                    )),
                }
            })
            .collect();
    }
    let rest = t.strip_prefix("AttributeKey=").ok_or_else(|| {
        format!("--lookup-attributes `{arg}`: expected AttributeKey=KEY,AttributeValue=VALUE")
    })?;
    let (k, v) = rest.split_once(",AttributeValue=").ok_or_else(|| {
        format!("--lookup-attributes `{arg}`: expected AttributeKey=KEY,AttributeValue=VALUE")
    })?;
    Ok(vec![Attribute {
        key: key_named(k)?,
        value: v.to_owned(),
    }])
}

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub attributes: Vec<Attribute>,
    /// Inclusive bounds, epoch milliseconds.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub max_results: Option<usize>,
}

/// The console's user name (see the module doc), as SQL.
pub const USERNAME_SQL: &str = "coalesce(useridentity.username, CASE \
    WHEN useridentity.type IN ('AssumedRole', 'FederatedUser', 'WebIdentityUser', 'SAMLUser') \
    THEN regexp_replace(useridentity.arn, '^.*/', '') \
    WHEN useridentity.type = 'Root' THEN 'root' \
    ELSE useridentity.invokedby END)";

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn condition(a: &Attribute) -> String {
    let v = quote(&a.value);
    match a.key {
        AttributeKey::EventId => format!("eventid = {v}"),
        AttributeKey::EventName => format!("eventname = {v}"),
        AttributeKey::ReadOnly => format!("lower(readonly) = lower({v})"),
        AttributeKey::Username => format!("{USERNAME_SQL} = {v}"),
        AttributeKey::ResourceType => format!("resources_contain(resources, 'type', {v})"),
        AttributeKey::ResourceName => format!("resources_contain(resources, 'arn', {v})"),
        AttributeKey::EventSource => format!("eventsource = {v}"),
        AttributeKey::AccessKeyId => format!("useridentity.accesskeyid = {v}"),
    }
}

fn timestamp_literal(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let base = trailhose_core::timefmt::format_rfc3339_s(secs * 1000);
    // format_rfc3339_s ends in `Z`; add the milliseconds before it.
    format!("TIMESTAMP '{}.{frac:03}Z'", base.trim_end_matches('Z'))
}

/// The query for a request: attribute conditions, the time range (also on the `dt` partition,
/// so directories outside it are never listed), newest first.
pub fn to_sql(req: &Request) -> String {
    let mut conds: Vec<String> = req.attributes.iter().map(condition).collect();
    if let Some(s) = req.start_ms {
        conds.push(format!("eventtimestamp >= {}", timestamp_literal(s)));
        conds.push(format!(
            "dt >= '{}'",
            trailhose_archive::partition::date_of(s)
        ));
    }
    if let Some(e) = req.end_ms {
        conds.push(format!("eventtimestamp <= {}", timestamp_literal(e)));
        conds.push(format!(
            "dt <= '{}'",
            trailhose_archive::partition::date_of(e)
        ));
    }
    let mut sql = format!(
        "SELECT eventid, eventname, readonly, useridentity.accesskeyid AS accesskeyid, \
         eventtimestamp, eventtime, eventsource, {USERNAME_SQL} AS username, resources, \
         cloudtrailevent FROM {}",
        crate::TABLE
    );
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    sql.push_str(" ORDER BY eventtimestamp DESC NULLS LAST, eventid DESC");
    if let Some(n) = req.max_results {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    sql
}

fn strings(b: &RecordBatch, name: &str) -> Result<StringArray, String> {
    let col = b
        .column_by_name(name)
        .ok_or_else(|| format!("lookup: result has no column {name}"))?;
    let c = cast(col, &DataType::Utf8).map_err(|e| format!("lookup: {name}: {e}"))?;
    Ok(c.as_string::<i32>().clone())
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// `EventTime` as the AWS CLI v2 prints it: `2024-01-15T10:00:00+00:00`.
fn event_time(ms: Option<i64>, text: Option<&str>) -> Option<String> {
    match ms {
        Some(ms) => {
            let s = trailhose_core::timefmt::format_rfc3339_s(ms);
            Some(format!("{}+00:00", s.trim_end_matches('Z')))
        }
        None => text.map(str::to_owned),
    }
}

fn resources(list: &ListArray, i: usize) -> Vec<Value> {
    if list.is_null(i) {
        return Vec::new();
    }
    let items = list.value(i);
    let Some(items) = items.as_any().downcast_ref::<StructArray>() else {
        return Vec::new();
    };
    let field = |n: &str| {
        items
            .column_by_name(n)
            .and_then(|c| cast(c, &DataType::Utf8).ok())
            .map(|c| c.as_string::<i32>().clone())
    };
    let (types, arns) = (field("type"), field("arn"));
    (0..items.len())
        .map(|j| {
            let mut o = Map::new();
            if let Some(t) = types.as_ref().and_then(|a| opt(a, j)) {
                o.insert("ResourceType".into(), Value::String(t.to_owned()));
            }
            if let Some(a) = arns.as_ref().and_then(|a| opt(a, j)) {
                o.insert("ResourceName".into(), Value::String(a.to_owned()));
            }
            Value::Object(o)
        })
        .collect()
}

/// The rows of [`to_sql`] as the CLI's answer. Absent values are omitted, as the API does.
pub fn events(batches: &[RecordBatch]) -> Result<Value, String> {
    let mut events = Vec::new();
    for b in batches {
        let (id, name, ro, akid, time, src, user, raw) = (
            strings(b, "eventid")?,
            strings(b, "eventname")?,
            strings(b, "readonly")?,
            strings(b, "accesskeyid")?,
            strings(b, "eventtime")?,
            strings(b, "eventsource")?,
            strings(b, "username")?,
            strings(b, "cloudtrailevent")?,
        );
        let ts = b
            .column_by_name("eventtimestamp")
            .and_then(|c| cast(c, &DataType::Int64).ok())
            .ok_or("lookup: result has no eventtimestamp")?;
        let ts = ts.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let res = b
            .column_by_name("resources")
            .and_then(|c| c.as_list_opt::<i32>().cloned())
            .ok_or("lookup: result has no resources list")?;
        for i in 0..b.num_rows() {
            let mut e = Map::new();
            let mut put = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    e.insert(k.to_owned(), Value::String(v));
                }
            };
            put("EventId", opt(&id, i).map(str::to_owned));
            put("EventName", opt(&name, i).map(str::to_owned));
            put("ReadOnly", opt(&ro, i).map(str::to_owned));
            put("AccessKeyId", opt(&akid, i).map(str::to_owned));
            put(
                "EventTime",
                event_time(ts.is_valid(i).then(|| ts.value(i)), opt(&time, i)),
            );
            put("EventSource", opt(&src, i).map(str::to_owned));
            put("Username", opt(&user, i).map(str::to_owned));
            put("CloudTrailEvent", opt(&raw, i).map(str::to_owned));
            e.insert("Resources".into(), Value::Array(resources(&res, i)));
            events.push(Value::Object(e));
        }
    }
    Ok(json!({ "Events": events }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_and_json_attributes() {
        assert_eq!(
            parse_attributes("AttributeKey=EventName,AttributeValue=ConsoleLogin"),
            Ok(vec![Attribute {
                key: AttributeKey::EventName,
                value: "ConsoleLogin".into()
            }])
        );
        let a = parse_attributes("AttributeKey=ResourceName,AttributeValue=a,b").expect("comma");
        assert_eq!(a[0].value, "a,b");
        let j = parse_attributes(r#"[{"AttributeKey":"Username","AttributeValue":"admin_user"}]"#)
            .expect("json");
        assert_eq!(j[0].key, AttributeKey::Username);
        for (name, _) in ATTRIBUTE_KEYS {
            let arg = format!("AttributeKey={name},AttributeValue=x");
            assert!(parse_attributes(&arg).is_ok(), "{name}");
        }
        assert!(parse_attributes("AttributeKey=Nope,AttributeValue=x")
            .unwrap_err()
            .contains("unknown AttributeKey `Nope`"));
        assert!(parse_attributes("EventName=x")
            .unwrap_err()
            .contains("expected"));
        assert!(parse_attributes(r#"{"AttributeKey":"EventName"}"#).is_err());
    }

    #[test]
    fn sql_quotes_values_and_bounds_partitions() {
        let req = Request {
            attributes: vec![Attribute {
                key: AttributeKey::EventName,
                value: "O'Brien".into(),
            }],
            start_ms: Some(1_705_312_800_123),
            end_ms: Some(1_705_400_000_000),
            max_results: Some(5),
        };
        let sql = to_sql(&req);
        assert!(sql.contains("eventname = 'O''Brien'"), "{sql}");
        assert!(
            sql.contains("eventtimestamp >= TIMESTAMP '2024-01-15T10:00:00.123Z'"),
            "{sql}"
        );
        assert!(
            sql.contains("dt >= '2024-01-15'") && sql.contains("dt <= '2024-01-16'"),
            "{sql}"
        );
        assert!(sql.ends_with("LIMIT 5"), "{sql}");
    }

    #[test]
    fn event_time_like_the_cli() {
        assert_eq!(
            event_time(Some(1_705_312_800_000), None).as_deref(),
            Some("2024-01-15T10:00:00+00:00")
        );
        assert_eq!(event_time(None, Some("x")).as_deref(), Some("x"));
    }
}
