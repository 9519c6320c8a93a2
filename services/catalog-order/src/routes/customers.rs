//! `GET|PUT /v1/customers/me`: the signed-in customer's profile, created on first use;
//! `GET /v1/customers/me/export`: everything catalog-order stores about them.

use authn::{CurrentUser, Role};
use axum::extract::State;
use platform::extract::Json;
use platform::problem::Problem;
use platform::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::AppState;
use crate::store;
use crate::store::customers::CustomerRow;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerDto {
    pub id: Uuid,
    pub full_name: String,
    pub phone: String,
    pub address_line: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<CustomerRow> for CustomerDto {
    fn from(r: CustomerRow) -> Self {
        CustomerDto {
            id: r.id,
            full_name: r.full_name,
            phone: r.phone,
            address_line: r.address_line,
            city: r.city,
            postal_code: r.postal_code,
            country: r.country,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The answer to a request for a customer whose account was deleted (anonymised) while its token
/// was still accepted (a request in flight, a verifier that has not heard of the revocation yet):
/// 401, as for any revoked token. The account no longer exists; nothing is written for it.
pub fn deleted_account() -> ApiError {
    ApiError::Unauthorized("the account was deleted".into())
}

#[utoipa::path(get, path = "/v1/customers/me", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = CustomerDto), (status = 401, description = "Not signed in, or the account was deleted", body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<CustomerDto>, ApiError> {
    let row = store::customers::get_or_create(&state.db, user.id).await?;
    if row.anonymised_at.is_some() {
        return Err(deleted_account());
    }
    Ok(Json(row.into()))
}

/// The whole profile; every field is required (send "" to clear one).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    pub full_name: String,
    pub phone: String,
    pub address_line: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 (`DE`), or "".
    pub country: String,
}

impl ProfileBody {
    fn validate(&self) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        for (field, value, max) in [
            ("full_name", &self.full_name, 200),
            ("phone", &self.phone, 40),
            ("address_line", &self.address_line, 500),
            ("city", &self.city, 100),
            ("postal_code", &self.postal_code, 20),
        ] {
            if value.chars().count() > max {
                errors.push(FieldError::new(
                    field,
                    format!("must be at most {max} characters"),
                ));
            } else if value.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    field,
                    "must not contain control characters",
                ));
            }
        }
        let country_ok = self.country.is_empty()
            || (self.country.len() == 2 && self.country.bytes().all(|b| b.is_ascii_uppercase()));
        if !country_ok {
            errors.push(FieldError::new(
                "country",
                "must be an ISO 3166-1 code such as DE, or empty",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

#[utoipa::path(put, path = "/v1/customers/me", tag = "customers", request_body = ProfileBody, security(("bearer" = [])),
    responses((status = 200, body = CustomerDto), (status = 401, description = "Not signed in, or the account was deleted", body = Problem), (status = 400, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn put(
    State(state): State<AppState>,
    user: CurrentUser,
    Json(body): Json<ProfileBody>,
) -> Result<Json<CustomerDto>, ApiError> {
    body.validate()?;
    let row = store::customers::put(
        &state.db,
        user.id,
        &store::customers::Profile {
            full_name: body.full_name.trim(),
            phone: body.phone.trim(),
            address_line: body.address_line.trim(),
            city: body.city.trim(),
            postal_code: body.postal_code.trim(),
            country: &body.country,
        },
    )
    .await?
    .ok_or_else(deleted_account)?;
    Ok(Json(row.into()))
}

/// The signed-in account as its token tells it (auth keeps the account itself: `GET /v1/auth/me`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportAccount {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

/// A job that concerns the customer, with its payload as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportJob {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Everything catalog-order stores about the caller (docs/design.md §4 "Personal data").
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerExport {
    #[serde(with = "time::serde::rfc3339")]
    pub exported_at: OffsetDateTime,
    pub account: ExportAccount,
    /// `null` when the customer never opened their profile.
    pub customer: Option<CustomerDto>,
    /// Every order with its lines, oldest first.
    pub orders: Vec<crate::routes::orders::OrderDto>,
    /// Jobs they caused or whose payload names them (order e-mails carry their address).
    pub jobs: Vec<ExportJob>,
}

/// `GET /v1/customers/me/export`: the profile, every order with its lines and every job that
/// concerns the caller, read in one snapshot. Creates nothing.
#[utoipa::path(get, path = "/v1/customers/me/export", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = CustomerExport), (status = 401, body = Problem)))]
pub async fn export(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<CustomerExport>, ApiError> {
    // One snapshot, so the orders, their lines and their jobs agree with each other.
    let mut tx = state.db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let customer = store::customers::by_id(&mut *tx, user.id).await?;
    let orders = store::orders::of_customer(&mut *tx, user.id).await?;
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let mut lines = store::orders::lines_of(&mut *tx, &ids).await?;
    let jobs = store::jobs::concerning(&mut *tx, user.id).await?;
    tx.commit().await?;
    let orders = orders
        .into_iter()
        .map(|order| {
            let (mine, rest) = std::mem::take(&mut lines)
                .into_iter()
                .partition(|l| l.order_id == order.id);
            lines = rest;
            crate::routes::orders::to_dto(order, mine)
        })
        .collect();
    Ok(Json(CustomerExport {
        exported_at: OffsetDateTime::now_utc(),
        account: ExportAccount {
            id: user.id,
            email: user.email,
            role: user.role,
        },
        customer: customer.map(CustomerDto::from),
        orders,
        jobs: jobs
            .into_iter()
            .map(|j| ExportJob {
                id: j.id,
                kind: j.kind,
                status: j.status,
                attempts: j.attempts,
                error: j.error,
                payload: j.payload,
                created_at: j.created_at,
                updated_at: j.updated_at,
            })
            .collect(),
    }))
}
