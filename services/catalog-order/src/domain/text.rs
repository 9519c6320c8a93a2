use serde::{Deserialize, Deserializer, Serialize};

/// A stock-keeping unit: `A-Z 0-9 -`, 2–64 characters, stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Sku, String> {
        let sku = raw.trim().to_ascii_uppercase();
        let ok = (2..=64).contains(&sku.len())
            && sku
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
            && !sku.starts_with('-');
        if ok {
            Ok(Sku(sku))
        } else {
            Err("must be 2–64 characters of A-Z, 0-9 and -, not starting with -".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A URL slug: lower-case words joined by single dashes, at most 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Slug, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 100
            && raw.split('-').all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if ok {
            Ok(Slug(raw.to_owned()))
        } else {
            Err("must be lower-case letters and digits in words joined by single dashes".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: trimmed, 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Name, String> {
        let name = raw.trim();
        let len = name.chars().count();
        if !(1..=200).contains(&len) {
            return Err("must be 1–200 characters".into());
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Name(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! deserialize_via_parse {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                <$t>::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

deserialize_via_parse!(Sku, Slug, Name);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_normalised_and_checked() {
        assert_eq!(Sku::parse(" tee-blk-m ").unwrap().as_str(), "TEE-BLK-M");
        for bad in [
            "",
            "A",
            "-AB",
            "AB CD",
            "AB_CD",
            "ÄB",
            &"A".repeat(65),
            "X'; DROP",
        ] {
            assert!(Sku::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn slugs_are_strict() {
        assert!(Slug::parse("summer-shoes-2026").is_ok());
        for bad in [
            "",
            "Shoes",
            "shoes--red",
            "-shoes",
            "shoes-",
            "sh oes",
            "schuhe-größe",
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Tee ").unwrap().as_str(), "Tee");
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"x".repeat(201)).is_err());
        assert!(Name::parse("a\u{0}b").is_err());
        assert!(Name::parse(&"é".repeat(200)).is_ok());
    }
}
