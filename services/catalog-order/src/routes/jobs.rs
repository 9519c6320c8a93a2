//! `GET /v1/jobs/{id}`: where a background job stands.

use authn::CurrentUser;
use axum::extract::State;
use platform::ApiError;
use platform::extract::{Json, Path};
use platform::problem::Problem;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::AppState;
use crate::usecases;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobDto {
    pub id: Uuid,
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `dead`.
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The job's owner and admins see it; for anyone else it does not exist.
#[utoipa::path(get, path = "/v1/jobs/{id}", operation_id = "getJob", tag = "jobs", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = JobDto), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<JobDto>, ApiError> {
    let job = usecases::jobs::get(&state, &user, id).await?;
    Ok(Json(JobDto {
        id: job.id,
        kind: job.kind,
        status: job.status,
        attempts: job.attempts,
        error: job.error,
        created_at: job.created_at,
        updated_at: job.updated_at,
    }))
}
