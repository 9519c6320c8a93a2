//! Retention: what the scheduled purges delete and what they must keep, on a clock the test moves
//! (`now` is a parameter of every purge; rows are written with timestamps relative to it).

use std::time::Duration;

use catalog_order::maintenance::{PurgedJobs, purge_jobs};
use catalog_order::settings::Retention;
use catalog_order::store;
use sqlx::PgPool;
use testkit::TestDb;
use time::OffsetDateTime;
use uuid::Uuid;

const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

async fn catalog() -> (TestDb, PgPool) {
    let test_db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
    let db = test_db.pool().await;
    (test_db, db)
}

/// A job last updated (for a final status: finished) at `at`; published by the relay or not.
async fn job_at(db: &PgPool, status: &str, at: OffsetDateTime, published: bool) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO jobs (id, kind, payload, status, created_at, updated_at, published_at)
         VALUES (gen_random_uuid(), 'email.order_confirmation',
                 '{\"to\": \"ann@example.com\"}', $1, $2, $2, CASE WHEN $3 THEN $2 END)
         RETURNING id",
    )
    .bind(status)
    .bind(at)
    .bind(published)
    .fetch_one(db)
    .await
    .unwrap()
}

async fn jobs_left(db: &PgPool) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM jobs ORDER BY id")
        .fetch_all(db)
        .await
        .unwrap()
}

async fn event_at(db: &PgPool, at: OffsetDateTime) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO job_event_inbox (event_id, received_at) VALUES (gen_random_uuid(), $1)
         RETURNING event_id",
    )
    .bind(at)
    .fetch_one(db)
    .await
    .unwrap()
}

async fn events_left(db: &PgPool) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT event_id FROM job_event_inbox ORDER BY event_id")
        .fetch_all(db)
        .await
        .unwrap()
}

async fn key_at(db: &PgPool, key: &str, at: OffsetDateTime) {
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response_body,
                                       created_at)
         VALUES (gen_random_uuid(), $1, '\\x00', 201, '{}', $2)",
    )
    .bind(key)
    .bind(at)
    .execute(db)
    .await
    .unwrap();
}

async fn keys_left(db: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT key FROM idempotency_keys ORDER BY key")
        .fetch_all(db)
        .await
        .unwrap()
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

fn retention(jobs: Duration, job_events: Duration, idempotency_keys: Duration) -> Retention {
    Retention {
        retention_jobs: jobs,
        retention_job_events: job_events,
        retention_idempotency_keys: idempotency_keys,
    }
}

#[tokio::test]
async fn only_jobs_that_finished_longer_ago_than_their_retention_are_purged() {
    let (_test_db, db) = catalog().await;
    let now = OffsetDateTime::now_utc();
    let long_ago = now - 40 * DAY;
    let succeeded_long_ago = job_at(&db, "succeeded", long_ago, true).await;
    let dead_long_ago = job_at(&db, "dead", long_ago, true).await;
    // Not final, however old: a failed attempt awaits its retry, the others their worker.
    let failed_long_ago = job_at(&db, "failed", long_ago, true).await;
    let running_long_ago = job_at(&db, "running", long_ago, true).await;
    let queued_long_ago = job_at(&db, "queued", long_ago, true).await;
    // An outbox row the relay has not published yet is kept whatever its status says.
    let unpublished = job_at(&db, "succeeded", long_ago, false).await;
    let succeeded_yesterday = job_at(&db, "succeeded", now - DAY, true).await;

    let keep_30_days = retention(30 * DAY, 7 * DAY, DAY);
    let purged = purge_jobs(&db, &keep_30_days, now).await.unwrap();
    assert_eq!(purged.jobs, 2);
    assert_eq!(
        jobs_left(&db).await,
        sorted(vec![
            failed_long_ago,
            running_long_ago,
            queued_long_ago,
            unpublished,
            succeeded_yesterday,
        ])
    );
    assert!(!jobs_left(&db).await.contains(&succeeded_long_ago));
    assert!(!jobs_left(&db).await.contains(&dead_long_ago));

    // Thirty days on, yesterday's job has had its time too; the unfinished ones still stay.
    let purged = purge_jobs(&db, &keep_30_days, now + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(purged.jobs, 1);
    assert_eq!(
        jobs_left(&db).await,
        sorted(vec![
            failed_long_ago,
            running_long_ago,
            queued_long_ago,
            unpublished
        ])
    );
}

#[tokio::test]
async fn a_finished_job_an_item_image_points_at_is_kept() {
    let (_test_db, db) = catalog().await;
    let now = OffsetDateTime::now_utc();
    let image_job = job_at(&db, "succeeded", now - 90 * DAY, true).await;
    sqlx::query(
        "WITH c AS (
             INSERT INTO categories (id, name, slug) VALUES (gen_random_uuid(), 'C', 'c')
             RETURNING id
         ), i AS (
             INSERT INTO items (id, category_id, sku, name, price_cents, currency, stock)
             SELECT gen_random_uuid(), c.id, 'IMG-1', 'Item', 100, 'EUR', 1 FROM c RETURNING id
         )
         INSERT INTO item_images (id, item_id, job_id, status, content_type, width, height, bytes)
         SELECT gen_random_uuid(), i.id, $1, 'ready', 'image/png', 1, 1, 1 FROM i",
    )
    .bind(image_job)
    .execute(&db)
    .await
    .unwrap();
    let purged = purge_jobs(&db, &retention(DAY, 7 * DAY, DAY), now)
        .await
        .unwrap();
    assert_eq!(purged, PurgedJobs::default());
    assert_eq!(jobs_left(&db).await, vec![image_job]);
}

#[tokio::test]
async fn a_backlog_larger_than_a_batch_is_purged_in_batches_to_the_last_row() {
    let (_test_db, db) = catalog().await;
    let now = OffsetDateTime::now_utc();
    let backlog = platform::db::PURGE_BATCH * 2 + 500;
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, status, updated_at, published_at)
         SELECT gen_random_uuid(), 'email.order_confirmation', '{}', 'succeeded', $1, $1
         FROM generate_series(1, $2)",
    )
    .bind(now - 60 * DAY)
    .bind(backlog)
    .execute(&db)
    .await
    .unwrap();
    let running = job_at(&db, "running", now - 60 * DAY, true).await;
    let purged = purge_jobs(&db, &retention(30 * DAY, 7 * DAY, DAY), now)
        .await
        .unwrap();
    assert_eq!(purged.jobs, u64::try_from(backlog).unwrap());
    assert_eq!(jobs_left(&db).await, vec![running]);
}

#[tokio::test]
async fn payment_events_are_forgotten_with_the_job_events_retention() {
    let (_test_db, db) = catalog().await;
    let now = OffsetDateTime::now_utc();
    for (id, age) in [("evt_old", 10 * DAY), ("evt_recent", 3 * DAY)] {
        sqlx::query(
            "INSERT INTO payment_events (id, type, payment_id, received_at)
             VALUES ($1, 'payment.succeeded', gen_random_uuid(), $2)",
        )
        .bind(id)
        .bind(now - age)
        .execute(&db)
        .await
        .unwrap();
    }
    let purged = purge_jobs(&db, &retention(30 * DAY, 7 * DAY, DAY), now)
        .await
        .unwrap();
    assert_eq!(purged.payment_events, 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT id FROM payment_events")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(left, ["evt_recent"]);
}

#[tokio::test]
async fn applied_events_are_forgotten_after_their_retention_but_never_while_they_may_come_again() {
    let (_test_db, db) = catalog().await;
    let now = OffsetDateTime::now_utc();
    let ten_days_old = event_at(&db, now - 10 * DAY).await;
    let three_days_old = event_at(&db, now - 3 * DAY).await;
    let fresh = event_at(&db, now).await;

    let purged = purge_jobs(&db, &retention(30 * DAY, 7 * DAY, DAY), now)
        .await
        .unwrap();
    assert_eq!(purged.job_events, 1);
    assert_eq!(events_left(&db).await, sorted(vec![three_days_old, fresh]));
    assert!(!events_left(&db).await.contains(&ten_days_old));

    // A retention shorter than the events stream keeps them (settings refuse it; the purge is
    // safe without that check): the stream may still deliver a three-day-old event again.
    let n = store::jobs::purge_inbox(&db, now, HOUR).await.unwrap();
    assert_eq!(n, 0);
    assert_eq!(events_left(&db).await, sorted(vec![three_days_old, fresh]));

    // Five days on, the three-day-old event is eight days old and goes.
    let n = store::jobs::purge_inbox(&db, now + 5 * DAY, 7 * DAY)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(events_left(&db).await, vec![fresh]);
}

#[tokio::test]
async fn idempotency_keys_are_purged_after_their_retention_and_never_inside_the_replay_window() {
    let (_test_db, db) = catalog().await;
    let now = OffsetDateTime::now_utc();
    key_at(&db, "two-days-old", now - 2 * DAY).await;
    key_at(&db, "twenty-hours-old", now - 20 * HOUR).await;
    key_at(&db, "fresh", now).await;

    let n = store::idempotency::purge_expired(&db, now, DAY)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(keys_left(&db).await, ["fresh", "twenty-hours-old"]);

    // A retention under the 24 h replay window still keeps a key that would replay.
    let n = store::idempotency::purge_expired(&db, now, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(n, 0);

    // Five hours on the twenty-hour-old key is past its day; the fresh one is not.
    let n = store::idempotency::purge_expired(&db, now + 5 * HOUR, DAY)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(keys_left(&db).await, ["fresh"]);
}
