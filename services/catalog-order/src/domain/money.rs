use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// An ISO 4217 currency code that prices can be given in: a code in the standard's table with a
/// minor unit, because amounts are integers in that minor unit (`price_cents`) and the
/// confirmation e-mail scales them by its exponent (0 for JPY, 2 for EUR, 3 for KWD).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Currency(String);

impl Currency {
    /// A code from a client: refused unless ISO 4217 lists it as current and gives it a minor
    /// unit (so not `XYZ`, nor `HRK`, replaced by EUR, nor gold `XAU` or "no currency" `XXX`).
    pub fn parse(raw: &str) -> Result<Currency, String> {
        let Some(iso) = iso_currency::Currency::from_code(raw) else {
            return Err("must be an ISO 4217 currency code such as EUR or USD".into());
        };
        if let Some(successor) = iso.is_superseded() {
            return Err(format!("{raw} has been replaced by {}", successor.code()));
        }
        if iso.exponent().is_none() {
            return Err(format!(
                "{raw} has no minor unit in ISO 4217; prices are integers in minor units"
            ));
        }
        Ok(Currency(raw.to_owned()))
    }

    /// A code read back from the catalog. Not checked again: items written before codes were
    /// checked against ISO 4217 may hold any three capitals (the table's CHECK), and an order
    /// for them must still work.
    pub fn stored(raw: String) -> Currency {
        Currency(raw)
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

/// A price in minor units (cents for EUR, yen for JPY, fils for KWD): never negative, never a
/// float, at most 10^12 minor units so that line totals cannot overflow.
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
        for bad in ["eur", "EURO", "E1R", "", "€", "XYZ", "ABC", "EUX"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
        // ISO 4217 codes without a minor unit cannot carry a price in minor units.
        for no_minor_unit in ["XAU", "XXX", "XDR"] {
            assert!(Currency::parse(no_minor_unit).is_err(), "{no_minor_unit}");
        }
        assert_eq!(
            Currency::parse("HRK").unwrap_err(),
            "HRK has been replaced by EUR"
        );
        for good in ["EUR", "USD", "JPY", "KWD", "BHD", "CLF"] {
            assert_eq!(Currency::parse(good).unwrap().as_str(), good);
        }
        assert!(serde_json::from_str::<Currency>("\"XYZ\"").is_err());
        assert!(serde_json::from_str::<Currency>("\"KWD\"").is_ok());
        assert!(PriceCents::new(-1).is_err());
        assert!(PriceCents::new(MAX_PRICE_CENTS + 1).is_err());
        assert!(PriceCents::new(0).is_ok());
        assert!(serde_json::from_str::<PriceCents>("9.99").is_err());
        assert!(serde_json::from_str::<PriceCents>("999").is_ok());
    }
}
