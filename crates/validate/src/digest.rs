//! Digest files: the JSON fields, the string CloudTrail signs, and the signature check.
//!
//! Recipe (aws-cli `Sha256RSADigestValidator`, specs §3.2):
//!
//! ```text
//! to_sign = digestEndTime + "\n" + digestS3Bucket + "/" + digestS3Object + "\n"
//!           + hex(sha256(inflated digest bytes)) + "\n" + (previousDigestSignature or "null")
//! valid   = RSASSA-PKCS1-v1_5 verify with SHA-256 over to_sign, key = PKCS#1 DER
//! ```
//!
//! The three fields come from the digest JSON itself; the hash is over the exact uncompressed
//! bytes, never re-serialised JSON.

use rsa::pkcs1::DecodeRsaPublicKey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The keys aws-cli requires before it validates a digest (`previousDigestSignature` may be
/// `null` but must be present).
pub const REQUIRED_KEYS: [&str; 6] = [
    "digestPublicKeyFingerprint",
    "digestS3Bucket",
    "digestS3Object",
    "previousDigestSignature",
    "digestEndTime",
    "digestStartTime",
];

/// One `logFiles[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFileEntry {
    pub s3_bucket: String,
    pub s3_object: String,
    pub hash_value: String,
    pub hash_algorithm: Option<String>,
    pub newest_event_time: Option<String>,
    pub oldest_event_time: Option<String>,
}

/// A parsed digest: the fields validation uses, taken from the JSON as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestFile {
    /// Lower-case hex SHA-256 of the uncompressed digest bytes.
    pub inflated_sha256: String,
    pub account_id: Option<String>,
    pub start_time: String,
    pub end_time: String,
    pub bucket: String,
    pub object: String,
    pub fingerprint: String,
    pub signature_algorithm: Option<String>,
    pub previous_bucket: Option<String>,
    pub previous_object: Option<String>,
    pub previous_hash: Option<String>,
    pub previous_hash_algorithm: Option<String>,
    /// `None` when JSON `null` (a starting digest).
    pub previous_signature: Option<String>,
    /// `Err` with the reason when `logFiles` is absent or malformed.
    pub log_files: Result<Vec<LogFileEntry>, String>,
}

/// Why a digest's JSON is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestFormatError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("not a JSON object")]
    NotObject,
    #[error("missing required field {0}")]
    Missing(&'static str),
    #[error("field {0} is not a string")]
    NotString(&'static str),
}

fn opt_string(
    m: &Map<String, Value>,
    k: &'static str,
) -> Result<Option<String>, DigestFormatError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(DigestFormatError::NotString(k)),
    }
}

fn req_string(m: &Map<String, Value>, k: &'static str) -> Result<String, DigestFormatError> {
    opt_string(m, k)?.ok_or(DigestFormatError::Missing(k))
}

/// Parses uncompressed digest bytes.
pub fn parse_digest(inflated: &[u8]) -> Result<DigestFile, DigestFormatError> {
    let v: Value =
        serde_json::from_slice(inflated).map_err(|e| DigestFormatError::Json(e.to_string()))?;
    let Value::Object(m) = v else {
        return Err(DigestFormatError::NotObject);
    };
    for k in REQUIRED_KEYS {
        if !m.contains_key(k) {
            return Err(DigestFormatError::Missing(k));
        }
    }
    let log_files = match m.get("logFiles") {
        None => Err("logFiles is missing".to_owned()),
        Some(v) => serde_json::from_value::<Vec<LogFileEntry>>(v.clone())
            .map_err(|e| format!("logFiles is malformed: {e}")),
    };
    Ok(DigestFile {
        inflated_sha256: crate::loghash::sha256_hex(inflated),
        account_id: opt_string(&m, "awsAccountId")?,
        start_time: req_string(&m, "digestStartTime")?,
        end_time: req_string(&m, "digestEndTime")?,
        bucket: req_string(&m, "digestS3Bucket")?,
        object: req_string(&m, "digestS3Object")?,
        fingerprint: req_string(&m, "digestPublicKeyFingerprint")?,
        signature_algorithm: opt_string(&m, "digestSignatureAlgorithm")?,
        previous_bucket: opt_string(&m, "previousDigestS3Bucket")?,
        previous_object: opt_string(&m, "previousDigestS3Object")?,
        previous_hash: opt_string(&m, "previousDigestHashValue")?,
        previous_hash_algorithm: opt_string(&m, "previousDigestHashAlgorithm")?,
        previous_signature: opt_string(&m, "previousDigestSignature")?,
        log_files,
    })
}

/// The exact string CloudTrail signs (UTF-8, `\n` separators, no trailing newline).
pub fn string_to_sign(
    end_time: &str,
    bucket: &str,
    object: &str,
    inflated_sha256_hex: &str,
    previous_signature: Option<&str>,
) -> String {
    format!(
        "{end_time}\n{bucket}/{object}\n{inflated_sha256_hex}\n{}",
        previous_signature.unwrap_or("null")
    )
}

impl DigestFile {
    /// The string this digest's signature must cover.
    pub fn string_to_sign(&self) -> String {
        string_to_sign(
            &self.end_time,
            &self.bucket,
            &self.object,
            &self.inflated_sha256,
            self.previous_signature.as_deref(),
        )
    }
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The public key bytes are not a PKCS#1 RSAPublicKey.
    #[error("unable to load PKCS #1 key: {0}")]
    BadKey(String),
    #[error("signature verification failed: the signature is not hex")]
    NotHex,
    #[error("signature verification failed")]
    Mismatch,
}

/// Parses a PKCS#1 DER public key.
pub fn parse_public_key(pkcs1_der: &[u8]) -> Result<rsa::PublicKey, VerifyError> {
    rsa::PublicKey::from_pkcs1_der(pkcs1_der).map_err(|e| VerifyError::BadKey(e.to_string()))
}

/// RSASSA-PKCS1-v1_5 / SHA-256 verification of `message` against a hex signature.
pub fn verify(
    key: &rsa::PublicKey,
    message: &[u8],
    signature_hex: &str,
) -> Result<(), VerifyError> {
    use rsa::traits::PublicKeyParts;
    let mut sig = hex::decode(signature_hex).map_err(|_| VerifyError::NotHex)?;
    // python-rsa (aws-cli) accepts a signature whose leading zero bytes were dropped.
    let size = key.size();
    if sig.len() < size {
        let mut padded = vec![0u8; size - sig.len()];
        padded.extend_from_slice(&sig);
        sig = padded;
    }
    key.pkcs1v15_verify::<rsa::sha2::Sha256>(message, &sig)
        .map_err(|_| VerifyError::Mismatch)
}

/// The digest JSON as CloudTrail writes it (field order of the documentation), for
/// generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestJson {
    pub aws_account_id: String,
    pub digest_start_time: String,
    pub digest_end_time: String,
    pub digest_s3_bucket: String,
    pub digest_s3_object: String,
    pub digest_public_key_fingerprint: String,
    pub digest_signature_algorithm: String,
    pub newest_event_time: Option<String>,
    pub oldest_event_time: Option<String>,
    pub previous_digest_s3_bucket: Option<String>,
    pub previous_digest_s3_object: Option<String>,
    pub previous_digest_hash_value: Option<String>,
    pub previous_digest_hash_algorithm: Option<String>,
    pub previous_digest_signature: Option<String>,
    pub log_files: Vec<LogFileEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_DIGEST: &str = r#"{
  "awsAccountId": "111122223333",
  "digestStartTime": "2015-08-17T14:01:31Z",
  "digestEndTime": "2015-08-17T15:01:31Z",
  "digestS3Bucket": "S3-bucket-name",
  "digestS3Object": "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T150131Z.json.gz",
  "digestPublicKeyFingerprint": "31e8b5433410dfb61a9dc45cc65b22ff",
  "digestSignatureAlgorithm": "SHA256withRSA",
  "newestEventTime": "2015-08-17T14:52:27Z",
  "oldestEventTime": "2015-08-17T14:42:27Z",
  "previousDigestS3Bucket": "S3-bucket-name",
  "previousDigestS3Object": "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T140131Z.json.gz",
  "previousDigestHashValue": "97fb791cf91ffc440d274f8190dbdd9aa09c34432aba82739df18b6d3c13df2d",
  "previousDigestHashAlgorithm": "SHA-256",
  "previousDigestSignature": "50887ccf",
  "logFiles": [
    {
      "s3Bucket": "S3-bucket-name",
      "s3Object": "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz",
      "hashValue": "9bb6196fc6b84d6f075a56548feca262bd99ba3c2de41b618e5b6e22c1fc71f6",
      "hashAlgorithm": "SHA-256",
      "newestEventTime": "2015-08-17T14:52:27Z",
      "oldestEventTime": "2015-08-17T14:42:27Z"
    }
  ]
}"#;

    #[test]
    fn parses_the_documented_digest() {
        let d = parse_digest(DOC_DIGEST.as_bytes()).unwrap();
        assert_eq!(d.end_time, "2015-08-17T15:01:31Z");
        assert_eq!(d.fingerprint, "31e8b5433410dfb61a9dc45cc65b22ff");
        assert_eq!(d.previous_signature.as_deref(), Some("50887ccf"));
        let logs = d.log_files.as_ref().unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].hash_algorithm.as_deref(), Some("SHA-256"));
        assert_eq!(
            d.inflated_sha256,
            crate::loghash::sha256_hex(DOC_DIGEST.as_bytes())
        );
    }

    #[test]
    fn signing_string_is_exactly_the_cli_one() {
        let d = parse_digest(DOC_DIGEST.as_bytes()).unwrap();
        let want = format!(
            "2015-08-17T15:01:31Z\nS3-bucket-name/AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T150131Z.json.gz\n{}\n50887ccf",
            d.inflated_sha256
        );
        assert_eq!(d.string_to_sign(), want);
        assert!(!want.ends_with('\n'));
    }

    #[test]
    fn starting_digest_signs_literal_null() {
        let json = DOC_DIGEST.replace("\"50887ccf\"", "null").replace(
            "\"previousDigestS3Bucket\": \"S3-bucket-name\"",
            "\"previousDigestS3Bucket\": null",
        );
        let d = parse_digest(json.as_bytes()).unwrap();
        assert_eq!(d.previous_signature, None);
        assert_eq!(d.previous_bucket, None);
        assert!(d.string_to_sign().ends_with("\nnull"));
        assert_eq!(string_to_sign("E", "b", "k", "h", None), "E\nb/k\nh\nnull");
    }

    #[test]
    fn required_keys_like_the_cli() {
        for k in REQUIRED_KEYS {
            let mut v: Value = serde_json::from_str(DOC_DIGEST).unwrap();
            v.as_object_mut().unwrap().remove(k);
            let err = parse_digest(v.to_string().as_bytes()).unwrap_err();
            assert_eq!(err, DigestFormatError::Missing(k));
        }
        // previousDigestSignature may be null but not absent; logFiles problems are deferred.
        let mut v: Value = serde_json::from_str(DOC_DIGEST).unwrap();
        v.as_object_mut().unwrap().remove("logFiles");
        assert!(parse_digest(v.to_string().as_bytes())
            .unwrap()
            .log_files
            .is_err());
        assert!(matches!(
            parse_digest(b"[1]"),
            Err(DigestFormatError::NotObject)
        ));
        assert!(matches!(
            parse_digest(b"{"),
            Err(DigestFormatError::Json(_))
        ));
    }

    #[test]
    fn bad_key_and_bad_hex() {
        assert!(matches!(
            parse_public_key(b"\x30\x03\x02\x01\x01"),
            Err(VerifyError::BadKey(_))
        ));
    }
}
