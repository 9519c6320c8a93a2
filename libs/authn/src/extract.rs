//! axum extractors: `CurrentUser` for any signed-in user, `Admin` for admins only.
//!
//! The router's state must give access to the verifier (`Arc<Verifier>: FromRef<State>`).
//! A missing, malformed or refused token is a 401 problem with `WWW-Authenticate: Bearer`; a
//! customer on an admin route is a 403.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use http::header::AUTHORIZATION;
use http::request::Parts;
use platform::ApiError;
use uuid::Uuid;

use crate::claims::Role;
use crate::verifier::{AuthError, MAX_TOKEN_LEN, Verifier};

/// The signed-in user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
    pub email: String,
    /// The token's `email_verified` claim.
    pub email_verified: bool,
}

/// A signed-in admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin(pub CurrentUser);

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::KeysUnavailable => {
                ApiError::Unavailable("token keys are unavailable; try again".into())
            }
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

/// The token of `Authorization: Bearer <token>`, refusing anything else: no header, several,
/// another scheme, extra parts, non-ASCII, or an oversized value.
pub fn bearer_token(headers: &http::HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() || value.len() > MAX_TOKEN_LEN + 16 {
        return Err(AuthError::MalformedHeader);
    }
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    let mut parts = value.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(scheme), Some(token), None)
            if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() =>
        {
            Ok(token)
        }
        _ => Err(AuthError::MalformedHeader),
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        let verifier = Arc::<Verifier>::from_ref(state);
        let token = bearer_token(&parts.headers)?;
        let claims = verifier.verify(token).await?;
        let user = CurrentUser {
            id: claims.sub,
            role: claims.role,
            session_id: claims.sid,
            email: claims.email,
            email_verified: claims.email_verified,
        };
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

impl<S> FromRequestParts<S> for Admin
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ApiError::Forbidden(
                "this action needs the admin role".into(),
            ));
        }
        Ok(Admin(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, http::HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_a_single_well_formed_bearer_header_yields_a_token() {
        assert_eq!(bearer_token(&headers(&["Bearer abc"])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&["bearer abc"])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&[])), Err(AuthError::Missing));
        for bad in [
            "abc",
            "Bearer",
            "Bearer ",
            "Basic dXNlcjpwYXNz",
            "Bearer a b",
            "Bearer  abc",
            "Token abc",
        ] {
            assert_eq!(
                bearer_token(&headers(&[bad])),
                Err(AuthError::MalformedHeader),
                "{bad:?}"
            );
        }
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(AuthError::MalformedHeader)
        );
        let huge = format!("Bearer {}", "a".repeat(20_000));
        assert_eq!(
            bearer_token(&headers(&[&huge])),
            Err(AuthError::MalformedHeader)
        );
    }
}
