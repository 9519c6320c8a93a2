//! Orders: placing one (stock taken atomically, `Idempotency-Key` honoured), reading them, and
//! moving them through their states.

use std::collections::{HashMap, HashSet};

use authn::{CurrentUser, Role};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jobs::email::{ORDER_CONFIRMATION_KIND, OrderConfirmation, OrderLine};
use platform::extract::{Json, Path, Query};
use platform::http::{RequestId, TraceParent};
use platform::pagination::{Page, PageParams};
use platform::problem::Problem;
use platform::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Currency, MAX_LINES, MAX_QUANTITY, Money, OrderStatus};
use crate::routes::idempotent::{self, idempotency_key, json_response};
use crate::state::AppState;
use crate::store;
use crate::store::orders::{LineRow, OrderFilter, OrderRow};

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
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

pub(crate) fn to_dto(order: OrderRow, lines: Vec<LineRow>) -> OrderDto {
    OrderDto {
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
    fn validate(&self) -> Result<(), ApiError> {
        if self.lines.is_empty() || self.lines.len() > MAX_LINES {
            return Err(ApiError::invalid_field(
                "lines",
                format!("an order has 1 to {MAX_LINES} lines"),
            ));
        }
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for (i, line) in self.lines.iter().enumerate() {
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                errors.push(FieldError::new(
                    format!("lines[{i}].quantity"),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                ));
            }
            if !seen.insert(line.item_id) {
                errors.push(FieldError::new(
                    format!("lines[{i}].item_id"),
                    "appears twice; put the whole quantity on one line",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// `POST /v1/orders` → 201 with the order. Prices come from the catalog, never the client.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = NewOrder, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same key and body")),
    responses((status = 201, body = OrderDto), (status = 401, description = "Not signed in, or the account was deleted", body = Problem), (status = 409, description = "Not enough stock", body = Problem), (status = 400, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    RequestId(request_id): RequestId,
    TraceParent(traceparent): TraceParent,
    headers: HeaderMap,
    Json(body): Json<NewOrder>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    body.validate()?;
    let request_hash = Sha256::digest(serde_json::to_vec(&body).unwrap_or_default());

    let mut tx = state.db.begin().await?;
    // Locks the customer row until commit: an `account.deleted` applied meanwhile waits and then
    // scrubs this order's e-mail job; one applied before is seen here and the order refused.
    if store::customers::get_or_create(&mut *tx, user.id)
        .await?
        .anonymised_at
        .is_some()
    {
        return Err(crate::routes::customers::deleted_account());
    }
    if let Some(answer) = idempotent::claim(&mut tx, user.id, key.as_deref(), &request_hash).await?
    {
        tx.commit().await?;
        return Ok(answer);
    }

    let ids: Vec<Uuid> = body.lines.iter().map(|l| l.item_id).collect();
    let items: HashMap<Uuid, store::orders::StockRow> = store::orders::lock_items(&mut *tx, &ids)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();

    let mut errors = Vec::new();
    let mut short = Vec::new();
    let mut total: Option<Money> = None;
    for (i, line) in body.lines.iter().enumerate() {
        let Some(item) = items.get(&line.item_id).filter(|it| it.active) else {
            errors.push(FieldError::new(
                format!("lines[{i}].item_id"),
                "no such item",
            ));
            continue;
        };
        let unit = Money {
            cents: item.price_cents,
            currency: Currency::stored(item.currency.clone()),
        };
        let sum = total
            .clone()
            .unwrap_or_else(|| Money::zero(unit.currency.clone()));
        match sum.add_line(&unit, line.quantity) {
            Ok(next) => total = Some(next),
            Err(e) => errors.push(FieldError::new(format!("lines[{i}].item_id"), e)),
        }
        if i64::from(item.stock) < i64::from(line.quantity) {
            short.push(format!("{} (only {} left)", item.name, item.stock));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if !short.is_empty() {
        return Err(ApiError::Conflict(format!(
            "not enough stock: {}",
            short.join(", ")
        )));
    }
    let total = total.ok_or_else(|| ApiError::internal(anyhow::anyhow!("order without lines")))?;

    let quantities: Vec<i32> = body
        .lines
        .iter()
        .map(|l| i32::try_from(l.quantity).unwrap_or(i32::MAX))
        .collect();
    let taken = store::orders::take_stock(&mut *tx, &ids, &quantities).await?;
    if taken != ids.len() as u64 {
        return Err(ApiError::Conflict("not enough stock".into()));
    }
    let order =
        store::orders::insert(&mut *tx, user.id, total.cents, total.currency.as_str()).await?;
    let names: Vec<String> = ids.iter().map(|id| items[id].name.clone()).collect();
    let prices: Vec<i64> = ids.iter().map(|id| items[id].price_cents).collect();
    let lines =
        store::orders::insert_lines(&mut *tx, order.id, &ids, &names, &quantities, &prices).await?;
    // The confirmation e-mail is a job, committed with the order or not at all.
    let confirmation = OrderConfirmation {
        order_id: order.id,
        customer_id: user.id,
        email: user.email.clone(),
        total_cents: order.total_cents,
        currency: order.currency.clone(),
        lines: lines
            .iter()
            .map(|l| OrderLine {
                name: l.name.clone(),
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
            })
            .collect(),
    };
    store::jobs::enqueue(
        &mut *tx,
        ORDER_CONFIRMATION_KIND,
        &serde_json::to_value(&confirmation)
            .map_err(|e| ApiError::internal(anyhow::Error::new(e)))?,
        &store::jobs::Cause {
            owner_id: Some(user.id),
            request_id: Some(&request_id),
            traceparent: traceparent.as_deref(),
        },
    )
    .await?;
    let dto = to_dto(order, lines);
    let bytes = serde_json::to_vec(&dto).map_err(|e| ApiError::internal(anyhow::Error::new(e)))?;
    if let Some(key) = &key {
        store::idempotency::complete(&mut tx, user.id, key, 201, &bytes).await?;
    }
    tx.commit().await?;
    Ok(json_response(StatusCode::CREATED, bytes, false))
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
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(ListQuery), security(("bearer" = [])),
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
    let customer_id = match (user.role, query.customer_id) {
        (Role::Admin, filter) => filter,
        (_, None) => Some(user.id),
        (_, Some(_)) => {
            return Err(ApiError::Forbidden(
                "only admins can list other customers' orders".into(),
            ));
        }
    };
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
    let orders = store::orders::page(&state.db, &filter, after, limit).await?;
    let page = Page::from_rows(
        orders,
        limit,
        &state.cursors,
        |o| (o.created_at, o.id),
        |o| o,
    );
    let ids: Vec<Uuid> = page.items.iter().map(|o| o.id).collect();
    let mut lines: HashMap<Uuid, Vec<LineRow>> = HashMap::new();
    for line in store::orders::lines_of(&state.db, &ids).await? {
        lines.entry(line.order_id).or_default().push(line);
    }
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|o| {
                let l = lines.remove(&o.id).unwrap_or_default();
                to_dto(o, l)
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Another customer's order is "not found", not "forbidden": its existence is not theirs to know.
fn visible(order: Option<OrderRow>, user: &CurrentUser, id: Uuid) -> Result<OrderRow, ApiError> {
    order
        .filter(|o| user.role == Role::Admin || o.customer_id == user.id)
        .ok_or_else(|| ApiError::NotFound(format!("no order {id}")))
}

/// `GET /v1/orders/{id}` with its lines (two queries).
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = OrderDto), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<OrderDto>, ApiError> {
    let order = visible(store::orders::by_id(&state.db, id).await?, &user, id)?;
    let lines = store::orders::lines_of(&state.db, &[id]).await?;
    Ok(Json(to_dto(order, lines)))
}

async fn transition(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    next: OrderStatus,
) -> Result<OrderDto, ApiError> {
    let mut tx = state.db.begin().await?;
    let order = visible(store::orders::lock(&mut *tx, id).await?, user, id)?;
    let current: OrderStatus = order
        .status
        .parse()
        .map_err(|e: String| ApiError::internal(anyhow::anyhow!(e)))?;
    if !current.can_become(next) {
        return Err(ApiError::Conflict(format!(
            "an order that is {current} cannot become {next}"
        )));
    }
    if OrderStatus::restocks(next) {
        store::orders::restock(&mut *tx, id).await?;
    }
    let order = store::orders::set_status(&mut *tx, id, next.as_str()).await?;
    let lines = store::orders::lines_of(&mut *tx, &[id]).await?;
    tx.commit().await?;
    Ok(to_dto(order, lines))
}

/// `POST /v1/orders/{id}/cancel`: customers cancel their own pending orders; admins also paid
/// ones. The items go back to stock.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = OrderDto), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<OrderDto>, ApiError> {
    if user.role != Role::Admin {
        let order = visible(store::orders::by_id(&state.db, id).await?, &user, id)?;
        if order.status != OrderStatus::Pending.as_str() {
            return Err(ApiError::Conflict(format!(
                "only pending orders can be cancelled by the customer; this one is {}",
                order.status
            )));
        }
    }
    Ok(Json(
        transition(&state, &user, id, OrderStatus::Cancelled).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status: OrderStatus,
}

/// `POST /v1/orders/{id}/status` `{status}` (admin).
#[utoipa::path(post, path = "/v1/orders/{id}/status", tag = "orders", request_body = StatusChange,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = OrderDto), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_status(
    State(state): State<AppState>,
    authn::Admin(admin): authn::Admin,
    Path(id): Path<Uuid>,
    Json(change): Json<StatusChange>,
) -> Result<Json<OrderDto>, ApiError> {
    Ok(Json(transition(&state, &admin, id, change.status).await?))
}
