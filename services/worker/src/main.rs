//! `worker` command line: `serve` (default), `dlq list|replay SEQ|purge`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use platform::Needs;
use worker::settings::Settings;
use worker::{SERVICE, VERSION, app};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Inspect and act on dead jobs.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

impl Command {
    /// The settings this command uses; only those are checked (see `platform::Needs`).
    fn needs(&self) -> Needs {
        match self {
            Command::Serve => Needs::SERVE,
            Command::Dlq(_) => Needs::NATS,
        }
    }
}

#[derive(Subcommand)]
enum DlqCommand {
    /// One line per dead job: sequence, kind, job id, attempts, last error.
    List,
    /// Send the dead job at SEQ back to the work queue (same job id, fresh attempts).
    Replay { seq: u64 },
    /// Drop every dead job.
    Purge,
}

fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    let (settings, runtime) = match platform::boot::<Settings>(SERVICE, VERSION, command.needs()) {
        Ok(booted) => booted,
        Err(code) => return code,
    };
    platform::exit_code(runtime.block_on(async move {
        match command {
            Command::Serve => app::build(settings).await?.run().await,
            Command::Dlq(command) => dlq(&settings, command).await,
        }
    }))
}

async fn dlq(settings: &Settings, command: DlqCommand) -> anyhow::Result<()> {
    let nats = platform::nats::connect(&settings.nats, "worker-dlq").await?;
    let js = async_nats::jetstream::new(nats);
    let topology = worker::app::topology(jobs::Topology::from_settings(&settings.nats)?);
    // Idempotent, and makes `list` answer "empty" rather than "no such stream" on a new namespace.
    jobs::provision(&js, &topology).await?;
    match command {
        DlqCommand::List => {
            let dead = jobs::dlq::list(&js, &topology).await?;
            if dead.is_empty() {
                println!("the dead-letter queue is empty");
            }
            for d in dead {
                println!(
                    "{:>6}  {:<28} {}  attempts={}  error={}",
                    d.sequence, d.kind, d.job_id, d.attempts, d.error
                );
            }
        }
        DlqCommand::Replay { seq } => {
            let d = jobs::dlq::replay(&js, &topology, seq).await?;
            println!("replayed {} job {} (was: {})", d.kind, d.job_id, d.error);
        }
        DlqCommand::Purge => {
            println!(
                "purged {} dead job(s)",
                jobs::dlq::purge(&js, &topology).await?
            );
        }
    }
    Ok(())
}
