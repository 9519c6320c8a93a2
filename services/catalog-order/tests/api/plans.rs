//! The list queries use the indexes meant for them, on a table of 100 000 items (EXPLAIN).

use catalog_order::domain::SearchText;
use catalog_order::store::items::{
    Candidates, CategoryRef, ItemFilter, ItemKey, ItemSort, page_query,
};
use sqlx::PgConnection;
use testkit::TestDb;
use uuid::Uuid;

/// Asserts PostgreSQL served this connection's prepared statements matching `pattern` (SQL
/// LIKE) from its cached generic plan after their first executions, instead of planning each
/// one afresh (see `platform::pagination::limit_sql`). The `EXPLAIN`s of the same queries, run
/// on whichever connection the pool lends, are not counted.
async fn assert_planned_once(conn: &mut PgConnection, pattern: &str) {
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(generic_plans), 0)::int8, coalesce(sum(custom_plans), 0)::int8
         FROM pg_prepared_statements WHERE statement LIKE $1 AND statement NOT LIKE 'EXPLAIN %'",
    )
    .bind(pattern)
    .fetch_one(conn)
    .await
    .unwrap();
    assert!(
        generic >= 4 && custom <= 6,
        "{pattern}: re-planned, {generic} generic and {custom} custom plans"
    );
}

async fn plan(
    db: &sqlx::PgPool,
    filter: &ItemFilter,
    sort: ItemSort,
    after: Option<&ItemKey>,
) -> String {
    let mut q = page_query("EXPLAIN ", filter, sort, after, 20, Candidates::default()).unwrap();
    let lines: Vec<String> = q.build_query_scalar().fetch_all(db).await.unwrap();
    lines.join("\n")
}

#[tokio::test]
async fn list_queries_use_their_indexes_on_100k_items() {
    let test_db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
    let db = test_db.pool().await;
    sqlx::query(
        "INSERT INTO categories (id, name, slug)
         SELECT gen_random_uuid(), 'Category ' || n, 'category-' || n FROM generate_series(1, 50) n",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO items (id, category_id, sku, name, description, price_cents, currency, stock, active, created_at)
         SELECT gen_random_uuid(),
                (SELECT id FROM categories ORDER BY slug OFFSET (n % 50) LIMIT 1),
                'SKU-' || n, 'Item ' || md5(n::text), 'words ' || md5((n * 7)::text) || CASE WHEN n % 1000 = 0 THEN ' waterproof' ELSE '' END,
                (n * 7919) % 100000, 'EUR', n % 17, n % 20 <> 0, now() - make_interval(secs => n)
         FROM generate_series(1, 100000) n",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("ANALYZE items").execute(&db).await.unwrap();
    let category: Uuid = sqlx::query_scalar("SELECT id FROM categories WHERE slug = 'category-7'")
        .fetch_one(&db)
        .await
        .unwrap();

    let cases: Vec<(&str, ItemFilter, ItemSort, Option<ItemKey>, &str)> = vec![
        (
            "newest",
            ItemFilter::default(),
            ItemSort::NewestFirst,
            None,
            "items_created",
        ),
        (
            "newest, page 2",
            ItemFilter::default(),
            ItemSort::NewestFirst,
            Some(ItemKey::Created(
                time::OffsetDateTime::now_utc().unix_timestamp_nanos() - 5_000_000_000_000,
                Uuid::max(),
            )),
            "items_created",
        ),
        (
            "cheapest",
            ItemFilter::default(),
            ItemSort::PriceAsc,
            None,
            "items_price",
        ),
        (
            "dearest",
            ItemFilter::default(),
            ItemSort::PriceDesc,
            None,
            "items_price",
        ),
        (
            "by name",
            ItemFilter::default(),
            ItemSort::NameAsc,
            None,
            "items_name",
        ),
        (
            "category by price",
            ItemFilter {
                category: Some(CategoryRef::Id(category)),
                ..ItemFilter::default()
            },
            ItemSort::PriceAsc,
            None,
            "items_category_price",
        ),
        (
            "category newest",
            ItemFilter {
                category: Some(CategoryRef::Id(category)),
                ..ItemFilter::default()
            },
            ItemSort::NewestFirst,
            None,
            "items_category_created",
        ),
        (
            "category by name",
            ItemFilter {
                category: Some(CategoryRef::Id(category)),
                ..ItemFilter::default()
            },
            ItemSort::NameAsc,
            None,
            "items_category_name",
        ),
        (
            "search",
            ItemFilter {
                q: SearchText::parse("waterproof").unwrap(),
                ..ItemFilter::default()
            },
            ItemSort::NewestFirst,
            None,
            "items_search",
        ),
        (
            "price range",
            ItemFilter {
                min_price: Some(100),
                max_price: Some(200),
                ..ItemFilter::default()
            },
            ItemSort::PriceAsc,
            None,
            "items_price",
        ),
    ];
    for (name, filter, sort, after, index) in &cases {
        let text = plan(&db, filter, *sort, after.as_ref()).await;
        assert!(text.contains(index), "{name}: expected {index} in\n{text}");
        assert!(
            !text.contains("Seq Scan on items"),
            "{name}: sequential scan\n{text}"
        );
    }

    // A busy list is planned once per connection, not on every request.
    let mut conn = db.acquire().await.unwrap();
    let (_, filter, sort, _, _) = cases.iter().find(|c| c.0 == "category by price").unwrap();
    for _ in 0..10 {
        let rows = catalog_order::store::items::page(
            &mut *conn,
            filter,
            *sort,
            None,
            20,
            Candidates::default(),
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 21);
    }
    assert_planned_once(&mut conn, "%FROM items WHERE active AND category_id%").await;
}

#[tokio::test]
async fn order_lists_use_their_indexes_on_100k_orders() {
    use catalog_order::store::orders::{OrderFilter, page_query};
    let test_db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
    let db = test_db.pool().await;
    sqlx::query(
        "INSERT INTO customers (id) SELECT gen_random_uuid() FROM generate_series(1, 2000)",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO orders (id, customer_id, status, total_cents, currency, created_at)
         SELECT gen_random_uuid(), c.id, (ARRAY['pending','paid','shipped','cancelled'])[1 + n % 4],
                n, 'EUR', now() - make_interval(secs => n)
         FROM generate_series(1, 100000) n
         JOIN LATERAL (SELECT id FROM customers OFFSET (n % 2000) LIMIT 1) c ON true",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&db).await.unwrap();
    let customer: Uuid = sqlx::query_scalar("SELECT id FROM customers LIMIT 1")
        .fetch_one(&db)
        .await
        .unwrap();
    let cases = [
        (
            "a customer's orders",
            OrderFilter {
                customer_id: Some(customer),
                ..OrderFilter::default()
            },
            "orders_customer_created",
        ),
        (
            "everyone's, newest first",
            OrderFilter::default(),
            "orders_created",
        ),
        (
            "by status",
            OrderFilter {
                status: Some("paid"),
                ..OrderFilter::default()
            },
            "orders_status_created",
        ),
    ];
    for (name, filter, index) in &cases {
        let mut q = page_query("EXPLAIN ", filter, None, 20);
        let text: Vec<String> = q.build_query_scalar().fetch_all(&db).await.unwrap();
        let text = text.join("\n");
        assert!(text.contains(index), "{name}: expected {index} in\n{text}");
        assert!(
            !text.contains("Seq Scan on orders"),
            "{name}: sequential scan\n{text}"
        );
    }

    // The admin's list of everyone's orders is planned once per connection (see the items test).
    let mut conn = db.acquire().await.unwrap();
    for _ in 0..10 {
        catalog_order::store::orders::page(&mut *conn, &OrderFilter::default(), None, 20)
            .await
            .unwrap();
    }
    assert_planned_once(&mut conn, "%FROM orders WHERE true ORDER BY%").await;
}
