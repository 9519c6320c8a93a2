//! Payments over HTTP: a customer opens one for their order; the provider's signed webhooks move
//! it (`usecases::payments`).

use authn::CurrentUser;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use platform::ApiError;
use platform::extract::{Json, Path};
use platform::http::{RequestId, TraceParent};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::PaymentStatus;
use crate::payments::{TestOutcome, WebhookEvent, signature};
use crate::routes::idempotent::{self, idempotency_key};
use crate::state::AppState;
use crate::store::payments::PaymentRow;
use crate::usecases::idempotency::Keyed;
use crate::usecases::payments::Applied;
use crate::usecases::{self, Origin};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentDto {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: PaymentStatus,
    pub amount_cents: i64,
    pub currency: String,
    /// `fake` or `gateway`.
    pub provider: String,
    /// What the client hands the provider's payment form to finish paying.
    pub client_secret: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

pub(crate) fn to_dto(p: PaymentRow) -> PaymentDto {
    PaymentDto {
        id: p.id,
        order_id: p.order_id,
        // The column's CHECK allows only these.
        status: p.status.parse().unwrap_or(PaymentStatus::Processing),
        amount_cents: p.amount_cents,
        currency: p.currency,
        provider: p.provider,
        client_secret: p.client_secret,
        created_at: p.created_at,
    }
}

/// The body of `POST /v1/orders/{id}/payment`, which may be empty.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    /// Only the `fake` provider reads it: how the payment ends (default `succeed`).
    #[serde(default)]
    pub test_outcome: TestOutcome,
}

/// `POST /v1/orders/{id}/payment` → 201 with a new payment for the order's total, or 200 with
/// the one still processing.
#[utoipa::path(post, path = "/v1/orders/{id}/payment", operation_id = "payOrder", tag = "orders", request_body(content = Option<NewPayment>),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same key and body")),
    security(("bearer" = [])),
    responses((status = 201, description = "A payment was opened", body = PaymentDto), (status = 200, description = "The payment already processing", body = PaymentDto),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The order is not pending", body = Problem), (status = 503, description = "The provider did not answer", body = Problem)))]
pub async fn open(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(order_id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let request: NewPayment = if body.iter().all(u8::is_ascii_whitespace) {
        NewPayment::default()
    } else {
        // An object, not whatever serde would also read into the struct (an empty array).
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body)
            .and_then(|object| serde_json::from_value(object.into()))
            .map_err(|e| ApiError::BadRequest {
                detail: format!("invalid JSON body: {e}"),
                errors: Vec::new(),
            })?
    };
    let request_hash = Sha256::digest(serde_json::to_vec(&request).unwrap_or_default());
    let answer = usecases::payments::open(
        &state,
        &user,
        order_id,
        request.test_outcome,
        Keyed {
            user_id: user.id,
            key: key.as_deref(),
            request_hash: &request_hash,
        },
        |p| serde_json::to_vec(&to_dto(p)),
    )
    .await?;
    Ok(idempotent::answer(answer))
}

/// What the webhook did with an event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    /// `applied`, `late` (the payment is already past it) or `duplicate` (applied before).
    pub result: &'static str,
}

/// `POST /v1/payments/webhook`: the provider's events, signed (`Payment-Signature`). A bad or
/// stale signature or a malformed body is a 400 and changes nothing; an event is applied once.
#[utoipa::path(post, path = "/v1/payments/webhook", operation_id = "paymentWebhook", tag = "payments", request_body = WebhookEvent,
    params(("Payment-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>")),
    responses((status = 200, body = WebhookAnswer), (status = 400, body = Problem)))]
pub async fn webhook(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    TraceParent(traceparent): TraceParent,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let header = headers
        .get(signature::HEADER)
        .map(|v| v.to_str().unwrap_or_default());
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if let Err(e) = signature::verify(header, &body, &state.payments.webhook_secrets, now) {
        state.payments.metrics.signature_failures.inc();
        tracing::warn!(error = %e, "payment webhook refused");
        return Err(ApiError::bad_param("Payment-Signature", e.to_string()));
    }
    let event: WebhookEvent = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
        detail: format!("invalid event: {e}"),
        errors: Vec::new(),
    })?;
    let applied = usecases::payments::apply(
        &state,
        &event,
        Origin {
            request_id: &request_id,
            traceparent: traceparent.as_deref(),
        },
    )
    .await?;
    tracing::info!(event = %event.id, kind = event.kind.as_str(), payment_id = %event.data.payment_id, ?applied, "payment webhook");
    Ok(Json(WebhookAnswer {
        result: match applied {
            Applied::Moved(_) => "applied",
            Applied::Late => "late",
            Applied::Duplicate => "duplicate",
        },
    }))
}
