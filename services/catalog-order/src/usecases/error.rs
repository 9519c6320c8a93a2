use platform::FieldError;

use crate::store::StoreError;

/// Why a use case refused or failed. `routes::error` maps each to its HTTP answer.
#[derive(Debug)]
pub enum Error {
    /// The request breaks a rule; the fields at fault.
    Invalid(Vec<FieldError>),
    /// A query parameter that cannot be used (a cursor of another query).
    BadParam {
        name: &'static str,
        message: String,
    },
    NotFound(String),
    /// The request conflicts with the current state (stock, status, a taken SKU).
    Conflict(String),
    Forbidden(String),
    /// The customer's account was deleted (anonymised) while their token was still accepted.
    AccountDeleted,
    /// The image store is at its size limit.
    StorageFull,
    /// The image store did not answer.
    StorageUnavailable,
    /// The payment provider did not open the payment.
    PaymentProvider(crate::payments::ProviderError),
    Store(StoreError),
    Internal(anyhow::Error),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Error {
        Error::Internal(cause.into())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadCursor(message) => Error::BadParam {
                name: "cursor",
                message,
            },
            other => Error::Store(other),
        }
    }
}
