//! Placing an order and moving it through its states.

use std::collections::HashMap;

use authn::{CurrentUser, Role};
use jobs::email::{ORDER_CONFIRMATION_KIND, OrderConfirmation, OrderLine};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::changes;
use crate::domain::{self, Currency, Money, OrderDraft, OrderStatus, PricingError, StockedItem};
use crate::state::AppState;
use crate::store;
use crate::store::orders::{LineRow, OrderFilter, OrderRow};
use crate::store::payments::PaymentBrief;
use crate::usecases::idempotency::{Answer, Claimed, Keyed};
use crate::usecases::{self, Error, Origin};

/// The status an order is answered with after placing it.
pub const PLACED: u16 = 201;

/// Place `draft` for `customer`: the customer row locked (an `account.deleted` applied meanwhile
/// waits and then scrubs this order's e-mail job; one applied before refuses the order), the key
/// claimed, the items locked, priced from the catalog and their stock taken, the order, its
/// lines and its confirmation e-mail job written in one transaction. `render` makes the answer's
/// body, which the key stores.
pub async fn place(
    state: &AppState,
    customer: &CurrentUser,
    draft: &OrderDraft,
    keyed: Keyed<'_>,
    origin: Origin<'_>,
    render: impl FnOnce(OrderRow, Vec<LineRow>) -> serde_json::Result<Vec<u8>>,
) -> Result<Answer, Error> {
    if state.orders_require_verified_email && !customer.email_verified {
        return Err(Error::Forbidden(
            "verify your e-mail address before placing orders (POST /v1/auth/email/verify)".into(),
        ));
    }
    let mut tx = store::begin(&state.db).await?;
    if store::customers::get_or_create(&mut *tx, customer.id)
        .await?
        .anonymised_at
        .is_some()
    {
        return Err(Error::AccountDeleted);
    }
    let mut claimed = match keyed.claim(tx).await? {
        Claimed::Replay(answer) => return Ok(answer),
        Claimed::New(pending) => pending,
    };

    let ids = draft.item_ids();
    let items: HashMap<Uuid, StockedItem> = store::orders::lock_items(claimed.tx(), &ids)
        .await?
        .into_iter()
        .map(|r| {
            let item = StockedItem {
                name: r.name,
                price: Money {
                    cents: r.price_cents,
                    currency: Currency::stored(r.currency),
                },
                stock: r.stock,
                active: r.active,
            };
            (r.id, item)
        })
        .collect();
    let priced = domain::price(draft, &items).map_err(|e| match e {
        PricingError::Invalid(errors) => Error::Invalid(errors),
        PricingError::NotEnoughStock(short) => {
            Error::Conflict(format!("not enough stock: {}", short.join(", ")))
        }
    })?;

    let quantities: Vec<i32> = priced
        .lines
        .iter()
        .map(|l| i32::try_from(l.quantity).unwrap_or(i32::MAX))
        .collect();
    let taken = store::orders::take_stock(claimed.tx(), &ids, &quantities).await?;
    if taken != ids.len() as u64 {
        return Err(Error::Conflict("not enough stock".into()));
    }
    let order = store::orders::insert(
        claimed.tx(),
        customer.id,
        priced.total.cents,
        priced.total.currency.as_str(),
    )
    .await?;
    let names: Vec<String> = priced.lines.iter().map(|l| l.name.clone()).collect();
    let prices: Vec<i64> = priced.lines.iter().map(|l| l.unit_price_cents).collect();
    let lines =
        store::orders::insert_lines(claimed.tx(), order.id, &ids, &names, &quantities, &prices)
            .await?;
    // The confirmation e-mail is a job, committed with the order or not at all.
    let confirmation = OrderConfirmation {
        order_id: order.id,
        customer_id: customer.id,
        email: customer.email.clone(),
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
        claimed.tx(),
        ORDER_CONFIRMATION_KIND,
        &serde_json::to_value(&confirmation).map_err(Error::internal)?,
        &store::jobs::Cause {
            owner_id: Some(customer.id),
            request_id: Some(origin.request_id),
            traceparent: origin.traceparent,
        },
    )
    .await?;
    let body = render(order, lines).map_err(Error::internal)?;
    let answer = claimed.finish(PLACED, body).await?;
    state.cache.changed(&changes::of_items(ids));
    Ok(answer)
}

/// Whose orders `user` may list: a customer only their own (asking for another's is forbidden),
/// an admin everyone's or, with `customer_id`, one customer's.
pub fn list_scope(user: &CurrentUser, customer_id: Option<Uuid>) -> Result<Option<Uuid>, Error> {
    match (user.role, customer_id) {
        (Role::Admin, filter) => Ok(filter),
        (_, None) => Ok(Some(user.id)),
        (_, Some(_)) => Err(Error::Forbidden(
            "only admins can list other customers' orders".into(),
        )),
    }
}

/// Orders matching `filter`, newest first, after `after`: `limit + 1` of them, each with its
/// lines and its latest payment (in one extra query each, whatever the page's size) except the one past the page, which only
/// says another page exists.
pub async fn list(
    state: &AppState,
    filter: &OrderFilter,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: u32,
) -> Result<Vec<(OrderRow, Vec<LineRow>)>, Error> {
    let orders = store::orders::page(&state.db, filter, after, limit).await?;
    let ids: Vec<Uuid> = orders.iter().take(limit as usize).map(|o| o.id).collect();
    let mut lines: HashMap<Uuid, Vec<LineRow>> = HashMap::new();
    for line in store::orders::lines_of(&state.db, &ids).await? {
        lines.entry(line.order_id).or_default().push(line);
    }
    let mut payments: HashMap<Uuid, PaymentBrief> = store::payments::latest_of(&state.db, &ids)
        .await?
        .into_iter()
        .map(|p| (p.order_id, p))
        .collect();
    Ok(orders
        .into_iter()
        .map(|mut o| {
            let l = lines.remove(&o.id).unwrap_or_default();
            o.payment = payments.remove(&o.id);
            (o, l)
        })
        .collect())
}

/// Another customer's order is "not found", not "forbidden": its existence is not theirs to know.
fn visible(order: Option<OrderRow>, user: &CurrentUser, id: Uuid) -> Result<OrderRow, Error> {
    order
        .filter(|o| user.role == Role::Admin || o.customer_id == user.id)
        .ok_or_else(|| Error::NotFound(format!("no order {id}")))
}

/// One order with its lines and its latest payment (three queries).
pub async fn get(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
) -> Result<(OrderRow, Vec<LineRow>), Error> {
    let mut order = visible(store::orders::by_id(&state.db, id).await?, user, id)?;
    let lines = store::orders::lines_of(&state.db, &[id]).await?;
    order.payment = latest_payment(&state.db, id).await?;
    Ok((order, lines))
}

async fn latest_payment(
    db: impl sqlx::PgExecutor<'_>,
    order_id: Uuid,
) -> Result<Option<PaymentBrief>, Error> {
    Ok(store::payments::latest_of(db, &[order_id]).await?.pop())
}

/// Cancel an order: customers their own until it ships, admins whatever can be cancelled. The
/// items go back to stock; a paid order's payment is refunded.
pub async fn cancel(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
) -> Result<(OrderRow, Vec<LineRow>), Error> {
    if user.role != Role::Admin {
        let order = visible(store::orders::by_id(&state.db, id).await?, user, id)?;
        let pending = order
            .status
            .parse::<OrderStatus>()
            .is_ok_and(OrderStatus::customer_may_cancel);
        if !pending {
            return Err(Error::Conflict(format!(
                "only pending or paid orders can be cancelled by the customer; this one is {}",
                order.status
            )));
        }
    }
    change_status(state, user, id, OrderStatus::Cancelled).await
}

/// Move an order to `next` if its current status allows it (`OrderStatus::can_become`), with
/// the order row locked; cancelling restocks its items and refunds what was paid (a
/// `payment.refund` job per succeeded payment, committed with the cancellation).
pub async fn change_status(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    next: OrderStatus,
) -> Result<(OrderRow, Vec<LineRow>), Error> {
    let mut tx = store::begin(&state.db).await?;
    let order = visible(store::orders::lock(&mut *tx, id).await?, user, id)?;
    let current: OrderStatus = order
        .status
        .parse()
        .map_err(|e: String| Error::internal(anyhow::anyhow!(e)))?;
    if !current.can_become(next) {
        return Err(Error::Conflict(format!(
            "an order that is {current} cannot become {next}"
        )));
    }
    let restocked = if OrderStatus::restocks(next) {
        store::orders::restock(&mut *tx, id).await?
    } else {
        Vec::new()
    };
    if next == OrderStatus::Cancelled {
        let cause = store::jobs::Cause {
            owner_id: Some(order.customer_id),
            request_id: None,
            traceparent: None,
        };
        for payment in store::payments::succeeded_of(&mut *tx, id).await? {
            usecases::payments::enqueue_refund(&mut tx, payment, &cause).await?;
        }
    }
    let mut order = store::orders::set_status(&mut *tx, id, next.as_str()).await?;
    let lines = store::orders::lines_of(&mut *tx, &[id]).await?;
    order.payment = latest_payment(&mut *tx, id).await?;
    store::commit(tx).await?;
    if !restocked.is_empty() {
        state.cache.changed(&changes::of_items(restocked));
    }
    Ok((order, lines))
}
