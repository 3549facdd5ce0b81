//! The `keel` command line. Thin: parses arguments, sets up logging and hands over to the
//! library (`keel::cli`).

use std::process::ExitCode;

use clap::Parser;
use keel::cli::{self, Cli, Command, PasswdOutcome};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line naming what is wrong, like clap's own errors; no backtrace.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let config = args.config()?;
            serve(config, args)
        }
        Command::Passwd(args) => {
            let outcome = cli::passwd(&args)?;
            let done = match outcome {
                PasswdOutcome::Added => "added",
                PasswdOutcome::Updated => "updated",
                PasswdOutcome::Deleted => "deleted",
            };
            eprintln!("{}: user {:?} {done}", args.file.display(), args.username);
            Ok(())
        }
        Command::CheckConfig(args) => {
            print!("{}", cli::check_config(&args.file)?);
            Ok(())
        }
        Command::Cert(command) => {
            for file in cli::cert(&command)? {
                eprintln!("wrote {}", file.display());
            }
            Ok(())
        }
    }
}

/// openraft reports every election, snapshot and purge at `info`: routine for a node.
const DEFAULT_LOG_FILTER: &str = "info,openraft=warn";

/// Logs go to standard error, filtered by `RUST_LOG` (default `info`, openraft `warn`), so standard output
/// stays for what a command prints (`check-config`).
fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a terminal: logs redirected to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs the node; a reload (SIGHUP, `POST /api/v1/reload`) reads the file and applies the
/// same flags again.
fn serve(config: keel::config::Config, args: cli::ServeArgs) -> anyhow::Result<()> {
    tracing::debug!(?config, "effective configuration");
    let source = Box::new(move || args.config().map_err(|e| e.into()));
    keel::startup::serve_reloadable(config, source)?;
    Ok(())
}
