//! The `strand` command line.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "strand", version, about = "Strand: a thread-per-core event streaming broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the settings Strand uses when no configuration file is given.
    Defaults,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Defaults => {
            let defaults = serde_json::json!({
                "topic": strand::storage::TopicConfig::default(),
                "io": strand::storage::IoOptions::default(),
            });
            println!("{}", serde_json::to_string_pretty(&defaults).expect("defaults serialize"));
            ExitCode::SUCCESS
        }
    }
}
