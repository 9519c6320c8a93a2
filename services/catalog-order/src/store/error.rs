//! What a store function fails with. The store knows which constraint refused a write and says
//! so in a variant of its own; the use case gives it its meaning (a taken SKU, an unknown
//! parent); `routes::error` turns what is left into HTTP, in one place.

use std::fmt;

#[derive(Debug)]
pub enum StoreError {
    /// A unique constraint refused the write (a SKU or slug already taken).
    Duplicate,
    /// A foreign key refused the write: it names a row that does not exist.
    MissingReference,
    /// A foreign key refused the delete: other rows still refer to this one.
    StillReferenced,
    /// A page cursor that does not fit the query it was given with.
    BadCursor(String),
    /// Anything else the database said, including that it is unreachable.
    Db(sqlx::Error),
}

impl StoreError {
    /// A write's error, with the constraint that refused it named (the store functions whose
    /// callers expect a duplicate or a missing reference use this; elsewhere such an error is
    /// unexpected and stays [`StoreError::Db`]).
    pub(crate) fn of_write(e: sqlx::Error) -> StoreError {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::MissingReference
            }
            _ => StoreError::Db(e),
        }
    }

    /// A delete's error: a foreign-key violation means the row is still in use.
    pub(crate) fn of_delete(e: sqlx::Error) -> StoreError {
        match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::StillReferenced
            }
            _ => StoreError::Db(e),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Duplicate => f.write_str("a unique constraint refused the write"),
            StoreError::MissingReference => f.write_str("the write refers to a missing row"),
            StoreError::StillReferenced => f.write_str("other rows still refer to this one"),
            StoreError::BadCursor(m) => write!(f, "bad cursor: {m}"),
            StoreError::Db(e) => write!(f, "database: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Db(e) => Some(e),
            _ => None,
        }
    }
}
