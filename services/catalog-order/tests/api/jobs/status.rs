//! A job's status only moves forward, whatever order its events arrive in, however often one is
//! redelivered and however many replicas apply them at once (`store::jobs::apply_event` on a
//! database of its own; no NATS).

use catalog_order::domain::{JobProgress, JobStatus};
use catalog_order::store::jobs::{apply_event, by_id};
use jobs::events::Event;
use jobs::images::{ImageProcessed, THUMBNAIL_KIND};
use jobs::runtime::JobEvent;
use sqlx::PgPool;
use testkit::TestDb;
use uuid::Uuid;

const EMAIL_KIND: &str = "email.order_confirmation";

async fn catalog() -> (TestDb, PgPool) {
    let test_db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
    let db = test_db.pool().await;
    (test_db, db)
}

/// A queued job, as the outbox writes it.
async fn queued_job(db: &PgPool, kind: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO jobs (id, kind, payload) VALUES (gen_random_uuid(), $1, '{}') RETURNING id",
    )
    .bind(kind)
    .fetch_one(db)
    .await
    .unwrap()
}

/// A status event as the worker publishes it: a fresh event id each time.
fn event(job: Uuid, kind: &str, status: &str, attempts: i64) -> Event {
    Event::JobStatus(JobEvent {
        event_id: Uuid::now_v7(),
        job_id: job,
        kind: kind.to_owned(),
        status: status.to_owned(),
        attempts,
        error: (status == "failed" || status == "dead").then(|| "boom".to_owned()),
    })
}

async fn apply(db: &PgPool, events: &[&Event]) {
    for e in events {
        apply_event(db, e).await.unwrap();
    }
}

/// What `GET /v1/jobs/{id}` shows: status and attempts.
async fn shown(db: &PgPool, job: Uuid) -> (String, i32) {
    let row = by_id(db, job).await.unwrap().unwrap();
    (row.status, row.attempts)
}

#[tokio::test]
async fn a_late_running_after_succeeded_leaves_the_job_succeeded() {
    let (_test_db, db) = catalog().await;
    let job = queued_job(&db, EMAIL_KIND).await;
    let running = event(job, EMAIL_KIND, "running", 1);
    let succeeded = event(job, EMAIL_KIND, "succeeded", 1);
    apply(&db, &[&succeeded, &running]).await;
    assert_eq!(shown(&db, job).await, ("succeeded".into(), 1));
}

#[tokio::test]
async fn a_retry_runs_after_a_failed_attempt_and_an_older_attempt_never_overwrites_it() {
    let (_test_db, db) = catalog().await;
    let job = queued_job(&db, EMAIL_KIND).await;
    apply(
        &db,
        &[
            &event(job, EMAIL_KIND, "running", 1),
            &event(job, EMAIL_KIND, "failed", 1),
            &event(job, EMAIL_KIND, "running", 2),
        ],
    )
    .await;
    assert_eq!(
        shown(&db, job).await,
        ("running".into(), 2),
        "the retry runs"
    );

    // Attempt 1's events again (late copies from the other replica's share): attempt 2 stands.
    apply(
        &db,
        &[
            &event(job, EMAIL_KIND, "failed", 1),
            &event(job, EMAIL_KIND, "running", 1),
        ],
    )
    .await;
    assert_eq!(shown(&db, job).await, ("running".into(), 2));

    // A second failure, then the third attempt's start before the second's failure.
    let other = queued_job(&db, EMAIL_KIND).await;
    apply(
        &db,
        &[
            &event(other, EMAIL_KIND, "running", 3),
            &event(other, EMAIL_KIND, "failed", 2),
        ],
    )
    .await;
    assert_eq!(shown(&db, other).await, ("running".into(), 3));
}

#[tokio::test]
async fn a_dead_job_stays_dead_until_a_replay_runs_a_later_attempt() {
    let (_test_db, db) = catalog().await;
    let job = queued_job(&db, EMAIL_KIND).await;
    // Late events of the dead run, or of older attempts, never revive it.
    apply(
        &db,
        &[
            &event(job, EMAIL_KIND, "dead", 3),
            &event(job, EMAIL_KIND, "running", 3),
            &event(job, EMAIL_KIND, "failed", 2),
            &event(job, EMAIL_KIND, "running", 1),
            &event(job, EMAIL_KIND, "dead", 2),
        ],
    )
    .await;
    let row = by_id(&db, job).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("dead", 3));
    assert_eq!(
        row.error.as_deref(),
        Some("boom"),
        "the reason it died stays"
    );

    // `worker dlq replay`: the new run's attempts continue after the dead run's.
    apply(&db, &[&event(job, EMAIL_KIND, "running", 4)]).await;
    let row = by_id(&db, job).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("running", 4));
    assert_eq!(row.error, None);
    // The dead run's `dead` arriving late does not end the replay.
    apply(&db, &[&event(job, EMAIL_KIND, "dead", 3)]).await;
    assert_eq!(shown(&db, job).await, ("running".into(), 4));
    apply(&db, &[&event(job, EMAIL_KIND, "succeeded", 4)]).await;
    assert_eq!(shown(&db, job).await, ("succeeded".into(), 4));
}

#[tokio::test]
async fn a_redelivered_event_changes_nothing_and_a_stale_one_cannot_undo_the_outcome() {
    let (_test_db, db) = catalog().await;
    let job = queued_job(&db, EMAIL_KIND).await;
    let running = event(job, EMAIL_KIND, "running", 1);
    let succeeded = event(job, EMAIL_KIND, "succeeded", 1);
    apply(&db, &[&running, &succeeded, &running, &succeeded]).await;
    assert_eq!(shown(&db, job).await, ("succeeded".into(), 1));

    // Attempt 1 outlived its ack_wait: attempt 2 starts late, then the worker repeats the
    // `succeeded` it already sent (same event id): the job stays succeeded, not running.
    let Event::JobStatus(mut again) = succeeded.clone() else {
        unreachable!()
    };
    again.attempts = 2;
    apply(
        &db,
        &[
            &event(job, EMAIL_KIND, "running", 2),
            &Event::JobStatus(again),
        ],
    )
    .await;
    assert_eq!(shown(&db, job).await.0, "succeeded");
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM job_event_inbox")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(inbox, 3, "each distinct event is recorded once");
}

#[tokio::test]
async fn only_the_event_that_kills_an_image_job_fails_its_image() {
    let (_test_db, db) = catalog().await;
    let item: Uuid = sqlx::query_scalar(
        "WITH c AS (INSERT INTO categories (id, name, slug) VALUES (gen_random_uuid(), 'C', 'c')
                    RETURNING id)
         INSERT INTO items (id, category_id, sku, name, description, price_cents, currency, stock)
         SELECT gen_random_uuid(), c.id, 'IMG-1', 'Item', '', 100, 'EUR', 1 FROM c RETURNING id",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let image_of = |job: Uuid| {
        let db = db.clone();
        async move {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO item_images (id, item_id, job_id, content_type, width, height, bytes)
                 VALUES ($1, $2, $3, 'image/png', 10, 10, 100)",
            )
            .bind(id)
            .bind(item)
            .bind(job)
            .execute(&db)
            .await
            .unwrap();
            id
        }
    };
    let image_status = |id: Uuid| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM item_images WHERE id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };

    // Succeeded, then a stale `dead` (the last delivery's ack was lost) before `image.processed`.
    let job = queued_job(&db, THUMBNAIL_KIND).await;
    let image = image_of(job).await;
    apply(
        &db,
        &[
            &event(job, THUMBNAIL_KIND, "running", 3),
            &event(job, THUMBNAIL_KIND, "succeeded", 3),
            &event(job, THUMBNAIL_KIND, "dead", 3),
        ],
    )
    .await;
    assert_eq!(shown(&db, job).await.0, "succeeded");
    assert_eq!(image_status(image).await, "processing");
    let processed = Event::ImageProcessed(ImageProcessed {
        event_id: Uuid::now_v7(),
        job_id: job,
        item_id: item,
        image_id: image,
        variants: Vec::new(),
    });
    apply(&db, &[&processed]).await;
    assert_eq!(image_status(image).await, "ready");

    // A job that did die fails its image, once, however often `dead` comes.
    let job = queued_job(&db, THUMBNAIL_KIND).await;
    let image = image_of(job).await;
    let dead = event(job, THUMBNAIL_KIND, "dead", 1);
    apply(
        &db,
        &[&event(job, THUMBNAIL_KIND, "running", 1), &dead, &dead],
    )
    .await;
    assert_eq!(shown(&db, job).await.0, "dead");
    assert_eq!(image_status(image).await, "failed");
}

#[tokio::test]
async fn the_database_applies_exactly_the_domain_rule() {
    let (_test_db, db) = catalog().await;
    let job = queued_job(&db, EMAIL_KIND).await;
    // Three attempt counts: equal, higher and lower by one or by two on either side.
    let progresses: Vec<JobProgress> = [1, 2, 3]
        .into_iter()
        .flat_map(|a| JobStatus::ALL.map(|s| JobProgress::new(a, s)))
        .collect();
    for &stored in &progresses {
        for &next in &progresses {
            sqlx::query("UPDATE jobs SET status = $2, attempts = $3 WHERE id = $1")
                .bind(job)
                .bind(stored.status.as_str())
                .bind(i32::try_from(stored.attempts).unwrap())
                .execute(&db)
                .await
                .unwrap();
            let e = event(job, EMAIL_KIND, next.status.as_str(), next.attempts.into());
            apply(&db, &[&e]).await;
            let (status, attempts) = shown(&db, job).await;
            // The store keeps the highest attempt count seen.
            let expected = if stored.can_become(next) {
                JobProgress::new(stored.attempts.max(next.attempts), next.status)
            } else {
                stored
            };
            assert_eq!(
                (status.as_str(), u32::try_from(attempts).unwrap()),
                (expected.status.as_str(), expected.attempts),
                "{stored} then {next}"
            );
        }
    }
}

/// One job's true history, in the order the worker published it.
fn history(job: Uuid, script: &[(&str, i64)]) -> Vec<Event> {
    script
        .iter()
        .map(|&(status, attempts)| event(job, EMAIL_KIND, status, attempts))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_applying_shuffled_events_leave_every_job_at_its_true_final_status() {
    let (test_db, db) = catalog().await;
    let scripts: [&[(&str, i64)]; 4] = [
        &[("running", 1), ("succeeded", 1)],
        &[
            ("running", 1),
            ("failed", 1),
            ("running", 2),
            ("succeeded", 2),
        ],
        &[
            ("running", 1),
            ("failed", 1),
            ("running", 2),
            ("failed", 2),
            ("running", 3),
            ("dead", 3),
        ],
        &[("running", 1), ("failed", 1), ("running", 2)],
    ];
    for round in 0..5 {
        let mut expected = Vec::new();
        let mut events = Vec::new();
        for n in 0..50 {
            let job = queued_job(&db, EMAIL_KIND).await;
            let script = scripts[n % scripts.len()];
            let all = history(job, script);
            // Some events are delivered twice (an ack lost on the way back).
            events.extend(all.iter().step_by(2).cloned());
            events.extend(all);
            let &(status, attempts) = script.last().unwrap();
            expected.push((job, status, i32::try_from(attempts).unwrap()));
        }
        events.sort_by_cached_key(|_| Uuid::new_v4());
        let half = events.len() / 2;
        let second = events.split_off(half);
        let replicas = [events, second].map(|share| {
            let test_db_url = test_db.url.clone();
            tokio::spawn(async move {
                // Each replica has its own pool, as two processes would.
                let pool = sqlx::PgPool::connect(&test_db_url).await.unwrap();
                for e in &share {
                    apply_event(&pool, e).await.unwrap();
                }
                pool.close().await;
            })
        });
        for replica in replicas {
            replica.await.unwrap();
        }
        for (job, status, attempts) in expected {
            assert_eq!(
                shown(&db, job).await,
                (status.to_owned(), attempts),
                "round {round}, job {job}"
            );
        }
    }
}
