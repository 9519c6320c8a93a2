//! Categories: public list and read, admin writes.

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

use crate::domain::{Name, Slug};
use crate::state::AppState;
use crate::store::categories::CategoryRow;
use crate::usecases;

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
#[utoipa::path(get, path = "/v1/categories", operation_id = "listCategories", tag = "catalog", params(ListQuery),
    responses((status = 200, body = Page<CategoryDto>), (status = 400, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ReadPool(db): ReadPool,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<CategoryDto>>, ApiError> {
    let params = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    let limit = params.limit()?;
    let after: Option<(String, Uuid)> = params.after(&state.cursors)?;
    let rows = usecases::catalog::categories(&db, after, limit).await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        &state.cursors,
        |r| (r.name.clone(), r.id),
        CategoryDto::from,
    )))
}

/// `GET /v1/categories/{id}` (public).
#[utoipa::path(get, path = "/v1/categories/{id}", operation_id = "getCategory", tag = "catalog", params(("id" = Uuid, Path)),
    responses((status = 200, body = CategoryDto), (status = 404, body = Problem)))]
pub async fn get(
    ReadPool(db): ReadPool,
    Path(id): Path<Uuid>,
) -> Result<Json<CategoryDto>, ApiError> {
    Ok(Json(usecases::catalog::category(&db, id).await?.into()))
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

/// `POST /v1/categories` (admin) → 201.
#[utoipa::path(post, path = "/v1/categories", operation_id = "createCategory", tag = "catalog", request_body = NewCategory, security(("bearer" = [])),
    responses((status = 201, body = CategoryDto), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    Json(body): Json<NewCategory>,
) -> Result<(StatusCode, Json<CategoryDto>), ApiError> {
    let row =
        usecases::catalog::create_category(&state, &body.name, &body.slug, body.parent_id).await?;
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
#[utoipa::path(patch, path = "/v1/categories/{id}", operation_id = "updateCategory", tag = "catalog", request_body = CategoryChange,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = CategoryDto), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<Uuid>,
    Json(change): Json<CategoryChange>,
) -> Result<Json<CategoryDto>, ApiError> {
    let change = usecases::catalog::CategoryChange {
        name: change.name.as_ref(),
        slug: change.slug.as_ref(),
        parent_id: change.parent_id,
    };
    Ok(Json(
        usecases::catalog::update_category(&state, id, &change)
            .await?
            .into(),
    ))
}

/// `DELETE /v1/categories/{id}` (admin) → 204; 409 while items or subcategories use it.
#[utoipa::path(delete, path = "/v1/categories/{id}", operation_id = "deleteCategory", tag = "catalog", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    usecases::catalog::delete_category(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
