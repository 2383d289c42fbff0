//! Query results as text (a table for terminals, JSON rows, CSV) or as an Arrow IPC stream.

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::error::ArrowError;

/// How a result is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned table for people.
    Table,
    /// A JSON array of row objects.
    Json,
    /// CSV with a header line.
    Csv,
}

/// Renders batches in `format`.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<Vec<u8>, ArrowError> {
    match format {
        OutputFormat::Table => Ok(arrow::util::pretty::pretty_format_batches(batches)?.to_string().into_bytes()),
        OutputFormat::Json => json_rows(batches),
        OutputFormat::Csv => {
            let mut out = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
                for batch in batches {
                    writer.write(batch)?;
                }
            }
            Ok(out)
        }
    }
}

/// A JSON array of row objects (`[]` for no rows). Nulls are kept as `null`, so every
/// row has every column.
pub fn json_rows(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut writer = arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, arrow::json::writer::JsonArray>(Vec::new());
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    let out = writer.into_inner();
    Ok(if out.is_empty() { b"[]".to_vec() } else { out })
}

/// An Arrow IPC stream (`application/vnd.apache.arrow.stream`): the schema, then the
/// batches, readable by pyarrow, Polars and every Arrow library without conversion.
pub fn arrow_stream(schema: &Schema, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    writer.into_inner()
}
