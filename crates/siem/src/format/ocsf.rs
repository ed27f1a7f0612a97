//! CloudTrail → OCSF 1.1.0 API Activity (class 6003, category 6 Application Activity), the
//! class Amazon Security Lake maps CloudTrail management and data events to, with the field
//! mapping of the OCSF project's CloudTrail "event dossier".
//!
//! [`FIELDS`] is the copy table. The derived fields, in [`to_ocsf`]:
//! - the class constants (`class_uid` 6003, `category_uid` 6, `severity_id` 1 Informational,
//!   `metadata.version` 1.1.0, `metadata.product` CloudTrail/AWS, `metadata.profiles`
//!   `["cloud","datetime"]`, `cloud.provider` AWS);
//! - `activity_id`/`activity_name`/`type_uid`/`type_name` from the verb `eventName` starts
//!   with, by [`ACTIVITIES`] (`Other` (99) when none fits);
//! - `status`/`status_id`: Failure (2) when `errorCode` is present or a `ConsoleLogin`'s
//!   `responseElements.ConsoleLogin` is `Failure`, else Success (1);
//! - `src_endpoint.ip` when `sourceIPAddress` is an IP address, else `src_endpoint.domain`
//!   (service principals such as `ec2.amazonaws.com`, `AWS Internal`);
//! - `resources[]`: `uid` ← `ARN`, `owner.account.uid` ← `accountId`, `type` ← `type`;
//! - `unmapped`: every top-level record field not mapped whole ([`is_mapped`]; e.g.
//!   `readOnly`, `additionalEventData`, `tlsDetails`), so nothing of the record is lost.
//!
//! Not produced: `observables` and `enrichments` (Security Lake adds them at ingest).
//! `cloud.account.uid` ← `recipientAccountId` is trailhose's addition (Security Lake keeps it
//! as the `accountid` partition instead).

use super::apply_table;
use super::path::{self, row, Conv, Row};
use serde_json::{json, Map, Value};

pub const OCSF_VERSION: &str = "1.1.0";
pub const CLASS_UID: u64 = 6003;
pub const CATEGORY_UID: u64 = 6;

pub const FIELDS: &[Row] = &[
    row("time", "eventTime", Conv::EpochMs),
    row("time_dt", "eventTime", Conv::Date),
    row("metadata.uid", "eventID", Conv::Copy),
    row("metadata.product.version", "eventVersion", Conv::Copy),
    row("metadata.event_code", "eventType", Conv::Copy),
    row("metadata.product.feature.name", "eventCategory", Conv::Copy),
    row("actor.user.type", "userIdentity.type", Conv::Copy),
    row("actor.user.uid", "userIdentity.arn", Conv::Copy),
    row("actor.user.uid_alt", "userIdentity.principalId", Conv::Copy),
    row(
        "actor.user.uid_alt",
        "userIdentity.onBehalfOf.userId",
        Conv::CopyIfUnset,
    ),
    row("actor.user.name", "userIdentity.userName", Conv::Copy),
    row(
        "actor.user.name",
        "additionalEventData.UserName",
        Conv::CopyIfUnset,
    ),
    row(
        "actor.user.credential_uid",
        "userIdentity.accessKeyId",
        Conv::Copy,
    ),
    row(
        "actor.user.credential_uid",
        "userIdentity.credentialId",
        Conv::CopyIfUnset,
    ),
    row(
        "actor.user.account.uid",
        "userIdentity.accountId",
        Conv::Copy,
    ),
    row(
        "actor.session.created_time_dt",
        "userIdentity.sessionContext.attributes.creationDate",
        Conv::Date,
    ),
    row(
        "actor.session.created_time",
        "userIdentity.sessionContext.attributes.creationDate",
        Conv::EpochMs,
    ),
    row(
        "actor.session.is_mfa",
        "userIdentity.sessionContext.attributes.mfaAuthenticated",
        Conv::Bool,
    ),
    row(
        "actor.session.issuer",
        "userIdentity.sessionContext.sessionIssuer.arn",
        Conv::Copy,
    ),
    row("actor.invoked_by", "userIdentity.invokedBy", Conv::Copy),
    row(
        "actor.idp.name",
        "userIdentity.sessionContext.webIdFederationData.federatedProvider",
        Conv::Copy,
    ),
    row(
        "actor.idp.name",
        "userIdentity.identityProvider",
        Conv::CopyIfUnset,
    ),
    row(
        "actor.idp.uid",
        "userIdentity.onBehalfOf.identityStoreArn",
        Conv::Copy,
    ),
    row("api.operation", "eventName", Conv::Copy),
    row("api.service.name", "eventSource", Conv::Copy),
    row("api.version", "apiVersion", Conv::Copy),
    row("api.request.uid", "requestID", Conv::Copy),
    row("api.request.data", "requestParameters", Conv::Copy),
    row("api.response.data", "responseElements", Conv::Copy),
    row("api.response.error", "errorCode", Conv::Copy),
    row("api.response.message", "errorMessage", Conv::Copy),
    row("cloud.region", "awsRegion", Conv::Copy),
    row("cloud.account.uid", "recipientAccountId", Conv::Copy),
    row("http_request.user_agent", "userAgent", Conv::Copy),
    row("src_endpoint.uid", "vpcEndpointId", Conv::Copy),
];

/// Top-level record fields mapped whole besides the plain rows of [`FIELDS`]: those the
/// derived mappings read, and `userIdentity`, which the rows take apart.
const CONSUMED: &[&str] = &["sourceIPAddress", "resources", "userIdentity"];

/// Whether a top-level record field is mapped (else it goes to `unmapped`). A field that
/// rows only pick from (`additionalEventData.UserName`) stays in `unmapped` whole.
pub fn is_mapped(key: &str) -> bool {
    CONSUMED.contains(&key) || FIELDS.iter().any(|r| r.source == key)
}

/// `eventName` verb → OCSF API Activity `activity_id`. The verb must be followed by an
/// upper-case letter or the end (`ListBuckets` is a List, `Listen` would not be).
pub const ACTIVITIES: &[(&str, u64)] = &[
    ("Create", 1),
    ("Add", 1),
    ("Allocate", 1),
    ("Import", 1),
    ("Register", 1),
    ("Get", 2),
    ("BatchGet", 2),
    ("Describe", 2),
    ("List", 2),
    ("Head", 2),
    ("Lookup", 2),
    ("Search", 2),
    ("Scan", 2),
    ("Query", 2),
    ("Update", 3),
    ("Put", 3),
    ("Modify", 3),
    ("Set", 3),
    ("Attach", 3),
    ("Associate", 3),
    ("Enable", 3),
    ("Disable", 3),
    ("Change", 3),
    ("Tag", 3),
    ("Untag", 3),
    ("Replace", 3),
    ("Reset", 3),
    ("Delete", 4),
    ("BatchDelete", 4),
    ("Remove", 4),
    ("Detach", 4),
    ("Disassociate", 4),
    ("Deregister", 4),
    ("Terminate", 4),
];

pub fn activity_name(id: u64) -> &'static str {
    match id {
        1 => "Create",
        2 => "Read",
        3 => "Update",
        4 => "Delete",
        99 => "Other",
        _ => "Unknown",
    }
}

/// The activity of an API call from its name.
pub fn activity_id(event_name: Option<&str>) -> u64 {
    let Some(name) = event_name else {
        return 0;
    };
    ACTIVITIES
        .iter()
        .filter(|(verb, _)| {
            name.strip_prefix(verb).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase())
            })
        })
        // The longest verb wins (`Disassociate` over a shorter match, `BatchGet` as itself).
        .max_by_key(|(verb, _)| verb.len())
        .map_or(99, |(_, id)| *id)
}

pub fn to_ocsf(rec: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let event_name = path::get_str(rec, "eventName");
    let activity = activity_id(event_name);
    out.insert("class_uid".into(), json!(CLASS_UID));
    out.insert("class_name".into(), json!("API Activity"));
    out.insert("category_uid".into(), json!(CATEGORY_UID));
    out.insert("category_name".into(), json!("Application Activity"));
    out.insert("activity_id".into(), json!(activity));
    out.insert("activity_name".into(), json!(activity_name(activity)));
    out.insert("type_uid".into(), json!(CLASS_UID * 100 + activity));
    out.insert(
        "type_name".into(),
        json!(format!("API Activity: {}", activity_name(activity))),
    );
    out.insert("severity_id".into(), json!(1));
    out.insert("severity".into(), json!("Informational"));

    let console_failed = event_name == Some("ConsoleLogin")
        && path::get_str(rec, "responseElements.ConsoleLogin")
            .is_some_and(|s| s.eq_ignore_ascii_case("failure"));
    if path::get(rec, "errorCode").is_some() || console_failed {
        out.insert("status".into(), json!("Failure"));
        out.insert("status_id".into(), json!(2));
    } else {
        out.insert("status".into(), json!("Success"));
        out.insert("status_id".into(), json!(1));
    }

    apply_table(FIELDS, rec, &mut out);
    path::set(&mut out, "metadata.version", json!(OCSF_VERSION));
    path::set(&mut out, "metadata.product.name", json!("CloudTrail"));
    path::set(&mut out, "metadata.product.vendor_name", json!("AWS"));
    path::set(&mut out, "metadata.profiles", json!(["cloud", "datetime"]));
    path::set(&mut out, "cloud.provider", json!("AWS"));

    if let Some(addr) = path::get_str(rec, "sourceIPAddress") {
        let target = if addr.parse::<std::net::IpAddr>().is_ok() {
            "src_endpoint.ip"
        } else {
            "src_endpoint.domain"
        };
        path::set(&mut out, target, json!(addr));
    }

    if let Some(Value::Array(list)) = path::get(rec, "resources") {
        let resources: Vec<Value> = list
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|r| {
                let mut m = Map::new();
                if let Some(v) = path::get(r, "ARN") {
                    path::set(&mut m, "uid", v.clone());
                }
                if let Some(v) = path::get(r, "accountId") {
                    path::set(&mut m, "owner.account.uid", v.clone());
                }
                if let Some(v) = path::get(r, "type") {
                    path::set(&mut m, "type", v.clone());
                }
                (!m.is_empty()).then_some(Value::Object(m))
            })
            .collect();
        if !resources.is_empty() {
            out.insert("resources".into(), Value::Array(resources));
        }
    }

    let mut unmapped = Map::new();
    for (k, v) in rec {
        if !is_mapped(k) {
            if let Some(v) = path::prune(v.clone()) {
                unmapped.insert(k.clone(), v);
            }
        }
    }
    if !unmapped.is_empty() {
        out.insert("unmapped".into(), Value::Object(unmapped));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activities_by_verb() {
        let cases = [
            ("CreateUser", 1),
            ("AddUserToGroup", 1),
            ("GetObject", 2),
            ("BatchGetItem", 2),
            ("DescribeInstances", 2),
            ("ListBuckets", 2),
            ("PutObject", 3),
            ("UpdateTrail", 3),
            ("TagResource", 3),
            ("UntagResource", 3),
            ("DeleteBucket", 4),
            ("DisassociateRouteTable", 4),
            ("DeregisterImage", 4),
            ("RegisterImage", 1),
            ("AssumeRole", 99),
            ("ConsoleLogin", 99),
            ("Listen", 99),
            ("Settings", 99),
            ("Get", 2),
        ];
        for (name, id) in cases {
            assert_eq!(activity_id(Some(name)), id, "{name}");
        }
        assert_eq!(activity_id(None), 0);
        assert_eq!(activity_name(2), "Read");
    }
}
