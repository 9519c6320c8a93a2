//! Categories: public list and read, admin writes.

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

use crate::domain::{Name, Slug};
use crate::state::AppState;
use crate::store;
use crate::store::categories::CategoryRow;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoryDto {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub parent_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<CategoryRow> for CategoryDto {
    fn from(r: CategoryRow) -> Self {
        CategoryDto {
            id: r.id,
            name: r.name,
            slug: r.slug,
            parent_id: r.parent_id,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `GET /v1/categories` (public), by name.
#[utoipa::path(get, path = "/v1/categories", tag = "catalog", params(ListQuery),
    responses((status = 200, body = Page<CategoryDto>), (status = 400, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<CategoryDto>>, ApiError> {
    let params = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    let limit = params.limit()?;
    let after: Option<(String, Uuid)> = params.after(&state.cursors)?;
    let rows = store::categories::page(&state.db, after, limit).await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        &state.cursors,
        |r| (r.name.clone(), r.id),
        CategoryDto::from,
    )))
}

/// `GET /v1/categories/{id}` (public).
#[utoipa::path(get, path = "/v1/categories/{id}", tag = "catalog", params(("id" = Uuid, Path)),
    responses((status = 200, body = CategoryDto), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<CategoryDto>, ApiError> {
    store::categories::by_id(&state.db, id)
        .await?
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::NotFound(format!("no category {id}")))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    #[schema(value_type = String, example = "Running shoes")]
    pub name: Name,
    #[schema(value_type = String, example = "running-shoes")]
    pub slug: Slug,
    pub parent_id: Option<Uuid>,
}

fn write_error(e: sqlx::Error) -> ApiError {
    if store::is_unique_violation(&e) {
        ApiError::Conflict("a category with this slug already exists".into())
    } else if store::is_foreign_key_violation(&e) {
        ApiError::invalid_field("parent_id", "no such category")
    } else {
        e.into()
    }
}

/// `POST /v1/categories` (admin) → 201.
#[utoipa::path(post, path = "/v1/categories", tag = "catalog", request_body = NewCategory, security(("bearer" = [])),
    responses((status = 201, body = CategoryDto), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    Json(body): Json<NewCategory>,
) -> Result<(StatusCode, Json<CategoryDto>), ApiError> {
    let row = store::categories::insert(
        &state.db,
        body.name.as_str(),
        body.slug.as_str(),
        body.parent_id,
    )
    .await
    .map_err(write_error)?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryChange {
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    #[schema(value_type = Option<String>)]
    pub slug: Option<Slug>,
    /// `null` makes it a top-level category; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    pub parent_id: Option<Option<Uuid>>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Uuid>>, D::Error> {
    Option::<Uuid>::deserialize(d).map(Some)
}

/// `PATCH /v1/categories/{id}` (admin).
#[utoipa::path(patch, path = "/v1/categories/{id}", tag = "catalog", request_body = CategoryChange,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = CategoryDto), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<Uuid>,
    Json(change): Json<CategoryChange>,
) -> Result<Json<CategoryDto>, ApiError> {
    if change.parent_id == Some(Some(id)) {
        return Err(ApiError::invalid_field(
            "parent_id",
            "a category cannot be its own parent",
        ));
    }
    store::categories::update(
        &state.db,
        id,
        change.name.as_ref().map(Name::as_str),
        change.slug.as_ref().map(Slug::as_str),
        change.parent_id,
    )
    .await
    .map_err(write_error)?
    .map(|r| Json(r.into()))
    .ok_or_else(|| ApiError::NotFound(format!("no category {id}")))
}

/// `DELETE /v1/categories/{id}` (admin) → 204; 409 while items or subcategories use it.
#[utoipa::path(delete, path = "/v1/categories/{id}", tag = "catalog", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    match store::categories::delete(&state.db, id).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::NotFound(format!("no category {id}"))),
        Err(e) if store::is_foreign_key_violation(&e) => Err(ApiError::Conflict(
            "the category still has items or subcategories".into(),
        )),
        Err(e) => Err(e.into()),
    }
}
