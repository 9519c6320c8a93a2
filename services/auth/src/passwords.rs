//! Password hashing with argon2id, on the blocking pool, at most one hash per core at a time: a
//! login flood queues here instead of starving the async workers that serve everything else.

use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;
use crate::settings::AuthSettings;

#[derive(Clone)]
pub struct Passwords {
    argon: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified when the email is unknown, so that an unknown
    /// email costs exactly what a wrong password costs.
    dummy_hash: Arc<str>,
}

impl Passwords {
    pub async fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut passwords = Passwords {
            argon: Arc::new(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)),
            permits: Arc::new(Semaphore::new(cores)),
            dummy_hash: Arc::from(""),
        };
        let dummy =
            Password::parse(&uuid::Uuid::new_v4().to_string()).map_err(anyhow::Error::msg)?;
        passwords.dummy_hash = Arc::from(passwords.hash(dummy).await?);
        Ok(passwords)
    }

    /// The PHC string (`$argon2id$v=19$m=…`) of a new salted hash.
    pub async fn hash(&self, password: Password) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            argon
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
        })
        .await
        .context("hashing task")?
    }

    /// Whether `password` matches `hash`; with no hash (unknown email) it does the same work
    /// against the dummy hash and answers false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let argon = self.argon.clone();
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let password = password.to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            argon
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        known && matched
    }
}
