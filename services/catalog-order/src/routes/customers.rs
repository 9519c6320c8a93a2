//! `GET|PUT /v1/customers/me`: the signed-in customer's profile, created on first use;
//! `GET /v1/customers/me/export`: everything catalog-order stores about them.

use authn::{CurrentUser, Role};
use axum::extract::State;
use platform::ApiError;
use platform::extract::Json;
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::AppState;
use crate::store::customers::{CustomerRow, Profile};
use crate::usecases;

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

#[utoipa::path(get, path = "/v1/customers/me", operation_id = "getProfile", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = CustomerDto), (status = 401, description = "Not signed in, or the account was deleted", body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<CustomerDto>, ApiError> {
    Ok(Json(
        usecases::customers::profile(&state, user.id).await?.into(),
    ))
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

#[utoipa::path(put, path = "/v1/customers/me", operation_id = "putProfile", tag = "customers", request_body = ProfileBody, security(("bearer" = [])),
    responses((status = 200, body = CustomerDto), (status = 401, description = "Not signed in, or the account was deleted", body = Problem), (status = 400, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn put(
    State(state): State<AppState>,
    user: CurrentUser,
    Json(body): Json<ProfileBody>,
) -> Result<Json<CustomerDto>, ApiError> {
    let profile = Profile {
        full_name: &body.full_name,
        phone: &body.phone,
        address_line: &body.address_line,
        city: &body.city,
        postal_code: &body.postal_code,
        country: &body.country,
    };
    Ok(Json(
        usecases::customers::put_profile(&state, user.id, &profile)
            .await?
            .into(),
    ))
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
    /// Payments of their orders, oldest first.
    pub payments: Vec<ExportPayment>,
}

/// A payment as the export shows it: the payment and the address its e-mails go to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportPayment {
    #[serde(flatten)]
    pub payment: crate::routes::payments::PaymentDto,
    /// Empty once the account is deleted.
    pub email: String,
}

/// `GET /v1/customers/me/export`: the profile, every order with its lines and every job that
/// concerns the caller, read in one snapshot. Creates nothing.
#[utoipa::path(get, path = "/v1/customers/me/export", operation_id = "exportPersonalData", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = CustomerExport), (status = 401, body = Problem)))]
pub async fn export(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<CustomerExport>, ApiError> {
    let export = usecases::customers::export(&state, user.id).await?;
    Ok(Json(CustomerExport {
        exported_at: OffsetDateTime::now_utc(),
        account: ExportAccount {
            id: user.id,
            email: user.email,
            role: user.role,
        },
        customer: export.customer.map(CustomerDto::from),
        orders: export
            .orders
            .into_iter()
            .map(|(order, lines)| crate::routes::orders::to_dto(order, lines))
            .collect(),
        jobs: export
            .jobs
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
        payments: export
            .payments
            .into_iter()
            .map(|p| ExportPayment {
                email: p.email.clone(),
                payment: crate::routes::payments::to_dto(p),
            })
            .collect(),
    }))
}
