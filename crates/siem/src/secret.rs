//! Secrets read from the environment or a file when a sink starts. The value is never printed:
//! `Debug` shows a placeholder and errors name the variable or file, not the content.

use std::fmt;
use trailhose_config::siem::SecretSource;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Reads the secret `what` (e.g. `sinks.splunk.token`) from its source.
    pub fn resolve(src: &SecretSource, what: &str) -> Result<Secret, String> {
        let value = match (&src.env, &src.file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|e| format!("{what}: environment variable {var}: {e}"))?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("{what}: reading {}: {e}", path.display()))?,
            (Some(_), Some(_)) => return Err(format!("{what}: set `env` or `file`, not both")),
            (None, None) => return Err(format!("{what}: no `env` or `file` given")),
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("{what}: the secret is empty"));
        }
        Ok(Secret(value.to_string()))
    }

    /// The value, for building a request header. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Standard base64 (RFC 4648, with padding), for HTTP basic authentication.
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(char::from(T[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_without_revealing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("tok");
        std::fs::write(&f, "s3cr3t\n").expect("write");
        let s = Secret::resolve(
            &SecretSource {
                env: None,
                file: Some(f),
            },
            "t",
        )
        .expect("file secret");
        assert_eq!(s.expose(), "s3cr3t");
        assert!(!format!("{s:?}").contains("s3cr3t"));
        let e = Secret::resolve(
            &SecretSource {
                env: Some("TRAILHOSE_TEST_SURELY_UNSET_VAR".into()),
                file: None,
            },
            "sinks.x.token",
        )
        .expect_err("unset");
        assert!(e.contains("TRAILHOSE_TEST_SURELY_UNSET_VAR"), "{e}");
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
