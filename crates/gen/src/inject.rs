//! Known violations and anomalies injected into a corpus, for testing detection.
//!
//! Injected records go into extra log files of their own (same key layout, named after their
//! delivery minute), so every file of the plain corpus stays byte-identical: the corpus with
//! injections is the corpus without them plus these files. Randomness comes from a ChaCha
//! stream no generated file uses.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::json::Json;
use crate::time::Utc;
use crate::{at, file_rng, rand_chars, Compression, GenOptions, GenSummary, GeneratedFile};

/// What to inject.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inject {
    /// One record per rule of the built-in pack (every CIS CloudTrail metric filter and the
    /// essentials), spread over the corpus's time span and accounts.
    pub violations: bool,
    /// In the first account and region: a burst of 300 `DeleteSecurityGroup` calls in 10
    /// minutes by one IAM user (from the middle of the span), and an error-rate spike of 150
    /// failed `DescribeInstances` calls in 15 minutes by one role (at three quarters).
    pub anomalies: bool,
}

impl Inject {
    pub fn any(&self) -> bool {
        self.violations || self.anomalies
    }
}

/// One injected violation: the record and the rule ids of the built-in pack it must trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedEvent {
    pub label: &'static str,
    pub event_id: String,
    pub event_source: &'static str,
    pub event_name: &'static str,
    pub account_id: String,
    pub region: String,
    pub event_time_ms: i64,
    pub expected_rules: Vec<&'static str>,
}

/// One injected anomaly: the Insights event pair it must raise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedAnomaly {
    /// `ApiCallRateInsight` or `ApiErrorRateInsight`.
    pub insight_type: &'static str,
    pub account_id: String,
    pub region: String,
    pub event_source: &'static str,
    pub event_name: &'static str,
    pub user_arn: String,
    /// First minute of the activity (minute-aligned).
    pub start_ms: i64,
    /// One minute after its last minute.
    pub end_ms: i64,
    pub records: u32,
}

#[derive(Clone, Copy)]
enum Who {
    Root,
    User(&'static str),
    Role(&'static str),
}

#[derive(Clone, Copy)]
enum Login {
    NoMfaSuccess,
    MfaSuccess,
    Failed,
}

struct Spec {
    label: &'static str,
    rules: &'static [&'static str],
    source: &'static str,
    name: &'static str,
    who: Who,
    read_only: bool,
    error: Option<(&'static str, &'static str)>,
    login: Option<Login>,
    /// `requestParameters` as raw JSON (a template; `{acct}` is replaced), or `null`.
    request: &'static str,
}

const EC2: &str = "ec2.amazonaws.com";
const IAM: &str = "iam.amazonaws.com";
const CT: &str = "cloudtrail.amazonaws.com";
const KMS: &str = "kms.amazonaws.com";
const SIGNIN: &str = "signin.amazonaws.com";

const fn spec(
    label: &'static str,
    rules: &'static [&'static str],
    source: &'static str,
    name: &'static str,
    who: Who,
    request: &'static str,
) -> Spec {
    Spec {
        label,
        rules,
        source,
        name,
        who,
        read_only: false,
        error: None,
        login: None,
        request,
    }
}

const OPS: Who = Who::Role("OpsAutomation");

/// One per rule of the built-in pack; `rules` is every rule id the record must trigger.
const VIOLATIONS: &[Spec] = &[
    Spec {
        error: Some((
            "Client.UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        )),
        ..spec(
            "unauthorized-ec2",
            &["cis-unauthorized-api-calls"],
            EC2,
            "RunInstances",
            OPS,
            r#"{"instanceType":"p4d.24xlarge","minCount":1,"maxCount":8}"#,
        )
    },
    Spec {
        read_only: true,
        error: Some((
            "AccessDenied",
            "User is not authorized to perform: iam:ListUsers",
        )),
        ..spec(
            "access-denied-iam",
            &["cis-unauthorized-api-calls"],
            IAM,
            "ListUsers",
            Who::User("intern"),
            "null",
        )
    },
    Spec {
        login: Some(Login::NoMfaSuccess),
        ..spec(
            "console-login-without-mfa",
            &[
                "cis-console-signin-without-mfa",
                "console-login-without-mfa",
            ],
            SIGNIN,
            "ConsoleLogin",
            Who::User("dave"),
            "null",
        )
    },
    Spec {
        read_only: true,
        ..spec(
            "root-api-call",
            &["cis-root-usage"],
            EC2,
            "DescribeInstances",
            Who::Root,
            r#"{"instancesSet":{},"filterSet":{}}"#,
        )
    },
    Spec {
        login: Some(Login::MfaSuccess),
        ..spec(
            "root-console-login",
            &["cis-root-usage", "root-console-login"],
            SIGNIN,
            "ConsoleLogin",
            Who::Root,
            "null",
        )
    },
    spec(
        "iam-policy-change",
        &["cis-iam-policy-changes"],
        IAM,
        "PutUserPolicy",
        OPS,
        r#"{"userName":"dave","policyName":"AllowEverything","policyDocument":"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}"}"#,
    ),
    spec(
        "cloudtrail-stop-logging",
        &[
            "cis-cloudtrail-config-changes",
            "cloudtrail-stopped-or-deleted",
        ],
        CT,
        "StopLogging",
        OPS,
        r#"{"name":"arn:aws:cloudtrail:us-east-1:{acct}:trail/org-trail"}"#,
    ),
    spec(
        "cloudtrail-update-trail",
        &["cis-cloudtrail-config-changes"],
        CT,
        "UpdateTrail",
        OPS,
        r#"{"name":"org-trail","isMultiRegionTrail":false}"#,
    ),
    spec(
        "cloudtrail-delete-trail",
        &[
            "cis-cloudtrail-config-changes",
            "cloudtrail-stopped-or-deleted",
        ],
        CT,
        "DeleteTrail",
        OPS,
        r#"{"name":"org-trail"}"#,
    ),
    Spec {
        login: Some(Login::Failed),
        ..spec(
            "console-auth-failure",
            &["cis-console-auth-failures"],
            SIGNIN,
            "ConsoleLogin",
            Who::User("erin"),
            "null",
        )
    },
    spec(
        "kms-schedule-key-deletion",
        &["cis-cmk-disable-or-deletion", "kms-key-scheduled-deletion"],
        KMS,
        "ScheduleKeyDeletion",
        OPS,
        r#"{"keyId":"arn:aws:kms:us-east-1:{acct}:key/0f3b1a52-7b7c-4f0e-9a51-1d2c3b4a5e6f","pendingWindowInDays":7}"#,
    ),
    spec(
        "kms-disable-key",
        &["cis-cmk-disable-or-deletion"],
        KMS,
        "DisableKey",
        OPS,
        r#"{"keyId":"0f3b1a52-7b7c-4f0e-9a51-1d2c3b4a5e6f"}"#,
    ),
    spec(
        "s3-bucket-policy-change",
        &["cis-s3-bucket-policy-changes"],
        "s3.amazonaws.com",
        "PutBucketPolicy",
        OPS,
        r#"{"bucketName":"acme-exports-{acct}","bucketPolicy":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::acme-exports-{acct}/*"}]},"Host":"acme-exports-{acct}.s3.amazonaws.com","policy":""}"#,
    ),
    spec(
        "config-recorder-stopped",
        &["cis-aws-config-changes"],
        "config.amazonaws.com",
        "StopConfigurationRecorder",
        OPS,
        r#"{"configurationRecorderName":"default"}"#,
    ),
    spec(
        "security-group-ingress",
        &["cis-security-group-changes"],
        EC2,
        "AuthorizeSecurityGroupIngress",
        OPS,
        r#"{"groupId":"sg-0a1b2c3d4e5f60718","ipPermissions":{"items":[{"ipProtocol":"tcp","fromPort":22,"toPort":22,"ipRanges":{"items":[{"cidrIp":"0.0.0.0/0"}]}}]}}"#,
    ),
    spec(
        "nacl-entry",
        &["cis-nacl-changes"],
        EC2,
        "CreateNetworkAclEntry",
        OPS,
        r#"{"networkAclId":"acl-0a1b2c3d","ruleNumber":90,"egress":false,"ruleAction":"allow","cidrBlock":"0.0.0.0/0"}"#,
    ),
    spec(
        "internet-gateway",
        &["cis-network-gateway-changes"],
        EC2,
        "CreateInternetGateway",
        OPS,
        "{}",
    ),
    spec(
        "route-change",
        &["cis-route-table-changes"],
        EC2,
        "CreateRoute",
        OPS,
        r#"{"routeTableId":"rtb-0a1b2c3d","destinationCidrBlock":"0.0.0.0/0","gatewayId":"igw-0a1b2c3d"}"#,
    ),
    spec(
        "vpc-change",
        &["cis-vpc-changes"],
        EC2,
        "CreateVpc",
        OPS,
        r#"{"cidrBlock":"10.99.0.0/16"}"#,
    ),
    spec(
        "organizations-change",
        &["cis-organizations-changes"],
        "organizations.amazonaws.com",
        "CreateAccount",
        OPS,
        r#"{"email":"new-account@example.com","accountName":"shadow"}"#,
    ),
    spec(
        "root-access-key",
        &["cis-root-usage", "root-access-key-created"],
        IAM,
        "CreateAccessKey",
        Who::Root,
        "null",
    ),
];

/// CloudTrail delivers a file a few minutes after the events in it.
const DELIVERY_DELAY_MS: i64 = 5 * 60_000 + 30_000;

struct Writer<'a> {
    out: &'a Path,
    opts: &'a GenOptions,
    org_id: &'a str,
    rng: ChaCha8Rng,
    keys: &'a mut BTreeSet<String>,
    made_dirs: &'a mut BTreeSet<PathBuf>,
    summary: &'a mut GenSummary,
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(byte >> 4)]));
        s.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    s
}

fn iso(ms: i64) -> String {
    let mut b = Vec::with_capacity(20);
    Utc::from_ms(ms).push_iso(&mut b);
    String::from_utf8_lossy(&b).into_owned()
}

struct Record<'s> {
    spec: &'s Spec,
    account: &'s str,
    region: &'s str,
    time_ms: i64,
    event_id: String,
    request_id: String,
}

fn write_identity(j: &mut Json, who: Who, account: &str, sign_in: bool) {
    j.key("userIdentity");
    j.begin_obj();
    match who {
        Who::Root => {
            j.kv_str("type", "Root");
            j.kv_str("principalId", account);
            j.kv_str("arn", &format!("arn:aws:iam::{account}:root"));
            j.kv_str("accountId", account);
            j.kv_str(
                "accessKeyId",
                if sign_in { "" } else { "ASIAINJECTEDROOT0001" },
            );
        }
        Who::User(u) => {
            j.kv_str("type", "IAMUser");
            j.kv_str("principalId", "AIDAINJECTEDUSER0001");
            j.kv_str("arn", &format!("arn:aws:iam::{account}:user/{u}"));
            j.kv_str("accountId", account);
            j.kv_str(
                "accessKeyId",
                if sign_in { "" } else { "AKIAINJECTEDUSER0001" },
            );
            j.kv_str("userName", u);
        }
        Who::Role(r) => {
            j.kv_str("type", "AssumedRole");
            j.kv_str("principalId", &format!("AROAINJECTEDROLE0001:{r}-session"));
            j.kv_str(
                "arn",
                &format!("arn:aws:sts::{account}:assumed-role/{r}/{r}-session"),
            );
            j.kv_str("accountId", account);
            j.kv_str("accessKeyId", "ASIAINJECTEDROLE0001");
            j.key("sessionContext");
            j.begin_obj();
            j.key("sessionIssuer");
            j.begin_obj();
            j.kv_str("type", "Role");
            j.kv_str("principalId", "AROAINJECTEDROLE0001");
            j.kv_str("arn", &format!("arn:aws:iam::{account}:role/{r}"));
            j.kv_str("accountId", account);
            j.kv_str("userName", r);
            j.end_obj();
            j.key("attributes");
            j.begin_obj();
            j.kv_str("mfaAuthenticated", "false");
            j.end_obj();
            j.end_obj();
        }
    }
    j.end_obj();
}

fn write_record(j: &mut Json, r: &Record<'_>) {
    let s = r.spec;
    let sign_in = s.login.is_some();
    j.begin_obj();
    j.kv_str("eventVersion", "1.08");
    write_identity(j, s.who, r.account, sign_in);
    j.kv_str("eventTime", &iso(r.time_ms));
    j.kv_str("eventSource", s.source);
    j.kv_str("eventName", s.name);
    j.kv_str("awsRegion", r.region);
    j.kv_str("sourceIPAddress", "198.51.100.66");
    j.kv_str(
        "userAgent",
        if sign_in {
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
        } else {
            "aws-cli/2.17.0 md/Botocore#1.35.0 ua/2.0 os/linux#6.8 md/arch#x86_64"
        },
    );
    if let Some((code, msg)) = s.error {
        j.kv_str("errorCode", code);
        j.kv_str("errorMessage", msg);
    }
    if matches!(s.login, Some(Login::Failed)) {
        j.kv_str("errorMessage", "Failed authentication");
    }
    j.key("requestParameters");
    if s.request == "null" {
        j.null();
    } else {
        // The templates are valid JSON by construction; `{acct}` is a 12-digit id.
        j.raw(&s.request.replace("{acct}", r.account));
    }
    j.key("responseElements");
    match s.login {
        Some(Login::Failed) => {
            j.begin_obj();
            j.kv_str("ConsoleLogin", "Failure");
            j.end_obj();
        }
        Some(_) => {
            j.begin_obj();
            j.kv_str("ConsoleLogin", "Success");
            j.end_obj();
        }
        None => j.null(),
    }
    if let Some(l) = s.login {
        j.key("additionalEventData");
        j.begin_obj();
        j.kv_str("LoginTo", "https://console.aws.amazon.com/console/home");
        j.kv_str("MobileVersion", "No");
        let mfa = matches!(l, Login::MfaSuccess);
        if mfa {
            j.kv_str(
                "MFAIdentifier",
                &format!("arn:aws:iam::{}:mfa/root-account-mfa-device", r.account),
            );
        }
        j.kv_str("MFAUsed", if mfa { "Yes" } else { "No" });
        j.end_obj();
    } else {
        j.kv_str("requestID", &r.request_id);
    }
    j.kv_str("eventID", &r.event_id);
    j.kv_bool("readOnly", s.read_only);
    j.kv_str(
        "eventType",
        if sign_in {
            "AwsConsoleSignIn"
        } else {
            "AwsApiCall"
        },
    );
    j.kv_bool("managementEvent", true);
    j.kv_str("recipientAccountId", r.account);
    j.kv_str("eventCategory", "Management");
    j.end_obj();
}

impl Writer<'_> {
    /// Writes one log file holding `records`, delivered `DELIVERY_DELAY_MS` after `window_ms`.
    fn file(
        &mut self,
        account: &str,
        region: &str,
        window_ms: i64,
        records: &[Record<'_>],
    ) -> io::Result<()> {
        let mut j = Json::with_capacity(64 * 1024);
        j.buf.extend_from_slice(b"{\"Records\":[");
        for (i, r) in records.iter().enumerate() {
            if i > 0 {
                j.buf.push(b',');
            }
            write_record(&mut j, r);
        }
        j.buf.extend_from_slice(b"]}");
        let delivery = window_ms + DELIVERY_DELAY_MS;
        let stamp = Utc::from_ms(delivery);
        let mut ymd = Vec::with_capacity(10);
        stamp.push_ymd(&mut ymd, b"/");
        let mut minute = Vec::with_capacity(14);
        stamp.push_compact_minute(&mut minute);
        let ext = match self.opts.compression {
            Compression::Gzip => ".json.gz",
            Compression::None => ".json",
        };
        let key = loop {
            let mut unique = String::with_capacity(16);
            rand_chars(&mut self.rng, crate::MIXED_ALNUM, 16, &mut unique);
            let key = format!(
                "AWSLogs/{}/{account}/CloudTrail/{region}/{}/{account}_CloudTrail_{region}_{}_{unique}{ext}",
                self.org_id,
                String::from_utf8_lossy(&ymd),
                String::from_utf8_lossy(&minute)
            );
            if self.keys.insert(key.clone()) {
                break key;
            }
        };
        let rel: PathBuf = key.split('/').collect();
        let path = self.out.join(&rel);
        if let Some(parent) = path.parent() {
            if self.made_dirs.insert(parent.to_path_buf()) {
                fs::create_dir_all(parent).map_err(at("creating directory", parent))?;
            }
        }
        let bytes = match self.opts.compression {
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::new(self.opts.gzip_level),
                );
                enc.write_all(&j.buf)?;
                enc.finish()?
            }
            Compression::None => j.buf.clone(),
        };
        let mut f = File::create(&path).map_err(at("creating", &path))?;
        f.write_all(&bytes).map_err(at("writing", &path))?;
        f.flush().map_err(at("flushing", &path))?;
        let n = records.len() as u64;
        self.summary.records += n;
        self.summary.uncompressed_bytes += j.buf.len() as u64;
        self.summary.compressed_bytes += bytes.len() as u64;
        self.summary.files.push(GeneratedFile {
            path: rel,
            key,
            account_id: account.to_owned(),
            region: region.to_owned(),
            records: n,
            uncompressed_bytes: j.buf.len() as u64,
            compressed_bytes: bytes.len() as u64,
            delivery_time_ms: delivery,
        });
        Ok(())
    }
}

/// Writes the injections `opts.inject` asks for into extra files and records them in
/// `summary`. `span_ms` is the time the plain corpus covers from `opts.start_time_ms`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write(
    out: &Path,
    opts: &GenOptions,
    org_id: &str,
    accounts: &[String],
    regions: &[String],
    span_ms: i64,
    keys: &mut BTreeSet<String>,
    made_dirs: &mut BTreeSet<PathBuf>,
    summary: &mut GenSummary,
) -> io::Result<()> {
    let mut w = Writer {
        out,
        opts,
        org_id,
        rng: file_rng(opts.seed, u64::MAX),
        keys,
        made_dirs,
        summary,
    };
    let minute = |ms: i64| ms - ms.rem_euclid(60_000);
    if opts.inject.violations {
        let n = VIOLATIONS.len() as i64;
        for (i, s) in VIOLATIONS.iter().enumerate() {
            let global = matches!(s.source, IAM | "organizations.amazonaws.com" | SIGNIN);
            let account = &accounts[i % accounts.len()];
            let region = if global {
                &regions[0]
            } else {
                &regions[i % regions.len()]
            };
            // Spread over the span, at a whole second plus a little.
            let t = opts.start_time_ms + span_ms * (i as i64 + 1) / (n + 1);
            let t = t - t.rem_euclid(1000) + 137;
            let rec = Record {
                spec: s,
                account,
                region,
                time_ms: t,
                event_id: uuid(&mut w.rng),
                request_id: uuid(&mut w.rng),
            };
            let event_id = rec.event_id.clone();
            w.file(account, region, minute(t), std::slice::from_ref(&rec))?;
            w.summary.injected.push(InjectedEvent {
                label: s.label,
                event_id,
                event_source: s.source,
                event_name: s.name,
                account_id: account.clone(),
                region: region.clone(),
                event_time_ms: t,
                expected_rules: s.rules.to_vec(),
            });
        }
    }
    if opts.inject.anomalies {
        let account = &accounts[0];
        let region = &regions[0];
        const BURST: Spec = Spec {
            read_only: false,
            ..spec(
                "api-call-burst",
                &["cis-security-group-changes"],
                EC2,
                "DeleteSecurityGroup",
                Who::User("mallory"),
                r#"{"groupId":"sg-0badc0ffee0000001"}"#,
            )
        };
        const SPIKE: Spec = Spec {
            read_only: true,
            error: Some(("Client.RequestLimitExceeded", "Request limit exceeded.")),
            ..spec(
                "error-rate-spike",
                &[],
                EC2,
                "DescribeInstances",
                Who::Role("inventory-scanner"),
                r#"{"instancesSet":{},"filterSet":{}}"#,
            )
        };
        // (spec, position in the span, records, spacing, minutes)
        let plans: [(&Spec, &'static str, i64, u32, i64); 2] = [
            (&BURST, "ApiCallRateInsight", 2, 300, 2_000),
            (&SPIKE, "ApiErrorRateInsight", 3, 150, 6_000),
        ];
        for (s, itype, quarter, count, spacing) in plans {
            let start = minute(opts.start_time_ms + span_ms * quarter / 4);
            let mut recs = Vec::with_capacity(count as usize);
            for i in 0..i64::from(count) {
                recs.push(Record {
                    spec: s,
                    account,
                    region,
                    time_ms: start + i * spacing,
                    event_id: uuid(&mut w.rng),
                    request_id: uuid(&mut w.rng),
                });
            }
            let end = minute(start + (i64::from(count) - 1) * spacing) + 60_000;
            // One file per five minutes of events, as CloudTrail delivers them.
            let mut from = 0;
            while from < recs.len() {
                let window = minute(recs[from].time_ms);
                let upto = recs[from..]
                    .iter()
                    .position(|r| r.time_ms >= window + 5 * 60_000)
                    .map_or(recs.len(), |p| from + p);
                w.file(account, region, window, &recs[from..upto])?;
                from = upto;
            }
            let who = match s.who {
                Who::User(u) => format!("arn:aws:iam::{account}:user/{u}"),
                Who::Role(r) => format!("arn:aws:sts::{account}:assumed-role/{r}/{r}-session"),
                Who::Root => format!("arn:aws:iam::{account}:root"),
            };
            w.summary.anomalies.push(InjectedAnomaly {
                insight_type: itype,
                account_id: account.clone(),
                region: region.clone(),
                event_source: s.source,
                event_name: s.name,
                user_arn: who,
                start_ms: start,
                end_ms: end,
                records: count,
            });
        }
    }
    Ok(())
}
