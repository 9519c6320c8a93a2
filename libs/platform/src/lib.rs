//! What every Storefront service shares (docs/design.md §2): settings, logging, the HTTP stack
//! and error shape, health and shutdown, metrics, PostgreSQL and NATS plumbing, and the test
//! harness.
//!
//! A service's `main` calls [`boot`] with the [`Needs`] of its subcommand and then runs it; see
//! `services/*/src/main.rs`.

pub mod app;
pub mod backoff;
pub mod cache;
pub mod config;
pub mod db;
pub mod extract;
pub mod health;
pub mod http;
pub mod http_client;
#[cfg(feature = "lease")]
pub mod lease;
pub mod metrics;
pub mod nats;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod ratelimit;
pub mod replica;
pub mod server;
pub mod shutdown;
pub mod telemetry;

use std::process::ExitCode;

pub use app::{App, AppBuilder};
pub use config::{Needs, ServiceSettings};
pub use problem::{ApiError, FieldError};

/// Exit code for a configuration that cannot be used (`EX_CONFIG` from sysexits.h).
pub const EXIT_CONFIG: u8 = 78;

/// Start-up shared by every binary: load and validate the settings the command's `needs` cover
/// (see [`Needs`]; printing every problem and exiting before anything binds a port), install
/// logging, build the Tokio runtime sized by `WORKER_THREADS`.
pub fn boot<S: ServiceSettings>(
    service: &'static str,
    version: &'static str,
    needs: Needs,
) -> Result<(S, tokio::runtime::Runtime), ExitCode> {
    let settings = match config::load::<S>(needs) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{service}: {error}");
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    };
    let platform = settings.platform();
    telemetry::init(service, version, platform);

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().thread_name(service);
    if platform.worker_threads > 0 {
        runtime.worker_threads(platform.worker_threads);
    }
    match runtime.build() {
        Ok(runtime) => {
            tracing::info!(profile = %platform.app_env, "{service} {version} starting");
            Ok((settings, runtime))
        }
        Err(e) => {
            eprintln!("{service}: cannot start the Tokio runtime: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Turn a command's result into the process exit code, logging the error.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            ExitCode::FAILURE
        }
    }
}
