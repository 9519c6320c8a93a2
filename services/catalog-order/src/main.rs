//! `catalog-order` command line: `serve` (default), `migrate up|down [N]|status`, `seed-demo`,
//! `images backup|restore DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use catalog_order::settings::Settings;
use catalog_order::{MIGRATOR, SERVICE, VERSION, app};
use clap::{Parser, Subcommand};
use platform::Needs;
use platform::db::MigrateCommand;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Back up or restore the image store (the NATS object store of originals and sizes).
    #[command(subcommand)]
    Images(ImagesCommand),
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Copy every object that is new or changed since the last backup into DIR (never deletes).
    Backup { dir: PathBuf },
    /// Put back every object of the backup in DIR that the store lacks, then check them all.
    Restore { dir: PathBuf },
}

impl Command {
    /// The settings this command uses; only those are checked (see `platform::Needs`).
    fn needs(&self) -> Needs {
        match self {
            Command::Serve => Needs::SERVE,
            Command::Migrate(_) | Command::SeedDemo => Needs::DATABASE,
            Command::Images(_) => Needs::NATS,
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
                let up = matches!(command, MigrateCommand::Up);
                platform::db::run_migrate_command(&settings.database, &MIGRATOR, command).await?;
                if up {
                    // After the schema: the search configuration follows the settings.
                    let db = platform::db::pool(&settings.database, "migrate")?;
                    if catalog_order::store::search::configure(&db, &settings.search.config())
                        .await?
                    {
                        println!("search configuration changed; search vectors computed again");
                    }
                }
                Ok(())
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
            Command::Images(command) => images(&settings, command).await,
        }
    }))
}

async fn images(settings: &Settings, command: ImagesCommand) -> anyhow::Result<()> {
    use catalog_order::image_backup;
    let nats = platform::nats::connect(&settings.nats, "catalog-order-images").await?;
    platform::nats::check_ready(&nats)
        .map_err(|e| anyhow::anyhow!("NATS is not reachable: {e}"))?;
    let js = async_nats::jetstream::new(nats);
    let topology = app::topology(jobs::Topology::from_settings(&settings.nats)?);
    // After a lost NATS volume the store may not exist yet: make it as the services would,
    // retrying for a while (a cluster whose pods all provision at once answers slowly).
    let provisioned = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        jobs::topology::provision_with_retry(&js, &topology, &Default::default()),
    )
    .await;
    anyhow::ensure!(
        provisioned == Ok(true),
        "JetStream could not be provisioned within 60 s (see the warnings above)"
    );
    let store = jobs::images::ImageStore::new(js, &topology);
    match command {
        ImagesCommand::Backup { dir } => {
            let r = image_backup::backup(&store, &dir).await?;
            println!(
                "images-backup dir={} objects={} written={} unchanged={} bytes={} kept={} result=ok",
                dir.display(),
                r.objects,
                r.written,
                r.unchanged,
                r.bytes,
                r.kept
            );
        }
        ImagesCommand::Restore { dir } => {
            let r = image_backup::restore(&store, &dir).await?;
            println!(
                "images-restore dir={} objects={} restored={} present={} result=ok",
                dir.display(),
                r.objects,
                r.restored,
                r.present
            );
        }
    }
    Ok(())
}
