//! Categories and items: the public reads and the admin writes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::changes;
use crate::domain::{Currency, Name, PriceCents, SearchText, Sku, Slug};
use crate::state::AppState;
use crate::store::categories::CategoryRow;
use crate::store::items::{
    CategoryRef, Facets, ItemChange, ItemFilter, ItemKey, ItemRow, ItemSort, NewItem,
};
use crate::store::{self, StoreError};
use crate::usecases::Error;

// ---- categories ----
//
// The public reads take the pool they read from: the handler's `ReadPool` (a replica, when it
// has every change the answer depends on; see `platform::replica`).

/// Categories by name, after `after`; `limit + 1` of them.
pub async fn categories(
    db: &PgPool,
    after: Option<(String, Uuid)>,
    limit: u32,
) -> Result<Vec<CategoryRow>, Error> {
    Ok(store::categories::page(db, after, limit).await?)
}

pub async fn category(db: &PgPool, id: Uuid) -> Result<CategoryRow, Error> {
    store::categories::by_id(db, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no category {id}")))
}

fn category_write_error(e: StoreError) -> Error {
    match e {
        StoreError::Duplicate => Error::Conflict("a category with this slug already exists".into()),
        StoreError::MissingReference => Error::invalid("parent_id", "no such category"),
        other => other.into(),
    }
}

pub async fn create_category(
    state: &AppState,
    name: &Name,
    slug: &Slug,
    parent_id: Option<Uuid>,
) -> Result<CategoryRow, Error> {
    let row = store::categories::insert(&state.db, name.as_str(), slug.as_str(), parent_id)
        .await
        .map_err(category_write_error)?;
    state.cache.changed(&[changes::CATEGORIES.to_owned()]);
    Ok(row)
}

/// A partial change of a category; `parent_id: Some(None)` makes it a top-level one.
#[derive(Debug, Default)]
pub struct CategoryChange<'a> {
    pub name: Option<&'a Name>,
    pub slug: Option<&'a Slug>,
    pub parent_id: Option<Option<Uuid>>,
}

pub async fn update_category(
    state: &AppState,
    id: Uuid,
    change: &CategoryChange<'_>,
) -> Result<CategoryRow, Error> {
    if change.parent_id == Some(Some(id)) {
        return Err(Error::invalid(
            "parent_id",
            "a category cannot be its own parent",
        ));
    }
    let row = store::categories::update(
        &state.db,
        id,
        change.name.map(Name::as_str),
        change.slug.map(Slug::as_str),
        change.parent_id,
    )
    .await
    .map_err(category_write_error)?
    .ok_or_else(|| Error::NotFound(format!("no category {id}")))?;
    state.cache.changed(&[changes::CATEGORIES.to_owned()]);
    Ok(row)
}

/// Delete a category no item or subcategory uses.
pub async fn delete_category(state: &AppState, id: Uuid) -> Result<(), Error> {
    match store::categories::delete(&state.db, id).await {
        Ok(true) => {
            state.cache.changed(&[changes::CATEGORIES.to_owned()]);
            Ok(())
        }
        Ok(false) => Err(Error::NotFound(format!("no category {id}"))),
        Err(StoreError::StillReferenced) => Err(Error::Conflict(
            "the category still has items or subcategories".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

// ---- items ----

/// A cursor remembers its sort and filters: reusing it with others is a 400, not a wrong page.
#[derive(Debug, Serialize, Deserialize)]
pub struct ItemCursor {
    f: String,
    k: ItemKey,
}

/// The public list's filters as asked: `category` is an id or a slug.
#[derive(Debug, Default)]
pub struct ItemQuery<'a> {
    pub category: Option<&'a str>,
    pub q: Option<SearchText>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
}

/// A page of items and how to make the cursor after one of them.
pub struct ItemList {
    pub rows: Vec<ItemRow>,
    pub cursors: ItemCursors,
    /// How a search's items match its words; `None` without words.
    pub matched: Option<Match>,
}

/// How the items of a search answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// They contain every word (the last one perhaps as a prefix).
    Exact,
    /// Nothing did; these items have in their names the words most like those typed (one
    /// page, no cursor).
    Similar,
}

/// Makes the cursors of one list: its sort and filters, and a row's key.
pub struct ItemCursors {
    sort: ItemSort,
    fingerprint: String,
}

impl ItemCursors {
    pub fn after(&self, row: &ItemRow) -> ItemCursor {
        ItemCursor {
            f: self.fingerprint.clone(),
            k: self.sort.key(row),
        }
    }
}

fn fingerprint(sort: ItemSort, filter: &ItemFilter) -> String {
    let text = format!(
        "{sort:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        filter.category,
        filter.q.as_ref().map(SearchText::tsquery),
        filter.min_price,
        filter.max_price,
        filter.in_stock
    );
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..8])
}

/// The filter `query` asks for: `category` is an id, or else a slug.
fn filter_of(query: ItemQuery<'_>) -> ItemFilter {
    ItemFilter {
        category: query.category.map(|raw| match raw.parse::<Uuid>() {
            Ok(id) => CategoryRef::Id(id),
            Err(_) => CategoryRef::Slug(raw.to_owned()),
        }),
        q: query.q,
        min_price: query.min_price,
        max_price: query.max_price,
        in_stock: query.in_stock,
    }
}

/// Active items matching `query` in `sort` order after `after` (a cursor of the same sort and
/// filters); `limit + 1` rows. A search whose words match nothing on its first page answers the
/// items whose names are most like what was typed instead ([`Match::Similar`]).
pub async fn items(
    state: &AppState,
    db: &PgPool,
    query: ItemQuery<'_>,
    sort: ItemSort,
    after: Option<ItemCursor>,
    limit: u32,
) -> Result<ItemList, Error> {
    let filter = filter_of(query);
    if sort == ItemSort::Relevance && filter.q.is_none() {
        return Err(Error::BadParam {
            name: "sort",
            message: "relevance needs words to search (q)".into(),
        });
    }
    let print = fingerprint(sort, &filter);
    let after = match after {
        Some(cursor) if cursor.f == print => Some(cursor.k),
        Some(_) => {
            return Err(Error::BadParam {
                name: "cursor",
                message: "belongs to another sort or filter; start again without it".into(),
            });
        }
        None => None,
    };
    let first_page = after.is_none();
    let rows = store::items::page(
        db,
        &filter,
        sort,
        after.as_ref(),
        limit,
        state.search_candidates,
    )
    .await?;
    let mut list = ItemList {
        rows,
        cursors: ItemCursors {
            sort,
            fingerprint: print,
        },
        matched: filter.q.as_ref().map(|_| Match::Exact),
    };
    if let Some(text) = &filter.q
        && list.rows.is_empty()
        && first_page
    {
        list.matched = Some(Match::Similar);
        let fixed: Vec<String> = store::items::corrections(db, text.words())
            .await?
            .into_iter()
            .zip(text.words())
            .map(|(fixed, typed)| fixed.unwrap_or_else(|| typed.clone()))
            .collect();
        if fixed.as_slice() != text.words() {
            let similar = ItemFilter {
                q: Some(text.in_names(fixed)),
                ..filter
            };
            let mut rows = store::items::page(
                db,
                &similar,
                ItemSort::Relevance,
                None,
                limit,
                state.search_candidates,
            )
            .await?;
            // One page: a cursor would lead back to the words that matched nothing.
            rows.truncate(limit as usize);
            list.rows = rows;
        }
    }
    Ok(list)
}

/// Counts per category and price band of the items `query` matches (bounded like a search:
/// see `store::items::facets`).
pub async fn facets(state: &AppState, db: &PgPool, query: ItemQuery<'_>) -> Result<Facets, Error> {
    let filter = filter_of(query);
    Ok(store::items::facets(db, &filter, state.search_candidates).await?)
}

/// An item on sale; an inactive one is not found.
pub async fn item(db: &PgPool, id: Uuid) -> Result<ItemRow, Error> {
    store::items::by_id(db, id)
        .await?
        .filter(|r| r.active)
        .ok_or_else(|| Error::NotFound(format!("no item {id}")))
}

fn check_description(d: &str) -> Result<(), Error> {
    if d.chars().count() > 5000 {
        return Err(Error::invalid(
            "description",
            "must be at most 5000 characters",
        ));
    }
    // Line breaks and tabs are text; other control characters (NUL above all) are not.
    if d.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Error::invalid(
            "description",
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn check_stock(stock: u32) -> Result<i32, Error> {
    i32::try_from(stock)
        .ok()
        .filter(|s| *s <= 1_000_000_000)
        .ok_or_else(|| Error::invalid("stock", "must be at most 1000000000"))
}

fn item_write_error(e: StoreError) -> Error {
    match e {
        StoreError::Duplicate => Error::Conflict("an item with this SKU already exists".into()),
        StoreError::MissingReference => Error::invalid("category_id", "no such category"),
        other => other.into(),
    }
}

/// A new item as the admin gives it.
#[derive(Debug)]
pub struct ItemInput<'a> {
    pub category_id: Uuid,
    pub sku: &'a Sku,
    pub name: &'a Name,
    pub description: &'a str,
    pub price_cents: PriceCents,
    pub currency: &'a Currency,
    pub stock: u32,
    pub active: bool,
}

pub async fn create_item(state: &AppState, input: &ItemInput<'_>) -> Result<ItemRow, Error> {
    check_description(input.description)?;
    let stock = check_stock(input.stock)?;
    let row = store::items::insert(
        &state.db,
        &NewItem {
            category_id: input.category_id,
            sku: input.sku.as_str(),
            name: input.name.as_str(),
            description: input.description.trim(),
            price_cents: input.price_cents.get(),
            currency: input.currency.as_str(),
            stock,
            active: input.active,
        },
    )
    .await
    .map_err(item_write_error)?;
    state.cache.changed(&changes::of_items([row.id]));
    Ok(row)
}

/// A partial change of an item; `None` keeps a field.
#[derive(Debug, Default)]
pub struct ItemPatch<'a> {
    pub category_id: Option<Uuid>,
    pub sku: Option<&'a Sku>,
    pub name: Option<&'a Name>,
    pub description: Option<&'a str>,
    pub price_cents: Option<PriceCents>,
    pub currency: Option<&'a Currency>,
    pub stock: Option<u32>,
    pub active: Option<bool>,
}

pub async fn update_item(
    state: &AppState,
    id: Uuid,
    patch: &ItemPatch<'_>,
) -> Result<ItemRow, Error> {
    if let Some(d) = patch.description {
        check_description(d)?;
    }
    let stock = patch.stock.map(check_stock).transpose()?;
    let change = ItemChange {
        category_id: patch.category_id,
        sku: patch.sku.map(Sku::as_str),
        name: patch.name.map(Name::as_str),
        description: patch.description.map(str::trim),
        price_cents: patch.price_cents.map(PriceCents::get),
        currency: patch.currency.map(Currency::as_str),
        stock,
        active: patch.active,
    };
    let row = store::items::update(&state.db, id, &change)
        .await
        .map_err(item_write_error)?
        .ok_or_else(|| Error::NotFound(format!("no item {id}")))?;
    state.cache.changed(&changes::of_items([id]));
    Ok(row)
}

/// Items are deactivated, not erased: past orders refer to them.
pub async fn deactivate_item(state: &AppState, id: Uuid) -> Result<(), Error> {
    let change = ItemChange {
        active: Some(false),
        ..ItemChange::default()
    };
    store::items::update(&state.db, id, &change)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no item {id}")))?;
    state.cache.changed(&changes::of_items([id]));
    Ok(())
}
