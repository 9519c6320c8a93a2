//! The claims of an access token.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a user may do. Admin-only routes refuse customers with 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(Role::Customer),
            "admin" => Ok(Role::Admin),
            other => Err(format!("{other:?} is not a role (customer, admin)")),
        }
    }
}

/// Access-token claims. `sid` is the session the token belongs to: revoking the session revokes
/// every access token issued for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The account's e-mail address, so services can write to the user (order confirmations)
    /// without asking auth. Empty in tokens from before it was added.
    #[serde(default)]
    pub email: String,
    pub role: Role,
    /// Whether the account had proven its address (the verification link) when the token was
    /// issued; a verification shows in the tokens of the next refresh. Services may refuse
    /// unverified accounts without asking auth. False in tokens from before it was added.
    #[serde(default)]
    pub email_verified: bool,
    pub sid: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}
