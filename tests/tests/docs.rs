//! The `curl` walkthrough in docs/auth.md runs, as written, against a live auth: the doc cannot
//! rot without this failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Deps, Service, run_ok};

#[tokio::test]
async fn the_auth_flow_examples_in_docs_auth_md_work() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/auth.md"))
            .unwrap();
    // The first shell block is the register → login → me → refresh → logout walkthrough.
    let start = doc.find("```sh\n").expect("a shell example") + "```sh\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let example = &doc[start..end];
    assert!(example.contains("/v1/auth/logout"), "{example}");

    let deps = Deps::new().await;
    let auth = Service::start("auth", &deps.env("auth"));
    auth.wait_ready(Duration::from_secs(20)).await;
    let host = auth.base.trim_start_matches("http://").to_owned();
    let script = format!(
        "set -euo pipefail\n{}",
        example.replace("localhost:8081", &host)
    );
    let mut command = Command::new("bash");
    command.arg("-c").arg(script);
    let stdout = run_ok(command).await;
    assert!(
        stdout.contains(r#""email":"ann@example.com""#),
        "register and /me: {stdout}"
    );
    assert!(stdout.contains(r#""role":"customer""#), "{stdout}");
    // curl prints bodies without newlines; the logout's status code comes last.
    assert!(stdout.trim_end().ends_with("}204"), "logout: {stdout}");
}
