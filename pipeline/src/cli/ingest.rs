//! `orderpulse ingest FILE|-`: one NDJSON input into the lake, with a progress bar and a
//! summary of what became of every line.

use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::grouped;
use crate::config::Config;
use crate::ingest::{ingest_source, IngestOptions, IngestStats};
use crate::source::file::{read_ndjson, NdjsonInput};

#[derive(clap::Args)]
pub struct Args {
    /// NDJSON file (plain, gzip or zstd), or - for standard input.
    input: String,
    #[command(flatten)]
    lake: super::LakeArg,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub async fn execute(args: Args, config: &Config) -> anyhow::Result<()> {
    let input = NdjsonInput::from_arg(&args.input);
    input.check()?;
    let lake = args.lake.open(config)?;
    let source_id = input.source_id().with_context(|| format!("reading {}", args.input))?;
    let progress = if args.quiet || args.json {
        ProgressBar::hidden()
    } else {
        match input.size_hint() {
            Some(size) => ProgressBar::new(size).with_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} read ({bytes_per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        }
    };
    let started = Instant::now();
    let bar = progress.clone();
    let stats = ingest_source(&lake, &source_id, IngestOptions::from(&config.ingest), move |resume_after, tx| {
        if let Some(position) = resume_after {
            tracing::info!(position, "resuming after the position recorded in the lake");
        }
        read_ndjson(&input, resume_after, &tx, &|bytes| bar.set_position(bytes)).map(drop)
    })
    .await?;
    progress.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print_summary(&args.input, lake.root().as_str(), &stats, started.elapsed().as_secs_f64());
    }
    Ok(())
}

fn print_summary(input: &str, lake: &str, stats: &IngestStats, seconds: f64) {
    println!("ingested {input} into {lake}");
    let rows = [
        ("lines", stats.lines),
        ("accepted", stats.accepted),
        ("duplicates", stats.duplicates),
        ("already in lake", stats.already_in_lake),
        ("blank", stats.blank),
        ("quarantined", stats.quarantined_total()),
    ];
    for (label, n) in rows {
        println!("  {label:<18}{:>14}", grouped(n));
    }
    for (reason, n) in &stats.quarantined {
        println!("    {:<24}{:>10}", reason.as_str(), grouped(*n));
    }
    let rate = stats.lines as f64 / seconds.max(1e-9);
    println!("  {} commits in {seconds:.1} s ({} lines/s)", stats.commits, grouped(rate as u64));
}
