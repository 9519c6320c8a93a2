use platform::pagination::limit_sql;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgExecutor, Postgres, QueryBuilder, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::SearchText;
use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct ItemRow {
    pub id: Uuid,
    pub category_id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i32,
    pub active: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// How well the row matches a search (relevance, or name similarity); 0 outside searches.
    pub rank: f32,
}

/// By position, in `COLUMNS`' order, then `rank` where a search selects it. sqlx's derived
/// `FromRow` looks each column up by name, a hash lookup per column of every row: 5 % of the
/// CPU of a list that misses the cache (perf, `bench/items.sh`). Unchecked: sqlx's check that
/// each column's type suits its field took another 10 % of the instructions (callgrind); the
/// columns are this module's own `COLUMNS`, and a type that did not fit would still fail to
/// decode (a wrong width) or fail every list test.
impl FromRow<'_, PgRow> for ItemRow {
    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        Ok(ItemRow {
            id: row.try_get_unchecked(0)?,
            category_id: row.try_get_unchecked(1)?,
            sku: row.try_get_unchecked(2)?,
            name: row.try_get_unchecked(3)?,
            description: row.try_get_unchecked(4)?,
            price_cents: row.try_get_unchecked(5)?,
            currency: row.try_get_unchecked(6)?,
            stock: row.try_get_unchecked(7)?,
            active: row.try_get_unchecked(8)?,
            created_at: row.try_get_unchecked(9)?,
            updated_at: row.try_get_unchecked(10)?,
            rank: if row.len() > 11 {
                row.try_get_unchecked(11)?
            } else {
                0.0
            },
        })
    }
}

const COLUMNS: &str = "id, category_id, sku, name, description, price_cents, currency, stock, \
                       active, created_at, updated_at";

pub struct NewItem<'a> {
    pub category_id: Uuid,
    pub sku: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub price_cents: i64,
    pub currency: &'a str,
    pub stock: i32,
    pub active: bool,
}

#[tracing::instrument(name = "db items.insert", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert(db: impl PgExecutor<'_>, item: &NewItem<'_>) -> Result<ItemRow, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO items (id, category_id, sku, name, description, price_cents, currency, stock, active)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(item.category_id)
    .bind(item.sku)
    .bind(item.name)
    .bind(item.description)
    .bind(item.price_cents)
    .bind(item.currency)
    .bind(item.stock)
    .bind(item.active)
    .fetch_one(db)
    .await
    .map_err(StoreError::of_write)
}

#[tracing::instrument(name = "db items.by_id", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<ItemRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM items WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)
}

/// A partial update; `None` keeps a column.
#[derive(Debug, Default)]
pub struct ItemChange<'a> {
    pub category_id: Option<Uuid>,
    pub sku: Option<&'a str>,
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub price_cents: Option<i64>,
    pub currency: Option<&'a str>,
    pub stock: Option<i32>,
    pub active: Option<bool>,
}

#[tracing::instrument(name = "db items.update", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    c: &ItemChange<'_>,
) -> Result<Option<ItemRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE items SET
             category_id = coalesce($2, category_id), sku = coalesce($3, sku),
             name = coalesce($4, name), description = coalesce($5, description),
             price_cents = coalesce($6, price_cents), currency = coalesce($7, currency),
             stock = coalesce($8, stock), active = coalesce($9, active), updated_at = now()
         WHERE id = $1
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(c.category_id)
    .bind(c.sku)
    .bind(c.name)
    .bind(c.description)
    .bind(c.price_cents)
    .bind(c.currency)
    .bind(c.stock)
    .bind(c.active)
    .fetch_optional(db)
    .await
    .map_err(StoreError::of_write)
}

/// The sorts the public list offers; each has its keyset index (see the migration), except
/// relevance, which ranks a search's candidates (see `page_query`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemSort {
    NewestFirst,
    PriceAsc,
    PriceDesc,
    NameAsc,
    Relevance,
}

/// Where the previous page ended, in the sort's own key.
// Externally tagged: the variants have the same shape, so an untagged cursor could decode as
// the wrong one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ItemKey {
    Created(i128, Uuid),
    Price(i64, Uuid),
    Name(String, Uuid),
    Rank(f32, Uuid),
}

impl ItemSort {
    pub fn key(self, row: &ItemRow) -> ItemKey {
        match self {
            ItemSort::NewestFirst => {
                ItemKey::Created(row.created_at.unix_timestamp_nanos(), row.id)
            }
            ItemSort::PriceAsc | ItemSort::PriceDesc => ItemKey::Price(row.price_cents, row.id),
            ItemSort::NameAsc => ItemKey::Name(row.name.clone(), row.id),
            ItemSort::Relevance => ItemKey::Rank(row.rank, row.id),
        }
    }
}

/// A category as a list filter names it: by id, or by slug (looked up in the list's own
/// statement, so a slug costs no round trip of its own; an unknown one matches nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CategoryRef {
    Id(Uuid),
    Slug(String),
}

#[derive(Debug, Default)]
pub struct ItemFilter {
    pub category: Option<CategoryRef>,
    pub q: Option<SearchText>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
}

/// Rows of the catalog a search reads in its sort order before it asks the text index
/// (`SEARCH_CANDIDATES`): the bound of a search's cost when its words are common. See
/// [`page_query`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidates(pub u32);

impl Default for Candidates {
    fn default() -> Self {
        Candidates(5000)
    }
}

/// Matches among the walked rows that make relevance rank those rather than every match.
const RELEVANCE_ENOUGH: u32 = 21;

/// Active items matching `filter`, after `after` in `sort` order; `limit + 1` rows.
#[tracing::instrument(name = "db items.page", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn page(
    db: impl PgExecutor<'_>,
    filter: &ItemFilter,
    sort: ItemSort,
    after: Option<&ItemKey>,
    limit: u32,
    candidates: Candidates,
) -> Result<Vec<ItemRow>, StoreError> {
    let mut sql =
        page_query("", filter, sort, after, limit, candidates).map_err(StoreError::BadCursor)?;
    Ok(sql.build_query_as().fetch_all(db).await?)
}

/// The text search query of `q` in the catalog's configuration, computed once per statement.
/// MATERIALIZED keeps it opaque to the planner: every search gets the same plan shape whatever
/// its words' statistics say (a word the statistics call common may match nothing in the
/// category asked for), and the shape itself bounds the cost (see [`page_query`]).
fn push_tsquery(q: &mut QueryBuilder<Postgres>, text: &SearchText) {
    q.push("WITH query AS MATERIALIZED (SELECT to_tsquery('catalog_search', ")
        .push_bind(text.tsquery())
        .push(") AS tsq)");
}

/// The list's filters other than the words, as ` AND …` conditions.
fn push_filters(q: &mut QueryBuilder<Postgres>, filter: &ItemFilter) {
    match &filter.category {
        Some(CategoryRef::Id(id)) => {
            q.push(" AND category_id = ").push_bind(*id);
        }
        Some(CategoryRef::Slug(slug)) => {
            q.push(" AND category_id = (SELECT id FROM categories WHERE slug = ")
                .push_bind(slug.clone())
                .push(")");
        }
        None => {}
    }
    if let Some(min) = filter.min_price {
        q.push(" AND price_cents >= ").push_bind(min);
    }
    if let Some(max) = filter.max_price {
        q.push(" AND price_cents <= ").push_bind(max);
    }
    match filter.in_stock {
        Some(true) => {
            q.push(" AND stock > 0");
        }
        Some(false) => {
            q.push(" AND stock = 0");
        }
        None => {}
    }
}

/// ` AND <the row comes after the cursor>` in `sort` order.
fn push_after(
    q: &mut QueryBuilder<Postgres>,
    sort: ItemSort,
    after: Option<&ItemKey>,
) -> Result<(), String> {
    match (sort, after) {
        (_, None) => {}
        (ItemSort::NewestFirst, Some(ItemKey::Created(nanos, id))) => {
            let at =
                OffsetDateTime::from_unix_timestamp_nanos(*nanos).map_err(|e| e.to_string())?;
            q.push(" AND (created_at, id) < (")
                .push_bind(at)
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (ItemSort::PriceAsc, Some(ItemKey::Price(p, id))) => {
            q.push(" AND (price_cents, id) > (")
                .push_bind(*p)
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (ItemSort::PriceDesc, Some(ItemKey::Price(p, id))) => {
            q.push(" AND (price_cents, id) < (")
                .push_bind(*p)
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (ItemSort::NameAsc, Some(ItemKey::Name(n, id))) => {
            q.push(" AND (name, id) > (")
                .push_bind(n.clone())
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (ItemSort::Relevance, Some(ItemKey::Rank(rank, id))) => {
            q.push(" AND (rank < ")
                .push_bind(*rank)
                .push(" OR (rank = ")
                .push_bind(*rank)
                .push(" AND id > ")
                .push_bind(*id)
                .push("))");
        }
        _ => return Err("cursor does not match the sort".into()),
    }
    Ok(())
}

fn order_by(sort: ItemSort) -> &'static str {
    match sort {
        ItemSort::NewestFirst => " ORDER BY created_at DESC, id DESC",
        ItemSort::PriceAsc => " ORDER BY price_cents, id",
        ItemSort::PriceDesc => " ORDER BY price_cents DESC, id DESC",
        ItemSort::NameAsc => " ORDER BY name, id",
        ItemSort::Relevance => " ORDER BY rank DESC, id",
    }
}

/// The list query, built from fixed fragments with every value bound (no value is ever
/// spliced into the SQL text; the limit and the candidates are written as digits, see
/// `limit_sql`). `prefix` is "" to run it, "EXPLAIN …" to see its plan (tests).
///
/// Without words, each sort walks its keyset index. With words, a search never costs the whole
/// catalog (a walk of a sort index that filters rows by words matching nothing does):
/// 1. it reads at most `candidates` rows in its sort order (relevance: newest first) and keeps
///    those that match — cheap when the words are common;
/// 2. only when those make less than a page (for relevance: fewer than 21), and the walk did
///    not reach the end of the list, do the words match few items — at most about
///    `page × catalog / candidates` — and then it takes every match from the text index
///    instead, and sorts or ranks them all.
///
/// One statement, one round trip: step 2 runs only when step 1 fell short (a one-time filter).
/// Relevance ranks the matches among the newest `candidates` items when there are enough of
/// them, and every match otherwise.
pub fn page_query(
    prefix: &str,
    filter: &ItemFilter,
    sort: ItemSort,
    after: Option<&ItemKey>,
    limit: u32,
    candidates: Candidates,
) -> Result<QueryBuilder<Postgres>, String> {
    let Some(text) = &filter.q else {
        if sort == ItemSort::Relevance {
            return Err("relevance needs words to search".into());
        }
        let mut q = QueryBuilder::new(format!("{prefix}SELECT {COLUMNS} FROM items WHERE active"));
        push_filters(&mut q, filter);
        push_after(&mut q, sort, after)?;
        q.push(order_by(sort));
        q.push(limit_sql(limit));
        return Ok(q);
    };
    let walk = candidates.0;
    let page = u64::from(limit) + 1;
    let mut q = QueryBuilder::new(prefix);
    push_tsquery(&mut q, text);
    if sort == ItemSort::Relevance {
        // The cursor applies after ranking, so both steps see the same candidates on every page.
        q.push(format!(
            ", walked AS MATERIALIZED (SELECT {COLUMNS}, ts_rank(search, tsq) AS rank \
             FROM (SELECT {COLUMNS}, search FROM items WHERE active"
        ));
        push_filters(&mut q, filter);
        q.push(format!(
            "{} LIMIT {walk}) AS w, query WHERE search @@ tsq), \
             enough AS (SELECT count(*) >= {RELEVANCE_ENOUGH} AS enough FROM walked) \
             SELECT {COLUMNS}, rank FROM (SELECT * FROM walked WHERE (SELECT enough FROM enough) \
             UNION ALL SELECT * FROM (SELECT {COLUMNS}, ts_rank(search, tsq) AS rank \
             FROM items, query WHERE active AND search @@ tsq",
            order_by(ItemSort::NewestFirst)
        ));
        push_filters(&mut q, filter);
        q.push(" OFFSET 0) AS few WHERE NOT (SELECT enough FROM enough)) AS ranked WHERE true");
        push_after(&mut q, sort, after)?;
        q.push(order_by(sort));
        q.push(limit_sql(limit));
        return Ok(q);
    }
    q.push(format!(
        ", walked AS MATERIALIZED (SELECT {COLUMNS} FROM (SELECT {COLUMNS}, search FROM items \
         WHERE active"
    ));
    push_filters(&mut q, filter);
    push_after(&mut q, sort, after)?;
    q.push(order_by(sort));
    q.push(format!(" LIMIT {walk}) AS w, query WHERE search @@ tsq"));
    q.push(order_by(sort));
    // Enough: a full page, or else the walk reached the end of the list (fewer than `walk`
    // rows after the cursor), so what it kept is all there is (the last page of common words
    // would otherwise take every match from the text index). The second count runs only when
    // the first falls short.
    q.push(format!(
        " LIMIT {page}), enough AS (SELECT count(*) >= {page} OR \
         (SELECT count(*) FROM (SELECT FROM items WHERE active"
    ));
    push_filters(&mut q, filter);
    push_after(&mut q, sort, after)?;
    q.push(order_by(sort));
    q.push(format!(
        " LIMIT {walk}) AS rest) < {walk} AS enough FROM walked) \
         (SELECT * FROM walked WHERE (SELECT enough FROM enough)) \
         UNION ALL (SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM items, query \
         WHERE active AND search @@ tsq"
    ));
    push_filters(&mut q, filter);
    // OFFSET 0 fences the matches off: the planner cannot merge them with the ORDER BY into a
    // walk of the sort index.
    q.push(" OFFSET 0) AS few WHERE NOT (SELECT enough FROM enough)");
    push_after(&mut q, sort, after)?;
    q.push(order_by(sort));
    q.push(limit_sql(limit));
    q.push(")");
    q.push(order_by(sort));
    q.push(limit_sql(limit));
    Ok(q)
}

/// For each word, the word of an item's name most like it (trigram similarity above
/// `pg_trgm.similarity_threshold`, 0.3), or `None`: what a search whose words matched nothing
/// looks for instead. It compares with the names' vocabulary (`search_words`), not with every
/// name, so it costs the same on any catalog.
#[tracing::instrument(name = "db items.corrections", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn corrections(
    db: impl PgExecutor<'_>,
    words: &[String],
) -> Result<Vec<Option<String>>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT word FROM search_words WHERE word % typed
                 ORDER BY word <-> typed, word LIMIT 1)
         FROM unnest($1::text[]) WITH ORDINALITY AS t(typed, n) ORDER BY n",
    )
    .bind(words)
    .fetch_all(db)
    .await?)
}

/// Upper bounds (exclusive) of the price bands the facets count, in minor units; the last band
/// has none.
pub const PRICE_BANDS: [i64; 6] = [1_000, 2_500, 5_000, 10_000, 25_000, 50_000];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facets {
    /// `(category id, slug, count)`, most items first.
    pub categories: Vec<(Uuid, String, i64)>,
    /// One count per band of [`PRICE_BANDS`] and the open band above them, in order.
    pub price_bands: Vec<i64>,
    /// False when more items match than were counted (`candidates`).
    pub complete: bool,
}

#[derive(FromRow)]
struct FacetRow {
    facet: String,
    id: Option<Uuid>,
    slug: Option<String>,
    band: Option<i32>,
    count: i64,
}

/// Counts per category and price band of the active items matching `filter`, bounded like a
/// search: of the first `candidates` items the filters select, those the words match; when
/// they are fewer than 21, every match, from the text index. `complete` says whether every
/// matching item was counted.
#[tracing::instrument(name = "db items.facets", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn facets(
    db: impl PgExecutor<'_>,
    filter: &ItemFilter,
    candidates: Candidates,
) -> Result<Facets, StoreError> {
    let rows: Vec<FacetRow> = facets_query("", filter, candidates)
        .build_query_as()
        .fetch_all(db)
        .await?;
    let mut facets = Facets {
        categories: Vec::new(),
        price_bands: vec![0; PRICE_BANDS.len() + 1],
        complete: true,
    };
    for row in rows {
        match (row.facet.as_str(), row.id, row.slug, row.band) {
            ("category", Some(id), Some(slug), _) => facets.categories.push((id, slug, row.count)),
            ("price", _, _, Some(band)) => {
                // width_bucket: 1 for the first band, … (prices are never negative).
                if let Some(slot) = usize::try_from(band - 1)
                    .ok()
                    .and_then(|i| facets.price_bands.get_mut(i))
                {
                    *slot = row.count;
                }
            }
            ("complete", ..) => facets.complete = row.count == 1,
            _ => {}
        }
    }
    facets
        .categories
        .sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
    Ok(facets)
}

pub fn facets_query(
    prefix: &str,
    filter: &ItemFilter,
    candidates: Candidates,
) -> QueryBuilder<Postgres> {
    let walk = candidates.0;
    let mut q = QueryBuilder::new(prefix);
    match &filter.q {
        Some(text) => {
            push_tsquery(&mut q, text);
            q.push(
                ", walked AS MATERIALIZED (SELECT category_id, price_cents, search FROM items \
                 WHERE active",
            );
            push_filters(&mut q, filter);
            q.push(format!(
                " LIMIT {walk}), sample AS MATERIALIZED (SELECT category_id, price_cents \
                 FROM walked, query WHERE search @@ tsq), \
                 enough AS (SELECT count(*) >= {RELEVANCE_ENOUGH} AS enough FROM sample), \
                 matched AS (SELECT * FROM sample WHERE (SELECT enough FROM enough) \
                 UNION ALL SELECT * FROM (SELECT category_id, price_cents FROM items, query \
                 WHERE active AND search @@ tsq"
            ));
            push_filters(&mut q, filter);
            q.push(format!(
                " OFFSET 0) AS few WHERE NOT (SELECT enough FROM enough)), \
                 complete AS (SELECT NOT (SELECT enough FROM enough) \
                 OR (SELECT count(*) FROM walked) < {walk} AS complete)"
            ));
        }
        None => {
            q.push("WITH matched AS MATERIALIZED (SELECT category_id, price_cents FROM items WHERE active");
            push_filters(&mut q, filter);
            q.push(format!(
                " LIMIT {walk}), complete AS (SELECT (SELECT count(*) FROM matched) < {walk} \
                 AS complete)"
            ));
        }
    }
    let edges: Vec<String> = std::iter::once(0)
        .chain(PRICE_BANDS)
        .map(|e| e.to_string())
        .collect();
    q.push(format!(
        " SELECT 'category' AS facet, c.id, c.slug, NULL::int4 AS band, count(*) AS count \
         FROM matched JOIN categories c ON c.id = matched.category_id GROUP BY c.id, c.slug \
         UNION ALL SELECT 'price', NULL, NULL, width_bucket(price_cents, ARRAY[{edges}]::int8[]), \
         count(*) FROM matched GROUP BY 4 \
         UNION ALL SELECT 'complete', NULL, NULL, NULL, complete::int4::int8 FROM complete",
        edges = edges.join(","),
    ));
    q
}
