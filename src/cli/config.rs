//! `strand config check FILE` and `strand config defaults`.

use clap::Subcommand;
use std::path::PathBuf;
use strand::config::BrokerConfig;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file without starting anything.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print every setting with its default and what it does.
    Defaults,
}

pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check { file } => {
            BrokerConfig::load(&file)?;
            println!("{}: ok", file.display());
        }
        ConfigCommand::Defaults => print!("{}", include_str!("../../config/strand.toml")),
    }
    Ok(())
}
