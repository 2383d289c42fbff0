//! `orderpulse carriers map --carrier X FILE`: a carrier payload's canonical `carrier.scan`
//! events as NDJSON, for debugging an adapter and checking it against payloads it has
//! not seen. Codes without a mapping are counted on stderr.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::carriers::{adapter, generic::Mapping, UnknownCodes};
use crate::config::Config;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print the canonical scans of a payload (a file, or - for stdin) as NDJSON.
    Map {
        /// The carrier: ups, fedex, usps, dhl, dhl_express, sf_express, cainiao, or a configured generic one.
        #[arg(long)]
        carrier: String,
        /// A generic mapping table (TOML) to use for --carrier instead of the configuration's.
        #[arg(long)]
        mapping: Option<PathBuf>,
        file: PathBuf,
    },
}

pub fn execute(command: Command, config: &Config) -> anyhow::Result<()> {
    let Command::Map { carrier, mapping, file } = command;
    let mut generic = config.carriers.generic.clone();
    if let Some(path) = mapping {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let table: Mapping = toml::from_str(&text).with_context(|| format!("{} is not a mapping table", path.display()))?;
        table.check().map_err(anyhow::Error::msg).with_context(|| path.display().to_string())?;
        generic.insert(carrier.clone(), table);
    }
    let adapter = adapter(&carrier, &generic)?;
    let payload = if file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)?;
        bytes
    } else {
        std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?
    };
    let scans = adapter.scans(&payload)?;
    let mut out = std::io::stdout().lock();
    for scan in &scans {
        serde_json::to_writer(&mut out, scan)?;
        out.write_all(b"\n")?;
    }
    let mut unknown = UnknownCodes::default();
    unknown.count(&scans);
    for ((carrier, code), n) in &unknown.0 {
        eprintln!("unknown code: {carrier} {code:?} ({n} scans)");
    }
    Ok(())
}
