//! Output shapes. `raw` is the record's original bytes; `ecs` and `ocsf` are built from the
//! parsed record by the mapping tables in [`ecs`] and [`ocsf`] (what is copied from where, and
//! how), plus a few derived fields each module documents next to its code.

pub mod ecs;
pub mod ocsf;
pub mod path;

use serde_json::{Map, Value};
use trailhose_config::siem::OutputFormat;
use trailhose_pipeline::{RecordChunk, RecordMeta};

pub use path::{Conv, Row};

/// Writes one record in `format` into `out` as one line of JSON (no trailing newline).
pub fn render(
    format: OutputFormat,
    chunk: &RecordChunk,
    r: &RecordMeta,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let bytes = chunk.bytes_of(r);
    match format {
        OutputFormat::Raw => {
            if r.has_line_break {
                trailhose_core::splitter::compact_json_into(bytes, out);
            } else {
                out.extend_from_slice(bytes);
            }
            Ok(())
        }
        OutputFormat::Ecs | OutputFormat::Ocsf => {
            let v: Value = serde_json::from_slice(bytes)
                .map_err(|e| format!("record is not JSON serde can read: {e}"))?;
            let Value::Object(rec) = v else {
                return Err("record is not a JSON object".into());
            };
            let doc = match format {
                OutputFormat::Ecs => ecs::to_ecs(&rec),
                _ => ocsf::to_ocsf(&rec),
            };
            serde_json::to_writer(&mut *out, &Value::Object(doc))
                .map_err(|e| format!("serialising the {format:?} document: {e}"))
        }
    }
}

/// Maps a parsed record with a table: each row copies `source` to `target` with its
/// conversion. Rows run in order, so later `CopyIfUnset` rows only fill gaps.
pub fn apply_table(rows: &[Row], rec: &Map<String, Value>, out: &mut Map<String, Value>) {
    for row in rows {
        let Some(v) = path::get(rec, row.source) else {
            continue;
        };
        if row.conv == Conv::CopyIfUnset && path::get(out, row.target).is_some() {
            continue;
        }
        if let Some(v) = row.conv.apply(v) {
            path::set(out, row.target, v);
        }
    }
}

/// Epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_ms(ms: i64) -> String {
    let s = trailhose_core::timefmt::format_rfc3339_s(ms);
    let base = s.strip_suffix('Z').unwrap_or(&s);
    format!("{base}.{:03}Z", ms.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_793_491_207_042), "2026-11-01T00:00:07.042Z");
    }
}
