//! The command line: parsing, logging set-up, and one module per subcommand. Each
//! subcommand is a thin shell over the library; errors end as one line on stderr and a
//! non-zero exit code, never a panic or a backtrace.

mod auth;
mod carriers;
mod consume;
mod ingest;
mod kpi;
mod lake;
mod process;
mod run;
mod simulate;
mod sql;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::allocator::{self, Workload};
use crate::config::{Config, LogFormat};

#[derive(Parser)]
#[command(name = "orderpulse", version, about = "Order-tracking analytics: events into Delta Lake, KPIs in SQL.")]
struct Cli {
    /// Configuration file (TOML); see orderpulse.example.toml.
    #[arg(long, global = true, env = "ORDERPULSE_CONFIG")]
    config: Option<PathBuf>,
    /// Log format: text for people, json for log shippers.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// The lake location, shared by every subcommand that touches the lake.
#[derive(clap::Args, Clone)]
struct LakeArg {
    /// Lake location: a path, file:///abs/path, memory:// or s3://bucket/prefix.
    #[arg(long, env = "ORDERPULSE_LAKE")]
    lake: Option<String>,
}

impl LakeArg {
    fn open(&self, config: &Config) -> anyhow::Result<crate::lake::Lake> {
        let location = self.lake.clone().unwrap_or_else(|| config.lake.url.clone());
        Ok(crate::lake::Lake::open(&location, config.lake.object_store_options())?)
    }
}

/// The SQL engine over `lake` with the configured KPI library (`kpi.queries_dir`, or
/// the one built in).
fn sql_engine(lake: crate::lake::Lake, config: &Config) -> anyhow::Result<crate::kpi::SqlEngine> {
    Ok(crate::kpi::SqlEngine::with_library(lake, kpi_library(config)?))
}

/// The configured KPI library: `kpi.queries_dir`, or the one built in.
fn kpi_library(config: &Config) -> anyhow::Result<std::sync::Arc<crate::kpi::library::Library>> {
    Ok(match &config.kpi.queries_dir {
        Some(dir) => std::sync::Arc::new(crate::kpi::library::Library::from_dir(dir)?),
        None => crate::kpi::library::Library::builtin(),
    })
}

/// Resolves on Ctrl-C or SIGTERM: the end of a long-running subcommand.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}

#[derive(Subcommand)]
enum Command {
    /// Generate realistic order, carrier and ticket events as NDJSON.
    Simulate(simulate::Args),
    /// Ingest an NDJSON file (plain, .gz or .zst) or stdin (-) into the lake, exactly once.
    Ingest(ingest::Args),
    /// Consume the Kafka topics into the lake, exactly once, until stopped.
    Consume(consume::Args),
    /// The stream processor: order states, timers and lane statistics from the lake.
    Process(process::Args),
    /// Run SQL over the lake and print the result.
    Sql(sql::Args),
    /// Run a KPI from the library (`queries/`), or list them.
    Kpi(kpi::Args),
    /// Lake maintenance: table information and compaction.
    Lake {
        #[command(subcommand)]
        command: lake::Command,
    },
    /// Run everything: the simulator streaming into the lake, and the HTTP API.
    Run(run::Args),
    /// Carrier payloads: see what an adapter makes of them.
    Carriers {
        #[command(subcommand)]
        command: carriers::Command,
    },
    /// API keys for HTTP and Postgres clients.
    Auth {
        #[command(subcommand)]
        command: auth::Command,
    },
}

impl Command {
    /// What the command does with its memory, for [`crate::allocator`]: only the stream
    /// processor on its own keeps huge pages.
    fn workload(&self) -> Workload {
        match self {
            Command::Process(_) => Workload::StreamState,
            _ => Workload::Queries,
        }
    }
}

/// Parses the command line, runs the subcommand, and turns any error into one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(format) = cli.log_format {
        config.log.format = match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    init_logging(&config);
    // After logging (a refusal is logged), before the command's work allocates.
    allocator::configure(cli.command.workload());
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Simulate(args) => simulate::execute(args, &config),
            Command::Ingest(args) => ingest::execute(args, &config).await,
            Command::Sql(args) => sql::execute(args, &config).await,
            Command::Process(args) => process::execute(args, &config).await,
            Command::Kpi(args) => kpi::execute(args, &config).await,
            Command::Consume(args) => consume::execute(args, config).await,
            Command::Lake { command } => lake::execute(command, &config).await,
            Command::Run(args) => run::execute(args, config).await,
            Command::Auth { command } => auth::execute(command),
            Command::Carriers { command } => carriers::execute(command, &config),
        }
    })
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Thousands separators for the summaries people read.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_grouped_by_thousands() {
        for (n, text) in [(0, "0"), (999, "999"), (1000, "1,000"), (1234567, "1,234,567")] {
            assert_eq!(super::grouped(n), text);
        }
    }
}
