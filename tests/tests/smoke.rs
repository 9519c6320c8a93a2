//! `scripts/smoke.sh` against the real binaries: the smoke test the release checklist and the
//! chart rely on must pass on a freshly started stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::{Deps, PASSWORD, Stack, admin_and_customer, bin, run_ok};

#[tokio::test]
async fn the_smoke_script_passes_against_a_running_stack() {
    let deps = Deps::new().await;
    let seed = Command::new(bin("catalog-order"))
        .arg("seed-demo")
        .env("APP_ENV", "test")
        .env("DATABASE_URL", &deps.catalog_db.url)
        .env("NATS_URL", "nats://127.0.0.1:1")
        .envs(testkit::coverage_env())
        .output()
        .unwrap();
    assert!(seed.status.success(), "{seed:?}");
    let stack = Stack::start(&deps, |_, _| {}).await;
    admin_and_customer(&deps, &stack.auth).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/smoke.sh");
    let mut command = Command::new("bash");
    command
        .arg(script)
        .arg(&stack.auth.base)
        .arg(&stack.catalog.base)
        .env("SMOKE_ADMIN_EMAIL", "boss@example.com")
        .env("SMOKE_ADMIN_PASSWORD", PASSWORD)
        // The worker's `log` transport writes each e-mail, link included, as one JSON line.
        .env(
            "SMOKE_RESET_LINK_CMD",
            format!(
                r#"grep -F "$1" '{}' | grep -o 'reset-password?token=[A-Za-z0-9_-]*' | tail -1"#,
                stack.worker.log_path().display()
            ),
        );
    let stdout = run_ok(command).await;
    for step in [
        "registered",
        "logged in",
        "listed items",
        "ordered",
        "paid: payment",
        "the payment was refunded",
        "image job succeeded",
        "changed the password",
        "logged out",
        "asked for a password reset",
        "reset the password with the e-mailed link",
        "smoke: ok",
    ] {
        assert!(stdout.contains(step), "{step} missing:\n{stdout}");
    }
}
