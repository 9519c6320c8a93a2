//! Paying for an order and applying what the provider says happened (docs/design.md,
//! "Payments"). Lock order everywhere: the order row, then its payments — as cancelling does.

use authn::CurrentUser;
use uuid::Uuid;

use jobs::runtime::{Handler, Job, JobError};

use crate::domain::{OrderStatus, PaymentStatus};
use crate::payments::{PaymentRef, ProviderError, TestOutcome, WebhookEvent};
use crate::state::AppState;
use crate::store;
use crate::store::payments::{NewPaymentRow, PaymentRow};
use crate::usecases::idempotency::{Answer, Claimed, Keyed};
use crate::usecases::{Error, Origin};

/// The status a newly opened payment is answered with; an open one already there is 200.
pub const OPENED: u16 = 201;

/// Open a payment for `order_id` (the caller's own, pending order) with the provider, or answer
/// the one already processing. The provider is called with the order locked, so two requests
/// at once open one payment: the second waits and answers the first's.
pub async fn open(
    state: &AppState,
    user: &CurrentUser,
    order_id: Uuid,
    outcome: TestOutcome,
    keyed: Keyed<'_>,
    render: impl Fn(PaymentRow) -> serde_json::Result<Vec<u8>>,
) -> Result<Answer, Error> {
    let mut tx = store::begin(&state.db).await?;
    let order = store::orders::lock(&mut *tx, order_id)
        .await?
        .filter(|o| o.customer_id == user.id)
        .ok_or_else(|| Error::NotFound(format!("no order {order_id}")))?;
    if let Some(open) = store::payments::open_of(&mut *tx, order_id).await? {
        store::commit(tx).await?;
        return Ok(Answer {
            status: 200,
            body: render(open).map_err(Error::internal)?,
            replayed: false,
        });
    }
    let mut claimed = match keyed.claim(tx).await? {
        Claimed::Replay(answer) => return Ok(answer),
        Claimed::New(pending) => pending,
    };
    if order.status != OrderStatus::Pending.as_str() {
        return Err(Error::Conflict(format!(
            "only a pending order can be paid; this one is {}",
            order.status
        )));
    }
    let payment = PaymentRef {
        payment_id: Uuid::now_v7(),
        order_id,
        amount_cents: order.total_cents,
        currency: order.currency.clone(),
    };
    let client_secret = state
        .payments
        .provider
        .open(&payment, outcome)
        .await
        .map_err(Error::PaymentProvider)?;
    let row = store::payments::insert(
        claimed.tx(),
        &NewPaymentRow {
            id: payment.payment_id,
            order_id,
            amount_cents: payment.amount_cents,
            currency: &payment.currency,
            provider: state.payments.provider.name(),
            client_secret: &client_secret,
            email: &user.email,
        },
    )
    .await?;
    let body = render(row).map_err(Error::internal)?;
    claimed.finish(OPENED, body).await
}

/// What applying a webhook event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The payment moved to this status.
    Moved(PaymentStatus),
    /// The event came after one that took the payment past it: nothing changed.
    Late,
    /// The event was applied before (its id is known): nothing changed.
    Duplicate,
}

/// Apply a provider's (verified) event: once, whatever the order of arrival. A succeeded payment
/// pays a pending order; one that succeeds for an order that can no longer take it (cancelled,
/// expired, paid otherwise) is refunded.
pub async fn apply(
    state: &AppState,
    event: &WebhookEvent,
    origin: Origin<'_>,
) -> Result<Applied, Error> {
    let unknown = || Error::BadParam {
        name: "data.payment_id",
        message: format!("no payment {}", event.data.payment_id),
    };
    let mut tx = store::begin(&state.db).await?;
    let found = store::payments::by_id(&mut *tx, event.data.payment_id)
        .await?
        .ok_or_else(unknown)?;
    let order = store::orders::lock(&mut *tx, found.order_id)
        .await?
        .ok_or_else(unknown)?;
    let payment = store::payments::lock(&mut *tx, found.id)
        .await?
        .ok_or_else(unknown)?;
    check_matches(event, &payment)?;
    if !store::payments::record_event(&mut *tx, &event.id, event.kind.as_str(), payment.id).await? {
        store::commit(tx).await?;
        return Ok(Applied::Duplicate);
    }
    let current: PaymentStatus = payment
        .status
        .parse()
        .map_err(|e: String| Error::internal(anyhow::anyhow!(e)))?;
    let Some(next) = current.after(event.kind) else {
        store::commit(tx).await?;
        return Ok(Applied::Late);
    };
    store::payments::set_status(&mut *tx, payment.id, next.as_str()).await?;
    let cause = store::jobs::Cause {
        owner_id: Some(order.customer_id),
        request_id: Some(origin.request_id),
        traceparent: origin.traceparent,
    };
    if next == PaymentStatus::Succeeded {
        if order.status == OrderStatus::Pending.as_str() {
            store::orders::set_status(&mut *tx, order.id, OrderStatus::Paid.as_str()).await?;
            enqueue_notice(&mut tx, jobs::email::PAYMENT_RECEIPT_KIND, &payment, &cause).await?;
        } else {
            // The money arrived for an order that cannot take it any more: give it back.
            enqueue_refund(&mut tx, payment.id, &cause).await?;
            tracing::info!(payment_id = %payment.id, order_id = %order.id, order_status = %order.status, "payment succeeded for an order that is not pending; refunding");
        }
    }
    if next == PaymentStatus::Refunded {
        enqueue_notice(&mut tx, jobs::email::REFUND_KIND, &payment, &cause).await?;
    }
    store::commit(tx).await?;
    state.payments.metrics.outcome(next);
    Ok(Applied::Moved(next))
}

/// An event must describe the payment as it was opened.
fn check_matches(event: &WebhookEvent, payment: &PaymentRow) -> Result<(), Error> {
    let differs = |name: &'static str| Error::BadParam {
        name,
        message: format!("does not match payment {}", payment.id),
    };
    if event.data.order_id != payment.order_id {
        return Err(differs("data.order_id"));
    }
    if event.data.amount_cents != payment.amount_cents {
        return Err(differs("data.amount_cents"));
    }
    if event.data.currency != payment.currency {
        return Err(differs("data.currency"));
    }
    Ok(())
}

/// Write the e-mail job `kind` about `payment` in `tx` (none once the account was deleted: its
/// address is gone).
async fn enqueue_notice(
    tx: &mut store::Tx,
    kind: &str,
    payment: &PaymentRow,
    cause: &store::jobs::Cause<'_>,
) -> Result<(), Error> {
    if payment.email.is_empty() {
        return Ok(());
    }
    let notice = jobs::email::PaymentNotice {
        order_id: payment.order_id,
        payment_id: payment.id,
        email: payment.email.clone(),
        amount_cents: payment.amount_cents,
        currency: payment.currency.clone(),
    };
    let payload = serde_json::to_value(notice).map_err(Error::internal)?;
    store::jobs::enqueue(&mut **tx, kind, &payload, cause).await?;
    Ok(())
}

/// Write a `payment.refund` job for `payment_id` in `tx` (committed with the change that needs
/// it, or not at all).
pub async fn enqueue_refund(
    tx: &mut store::Tx,
    payment_id: Uuid,
    cause: &store::jobs::Cause<'_>,
) -> Result<Uuid, Error> {
    let payload =
        serde_json::to_value(jobs::payments::Refund { payment_id }).map_err(Error::internal)?;
    Ok(store::jobs::enqueue(&mut **tx, jobs::payments::REFUND_KIND, &payload, cause).await?)
}

/// What the `payment` job family needs.
pub struct PaymentJobs {
    pub db: sqlx::PgPool,
    pub provider: std::sync::Arc<dyn crate::payments::Provider>,
}

/// Runs `payment.refund`: asks the provider to give a succeeded payment's money back (its
/// `refund.succeeded` webhook then marks it refunded). A payment already refunded needs nothing.
impl Handler for PaymentJobs {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        if job.kind != jobs::payments::REFUND_KIND {
            return Err(JobError::unknown_kind(&job.kind));
        }
        let refund: jobs::payments::Refund = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Fail(format!("payload: {e}")))?;
        let id = refund.payment_id;
        let p = store::payments::by_id(&self.db, id)
            .await
            .map_err(|e| JobError::Retry(format!("database: {e}")))?
            .ok_or_else(|| JobError::Fail(format!("no payment {id}")))?;
        match p.status.parse::<PaymentStatus>() {
            Ok(PaymentStatus::Succeeded) => {}
            Ok(PaymentStatus::Refunded) => return Ok(()),
            _ => {
                return Err(JobError::Fail(format!(
                    "payment {id} cannot be refunded: it is {}",
                    p.status
                )));
            }
        }
        let payment = PaymentRef {
            payment_id: id,
            order_id: p.order_id,
            amount_cents: p.amount_cents,
            currency: p.currency,
        };
        self.provider.refund(&payment).await.map_err(|e| match e {
            ProviderError::Unavailable(m) => JobError::Retry(m),
            ProviderError::Refused(m) => JobError::Fail(m),
        })
    }
}
