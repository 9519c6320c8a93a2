//! Raw argon2id verification rate: the ceiling for login throughput on this machine.
//!
//! `argon2-rate MEMORY_KIB ITERATIONS PARALLELISM THREADS SECONDS` verifies one hash in a loop on
//! THREADS threads for SECONDS and prints `verifications_per_second=N`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

fn arg(args: &[String], i: usize, name: &str) -> anyhow::Result<u64> {
    args.get(i)
        .with_context(|| format!("missing {name}"))?
        .parse()
        .with_context(|| format!("{name} must be a number"))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let memory = u32::try_from(arg(&args, 1, "MEMORY_KIB")?)?;
    let iterations = u32::try_from(arg(&args, 2, "ITERATIONS")?)?;
    let parallelism = u32::try_from(arg(&args, 3, "PARALLELISM")?)?;
    let threads = arg(&args, 4, "THREADS")?;
    let seconds = arg(&args, 5, "SECONDS")?;

    let params =
        Params::new(memory, iterations, parallelism, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let password = b"correct horse battery staple";
    let hash = argon
        .hash_password(password)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();

    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (argon, hash, done, stop) =
                (argon.clone(), hash.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if argon.verify_password(password, hash.as_str()).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("verifications_per_second={rate:.1}");
    Ok(())
}
