//! The one place where a use case's error becomes an HTTP answer.

use platform::ApiError;

use crate::store::StoreError;
use crate::usecases::Error;

/// Why a deleted account's request is refused: 401, as for any revoked token (its token may
/// still be accepted for a moment: a request in flight, a verifier that has not heard of the
/// revocation yet). The account no longer exists; nothing is written for it.
const ACCOUNT_DELETED: &str = "the account was deleted";

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Invalid(errors) => ApiError::Validation(errors),
            Error::BadParam { name, message } => ApiError::bad_param(name, message),
            Error::NotFound(detail) => ApiError::NotFound(detail),
            Error::Conflict(detail) => ApiError::Conflict(detail),
            Error::Forbidden(detail) => ApiError::Forbidden(detail),
            Error::AccountDeleted => ApiError::Unauthorized(ACCOUNT_DELETED.into()),
            Error::StorageFull => ApiError::InsufficientStorage(
                "image storage is full; try again once an operator has made room".into(),
            ),
            Error::StorageUnavailable => {
                ApiError::Unavailable("image storage is unavailable; try again".into())
            }
            // The client may try again; the provider's answer is logged, not shown.
            Error::PaymentProvider(e) => {
                tracing::warn!(error = %e, "payment provider call failed");
                ApiError::Unavailable("the payment provider did not answer; try again".into())
            }
            Error::Store(e) => e.into(),
            Error::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            // Unavailable (503), a refused value (400) or internal (500), as platform decides.
            StoreError::Db(e) => e.into(),
            StoreError::BadCursor(message) => ApiError::bad_param("cursor", message),
            // A use case names what these mean where it expects them; anywhere else they are
            // a conflict with what is stored.
            StoreError::Duplicate | StoreError::MissingReference | StoreError::StillReferenced => {
                ApiError::Conflict(e.to_string())
            }
        }
    }
}
