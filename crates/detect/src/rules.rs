//! Rules: TOML files of filter patterns with an id, a title and a severity. The built-in pack
//! (`config/rules/*.toml`) is embedded in the binary; users add a directory of their own files,
//! whose rules replace built-in ones with the same id.

use crate::engine::{Engine, Scratch};
use crate::pattern::FilterPattern;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use trailhose_core::KeyFields;

/// The embedded default pack: (file name, contents).
pub const BUILTIN: &[(&str, &str)] = &[
    ("cis.toml", include_str!("../../../config/rules/cis.toml")),
    (
        "trailhose.toml",
        include_str!("../../../config/rules/trailhose.toml"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub pack: String,
    pub description: Option<String>,
    pub controls: Vec<String>,
    pub pattern: FilterPattern,
    /// Where the rule came from: `builtin:cis.toml` or a file path.
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{origin}: {reason}")]
    File { origin: String, reason: String },
    /// `rendered` is the pattern error with the pattern and a caret under the column.
    #[error("{origin}:{line}: rule `{id}`: pattern {rendered}")]
    Pattern {
        origin: String,
        line: usize,
        id: String,
        rendered: String,
    },
    #[error("{0}")]
    Set(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    pack: Option<String>,
    #[serde(default)]
    rule: Vec<RuleDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    id: String,
    title: String,
    severity: Severity,
    pattern: toml::Spanned<String>,
    description: Option<String>,
    #[serde(default)]
    controls: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].lines().count().max(1)
        + usize::from(text[..offset.min(text.len())].ends_with('\n'))
}

/// Parses one rule file. Disabled rules (`enabled = false`) are left out. Ids must be made of
/// letters, digits, `.`, `-` and `_`.
pub fn parse_rule_file(text: &str, origin: &str) -> Result<Vec<Rule>, RuleError> {
    let file: RuleFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        RuleError::File {
            origin: match line {
                Some(l) => format!("{origin}:{l}"),
                None => origin.to_string(),
            },
            reason: e.message().to_string(),
        }
    })?;
    let pack = file.pack.unwrap_or_else(|| {
        Path::new(origin)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    });
    let mut out = Vec::new();
    for def in file.rule {
        let line = line_of(text, def.pattern.span().start);
        if def.id.is_empty()
            || !def
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(RuleError::File {
                origin: format!("{origin}:{line}"),
                reason: format!(
                    "rule id `{}` must be non-empty letters, digits, `.`, `-` and `_`",
                    def.id
                ),
            });
        }
        let text = def.pattern.into_inner();
        let pattern = FilterPattern::parse(&text).map_err(|error| RuleError::Pattern {
            origin: origin.to_string(),
            line,
            id: def.id.clone(),
            rendered: error.render(&text),
        })?;
        if !def.enabled {
            continue;
        }
        out.push(Rule {
            id: def.id,
            title: def.title,
            severity: def.severity,
            pack: pack.clone(),
            description: def.description,
            controls: def.controls,
            pattern,
            origin: origin.to_string(),
        });
    }
    Ok(out)
}

/// The embedded default pack.
pub fn builtin_rules() -> Result<Vec<Rule>, RuleError> {
    let mut out = Vec::new();
    for (name, text) in BUILTIN {
        out.extend(parse_rule_file(text, &format!("builtin:{name}"))?);
    }
    Ok(out)
}

/// Every `*.toml` in `dir`, in name order.
pub fn load_dir(dir: &Path) -> Result<Vec<Rule>, RuleError> {
    let read_err = |e: std::io::Error| RuleError::File {
        origin: dir.display().to_string(),
        reason: format!("cannot read the rules directory: {e}"),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| RuleError::File {
            origin: f.display().to_string(),
            reason: format!("cannot read: {e}"),
        })?;
        out.extend(parse_rule_file(&text, &f.display().to_string())?);
    }
    Ok(out)
}

/// Where rules come from.
#[derive(Debug, Clone, Default)]
pub struct RuleSources {
    /// Include the embedded pack.
    pub builtin: bool,
    /// A directory of user rule files.
    pub dir: Option<PathBuf>,
    /// Rule ids to leave out; each must exist.
    pub disable: Vec<String>,
}

/// Rules compiled together: one evaluation per record for the whole set.
pub struct RuleSet {
    rules: Vec<Rule>,
    engine: Engine,
}

impl RuleSet {
    /// Fails on duplicate ids.
    pub fn new(rules: Vec<Rule>) -> Result<RuleSet, RuleError> {
        let mut seen = BTreeSet::new();
        for r in &rules {
            if !seen.insert(r.id.as_str()) {
                return Err(RuleError::Set(format!(
                    "rule id `{}` is defined twice ({})",
                    r.id, r.origin
                )));
            }
        }
        let patterns: Vec<&FilterPattern> = rules.iter().map(|r| &r.pattern).collect();
        let engine = Engine::new(&patterns);
        Ok(RuleSet { rules, engine })
    }

    /// Built-in rules, replaced by user rules of the same id, minus the disabled ones.
    pub fn load(src: &RuleSources) -> Result<RuleSet, RuleError> {
        let mut rules = if src.builtin {
            builtin_rules()?
        } else {
            Vec::new()
        };
        if let Some(dir) = &src.dir {
            let user = load_dir(dir)?;
            let mut user_ids = BTreeSet::new();
            for r in &user {
                if !user_ids.insert(r.id.clone()) {
                    return Err(RuleError::Set(format!(
                        "rule id `{}` is defined twice in {}",
                        r.id,
                        dir.display()
                    )));
                }
            }
            rules.retain(|b| !user_ids.contains(&b.id));
            rules.extend(user);
        }
        for id in &src.disable {
            if !rules.iter().any(|r| &r.id == id) {
                return Err(RuleError::Set(format!(
                    "cannot disable rule `{id}`: no such rule (see `trailhose rules list`)"
                )));
            }
        }
        rules.retain(|r| !src.disable.contains(&r.id));
        RuleSet::new(rules)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Indices (into [`rules`](Self::rules)) of the rules `record` matches.
    pub fn matching(
        &self,
        s: &mut Scratch,
        record: &[u8],
        fields: Option<&KeyFields>,
        out: &mut Vec<u32>,
    ) {
        self.engine.matching(s, record, fields, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_pack_parses_and_has_every_cis_control() {
        let rules = builtin_rules().expect("built-in pack");
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        for want in [
            "cis-unauthorized-api-calls",
            "cis-console-signin-without-mfa",
            "cis-root-usage",
            "cis-iam-policy-changes",
            "cis-cloudtrail-config-changes",
            "cis-console-auth-failures",
            "cis-cmk-disable-or-deletion",
            "cis-s3-bucket-policy-changes",
            "cis-aws-config-changes",
            "cis-security-group-changes",
            "cis-nacl-changes",
            "cis-network-gateway-changes",
            "cis-route-table-changes",
            "cis-vpc-changes",
            "cis-organizations-changes",
            "root-console-login",
            "console-login-without-mfa",
            "cloudtrail-stopped-or-deleted",
            "kms-key-scheduled-deletion",
            "root-access-key-created",
        ] {
            assert!(ids.contains(&want), "missing {want}");
        }
        // Variants are shipped disabled.
        assert!(!ids.iter().any(|i| i.ends_with("-text")));
        assert_eq!(rules.len(), 20);
        let set = RuleSet::new(rules).expect("unique ids");
        // Only the errorCode wildcard rule cannot be indexed on a key field.
        assert_eq!(set.engine().unindexed(), 1);
    }

    #[test]
    fn pattern_errors_name_file_line_and_column() {
        let text = "pack = \"x\"\n\n[[rule]]\nid = \"bad\"\ntitle = \"t\"\nseverity = \"low\"\npattern = '{ $.a = }'\n";
        let e = parse_rule_file(text, "mine.toml").expect_err("bad pattern");
        let s = e.to_string();
        assert!(
            s.starts_with("mine.toml:7: rule `bad`: pattern column 9"),
            "{s}"
        );
        let e = parse_rule_file(
            "[[rule]]\nid = \"x\"\ntitle = \"t\"\nseverity = \"urgent\"\npattern = '{}'\n",
            "m.toml",
        )
        .expect_err("bad severity");
        assert!(e.to_string().contains("m.toml:4"), "{e}");
        let e = parse_rule_file(
            "[[rule]]\nid = \"x y\"\ntitle = \"t\"\nseverity = \"low\"\npattern = ''\n",
            "m.toml",
        )
        .expect_err("bad id");
        assert!(e.to_string().contains("rule id `x y`"), "{e}");
    }

    #[test]
    fn user_rules_replace_builtin_and_disable_is_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("mine.toml"),
            "[[rule]]\nid = \"cis-root-usage\"\ntitle = \"mine\"\nseverity = \"critical\"\npattern = '{ $.userIdentity.type = Root }'\n\n[[rule]]\nid = \"extra\"\ntitle = \"x\"\nseverity = \"low\"\npattern = 'ERROR'\n",
        )
        .expect("write");
        let set = RuleSet::load(&RuleSources {
            builtin: true,
            dir: Some(dir.path().to_path_buf()),
            disable: vec!["cis-vpc-changes".into()],
        })
        .expect("loads");
        assert_eq!(set.len(), 20);
        let root = set
            .rules()
            .iter()
            .find(|r| r.id == "cis-root-usage")
            .expect("present");
        assert_eq!(
            (root.title.as_str(), root.severity),
            ("mine", Severity::Critical)
        );
        assert_eq!(root.pack, "mine");
        assert!(!set.rules().iter().any(|r| r.id == "cis-vpc-changes"));
        let e = RuleSet::load(&RuleSources {
            builtin: true,
            dir: None,
            disable: vec!["no-such".into()],
        })
        .err()
        .expect("unknown id");
        assert!(e.to_string().contains("no-such"), "{e}");
    }
}
