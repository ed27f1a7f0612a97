//! The event catalogue: which API calls exist, how often each occurs, and
//! the fixed pools of names records draw from.
//!
//! Weights are relative frequencies tuned to look like a busy production
//! organisation: reads and data-plane calls dominate, while the rare
//! security-sensitive writes (StopLogging, ScheduleKeyDeletion, ...) that
//! detection rules look for show up only a handful of times per thousand.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ev {
    // EC2
    Ec2DescribeInstances,
    Ec2DescribeSecurityGroups,
    Ec2DescribeVpcs,
    Ec2DescribeRegions,
    Ec2DescribeVolumes,
    Ec2RunInstances,
    Ec2TerminateInstances,
    Ec2StopInstances,
    Ec2CreateTags,
    Ec2CreateSecurityGroup,
    Ec2AuthorizeSecurityGroupIngress,
    Ec2CreateNetworkAclEntry,
    Ec2CreateRoute,
    Ec2CreateVpc,
    Ec2SharedSnapshotVolumeCreated,
    // S3
    S3GetObject,
    S3PutObject,
    S3HeadObject,
    S3DeleteObject,
    S3ListObjects,
    S3ListBuckets,
    S3GetBucketAcl,
    S3GetBucketPolicy,
    S3PutBucketPolicy,
    S3CreateBucket,
    S3PutBucketPublicAccessBlock,
    // IAM
    IamGetUser,
    IamListRoles,
    IamGetRole,
    IamListAttachedRolePolicies,
    IamCreateUser,
    IamCreateAccessKey,
    IamAttachRolePolicy,
    IamPutUserPolicy,
    IamPutRolePolicy,
    IamCreateRole,
    // STS
    StsGetCallerIdentity,
    StsAssumeRole,
    StsAssumeRoleWithSaml,
    StsAssumeRoleWithWebIdentity,
    StsGetSessionToken,
    // KMS
    KmsDecrypt,
    KmsEncrypt,
    KmsGenerateDataKey,
    KmsDescribeKey,
    KmsScheduleKeyDeletion,
    KmsDisableKey,
    KmsCreateKey,
    KmsRotateKey,
    KmsDeleteKey,
    // CloudTrail
    CtDescribeTrails,
    CtLookupEvents,
    CtGetTrailStatus,
    CtStopLogging,
    CtStartLogging,
    CtDeleteTrail,
    CtUpdateTrail,
    // Sign-in
    ConsoleLogin,
    // Lambda
    LambdaInvoke,
    LambdaListFunctions,
    LambdaGetFunction,
    LambdaUpdateFunctionCode,
    // DynamoDB
    DdbGetItem,
    DdbPutItem,
    DdbQuery,
    DdbDescribeTable,
    // Organizations
    OrgListAccounts,
    OrgDescribeOrganization,
    // Config
    ConfigDescribeConfigurationRecorders,
    ConfigStopConfigurationRecorder,
    // Others
    GuardDutyDeleteDetector,
    LogsDescribeLogGroups,
    LogsCreateLogStream,
    LogsPutRetentionPolicy,
    CwDescribeAlarms,
    RdsDescribeDbInstances,
    EcrGetAuthorizationToken,
    SecretsGetSecretValue,
    SsmGetParameter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    Management,
    Data,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    ApiCall,
    ServiceEvent,
    ConsoleSignIn,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::ApiCall => "AwsApiCall",
            EventType::ServiceEvent => "AwsServiceEvent",
            EventType::ConsoleSignIn => "AwsConsoleSignIn",
        }
    }
}

pub(crate) struct Spec {
    pub ev: Ev,
    pub source: &'static str,
    pub name: &'static str,
    pub read_only: bool,
    pub category: Category,
    pub event_type: EventType,
    /// Zero means the event is only ever chosen explicitly (forced by an
    /// identity type or by the large-record path), never by weighted draw.
    pub weight: u32,
    pub version: &'static str,
}

impl Spec {
    /// IAM and Organizations are global services whose events CloudTrail
    /// delivers only in us-east-1; emitting them elsewhere would be a tell.
    pub(crate) fn is_global(&self) -> bool {
        matches!(
            self.source,
            "iam.amazonaws.com" | "organizations.amazonaws.com"
        )
    }

    /// IAM action prefix, e.g. `ec2` for `ec2.amazonaws.com`.
    pub(crate) fn service_prefix(&self) -> &'static str {
        match self.source.split_once('.') {
            Some((p, _)) => p,
            None => self.source,
        }
    }
}

const VERSIONS: [&str; 4] = ["1.08", "1.09", "1.10", "1.11"];

/// Real trails show one eventVersion per service generation rather than a
/// random mix, so the version is a fixed function of the source.
const fn version_for(source: &str) -> &'static str {
    VERSIONS[source.len() % VERSIONS.len()]
}

const fn api(ev: Ev, source: &'static str, name: &'static str, read_only: bool, w: u32) -> Spec {
    Spec {
        ev,
        source,
        name,
        read_only,
        category: Category::Management,
        event_type: EventType::ApiCall,
        weight: w,
        version: version_for(source),
    }
}

const fn data(ev: Ev, source: &'static str, name: &'static str, read_only: bool, w: u32) -> Spec {
    Spec {
        category: Category::Data,
        ..api(ev, source, name, read_only, w)
    }
}

const fn svc(ev: Ev, source: &'static str, name: &'static str) -> Spec {
    Spec {
        event_type: EventType::ServiceEvent,
        ..api(ev, source, name, false, 0)
    }
}

const EC2: &str = "ec2.amazonaws.com";
const S3: &str = "s3.amazonaws.com";
const IAM: &str = "iam.amazonaws.com";
const STS: &str = "sts.amazonaws.com";
const KMS: &str = "kms.amazonaws.com";
const CT: &str = "cloudtrail.amazonaws.com";
const LAMBDA: &str = "lambda.amazonaws.com";
const DDB: &str = "dynamodb.amazonaws.com";
const ORG: &str = "organizations.amazonaws.com";
const CONFIG: &str = "config.amazonaws.com";
const LOGS: &str = "logs.amazonaws.com";

use Ev::*;

pub(crate) static EVENTS: &[Spec] = &[
    api(Ec2DescribeInstances, EC2, "DescribeInstances", true, 60),
    api(
        Ec2DescribeSecurityGroups,
        EC2,
        "DescribeSecurityGroups",
        true,
        25,
    ),
    api(Ec2DescribeVpcs, EC2, "DescribeVpcs", true, 15),
    api(Ec2DescribeRegions, EC2, "DescribeRegions", true, 10),
    api(Ec2DescribeVolumes, EC2, "DescribeVolumes", true, 15),
    api(Ec2RunInstances, EC2, "RunInstances", false, 4),
    api(Ec2TerminateInstances, EC2, "TerminateInstances", false, 3),
    api(Ec2StopInstances, EC2, "StopInstances", false, 2),
    api(Ec2CreateTags, EC2, "CreateTags", false, 6),
    api(Ec2CreateSecurityGroup, EC2, "CreateSecurityGroup", false, 2),
    api(
        Ec2AuthorizeSecurityGroupIngress,
        EC2,
        "AuthorizeSecurityGroupIngress",
        false,
        2,
    ),
    api(
        Ec2CreateNetworkAclEntry,
        EC2,
        "CreateNetworkAclEntry",
        false,
        1,
    ),
    api(Ec2CreateRoute, EC2, "CreateRoute", false, 1),
    api(Ec2CreateVpc, EC2, "CreateVpc", false, 1),
    svc(
        Ec2SharedSnapshotVolumeCreated,
        EC2,
        "SharedSnapshotVolumeCreated",
    ),
    data(S3GetObject, S3, "GetObject", true, 120),
    data(S3PutObject, S3, "PutObject", false, 50),
    data(S3HeadObject, S3, "HeadObject", true, 30),
    data(S3DeleteObject, S3, "DeleteObject", false, 8),
    data(S3ListObjects, S3, "ListObjects", true, 25),
    api(S3ListBuckets, S3, "ListBuckets", true, 10),
    api(S3GetBucketAcl, S3, "GetBucketAcl", true, 15),
    api(S3GetBucketPolicy, S3, "GetBucketPolicy", true, 8),
    api(S3PutBucketPolicy, S3, "PutBucketPolicy", false, 1),
    api(S3CreateBucket, S3, "CreateBucket", false, 1),
    api(
        S3PutBucketPublicAccessBlock,
        S3,
        "PutBucketPublicAccessBlock",
        false,
        1,
    ),
    api(IamGetUser, IAM, "GetUser", true, 8),
    api(IamListRoles, IAM, "ListRoles", true, 10),
    api(IamGetRole, IAM, "GetRole", true, 10),
    api(
        IamListAttachedRolePolicies,
        IAM,
        "ListAttachedRolePolicies",
        true,
        8,
    ),
    api(IamCreateUser, IAM, "CreateUser", false, 1),
    api(IamCreateAccessKey, IAM, "CreateAccessKey", false, 1),
    api(IamAttachRolePolicy, IAM, "AttachRolePolicy", false, 1),
    api(IamPutUserPolicy, IAM, "PutUserPolicy", false, 1),
    api(IamPutRolePolicy, IAM, "PutRolePolicy", false, 1),
    api(IamCreateRole, IAM, "CreateRole", false, 1),
    api(StsGetCallerIdentity, STS, "GetCallerIdentity", true, 25),
    api(StsAssumeRole, STS, "AssumeRole", true, 40),
    api(StsAssumeRoleWithSaml, STS, "AssumeRoleWithSAML", true, 0),
    api(
        StsAssumeRoleWithWebIdentity,
        STS,
        "AssumeRoleWithWebIdentity",
        true,
        0,
    ),
    api(StsGetSessionToken, STS, "GetSessionToken", true, 3),
    api(KmsDecrypt, KMS, "Decrypt", true, 50),
    api(KmsEncrypt, KMS, "Encrypt", true, 10),
    api(KmsGenerateDataKey, KMS, "GenerateDataKey", true, 25),
    api(KmsDescribeKey, KMS, "DescribeKey", true, 8),
    api(KmsScheduleKeyDeletion, KMS, "ScheduleKeyDeletion", false, 1),
    api(KmsDisableKey, KMS, "DisableKey", false, 1),
    api(KmsCreateKey, KMS, "CreateKey", false, 1),
    svc(KmsRotateKey, KMS, "RotateKey"),
    svc(KmsDeleteKey, KMS, "DeleteKey"),
    api(CtDescribeTrails, CT, "DescribeTrails", true, 5),
    api(CtLookupEvents, CT, "LookupEvents", true, 5),
    api(CtGetTrailStatus, CT, "GetTrailStatus", true, 5),
    api(CtStopLogging, CT, "StopLogging", false, 1),
    api(CtStartLogging, CT, "StartLogging", false, 1),
    api(CtDeleteTrail, CT, "DeleteTrail", false, 1),
    api(CtUpdateTrail, CT, "UpdateTrail", false, 1),
    Spec {
        event_type: EventType::ConsoleSignIn,
        ..api(
            ConsoleLogin,
            "signin.amazonaws.com",
            "ConsoleLogin",
            false,
            6,
        )
    },
    data(LambdaInvoke, LAMBDA, "Invoke", false, 25),
    api(
        LambdaListFunctions,
        LAMBDA,
        "ListFunctions20150331",
        true,
        8,
    ),
    api(LambdaGetFunction, LAMBDA, "GetFunction20150331v2", true, 6),
    api(
        LambdaUpdateFunctionCode,
        LAMBDA,
        "UpdateFunctionCode20150331v2",
        false,
        2,
    ),
    data(DdbGetItem, DDB, "GetItem", true, 30),
    data(DdbPutItem, DDB, "PutItem", false, 12),
    data(DdbQuery, DDB, "Query", true, 15),
    api(DdbDescribeTable, DDB, "DescribeTable", true, 8),
    api(OrgListAccounts, ORG, "ListAccounts", true, 3),
    api(
        OrgDescribeOrganization,
        ORG,
        "DescribeOrganization",
        true,
        3,
    ),
    api(
        ConfigDescribeConfigurationRecorders,
        CONFIG,
        "DescribeConfigurationRecorders",
        true,
        4,
    ),
    api(
        ConfigStopConfigurationRecorder,
        CONFIG,
        "StopConfigurationRecorder",
        false,
        1,
    ),
    api(
        GuardDutyDeleteDetector,
        "guardduty.amazonaws.com",
        "DeleteDetector",
        false,
        1,
    ),
    api(LogsDescribeLogGroups, LOGS, "DescribeLogGroups", true, 8),
    api(LogsCreateLogStream, LOGS, "CreateLogStream", false, 10),
    api(LogsPutRetentionPolicy, LOGS, "PutRetentionPolicy", false, 1),
    api(
        CwDescribeAlarms,
        "monitoring.amazonaws.com",
        "DescribeAlarms",
        true,
        8,
    ),
    api(
        RdsDescribeDbInstances,
        "rds.amazonaws.com",
        "DescribeDBInstances",
        true,
        6,
    ),
    api(
        EcrGetAuthorizationToken,
        "ecr.amazonaws.com",
        "GetAuthorizationToken",
        true,
        10,
    ),
    api(
        SecretsGetSecretValue,
        "secretsmanager.amazonaws.com",
        "GetSecretValue",
        true,
        12,
    ),
    api(
        SsmGetParameter,
        "ssm.amazonaws.com",
        "GetParameter",
        true,
        15,
    ),
];

pub(crate) fn spec(ev: Ev) -> &'static Spec {
    // The table is small and forced picks are rare, so a scan is cheaper than
    // keeping an index in sync with the enum.
    EVENTS.iter().find(|s| s.ev == ev).unwrap_or(&EVENTS[0])
}

/// Events whose request can be padded to an arbitrary size the way real
/// large records are: long id lists, big policy documents, many tags.
pub(crate) const LARGE_GLOBAL: &[Ev] = &[
    Ec2DescribeInstances,
    Ec2TerminateInstances,
    Ec2CreateTags,
    S3PutBucketPolicy,
    IamPutRolePolicy,
    IamPutUserPolicy,
];
pub(crate) const LARGE_REGIONAL: &[Ev] = &[
    Ec2DescribeInstances,
    Ec2TerminateInstances,
    Ec2CreateTags,
    S3PutBucketPolicy,
];

/// Calls that AWS services make on a customer's behalf (identity type
/// `AWSService`).
pub(crate) const SERVICE_CALLS: &[Ev] = &[
    StsAssumeRole,
    KmsDecrypt,
    KmsGenerateDataKey,
    LogsCreateLogStream,
    Ec2DescribeInstances,
    S3GetObject,
    S3PutObject,
];
pub(crate) const SERVICE_EVENTS: &[Ev] =
    &[KmsRotateKey, KmsDeleteKey, Ec2SharedSnapshotVolumeCreated];

/// Cumulative weights for the weighted draw, one table for us-east-1 (which
/// also receives global-service events) and one for every other region.
pub(crate) struct Tables {
    pub us_east_1: (Vec<u32>, Vec<&'static Spec>),
    pub regional: (Vec<u32>, Vec<&'static Spec>),
}

pub(crate) fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let build = |include_global: bool| {
            let mut cum = Vec::new();
            let mut specs = Vec::new();
            let mut total = 0u32;
            for s in EVENTS {
                if s.weight == 0 || (!include_global && s.is_global()) {
                    continue;
                }
                total += s.weight;
                cum.push(total);
                specs.push(s);
            }
            (cum, specs)
        };
        Tables {
            us_east_1: build(true),
            regional: build(false),
        }
    })
}

pub(crate) const USERS: &[&str] = &[
    "admin_user",
    "alice",
    "bob.smith",
    "ci-deploy",
    "terraform",
    "jenkins",
    "svc-backup",
    "readonly-auditor",
];

pub(crate) const ROLES: &[&str] = &[
    "OrganizationAccountAccessRole",
    "AWSReservedSSO_AdministratorAccess_7c1a4f8e2b3d9a60",
    "AWSReservedSSO_ReadOnlyAccess_3e9b0d1c5a7f2e48",
    "github-actions-deploy",
    "eks-node-group-role",
    "lambda-orders-exec",
    "DatadogIntegrationRole",
    "terraform-apply",
];

pub(crate) const FEDERATED: &[&str] = &["partner-portal", "build-bot", "alice"];

pub(crate) const SSO_USERS: &[&str] = &[
    "alice@corp.example.com",
    "bob.smith@corp.example.com",
    "carol.nguyen@corp.example.com",
    "dmitri@corp.example.com",
];

pub(crate) const SERVICE_PRINCIPALS: &[&str] = &[
    "lambda.amazonaws.com",
    "ec2.amazonaws.com",
    "cloudformation.amazonaws.com",
    "s3.amazonaws.com",
    "secretsmanager.amazonaws.com",
    "config.amazonaws.com",
    "autoscaling.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
];

pub(crate) const BUCKETS: &[&str] = &[
    "data-lake",
    "app-logs",
    "cdn-assets",
    "backups",
    "ml-training",
    "cloudtrail-archive",
];

pub(crate) const TABLES_DDB: &[&str] = &["orders", "sessions", "inventory", "feature-flags"];
pub(crate) const FUNCTIONS: &[&str] = &[
    "orders-api",
    "thumbnailer",
    "nightly-report",
    "auth-authorizer",
    "s3-event-router",
];

pub(crate) const USER_AGENTS: &[&str] = &[
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79-99.167.amzn2023.x86_64 exe/x86_64.amzn.2023 prompt/off command/ec2.describe-instances",
    "aws-cli/2.17.2 md/awscrt#0.20.11 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off",
    "Boto3/1.34.131 md/Botocore#1.34.131 ua/2.0 os/linux#5.10.219-208.866.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.3 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.131",
    "aws-sdk-go-v2/1.30.1 os/linux lang/go#1.22.4 md/GOOS#linux md/GOARCH#amd64 api/sts#1.30.1",
    "APN/1.0 HashiCorp/1.0 Terraform/1.8.5 (+https://www.terraform.io) terraform-provider-aws/5.56.1 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.30.1 os/linux lang/go#1.22.4",
    "aws-sdk-java/2.25.60 Linux/5.10.219 OpenJDK_64-Bit_Server_VM/17.0.11+9-LTS Java/17.0.11 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy",
    "aws-sdk-js/3.600.0 ua/2.0 os/linux#5.10.219 lang/js md/nodejs#20.14.0 api/s3#3.600.0",
    "[aws-sdk-go/1.54.6 (go1.21.11; linux; amd64) exec-env/AWS_ECS_EC2 datadog-agent/7.54.1]",
    "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.730 Linux/5.10.218 OpenJDK_64-Bit_Server_VM/25.412-b08 java/1.8.0_412 vendor/Oracle_Corporation cfg/retry-mode/standard]",
];

pub(crate) const BROWSER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 Edg/125.0.0.0",
];

/// Already JSON-escaped string bodies, written verbatim. They exercise the
/// escape forms a naive producer never emits (`\u00e9`, `\/`, surrogate
/// pairs) alongside raw UTF-8, so parsers are tested against both.
pub(crate) const EXOTIC_AGENTS_ESCAPED: &[&str] = &[
    "MyCorpTool/1.4 (Société Générale; 日本語) 🚀",
    r"custom-agent/2.0 (caf\u00e9; path=\/opt\/tool)",
    r#"scripted-client/0.9 (note=\"quoted\"; dir=C:\\Tools\\aws)"#,
    r"aws-cli/2.15.30 (build\nnewline\ttab) ünïcödé",
    r"Bot\u002Fagent \ud83d\ude80 rocket \u65e5\u672c",
];

/// Unescaped values; the writer escapes them.
pub(crate) const EXOTIC_TAGS: &[&str] = &[
    "Équipe Données",
    "日本語チーム",
    "🚀 launch-2026",
    "He said \"ship it\"",
    "C:\\deploy\\scripts",
    "multi\nline\tvalue",
    "Zürich / Genève",
];

pub(crate) const PLAIN_TAGS: &[&str] = &[
    "web", "api", "batch", "prod", "staging", "platform", "payments",
];

pub(crate) const EXOTIC_KEYS: &[&str] = &[
    "reports/日本語/résumé final.pdf",
    "uploads/quote\"d\\file name.txt",
    "emoji/🚀 launch notes.md",
    "weird/tab\tand\nnewline.txt",
    "données/été/ça.csv",
];

pub(crate) const ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:ListBucket",
    "ec2:DescribeInstances",
    "ec2:StartInstances",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "logs:PutLogEvents",
    "sqs:SendMessage",
    "sns:Publish",
    "lambda:InvokeFunction",
    "secretsmanager:GetSecretValue",
    "iam:PassRole",
    "sts:AssumeRole",
];

pub(crate) const MANAGED_POLICIES: &[&str] = &[
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/ReadOnlyAccess",
    "arn:aws:iam::aws:policy/AmazonS3FullAccess",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
];

pub(crate) const INSTANCE_TYPES: &[&str] = &[
    "t3.micro",
    "t3.large",
    "m7i.xlarge",
    "c7g.2xlarge",
    "r6i.4xlarge",
    "p4d.24xlarge",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_varied_and_complete() {
        assert!(EVENTS.len() >= 60);
        for (i, a) in EVENTS.iter().enumerate() {
            for b in &EVENTS[i + 1..] {
                assert!(a.ev != b.ev, "duplicate {:?}", a.ev);
            }
        }
        for ev in LARGE_GLOBAL
            .iter()
            .chain(SERVICE_CALLS)
            .chain(SERVICE_EVENTS)
        {
            assert_eq!(spec(*ev).ev, *ev);
        }
        assert!(LARGE_REGIONAL.iter().all(|e| !spec(*e).is_global()));
        let t = tables();
        assert!(t.regional.1.iter().all(|s| !s.is_global()));
        assert!(t.us_east_1.1.len() > t.regional.1.len());
    }
}
