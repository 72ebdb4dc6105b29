//! The `strand` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use strand::config::BrokerConfig;

#[derive(Parser)]
#[command(name = "strand", version, about = "Strand: a thread-per-core event streaming broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file without starting anything.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print every setting with its default and what it does.
    Defaults,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Config(ConfigCommand::Check { file }) => match BrokerConfig::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("strand: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Config(ConfigCommand::Defaults) => {
            print!("{}", include_str!("../config/strand.toml"));
            ExitCode::SUCCESS
        }
    }
}
