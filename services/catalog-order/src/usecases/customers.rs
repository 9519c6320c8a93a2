//! The signed-in customer's profile and the export of everything stored about them.

use platform::FieldError;
use uuid::Uuid;

use crate::state::AppState;
use crate::store;
use crate::store::customers::{CustomerRow, Profile};
use crate::store::jobs::OwnJobRow;
use crate::store::orders::{LineRow, OrderRow};
use crate::store::payments::PaymentRow;
use crate::usecases::Error;

/// The customer's profile, created empty on first use; refused for a deleted account.
pub async fn profile(state: &AppState, customer_id: Uuid) -> Result<CustomerRow, Error> {
    let row = store::customers::get_or_create(&state.db, customer_id).await?;
    if row.anonymised_at.is_some() {
        return Err(Error::AccountDeleted);
    }
    Ok(row)
}

fn check(p: &Profile<'_>) -> Result<(), Error> {
    let mut errors = Vec::new();
    for (field, value, max) in [
        ("full_name", p.full_name, 200),
        ("phone", p.phone, 40),
        ("address_line", p.address_line, 500),
        ("city", p.city, 100),
        ("postal_code", p.postal_code, 20),
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
    let country_ok = p.country.is_empty()
        || (p.country.len() == 2 && p.country.bytes().all(|b| b.is_ascii_uppercase()));
    if !country_ok {
        errors.push(FieldError::new(
            "country",
            "must be an ISO 3166-1 code such as DE, or empty",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Replace the whole profile (values as sent; checked, then trimmed); refused for a deleted
/// account, writing nothing.
pub async fn put_profile(
    state: &AppState,
    customer_id: Uuid,
    profile: &Profile<'_>,
) -> Result<CustomerRow, Error> {
    check(profile)?;
    store::customers::put(
        &state.db,
        customer_id,
        &Profile {
            full_name: profile.full_name.trim(),
            phone: profile.phone.trim(),
            address_line: profile.address_line.trim(),
            city: profile.city.trim(),
            postal_code: profile.postal_code.trim(),
            country: profile.country,
        },
    )
    .await?
    .ok_or(Error::AccountDeleted)
}

/// Everything catalog-order stores about a customer.
pub struct Export {
    /// `None` when the customer never opened their profile.
    pub customer: Option<CustomerRow>,
    /// Every order with its lines, oldest first.
    pub orders: Vec<(OrderRow, Vec<LineRow>)>,
    /// Jobs they caused or whose payload names them.
    pub jobs: Vec<OwnJobRow>,
    /// Payments of their orders, oldest first (with the address receipts go to).
    pub payments: Vec<PaymentRow>,
}

/// Read in one snapshot, so the orders, their lines and their jobs agree. Creates nothing.
pub async fn export(state: &AppState, customer_id: Uuid) -> Result<Export, Error> {
    let mut tx = store::begin_snapshot(&state.db).await?;
    let customer = store::customers::by_id(&mut *tx, customer_id).await?;
    let orders = store::orders::of_customer(&mut *tx, customer_id).await?;
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let mut lines = store::orders::lines_of(&mut *tx, &ids).await?;
    let jobs = store::jobs::concerning(&mut *tx, customer_id).await?;
    let payments = store::payments::of_customer(&mut *tx, customer_id).await?;
    store::commit(tx).await?;
    let orders = orders
        .into_iter()
        .map(|order| {
            let (mine, rest) = std::mem::take(&mut lines)
                .into_iter()
                .partition(|l| l.order_id == order.id);
            lines = rest;
            (order, mine)
        })
        .collect();
    Ok(Export {
        customer,
        orders,
        jobs,
        payments,
    })
}
