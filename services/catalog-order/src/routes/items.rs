//! Items: the public, filtered and sorted list; read; admin writes.

use authn::Admin;
use axum::extract::State;
use axum::http::StatusCode;
use platform::ApiError;
use platform::extract::{Json, Path, Query};
use platform::pagination::{Page, PageParams};
use platform::problem::Problem;
use platform::replica::ReadPool;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Currency, Name, PriceCents, SearchText, Sku};
use crate::state::AppState;
use crate::store::items::{ItemRow, ItemSort, PRICE_BANDS};
use crate::usecases;
use crate::usecases::catalog::{ItemCursor, ItemInput, ItemPatch, ItemQuery, Match};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemDto {
    pub id: Uuid,
    pub category_id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i32,
    pub active: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// How an item of a search answers it.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MatchDto {
    /// It contains every word (the last one perhaps as the start of a longer word).
    Exact,
    /// No item contained the words; its name is among those most like what was typed.
    Similar,
}

/// An item in a list: with `match` when the list is a search.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListedItemDto {
    #[serde(flatten)]
    pub item: ItemDto,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matched: Option<MatchDto>,
}

impl From<ItemRow> for ItemDto {
    fn from(r: ItemRow) -> Self {
        ItemDto {
            id: r.id,
            category_id: r.category_id,
            sku: r.sku,
            name: r.name,
            description: r.description,
            price_cents: r.price_cents,
            currency: r.currency,
            stock: r.stock,
            active: r.active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// `-created_at` (the default without `q`), `price`, `-price`, `name`, `relevance` (the
    /// default with `q`; only with `q`).
    pub sort: Option<String>,
    /// A category id or slug.
    pub category: Option<String>,
    /// Words to search in name and description (name matches rank higher); every word must
    /// match, the last one also as the start of a longer word. At most 200 characters and 8
    /// words. When nothing matches, items with similar names answer, marked `"match": "similar"`.
    pub q: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
}

fn parse_sort(raw: Option<&str>, searching: bool) -> Result<ItemSort, ApiError> {
    let default = if searching {
        "relevance"
    } else {
        "-created_at"
    };
    match raw.unwrap_or(default) {
        "-created_at" => Ok(ItemSort::NewestFirst),
        "price" => Ok(ItemSort::PriceAsc),
        "-price" => Ok(ItemSort::PriceDesc),
        "name" => Ok(ItemSort::NameAsc),
        "relevance" if searching => Ok(ItemSort::Relevance),
        "relevance" => Err(ApiError::bad_param(
            "sort",
            "relevance needs words to search (q)",
        )),
        _ => Err(ApiError::bad_param(
            "sort",
            "must be one of -created_at, price, -price, name, relevance",
        )),
    }
}

/// `q` parsed: `None` when it has no words.
fn parse_q(raw: Option<&str>) -> Result<Option<SearchText>, ApiError> {
    raw.map_or(Ok(None), SearchText::parse)
        .map_err(|e| ApiError::bad_param("q", e.to_string()))
}

/// The price filters, checked.
fn check_prices(min_price: Option<i64>, max_price: Option<i64>) -> Result<(), ApiError> {
    for (name, value) in [("min_price", min_price), ("max_price", max_price)] {
        if value.is_some_and(|v| v < 0) {
            return Err(ApiError::bad_param(name, "must not be negative"));
        }
    }
    if let (Some(min), Some(max)) = (min_price, max_price)
        && min > max
    {
        return Err(ApiError::bad_param(
            "min_price",
            "must not exceed max_price",
        ));
    }
    Ok(())
}

/// `GET /v1/items` (public): active items, filtered, searched, sorted, keyset-paginated.
#[utoipa::path(get, path = "/v1/items", operation_id = "listItems", tag = "catalog", params(ListQuery),
    responses((status = 200, body = Page<ListedItemDto>), (status = 400, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ReadPool(db): ReadPool,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<ListedItemDto>>, ApiError> {
    let params = PageParams {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let limit = params.limit()?;
    check_prices(query.min_price, query.max_price)?;
    let q = parse_q(query.q.as_deref())?;
    let sort = parse_sort(query.sort.as_deref(), q.is_some())?;
    let after = params.after::<ItemCursor>(&state.cursors)?;
    let query = ItemQuery {
        category: query.category.as_deref(),
        q,
        min_price: query.min_price,
        max_price: query.max_price,
        in_stock: query.in_stock,
    };
    let list = usecases::catalog::items(&state, &db, query, sort, after, limit).await?;
    let cursors = list.cursors;
    let matched = list.matched.map(|m| match m {
        Match::Exact => MatchDto::Exact,
        Match::Similar => MatchDto::Similar,
    });
    Ok(Json(Page::from_rows(
        list.rows,
        limit,
        &state.cursors,
        |r| cursors.after(r),
        |r| ListedItemDto {
            item: r.into(),
            matched,
        },
    )))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FacetsQuery {
    /// A category id or slug.
    pub category: Option<String>,
    /// Words to search, as for the list.
    pub q: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoryCountDto {
    pub id: Uuid,
    pub slug: String,
    pub count: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceBandDto {
    pub min_cents: i64,
    /// Exclusive; `null` for the open band at the top.
    pub max_cents: Option<i64>,
    pub count: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FacetsDto {
    /// Categories with matching items, most first.
    pub categories: Vec<CategoryCountDto>,
    /// Every price band, cheapest first, with its count (0 included).
    pub price_bands: Vec<PriceBandDto>,
    /// False when more items match than were counted (`SEARCH_CANDIDATES`, 2000 by default):
    /// the counts are then of the first ones found.
    pub complete: bool,
}

/// `GET /v1/items/facets` (public): how many active items match the list's filters, per
/// category and per price band.
#[utoipa::path(get, path = "/v1/items/facets", operation_id = "itemFacets", tag = "catalog", params(FacetsQuery),
    responses((status = 200, body = FacetsDto), (status = 400, body = Problem)))]
pub async fn facets(
    State(state): State<AppState>,
    ReadPool(db): ReadPool,
    Query(query): Query<FacetsQuery>,
) -> Result<Json<FacetsDto>, ApiError> {
    check_prices(query.min_price, query.max_price)?;
    let q = parse_q(query.q.as_deref())?;
    let facets = usecases::catalog::facets(
        &state,
        &db,
        ItemQuery {
            category: query.category.as_deref(),
            q,
            min_price: query.min_price,
            max_price: query.max_price,
            in_stock: query.in_stock,
        },
    )
    .await?;
    let mut lower = 0;
    let bands = facets
        .price_bands
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let upper = PRICE_BANDS.get(i).copied();
            let band = PriceBandDto {
                min_cents: lower,
                max_cents: upper,
                count,
            };
            lower = upper.unwrap_or(lower);
            band
        })
        .collect();
    Ok(Json(FacetsDto {
        categories: facets
            .categories
            .into_iter()
            .map(|(id, slug, count)| CategoryCountDto { id, slug, count })
            .collect(),
        price_bands: bands,
        complete: facets.complete,
    }))
}

/// `GET /v1/items/{id}` (public; inactive items are not found).
#[utoipa::path(get, path = "/v1/items/{id}", operation_id = "getItem", tag = "catalog", params(("id" = Uuid, Path)),
    responses((status = 200, body = ItemDto), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get(ReadPool(db): ReadPool, Path(id): Path<Uuid>) -> Result<Json<ItemDto>, ApiError> {
    Ok(Json(usecases::catalog::item(&db, id).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItemBody {
    pub category_id: Uuid,
    #[schema(value_type = String, example = "TEE-BLK-M")]
    pub sku: Sku,
    #[schema(value_type = String, example = "Organic tee")]
    pub name: Name,
    #[serde(default)]
    pub description: String,
    /// Minor units (cents), an integer.
    #[schema(value_type = i64, minimum = 0, example = 1999)]
    pub price_cents: PriceCents,
    /// ISO 4217.
    #[schema(value_type = String, example = "EUR")]
    pub currency: Currency,
    pub stock: u32,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// `POST /v1/items` (admin) → 201.
#[utoipa::path(post, path = "/v1/items", operation_id = "createItem", tag = "catalog", request_body = NewItemBody, security(("bearer" = [])),
    responses((status = 201, body = ItemDto), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    Json(body): Json<NewItemBody>,
) -> Result<(StatusCode, Json<ItemDto>), ApiError> {
    let row = usecases::catalog::create_item(
        &state,
        &ItemInput {
            category_id: body.category_id,
            sku: &body.sku,
            name: &body.name,
            description: &body.description,
            price_cents: body.price_cents,
            currency: &body.currency,
            stock: body.stock,
            active: body.active,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemChangeBody {
    pub category_id: Option<Uuid>,
    #[schema(value_type = Option<String>)]
    pub sku: Option<Sku>,
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    pub description: Option<String>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub price_cents: Option<PriceCents>,
    #[schema(value_type = Option<String>)]
    pub currency: Option<Currency>,
    pub stock: Option<u32>,
    pub active: Option<bool>,
}

/// `PATCH /v1/items/{id}` (admin): any subset of the fields.
#[utoipa::path(patch, path = "/v1/items/{id}", operation_id = "updateItem", tag = "catalog", request_body = ItemChangeBody,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = ItemDto), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<Uuid>,
    Json(body): Json<ItemChangeBody>,
) -> Result<Json<ItemDto>, ApiError> {
    let patch = ItemPatch {
        category_id: body.category_id,
        sku: body.sku.as_ref(),
        name: body.name.as_ref(),
        description: body.description.as_deref(),
        price_cents: body.price_cents,
        currency: body.currency.as_ref(),
        stock: body.stock,
        active: body.active,
    };
    Ok(Json(
        usecases::catalog::update_item(&state, id, &patch)
            .await?
            .into(),
    ))
}

/// `DELETE /v1/items/{id}` (admin) → 204. Items are deactivated, not erased: past orders refer
/// to them.
#[utoipa::path(delete, path = "/v1/items/{id}", operation_id = "deleteItem", tag = "catalog", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deactivated"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    usecases::catalog::deactivate_item(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
