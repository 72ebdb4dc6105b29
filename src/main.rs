//! The `strand` command line: the broker (`serve`), topic administration, a console
//! producer and consumer, and configuration checks.

mod cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "strand", version, about = "Strand: a thread-per-core event streaming broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker until SIGINT or SIGTERM.
    Serve {
        /// Configuration file (TOML); without it, the embedded defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Port of the first native listener (0 lets the kernel choose every
        /// listener's port, and the admin endpoint's).
        #[arg(long)]
        port: Option<u16>,
        /// Port of the admin endpoint: metrics and health (overrides `admin.port`;
        /// 0 lets the kernel choose).
        #[arg(long)]
        admin_port: Option<u16>,
        /// Port of the first Kafka listener (0 lets the kernel choose).
        #[arg(long)]
        kafka_port: Option<u16>,
        /// Cores to run shards on, e.g. `0,1` (overrides `cores`).
        #[arg(long, value_delimiter = ',')]
        cores: Option<Vec<usize>>,
    },
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(cli::topic::TopicCommand),
    /// Publish one record per line of standard input.
    Produce(cli::produce::ProduceArgs),
    /// Print records of a topic.
    Consume(cli::consume::ConsumeArgs),
    /// Check the host for what will hurt the broker (and --apply the fixes).
    Tune(cli::tune::TuneArgs),
    /// List and describe consumer groups; reset their committed offsets.
    #[command(subcommand)]
    Group(cli::group::GroupCommand),
    /// Inspect configuration files.
    #[command(subcommand)]
    Config(cli::config::ConfigCommand),
    /// Create, delete and list users (SCRAM credentials), through a Kafka listener.
    #[command(subcommand)]
    User(cli::user::UserCommand),
    /// Add, list and remove access control entries, through a Kafka listener.
    #[command(subcommand)]
    Acl(cli::acl::AclCommand),
    /// The cluster: brokers, the controller, offline and under-replicated partitions.
    #[command(subcommand)]
    Cluster(cli::cluster::ClusterCommand),
}

/// Parses the command line. Help and version print as clap prints them; a bad
/// argument is one line on stderr (as every other error of this CLI), exit code 2.
fn parse() -> Cli {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            error.exit()
        }
        Err(error) => {
            let text = error.render().to_string();
            let line: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
                .filter(|line| !line.is_empty())
                .collect();
            eprintln!("{} (see --help)", line.join(" "));
            std::process::exit(2);
        }
    }
}

fn main() -> ExitCode {
    let command = parse().command;
    if !matches!(command, Command::Serve { .. }) {
        // A client command piped into `head` ends quietly when the pipe closes, as
        // Unix tools do, instead of failing on EPIPE. (The broker keeps SIGPIPE
        // ignored: a closed client socket must never stop it.)
        // SAFETY: restores the default disposition before any other thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match command {
        Command::Serve { config, data_dir, port, admin_port, kafka_port, cores } => {
            cli::serve::run(config, data_dir, cli::serve::Ports { port, admin_port, kafka_port }, cores)
        }
        Command::Topic(command) => cli::topic::run(command),
        Command::Produce(args) => cli::produce::run(args),
        Command::Consume(args) => cli::consume::run(args),
        Command::Group(command) => cli::group::run(command),
        Command::Tune(args) => cli::tune::run(args),
        Command::Config(command) => cli::config::run(command),
        Command::User(command) => cli::user::run(command),
        Command::Acl(command) => cli::acl::run(command),
        Command::Cluster(command) => cli::cluster::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("strand: {error:#}");
            ExitCode::FAILURE
        }
    }
}
