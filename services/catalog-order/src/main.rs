//! `catalog-order` command line: `serve` (default), `migrate up|down [N]|status`, `seed-demo`.

use std::process::ExitCode;

use catalog_order::settings::Settings;
use catalog_order::{MIGRATOR, SERVICE, VERSION, app};
use clap::{Parser, Subcommand};
use platform::Needs;
use platform::db::MigrateCommand;

#[derive(Parser)]
#[command(
    name = "catalog-order",
    version,
    about = "Storefront catalog and orders service: categories, items, customers, orders, jobs."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, health and metrics (the default).
    Serve,
    /// Manage the `catalog` database schema.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Load the demo catalog (8 categories, 320 items); running it again adds nothing.
    SeedDemo,
}

impl Command {
    /// The settings this command uses; only those are checked (see `platform::Needs`).
    fn needs(&self) -> Needs {
        match self {
            Command::Serve => Needs::SERVE,
            Command::Migrate(_) | Command::SeedDemo => Needs::DATABASE,
        }
    }
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
            Command::Migrate(command) => {
                platform::db::run_migrate_command(&settings.database, &MIGRATOR, command).await
            }
            Command::SeedDemo => {
                let db = platform::db::pool(&settings.database, "seed-demo")?;
                let seeded = catalog_order::seed::seed_demo(&db).await?;
                println!(
                    "seeded {} categories and {} items",
                    seeded.categories, seeded.items
                );
                Ok(())
            }
        }
    }))
}
