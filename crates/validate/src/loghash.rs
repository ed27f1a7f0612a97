//! SHA-256 over the *uncompressed* bytes of one gzip member, fed in pieces (any split), as
//! aws-cli does with `zlib.decompressobj(MAX_WBITS | 16)`: exactly one member is read; bytes
//! after its end are an error ("unexpected data after end of compressed stream", aws-cli
//! #10326), and so are a corrupt stream, a bad CRC/ISIZE trailer and a truncated stream.

use flate2::{Decompress, FlushDecompress, Status};
use sha2::{Digest, Sha256};

/// Inflated bytes produced per step.
const OUT_CHUNK: usize = 128 * 1024;

/// Why a gzip stream could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogFormatError {
    #[error("invalid format: {0}")]
    Corrupt(String),
    #[error("invalid format: the gzip stream ends early (truncated)")]
    Truncated,
    #[error("unexpected data after end of compressed stream")]
    TrailingData,
    #[error("invalid format: more than {0} bytes uncompressed")]
    TooLarge(u64),
}

/// The result of hashing one log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHash {
    /// Lower-case hex SHA-256 of the uncompressed bytes.
    pub sha256_hex: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
}

/// Push-style gunzip + SHA-256 of one gzip member.
pub struct GzipSha256 {
    inflate: Decompress,
    sha: Sha256,
    out: Vec<u8>,
    ended: bool,
    compressed: u64,
    /// When set, the uncompressed bytes are also kept (digest files, which are small).
    keep: Option<Vec<u8>>,
    max_uncompressed: u64,
}

impl Default for GzipSha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl GzipSha256 {
    pub fn new() -> Self {
        GzipSha256 {
            inflate: Decompress::new_gzip(15),
            sha: Sha256::new(),
            out: vec![0; OUT_CHUNK],
            ended: false,
            compressed: 0,
            keep: None,
            max_uncompressed: u64::MAX,
        }
    }

    /// Keeps the uncompressed bytes (at most `max` of them) for [`Self::finish_with_bytes`].
    pub fn keeping_bytes(max: u64) -> Self {
        let mut h = Self::new();
        h.keep = Some(Vec::new());
        h.max_uncompressed = max;
        h
    }

    /// Feeds the next compressed bytes.
    pub fn update(&mut self, mut input: &[u8]) -> Result<(), LogFormatError> {
        self.compressed += input.len() as u64;
        loop {
            if self.ended {
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(LogFormatError::TrailingData)
                };
            }
            let before_in = self.inflate.total_in();
            let before_out = self.inflate.total_out();
            let status = self
                .inflate
                .decompress(input, &mut self.out, FlushDecompress::None)
                .map_err(|e| LogFormatError::Corrupt(gzip_message(&e.to_string())))?;
            let consumed = (self.inflate.total_in() - before_in) as usize;
            let produced = (self.inflate.total_out() - before_out) as usize;
            self.take_output(produced)?;
            input = input.get(consumed..).unwrap_or_default();
            if status == Status::StreamEnd {
                self.ended = true;
                continue;
            }
            // More output may be pending when the buffer filled; otherwise more input is needed.
            if input.is_empty() && produced < self.out.len() {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(LogFormatError::Corrupt(
                        "the inflater made no progress".to_owned(),
                    ))
                };
            }
        }
    }

    fn take_output(&mut self, produced: usize) -> Result<(), LogFormatError> {
        if produced == 0 {
            return Ok(());
        }
        if self.inflate.total_out() > self.max_uncompressed {
            return Err(LogFormatError::TooLarge(self.max_uncompressed));
        }
        let chunk = &self.out[..produced];
        self.sha.update(chunk);
        if let Some(k) = &mut self.keep {
            k.extend_from_slice(chunk);
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), LogFormatError> {
        while !self.ended {
            let before_out = self.inflate.total_out();
            let status = self
                .inflate
                .decompress(&[], &mut self.out, FlushDecompress::Finish)
                .map_err(|e| LogFormatError::Corrupt(gzip_message(&e.to_string())))?;
            let produced = (self.inflate.total_out() - before_out) as usize;
            self.take_output(produced)?;
            if status == Status::StreamEnd {
                self.ended = true;
            } else if produced == 0 {
                return Err(LogFormatError::Truncated);
            }
        }
        Ok(())
    }

    /// Ends the stream: it must have reached the end of its gzip member.
    pub fn finish(mut self) -> Result<LogHash, LogFormatError> {
        self.drain()?;
        Ok(LogHash {
            sha256_hex: hex::encode(self.sha.finalize()),
            compressed_bytes: self.compressed,
            uncompressed_bytes: self.inflate.total_out(),
        })
    }

    /// Like [`Self::finish`], also returning the uncompressed bytes (empty unless created with
    /// [`Self::keeping_bytes`]).
    pub fn finish_with_bytes(mut self) -> Result<(LogHash, Vec<u8>), LogFormatError> {
        self.drain()?;
        let bytes = self.keep.take().unwrap_or_default();
        Ok((
            LogHash {
                sha256_hex: hex::encode(self.sha.finalize()),
                compressed_bytes: self.compressed,
                uncompressed_bytes: self.inflate.total_out(),
            },
            bytes,
        ))
    }
}

fn gzip_message(m: &str) -> String {
    if m.is_empty() {
        "corrupt gzip stream".to_owned()
    } else {
        format!("corrupt gzip stream ({m})")
    }
}

/// Gunzips one member held in memory, with its SHA-256.
pub fn gunzip_one(gz: &[u8], max_uncompressed: u64) -> Result<(LogHash, Vec<u8>), LogFormatError> {
    let mut h = GzipSha256::keeping_bytes(max_uncompressed);
    h.update(gz)?;
    h.finish_with_bytes()
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn sample() -> Vec<u8> {
        (0..300_000u32)
            .flat_map(|i| format!("{{\"n\":{i}}},").into_bytes())
            .collect()
    }

    #[test]
    fn hashes_uncompressed_bytes_in_any_split() {
        let data = sample();
        let z = gz(&data);
        let want = sha256_hex(&data);
        for split in [1usize, 7, 2048, 65_536, z.len()] {
            let mut h = GzipSha256::new();
            for piece in z.chunks(split) {
                h.update(piece).unwrap();
            }
            let got = h.finish().unwrap();
            assert_eq!(got.sha256_hex, want, "split {split}");
            assert_eq!(got.uncompressed_bytes, data.len() as u64);
            assert_eq!(got.compressed_bytes, z.len() as u64);
        }
    }

    #[test]
    fn empty_payload() {
        let (h, bytes) = gunzip_one(&gz(b""), 10).unwrap();
        assert_eq!(
            h.sha256_hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(bytes.is_empty());
    }

    #[test]
    fn trailing_data_and_second_member_fail() {
        let mut z = gz(b"hello");
        z.push(0);
        assert_eq!(gunzip_one(&z, 1 << 20), Err(LogFormatError::TrailingData));
        let mut two = gz(b"a");
        two.extend(gz(b"b"));
        assert_eq!(gunzip_one(&two, 1 << 20), Err(LogFormatError::TrailingData));
    }

    #[test]
    fn truncation_and_corruption_fail() {
        let data = sample();
        let z = gz(&data);
        assert_eq!(
            gunzip_one(&z[..z.len() / 2], u64::MAX),
            Err(LogFormatError::Truncated)
        );
        // A flipped byte in the CRC trailer.
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 6] ^= 0x01;
        assert!(matches!(
            gunzip_one(&bad, u64::MAX),
            Err(LogFormatError::Corrupt(_))
        ));
        assert!(matches!(
            gunzip_one(b"not gzip at all", u64::MAX),
            Err(LogFormatError::Corrupt(_))
        ));
        assert!(matches!(
            gunzip_one(&z, 10),
            Err(LogFormatError::TooLarge(10))
        ));
    }
}
