//! Where a background job stands.

use authn::{CurrentUser, Role};
use uuid::Uuid;

use crate::state::AppState;
use crate::store;
use crate::store::jobs::JobRow;
use crate::usecases::Error;

/// The job's owner and admins see it; for anyone else it does not exist.
pub async fn get(state: &AppState, user: &CurrentUser, id: Uuid) -> Result<JobRow, Error> {
    store::jobs::by_id(&state.db, id)
        .await?
        .filter(|j| user.role == Role::Admin || j.owner_id == Some(user.id))
        .ok_or_else(|| Error::NotFound(format!("no job {id}")))
}
