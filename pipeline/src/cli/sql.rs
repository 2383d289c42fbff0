//! `orderpulse sql`: one query, printed.

use std::io::Write;

use crate::config::Config;
use crate::kpi::format::{render, OutputFormat};
use crate::kpi::{QueryLimits, QueryResult};

#[derive(clap::Args)]
pub struct Args {
    /// The query, e.g. "SELECT type, count(*) FROM order_events GROUP BY type".
    query: String,
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    #[command(flatten)]
    lake: super::LakeArg,
}

pub async fn execute(args: Args, config: &Config) -> anyhow::Result<()> {
    let engine = super::sql_engine(args.lake.open(config)?, config)?;
    let limits = QueryLimits::time_only(config.api.query_timeout);
    let result = engine.query(&args.query, limits).await?;
    print(&result, args.format)
}

/// Writes a result to stdout in `format`.
pub fn print(result: &QueryResult, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = render(result, format)?;
    if format != OutputFormat::Csv {
        out.push(b'\n');
    }
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}
