//! The value types settings are made of: the profile, the log format, secrets, durations and
//! comma-separated lists as the environment writes them, and the OTLP export headers.

use std::fmt;

use figment::value::Value;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which set of rules and defaults applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A developer's machine: pretty logs, local defaults, ephemeral keys.
    #[default]
    Dev,
    /// Automated tests: like dev, but quiet and deterministic.
    Test,
    /// Production: no defaults for secrets, insecure values refused.
    Prod,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Test => "test",
            Profile::Prod => "prod",
        }
    }

    pub(super) fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "dev" | "development" => Some(Profile::Dev),
            "test" => Some(Profile::Test),
            "prod" | "production" => Some(Profile::Prod),
            _ => None,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A setting whose value must never reach a log line. `Debug` and `Display` print `[redacted]`.
///
/// Our own type rather than `secrecy::SecretString` because the loader serialises defaults back
/// into figment, which `secrecy` deliberately forbids for `String`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value; call only where it is used (a connection, a key parser).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Environment values are parsed into their most specific type, so a numeric password
        // arrives as a number: accept any scalar and keep its text.
        let value = <Value as Deserialize>::deserialize(d)?;
        match value {
            Value::String(_, s) => Ok(Secret(s)),
            Value::Num(_, n) => Ok(Secret(num_text(n))),
            Value::Bool(_, b) => Ok(Secret(b.to_string())),
            _ => Err(serde::de::Error::custom("expected a string")),
        }
    }
}

/// A number as the text an environment variable would hold.
pub(super) fn num_text(n: figment::value::Num) -> String {
    use figment::value::Num;
    match n {
        Num::U8(v) => v.to_string(),
        Num::U16(v) => v.to_string(),
        Num::U32(v) => v.to_string(),
        Num::U64(v) => v.to_string(),
        Num::U128(v) => v.to_string(),
        Num::USize(v) => v.to_string(),
        Num::I8(v) => v.to_string(),
        Num::I16(v) => v.to_string(),
        Num::I32(v) => v.to_string(),
        Num::I64(v) => v.to_string(),
        Num::I128(v) => v.to_string(),
        Num::ISize(v) => v.to_string(),
        Num::F32(v) => v.to_string(),
        Num::F64(v) => v.to_string(),
    }
}

/// Durations are written as `10s`, `250ms`, `15m`, or a bare number of seconds.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(secs) => Ok(Duration::from_secs(secs)),
            Raw::Text(text) => humantime::parse_duration(text.trim()).map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {text:?} ({e}); write e.g. 10s, 250ms or 15m"
                ))
            }),
        }
    }
}

/// A comma-separated list in the environment (`a,b,c`), or a list in TOML.
pub mod comma_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.join(","))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<String>),
            Text(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::List(items) => items,
            Raw::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS` as the OpenTelemetry specification defines it: `key=value`
/// pairs separated by commas, blanks around keys and values ignored, values percent-decoded
/// (`Authorization=Basic%20abc`). The values are secrets: they are marked sensitive, and an
/// error names the pair by position (and by key once the key is a valid header name), never by
/// value, nor by an invalid key, which may hold a token.
pub fn parse_otlp_headers(raw: &str) -> Result<http::HeaderMap, String> {
    let mut headers = http::HeaderMap::new();
    for (i, pair) in raw.split(',').enumerate() {
        let n = i + 1;
        if pair.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("pair {n} is not key=value"));
        };
        let key = key.trim();
        let name = http::HeaderName::from_bytes(key.as_bytes())
            // Not echoed: an invalid "name" is often a whole header pasted in the wrong format
            // (`Authorization: Bearer <token>=`), the secret included.
            .map_err(|_| format!("pair {n} has an invalid header name"))?;
        let decoded = percent_decode(value.trim())
            .ok_or_else(|| format!("pair {n} ({key}): the value has a bad %-escape"))?;
        let mut value = http::HeaderValue::from_bytes(&decoded)
            .map_err(|_| format!("pair {n} ({key}): the value is not a valid header value"))?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    Ok(headers)
}

/// `%XX` escapes decoded; `None` for a `%` not followed by two hex digits.
fn percent_decode(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_headers_are_parsed_as_the_spec_says() {
        let h = parse_otlp_headers(
            " Authorization = Basic%20dXNlcjpwYXNz%3D ,x-scope-orgid=tenant-1,, api-key=a%2Cb%25c",
        )
        .unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h["authorization"], "Basic dXNlcjpwYXNz=");
        assert_eq!(h["x-scope-orgid"], "tenant-1");
        assert_eq!(h["api-key"], "a,b%c");
        assert!(h["authorization"].is_sensitive());
        assert!(parse_otlp_headers("").unwrap().is_empty());
    }

    #[test]
    fn bad_otlp_headers_are_refused_without_echoing_the_value() {
        for (raw, why) in [
            ("authorization", "not key=value"),
            ("bad key=1", "header name"),
            ("api-key=s3cret%zz", "%-escape"),
            ("api-key=s3cret%2", "%-escape"),
            ("api-key=s3cret%0A", "header value"),
            // `Authorization: Bearer …` instead of `Authorization=Bearer%20…`: the `=` of the
            // token's padding makes everything before it the "key".
            (
                "Authorization: Bearer s3cretdG9rZW4=",
                "pair 1 has an invalid header name",
            ),
            (
                "x-scope-orgid=t1,Authorization: Bearer s3cret=",
                "pair 2 has an invalid header name",
            ),
        ] {
            let err = parse_otlp_headers(raw).unwrap_err();
            assert!(err.contains(why), "{raw}: {err}");
            assert!(!err.contains("s3cret"), "{raw}: {err}");
        }
    }
}
