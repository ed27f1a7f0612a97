//! Query results as an aligned table (terminals), a JSON array of objects, or CSV.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            other => Err(format!("unknown format `{other}`: table, json or csv")),
        }
    }
}

pub fn render(batches: &[RecordBatch], format: Format) -> Result<String, String> {
    match format {
        Format::Table => pretty_format_batches(batches)
            .map(|t| format!("{t}\n"))
            .map_err(|e| e.to_string()),
        Format::Json => {
            let mut w = arrow_json::ArrayWriter::new(Vec::new());
            for b in batches {
                w.write(b).map_err(|e| e.to_string())?;
            }
            w.finish().map_err(|e| e.to_string())?;
            let mut out = w.into_inner();
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
            out.push(b'\n');
            String::from_utf8(out).map_err(|e| e.to_string())
        }
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut w = arrow_csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for b in batches {
                    w.write(b).map_err(|e| e.to_string())?;
                }
            }
            String::from_utf8(out).map_err(|e| e.to_string())
        }
    }
}
