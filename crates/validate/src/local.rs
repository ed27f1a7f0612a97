//! A local directory in S3 key layout standing in for one bucket: the object with key `K` is the
//! file `<root>/K`, and a digest's S3 user metadata is the JSON sidecar `<root>/K.sig` (see the
//! crate documentation). Bucket names are not part of the path; the walk checks them against
//! the digests' own fields.

use crate::loghash::{GzipSha256, LogHash};
use crate::store::{LogError, Store, StoreError, StoredDigest};
use crate::SIDECAR_SUFFIX;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes read per step when hashing a file.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    bucket: Option<String>,
}

impl LocalStore {
    /// `bucket`: the bucket the directory is a copy of, when known; digests must name it.
    pub fn new(root: impl Into<PathBuf>, bucket: Option<String>) -> Self {
        LocalStore {
            root: root.into(),
            bucket,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of a key; refuses keys that would leave the root (digests are untrusted input).
    pub fn path_of(&self, key: &str) -> Result<PathBuf, String> {
        if key.is_empty()
            || key.starts_with('/')
            || key.contains('\\')
            || key.contains('\0')
            || key
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(format!("{key:?} is not a plain relative key"));
        }
        let mut p = self.root.clone();
        p.extend(key.split('/'));
        Ok(p)
    }

    fn dir_of(&self, prefix: &str) -> Result<PathBuf, StoreError> {
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(self.root.clone());
        }
        self.path_of(trimmed).map_err(StoreError::InvalidKey)
    }

    /// Reads a sidecar: a JSON object of string values.
    pub fn read_sidecar(path: &Path) -> Result<Option<BTreeMap<String, String>>, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        serde_json::from_slice::<BTreeMap<String, String>>(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not a JSON object of strings: {e}", path.display()))
    }

    /// Writes a sidecar for the digest at `key`.
    pub fn write_sidecar(
        &self,
        key: &str,
        metadata: &BTreeMap<String, String>,
    ) -> std::io::Result<()> {
        let p = self
            .path_of(&format!("{key}{SIDECAR_SUFFIX}"))
            .map_err(std::io::Error::other)?;
        let body = serde_json::to_vec(metadata).map_err(std::io::Error::other)?;
        std::fs::write(p, body)
    }
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry.file_type()?;
        let key = format!("{rel}{name}");
        if ft.is_dir() {
            walk(&entry.path(), &format!("{key}/"), out)?;
        } else if ft.is_file() {
            out.push(key);
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> Result<LogHash, LogError> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LogError::NotFound),
        Err(e) => return Err(LogError::Other(format!("{}: {e}", path.display()))),
    };
    let mut h = GzipSha256::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LogError::Other(format!("{}: {e}", path.display()))),
        };
        h.update(&buf[..n])?;
    }
    Ok(h.finish()?)
}

impl Store for LocalStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn bucket(&self) -> Option<&str> {
        self.bucket.as_deref()
    }

    async fn list_dirs(&self, _bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.dir_of(prefix)?;
        tokio::task::spawn_blocking(move || {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(StoreError::Other(format!("{}: {e}", dir.display()))),
            };
            let mut names = Vec::new();
            for entry in rd.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            names.sort();
            Ok(names)
        })
        .await
        .map_err(|e| StoreError::Other(format!("listing task failed: {e}")))?
    }

    async fn list_keys(
        &self,
        _bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let dir = self.dir_of(prefix)?;
        let rel = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            walk(&dir, &rel, &mut keys)
                .map_err(|e| StoreError::Other(format!("{}: {e}", dir.display())))?;
            keys.sort();
            if let Some(sa) = start_after {
                keys.retain(|k| k.as_str() > sa.as_str());
            }
            Ok(keys)
        })
        .await
        .map_err(|e| StoreError::Other(format!("listing task failed: {e}")))?
    }

    async fn get_digest(&self, _bucket: &str, key: &str) -> Result<StoredDigest, StoreError> {
        let path = self.path_of(key).map_err(StoreError::InvalidKey)?;
        tokio::task::spawn_blocking(move || {
            let body = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::NotFound)
                }
                Err(e) => return Err(StoreError::Other(format!("{}: {e}", path.display()))),
            };
            let mut sidecar = path.into_os_string();
            sidecar.push(SIDECAR_SUFFIX);
            let (metadata, metadata_error) = match Self::read_sidecar(Path::new(&sidecar)) {
                Ok(Some(m)) => (m, None),
                Ok(None) => (BTreeMap::new(), None),
                Err(e) => (BTreeMap::new(), Some(e)),
            };
            Ok(StoredDigest {
                body,
                metadata,
                metadata_error,
            })
        })
        .await
        .map_err(|e| StoreError::Other(format!("read task failed: {e}")))?
    }

    async fn hash_log(&self, _bucket: &str, key: &str) -> Result<LogHash, LogError> {
        let path = self.path_of(key).map_err(LogError::InvalidKey)?;
        tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .map_err(|e| LogError::Other(format!("hash task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        let s = LocalStore::new("/data", None);
        for bad in ["", "/etc/passwd", "a/../../b", "a//b", "./a", "a\\b", "a/."] {
            assert!(s.path_of(bad).is_err(), "{bad}");
        }
        assert_eq!(
            s.path_of("AWSLogs/1/x.json.gz").unwrap(),
            Path::new("/data/AWSLogs/1/x.json.gz")
        );
    }
}
