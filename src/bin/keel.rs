//! The `keel` command line. Thin: parses arguments and hands over to the library.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "keel",
    version,
    about = "An MQTT 3.1.1/5.0 broker, alone or as a Raft cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker node.
    Serve,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => anyhow::bail!(
            "the broker is not built yet: this build has the packet codec only (see README.md)"
        ),
    }
}
