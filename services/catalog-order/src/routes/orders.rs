//! Orders over HTTP: placing one (`Idempotency-Key` honoured), reading them, and moving them
//! through their states; the work is `usecases::orders`.

use authn::CurrentUser;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use platform::ApiError;
use platform::extract::{Json, Path, Query};
use platform::http::{RequestId, TraceParent};
use platform::pagination::{Page, PageParams};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{DraftLine, OrderDraft, OrderStatus, PaymentStatus};
use crate::routes::idempotent::{self, idempotency_key};
use crate::state::AppState;
use crate::store::orders::{LineRow, OrderFilter, OrderRow};
use crate::usecases::idempotency::Keyed;
use crate::usecases::{self, Origin};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LineDto {
    pub item_id: Uuid,
    pub name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderDto {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub status: String,
    pub total_cents: i64,
    pub currency: String,
    pub lines: Vec<LineDto>,
    /// The latest payment, if one was opened.
    pub payment: Option<PaymentBriefDto>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// An order's latest payment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentBriefDto {
    pub id: Uuid,
    pub status: PaymentStatus,
}

pub(crate) fn to_dto(order: OrderRow, lines: Vec<LineRow>) -> OrderDto {
    OrderDto {
        payment: order.payment.map(|p| PaymentBriefDto {
            id: p.id,
            // The column's CHECK allows only these.
            status: p.status.parse().unwrap_or(PaymentStatus::Processing),
        }),
        id: order.id,
        customer_id: order.customer_id,
        status: order.status,
        total_cents: order.total_cents,
        currency: order.currency,
        lines: lines
            .into_iter()
            .map(|l| LineDto {
                item_id: l.item_id,
                name: l.name,
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
            })
            .collect(),
        created_at: order.created_at,
        updated_at: order.updated_at,
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    pub item_id: Uuid,
    pub quantity: u32,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub lines: Vec<LineRequest>,
}

impl NewOrder {
    fn draft(&self) -> Result<OrderDraft, ApiError> {
        OrderDraft::new(
            self.lines
                .iter()
                .map(|l| DraftLine {
                    item_id: l.item_id,
                    quantity: l.quantity,
                })
                .collect(),
        )
        .map_err(ApiError::Validation)
    }
}

/// `POST /v1/orders` → 201 with the order. Prices come from the catalog, never the client.
#[utoipa::path(post, path = "/v1/orders", operation_id = "placeOrder", tag = "orders", request_body = NewOrder, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same key and body")),
    responses((status = 201, body = OrderDto), (status = 401, description = "Not signed in, or the account was deleted", body = Problem), (status = 403, description = "ORDERS_REQUIRE_VERIFIED_EMAIL and the address is not verified", body = Problem), (status = 409, description = "Not enough stock", body = Problem), (status = 400, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    RequestId(request_id): RequestId,
    TraceParent(traceparent): TraceParent,
    headers: HeaderMap,
    Json(body): Json<NewOrder>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let draft = body.draft()?;
    let request_hash = Sha256::digest(serde_json::to_vec(&body).unwrap_or_default());
    let answer = usecases::orders::place(
        &state,
        &user,
        &draft,
        Keyed {
            user_id: user.id,
            key: key.as_deref(),
            request_hash: &request_hash,
        },
        Origin {
            request_id: &request_id,
            traceparent: traceparent.as_deref(),
        },
        |order, lines| serde_json::to_vec(&to_dto(order, lines)),
    )
    .await?;
    Ok(idempotent::answer(answer))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub status: Option<OrderStatus>,
    /// Admin only: one customer's orders.
    pub customer_id: Option<Uuid>,
    /// RFC 3339; orders created at or after.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_from: Option<OffsetDateTime>,
    /// RFC 3339; orders created before.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_to: Option<OffsetDateTime>,
}

/// `GET /v1/orders`: a customer's own orders, newest first; admins see everyone's and may filter
/// by customer. Lines come in one extra query per page, whatever its size.
#[utoipa::path(get, path = "/v1/orders", operation_id = "listOrders", tag = "orders", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<OrderDto>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<OrderDto>>, ApiError> {
    let params = PageParams {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let limit = params.limit()?;
    let customer_id = usecases::orders::list_scope(&user, query.customer_id)?;
    if let (Some(from), Some(to)) = (query.created_from, query.created_to)
        && from >= to
    {
        return Err(ApiError::bad_param(
            "created_from",
            "must be before created_to",
        ));
    }
    let after: Option<(OffsetDateTime, Uuid)> = params.after(&state.cursors)?;
    let filter = OrderFilter {
        customer_id,
        status: query.status.map(OrderStatus::as_str),
        created_from: query.created_from,
        created_to: query.created_to,
    };
    let orders = usecases::orders::list(&state, &filter, after, limit).await?;
    Ok(Json(Page::from_rows(
        orders,
        limit,
        &state.cursors,
        |(o, _)| (o.created_at, o.id),
        |(o, lines)| to_dto(o, lines),
    )))
}

/// `GET /v1/orders/{id}` with its lines (two queries).
#[utoipa::path(get, path = "/v1/orders/{id}", operation_id = "getOrder", tag = "orders", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = OrderDto), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<OrderDto>, ApiError> {
    let (order, lines) = usecases::orders::get(&state, &user, id).await?;
    Ok(Json(to_dto(order, lines)))
}

/// `POST /v1/orders/{id}/cancel`: customers cancel their own orders until they ship; admins
/// whatever can be cancelled. The items go back to stock; a paid order is refunded.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", operation_id = "cancelOrder", tag = "orders", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = OrderDto), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<OrderDto>, ApiError> {
    let (order, lines) = usecases::orders::cancel(&state, &user, id).await?;
    Ok(Json(to_dto(order, lines)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status: OrderStatus,
}

/// `POST /v1/orders/{id}/status` `{status}` (admin).
#[utoipa::path(post, path = "/v1/orders/{id}/status", operation_id = "setOrderStatus", tag = "orders", request_body = StatusChange,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = OrderDto), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_status(
    State(state): State<AppState>,
    authn::Admin(admin): authn::Admin,
    Path(id): Path<Uuid>,
    Json(change): Json<StatusChange>,
) -> Result<Json<OrderDto>, ApiError> {
    let (order, lines) = usecases::orders::change_status(&state, &admin, id, change.status).await?;
    Ok(Json(to_dto(order, lines)))
}
