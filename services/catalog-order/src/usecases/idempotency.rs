//! The `Idempotency-Key` sequence, written once for every use case that honours the header
//! (placing an order, uploading an image): claim the key inside the request's transaction before
//! any effect; a request seen before gets its stored answer again (the transaction committed,
//! nothing done); a first one does its work, and [`Claimed::finish`] stores the answer with the
//! key and commits both with the effect.

use uuid::Uuid;

use crate::store::idempotency::Claim;
use crate::store::{self, Conn, Tx};
use crate::usecases::Error;

/// A request that may carry an `Idempotency-Key`.
#[derive(Debug, Clone, Copy)]
pub struct Keyed<'a> {
    pub user_id: Uuid,
    /// `None`: the request has no key and is simply done.
    pub key: Option<&'a str>,
    /// A digest of what the request asks (its body); the same key with another body is refused.
    pub request_hash: &'a [u8],
}

/// The answer to send: the JSON body stored with the key, and whether it is a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub replayed: bool,
}

/// The outcome of [`Keyed::claim`].
pub enum Claimed<'a> {
    /// Seen before with the same body: send this again (the transaction is committed).
    Replay(Answer),
    /// First use: do the work in [`Claimed::tx`], then [`Claimed::finish`].
    New(Pending<'a>),
}

/// A claimed request whose effects are under way in its transaction.
pub struct Pending<'a> {
    tx: Tx,
    request: Keyed<'a>,
}

impl<'a> Keyed<'a> {
    /// Claim the key inside `tx` (which may already hold the request's locks).
    pub async fn claim(self, mut tx: Tx) -> Result<Claimed<'a>, Error> {
        let Some(key) = self.key else {
            return Ok(Claimed::New(Pending { tx, request: self }));
        };
        match store::idempotency::claim(&mut tx, self.user_id, key, self.request_hash).await? {
            Claim::New => Ok(Claimed::New(Pending { tx, request: self })),
            Claim::Replay { status, body } => {
                store::commit(tx).await?;
                Ok(Claimed::Replay(Answer {
                    status,
                    body,
                    replayed: true,
                }))
            }
            Claim::Mismatch => Err(Error::invalid(
                "Idempotency-Key",
                "was already used with another request body",
            )),
        }
    }
}

impl Pending<'_> {
    /// The request's transaction, for its effects.
    pub fn tx(&mut self) -> &mut Conn {
        &mut self.tx
    }

    /// Store `body` as the key's answer (when there is a key) and commit it with the effects.
    pub async fn finish(mut self, status: u16, body: Vec<u8>) -> Result<Answer, Error> {
        if let Some(key) = self.request.key {
            store::idempotency::complete(&mut self.tx, self.request.user_id, key, status, &body)
                .await?;
        }
        store::commit(self.tx).await?;
        Ok(Answer {
            status,
            body,
            replayed: false,
        })
    }
}
