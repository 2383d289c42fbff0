//! `orderpulse kpi NAME --merchant M --from D --to D --group-by G`: one KPI of the
//! library, printed; `orderpulse kpi list`: the library; `orderpulse kpi rollup`: the
//! daily rollup tables recomputed.

use crate::config::Config;
use crate::kpi::format::OutputFormat;
use crate::kpi::library::KpiParams;
use crate::kpi::rollup::{self, Window};
use crate::kpi::QueryLimits;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The KPI: its file name in `queries/` without `.sql` (see `orderpulse kpi list`).
    name: Option<String>,
    /// One merchant's numbers; all merchants when absent.
    #[arg(long)]
    merchant: Option<String>,
    /// Start of the period: a date (2026-11-01) or an RFC 3339 timestamp; default 30 days before --to.
    #[arg(long)]
    from: Option<String>,
    /// End of the period: a date (whole day included) or an RFC 3339 timestamp (excluded); default now.
    #[arg(long)]
    to: Option<String>,
    /// One of the KPI's groupings (its first by default).
    #[arg(long)]
    group_by: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    #[command(flatten)]
    lake: super::LakeArg,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Every KPI with its groupings and title; `--definitions` adds the definitions.
    List {
        #[arg(long)]
        definitions: bool,
    },
    /// Recompute the daily rollup tables (kpi_daily_*) for the recent days.
    Rollup {
        /// How many recent days (overrides kpi.rollup_days).
        #[arg(long)]
        days: Option<u32>,
        /// Recompute every day.
        #[arg(long, conflicts_with = "days")]
        full: bool,
        #[command(flatten)]
        lake: super::LakeArg,
    },
}

pub async fn execute(args: Args, config: &Config) -> anyhow::Result<()> {
    match args.command {
        Some(Command::List { definitions }) => {
            for kpi in super::kpi_library(config)?.kpis() {
                println!("{:<30} {}  [group by: {}]", kpi.name, kpi.title, kpi.group_by.join(", "));
                if definitions {
                    println!("{}\n", indent(&kpi.definition));
                }
            }
            return Ok(());
        }
        Some(Command::Rollup { days, full, lake }) => {
            let lake = lake.open(config)?;
            let engine = super::sql_engine(lake.clone(), config)?;
            let window = if full { Window::Full } else { Window::trailing(days.unwrap_or(config.kpi.rollup_days), chrono::Utc::now().date_naive()) };
            for rolled in rollup::run(&engine, &lake, window, QueryLimits::for_rollups(config), config.kpi.rollup_joins).await? {
                println!("{:<24} {} rows", rolled.table, rolled.rows);
            }
            return Ok(());
        }
        None => {}
    }
    let engine = super::sql_engine(args.lake.open(config)?, config)?;
    let Some(name) = args.name else {
        anyhow::bail!("name a KPI (orderpulse kpi on_time_delivery_rate), or list them with `orderpulse kpi list`");
    };
    let params = KpiParams::parse(args.merchant.as_deref(), args.from.as_deref(), args.to.as_deref(), args.group_by.as_deref(), chrono::Utc::now())?;
    let limits = QueryLimits::time_only(config.api.query_timeout);
    let result = engine.kpi(&name, &params, limits).await?;
    super::sql::print(&result, args.format)
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n")
}
