//! What a validation run found: counts, every problem with its object and reason, and (with
//! `verbose`) every valid object. Rendered as text (aws-cli-like lines) or JSON.

use serde::Serialize;
use std::fmt::Write;

/// The kind of a problem; its `snake_case` name is stable (JSON `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A digest the chain points to (or a listed one) does not exist.
    DigestMissing,
    /// Not gzip, not JSON, required fields missing, bad times; backfill without its metadata.
    DigestInvalidFormat,
    /// `digestS3Bucket`/`digestS3Object` differ from where the digest was read.
    DigestMoved,
    /// No public key with the digest's fingerprint.
    DigestUnknownKey,
    /// The public key bytes do not parse as PKCS#1.
    DigestBadKey,
    /// No signature metadata, or the RSA signature does not verify.
    DigestBadSignature,
    /// The chain has no link to an older digest though older digests exist (logging or
    /// validation was off, or digests were removed and the chain restarted).
    ChainGap,
    /// Strict: a link's `previousDigestHashValue`, `previousDigestSignature` or time
    /// continuity does not match the previous digest.
    ChainLinkMismatch,
    /// A digest points back to one already visited.
    ChainLoop,
    /// Strict: a digest listed in the range that no chain reaches.
    DigestNotOnChain,
    LogMissing,
    /// The SHA-256 of the uncompressed bytes differs from the digest's `hashValue`.
    LogModified,
    /// Bytes after the end of the gzip stream.
    LogTrailingData,
    /// Not a readable single-member gzip stream (corrupt, truncated, bad CRC).
    LogInvalidFormat,
    /// Strict: a log file in the store that no digest lists, within the time the valid
    /// digests cover.
    LogUnlisted,
}

impl ProblemKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProblemKind::DigestMissing => "digest_missing",
            ProblemKind::DigestInvalidFormat => "digest_invalid_format",
            ProblemKind::DigestMoved => "digest_moved",
            ProblemKind::DigestUnknownKey => "digest_unknown_key",
            ProblemKind::DigestBadKey => "digest_bad_key",
            ProblemKind::DigestBadSignature => "digest_bad_signature",
            ProblemKind::ChainGap => "chain_gap",
            ProblemKind::ChainLinkMismatch => "chain_link_mismatch",
            ProblemKind::ChainLoop => "chain_loop",
            ProblemKind::DigestNotOnChain => "digest_not_on_chain",
            ProblemKind::LogMissing => "log_missing",
            ProblemKind::LogModified => "log_modified",
            ProblemKind::LogTrailingData => "log_trailing_data",
            ProblemKind::LogInvalidFormat => "log_invalid_format",
            ProblemKind::LogUnlisted => "log_unlisted",
        }
    }

    /// Whether the object is a log file (else a digest or the chain).
    pub fn is_log(&self) -> bool {
        matches!(
            self,
            ProblemKind::LogMissing
                | ProblemKind::LogModified
                | ProblemKind::LogTrailingData
                | ProblemKind::LogInvalidFormat
                | ProblemKind::LogUnlisted
        )
    }
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub bucket: String,
    pub key: String,
    pub reason: String,
    /// Found while walking backfill digests.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
    /// For log problems: the digest that lists the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest_key: Option<String>,
    /// Whether it makes the run fail (chain gaps do not under `allow_gaps`).
    pub fails: bool,
}

/// A valid object (reported with `verbose`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidObject {
    /// `digest`, `backfill_digest` or `log`.
    pub object: &'static str,
    pub bucket: String,
    pub key: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub valid: u64,
    /// Invalid for any reason, including missing.
    pub invalid: u64,
    /// Of `invalid`, how many were missing.
    pub missing: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.valid + self.invalid
    }
}

/// One chain (trail × account × source Region) that was walked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    pub org_id: Option<String>,
    pub account_id: String,
    pub region: String,
    pub trail_name: String,
    pub home_region: String,
    pub digests: Counts,
    pub backfill_digests: Counts,
    pub log_files: Counts,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub source: String,
    /// RFC 3339; `None` = from the beginning.
    pub requested_start: Option<String>,
    pub requested_end: String,
    /// Clamped to the requested range, from the valid digests (as aws-cli reports it).
    pub found_start: Option<String>,
    pub found_end: Option<String>,
    pub strict: bool,
    pub allow_gaps: bool,
    pub chains: Vec<ChainSummary>,
    pub digests: Counts,
    pub backfill_digests: Counts,
    pub log_files: Counts,
    /// Strict only: log files no digest lists.
    pub unlisted_log_files: u64,
    /// Chain gaps between standard digests (backfill breaks are reported, never counted).
    pub gaps: u64,
    pub problems: Vec<Problem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub valid_objects: Vec<ValidObject>,
    pub compressed_bytes_hashed: u64,
    pub uncompressed_bytes_hashed: u64,
    pub elapsed_seconds: f64,
    /// True when nothing failed.
    pub ok: bool,
}

impl Report {
    /// Whether every digest and log file checked is valid (the exit code is 0 exactly then).
    pub fn is_ok(&self) -> bool {
        !self.problems.iter().any(|p| p.fails)
    }

    /// Problems of one kind.
    pub fn problems_of(&self, kind: ProblemKind) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.kind == kind)
    }

    /// Uncompressed MB/s of log hashing over the run's wall time.
    pub fn mb_per_second(&self) -> f64 {
        self.uncompressed_bytes_hashed as f64 / 1e6 / self.elapsed_seconds.max(1e-9)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// aws-cli-like text: problems as `Digest file\ts3://b/k\tINVALID: reason [kind]`, then a
    /// summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Validating CloudTrail log files in {} between {} and {}{}\n",
            self.source,
            self.requested_start.as_deref().unwrap_or("the beginning"),
            self.requested_end,
            if self.strict { " (strict)" } else { "" }
        );
        for v in &self.valid_objects {
            let what = match v.object {
                "digest" => "Digest file",
                "backfill_digest" => "(backfill) Digest file",
                _ => "Log file",
            };
            let _ = writeln!(s, "{what}\ts3://{}/{}\tvalid", v.bucket, v.key);
        }
        for p in &self.problems {
            let what = match (p.kind, p.backfill) {
                (ProblemKind::ChainGap, b) => {
                    let _ = writeln!(
                        s,
                        "{}{}\ts3://{}/{}\t{} [{}]",
                        if b { "(backfill) " } else { "" },
                        if p.fails { "GAP" } else { "gap (allowed)" },
                        p.bucket,
                        p.key,
                        p.reason,
                        p.kind.as_str()
                    );
                    continue;
                }
                (k, _) if k.is_log() => "Log file",
                (_, true) => "(backfill) Digest file",
                (_, false) => "Digest file",
            };
            let _ = writeln!(
                s,
                "{what}\ts3://{}/{}\tINVALID: {} [{}]",
                p.bucket,
                p.key,
                p.reason,
                p.kind.as_str()
            );
        }
        if !self.valid_objects.is_empty() || !self.problems.is_empty() {
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "Results requested for {} to {}",
            self.requested_start.as_deref().unwrap_or("the beginning"),
            self.requested_end
        );
        if self.digests.total() + self.backfill_digests.total() == 0 {
            let _ = writeln!(s, "No digests found");
        } else if let (Some(a), Some(b)) = (&self.found_start, &self.found_end) {
            let _ = writeln!(s, "Results found for {a} to {b}:");
        } else {
            let _ = writeln!(s, "No valid digests found in range");
        }
        let ratio = |s: &mut String, c: &Counts, name: &str| {
            if c.total() > 0 {
                let _ = write!(s, "\n{}/{} {name} files valid", c.valid, c.total());
                if c.invalid > 0 {
                    let _ = write!(s, ", {}/{} {name} files INVALID", c.invalid, c.total());
                    if c.missing > 0 {
                        let _ = write!(s, " ({} missing)", c.missing);
                    }
                }
            }
        };
        ratio(&mut s, &self.digests, "digest");
        ratio(&mut s, &self.backfill_digests, "backfill digest");
        ratio(&mut s, &self.log_files, "log");
        s.push('\n');
        if self.strict {
            let _ = writeln!(
                s,
                "{} log files present that no digest lists",
                self.unlisted_log_files
            );
        }
        if self.gaps > 0 {
            let _ = writeln!(
                s,
                "{} chain gaps{}",
                self.gaps,
                if self.allow_gaps { " (allowed)" } else { "" }
            );
        }
        let _ = writeln!(
            s,
            "{} chains; hashed {:.1} MB of log files ({:.1} MB uncompressed) in {:.2} s: {:.0} MB/s uncompressed",
            self.chains.len(),
            self.compressed_bytes_hashed as f64 / 1e6,
            self.uncompressed_bytes_hashed as f64 / 1e6,
            self.elapsed_seconds,
            self.mb_per_second()
        );
        let failing = self.problems.iter().filter(|p| p.fails).count();
        if failing == 0 {
            let _ = writeln!(s, "RESULT: valid");
        } else {
            let _ = writeln!(s, "RESULT: INVALID ({failing} problems)");
        }
        s
    }
}
