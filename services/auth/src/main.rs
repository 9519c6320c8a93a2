//! `auth` command line: `serve` (default), `migrate up|down [N]|status`, `create-admin`,
//! `purge-sessions`.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use auth::domain::{Email, Password};
use auth::passwords::Passwords;
use auth::settings::{PASSWORD_HASHING, Settings};
use auth::{MIGRATOR, SERVICE, VERSION, app, maintenance, store};
use clap::{Parser, Subcommand};
use platform::Needs;
use platform::db::MigrateCommand;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "auth",
    version,
    about = "Storefront auth service: accounts, passwords, sessions and signing keys."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, health and metrics (the default).
    Serve,
    /// Manage the `auth` database schema.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Create an admin account; the password is read from the first line of stdin.
    CreateAdmin {
        #[arg(long)]
        email: String,
    },
    /// Delete sessions, login counters, published outbox rows and expired account tokens past
    /// their retention (RETENTION_SESSIONS, RETENTION_LOGIN_COUNTERS, RETENTION_EVENTS_OUTBOX),
    /// as the scheduler does.
    PurgeSessions,
}

impl Command {
    /// The settings this command uses; only those are checked (see `platform::Needs`).
    fn needs(&self) -> Needs {
        match self {
            Command::Serve => Needs::SERVE,
            Command::Migrate(_) | Command::PurgeSessions => Needs::DATABASE,
            Command::CreateAdmin { .. } => Needs::DATABASE.and(PASSWORD_HASHING),
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
            Command::CreateAdmin { email } => create_admin(&settings, &email).await,
            Command::PurgeSessions => {
                let db = platform::db::pool(&settings.database, "purge-sessions")?;
                let purged = maintenance::purge_expired(
                    &db,
                    &settings.retention,
                    time::OffsetDateTime::now_utc(),
                )
                .await?;
                println!(
                    "purged {} session(s), {} login counter(s), {} published event(s), {} \
                     published job(s) and {} expired account token(s)",
                    purged.sessions,
                    purged.throttles,
                    purged.events,
                    purged.jobs,
                    purged.account_tokens
                );
                Ok(())
            }
        }
    }))
}

async fn create_admin(settings: &Settings, email: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = Password::parse(line.trim_end_matches(['\n', '\r']))
        .map_err(|e| anyhow::anyhow!("password {e}"))?;
    let db = platform::db::pool(&settings.database, "create-admin")?;
    let hash = Passwords::new(&settings.auth).await?.hash(password).await?;
    let user = store::users::insert(&db, email.as_str(), &hash, "admin")
        .await
        .map_err(|e| {
            if store::is_unique_violation(&e) {
                anyhow::anyhow!(
                    "{email} already has an account; an admin can change its role with PATCH /v1/auth/users/{{id}}"
                )
            } else {
                e.into()
            }
        })?;
    println!("created admin {} ({})", user.email, user.id);
    Ok(())
}
