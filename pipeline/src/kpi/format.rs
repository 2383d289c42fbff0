//! Query results as text (a table for terminals, JSON rows, CSV) or as an Arrow IPC stream.

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::error::ArrowError;

use super::QueryResult;

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

/// Renders a result in `format`. A result without rows still has its columns: the
/// table's header, the CSV header line (a consumer reading by column name finds them).
pub fn render(result: &QueryResult, format: OutputFormat) -> Result<Vec<u8>, ArrowError> {
    match format {
        OutputFormat::Table => Ok(arrow::util::pretty::pretty_format_batches_with_schema(result.schema.clone(), &result.batches)?.to_string().into_bytes()),
        OutputFormat::Json => json_rows(&result.batches),
        OutputFormat::Csv => {
            let mut out = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
                // The writer writes the header with its first batch.
                if result.batches.is_empty() {
                    writer.write(&RecordBatch::new_empty(result.schema.clone()))?;
                }
                for batch in &result.batches {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    #[test]
    fn a_result_renders_its_columns_with_or_without_rows() {
        let schema = Arc::new(Schema::new(vec![Field::new("carrier", DataType::Utf8, true), Field::new("parcels", DataType::Int64, false)]));
        let row = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["dhl"])), Arc::new(Int64Array::from(vec![3]))]).expect("batch");
        let empty = QueryResult { schema: schema.clone(), batches: Vec::new() };
        let one = QueryResult { schema, batches: vec![row] };
        let text = |result: &QueryResult, format| String::from_utf8(render(result, format).expect("renders")).expect("utf-8");
        let cases: &[(&QueryResult, OutputFormat, &str)] = &[
            (&empty, OutputFormat::Csv, "carrier,parcels\n"),
            (&empty, OutputFormat::Json, "[]"),
            (&empty, OutputFormat::Table, "+---------+---------+\n| carrier | parcels |\n+---------+---------+\n+---------+---------+"),
            (&one, OutputFormat::Csv, "carrier,parcels\ndhl,3\n"),
            (&one, OutputFormat::Json, r#"[{"carrier":"dhl","parcels":3}]"#),
            (&one, OutputFormat::Table, "+---------+---------+\n| carrier | parcels |\n+---------+---------+\n| dhl     | 3       |\n+---------+---------+"),
        ];
        for (result, format, expected) in cases {
            assert_eq!(text(result, *format), *expected, "{format:?} of {} rows", result.num_rows());
        }
    }
}
