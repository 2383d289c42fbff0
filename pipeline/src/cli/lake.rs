//! `orderpulse lake info|optimize`.

use crate::config::Config;
use crate::lake::maintenance;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Show each table's version, files, size and rows.
    Info {
        #[command(flatten)]
        lake: super::LakeArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compact small files and checkpoint the log of every table.
    Optimize {
        #[command(flatten)]
        lake: super::LakeArg,
    },
}

pub async fn execute(command: Command, config: &Config) -> anyhow::Result<()> {
    match command {
        Command::Info { lake, json } => {
            let lake = lake.open(config)?;
            let infos = maintenance::info(&lake).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&infos)?);
            } else {
                println!("lake {}", lake.root());
                println!("{:<16} {:>8} {:>8} {:>12} {:>12} {:>10}", "table", "version", "files", "bytes", "rows", "partitions");
                for t in infos {
                    let version = t.version.map_or("-".to_owned(), |v| v.to_string());
                    println!("{:<16} {:>8} {:>8} {:>12} {:>12} {:>10}", t.table, version, t.files, t.bytes, t.rows, t.partitions);
                }
            }
        }
        Command::Optimize { lake } => {
            let lake = lake.open(config)?;
            for r in maintenance::optimize(&lake).await? {
                println!(
                    "{:<16} compacted {} files into {} in {} partitions; checkpoint at version {}",
                    r.table,
                    r.files_removed,
                    r.files_added,
                    r.partitions_optimized,
                    r.version.map_or("-".to_owned(), |v| v.to_string())
                );
            }
        }
    }
    Ok(())
}
