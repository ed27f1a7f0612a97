//! One archive file being written: Parquet (Arrow batches → row groups) or NDJSON.gz. Pure
//! file I/O on a local path; where the finished file goes is [`crate::store`]'s business.

use crate::columns::BatchBuilder;
use flate2::write::GzEncoder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use trailhose_config::archive::{ArchiveFormat, ParquetCompression};
use trailhose_pipeline::chunk::{RecordChunk, RecordMeta};
use trailhose_pipeline::sinks::ndjson::{write_line, Shape};

/// Arrow batches are cut at this many rows or `row_group_bytes / 4` record bytes, whichever
/// comes first, so the builder never holds more than a fraction of a row group.
const BATCH_ROWS: usize = 8192;

pub enum ArchiveFile {
    Parquet {
        writer: Box<ArrowWriter<BufWriter<File>>>,
        batch: BatchBuilder,
        batch_bytes: usize,
    },
    NdjsonGz {
        out: GzEncoder<BufWriter<File>>,
        line: Vec<u8>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

pub fn extension(format: ArchiveFormat) -> &'static str {
    match format {
        ArchiveFormat::Parquet => "parquet",
        ArchiveFormat::NdjsonGz => "ndjson.gz",
    }
}

fn writer_properties(compression: ParquetCompression, row_group_bytes: usize) -> WriterProperties {
    let codec = match compression {
        ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::Gzip => Compression::GZIP(Default::default()),
        ParquetCompression::None => Compression::UNCOMPRESSED,
    };
    WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(Some(row_group_bytes))
        // `lookup --lookup-attributes AttributeKey=EventId` and `WHERE eventid = …` skip row
        // groups by this filter.
        .set_column_bloom_filter_enabled(ColumnPath::from("eventid"), true)
        .build()
}

impl ArchiveFile {
    pub fn create(
        path: &Path,
        format: ArchiveFormat,
        compression: ParquetCompression,
        row_group_bytes: usize,
    ) -> Result<ArchiveFile, FileError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = BufWriter::with_capacity(256 << 10, File::create_new(path)?);
        Ok(match format {
            ArchiveFormat::Parquet => {
                let props = writer_properties(compression, row_group_bytes);
                ArchiveFile::Parquet {
                    writer: Box::new(ArrowWriter::try_new(
                        file,
                        crate::schema::file_schema(),
                        Some(props),
                    )?),
                    batch: BatchBuilder::new(),
                    batch_bytes: (row_group_bytes / 4).max(64 << 10),
                }
            }
            ArchiveFormat::NdjsonGz => ArchiveFile::NdjsonGz {
                out: GzEncoder::new(file, flate2::Compression::default()),
                line: Vec::with_capacity(64 << 10),
            },
        })
    }

    pub fn append(&mut self, chunk: &RecordChunk, r: &RecordMeta) -> Result<(), FileError> {
        match self {
            ArchiveFile::Parquet {
                writer,
                batch,
                batch_bytes,
            } => {
                batch.push(chunk.bytes_of(r), r.fields.event_time_ms);
                if batch.rows() >= BATCH_ROWS || batch.bytes() >= *batch_bytes {
                    writer.write(&batch.finish()?)?;
                }
            }
            ArchiveFile::NdjsonGz { out, line } => {
                line.clear();
                write_line(line, Shape::Raw, &chunk.object, chunk, r);
                out.write_all(line)?;
            }
        }
        Ok(())
    }

    /// Bytes held in memory (the Arrow batch and the row group not yet written).
    pub fn buffered_bytes(&self) -> usize {
        match self {
            ArchiveFile::Parquet { writer, batch, .. } => {
                2 * batch.bytes() + writer.in_progress_size()
            }
            ArchiveFile::NdjsonGz { .. } => 0,
        }
    }

    /// Writes everything (Parquet footer / gzip trailer) and, with `fsync`, syncs the file.
    pub fn finish(self, fsync: bool) -> Result<(), FileError> {
        let buffered = match self {
            ArchiveFile::Parquet {
                mut writer,
                mut batch,
                ..
            } => {
                if batch.rows() > 0 {
                    writer.write(&batch.finish()?)?;
                }
                (*writer).into_inner()?
            }
            ArchiveFile::NdjsonGz { out, .. } => out.finish()?,
        };
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        if fsync {
            file.sync_all()?;
        }
        Ok(())
    }
}
