//! CloudTrail → Elastic Common Schema, following the Elastic AWS integration's `cloudtrail`
//! ingest pipeline (ECS 8.11): a document shaped like the one that pipeline indexes, so
//! Elastic's dashboards and detection rules work on it.
//!
//! [`FIELDS`] is the copy table. The derived fields, in [`to_ecs`]:
//! - `ecs.version` = `8.11.0`, `event.kind` = `event`, `cloud.provider` = `aws`;
//! - `event.outcome`: `failure` when `errorCode` or `errorMessage` is present, else
//!   `success`; for `ConsoleLogin`, `responseElements.ConsoleLogin` lower-cased;
//! - `event.category` / `event.type` from [`CATEGORIES`] by `eventName` (else `type` =
//!   `["info"]`);
//! - `aws.cloudtrail.flattened.{request_parameters, response_elements, additional_eventdata,
//!   service_event_details, insight_details}`: the objects, when their text is < 32 766 bytes;
//! - `aws.cloudtrail.resources`: `resources` with `ARN` → `arn`, `accountId` → `account_id`,
//!   duplicates dropped;
//! - `related.user`: `userIdentity.userName`, `requestParameters.userName`,
//!   `requestParameters.newUserName`;
//! - `aws.cloudtrail.console_login.additional_eventdata.{mobile_version, login_to, mfa_used}`
//!   for `ConsoleLogin`;
//! - `source.ip` when `sourceIPAddress` is an IP address;
//! - `tls.version_protocol` / `tls.version` from `tlsDetails.tlsVersion` (`TLSv1.2`).
//!
//! Differences from Elastic's pipeline, on purpose: `aws.cloudtrail.request_parameters` (and
//! the other `*_elements`/`*_eventdata` text fields) hold compact JSON where Elastic's painless
//! `toString()` writes Java map syntax; `sharedEventID` is read with CloudTrail's spelling;
//! no GeoIP, user-agent parsing or `event.original` (those need the ingest node).

use super::apply_table;
use super::path::{self, row, Conv, Row};
use serde_json::{json, Map, Value};

pub const ECS_VERSION: &str = "8.11.0";

/// `target ← source`, in the pipeline's order (it matters for `CopyIfUnset`).
pub const FIELDS: &[Row] = &[
    row("@timestamp", "eventTime", Conv::Date),
    row("aws.cloudtrail.event_version", "eventVersion", Conv::Copy),
    row(
        "aws.cloudtrail.user_identity.type",
        "userIdentity.type",
        Conv::Copy,
    ),
    row("user.name", "userIdentity.userName", Conv::Copy),
    row("user.id", "userIdentity.principalId", Conv::Copy),
    row(
        "aws.cloudtrail.user_identity.arn",
        "userIdentity.arn",
        Conv::Copy,
    ),
    row("cloud.account.id", "userIdentity.accountId", Conv::Copy),
    row(
        "aws.cloudtrail.user_identity.access_key_id",
        "userIdentity.accessKeyId",
        Conv::Copy,
    ),
    row(
        "aws.cloudtrail.user_identity.session_context.mfa_authenticated",
        "userIdentity.sessionContext.attributes.mfaAuthenticated",
        Conv::Copy,
    ),
    row(
        "aws.cloudtrail.user_identity.session_context.creation_date",
        "userIdentity.sessionContext.attributes.creationDate",
        Conv::Date,
    ),
    row(
        "aws.cloudtrail.user_identity.session_context.session_issuer.type",
        "userIdentity.sessionContext.sessionIssuer.type",
        Conv::Copy,
    ),
    // Only assumed roles have a session issuer user name; Elastic's rename fails (ignored) when
    // `user.name` is already set, so the identity's own userName wins.
    row(
        "user.name",
        "userIdentity.sessionContext.sessionIssuer.userName",
        Conv::CopyIfUnset,
    ),
    row(
        "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id",
        "userIdentity.sessionContext.sessionIssuer.principalId",
        Conv::Copy,
    ),
    row(
        "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
        "userIdentity.sessionContext.sessionIssuer.arn",
        Conv::Copy,
    ),
    row(
        "aws.cloudtrail.user_identity.session_context.session_issuer.account_id",
        "userIdentity.sessionContext.sessionIssuer.accountId",
        Conv::Copy,
    ),
    row(
        "aws.cloudtrail.user_identity.invoked_by",
        "userIdentity.invokedBy",
        Conv::Copy,
    ),
    row("event.provider", "eventSource", Conv::Copy),
    row("event.action", "eventName", Conv::Copy),
    row("aws.cloudtrail.event_category", "eventCategory", Conv::Copy),
    row("cloud.region", "awsRegion", Conv::Copy),
    row("source.address", "sourceIPAddress", Conv::Copy),
    row("user_agent.original", "userAgent", Conv::Copy),
    row("aws.cloudtrail.error_code", "errorCode", Conv::Copy),
    row("aws.cloudtrail.error_message", "errorMessage", Conv::Copy),
    row(
        "aws.cloudtrail.request_parameters",
        "requestParameters",
        Conv::JsonText,
    ),
    row(
        "aws.cloudtrail.response_elements",
        "responseElements",
        Conv::JsonText,
    ),
    row(
        "aws.cloudtrail.additional_eventdata",
        "additionalEventData",
        Conv::JsonText,
    ),
    row(
        "aws.cloudtrail.service_event_details",
        "serviceEventDetails",
        Conv::JsonText,
    ),
    row("aws.cloudtrail.request_id", "requestID", Conv::Copy),
    row("event.id", "eventID", Conv::Copy),
    row("aws.cloudtrail.event_type", "eventType", Conv::Copy),
    row("aws.cloudtrail.api_version", "apiVersion", Conv::Copy),
    row(
        "aws.cloudtrail.management_event",
        "managementEvent",
        Conv::Copy,
    ),
    row("aws.cloudtrail.read_only", "readOnly", Conv::Copy),
    row(
        "aws.cloudtrail.recipient_account_id",
        "recipientAccountId",
        Conv::Copy,
    ),
    row(
        "aws.cloudtrail.shared_event_id",
        "sharedEventID",
        Conv::Copy,
    ),
    row(
        "aws.cloudtrail.vpc_endpoint_id",
        "vpcEndpointId",
        Conv::Copy,
    ),
    row(
        "user.changes.name",
        "requestParameters.newUserName",
        Conv::Copy,
    ),
    row("group.name", "requestParameters.groupName", Conv::Copy),
    row("user.target.name", "requestParameters.userName", Conv::Copy),
    row("group.id", "responseElements.group.groupId", Conv::Copy),
    row("user.target.id", "responseElements.user.userId", Conv::Copy),
    row("tls.cipher", "tlsDetails.cipherSuite", Conv::Copy),
    row(
        "tls.client.server_name",
        "tlsDetails.clientProvidedHostHeader",
        Conv::Copy,
    ),
];

/// `(source, flattened target)`: objects kept whole under `aws.cloudtrail.flattened` when
/// their JSON text is shorter than Elasticsearch's keyword limit.
pub const FLATTENED: &[(&str, &str)] = &[
    (
        "requestParameters",
        "aws.cloudtrail.flattened.request_parameters",
    ),
    (
        "responseElements",
        "aws.cloudtrail.flattened.response_elements",
    ),
    (
        "additionalEventData",
        "aws.cloudtrail.flattened.additional_eventdata",
    ),
    (
        "serviceEventDetails",
        "aws.cloudtrail.flattened.service_event_details",
    ),
    ("insightDetails", "aws.cloudtrail.flattened.insight_details"),
];

/// `eventName` → (`event.category`, `event.type`), the pipeline's categorisation table.
pub const CATEGORIES: &[(&str, &[&str], &[&str])] = &[
    ("AddUserToGroup", &["iam"], &["group", "change"]),
    ("AssumeRole", &["authentication"], &["info"]),
    ("AttachGroupPolicy", &["iam"], &["group", "change"]),
    ("AttachUserPolicy", &["iam"], &["user", "change"]),
    ("ChangePassword", &["iam"], &["user", "change"]),
    ("ConsoleLogin", &["authentication"], &["info"]),
    ("CreateAccessKey", &["iam"], &["user", "change"]),
    ("CreateBucket", &["file"], &["creation"]),
    ("CreateGroup", &["iam"], &["group", "creation"]),
    ("CreateKeyPair", &["iam"], &["admin", "creation"]),
    ("CreateUser", &["iam"], &["user", "creation"]),
    ("CreateVirtualMFADevice", &["iam"], &["user", "change"]),
    ("DeactivateMFADevice", &["iam"], &["user", "change"]),
    ("DeleteAccessKey", &["iam"], &["user", "change"]),
    ("DeleteBucket", &["file"], &["deletion"]),
    ("DeleteGroup", &["iam"], &["group", "deletion"]),
    ("DeleteGroupPolicy", &["iam"], &["group", "change"]),
    ("DeleteSSHPublicKey", &["iam"], &["user", "change"]),
    ("DeleteUser", &["iam"], &["user", "deletion"]),
    (
        "DeleteUserPermissionsBoundary",
        &["iam"],
        &["user", "change"],
    ),
    ("DeleteUserPolicy", &["iam"], &["user", "change"]),
    ("DeleteVirtualMFADevice", &["iam"], &["user", "change"]),
    ("DetachGroupPolicy", &["iam"], &["group", "change"]),
    ("DetachUserPolicy", &["iam"], &["user", "change"]),
    ("EnableMFADevice", &["iam"], &["user", "change"]),
    ("GetGroup", &["iam"], &["group", "info"]),
    ("GetGroupPolicy", &["iam"], &["group", "info"]),
    ("GetUser", &["iam"], &["user", "info"]),
    ("GetUserPolicy", &["iam"], &["user", "info"]),
    ("ListAttachedGroupPolicies", &["iam"], &["group", "info"]),
    ("ListAttachedUserPolicies", &["iam"], &["user", "info"]),
    ("ListGroupPolicies", &["iam"], &["group", "info"]),
    ("ListGroups", &["iam"], &["group", "info"]),
    ("ListGroupsForUser", &["iam"], &["user", "info"]),
    ("ListUserPolicies", &["iam"], &["user", "info"]),
    ("ListUsers", &["iam"], &["user", "info"]),
    ("ListUserTags", &["iam"], &["user", "info"]),
    ("PutGroupPolicy", &["iam"], &["group", "change"]),
    ("PutUserPermissionsBoundary", &["iam"], &["user", "change"]),
    ("PutUserPolicy", &["iam"], &["user", "change"]),
    ("RemoveUserFromGroup", &["iam"], &["group", "change"]),
    ("SetDefaultPolicyVersion", &["iam"], &["admin", "change"]),
    (
        "SetSecurityTokenServicePreferences",
        &["iam"],
        &["admin", "change"],
    ),
    ("TagUser", &["iam"], &["user", "change"]),
    ("UntagUser", &["iam"], &["user", "change"]),
    ("UpdateAccessKey", &["iam"], &["user", "change"]),
    (
        "UpdateAccountPasswordPolicy",
        &["iam"],
        &["admin", "change"],
    ),
    ("UpdateGroup", &["iam"], &["group", "change"]),
    ("UpdateLoginProfile", &["iam"], &["user", "change"]),
    ("UpdateRole", &["iam"], &["admin", "change"]),
    ("UpdateSSHPublicKey", &["iam"], &["user", "change"]),
    ("UpdateUser", &["iam"], &["user", "change"]),
];

/// Elasticsearch's limit for a keyword value; longer objects are not kept flattened.
const FLATTENED_LIMIT: usize = 32_766;

pub fn to_ecs(rec: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    apply_table(FIELDS, rec, &mut out);
    path::set(&mut out, "ecs.version", json!(ECS_VERSION));
    path::set(&mut out, "cloud.provider", json!("aws"));

    // source.ip only when the address is an IP (service principals are host names).
    if let Some(addr) = path::get_str(rec, "sourceIPAddress") {
        if addr.parse::<std::net::IpAddr>().is_ok() {
            path::set(&mut out, "source.ip", json!(addr));
        }
    }

    for (source, target) in FLATTENED {
        if let Some(v) = path::get(rec, source).and_then(|v| path::prune(v.clone())) {
            if v.is_object() && v.to_string().len() < FLATTENED_LIMIT {
                path::set(&mut out, target, v);
            }
        }
    }

    if let Some(Value::Array(resources)) = path::get(rec, "resources") {
        let mut seen = std::collections::BTreeSet::new();
        let mut list = Vec::new();
        for r in resources {
            let Some(r) = r.as_object() else { continue };
            let mut m = Map::new();
            for (k, v) in r {
                let key = match k.as_str() {
                    "ARN" => "arn",
                    "accountId" => "account_id",
                    other => other,
                };
                if let Some(v) = path::prune(v.clone()) {
                    m.insert(key.to_string(), v);
                }
            }
            let key = Value::Object(m.clone()).to_string();
            if !m.is_empty() && seen.insert(key) {
                list.push(Value::Object(m));
            }
        }
        if !list.is_empty() {
            path::set(&mut out, "aws.cloudtrail.resources", Value::Array(list));
        }
    }

    let mut related = Vec::new();
    for src in [
        "userIdentity.userName",
        "requestParameters.userName",
        "requestParameters.newUserName",
    ] {
        if let Some(u) = path::get_str(rec, src) {
            if !related.iter().any(|x: &Value| x == u) {
                related.push(json!(u));
            }
        }
    }
    if !related.is_empty() {
        path::set(&mut out, "related.user", Value::Array(related));
    }

    let action = path::get_str(rec, "eventName");
    if action == Some("ConsoleLogin") {
        let aed = |k: &str| path::get_str(rec, &format!("additionalEventData.{k}"));
        let base = "aws.cloudtrail.console_login.additional_eventdata";
        if let Some(v) = aed("MobileVersion") {
            path::set(
                &mut out,
                &format!("{base}.mobile_version"),
                json!(v != "No"),
            );
        }
        if let Some(v) = aed("LoginTo") {
            path::set(&mut out, &format!("{base}.login_to"), json!(v));
        }
        if let Some(v) = aed("MFAUsed") {
            path::set(&mut out, &format!("{base}.mfa_used"), json!(v != "No"));
        }
    }

    path::set(&mut out, "event.kind", json!("event"));
    let failed = path::get(rec, "errorCode").is_some() || path::get(rec, "errorMessage").is_some();
    let mut outcome = if failed { "failure" } else { "success" }.to_string();
    if action == Some("ConsoleLogin") {
        if let Some(r) = path::get_str(rec, "responseElements.ConsoleLogin") {
            outcome = r.to_lowercase();
        }
    }
    path::set(&mut out, "event.outcome", json!(outcome));
    match action.and_then(|a| CATEGORIES.iter().find(|(n, _, _)| *n == a)) {
        Some((_, cat, ty)) => {
            path::set(&mut out, "event.category", json!(cat));
            path::set(&mut out, "event.type", json!(ty));
        }
        None => path::set(&mut out, "event.type", json!(["info"])),
    }

    if let Some(v) = path::get_str(rec, "tlsDetails.tlsVersion") {
        if let Some((proto, version)) = v.split_once('v') {
            path::set(
                &mut out,
                "tls.version_protocol",
                json!(proto.to_lowercase()),
            );
            path::set(&mut out, "tls.version", json!(version));
        }
    }
    out
}
