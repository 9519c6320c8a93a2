use std::fmt;

pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 128;

/// A password of 12–128 characters. Longer input is refused before it reaches the hasher, so a
/// megabyte "password" costs nothing. `Debug` never prints it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Password, String> {
        let chars = raw.chars().count();
        if chars < MIN_LEN {
            return Err(format!("must be at least {MIN_LEN} characters"));
        }
        if chars > MAX_LEN {
            return Err(format!("must be at most {MAX_LEN} characters"));
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters_between_12_and_128() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"a".repeat(11)).is_err());
        assert!(Password::parse(&"a".repeat(12)).is_ok());
        assert!(Password::parse(&"é".repeat(128)).is_ok());
        assert!(Password::parse(&"a".repeat(129)).is_err());
        assert!(Password::parse(&"a".repeat(1_000_000)).is_err());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let p = Password::parse("correct horse battery").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
