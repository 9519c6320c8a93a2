//! `catalog-order seed-demo`: a realistic demo catalog — categories and a few hundred items —
//! for local development, demos and benchmarks. Idempotent: running it again adds nothing.

use sqlx::PgPool;
use uuid::Uuid;

/// (slug, name, nouns sold in it)
const CATEGORIES: &[(&str, &str, &[&str])] = &[
    (
        "t-shirts",
        "T-shirts",
        &["tee", "v-neck", "long-sleeve tee", "polo", "tank top"],
    ),
    (
        "hoodies",
        "Hoodies & sweaters",
        &["hoodie", "zip hoodie", "sweater", "cardigan", "fleece"],
    ),
    (
        "trousers",
        "Trousers",
        &["jeans", "chinos", "joggers", "cargo trousers", "shorts"],
    ),
    (
        "shoes",
        "Shoes",
        &["running shoe", "sneaker", "boot", "sandal", "loafer"],
    ),
    (
        "hats",
        "Hats & caps",
        &["cap", "beanie", "bucket hat", "sun hat", "trucker cap"],
    ),
    (
        "bags",
        "Bags",
        &[
            "backpack",
            "tote bag",
            "duffel bag",
            "messenger bag",
            "belt bag",
        ],
    ),
    (
        "socks",
        "Socks",
        &[
            "ankle socks",
            "crew socks",
            "wool socks",
            "running socks",
            "knee socks",
        ],
    ),
    (
        "accessories",
        "Accessories",
        &["scarf", "belt", "wallet", "sunglasses", "gloves"],
    ),
];

const ADJECTIVES: &[&str] = &[
    "Classic",
    "Organic",
    "Recycled",
    "Lightweight",
    "Heavyweight",
    "Vintage",
    "Everyday",
    "Trail",
];

const COLOURS: &[&str] = &["black", "white", "navy", "olive", "sand"];

/// What the seed created (0 and 0 on a second run).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    pub categories: u64,
    pub items: u64,
}

pub async fn seed_demo(db: &PgPool) -> Result<Seeded, sqlx::Error> {
    let mut seeded = Seeded::default();
    let mut tx = db.begin().await?;
    // A small deterministic generator: the same catalog on every machine.
    let mut state: u64 = 0x5eed;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    for (c, (slug, name, nouns)) in CATEGORIES.iter().enumerate() {
        seeded.categories += sqlx::query(
            "INSERT INTO categories (id, name, slug) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(name)
        .bind(slug)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let category_id: Uuid = sqlx::query_scalar("SELECT id FROM categories WHERE slug = $1")
            .bind(slug)
            .fetch_one(&mut *tx)
            .await?;
        for (a, adjective) in ADJECTIVES.iter().enumerate() {
            for (n, noun) in nouns.iter().enumerate() {
                let colour = COLOURS[(a + n) % COLOURS.len()];
                let sku = format!("DEMO-{c:02}{a:02}{n:02}");
                let item_name = format!("{adjective} {noun}");
                let description = format!(
                    "{adjective} {noun} in {colour}. Made to last, easy to care for, and part of \
                     our {} range.",
                    name.to_lowercase()
                );
                // 4.99 to 149.99, ending in .99 like a real shop.
                let price_cents = i64::try_from(499 + next(146) * 100).unwrap_or(999);
                let stock = i32::try_from(next(60)).unwrap_or(0);
                seeded.items += sqlx::query(
                    "INSERT INTO items (id, category_id, sku, name, description, price_cents, currency, stock)
                     VALUES ($1, $2, $3, $4, $5, $6, 'EUR', $7) ON CONFLICT (sku) DO NOTHING",
                )
                .bind(Uuid::now_v7())
                .bind(category_id)
                .bind(&sku)
                .bind(&item_name)
                .bind(&description)
                .bind(price_cents)
                .bind(stock)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
        }
    }
    tx.commit().await?;
    Ok(seeded)
}
