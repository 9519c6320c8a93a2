//! Password hashing with argon2id on a few dedicated threads, one per core: a login flood queues
//! here instead of starving the async workers that serve everything else.
//!
//! Dedicated threads rather than `spawn_blocking`: each hash needs ~19 MiB, and the allocator
//! keeps that memory warm per thread. Spread over tokio's many blocking threads it was faulted in
//! afresh on most hashes (measured: 180 % CPU, mostly in the kernel, and 0.63 of raw argon2
//! throughput); on two fixed threads it is reused like in a plain loop.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::oneshot;

use crate::domain::Password;
use crate::settings::AuthSettings;

type Job = Box<dyn FnOnce(&Argon2<'static>) + Send>;

#[derive(Clone)]
pub struct Passwords {
    jobs: mpsc::Sender<Job>,
    /// A hash with the configured parameters, verified when the email is unknown, so that an
    /// unknown email costs exactly what a wrong password costs ([`dummy_hash`]).
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
        let dummy_hash = Arc::from(dummy_hash(&params));
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..cores {
            let (argon, queue) = (argon.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                // Ends when every `Passwords` (and so the sender) is dropped.
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&argon),
                            Err(_) => return,
                        }
                    }
                })
                .context("starting a hashing thread")?;
        }
        Ok(Passwords { jobs, dummy_hash })
    }

    /// Run `work` on a hashing thread and await its result.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(move |argon| {
                let _ = reply.send(work(argon));
            }))
            .map_err(|_| anyhow::anyhow!("the hashing threads have stopped"))?;
        answer.await.context("a hashing thread dropped its job")
    }

    /// The PHC string (`$argon2id$v=19$m=…`) of a new salted hash.
    pub async fn hash(&self, password: Password) -> anyhow::Result<String> {
        self.run(move |argon| {
            argon
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
        })
        .await?
    }

    /// Whether `password` matches `hash`; with no hash (unknown email) it does the same work
    /// against the dummy hash and answers false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let password = password.to_owned();
        let matched = self
            .run(move |argon| {
                argon
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await
            .unwrap_or(false);
        known && matched
    }
}

/// A PHC string with `params`, a random salt and a random output. Verifying a password against it
/// costs what verifying a real hash costs — argon2 recomputes the output from the parameters the
/// string names — without hashing anything at start-up (that took 37 ms and 19 MiB there).
fn dummy_hash(params: &Params) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let salt: [u8; 16] = rand::random();
    let output: [u8; Params::DEFAULT_OUTPUT_LEN] = rand::random();
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        b64.encode(salt),
        b64.encode(output)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHash;

    #[test]
    fn the_dummy_hash_names_the_configured_parameters() {
        let params = Params::new(19_456, 2, 1, None).unwrap_or_else(|e| panic!("{e}"));
        let dummy = dummy_hash(&params);
        let parsed = PasswordHash::new(&dummy).unwrap_or_else(|e| panic!("{dummy}: {e}"));
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let named = Params::try_from(&parsed).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (named.m_cost(), named.t_cost(), named.p_cost()),
            (params.m_cost(), params.t_cost(), params.p_cost())
        );
        assert_eq!(
            parsed.hash.map(|h| h.len()),
            Some(Params::DEFAULT_OUTPUT_LEN)
        );
        assert_ne!(dummy, dummy_hash(&params), "a new salt every time");
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        assert!(argon.verify_password(b"anything", &parsed).is_err());
    }
}
