//! The docs UI in a real browser: each service's `/docs` opened in headless Chromium (Debian's,
//! driven by playwright-core from `tests/browser/`), every operation of its spec listed, "Try it
//! out" on a public endpoint answered 200, nothing loaded from outside the service. Screenshots go
//! to `target/docs-ui/` (a CI artefact).
//!
//! `make test` installs Chromium and the browser test's npm package where it can and sets
//! `REQUIRE_BROWSER=1`; then a missing piece fails the test instead of skipping it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{Deps, Service};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Whether node, Chromium and the npm package are here; `false` (skip) only when not required.
fn browser_ready() -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let package = browser_dir().join("node_modules/playwright-core").is_dir();
    let ready = node && Path::new(&chromium).exists() && package;
    if !ready {
        assert!(
            std::env::var_os("REQUIRE_BROWSER").is_none(),
            "REQUIRE_BROWSER is set but node ({node}), {chromium} or tests/browser/node_modules \
             ({package}) is missing: run `bash scripts/tools.sh browser`"
        );
        eprintln!("skipped: node, Chromium or tests/browser/node_modules missing");
    }
    ready
}

fn open_docs(service: &Service, public_get: &str) {
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/docs-ui");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(format!("{}.png", service.name));
    let out = Command::new("node")
        .current_dir(browser_dir())
        .arg("docs-ui.mjs")
        .arg(&service.base)
        .arg(public_get)
        .arg(&shot)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}\n{}",
        service.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(report["operations"].as_u64().unwrap() > 5, "{report}");
    assert_eq!(report["status"], "200", "{report}");
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "{}",
        shot.display()
    );
}

#[tokio::test]
async fn each_services_docs_list_every_operation_and_try_it_out_works_in_chromium() {
    if !browser_ready() {
        return;
    }
    let deps = Deps::new().await;
    let auth = Service::start("auth", &deps.env("auth"));
    let catalog = Service::start("catalog-order", &deps.env("catalog-order"));
    auth.wait_ready(Duration::from_secs(20)).await;
    catalog.wait_ready(Duration::from_secs(20)).await;
    open_docs(&auth, "/.well-known/jwks.json");
    open_docs(&catalog, "/v1/categories");
}
