//! Public keys for verification and private keys for generating signed chains.
//!
//! CloudTrail publishes each Region's keys through `ListPublicKeys` as DER **PKCS#1
//! RSAPublicKey** bytes; a digest names its key by fingerprint = hex(MD5(those DER bytes)).
//! A [`KeyRing`] is filled from files:
//!
//! - `*.der`: PKCS#1 RSAPublicKey (used as is) or SubjectPublicKeyInfo (re-encoded as PKCS#1);
//! - `*.pem`: `RSA PUBLIC KEY` (PKCS#1) or `PUBLIC KEY` (SPKI);
//! - `*.json`: the output of `aws cloudtrail list-public-keys` (`PublicKeyList[].Value` is
//!   base64 DER, `Fingerprint` its fingerprint), so keys fetched once can be used offline.
//!
//! A directory is read for those three extensions; a file whose stem looks like a fingerprint
//! must hold the key with that fingerprint.

use base64ct::Encoding;
use md5::{Digest, Md5};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, LineEnding};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// hex(MD5(PKCS#1 DER)): CloudTrail's public key fingerprint.
pub fn fingerprint(pkcs1_der: &[u8]) -> String {
    hex::encode(Md5::digest(pkcs1_der))
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("generating an RSA key: {0}")]
    Generate(String),
    #[error("signing: {0}")]
    Sign(String),
}

fn invalid(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::Invalid {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One public key: the DER bytes as published, parsed on first use (a key that does not
/// parse is reported on the digests that name it, as aws-cli does).
#[derive(Debug)]
pub struct KeyEntry {
    pub der: Vec<u8>,
    /// Where it came from (file name), for messages.
    pub source: String,
    parsed: OnceLock<Result<rsa::PublicKey, String>>,
}

impl KeyEntry {
    /// The parsed key, or why the DER is not a PKCS#1 RSA public key.
    pub fn key(&self) -> Result<&rsa::PublicKey, &str> {
        self.parsed
            .get_or_init(|| rsa::PublicKey::from_pkcs1_der(&self.der).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }
}

/// Public keys by fingerprint.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, KeyEntry>,
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn fingerprints(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn get(&self, fingerprint: &str) -> Option<&KeyEntry> {
        self.keys.get(fingerprint)
    }

    /// Adds PKCS#1 DER bytes under their computed fingerprint, which is returned.
    pub fn add_der(&mut self, der: Vec<u8>, source: impl Into<String>) -> String {
        let fp = fingerprint(&der);
        self.add_listed(fp.clone(), der, source);
        fp
    }

    /// Adds a key under the fingerprint a listing gave for it (as aws-cli maps
    /// `ListPublicKeys` output).
    pub fn add_listed(&mut self, fingerprint: String, der: Vec<u8>, source: impl Into<String>) {
        self.keys.insert(
            fingerprint,
            KeyEntry {
                der,
                source: source.into(),
                parsed: OnceLock::new(),
            },
        );
    }

    /// Loads a key file or every `.der`/`.pem`/`.json` file of a directory; returns how many
    /// keys were added.
    pub fn load(&mut self, path: &Path) -> Result<usize, KeyError> {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        if !meta.is_dir() {
            return self.load_file(path);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io(path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| matches!(e, "der" | "pem" | "json"))
            })
            .collect();
        files.sort();
        let mut n = 0;
        for f in files {
            n += self.load_file(&f)?;
        }
        Ok(n)
    }

    fn load_file(&mut self, path: &Path) -> Result<usize, KeyError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let source = path.display().to_string();
        if ext == "json" {
            return self.load_list_public_keys(path, &bytes);
        }
        let der = if ext == "pem" || bytes.starts_with(b"-----BEGIN") {
            let text =
                std::str::from_utf8(&bytes).map_err(|_| invalid(path, "PEM is not UTF-8"))?;
            let key = rsa::PublicKey::from_pkcs1_pem(text)
                .or_else(|_| rsa::PublicKey::from_public_key_pem(text))
                .map_err(|e| invalid(path, format!("not an RSA public key PEM: {e}")))?;
            pkcs1_der(&key).map_err(|e| invalid(path, e))?
        } else if rsa::PublicKey::from_pkcs1_der(&bytes).is_ok() {
            bytes
        } else {
            let key = rsa::PublicKey::from_public_key_der(&bytes).map_err(|e| {
                invalid(
                    path,
                    format!("neither PKCS#1 nor SPKI RSA public key DER: {e}"),
                )
            })?;
            pkcs1_der(&key).map_err(|e| invalid(path, e))?
        };
        let fp = fingerprint(&der);
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            if stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit()) && stem != fp {
                return Err(invalid(
                    path,
                    format!("file is named for fingerprint {stem} but holds the key with fingerprint {fp}"),
                ));
            }
        }
        self.add_listed(fp, der, source);
        Ok(1)
    }

    fn load_list_public_keys(&mut self, path: &Path, bytes: &[u8]) -> Result<usize, KeyError> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(path, format!("not JSON: {e}")))?;
        let list = v
            .as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("PublicKeyList"))
                    .map(|(_, v)| v)
            })
            .and_then(|l| l.as_array())
            .ok_or_else(|| {
                invalid(
                    path,
                    "no PublicKeyList array (expected `aws cloudtrail list-public-keys` output)",
                )
            })?;
        let mut n = 0;
        for (i, item) in list.iter().enumerate() {
            let value = item.get("Value").and_then(|v| v.as_str());
            let fp = item.get("Fingerprint").and_then(|v| v.as_str());
            let (Some(value), Some(fp)) = (value, fp) else {
                return Err(invalid(
                    path,
                    format!("PublicKeyList[{i}] lacks Value or Fingerprint"),
                ));
            };
            let der = base64ct::Base64::decode_vec(value.trim()).map_err(|e| {
                invalid(path, format!("PublicKeyList[{i}].Value is not base64: {e}"))
            })?;
            self.add_listed(fp.to_owned(), der, format!("{}[{i}]", path.display()));
            n += 1;
        }
        Ok(n)
    }
}

fn pkcs1_der(key: &rsa::PublicKey) -> Result<Vec<u8>, String> {
    key.to_pkcs1_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| format!("cannot encode as PKCS#1: {e}"))
}

/// An RSA private key that signs digests like CloudTrail (PKCS#1 v1.5, SHA-256).
pub struct SigningKey {
    key: rsa::PrivateKey,
    public_der: Vec<u8>,
    fingerprint: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private material.
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_key(key: rsa::PrivateKey) -> Result<Self, String> {
        let public_der = pkcs1_der(&key.to_public_key())?;
        Ok(SigningKey {
            fingerprint: fingerprint(&public_der),
            key,
            public_der,
        })
    }

    /// A fresh key with the given modulus size (CloudTrail uses 2048).
    pub fn generate(bits: usize) -> Result<Self, KeyError> {
        let mut rng = crypto_common::getrandom::SysRng;
        let key =
            rsa::PrivateKey::new(&mut rng, bits).map_err(|e| KeyError::Generate(e.to_string()))?;
        Self::from_key(key).map_err(KeyError::Generate)
    }

    /// Parses a PKCS#8 or PKCS#1 private key, PEM or DER.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self, KeyError> {
        let key = if let Ok(text) = std::str::from_utf8(bytes) {
            rsa::PrivateKey::from_pkcs8_pem(text)
                .or_else(|_| rsa::PrivateKey::from_pkcs1_pem(text))
                .map_err(|e| invalid(origin, format!("not an RSA private key PEM: {e}")))
        } else {
            rsa::PrivateKey::from_pkcs8_der(bytes)
                .or_else(|_| rsa::PrivateKey::from_pkcs1_der(bytes))
                .map_err(|e| invalid(origin, format!("not an RSA private key DER: {e}")))
        }?;
        Self::from_key(key).map_err(|e| invalid(origin, e))
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        Self::from_bytes(&bytes, path)
    }

    /// Loads `path`, or generates a 2048-bit key and saves it there (PKCS#8 PEM, mode 0600).
    /// Returns the key and whether it was created.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), KeyError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        let key = Self::generate(2048)?;
        key.save_pem(path)?;
        Ok((key, true))
    }

    /// Writes the private key as PKCS#8 PEM, readable by the owner only.
    pub fn save_pem(&self, path: &Path) -> Result<(), KeyError> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| invalid(path, format!("cannot encode the key: {e}")))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io(path))?;
        std::io::Write::write_all(&mut f, pem.as_bytes()).map_err(io(path))
    }

    /// PKCS#1 DER of the public key, as `ListPublicKeys` would return it.
    pub fn public_der(&self) -> &[u8] {
        &self.public_der
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Writes `<dir>/<fingerprint>.der` and returns its path.
    pub fn write_public_key(&self, dir: &Path) -> Result<PathBuf, KeyError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let p = dir.join(format!("{}.der", self.fingerprint));
        std::fs::write(&p, &self.public_der).map_err(io(&p))?;
        Ok(p)
    }

    /// RSASSA-PKCS1-v1_5 / SHA-256 signature of `message`, lower-case hex.
    pub fn sign_hex(&self, message: &[u8]) -> Result<String, KeyError> {
        self.key
            .pkcs1v15_sign::<rsa::sha2::Sha256>(message)
            .map(hex::encode)
            .map_err(|e| KeyError::Sign(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first sample key of `aws cloudtrail list-public-keys` in the CloudTrail user guide
    /// (also aws-cli's `VALID_TEST_KEY`), with its documented fingerprint.
    const DOC_KEY_B64: &str = "MIIBCgKCAQEAn11L2YZ9h7onug2ILi1MWyHiMRsTQjfWE+pHVRLk1QjfWhirG+lpOa8NrwQ/r7Ah5bNL6HepznOU9XTDSfmmnP97mqyc7z/upfZdS/AHhYcGaz7n6Wc/RRBU6VmiPCrAUojuSk6/GjvA8iOPFsYDuBtviXarvuLPlrT9kAd4Lb+rFfR5peEgBEkhlzc5HuWO7S0y+KunqxX6jQBnXGMtxmPBPP0FylgWGNdFtks/4YSKcgqwH0YDcawP9GGGDAeCIqPWIXDLG1jOjRRzWfCmD0iJUkz8vTsn4hq/5ZxRFE7UBAUiVcGbdnDdvVfhF9C3dQiDq3k7adQIziLT0cShgQIDAQAB";

    #[test]
    fn fingerprint_matches_the_documented_one() {
        let der = base64ct::Base64::decode_vec(DOC_KEY_B64).unwrap();
        assert_eq!(fingerprint(&der), "8eba5db5bea9b640d1c96a77256fe7f2");
        // It is a PKCS#1 key, and re-encoding it gives the same bytes.
        let key = rsa::PublicKey::from_pkcs1_der(&der).unwrap();
        assert_eq!(pkcs1_der(&key).unwrap(), der);
    }

    #[test]
    fn list_public_keys_json_and_der_and_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let der = base64ct::Base64::decode_vec(DOC_KEY_B64).unwrap();
        let json = format!(
            r#"{{"PublicKeyList":[{{"Value":"{DOC_KEY_B64}","ValidityStartTime":"2015-07-08T01:04:01Z","ValidityEndTime":"2015-08-07T01:04:01Z","Fingerprint":"8eba5db5bea9b640d1c96a77256fe7f2"}}]}}"#
        );
        std::fs::write(dir.path().join("keys.json"), json).unwrap();
        let key = rsa::PublicKey::from_pkcs1_der(&der).unwrap();
        let spki_pem =
            rsa::pkcs8::EncodePublicKey::to_public_key_pem(&key, LineEnding::LF).unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("8eba5db5bea9b640d1c96a77256fe7f2.pem"), spki_pem).unwrap();
        std::fs::write(sub.join("k.der"), &der).unwrap();
        std::fs::write(sub.join("README.txt"), "ignored").unwrap();

        let mut ring = KeyRing::new();
        assert_eq!(ring.load(dir.path()).unwrap(), 1);
        assert_eq!(ring.load(&sub).unwrap(), 2);
        assert_eq!(ring.len(), 1);
        let e = ring.get("8eba5db5bea9b640d1c96a77256fe7f2").unwrap();
        assert_eq!(e.der, der);
        assert!(e.key().is_ok());

        std::fs::write(sub.join("00000000000000000000000000000000.der"), &der).unwrap();
        assert!(
            ring.load(&sub).is_err(),
            "a file named for another fingerprint is refused"
        );
    }

    #[test]
    fn sign_and_verify_with_fixture_key() {
        let pem = include_str!("../tests/fixtures/test-key-a.pem");
        let k = SigningKey::from_bytes(pem.as_bytes(), Path::new("test-key-a.pem")).unwrap();
        assert_eq!(k.fingerprint(), fingerprint(k.public_der()));
        let sig = k.sign_hex(b"hello").unwrap();
        let public = crate::digest::parse_public_key(k.public_der()).unwrap();
        crate::digest::verify(&public, b"hello", &sig).unwrap();
        assert!(crate::digest::verify(&public, b"hellp", &sig).is_err());
        assert!(format!("{k:?}").contains(k.fingerprint()));
    }

    #[test]
    fn generated_key_round_trips_through_pem() {
        let k = SigningKey::generate(2048).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        k.save_pem(&p).unwrap();
        let back = SigningKey::load(&p).unwrap();
        assert_eq!(back.fingerprint(), k.fingerprint());
        let (again, created) = SigningKey::load_or_generate(&p).unwrap();
        assert!(!created);
        assert_eq!(again.fingerprint(), k.fingerprint());
    }
}
