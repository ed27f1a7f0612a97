//! ECS and OCSF mappings, field by field: one test per mapped field (every row of each copy
//! table and every derived field), per-identity-type tests over real-shaped records of every
//! `userIdentity.type`, and a sweep over a generated corpus.

#[path = "fixtures/identities.rs"]
mod fx;

use fx::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use trailhose_siem::format::{ecs, ocsf};

const UPDATE_USER: &str = r#"{"eventVersion":"1.09","userIdentity":{"type":"IAMUser","principalId":"AIDAADMIN","arn":"arn:aws:iam::123456789012:user/admin","accountId":"123456789012","accessKeyId":"AKIAADMIN","userName":"admin"},"eventTime":"2026-11-01T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"UpdateUser","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.1","userAgent":"aws-cli/2","requestParameters":{"userName":"Bob","newUserName":"Robert"},"responseElements":null,"requestID":"R-UU","eventID":"0a1b2c3d-0000-4000-8000-000000000020","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"123456789012","eventCategory":"Management"}"#;

const CREATE_GROUP: &str = r#"{"eventVersion":"1.09","userIdentity":{"type":"IAMUser","principalId":"AIDAADMIN","arn":"arn:aws:iam::123456789012:user/admin","accountId":"123456789012","accessKeyId":"AKIAADMIN","userName":"admin"},"eventTime":"2026-11-01T10:01:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateGroup","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.1","userAgent":"aws-cli/2","requestParameters":{"groupName":"auditors"},"responseElements":{"group":{"path":"/","groupName":"auditors","groupId":"AGPAAUDITORS","arn":"arn:aws:iam::123456789012:group/auditors","createDate":"Nov 1, 2026 10:01:00 AM"}},"requestID":"R-CG","eventID":"0a1b2c3d-0000-4000-8000-000000000021","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"123456789012","eventCategory":"Management"}"#;

const WEB_FEDERATED_ROLE: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROACOGNITO:CognitoIdentityCredentials","arn":"arn:aws:sts::123456789012:assumed-role/Cognito_Auth/CognitoIdentityCredentials","accountId":"123456789012","accessKeyId":"ASIACOGNITO","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROACOGNITO","arn":"arn:aws:iam::123456789012:role/Cognito_Auth","accountId":"123456789012","userName":"Cognito_Auth"},"webIdFederationData":{"federatedProvider":"cognito-identity.amazonaws.com","attributes":{"cognito-identity.amazonaws.com:aud":"us-east-1:pool"}},"attributes":{"creationDate":"2026-11-01T11:00:00Z","mfaAuthenticated":"false"}}},"eventTime":"2026-11-01T11:00:05Z","eventSource":"dynamodb.amazonaws.com","eventName":"GetItem","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.9","userAgent":"aws-sdk-iOS","requestParameters":{"tableName":"t"},"responseElements":null,"requestID":"R-WF","eventID":"0a1b2c3d-0000-4000-8000-000000000022","readOnly":true,"resources":[{"accountId":"123456789012","type":"AWS::DynamoDB::Table","ARN":"arn:aws:dynamodb:us-east-1:123456789012:table/t"}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"123456789012","eventCategory":"Data"}"#;

fn obj(s: &str) -> Map<String, Value> {
    match serde_json::from_str(s) {
        Ok(Value::Object(m)) => m,
        other => panic!("fixture is not an object: {other:?}"),
    }
}

fn ecs_of(s: &str) -> Value {
    Value::Object(ecs::to_ecs(&obj(s)))
}

fn ocsf_of(s: &str) -> Value {
    Value::Object(ocsf::to_ocsf(&obj(s)))
}

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    // Field names may contain dots only as separators here.
    path.split('.').try_fold(v, |cur, p| cur.get(p))
}

/// Generates one test per field and a list of the fields tested.
macro_rules! field_tests {
    ($list:ident, $shape:ident; $( $name:ident : $fixture:ident, $path:literal => $expected:expr ;)*) => {
        const $list: &[&str] = &[$($path),*];
        $(
            #[test]
            fn $name() {
                let doc = $shape($fixture);
                let want: Option<Value> = $expected;
                assert_eq!(at(&doc, $path).cloned(), want, "{} in {}", $path, doc);
            }
        )*
    };
}

field_tests! { ECS_TESTED, ecs_of;
    ecs_timestamp: IAM_USER, "@timestamp" => Some(json!("2026-11-01T09:15:27.000Z"));
    ecs_timestamp_millis: ASSUMED_ROLE, "@timestamp" => Some(json!("2026-11-01T09:20:00.250Z"));
    ecs_event_version: IAM_USER, "aws.cloudtrail.event_version" => Some(json!("1.09"));
    ecs_identity_type: IAM_USER, "aws.cloudtrail.user_identity.type" => Some(json!("IAMUser"));
    ecs_user_name: IAM_USER, "user.name" => Some(json!("Alice"));
    ecs_user_name_from_session_issuer: ASSUMED_ROLE, "user.name" => Some(json!("Deployer"));
    ecs_user_name_from_federation_issuer: FEDERATED_USER, "user.name" => Some(json!("broker"));
    ecs_user_id: IAM_USER, "user.id" => Some(json!("AIDAJ45Q7YFFAREXAMPLE"));
    ecs_identity_arn: IAM_USER, "aws.cloudtrail.user_identity.arn" => Some(json!("arn:aws:iam::123456789012:user/Alice"));
    ecs_cloud_account_is_the_callers: AWS_ACCOUNT, "cloud.account.id" => Some(json!("210987654321"));
    ecs_access_key: IAM_USER, "aws.cloudtrail.user_identity.access_key_id" => Some(json!("ASIAIOSFODNN7EXAMPLE"));
    ecs_empty_access_key_dropped: ROOT, "aws.cloudtrail.user_identity.access_key_id" => None;
    ecs_mfa_authenticated: IAM_USER, "aws.cloudtrail.user_identity.session_context.mfa_authenticated" => Some(json!("true"));
    ecs_session_creation_date: IAM_USER, "aws.cloudtrail.user_identity.session_context.creation_date" => Some(json!("2026-11-01T08:10:00.000Z"));
    ecs_session_issuer_type: ASSUMED_ROLE, "aws.cloudtrail.user_identity.session_context.session_issuer.type" => Some(json!("Role"));
    ecs_session_issuer_principal: ASSUMED_ROLE, "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id" => Some(json!("AROAEXAMPLEROLEID"));
    ecs_session_issuer_arn: ASSUMED_ROLE, "aws.cloudtrail.user_identity.session_context.session_issuer.arn" => Some(json!("arn:aws:iam::123456789012:role/Deployer"));
    ecs_session_issuer_account: ASSUMED_ROLE, "aws.cloudtrail.user_identity.session_context.session_issuer.account_id" => Some(json!("123456789012"));
    ecs_invoked_by: AWS_SERVICE, "aws.cloudtrail.user_identity.invoked_by" => Some(json!("cloudtrail.amazonaws.com"));
    ecs_event_provider: IAM_USER, "event.provider" => Some(json!("iam.amazonaws.com"));
    ecs_event_action: IAM_USER, "event.action" => Some(json!("CreateUser"));
    ecs_event_category_field: IAM_USER, "aws.cloudtrail.event_category" => Some(json!("Management"));
    ecs_cloud_region: ASSUMED_ROLE, "cloud.region" => Some(json!("eu-west-1"));
    ecs_source_address: AWS_SERVICE, "source.address" => Some(json!("cloudtrail.amazonaws.com"));
    ecs_source_ip_v6: ASSUMED_ROLE, "source.ip" => Some(json!("2001:db8::17"));
    ecs_no_source_ip_for_services: AWS_SERVICE, "source.ip" => None;
    ecs_user_agent: IAM_USER, "user_agent.original" => Some(json!("aws-cli/2.13.5 Python/3.11.4"));
    ecs_error_code: ASSUMED_ROLE, "aws.cloudtrail.error_code" => Some(json!("AccessDenied"));
    ecs_error_message: ASSUMED_ROLE, "aws.cloudtrail.error_message" => Some(json!("User is not authorized to perform: s3:PutBucketPolicy"));
    ecs_request_id: IAM_USER, "aws.cloudtrail.request_id" => Some(json!("8a8e5b1d-1f77-4a7c-9b3c-5f1c0e2d7a11"));
    ecs_event_id: IAM_USER, "event.id" => Some(json!("6f6b8a4e-6d1c-4f6a-9a57-0b0e4d2d1c01"));
    ecs_event_type_field: ROOT, "aws.cloudtrail.event_type" => Some(json!("AwsConsoleSignIn"));
    ecs_api_version: AWS_SERVICE, "aws.cloudtrail.api_version" => Some(json!("2014-11-01"));
    ecs_management_event: AWS_ACCOUNT, "aws.cloudtrail.management_event" => Some(json!(false));
    ecs_read_only: AWS_SERVICE, "aws.cloudtrail.read_only" => Some(json!(true));
    ecs_recipient_account: AWS_ACCOUNT, "aws.cloudtrail.recipient_account_id" => Some(json!("123456789012"));
    ecs_shared_event_id: AWS_SERVICE, "aws.cloudtrail.shared_event_id" => Some(json!("bbbb-shared-0004"));
    ecs_vpc_endpoint: ASSUMED_ROLE, "aws.cloudtrail.vpc_endpoint_id" => Some(json!("vpce-0a1b2c3d4e5f"));
    ecs_user_changes_name: UPDATE_USER, "user.changes.name" => Some(json!("Robert"));
    ecs_group_name: CREATE_GROUP, "group.name" => Some(json!("auditors"));
    ecs_user_target_name: IAM_USER, "user.target.name" => Some(json!("Bob"));
    ecs_group_id: CREATE_GROUP, "group.id" => Some(json!("AGPAAUDITORS"));
    ecs_user_target_id: IAM_USER, "user.target.id" => Some(json!("AIDAEXAMPLEBOB"));
    ecs_tls_cipher: IAM_USER, "tls.cipher" => Some(json!("TLS_AES_128_GCM_SHA256"));
    ecs_tls_server_name: IAM_USER, "tls.client.server_name" => Some(json!("iam.amazonaws.com"));
    // Derived fields.
    ecs_version: IAM_USER, "ecs.version" => Some(json!("8.11.0"));
    ecs_cloud_provider: IAM_USER, "cloud.provider" => Some(json!("aws"));
    ecs_event_kind: IAM_USER, "event.kind" => Some(json!("event"));
    ecs_outcome_success: IAM_USER, "event.outcome" => Some(json!("success"));
    ecs_outcome_error_code: ASSUMED_ROLE, "event.outcome" => Some(json!("failure"));
    ecs_outcome_console_login: ROOT, "event.outcome" => Some(json!("failure"));
    ecs_event_category: IAM_USER, "event.category" => Some(json!(["iam"]));
    ecs_event_type: IAM_USER, "event.type" => Some(json!(["user", "creation"]));
    ecs_event_type_default: ROLE, "event.type" => Some(json!(["info"]));
    ecs_no_category_by_default: ROLE, "event.category" => None;
    ecs_related_user: IAM_USER, "related.user" => Some(json!(["Alice", "Bob"]));
    ecs_flattened_request: IAM_USER, "aws.cloudtrail.flattened.request_parameters" => Some(json!({"userName":"Bob","path":"/"}));
    ecs_flattened_response: CREATE_GROUP, "aws.cloudtrail.flattened.response_elements.group.groupId" => Some(json!("AGPAAUDITORS"));
    ecs_flattened_additional: ASSUMED_ROLE, "aws.cloudtrail.flattened.additional_eventdata" => Some(json!({"SignatureVersion":"SigV4","bytesTransferredIn":0}));
    ecs_flattened_service_details: SERVICE_EVENT, "aws.cloudtrail.flattened.service_event_details" => Some(json!({"keyRotated":true,"keyId":"k-1"}));
    ecs_resources_deduplicated: ASSUMED_ROLE, "aws.cloudtrail.resources" => Some(json!([{"arn":"arn:aws:s3:::acme-logs","account_id":"123456789012","type":"AWS::S3::Bucket"}]));
    ecs_console_mobile: ROOT, "aws.cloudtrail.console_login.additional_eventdata.mobile_version" => Some(json!(false));
    ecs_console_login_to: ROOT, "aws.cloudtrail.console_login.additional_eventdata.login_to" => Some(json!("https://console.aws.amazon.com/console/home"));
    ecs_console_mfa_used: ROOT, "aws.cloudtrail.console_login.additional_eventdata.mfa_used" => Some(json!(false));
    ecs_tls_protocol: IAM_USER, "tls.version_protocol" => Some(json!("tls"));
    ecs_tls_version: IAM_USER, "tls.version" => Some(json!("1.3"));
}

/// The `*_elements`/`*_eventdata` text fields hold compact JSON of the object.
#[test]
fn ecs_json_text_fields() {
    let cases = [
        (
            IAM_USER,
            "aws.cloudtrail.request_parameters",
            json!({"userName":"Bob","path":"/"}),
        ),
        (
            IAM_USER,
            "aws.cloudtrail.response_elements",
            obj(IAM_USER)["responseElements"].clone(),
        ),
        (
            ASSUMED_ROLE,
            "aws.cloudtrail.additional_eventdata",
            json!({"SignatureVersion":"SigV4","bytesTransferredIn":0}),
        ),
        (
            SERVICE_EVENT,
            "aws.cloudtrail.service_event_details",
            json!({"keyRotated":true,"keyId":"k-1"}),
        ),
        // Empty members are dropped first, as the Elastic pipeline does.
        (
            ASSUMED_ROLE,
            "aws.cloudtrail.request_parameters",
            json!({"bucketName":"acme-logs","Host":"acme-logs.s3.eu-west-1.amazonaws.com"}),
        ),
    ];
    for (fixture, path, want) in cases {
        let doc = ecs_of(fixture);
        let text = at(&doc, path)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{path} in {doc}"));
        let got: Value = serde_json::from_str(text).expect("JSON text");
        assert_eq!(got, want, "{path}");
    }
    assert_eq!(
        at(&ecs_of(ROOT), "aws.cloudtrail.request_parameters"),
        None,
        "null is dropped"
    );
}

const ECS_TEXT_TESTED: &[&str] = &[
    "aws.cloudtrail.request_parameters",
    "aws.cloudtrail.response_elements",
    "aws.cloudtrail.additional_eventdata",
    "aws.cloudtrail.service_event_details",
];

#[test]
fn every_ecs_table_row_has_a_test() {
    for row in ecs::FIELDS {
        assert!(
            ECS_TESTED.contains(&row.target) || ECS_TEXT_TESTED.contains(&row.target),
            "no test for ECS field {} ← {}",
            row.target,
            row.source
        );
    }
}

field_tests! { OCSF_TESTED, ocsf_of;
    ocsf_time: IAM_USER, "time" => Some(json!(1_793_524_527_000i64));
    ocsf_time_dt: IAM_USER, "time_dt" => Some(json!("2026-11-01T09:15:27.000Z"));
    ocsf_metadata_uid: IAM_USER, "metadata.uid" => Some(json!("6f6b8a4e-6d1c-4f6a-9a57-0b0e4d2d1c01"));
    ocsf_product_version: IAM_USER, "metadata.product.version" => Some(json!("1.09"));
    ocsf_event_code: ROOT, "metadata.event_code" => Some(json!("AwsConsoleSignIn"));
    ocsf_feature_name: AWS_ACCOUNT, "metadata.product.feature.name" => Some(json!("Data"));
    ocsf_user_type: ASSUMED_ROLE, "actor.user.type" => Some(json!("AssumedRole"));
    ocsf_user_uid: ASSUMED_ROLE, "actor.user.uid" => Some(json!("arn:aws:sts::123456789012:assumed-role/Deployer/deploy-session"));
    ocsf_user_uid_alt: ASSUMED_ROLE, "actor.user.uid_alt" => Some(json!("AROAEXAMPLEROLEID:deploy-session"));
    ocsf_user_uid_alt_on_behalf_of: IDENTITY_CENTER_USER, "actor.user.uid_alt" => Some(json!("94482488-3041-7026-18f3-be45837cd0e4"));
    ocsf_user_name: IAM_USER, "actor.user.name" => Some(json!("Alice"));
    ocsf_user_name_from_additional_data: IDENTITY_CENTER_USER, "actor.user.name" => Some(json!("erin"));
    ocsf_credential_uid: IAM_USER, "actor.user.credential_uid" => Some(json!("ASIAIOSFODNN7EXAMPLE"));
    ocsf_credential_uid_from_credential_id: IDENTITY_CENTER_USER, "actor.user.credential_uid" => Some(json!("EXAMPLEVHULjJdTUdPJfofVa1sufHDoj7aYcOYcxFVllWR_Whr1fEXAMPLE"));
    ocsf_user_account: AWS_ACCOUNT, "actor.user.account.uid" => Some(json!("210987654321"));
    ocsf_session_created_dt: IAM_USER, "actor.session.created_time_dt" => Some(json!("2026-11-01T08:10:00.000Z"));
    ocsf_session_created: IAM_USER, "actor.session.created_time" => Some(json!(1_793_520_600_000i64));
    ocsf_session_mfa: IAM_USER, "actor.session.is_mfa" => Some(json!(true));
    ocsf_session_no_mfa: ASSUMED_ROLE, "actor.session.is_mfa" => Some(json!(false));
    ocsf_session_issuer: ASSUMED_ROLE, "actor.session.issuer" => Some(json!("arn:aws:iam::123456789012:role/Deployer"));
    ocsf_invoked_by: AWS_SERVICE, "actor.invoked_by" => Some(json!("cloudtrail.amazonaws.com"));
    ocsf_idp_from_web_federation: WEB_FEDERATED_ROLE, "actor.idp.name" => Some(json!("cognito-identity.amazonaws.com"));
    ocsf_idp_from_identity_provider: WEB_IDENTITY_USER, "actor.idp.name" => Some(json!("arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"));
    ocsf_idp_uid: IDENTITY_CENTER_USER, "actor.idp.uid" => Some(json!("arn:aws:identitystore::123456789012:identitystore/d-9067230000"));
    ocsf_api_operation: IAM_USER, "api.operation" => Some(json!("CreateUser"));
    ocsf_api_service: IAM_USER, "api.service.name" => Some(json!("iam.amazonaws.com"));
    ocsf_api_version: AWS_SERVICE, "api.version" => Some(json!("2014-11-01"));
    ocsf_request_uid: IAM_USER, "api.request.uid" => Some(json!("8a8e5b1d-1f77-4a7c-9b3c-5f1c0e2d7a11"));
    ocsf_request_data: IAM_USER, "api.request.data" => Some(json!({"userName":"Bob","path":"/"}));
    ocsf_response_data: CREATE_GROUP, "api.response.data.group.groupId" => Some(json!("AGPAAUDITORS"));
    ocsf_response_error: ASSUMED_ROLE, "api.response.error" => Some(json!("AccessDenied"));
    ocsf_response_message: ASSUMED_ROLE, "api.response.message" => Some(json!("User is not authorized to perform: s3:PutBucketPolicy"));
    ocsf_cloud_region: ASSUMED_ROLE, "cloud.region" => Some(json!("eu-west-1"));
    ocsf_cloud_account: AWS_ACCOUNT, "cloud.account.uid" => Some(json!("123456789012"));
    ocsf_user_agent: IAM_USER, "http_request.user_agent" => Some(json!("aws-cli/2.13.5 Python/3.11.4"));
    ocsf_src_endpoint_uid: ASSUMED_ROLE, "src_endpoint.uid" => Some(json!("vpce-0a1b2c3d4e5f"));
    // Derived fields.
    ocsf_class_uid: IAM_USER, "class_uid" => Some(json!(6003));
    ocsf_class_name: IAM_USER, "class_name" => Some(json!("API Activity"));
    ocsf_category_uid: IAM_USER, "category_uid" => Some(json!(6));
    ocsf_category_name: IAM_USER, "category_name" => Some(json!("Application Activity"));
    ocsf_activity_create: IAM_USER, "activity_id" => Some(json!(1));
    ocsf_activity_read: AWS_ACCOUNT, "activity_id" => Some(json!(2));
    ocsf_activity_update: ASSUMED_ROLE, "activity_id" => Some(json!(3));
    ocsf_activity_delete: DIRECTORY, "activity_id" => Some(json!(4));
    ocsf_activity_other: ROOT, "activity_id" => Some(json!(99));
    ocsf_activity_name: AWS_ACCOUNT, "activity_name" => Some(json!("Read"));
    ocsf_type_uid: DIRECTORY, "type_uid" => Some(json!(600304));
    ocsf_type_name: DIRECTORY, "type_name" => Some(json!("API Activity: Delete"));
    ocsf_severity_id: IAM_USER, "severity_id" => Some(json!(1));
    ocsf_severity: IAM_USER, "severity" => Some(json!("Informational"));
    ocsf_status_success: IAM_USER, "status" => Some(json!("Success"));
    ocsf_status_id_success: IAM_USER, "status_id" => Some(json!(1));
    ocsf_status_error_code: ASSUMED_ROLE, "status" => Some(json!("Failure"));
    ocsf_status_console_failure: ROOT, "status_id" => Some(json!(2));
    ocsf_src_ip: IAM_USER, "src_endpoint.ip" => Some(json!("198.51.100.23"));
    ocsf_src_domain: AWS_SERVICE, "src_endpoint.domain" => Some(json!("cloudtrail.amazonaws.com"));
    ocsf_no_src_ip_for_services: AWS_SERVICE, "src_endpoint.ip" => None;
    ocsf_resources: AWS_ACCOUNT, "resources" => Some(json!([
        {"uid":"arn:aws:s3:::shared-data/reports/2026.csv","type":"AWS::S3::Object"},
        {"uid":"arn:aws:s3:::shared-data","owner":{"account":{"uid":"123456789012"}},"type":"AWS::S3::Bucket"}
    ]));
    ocsf_metadata_version: IAM_USER, "metadata.version" => Some(json!("1.1.0"));
    ocsf_product_name: IAM_USER, "metadata.product.name" => Some(json!("CloudTrail"));
    ocsf_vendor_name: IAM_USER, "metadata.product.vendor_name" => Some(json!("AWS"));
    ocsf_profiles: IAM_USER, "metadata.profiles" => Some(json!(["cloud", "datetime"]));
    ocsf_cloud_provider: IAM_USER, "cloud.provider" => Some(json!("AWS"));
    ocsf_unmapped: IAM_USER, "unmapped" => Some(json!({
        "readOnly": false,
        "managementEvent": true,
        "tlsDetails": {"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"iam.amazonaws.com"}
    }));
    ocsf_unmapped_keeps_additional_data: AWS_ACCOUNT, "unmapped.additionalEventData" => Some(json!({"bytesTransferredOut":1024}));
}

#[test]
fn every_ocsf_table_row_has_a_test() {
    for row in ocsf::FIELDS {
        let tested = OCSF_TESTED
            .iter()
            .any(|t| *t == row.target || t.starts_with(&format!("{}.", row.target)));
        assert!(
            tested,
            "no test for OCSF field {} ← {}",
            row.target, row.source
        );
    }
}

/// What each identity type must give, in both shapes.
struct Expect {
    fixture: &'static str,
    ecs_user_name: Option<&'static str>,
    ecs_user_id: Option<&'static str>,
    ecs_account: Option<&'static str>,
    ocsf_uid: Option<&'static str>,
    ocsf_uid_alt: Option<&'static str>,
    ocsf_name: Option<&'static str>,
    ocsf_account: Option<&'static str>,
    ocsf_idp: Option<&'static str>,
}

const EXPECT: &[Expect] = &[
    Expect { fixture: IAM_USER, ecs_user_name: Some("Alice"), ecs_user_id: Some("AIDAJ45Q7YFFAREXAMPLE"), ecs_account: Some("123456789012"), ocsf_uid: Some("arn:aws:iam::123456789012:user/Alice"), ocsf_uid_alt: Some("AIDAJ45Q7YFFAREXAMPLE"), ocsf_name: Some("Alice"), ocsf_account: Some("123456789012"), ocsf_idp: None },
    Expect { fixture: ASSUMED_ROLE, ecs_user_name: Some("Deployer"), ecs_user_id: Some("AROAEXAMPLEROLEID:deploy-session"), ecs_account: Some("123456789012"), ocsf_uid: Some("arn:aws:sts::123456789012:assumed-role/Deployer/deploy-session"), ocsf_uid_alt: Some("AROAEXAMPLEROLEID:deploy-session"), ocsf_name: None, ocsf_account: Some("123456789012"), ocsf_idp: None },
    Expect { fixture: ROOT, ecs_user_name: None, ecs_user_id: Some("123456789012"), ecs_account: Some("123456789012"), ocsf_uid: Some("arn:aws:iam::123456789012:root"), ocsf_uid_alt: Some("123456789012"), ocsf_name: None, ocsf_account: Some("123456789012"), ocsf_idp: None },
    Expect { fixture: AWS_SERVICE, ecs_user_name: None, ecs_user_id: None, ecs_account: None, ocsf_uid: None, ocsf_uid_alt: None, ocsf_name: None, ocsf_account: None, ocsf_idp: None },
    Expect { fixture: FEDERATED_USER, ecs_user_name: Some("broker"), ecs_user_id: Some("123456789012:carol"), ecs_account: Some("123456789012"), ocsf_uid: Some("arn:aws:sts::123456789012:federated-user/carol"), ocsf_uid_alt: Some("123456789012:carol"), ocsf_name: None, ocsf_account: Some("123456789012"), ocsf_idp: None },
    Expect { fixture: SAML_USER, ecs_user_name: Some("dave@example.com"), ecs_user_id: Some("SJ6ydQAX4UA9lS5OXK6GiCq5gRE=:dave@example.com"), ecs_account: None, ocsf_uid: None, ocsf_uid_alt: Some("SJ6ydQAX4UA9lS5OXK6GiCq5gRE=:dave@example.com"), ocsf_name: Some("dave@example.com"), ocsf_account: None, ocsf_idp: Some("SJ6ydQAX4UA9lS5OXK6GiCq5gRE=") },
    Expect { fixture: WEB_IDENTITY_USER, ecs_user_name: Some("repo:acme/infra:ref:refs/heads/main"), ecs_user_id: Some("arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com:sts.amazonaws.com:repo:acme/infra:ref:refs/heads/main"), ecs_account: None, ocsf_uid: None, ocsf_uid_alt: Some("arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com:sts.amazonaws.com:repo:acme/infra:ref:refs/heads/main"), ocsf_name: Some("repo:acme/infra:ref:refs/heads/main"), ocsf_account: None, ocsf_idp: Some("arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com") },
    Expect { fixture: IDENTITY_CENTER_USER, ecs_user_name: None, ecs_user_id: None, ecs_account: Some("123456789012"), ocsf_uid: None, ocsf_uid_alt: Some("94482488-3041-7026-18f3-be45837cd0e4"), ocsf_name: Some("erin"), ocsf_account: Some("123456789012"), ocsf_idp: None },
    Expect { fixture: AWS_ACCOUNT, ecs_user_name: None, ecs_user_id: Some("AIDAOTHERACCOUNTEX"), ecs_account: Some("210987654321"), ocsf_uid: None, ocsf_uid_alt: Some("AIDAOTHERACCOUNTEX"), ocsf_name: None, ocsf_account: Some("210987654321"), ocsf_idp: None },
    Expect { fixture: UNKNOWN, ecs_user_name: Some("frank"), ecs_user_id: Some("c3b5e8a2-0000-4000-8000-0000000000aa"), ecs_account: Some("123456789012"), ocsf_uid: None, ocsf_uid_alt: Some("c3b5e8a2-0000-4000-8000-0000000000aa"), ocsf_name: Some("frank"), ocsf_account: Some("123456789012"), ocsf_idp: None },
    Expect { fixture: ROLE, ecs_user_name: Some("Automation"), ecs_user_id: Some("AROAROLEONLYEXAMPL"), ecs_account: Some("123456789012"), ocsf_uid: Some("arn:aws:iam::123456789012:role/Automation"), ocsf_uid_alt: Some("AROAROLEONLYEXAMPL"), ocsf_name: Some("Automation"), ocsf_account: Some("123456789012"), ocsf_idp: None },
    Expect { fixture: DIRECTORY, ecs_user_name: Some("grace"), ecs_user_id: Some("d-9067123456:0123456789abcdef0123456789abcdef"), ecs_account: Some("123456789012"), ocsf_uid: None, ocsf_uid_alt: Some("d-9067123456:0123456789abcdef0123456789abcdef"), ocsf_name: Some("grace"), ocsf_account: Some("123456789012"), ocsf_idp: None },
    Expect { fixture: SERVICE_EVENT, ecs_user_name: None, ecs_user_id: None, ecs_account: Some("123456789012"), ocsf_uid: None, ocsf_uid_alt: None, ocsf_name: None, ocsf_account: Some("123456789012"), ocsf_idp: None },
];

#[test]
fn every_identity_type_maps_in_both_shapes() {
    assert_eq!(EXPECT.len(), ALL.len(), "an expectation per fixture");
    for (e, (ty, fixture)) in EXPECT.iter().zip(ALL) {
        assert_eq!(e.fixture, *fixture, "same order as fixtures::ALL");
        let rec = obj(fixture);
        let ecs = ecs_of(fixture);
        let ocsf = ocsf_of(fixture);
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let want = |o: Option<&str>| o.map(str::to_string);
        let ctx = format!("{ty}: ecs {ecs}\nocsf {ocsf}");
        assert_eq!(s(at(&ecs, "user.name")), want(e.ecs_user_name), "{ctx}");
        assert_eq!(s(at(&ecs, "user.id")), want(e.ecs_user_id), "{ctx}");
        assert_eq!(
            s(at(&ecs, "cloud.account.id")),
            want(e.ecs_account),
            "{ctx}"
        );
        assert_eq!(s(at(&ocsf, "actor.user.uid")), want(e.ocsf_uid), "{ctx}");
        assert_eq!(
            s(at(&ocsf, "actor.user.uid_alt")),
            want(e.ocsf_uid_alt),
            "{ctx}"
        );
        assert_eq!(s(at(&ocsf, "actor.user.name")), want(e.ocsf_name), "{ctx}");
        assert_eq!(
            s(at(&ocsf, "actor.user.account.uid")),
            want(e.ocsf_account),
            "{ctx}"
        );
        assert_eq!(s(at(&ocsf, "actor.idp.name")), want(e.ocsf_idp), "{ctx}");
        // The identity type is carried as-is in both shapes (a service event has none).
        let ty_in = rec["userIdentity"]["type"].as_str();
        assert_eq!(
            at(&ecs, "aws.cloudtrail.user_identity.type").and_then(Value::as_str),
            ty_in,
            "{ctx}"
        );
        assert_eq!(
            at(&ocsf, "actor.user.type").and_then(Value::as_str),
            ty_in,
            "{ctx}"
        );
        // Common fields hold for every record.
        assert_eq!(at(&ecs, "event.id"), rec.get("eventID"), "{ctx}");
        assert_eq!(at(&ocsf, "metadata.uid"), rec.get("eventID"), "{ctx}");
        assert_eq!(at(&ocsf, "api.operation"), rec.get("eventName"), "{ctx}");
    }
}

#[test]
fn generated_corpus_maps_consistently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = trailhose_gen::GenOptions {
        events: 4000,
        seed: 5,
        gzip_level: 1,
        ..Default::default()
    };
    trailhose_gen::generate(tmp.path(), &opts).expect("generate");
    let mut types = BTreeSet::new();
    let mut n = 0;
    for f in trailhose_pipeline::dir_source::list_files(tmp.path()).expect("list") {
        let file = std::fs::File::open(&f).expect("open");
        let (_, r) = trailhose_core::read_records(
            file,
            &trailhose_core::Limits::default(),
            trailhose_core::FieldMode::ValidateOnly,
            |rec| {
                n += 1;
                let text = std::str::from_utf8(rec.raw.bytes).expect("utf-8");
                let m = obj(text);
                let e = Value::Object(ecs::to_ecs(&m));
                let o = Value::Object(ocsf::to_ocsf(&m));
                let id = m.get("eventID");
                assert!(id.is_some());
                assert_eq!(at(&e, "event.id"), id);
                assert_eq!(at(&o, "metadata.uid"), id);
                let ms =
                    trailhose_core::timefmt::parse_rfc3339_ms(m["eventTime"].as_str().expect("t"));
                assert_eq!(at(&o, "time").and_then(Value::as_i64), ms);
                let ts = at(&e, "@timestamp")
                    .and_then(Value::as_str)
                    .expect("@timestamp");
                assert_eq!(trailhose_core::timefmt::parse_rfc3339_ms(ts), ms);
                let outcome = at(&e, "event.outcome")
                    .and_then(Value::as_str)
                    .expect("outcome");
                assert!(outcome == "success" || outcome == "failure", "{outcome}");
                let activity = at(&o, "activity_id")
                    .and_then(Value::as_u64)
                    .expect("activity");
                assert_eq!(
                    at(&o, "type_uid").and_then(Value::as_u64),
                    Some(600_300 + activity)
                );
                let ty = m["userIdentity"]["type"].as_str();
                assert_eq!(
                    at(&e, "aws.cloudtrail.user_identity.type").and_then(Value::as_str),
                    ty
                );
                assert_eq!(at(&o, "actor.user.type").and_then(Value::as_str), ty);
                if let Some(t) = ty {
                    types.insert(t.to_string());
                }
                // Nothing the table reads is also left in `unmapped`.
                if let Some(Value::Object(un)) = at(&o, "unmapped") {
                    for k in un.keys() {
                        assert!(!ocsf::is_mapped(k), "{k} is mapped and unmapped");
                    }
                    for k in m.keys() {
                        let kept = ocsf::is_mapped(k)
                            || un.contains_key(k)
                            || trailhose_siem::format::path::prune(m[k].clone()).is_none();
                        assert!(kept, "{k} is neither mapped nor kept in unmapped");
                    }
                }
                // Both documents are plain JSON objects that serialise.
                assert!(serde_json::to_vec(&e).is_ok() && serde_json::to_vec(&o).is_ok());
            },
        );
        r.expect("valid corpus");
    }
    assert_eq!(n, 4000);
    for t in [
        "IAMUser",
        "AssumedRole",
        "Root",
        "AWSService",
        "FederatedUser",
        "SAMLUser",
        "WebIdentityUser",
        "IdentityCenterUser",
        "AWSAccount",
        "Unknown",
    ] {
        assert!(types.contains(t), "the corpus has {t}: {types:?}");
    }
}
