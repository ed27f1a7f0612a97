//! The pattern × event table: examples of the CloudWatch Logs "Filter and pattern syntax" guide
//! (with their documented outcome), the CIS / Security Hub metric filters of the built-in pack
//! on CloudTrail events, and the edge cases whose behaviour `trailhose-detect` documents.
//!
//! Every case is evaluated three ways that must agree: one engine per pattern with the record's
//! key fields, the same without key fields (full parse), and one engine holding every pattern of
//! the table (the indexed rule-set path).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use trailhose_core::FieldParser;
use trailhose_detect::engine::{Engine, Scratch};
use trailhose_detect::rules::builtin_rules;
use trailhose_detect::FilterPattern;

/// (pattern, or `rule:<id>` for a pattern of the built-in pack; event fixture; expected).
const CASES: &[(&str, &str, bool)] = &[
    // --- CloudWatch Logs guide, "JSON metric filter examples" (all documented to match) ---
    (
        r#"{ $.eventType = "UpdateTrail" }"#,
        "aws-doc-example",
        true,
    ),
    (
        "{ $.sourceIPAddress != 123.123.* }",
        "aws-doc-example",
        true,
    ),
    (r#"{ $.arrayKey[0] = "value" }"#, "aws-doc-example", true),
    ("{ $.objectList[1].id = 2 }", "aws-doc-example", true),
    ("{ $.SomeObject IS NULL }", "aws-doc-example", true),
    ("{ $.SomeOtherObject NOT EXISTS }", "aws-doc-example", true),
    ("{ $.ThisFlag IS TRUE }", "aws-doc-example", true),
    // Wildcards: "*Event matches PutEvent, Event* matches EventId, Ev*ent only Ev*ent".
    (r#"{ $.eventType = "*Trail" }"#, "aws-doc-example", true),
    (r#"{ $.eventType = "Update*" }"#, "aws-doc-example", true),
    (r#"{ $.eventType = "Up*Trail" }"#, "aws-doc-example", false),
    (r#"{ $.eventType = "*dateTr*" }"#, "aws-doc-example", true),
    ("{ $.sourceIPAddress = 111.111.* }", "aws-doc-example", true),
    ("{ $.eventType = * }", "aws-doc-example", true),
    ("{ $.ThisFlag IS FALSE }", "aws-doc-example", false),
    ("{ $.ThisFlag = true }", "aws-doc-example", true),
    ("{ $.eventType IS NULL }", "aws-doc-example", false),
    ("{ $.SomeObject NOT EXISTS }", "aws-doc-example", false),
    (
        r#"{ $.arrayKey[1] = "another value" }"#,
        "aws-doc-example",
        true,
    ),
    // "If arrayKey is not an array this will be false"; out of range likewise.
    ("{ $.eventType[0] = U }", "aws-doc-example", false),
    ("{ $.objectList[2].id = 3 }", "aws-doc-example", false),
    ("{ $.objectList[2].id NOT EXISTS }", "aws-doc-example", true),
    (
        "{ $.objectList[0].missing NOT EXISTS }",
        "aws-doc-example",
        true,
    ),
    ("{ $.eventType.inner = x }", "aws-doc-example", false),
    // A selector on an object or array matches neither `=` nor `!=`.
    (r#"{ $.arrayKey = "value" }"#, "aws-doc-example", false),
    (r#"{ $.arrayKey != "value" }"#, "aws-doc-example", false),
    ("{ $.objectList[0] = a }", "aws-doc-example", false),
    ("{ $.objectList = * }", "aws-doc-example", false),
    // null and missing values match no comparison (use IS NULL / NOT EXISTS).
    ("{ $.SomeObject = * }", "aws-doc-example", false),
    ("{ $.SomeObject != x }", "aws-doc-example", false),
    (r#"{ $.SomeOtherObject != "x" }"#, "aws-doc-example", false),
    // --- "JSON compound conditions" (documented outcomes) ---
    (
        r#"{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }"#,
        "aws-doc-compound",
        true,
    ),
    (
        r#"{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }"#,
        "aws-doc-compound",
        false,
    ),
    (
        r#"{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch && $.actions[2] = nomatch }"#,
        "aws-doc-compound",
        true,
    ),
    (
        r#"{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch) && $.actions[2] = nomatch }"#,
        "aws-doc-compound",
        false,
    ),
    ("{ $.coordinates[0][1] = 1 }", "aws-doc-compound", true),
    ("{ $.coordinates[2][2] >= 9 }", "aws-doc-compound", true),
    ("{ $.coordinates[1] = 4 }", "aws-doc-compound", false),
    (
        r#"{ $.users[1].email = "*@example.com" }"#,
        "aws-doc-compound",
        true,
    ),
    (
        "{ $.actions[2] = DELETE && ($.actions[0] = PUT || $.actions[1] = PUT) }",
        "aws-doc-compound",
        true,
    ),
    // --- "OR pattern matching" in JSON filters ---
    ("{$.foo = bar}", "foo-bar", true),
    ("{$.foo = bar}", "foo-baz", false),
    ("{$.foo = baz }", "foo-baz", true),
    ("{$.foo = bar || $.foo = baz }", "foo-bar", true),
    ("{$.foo = bar || $.foo = baz }", "foo-baz", true),
    // --- "JSON special considerations": both fail on an array ---
    ("{$.users = 1}", "users-array", false),
    ("{$.users != 1}", "users-array", false),
    // --- "Numeric comparisons" examples ---
    ("{ $.latency >= 500 }", "numeric", true),
    ("{ $.latency > 500 }", "numeric", false),
    ("{ $.numbers[0] < 10e3 }", "numeric", true),
    ("{ $.numbers[1] < 10e-3 }", "numeric", true),
    ("{ $.processes[4].averageRuntime <= 55.5 }", "numeric", true),
    ("{ $.errorCode = 400 }", "numeric", true),
    ("{ $.errorCode != 500 }", "numeric", true),
    ("{ $.latency > +1000 }", "numeric", false),
    ("{ $.numbers[2] < -2 }", "numeric", true),
    ("{ $.numbers[2] = -3.0 }", "numeric", true),
    ("{ $.ratio = 150 }", "numeric", true),
    ("{ $.bigId > 1e19 }", "numeric", true),
    // Wildcards in numbers compare the number's decimal text.
    ("{ $.latency = 5* }", "numeric", true),
    (r#"{ $.latency = "500" }"#, "numeric", true),
    // A numeric literal against a string compares the text; order needs a number.
    ("{ $.accountAsString = 123456789012 }", "numeric", true),
    ("{ $.accountAsString > 1 }", "numeric", false),
    ("{ $.flagFalse IS FALSE }", "numeric", true),
    ("{ $.latency IS TRUE }", "numeric", false),
    ("{ $.missing < 1 }", "numeric", false),
    // --- CIS / Security Hub metric filters (built-in pack) on CloudTrail events ---
    ("rule:cis-unauthorized-api-calls", "ec2-unauthorized", true),
    ("rule:cis-unauthorized-api-calls", "s3-access-denied", true),
    (
        "rule:cis-unauthorized-api-calls",
        "kms-access-denied-exception",
        true,
    ),
    ("rule:cis-unauthorized-api-calls", "throttled", false),
    ("rule:cis-unauthorized-api-calls", "stop-logging", false),
    (
        "rule:cis-console-signin-without-mfa",
        "console-login-iamuser-nomfa",
        true,
    ),
    (
        "rule:cis-console-signin-without-mfa",
        "console-login-iamuser-mfa",
        false,
    ),
    (
        "rule:cis-console-signin-without-mfa",
        "console-login-failed",
        false,
    ),
    (
        "rule:cis-console-signin-without-mfa",
        "console-login-sso",
        false,
    ),
    (
        "rule:cis-console-signin-without-mfa",
        "console-login-root",
        false,
    ),
    ("rule:cis-root-usage", "root-api-call", true),
    ("rule:cis-root-usage", "console-login-root", true),
    ("rule:cis-root-usage", "root-invoked-by-service", false),
    ("rule:cis-root-usage", "root-service-event", false),
    ("rule:cis-root-usage", "console-login-iamuser-nomfa", false),
    ("rule:cis-iam-policy-changes", "put-user-policy", true),
    ("rule:cis-iam-policy-changes", "org-create-account", false),
    ("rule:cis-cloudtrail-config-changes", "stop-logging", true),
    ("rule:cis-cloudtrail-config-changes", "update-trail", true),
    (
        "rule:cis-console-auth-failures",
        "console-login-failed",
        true,
    ),
    (
        "rule:cis-console-auth-failures",
        "console-login-iamuser-nomfa",
        false,
    ),
    (
        "rule:cis-cmk-disable-or-deletion",
        "schedule-key-deletion",
        true,
    ),
    ("rule:cis-cmk-disable-or-deletion", "disable-key", true),
    (
        "rule:cis-cmk-disable-or-deletion",
        "disable-key-other-source",
        false,
    ),
    (
        "rule:cis-s3-bucket-policy-changes",
        "put-bucket-policy",
        true,
    ),
    (
        "rule:cis-s3-bucket-policy-changes",
        "get-bucket-policy",
        false,
    ),
    ("rule:cis-aws-config-changes", "stop-config-recorder", true),
    (
        "rule:cis-security-group-changes",
        "authorize-sg-ingress",
        true,
    ),
    ("rule:cis-security-group-changes", "create-vpc", false),
    ("rule:cis-nacl-changes", "create-nacl-entry", true),
    ("rule:cis-network-gateway-changes", "create-igw", true),
    ("rule:cis-route-table-changes", "create-route", true),
    ("rule:cis-route-table-changes", "create-vpc", false),
    ("rule:cis-vpc-changes", "create-vpc", true),
    ("rule:cis-organizations-changes", "org-create-account", true),
    ("rule:cis-organizations-changes", "org-list-accounts", false),
    // The CIS v1.4+ 4.1 text: `&&` binds tighter, so the exclusions only apply to the
    // AccessDenied* branch.
    (CIS_41_TEXT, "s3-access-denied", true),
    (CIS_41_TEXT, "head-bucket-denied", false),
    (CIS_41_TEXT, "access-denied-from-delivery-logs", false),
    (CIS_41_TEXT, "unauthorized-from-delivery-logs", true),
    // The CIS v1.2 3.2 text also counts SSO sign-ins.
    (
        r#"{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }"#,
        "console-login-sso",
        true,
    ),
    // The CIS 1.2 3.3 spacing variant behaves like CloudWatch.1.
    (
        r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#,
        "root-api-call",
        true,
    ),
    // --- The essentials pack ---
    ("rule:root-console-login", "console-login-root", true),
    (
        "rule:root-console-login",
        "console-login-iamuser-nomfa",
        false,
    ),
    ("rule:console-login-without-mfa", "console-login-root", true),
    ("rule:console-login-without-mfa", "console-login-sso", false),
    ("rule:cloudtrail-stopped-or-deleted", "stop-logging", true),
    ("rule:cloudtrail-stopped-or-deleted", "update-trail", false),
    (
        "rule:kms-key-scheduled-deletion",
        "schedule-key-deletion",
        true,
    ),
    ("rule:kms-key-scheduled-deletion", "disable-key", false),
    (
        "rule:root-access-key-created",
        "root-create-access-key",
        true,
    ),
    (
        "rule:root-access-key-created",
        "root-create-access-key-for-user",
        false,
    ),
    // --- Unstructured terms against the raw record ---
    ("ConsoleLogin", "console-login-root", true),
    ("?StopLogging ?DeleteTrail", "stop-logging", true),
    ("?StopLogging ?DeleteTrail", "update-trail", false),
    ("ConsoleLogin -Failure", "console-login-failed", false),
    ("ConsoleLogin -Failure", "console-login-iamuser-nomfa", true),
    (r#""Failed authentication""#, "console-login-failed", true),
    ("consolelogin", "console-login-root", false),
    ("", "foo-bar", true),
    (r#"" ""#, "foo-bar", true),
];

const CIS_41_TEXT: &str = r#"{ ($.errorCode ="*UnauthorizedOperation") || ($.errorCode ="AccessDenied*") && ($.sourceIPAddress!="delivery.logs.amazonaws.com") && ($.eventName!="HeadBucket") }"#;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(format!("{name}.json"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn resolve(spec: &str, pack: &BTreeMap<String, FilterPattern>) -> FilterPattern {
    match spec.strip_prefix("rule:") {
        Some(id) => pack
            .get(id)
            .unwrap_or_else(|| panic!("no built-in rule {id}"))
            .clone(),
        None => FilterPattern::parse(spec).unwrap_or_else(|e| panic!("{spec}: {}", e.render(spec))),
    }
}

#[test]
fn pattern_event_table() {
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    let pack: BTreeMap<String, FilterPattern> = builtin_rules()
        .expect("pack")
        .into_iter()
        .map(|r| (r.id, r.pattern))
        .collect();
    let patterns: Vec<FilterPattern> = CASES.iter().map(|(p, _, _)| resolve(p, &pack)).collect();
    let mut scratch = Scratch::new();
    let mut failures = Vec::new();
    let mut events = BTreeSet::new();
    for ((spec, ev, want), pattern) in CASES.iter().zip(&patterns) {
        events.insert(*ev);
        let bytes = fixture(ev);
        let fields = FieldParser::new()
            .parse(&bytes, 0, 0)
            .expect("fixture parses");
        let engine = Engine::new(&[pattern]);
        let with_fields = engine.matches(&mut scratch, &bytes, Some(&fields));
        let without = engine.matches(&mut scratch, &bytes, None);
        if with_fields != *want || without != *want {
            failures.push(format!(
                "{spec} on {ev}: want {want}, got {with_fields} (key fields) / {without} (full parse)"
            ));
        }
    }
    // All patterns at once: the indexed path must give the same answers.
    let refs: Vec<&FilterPattern> = patterns.iter().collect();
    let all = Engine::new(&refs);
    let mut out = Vec::new();
    for ev in &events {
        let bytes = fixture(ev);
        let fields = FieldParser::new()
            .parse(&bytes, 0, 0)
            .expect("fixture parses");
        all.matching(&mut scratch, &bytes, Some(&fields), &mut out);
        for (i, (spec, e, want)) in CASES.iter().enumerate() {
            if e == ev && out.contains(&(i as u32)) != *want {
                failures.push(format!("{spec} on {ev}: rule-set evaluation disagrees"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{} pattern × event cases passed", CASES.len());
}

/// Malformed patterns: (pattern, 1-based column, a phrase of the expectation).
const BAD: &[(&str, usize, &str)] = &[
    ("{ $.eventName = }", 17, "a value after `=`"),
    ("{ $.eventName = ConsoleLogin", 29, "`&&`, `||` or `}`"),
    ("{ $.eventName ConsoleLogin }", 15, "an operator"),
    ("{ eventName = ConsoleLogin }", 3, "a condition"),
    ("{ $eventName = x }", 4, "`.` after `$`"),
    (
        "{ ($.a = 1) && ($.b = 2 }",
        25,
        "`)` to close the `(` at column 16",
    ),
    ("{ $.a = 1 || }", 14, "a condition"),
    ("{ $.a = 1 | $.b = 2 }", 11, "`||`"),
    ("{ $.a > \"5\" }", 9, "a number after `>`"),
    ("{ $.a <= x1 }", 10, "a number after `<=`"),
    (
        "{ $.a IS NOTNULL }",
        10,
        "`NULL`, `TRUE` or `FALSE` after `IS`",
    ),
    ("{ $.a NOT EXIST }", 11, "`EXISTS` after `NOT`"),
    ("{ $.a EXISTS }", 7, "`EXISTS` alone is not supported"),
    ("{ $.a[x] = 1 }", 7, "an array index"),
    ("{ $.a[0 = 1 }", 8, "`]`"),
    (
        "{ $.a = \"unterminated }",
        24,
        "`\"` to close the string opened at column 9",
    ),
    ("{ $.a = %regex% }", 9, "regular expressions"),
    ("{ $.a = a,b }", 10, "quote values"),
    ("{ $.a = 1 } extra", 13, "the end of the pattern"),
    ("{ }", 3, "a condition"),
    ("[ip, user, status_code=404]", 1, "space-delimited"),
    ("ERROR foo@bar", 10, "quote terms"),
];

#[test]
fn malformed_patterns_report_column_and_expectation() {
    let mut failures = Vec::new();
    for (p, col, phrase) in BAD {
        match FilterPattern::parse(p) {
            Ok(_) => failures.push(format!("{p}: parsed")),
            Err(e) => {
                if e.column != *col || !e.expected.contains(phrase) {
                    failures.push(format!("{p}: got {e} (want column {col}, `{phrase}`)"));
                }
                let shown = e.render(p);
                assert!(shown.contains(&format!("column {col}")), "{shown}");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
