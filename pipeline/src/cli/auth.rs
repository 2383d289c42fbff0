//! `orderpulse auth new-key`: a new API key, printed once with the configuration entry
//! that holds only its hash.

use crate::api::auth::{new_key, ApiKey, Role};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Make a key: prints it (keep it; it is not stored) and its `[[auth.keys]]` entry.
    NewKey {
        /// Who holds it; the Postgres user name for it.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// The merchant a merchant key sees.
        #[arg(long, required_if_eq("role", "merchant"))]
        merchant: Option<String>,
    },
}

pub fn execute(command: Command) -> anyhow::Result<()> {
    let Command::NewKey { name, role, merchant } = command;
    if role != Role::Merchant && merchant.is_some() {
        anyhow::bail!("--merchant is only for --role merchant");
    }
    let (key, sha256) = new_key();
    let entry = ApiKey { name, role, merchant, sha256 };
    let toml = toml::to_string(&entry)?;
    println!("key (give it to its holder; only its hash is kept):\n  {key}\n\nadd to the configuration:\n[[auth.keys]]\n{toml}");
    Ok(())
}
