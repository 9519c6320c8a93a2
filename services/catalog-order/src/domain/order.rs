//! Placing an order, as rules without a database: what a well-formed order is
//! ([`OrderDraft`]), and how its lines are priced and checked against stock ([`price`]).

use std::collections::{HashMap, HashSet};

use platform::FieldError;
use uuid::Uuid;

use super::{MAX_LINES, MAX_QUANTITY, Money};

/// One line as the customer asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DraftLine {
    pub item_id: Uuid,
    pub quantity: u32,
}

/// An order as the customer asks for it: 1 to [`MAX_LINES`] lines, each item once, each quantity
/// 1 to [`MAX_QUANTITY`]. Prices are not part of it: they come from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDraft {
    lines: Vec<DraftLine>,
}

impl OrderDraft {
    /// Every line at fault is named (`lines[2].quantity`), or the whole `lines` when there are
    /// none or too many.
    pub fn new(lines: Vec<DraftLine>) -> Result<OrderDraft, Vec<FieldError>> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(vec![FieldError::new(
                "lines",
                format!("an order has 1 to {MAX_LINES} lines"),
            )]);
        }
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for (i, line) in lines.iter().enumerate() {
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
            Ok(OrderDraft { lines })
        } else {
            Err(errors)
        }
    }

    pub fn lines(&self) -> &[DraftLine] {
        &self.lines
    }

    /// The ordered items, in line order.
    pub fn item_ids(&self) -> Vec<Uuid> {
        self.lines.iter().map(|l| l.item_id).collect()
    }
}

/// An item as an order sees it: its price, its stock, whether it is on sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockedItem {
    pub name: String,
    pub price: Money,
    pub stock: i32,
    pub active: bool,
}

/// A line priced from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub item_id: Uuid,
    pub name: String,
    pub quantity: u32,
    pub unit_price_cents: i64,
}

/// A draft priced and checked: its lines in the draft's order and its total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedOrder {
    pub lines: Vec<PricedLine>,
    pub total: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PricingError {
    /// Lines naming no item on sale, or mixing currencies, or a total that overflows.
    Invalid(Vec<FieldError>),
    /// Every line is fine, but these items (`"Tee (only 2 left)"`) do not have enough stock.
    NotEnoughStock(Vec<String>),
}

/// Price `draft` with the catalog's `items` (by id; a missing or inactive item is "no such
/// item"): the total in the one currency of its items, with every line's stock checked. Errors
/// in the lines come before a shortage of stock.
pub fn price(
    draft: &OrderDraft,
    items: &HashMap<Uuid, StockedItem>,
) -> Result<PricedOrder, PricingError> {
    let mut errors = Vec::new();
    let mut short = Vec::new();
    let mut total: Option<Money> = None;
    let mut lines = Vec::with_capacity(draft.lines.len());
    for (i, line) in draft.lines.iter().enumerate() {
        let Some(item) = items.get(&line.item_id).filter(|it| it.active) else {
            errors.push(FieldError::new(
                format!("lines[{i}].item_id"),
                "no such item",
            ));
            continue;
        };
        let sum = total
            .clone()
            .unwrap_or_else(|| Money::zero(item.price.currency.clone()));
        match sum.add_line(&item.price, line.quantity) {
            Ok(next) => total = Some(next),
            Err(e) => errors.push(FieldError::new(format!("lines[{i}].item_id"), e)),
        }
        if i64::from(item.stock) < i64::from(line.quantity) {
            short.push(format!("{} (only {} left)", item.name, item.stock));
        }
        lines.push(PricedLine {
            item_id: line.item_id,
            name: item.name.clone(),
            quantity: line.quantity,
            unit_price_cents: item.price.cents,
        });
    }
    if !errors.is_empty() {
        return Err(PricingError::Invalid(errors));
    }
    if !short.is_empty() {
        return Err(PricingError::NotEnoughStock(short));
    }
    // A draft has at least one line, and every line added to the total.
    let total = total.ok_or_else(|| {
        PricingError::Invalid(vec![FieldError::new(
            "lines",
            format!("an order has 1 to {MAX_LINES} lines"),
        )])
    })?;
    Ok(PricedOrder { lines, total })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::domain::Currency;

    fn money(cents: i64, currency: &str) -> Money {
        Money {
            cents,
            currency: Currency::parse(currency).unwrap(),
        }
    }

    fn item(name: &str, cents: i64, currency: &str, stock: i32) -> StockedItem {
        StockedItem {
            name: name.into(),
            price: money(cents, currency),
            stock,
            active: true,
        }
    }

    fn draft(lines: &[(Uuid, u32)]) -> OrderDraft {
        OrderDraft::new(
            lines
                .iter()
                .map(|&(item_id, quantity)| DraftLine { item_id, quantity })
                .collect(),
        )
        .unwrap()
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_draft_has_one_to_max_lines_of_distinct_items_and_sane_quantities() {
        assert_eq!(fields(&OrderDraft::new(vec![]).unwrap_err()), ["lines"]);
        let many = (0..=MAX_LINES)
            .map(|_| DraftLine {
                item_id: Uuid::now_v7(),
                quantity: 1,
            })
            .collect();
        assert_eq!(fields(&OrderDraft::new(many).unwrap_err()), ["lines"]);
        let a = Uuid::now_v7();
        let errors = OrderDraft::new(vec![
            DraftLine {
                item_id: a,
                quantity: 0,
            },
            DraftLine {
                item_id: a,
                quantity: MAX_QUANTITY + 1,
            },
        ])
        .unwrap_err();
        assert_eq!(
            fields(&errors),
            ["lines[0].quantity", "lines[1].quantity", "lines[1].item_id"]
        );
        let ok = draft(&[(a, 1), (Uuid::now_v7(), MAX_QUANTITY)]);
        assert_eq!(ok.lines().len(), 2);
        assert_eq!(ok.item_ids()[0], a);
    }

    #[test]
    fn the_total_is_the_sum_of_catalog_prices_times_quantities() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let items = HashMap::from([
            (a, item("Tee", 1999, "EUR", 5)),
            (b, item("Cap", 1, "EUR", 9)),
        ]);
        let priced = price(&draft(&[(a, 3), (b, 2)]), &items).unwrap();
        assert_eq!(priced.total, money(5999, "EUR"));
        assert_eq!(
            priced.lines,
            [
                PricedLine {
                    item_id: a,
                    name: "Tee".into(),
                    quantity: 3,
                    unit_price_cents: 1999
                },
                PricedLine {
                    item_id: b,
                    name: "Cap".into(),
                    quantity: 2,
                    unit_price_cents: 1
                },
            ]
        );
        // Amounts stay in the items' minor unit, whatever it is.
        let c = Uuid::now_v7();
        let items = HashMap::from([(c, item("Tea", 500, "JPY", 1))]);
        assert_eq!(
            price(&draft(&[(c, 1)]), &items).unwrap().total,
            money(500, "JPY")
        );
    }

    #[test]
    fn an_order_has_one_currency() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let items = HashMap::from([
            (a, item("Tee", 100, "EUR", 5)),
            (b, item("Cap", 100, "USD", 5)),
        ]);
        let Err(PricingError::Invalid(errors)) = price(&draft(&[(a, 1), (b, 1)]), &items) else {
            panic!("mixed currencies accepted");
        };
        assert_eq!(fields(&errors), ["lines[1].item_id"]);
        assert!(errors[0].message.contains("one currency"), "{errors:?}");
    }

    #[test]
    fn unknown_and_inactive_items_are_no_such_item_before_any_stock_shortage() {
        let (a, b, gone) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut inactive = item("Old", 100, "EUR", 5);
        inactive.active = false;
        let items = HashMap::from([(a, item("Tee", 100, "EUR", 0)), (b, inactive)]);
        let Err(PricingError::Invalid(errors)) =
            price(&draft(&[(a, 1), (b, 1), (gone, 1)]), &items)
        else {
            panic!("unknown items accepted");
        };
        assert_eq!(fields(&errors), ["lines[1].item_id", "lines[2].item_id"]);
        assert!(errors.iter().all(|e| e.message == "no such item"));
    }

    #[test]
    fn stock_must_cover_every_line_and_every_short_item_is_named() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let items = HashMap::from([
            (a, item("Tee", 100, "EUR", 2)),
            (b, item("Cap", 100, "EUR", 3)),
            (c, item("Mug", 100, "EUR", 0)),
        ]);
        assert_eq!(
            price(&draft(&[(a, 3), (b, 3), (c, 1)]), &items),
            Err(PricingError::NotEnoughStock(vec![
                "Tee (only 2 left)".into(),
                "Mug (only 0 left)".into()
            ]))
        );
        // Exactly the stock is enough.
        assert!(price(&draft(&[(a, 2), (b, 3)]), &items).is_ok());
    }

    #[test]
    fn a_total_that_overflows_is_refused() {
        let a = Uuid::now_v7();
        let items = HashMap::from([(a, item("Gold", i64::MAX / 2, "EUR", 1000))]);
        assert!(matches!(
            price(&draft(&[(a, 1000)]), &items),
            Err(PricingError::Invalid(_))
        ));
    }
}
