//! Jobs across the real binaries: a worker killed with SIGKILL in the middle of a job loses
//! nothing — another worker finishes it after the job's `ack_wait`, and its effect happens once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Deps, Service, Stack, admin_and_customer, created, mug_for_sale};
use testkit::{SmtpSink, eventually};

#[tokio::test]
async fn a_worker_killed_mid_job_loses_nothing_and_the_job_completes_after_restart() {
    let deps = Deps::new().await;
    let sink = SmtpSink::start().await;
    // The mail server hangs: the first worker's e-mail job blocks inside its handler.
    sink.stall(true);
    let mut stack = Stack::start(&deps, |service, env| {
        if service == "worker" {
            env.insert("EMAIL_TRANSPORT".into(), "smtp".into());
            env.insert("SMTP_URL".into(), sink.url());
        }
    })
    .await;

    let (admin, ann) = admin_and_customer(&deps, &stack.auth).await;
    let client = testkit::http_client();
    let base = stack.catalog.base.clone();
    let api = |path: &str| format!("{base}{path}");
    let item = mug_for_sale(&client, &stack, &admin).await;
    let order = created(
        client
            .post(api("/v1/orders"))
            .bearer_auth(&ann)
            .json(&json!({"lines": [{"item_id": item["id"], "quantity": 1}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;

    let job = || async {
        let list: Value = client
            .get(api("/v1/orders"))
            .bearer_auth(&ann)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["items"][0]["id"], order["id"]);
        let id: String = sqlx::query_scalar("SELECT id::text FROM jobs")
            .fetch_one(&deps.catalog_db.pool().await)
            .await
            .unwrap();
        let job: Value = client
            .get(api(&format!("/v1/jobs/{id}")))
            .bearer_auth(&ann)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        job
    };
    assert!(
        eventually(Duration::from_secs(20), || async {
            job().await["status"] == "running"
        })
        .await,
        "the job never started: {}",
        job().await
    );

    stack.worker.signal("KILL");
    stack.worker.wait_exit(Duration::from_secs(5)).unwrap();
    sink.stall(false);
    let _second = Service::start("worker", stack.env("worker"));

    // Redelivered once the dead worker's in-progress acks stop (ack_wait 15 s).
    assert!(
        eventually(Duration::from_secs(45), || async {
            job().await["status"] == "succeeded"
        })
        .await,
        "the job did not complete after the restart: {}",
        job().await
    );
    let done = job().await;
    assert_eq!(done["attempts"], 2, "{done}");
    // The order's confirmation; auth's verification e-mails to the two accounts come too.
    let mails: Vec<String> = sink
        .messages()
        .into_iter()
        .filter(|m| m.contains("Subject: Your Storefront order"))
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains(order["id"].as_str().unwrap()));
}
