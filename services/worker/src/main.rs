//! `worker` command line: `serve` (default).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use worker::settings::Settings;
use worker::{SERVICE, VERSION, app};

#[derive(Parser)]
#[command(
    name = "worker",
    version,
    about = "Storefront worker: background jobs from NATS JetStream and the scheduler."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume jobs and serve health and metrics (the default).
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (settings, runtime) = match platform::boot::<Settings>(SERVICE, VERSION) {
        Ok(booted) => booted,
        Err(code) => return code,
    };
    platform::exit_code(runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => app::build(settings).await?.run().await,
        }
    }))
}
