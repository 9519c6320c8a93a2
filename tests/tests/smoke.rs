//! `scripts/smoke.sh` against the real binaries: the smoke test the release checklist and the
//! chart rely on must pass on a freshly started stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::{Deps, PASSWORD, Stack, admin_and_customer, bin};

#[tokio::test]
async fn the_smoke_script_passes_against_a_running_stack() {
    let deps = Deps::new().await;
    let seed = Command::new(bin("catalog-order"))
        .arg("seed-demo")
        .env("APP_ENV", "test")
        .env("DATABASE_URL", &deps.catalog_db.url)
        .env("NATS_URL", "nats://127.0.0.1:1")
        .envs(platform::testing::coverage_env())
        .output()
        .unwrap();
    assert!(seed.status.success(), "{seed:?}");
    let stack = Stack::start(&deps, |_, _| {}).await;
    admin_and_customer(&deps, &stack.auth).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/smoke.sh");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(script)
            .arg(&stack.auth.base)
            .arg(&stack.catalog.base)
            .env("SMOKE_ADMIN_EMAIL", "boss@example.com")
            .env("SMOKE_ADMIN_PASSWORD", PASSWORD)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "registered",
        "logged in",
        "listed items",
        "ordered",
        "image job succeeded",
        "logged out",
        "smoke: ok",
    ] {
        assert!(stdout.contains(step), "{step} missing:\n{stdout}");
    }
}
