//! Input format detection by magic bytes (never by file name: S3 objects are often misnamed)
//! and the decompression guard shared by the synchronous and asynchronous read paths.

use crate::error::ParseError;
use crate::splitter::Limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// gzip, possibly several members concatenated (CloudTrail files sometimes are).
    Gzip,
    Zstd,
    /// Uncompressed JSON.
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Json => "json",
        }
    }
}

/// Bytes needed to tell the formats apart.
pub const SNIFF_LEN: usize = 4;

/// Detects the format from the first bytes of a stream. `prefix` may be shorter than
/// [`SNIFF_LEN`] only at end of input.
pub fn sniff(prefix: &[u8]) -> Result<Format, ParseError> {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        return Ok(Format::Gzip);
    }
    if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(Format::Zstd);
    }
    match prefix.iter().find(|&&b| !crate::splitter::is_ws(b)) {
        Some(b'{') => Ok(Format::Json),
        None if prefix.is_empty() => Err(ParseError::UnknownFormat("the file is empty".into())),
        // Whitespace-only prefix: only JSON can start like that; the splitter judges the rest.
        None => Ok(Format::Json),
        Some(_) => Err(ParseError::UnknownFormat(format!(
            "first bytes {} are neither gzip, zstd nor a JSON object",
            hex(&prefix[..prefix.len().min(SNIFF_LEN)])
        ))),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Enforces the size and ratio limits while a stream is decompressed, whichever code reads it.
#[derive(Debug, Clone)]
pub struct DecompressGuard {
    limits: Limits,
}

impl DecompressGuard {
    pub fn new(limits: &Limits) -> Self {
        DecompressGuard {
            limits: limits.clone(),
        }
    }

    /// Checks the totals so far: `compressed_in` bytes read, `decompressed_out` produced.
    pub fn check(&self, compressed_in: u64, decompressed_out: u64) -> Result<(), ParseError> {
        if decompressed_out > self.limits.max_decompressed_bytes {
            return Err(ParseError::TooLarge {
                limit: self.limits.max_decompressed_bytes,
            });
        }
        if decompressed_out > self.limits.ratio_grace_bytes && compressed_in > 0 {
            let ratio = decompressed_out / compressed_in;
            if ratio > self.limits.max_ratio {
                return Err(ParseError::RatioExceeded {
                    ratio,
                    limit: self.limits.max_ratio,
                });
            }
        }
        Ok(())
    }
}

/// Maps a decoder's I/O error: data faults are corruption, anything else is transport.
pub fn classify_io_error(
    format: Format,
    decompressed_offset: u64,
    e: &std::io::Error,
) -> ParseError {
    use std::io::ErrorKind::*;
    match (format, e.kind()) {
        (Format::Gzip | Format::Zstd, InvalidData | InvalidInput | UnexpectedEof | Other) => {
            ParseError::Decompress {
                format: format.as_str(),
                decompressed_offset,
                reason: if e.kind() == UnexpectedEof {
                    format!("stream ends early ({e})")
                } else {
                    e.to_string()
                },
            }
        }
        _ => ParseError::Io {
            decompressed_offset,
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_magic() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Ok(Format::Gzip));
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Ok(Format::Zstd));
        assert_eq!(sniff(b"{\"Re"), Ok(Format::Json));
        assert_eq!(sniff(b"\n {"), Ok(Format::Json));
        assert!(matches!(sniff(b""), Err(ParseError::UnknownFormat(_))));
        let e = sniff(b"PK\x03\x04").expect_err("zip is not accepted");
        assert!(e.to_string().contains("50 4b 03 04"), "{e}");
    }

    #[test]
    fn guard_limits() {
        let g = DecompressGuard::new(&Limits {
            max_decompressed_bytes: 1000,
            max_ratio: 10,
            ratio_grace_bytes: 100,
            ..Limits::default()
        });
        assert!(g.check(1, 100).is_ok());
        assert_eq!(g.check(10, 1001), Err(ParseError::TooLarge { limit: 1000 }));
        assert_eq!(
            g.check(5, 500),
            Err(ParseError::RatioExceeded {
                ratio: 100,
                limit: 10
            })
        );
        assert!(g.check(50, 500).is_ok());
    }
}
