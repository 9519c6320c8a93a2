//! Admin: list users, change a user's role or disable them, delete them.

use authn::{Admin, Role};
use axum::extract::State;
use axum::http::StatusCode;
use platform::ApiError;
use platform::extract::{Json, Path, Query};
use platform::http::{RequestId, TraceParent};
use platform::pagination::{Page, PageParams};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::{self, Deletion};
use crate::sessions;
use crate::state::AppState;
use crate::store;
use crate::store::users::UserRow;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserDto {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl TryFrom<UserRow> for UserDto {
    type Error = ApiError;

    fn try_from(row: UserRow) -> Result<Self, ApiError> {
        Ok(UserDto {
            role: row
                .role
                .parse()
                .map_err(|e: String| ApiError::internal(anyhow::anyhow!(e)))?,
            id: row.id,
            email: row.email,
            disabled: row.disabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1–100, default 20.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `GET /v1/auth/users?limit=&cursor=` (admin), oldest first.
#[utoipa::path(get, path = "/v1/auth/users", operation_id = "listUsers", tag = "admin", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<UserDto>), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<UserDto>>, ApiError> {
    let params = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    let limit = params.limit()?;
    let after: Option<(OffsetDateTime, Uuid)> = params.after(&state.cursors)?;
    let rows = store::users::page(&state.db, after, limit).await?;
    let page = Page::from_rows(
        rows,
        limit,
        &state.cursors,
        |u| (u.created_at, u.id),
        UserDto::try_from,
    );
    Ok(Json(Page {
        items: page.items.into_iter().collect::<Result<_, _>>()?,
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// `PATCH /v1/auth/users/{id}` `{role?, disabled?}` (admin). A role change or disabling revokes
/// every session of the user, so their current tokens stop working everywhere.
#[utoipa::path(patch, path = "/v1/auth/users/{id}", operation_id = "updateUser", tag = "admin", request_body = UserChange,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = UserDto), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Changing oneself", body = Problem),
        (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
    Json(change): Json<UserChange>,
) -> Result<Json<UserDto>, ApiError> {
    if change.role.is_none() && change.disabled.is_none() {
        return Err(ApiError::invalid_field(
            "body",
            "give `role` and/or `disabled`",
        ));
    }
    if id == admin.id {
        return Err(ApiError::Conflict(
            "admins cannot change their own role or disable themselves".into(),
        ));
    }
    let before = store::users::by_id(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
    let row = store::users::update(
        &state.db,
        id,
        change.role.map(Role::as_str),
        change.disabled,
    )
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
    let role_changed = row.role != before.role;
    let newly_disabled = row.disabled && !before.disabled;
    if role_changed || newly_disabled {
        let reason = if newly_disabled {
            "disabled"
        } else {
            "role changed"
        };
        sessions::end_all(&state, id, reason).await?;
    }
    Ok(Json(UserDto::try_from(row)?))
}

/// `DELETE /v1/auth/users/{id}` (admin) → 204: what `DELETE /v1/auth/me` does, without a
/// password. Admins delete their own account through `DELETE /v1/auth/me` (409 here).
#[utoipa::path(delete, path = "/v1/auth/users/{id}", operation_id = "deleteUser", tag = "admin", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Account deleted, sessions revoked"), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Deleting oneself, or the last admin", body = Problem),
        (status = 503, description = "Revocation could not be broadcast; nothing changed, retry", body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
    RequestId(request_id): RequestId,
    TraceParent(traceparent): TraceParent,
) -> Result<StatusCode, ApiError> {
    if id == admin.id {
        return Err(ApiError::Conflict(
            "admins delete their own account with DELETE /v1/auth/me".into(),
        ));
    }
    let cause = store::outbox::Cause {
        request_id: Some(&request_id),
        traceparent: traceparent.as_deref(),
    };
    accounts::delete(&state, id, Deletion::ByAdmin, None, cause).await?;
    Ok(StatusCode::NO_CONTENT)
}
