//! Items: the public, filtered and sorted list; read; admin writes.

use authn::Admin;
use axum::extract::State;
use axum::http::StatusCode;
use platform::ApiError;
use platform::extract::{Json, Path, Query};
use platform::pagination::{Page, PageParams};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Currency, Name, PriceCents, Sku};
use crate::state::AppState;
use crate::store::items::{ItemRow, ItemSort};
use crate::usecases;
use crate::usecases::catalog::{ItemCursor, ItemInput, ItemPatch, ItemQuery};

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
    /// `-created_at` (default), `price`, `-price`, `name`.
    pub sort: Option<String>,
    /// A category id or slug.
    pub category: Option<String>,
    /// Words to search in name and description.
    pub q: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
}

fn parse_sort(raw: Option<&str>) -> Result<ItemSort, ApiError> {
    match raw.unwrap_or("-created_at") {
        "-created_at" => Ok(ItemSort::NewestFirst),
        "price" => Ok(ItemSort::PriceAsc),
        "-price" => Ok(ItemSort::PriceDesc),
        "name" => Ok(ItemSort::NameAsc),
        _ => Err(ApiError::bad_param(
            "sort",
            "must be one of -created_at, price, -price, name",
        )),
    }
}

/// `GET /v1/items` (public): active items, filtered, sorted, keyset-paginated.
#[utoipa::path(get, path = "/v1/items", tag = "catalog", params(ListQuery),
    responses((status = 200, body = Page<ItemDto>), (status = 400, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<ItemDto>>, ApiError> {
    let params = PageParams {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let limit = params.limit()?;
    let sort = parse_sort(query.sort.as_deref())?;
    for (name, value) in [
        ("min_price", query.min_price),
        ("max_price", query.max_price),
    ] {
        if value.is_some_and(|v| v < 0) {
            return Err(ApiError::bad_param(name, "must not be negative"));
        }
    }
    if let (Some(min), Some(max)) = (query.min_price, query.max_price)
        && min > max
    {
        return Err(ApiError::bad_param(
            "min_price",
            "must not exceed max_price",
        ));
    }
    let q = match query.q.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(q) if q.chars().count() > 200 => {
            return Err(ApiError::bad_param("q", "must be at most 200 characters"));
        }
        Some(q) if q.chars().any(char::is_control) => {
            return Err(ApiError::bad_param(
                "q",
                "must not contain control characters",
            ));
        }
        Some(q) => Some(q.to_owned()),
    };
    let after = params.after::<ItemCursor>(&state.cursors)?;
    let query = ItemQuery {
        category: query.category.as_deref(),
        q,
        min_price: query.min_price,
        max_price: query.max_price,
        in_stock: query.in_stock,
    };
    let list = usecases::catalog::items(&state, query, sort, after, limit).await?;
    let cursors = list.cursors;
    Ok(Json(Page::from_rows(
        list.rows,
        limit,
        &state.cursors,
        |r| cursors.after(r),
        ItemDto::from,
    )))
}

/// `GET /v1/items/{id}` (public; inactive items are not found).
#[utoipa::path(get, path = "/v1/items/{id}", tag = "catalog", params(("id" = Uuid, Path)),
    responses((status = 200, body = ItemDto), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<ItemDto>, ApiError> {
    Ok(Json(usecases::catalog::item(&state, id).await?.into()))
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
#[utoipa::path(post, path = "/v1/items", tag = "catalog", request_body = NewItemBody, security(("bearer" = [])),
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
#[utoipa::path(patch, path = "/v1/items/{id}", tag = "catalog", request_body = ItemChangeBody,
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
#[utoipa::path(delete, path = "/v1/items/{id}", tag = "catalog", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deactivated"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    usecases::catalog::deactivate_item(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
