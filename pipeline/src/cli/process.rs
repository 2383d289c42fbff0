//! `orderpulse process`: the stream processor on its own: follows the lake's event
//! tables, keeps every order's state, fires timers, checkpoints, and writes
//! `order_status` and `timer_firings`. `orderpulse run` runs the same beside the API.

use std::io::Write;

use crate::config::Config;
use crate::stream::processor::Processor;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    lake: super::LakeArg,
    /// Process what the lake holds now, checkpoint, print a summary (JSON) and exit.
    #[arg(long)]
    once: bool,
    /// With --once: let the watermark advance to the clock at the end, as if the sources
    /// had gone idle (fires every timer due by now).
    #[arg(long, requires = "once")]
    advance_clock: bool,
    /// First delete the stream state (its checkpoints) and its output tables
    /// (`order_status`, `timer_firings`), and rebuild them from the event tables: after an
    /// upgrade that changed the state's format, or to apply changed `[stream]` settings.
    /// Stop every other processor of the lake (`orderpulse run`, `orderpulse process`)
    /// first.
    #[arg(long)]
    rebuild: bool,
}

pub async fn execute(args: Args, config: &Config) -> anyhow::Result<()> {
    config.validate()?;
    let lake = args.lake.open(config)?;
    if args.rebuild {
        for (folder, objects) in crate::stream::processor::discard_state(&lake).await? {
            tracing::info!(folder, objects, "deleted for the rebuild");
        }
    }
    let mut processor = Processor::open(&lake, config.stream.processor_options()).await?;
    if args.once {
        let progress = processor.catch_up(args.advance_clock).await?;
        tracing::info!(events = progress.events, firings = progress.firings, "caught up");
        let summary = processor.shared_state().read().map_err(|_| anyhow::anyhow!("the stream state is poisoned"))?.summary();
        let mut out = serde_json::to_vec_pretty(&summary)?;
        out.push(b'\n');
        std::io::stdout().lock().write_all(&out)?;
        return Ok(());
    }
    tracing::info!(lake = %lake.root(), "stream processor running");
    processor.run(super::shutdown_signal()).await?;
    Ok(())
}
