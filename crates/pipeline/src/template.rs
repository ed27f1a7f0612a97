//! Names from record fields (CloudWatch Logs groups/streams, later topics) from templates like `/cloudtrail/{account}` and
//! `{region}/{eventCategory}`. Parsed once; rendered per record without allocation beyond the
//! result. Rendered names are made legal for CloudWatch Logs rather than rejected, so an odd
//! field value can never stall delivery.

use crate::chunk::ObjectMeta;
use trailhose_core::KeyFields;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Account,
    Region,
    OrgId,
    Bucket,
    EventCategory,
    EventSource,
    EventType,
    EventName,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "account" => Field::Account,
            "region" => Field::Region,
            "orgId" => Field::OrgId,
            "bucket" => Field::Bucket,
            "eventCategory" => Field::EventCategory,
            "eventSource" => Field::EventSource,
            "eventType" => Field::EventType,
            "eventName" => Field::EventName,
            _ => return None,
        })
    }

    fn value<'a>(self, k: &'a KeyFields, o: &'a ObjectMeta) -> Option<&'a str> {
        match self {
            Field::Account => k.account().or(o.account.as_deref()),
            Field::Region => k.aws_region().or(o.region.as_deref()),
            Field::OrgId => o.org_id.as_deref(),
            Field::Bucket => o.bucket.as_deref(),
            Field::EventCategory => k.event_category(),
            Field::EventSource => k.event_source(),
            Field::EventType => k.event_type(),
            Field::EventName => k.event_name(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Field),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Group,
    Stream,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    kind: NameKind,
}

pub const FIELDS: &str =
    "account, region, orgId, bucket, eventCategory, eventSource, eventType, eventName";

impl Template {
    pub fn parse(text: &str, kind: NameKind) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| {
                format!(
                    "`{text}`: unclosed `{{` at byte {}",
                    text.len() - rest.len() + open
                )
            })?;
            let name = &after[..close];
            let field = Field::parse(name)
                .ok_or_else(|| format!("`{text}`: unknown field `{{{name}}}` (known: {FIELDS})"))?;
            parts.push(Part::Field(field));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("`{text}`: `}}` without `{{`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        if parts.is_empty() {
            return Err("empty name template".into());
        }
        if kind == NameKind::Group {
            for p in &parts {
                if let Part::Literal(l) = p {
                    if let Some(c) = l.chars().find(|c| !group_char(*c)) {
                        return Err(format!(
                            "`{text}`: `{c}` is not allowed in a log group name ([.-_/#A-Za-z0-9])"
                        ));
                    }
                }
            }
            if let Some(Part::Literal(l)) = parts.first() {
                if l.starts_with("aws/") {
                    return Err(format!(
                        "`{text}`: log group names must not start with `aws/`"
                    ));
                }
            }
        } else if parts
            .iter()
            .any(|p| matches!(p, Part::Literal(l) if l.contains([':', '*'])))
        {
            return Err(format!(
                "`{text}`: `:` and `*` are not allowed in a log stream name"
            ));
        }
        Ok(Template { parts, kind })
    }

    pub fn render(&self, k: &KeyFields, o: &ObjectMeta) -> String {
        let mut out = String::with_capacity(64);
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Field(f) => {
                    let v = f.value(k, o).unwrap_or("unknown");
                    for c in v.chars() {
                        out.push(match self.kind {
                            NameKind::Group if !group_char(c) => '_',
                            NameKind::Stream if c == ':' || c == '*' => '_',
                            _ => c,
                        });
                    }
                }
            }
        }
        if out.is_empty() {
            out.push('_');
        }
        truncate_chars(&mut out, 512);
        out
    }
}

fn group_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#')
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhose_core::FieldParser;

    fn fields(json: &[u8]) -> KeyFields {
        FieldParser::new().parse(json, 0, 0).expect("valid")
    }

    #[test]
    fn renders_templates() {
        let k = fields(br#"{"recipientAccountId":"111122223333","awsRegion":"eu-west-1","eventCategory":"Data","eventSource":"s3.amazonaws.com"}"#);
        let o = ObjectMeta {
            org_id: Some("o-abc".into()),
            ..Default::default()
        };
        let g = Template::parse("/cloudtrail/{account}", NameKind::Group).expect("valid");
        assert_eq!(g.render(&k, &o), "/cloudtrail/111122223333");
        let s = Template::parse("{region}/{eventCategory}", NameKind::Stream).expect("valid");
        assert_eq!(s.render(&k, &o), "eu-west-1/Data");
        let ct = Template::parse("{account}_CloudTrail_{region}", NameKind::Stream).expect("valid");
        assert_eq!(ct.render(&k, &o), "111122223333_CloudTrail_eu-west-1");
        let org = Template::parse("/ct/{orgId}/{eventType}", NameKind::Group).expect("valid");
        assert_eq!(org.render(&k, &o), "/ct/o-abc/unknown");
    }

    #[test]
    fn sanitises_values_and_rejects_bad_templates() {
        let k = fields(r#"{"eventSource":"a:b*c d","eventName":"é"}"#.as_bytes());
        let o = ObjectMeta::default();
        let s = Template::parse("{eventSource}", NameKind::Stream).expect("valid");
        assert_eq!(s.render(&k, &o), "a_b_c d");
        let g = Template::parse("/x/{eventSource}/{eventName}", NameKind::Group).expect("valid");
        assert_eq!(g.render(&k, &o), "/x/a_b_c_d/_");
        assert!(Template::parse("/x/{nope}", NameKind::Group)
            .unwrap_err()
            .contains("unknown field"));
        assert!(Template::parse("/x/{account", NameKind::Group)
            .unwrap_err()
            .contains("unclosed"));
        assert!(Template::parse("aws/{account}", NameKind::Group)
            .unwrap_err()
            .contains("aws/"));
        assert!(Template::parse("a b", NameKind::Group).is_err());
        assert!(Template::parse("a:{region}", NameKind::Stream).is_err());
        assert!(Template::parse("", NameKind::Stream).is_err());
    }
}
