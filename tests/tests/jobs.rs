//! Jobs across the real binaries: a worker killed with SIGKILL in the middle of a job loses
//! nothing — another worker finishes it after the job's `ack_wait`, and its effect happens once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use platform::testing::{SmtpSink, eventually};
use serde_json::{Value, json};
use support::{Deps, Service, admin_and_customer, created};

#[tokio::test]
async fn a_worker_killed_mid_job_loses_nothing_and_the_job_completes_after_restart() {
    let deps = Deps::new().await;
    let sink = SmtpSink::start().await;
    // The mail server hangs: the first worker's e-mail job blocks inside its handler.
    sink.stall(true);
    let auth = Service::start("auth", &deps.env("auth"));
    auth.wait_ready(Duration::from_secs(20)).await;
    let mut env = deps.env("catalog-order");
    env.insert(
        "AUTH_JWKS_URL".into(),
        format!("{}/.well-known/jwks.json", auth.base),
    );
    let catalog = Service::start("catalog-order", &env);
    let mut worker_env = deps.env("worker");
    worker_env.insert("EMAIL_TRANSPORT".into(), "smtp".into());
    worker_env.insert("SMTP_URL".into(), sink.url());
    worker_env.insert("SCHEDULER_ENABLED".into(), "false".into());
    let mut worker = Service::start("worker", &worker_env);
    catalog.wait_ready(Duration::from_secs(20)).await;
    worker.wait_ready(Duration::from_secs(20)).await;

    let (admin, ann) = admin_and_customer(&deps, &auth).await;
    let client = reqwest::Client::new();
    let api = |path: &str| format!("{}{path}", catalog.base);
    let cat = created(
        client
            .post(api("/v1/categories"))
            .bearer_auth(&admin)
            .json(&json!({"name": "Mugs", "slug": "mugs"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let item = created(
        client
            .post(api("/v1/items"))
            .bearer_auth(&admin)
            .json(&json!({"category_id": cat["id"], "sku": "MUG-1", "name": "Mug",
                          "description": "white", "price_cents": 900, "currency": "EUR", "stock": 3}))
            .send()
            .await
            .unwrap(),
    )
    .await;
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

    worker.signal("KILL");
    worker.wait_exit(Duration::from_secs(5)).unwrap();
    sink.stall(false);
    let _second = Service::start("worker", &worker_env);

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
    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains(order["id"].as_str().unwrap()));
}
