//! `account.deleted` anonymises the customer once, however often it is delivered, and touches no
//! one else, and nothing is written for the customer afterwards: no profile, no order
//! (`store::jobs::apply_event` on a database of its own; no NATS).

use catalog_order::store::customers;
use catalog_order::store::jobs::apply_event;
use jobs::accounts::AccountDeleted;
use jobs::events::Event;
use serde_json::{Value, json};
use sqlx::PgPool;
use testkit::TestDb;
use uuid::Uuid;

async fn customer_with_profile(db: &PgPool, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO customers (id, full_name, phone, address_line, city, postal_code, country)
         VALUES ($1, $2, '+49 30 1', '1 Main Street', 'Berlin', '10115', 'DE')",
    )
    .bind(id)
    .bind(name)
    .execute(db)
    .await
    .unwrap();
    id
}

/// An order confirmation as catalog-order writes it: the e-mail inside the payload.
async fn confirmation_job(db: impl sqlx::PgExecutor<'_>, customer: Uuid, email: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO jobs (id, kind, payload, owner_id)
         VALUES (gen_random_uuid(), 'email.order_confirmation', $1, $2) RETURNING id",
    )
    .bind(
        json!({"order_id": Uuid::now_v7(), "customer_id": customer, "email": email,
                 "total_cents": 1800, "currency": "EUR",
                 "lines": [{"name": "Mug", "quantity": 2, "unit_price_cents": 900}]}),
    )
    .bind(customer)
    .fetch_one(db)
    .await
    .unwrap()
}

async fn payload(db: &PgPool, job: Uuid) -> Value {
    sqlx::query_scalar("SELECT payload FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_one(db)
        .await
        .unwrap()
}

async fn profile(db: &PgPool, id: Uuid) -> (String, String, Option<time::OffsetDateTime>) {
    sqlx::query_as(
        "SELECT full_name, address_line || city || postal_code || country || phone, anonymised_at
         FROM customers WHERE id = $1",
    )
    .bind(id)
    .fetch_one(db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_deleted_account_is_anonymised_once_and_no_one_else_is_touched() {
    let test_db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
    let db = test_db.pool().await;
    let ann = customer_with_profile(&db, "Ann Example").await;
    let bob = customer_with_profile(&db, "Bob Example").await;
    let ann_job = confirmation_job(&db, ann, "ann@example.com").await;
    let bob_job = confirmation_job(&db, bob, "bob@example.com").await;

    let deleted = Event::AccountDeleted(AccountDeleted {
        event_id: Uuid::now_v7(),
        user_id: ann,
    });
    apply_event(&db, &deleted).await.unwrap();
    let (name, rest, at) = profile(&db, ann).await;
    assert_eq!((name.as_str(), rest.as_str()), ("", ""));
    let first_at = at.expect("anonymised_at is set");
    let scrubbed = payload(&db, ann_job).await;
    assert!(scrubbed.get("email").is_none(), "{scrubbed}");
    assert_eq!(scrubbed["total_cents"], 1800);
    assert_eq!(scrubbed["lines"][0]["quantity"], 2);

    // Redelivered, and announced again (an admin retrying): nothing moves.
    apply_event(&db, &deleted).await.unwrap();
    let again = Event::AccountDeleted(AccountDeleted {
        event_id: Uuid::now_v7(),
        user_id: ann,
    });
    apply_event(&db, &again).await.unwrap();
    assert_eq!(profile(&db, ann).await.2, Some(first_at));
    assert_eq!(payload(&db, ann_job).await, scrubbed);

    // Bob keeps everything.
    assert_eq!(profile(&db, bob).await.0, "Bob Example");
    assert_eq!(payload(&db, bob_job).await["email"], "bob@example.com");

    // A deleted account that never had a profile gets an empty one, a tombstone.
    let stranger = Uuid::now_v7();
    let deleted = Event::AccountDeleted(AccountDeleted {
        event_id: Uuid::now_v7(),
        user_id: stranger,
    });
    apply_event(&db, &deleted).await.unwrap();
    let (name, rest, at) = profile(&db, stranger).await;
    assert_eq!((name.as_str(), rest.as_str()), ("", ""));
    assert!(at.is_some());

    // A profile update in flight that commits afterwards writes nothing, for either; a request
    // that would create the profile (a GET, an order) sees the tombstone and is refused.
    for id in [ann, stranger] {
        let put = customers::put(
            &db,
            id,
            &customers::Profile {
                full_name: "Back Again",
                phone: "+49 30 2",
                address_line: "2 Main Street",
                city: "Berlin",
                postal_code: "10115",
                country: "DE",
            },
        )
        .await
        .unwrap();
        assert!(put.is_none());
        assert_eq!(profile(&db, id).await.0, "");
        assert!(
            customers::get_or_create(&db, id)
                .await
                .unwrap()
                .anonymised_at
                .is_some()
        );
    }
    assert!(
        customers::get_or_create(&db, bob)
            .await
            .unwrap()
            .anonymised_at
            .is_none()
    );
}

/// An order transaction holding the customer row when `account.deleted` arrives: the anonymising
/// waits for it and then scrubs the order's e-mail job.
#[tokio::test]
async fn an_order_committing_while_the_account_is_deleted_is_scrubbed_after_it() {
    let test_db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
    let db = test_db.pool().await;
    let ann = customer_with_profile(&db, "Ann Example").await;
    let mut order = db.begin().await.unwrap();
    let row = customers::get_or_create(&mut *order, ann).await.unwrap();
    assert!(row.anonymised_at.is_none());
    let deleted = Event::AccountDeleted(AccountDeleted {
        event_id: Uuid::now_v7(),
        user_id: ann,
    });
    let applying = tokio::spawn({
        let db = db.clone();
        async move { apply_event(&db, &deleted).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !applying.is_finished(),
        "the anonymising did not wait for the order"
    );
    let job = confirmation_job(&mut *order, ann, "ann@example.com").await;
    order.commit().await.unwrap();
    applying.await.unwrap().unwrap();
    assert!(payload(&db, job).await.get("email").is_none());
    assert!(profile(&db, ann).await.2.is_some());
}
