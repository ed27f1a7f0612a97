//! What an alert output receives: one JSON object per alert, a one-line subject and a severity.
//!
//! A rule match becomes
//! `{"alertType":"RuleMatch","ruleId",...,"title","severity","pack","controls",`
//! `"eventTime","eventID","eventSource","eventName","awsRegion","account",`
//! `"userIdentity":{...},"sourceIPAddress","errorCode","object","record":<original bytes>}`;
//! the record is embedded byte for byte (compacted only if the source was pretty-printed). An
//! Insights event is sent as the CloudTrail Insights record itself.

use crate::anomaly::{InsightEvent, InsightState};
use crate::rules::{Rule, Severity};
use serde::Serialize;
use trailhose_core::KeyFields;
use trailhose_pipeline::ObjectMeta;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Rule,
    Insight,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertMessage {
    pub kind: AlertKind,
    /// Rule id, or `ApiCallRateInsight`/`ApiErrorRateInsight`.
    pub id: String,
    pub severity: Severity,
    /// One line, printable ASCII, at most 100 characters (valid as an SNS subject).
    pub subject: String,
    /// The alert as one JSON object (no trailing newline).
    pub body: Vec<u8>,
    /// Where the embedded record starts in `body` (`,"record":`), for outputs with a size
    /// limit that must leave it out.
    record_at: Option<usize>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleHead<'a> {
    alert_type: &'static str,
    rule_id: &'a str,
    title: &'a str,
    severity: Severity,
    pack: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    controls: &'a [String],
    event_time: Option<&'a str>,
    #[serde(rename = "eventID")]
    event_id: Option<&'a str>,
    event_source: Option<&'a str>,
    event_name: Option<&'a str>,
    aws_region: Option<&'a str>,
    account: Option<&'a str>,
    user_identity: UserIdentity<'a>,
    #[serde(rename = "sourceIPAddress")]
    source_ip_address: Option<&'a str>,
    error_code: Option<&'a str>,
    object: &'a str,
}

/// A printable-ASCII, single-line subject of at most 100 characters.
pub fn clean_subject(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect();
    if out.len() > 100 {
        out.truncate(97);
        out.push_str("...");
    }
    if out.is_empty() {
        out.push_str("trailhose alert");
    }
    out
}

impl AlertMessage {
    pub fn for_rule(
        rule: &Rule,
        fields: &KeyFields,
        object: &ObjectMeta,
        record: &[u8],
        has_line_break: bool,
    ) -> AlertMessage {
        let account = fields.account().or(object.account.as_deref());
        let region = fields.aws_region().or(object.region.as_deref());
        let head = RuleHead {
            alert_type: "RuleMatch",
            rule_id: &rule.id,
            title: &rule.title,
            severity: rule.severity,
            pack: &rule.pack,
            controls: &rule.controls,
            event_time: fields.event_time(),
            event_id: fields.event_id(),
            event_source: fields.event_source(),
            event_name: fields.event_name(),
            aws_region: region,
            account,
            user_identity: UserIdentity {
                kind: fields.user_type(),
                arn: fields.user_arn(),
                principal_id: fields.user_principal_id(),
                user_name: fields.user_name(),
                account_id: fields.user_account_id(),
            },
            source_ip_address: fields.source_ip_address(),
            error_code: fields.error_code(),
            object: &object.source,
        };
        // Serialising borrowed strings into a Vec cannot fail.
        let mut body = serde_json::to_vec(&head).unwrap_or_else(|_| b"{}".to_vec());
        body.pop();
        let record_at = body.len();
        body.extend_from_slice(b",\"record\":");
        trailhose_pipeline::linefile::push_json(&mut body, record, has_line_break);
        body.push(b'}');
        let who = fields.user_arn().or(fields.user_type()).unwrap_or("-");
        let subject = clean_subject(&format!(
            "[{}] {} ({} {} {})",
            rule.severity.as_str().to_uppercase(),
            rule.title,
            account.unwrap_or("-"),
            region.unwrap_or("-"),
            who
        ));
        AlertMessage {
            kind: AlertKind::Rule,
            id: rule.id.clone(),
            severity: rule.severity,
            subject,
            body,
            record_at: Some(record_at),
        }
    }

    pub fn for_insight(e: &InsightEvent, severity: Severity) -> AlertMessage {
        let d = &e.insight_details;
        let state = match d.state {
            InsightState::Start => "Start",
            InsightState::End => "End",
        };
        let subject = clean_subject(&format!(
            "[{}] {} {}: {} {} ({} {})",
            severity.as_str().to_uppercase(),
            d.insight_type.as_str(),
            state,
            d.event_source,
            d.event_name,
            e.recipient_account_id,
            e.aws_region
        ));
        AlertMessage {
            kind: AlertKind::Insight,
            id: d.insight_type.as_str().to_owned(),
            severity,
            subject,
            body: e.to_json(),
            record_at: None,
        }
    }

    /// The body within `limit` bytes: the embedded record is replaced by
    /// `"recordOmitted":"<reason>"` when the whole does not fit. `None` when even that is too
    /// big.
    pub fn body_within(&self, limit: usize, reason: &str) -> Option<Vec<u8>> {
        if self.body.len() <= limit {
            return Some(self.body.clone());
        }
        let at = self.record_at?;
        let mut b = self.body[..at].to_vec();
        b.extend_from_slice(b",\"recordOmitted\":");
        b.extend_from_slice(&serde_json::to_vec(reason).unwrap_or_else(|_| b"\"\"".to_vec()));
        b.push(b'}');
        (b.len() <= limit).then_some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::FilterPattern;
    use trailhose_core::FieldParser;

    #[test]
    fn rule_alert_embeds_the_record_verbatim() {
        let rec = br#"{"eventTime":"2020-01-01T00:00:00Z","eventName":"StopLogging","eventSource":"cloudtrail.amazonaws.com","awsRegion":"eu-west-1","recipientAccountId":"111122223333","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/b\u00f6b"},"eventID":"e1"}"#;
        let f = FieldParser::new().parse(rec, 0, 0).expect("valid");
        let rule = Rule {
            id: "r1".into(),
            title: "Trail stopped \u{2014} now".into(),
            severity: Severity::Critical,
            pack: "p".into(),
            description: None,
            controls: vec!["CIS 4.5".into()],
            pattern: FilterPattern::parse("{ $.eventName = StopLogging }").expect("ok"),
            origin: "t".into(),
        };
        let obj = ObjectMeta {
            source: "s3://b/k".into(),
            ..Default::default()
        };
        let a = AlertMessage::for_rule(&rule, &f, &obj, rec, false);
        let v: serde_json::Value = serde_json::from_slice(&a.body).expect("json");
        assert_eq!(v["ruleId"], "r1");
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["account"], "111122223333");
        assert_eq!(v["userIdentity"]["type"], "IAMUser");
        assert_eq!(v["object"], "s3://b/k");
        let tail = format!(",\"record\":{}}}", std::str::from_utf8(rec).expect("utf8"));
        assert!(a.body.ends_with(tail.as_bytes()));
        assert!(a
            .subject
            .starts_with("[CRITICAL] Trail stopped ? now (111122223333 eu-west-1"));
        assert!(a.subject.len() <= 100);
        let limit = a.body.len() - 1;
        assert_eq!(
            a.body_within(a.body.len(), "x").as_deref(),
            Some(&a.body[..])
        );
        let small = a
            .body_within(limit, "too large")
            .expect("fits without record");
        let v: serde_json::Value = serde_json::from_slice(&small).expect("json");
        assert_eq!(v["recordOmitted"], "too large");
        assert!(v.get("record").is_none());
    }
}
