//! The built-in pack over a generated org trail into which the generator injected one known
//! violation per rule.
//!
//! - The injected corpus goes through the real pipeline (directory source → `detect` stage →
//!   NDJSON alert output).
//! - "Finds every injected one and no others": the alerts of the injected corpus minus the
//!   matches of the same corpus without injections (whose files are byte-identical) are exactly
//!   the injected events, each with exactly the rules it was built to trigger.
//! - The generator also produces natural violations (root activity, AccessDenied, console
//!   sign-ins without MFA, ...). Those are checked against an independent oracle: plain Rust
//!   predicates over `serde_json::Value`, one per rule, written from the CIS text.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use trailhose_config::detect::{AlertOutputConfig, DetectionConfig, NdjsonAlertOutput};
use trailhose_core::{read_records, FieldMode, Limits};
use trailhose_detect::engine::Scratch;
use trailhose_detect::rules::{RuleSet, RuleSources};
use trailhose_detect::DetectSink;
use trailhose_gen::{generate, Compression, GenOptions, Inject};
use trailhose_pipeline::deadletter::DeadLetterFile;
use trailhose_pipeline::dir_source::{list_files, run_dir_source, DirSource, Layout};
use trailhose_pipeline::emit::ChunkLimits;
use trailhose_pipeline::filter::CompiledFilter;
use trailhose_pipeline::{Pipeline, SinkSpec};

type Hits = BTreeSet<(String, String)>;

fn opts(inject: Inject) -> GenOptions {
    GenOptions {
        events: 30_000,
        accounts: 3,
        regions: 2,
        seed: 42,
        events_per_file: 500,
        compression: Compression::Gzip,
        gzip_level: 1,
        inject,
        ..GenOptions::default()
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn exists(v: &Value, path: &[&str]) -> bool {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return false,
        }
    }
    true
}

/// The rules of the pack, restated as plain predicates.
fn oracle(v: &Value) -> Vec<&'static str> {
    let name = str_at(v, &["eventName"]).unwrap_or("");
    let source = str_at(v, &["eventSource"]).unwrap_or("");
    let utype = str_at(v, &["userIdentity", "type"]);
    let in_ = |set: &[&str]| set.contains(&name);
    let mfa_not_yes = str_at(v, &["additionalEventData", "MFAUsed"]).is_some_and(|m| m != "Yes");
    let login_ok = str_at(v, &["responseElements", "ConsoleLogin"]) == Some("Success");
    let mut out = Vec::new();
    let mut hit = |cond: bool, id: &'static str| {
        if cond {
            out.push(id);
        }
    };
    let code = str_at(v, &["errorCode"]);
    hit(
        code.is_some_and(|c| c.ends_with("UnauthorizedOperation") || c.starts_with("AccessDenied")),
        "cis-unauthorized-api-calls",
    );
    hit(
        name == "ConsoleLogin" && mfa_not_yes && utype == Some("IAMUser") && login_ok,
        "cis-console-signin-without-mfa",
    );
    hit(
        utype == Some("Root")
            && !exists(v, &["userIdentity", "invokedBy"])
            && str_at(v, &["eventType"]).is_some_and(|t| t != "AwsServiceEvent"),
        "cis-root-usage",
    );
    hit(
        in_(&[
            "DeleteGroupPolicy",
            "DeleteRolePolicy",
            "DeleteUserPolicy",
            "PutGroupPolicy",
            "PutRolePolicy",
            "PutUserPolicy",
            "CreatePolicy",
            "DeletePolicy",
            "CreatePolicyVersion",
            "DeletePolicyVersion",
            "AttachRolePolicy",
            "DetachRolePolicy",
            "AttachUserPolicy",
            "DetachUserPolicy",
            "AttachGroupPolicy",
            "DetachGroupPolicy",
        ]),
        "cis-iam-policy-changes",
    );
    hit(
        in_(&[
            "CreateTrail",
            "UpdateTrail",
            "DeleteTrail",
            "StartLogging",
            "StopLogging",
        ]),
        "cis-cloudtrail-config-changes",
    );
    hit(
        name == "ConsoleLogin" && str_at(v, &["errorMessage"]) == Some("Failed authentication"),
        "cis-console-auth-failures",
    );
    hit(
        source == "kms.amazonaws.com" && in_(&["DisableKey", "ScheduleKeyDeletion"]),
        "cis-cmk-disable-or-deletion",
    );
    hit(
        source == "s3.amazonaws.com"
            && in_(&[
                "PutBucketAcl",
                "PutBucketPolicy",
                "PutBucketCors",
                "PutBucketLifecycle",
                "PutBucketReplication",
                "DeleteBucketPolicy",
                "DeleteBucketCors",
                "DeleteBucketLifecycle",
                "DeleteBucketReplication",
            ]),
        "cis-s3-bucket-policy-changes",
    );
    hit(
        source == "config.amazonaws.com"
            && in_(&[
                "StopConfigurationRecorder",
                "DeleteDeliveryChannel",
                "PutDeliveryChannel",
                "PutConfigurationRecorder",
            ]),
        "cis-aws-config-changes",
    );
    hit(
        in_(&[
            "AuthorizeSecurityGroupIngress",
            "AuthorizeSecurityGroupEgress",
            "RevokeSecurityGroupIngress",
            "RevokeSecurityGroupEgress",
            "CreateSecurityGroup",
            "DeleteSecurityGroup",
        ]),
        "cis-security-group-changes",
    );
    hit(
        in_(&[
            "CreateNetworkAcl",
            "CreateNetworkAclEntry",
            "DeleteNetworkAcl",
            "DeleteNetworkAclEntry",
            "ReplaceNetworkAclEntry",
            "ReplaceNetworkAclAssociation",
        ]),
        "cis-nacl-changes",
    );
    hit(
        in_(&[
            "CreateCustomerGateway",
            "DeleteCustomerGateway",
            "AttachInternetGateway",
            "CreateInternetGateway",
            "DeleteInternetGateway",
            "DetachInternetGateway",
        ]),
        "cis-network-gateway-changes",
    );
    hit(
        in_(&[
            "CreateRoute",
            "CreateRouteTable",
            "ReplaceRoute",
            "ReplaceRouteTableAssociation",
            "DeleteRouteTable",
            "DeleteRoute",
            "DisassociateRouteTable",
        ]),
        "cis-route-table-changes",
    );
    hit(
        in_(&[
            "CreateVpc",
            "DeleteVpc",
            "ModifyVpcAttribute",
            "AcceptVpcPeeringConnection",
            "CreateVpcPeeringConnection",
            "DeleteVpcPeeringConnection",
            "RejectVpcPeeringConnection",
            "AttachClassicLinkVpc",
            "DetachClassicLinkVpc",
            "DisableVpcClassicLink",
            "EnableVpcClassicLink",
        ]),
        "cis-vpc-changes",
    );
    hit(
        source == "organizations.amazonaws.com"
            && in_(&[
                "AcceptHandshake",
                "AttachPolicy",
                "CreateAccount",
                "CreateOrganizationalUnit",
                "CreatePolicy",
                "DeclineHandshake",
                "DeleteOrganization",
                "DeleteOrganizationalUnit",
                "DeletePolicy",
                "DetachPolicy",
                "DisablePolicyType",
                "EnablePolicyType",
                "InviteAccountToOrganization",
                "LeaveOrganization",
                "MoveAccount",
                "RemoveAccountFromOrganization",
                "UpdatePolicy",
                "UpdateOrganizationalUnit",
            ]),
        "cis-organizations-changes",
    );
    hit(
        name == "ConsoleLogin" && utype == Some("Root"),
        "root-console-login",
    );
    hit(
        name == "ConsoleLogin"
            && mfa_not_yes
            && login_ok
            && matches!(utype, Some("IAMUser" | "Root")),
        "console-login-without-mfa",
    );
    hit(
        source == "cloudtrail.amazonaws.com" && in_(&["StopLogging", "DeleteTrail"]),
        "cloudtrail-stopped-or-deleted",
    );
    hit(
        source == "kms.amazonaws.com" && name == "ScheduleKeyDeletion",
        "kms-key-scheduled-deletion",
    );
    hit(
        source == "iam.amazonaws.com"
            && name == "CreateAccessKey"
            && utype == Some("Root")
            && !exists(v, &["requestParameters", "userName"])
            && !exists(v, &["errorCode"]),
        "root-access-key-created",
    );
    out
}

/// Direct evaluation (and the oracle) over every record of a corpus.
fn scan(dir: &Path, rules: &RuleSet) -> (Hits, Hits, u64) {
    let mut scratch = Scratch::new();
    let mut hits = Hits::new();
    let mut expected = Hits::new();
    let mut out = Vec::new();
    let mut n = 0;
    for f in list_files(dir).expect("list") {
        let file = std::fs::File::open(&f).expect("open");
        let (_, r) = read_records(file, &Limits::default(), FieldMode::Extract, |rec| {
            n += 1;
            let fields = rec.fields.as_ref();
            rules.matching(&mut scratch, rec.raw.bytes, fields, &mut out);
            let v: Value = serde_json::from_slice(rec.raw.bytes).expect("json");
            let id = v["eventID"].as_str().unwrap_or("").to_owned();
            for &i in &out {
                hits.insert((id.clone(), rules.rules()[i as usize].id.clone()));
            }
            for r in oracle(&v) {
                expected.insert((id.clone(), r.to_owned()));
            }
        });
        r.expect("valid file");
    }
    (hits, expected, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cis_pack_finds_every_injected_violation_and_no_others() {
    let rules = RuleSet::load(&RuleSources {
        builtin: true,
        ..Default::default()
    })
    .expect("pack");
    let tmp = tempfile::tempdir().expect("tempdir");
    let base_dir = tmp.path().join("base");
    let inj_dir = tmp.path().join("injected");
    let base = generate(&base_dir, &opts(Inject::default())).expect("generate");
    let inj = generate(
        &inj_dir,
        &opts(Inject {
            violations: true,
            anomalies: false,
        }),
    )
    .expect("generate");
    assert_eq!(inj.injected.len(), 21);
    assert_eq!(inj.files.len(), base.files.len() + 21);

    // The plain corpus: the engine agrees with the oracle on every record.
    let (base_hits, base_oracle, n) = scan(&base_dir, &rules);
    assert_eq!(n, base.records);
    let missing: Vec<_> = base_oracle.difference(&base_hits).collect();
    let extra: Vec<_> = base_hits.difference(&base_oracle).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    let mut per_rule: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, r) in &base_hits {
        *per_rule.entry(r).or_default() += 1;
    }
    eprintln!("natural matches in {n} records: {per_rule:?}");

    // The injected corpus through the pipeline.
    let alerts_path = tmp.path().join("alerts.ndjson");
    let cfg = DetectionConfig {
        builtin_rules: true,
        rules_dir: None,
        disable: Vec::new(),
        outputs: vec![AlertOutputConfig::Ndjson(NdjsonAlertOutput {
            path: alerts_path.clone(),
            fsync: false,
            min_severity: None,
        })],
        failed_alerts_path: tmp.path().join("failed.ndjson"),
        insight_severity: "medium".into(),
        anomaly: None,
        delivery: Default::default(),
    };
    let sink = DetectSink::from_config("detect", &cfg).await.expect("sink");
    let stats = sink.stats.clone();
    let pipeline = Pipeline::start(
        vec![SinkSpec {
            sink: Box::new(sink),
            filter: CompiledFilter::pass_all(),
        }],
        8,
    );
    let dlq = Arc::new(DeadLetterFile::new(&tmp.path().join("dlq.ndjson")));
    let src = DirSource {
        path: inj_dir.clone(),
        layout: Layout::S3,
        parse_workers: 2,
        limits: Limits::default(),
        chunking: ChunkLimits::default(),
    };
    let report = run_dir_source(src, pipeline.input(), dlq)
        .await
        .expect("source");
    let reports = pipeline.shutdown().await;
    assert_eq!(report.records, inj.records);
    assert_eq!(report.objects_undelivered, 0);
    assert_eq!(reports[0].failed_deliveries, 0, "{:?}", reports[0].errors);

    let text = std::fs::read_to_string(&alerts_path).expect("alerts");
    let mut alerts = Hits::new();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let v: Value = serde_json::from_str(line).expect("alert json");
        let id = v["eventID"].as_str().expect("eventID").to_owned();
        assert_eq!(v["record"]["eventID"].as_str(), Some(id.as_str()));
        alerts.insert((id, v["ruleId"].as_str().expect("ruleId").to_owned()));
    }
    assert_eq!(lines, alerts.len(), "an alert was sent twice");
    let counted: u64 = stats.rule_counts().iter().map(|(_, n)| n).sum();
    assert_eq!(counted, lines as u64);

    let want: Hits = inj
        .injected
        .iter()
        .flat_map(|e| {
            e.expected_rules
                .iter()
                .map(|r| (e.event_id.clone(), (*r).to_owned()))
        })
        .collect();
    let new: Hits = alerts.difference(&base_hits).cloned().collect();
    let missed: Vec<_> = want.difference(&new).collect();
    let unexpected: Vec<_> = new.difference(&want).collect();
    assert!(
        missed.is_empty() && unexpected.is_empty(),
        "missed {missed:?}\nunexpected {unexpected:?}"
    );
    // Nothing of the plain corpus was lost on the way through the pipeline.
    assert!(base_hits.is_subset(&alerts));
    // Every rule of the pack fired on an injected record.
    let fired: BTreeSet<&str> = want.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(fired.len(), rules.len(), "{fired:?}");
    eprintln!(
        "{} alerts: {} injected violations ({} rule matches) found, {} natural",
        lines,
        inj.injected.len(),
        want.len(),
        base_hits.len()
    );
}
