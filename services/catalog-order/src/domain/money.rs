use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// An ISO 4217 code: three upper-case letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Currency, String> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(raw.to_owned()))
        } else {
            Err("must be an ISO 4217 code such as EUR or USD".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Currency::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A price in minor units (cents): never negative, never a float, at most 10^12 (ten billion of
/// the major unit) so that line totals cannot overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PriceCents(i64);

pub const MAX_PRICE_CENTS: i64 = 1_000_000_000_000;

impl PriceCents {
    pub fn new(cents: i64) -> Result<PriceCents, String> {
        if (0..=MAX_PRICE_CENTS).contains(&cents) {
            Ok(PriceCents(cents))
        } else {
            Err(format!(
                "must be an integer from 0 to {MAX_PRICE_CENTS} (minor units)"
            ))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for PriceCents {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // An integer only: 9.99 is refused rather than rounded.
        let cents = i64::deserialize(d)?;
        PriceCents::new(cents).map_err(serde::de::Error::custom)
    }
}

/// An amount in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub cents: i64,
    pub currency: Currency,
}

impl Money {
    pub fn zero(currency: Currency) -> Money {
        Money { cents: 0, currency }
    }

    /// `self + unit × quantity`, refusing another currency or an overflow.
    pub fn add_line(&self, unit: &Money, quantity: u32) -> Result<Money, String> {
        if unit.currency != self.currency {
            return Err(format!(
                "mixes {} and {}; an order has one currency",
                self.currency, unit.currency
            ));
        }
        let line = unit
            .cents
            .checked_mul(i64::from(quantity))
            .ok_or("line total overflows")?;
        let cents = self
            .cents
            .checked_add(line)
            .ok_or("order total overflows")?;
        Ok(Money {
            cents,
            currency: self.currency.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(cents: i64) -> Money {
        Money {
            cents,
            currency: Currency::parse("EUR").unwrap(),
        }
    }

    #[test]
    fn totals_are_exact_integer_arithmetic() {
        // 0.1 + 0.2 in floats is 0.30000000000000004; in cents it is 30.
        let total = eur(0)
            .add_line(&eur(10), 1)
            .unwrap()
            .add_line(&eur(20), 1)
            .unwrap();
        assert_eq!(total, eur(30));
        let total = eur(0).add_line(&eur(1999), 3).unwrap();
        assert_eq!(total.cents, 5997);
    }

    #[test]
    fn currencies_do_not_mix_and_overflow_is_refused() {
        let usd = Money {
            cents: 100,
            currency: Currency::parse("USD").unwrap(),
        };
        assert!(eur(0).add_line(&usd, 1).is_err());
        assert!(eur(i64::MAX - 1).add_line(&eur(2), 1).is_err());
        assert!(eur(0).add_line(&eur(i64::MAX / 2), 1000).is_err());
    }

    #[test]
    fn only_iso_codes_and_sane_prices_parse() {
        for bad in ["eur", "EURO", "E1R", "", "€"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
        assert!(PriceCents::new(-1).is_err());
        assert!(PriceCents::new(MAX_PRICE_CENTS + 1).is_err());
        assert!(PriceCents::new(0).is_ok());
        assert!(serde_json::from_str::<PriceCents>("9.99").is_err());
        assert!(serde_json::from_str::<PriceCents>("999").is_ok());
    }
}
