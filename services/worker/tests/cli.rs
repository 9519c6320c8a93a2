//! `worker dlq list|replay|purge` against a real NATS server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use platform::nats::Namespace;
use testkit::{nats_namespace, nats_url, prod_command};

fn worker(namespace: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(args)
        .env_clear()
        .envs(testkit::coverage_env())
        .env("APP_ENV", "test")
        .env("NATS_URL", nats_url())
        .env("NATS_NAMESPACE", namespace)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn dead_jobs_are_listed_replayed_and_purged_from_the_command_line() {
    let namespace = nats_namespace();
    let (ok, out) = worker(&namespace, &["dlq", "list"]);
    assert!(ok && out.contains("empty"), "{out}");

    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let topology = jobs::Topology::new(Namespace::new(&namespace).unwrap());
    for n in 0..2 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            jobs::headers::JOB_ID,
            format!("00000000-0000-0000-0000-00000000000{n}").as_str(),
        );
        headers.insert(jobs::headers::JOB_KIND, "email.order_confirmation");
        headers.insert(jobs::headers::JOB_ATTEMPTS, "8");
        headers.insert(jobs::headers::JOB_ERROR, "smtp refused");
        js.publish_with_headers(
            topology.dlq_subject("email.order_confirmation"),
            headers,
            "{}".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let (ok, out) = worker(&namespace, &["dlq", "list"]);
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains("smtp refused") && out.contains("attempts=8"),
        "{out}"
    );

    let (ok, out) = worker(&namespace, &["dlq", "replay", "1"]);
    assert!(
        ok && out.contains("replayed email.order_confirmation"),
        "{out}"
    );
    let mut jobs_stream = js.get_stream(topology.jobs_stream()).await.unwrap();
    assert_eq!(jobs_stream.info().await.unwrap().state.messages, 1);
    assert!(
        !worker(&namespace, &["dlq", "replay", "1"]).0,
        "replaying twice must fail"
    );

    let (ok, out) = worker(&namespace, &["dlq", "purge"]);
    assert!(ok && out.contains("purged 1"), "{out}");
    jobs::topology::teardown(&js, &topology).await;
}

/// The binary in prod with exactly these variables: NATS and nothing for e-mail or thumbnails.
fn worker_prod(env: &[(&str, &str)], args: &[&str]) -> Output {
    prod_command(env!("CARGO_BIN_EXE_worker"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test]
async fn dlq_commands_in_prod_need_only_nats() {
    let namespace = nats_namespace();
    let url = nats_url();
    let env = [("NATS_URL", url.as_str()), ("NATS_NAMESPACE", &namespace)];
    for args in [
        &["dlq", "list"][..],
        &["dlq", "purge"],
        &["dlq", "replay", "7"],
    ] {
        let out = worker_prod(&env, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("invalid configuration") && out.status.code() != Some(78),
            "{args:?} refused for its settings: {stderr}"
        );
        // There is no dead job 7 to replay; list and purge succeed.
        assert_eq!(
            out.status.success(),
            args[1] != "replay",
            "{args:?}: {out:?}"
        );
    }
    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let topology = jobs::Topology::new(Namespace::new(&namespace).unwrap());
    jobs::topology::teardown(&js, &topology).await;
}

#[test]
fn prod_serve_with_only_nats_is_refused_and_dlq_still_needs_nats() {
    let out = worker_prod(&[("NATS_URL", "nats://127.0.0.1:1")], &["serve"]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("- EMAIL_TRANSPORT:"), "{stderr}");
    assert!(!stderr.contains("- NATS_URL:"), "{stderr}");
    let out = worker_prod(&[], &["dlq", "list"]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("- NATS_URL:"));
}
