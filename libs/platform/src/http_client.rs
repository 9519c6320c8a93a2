//! Outgoing HTTP(S) clients: one TLS set-up for every client a service builds (the OTLP trace
//! exporter, the JWKS fetch).
//!
//! - TLS is rustls on the *ring* provider (no OpenSSL, no aws-lc). reqwest is built with
//!   `rustls-no-provider`, so a client needs the process's crypto provider installed first: every
//!   builder here does that ([`install_crypto_provider`]); code that builds a bare
//!   `reqwest::Client` must call it too (tests use `testkit::http_client`).
//! - Trusted roots ([`Trust`]): the system's CA bundle — in the images
//!   `/etc/ssl/certs/ca-certificates.crt`, found wherever OpenSSL would look on the host — **plus**
//!   the certificates of the PEM file named by `SSL_CERT_FILE`, so an operator can add a private
//!   CA by mounting just that CA. (OpenSSL replaces its bundle with `SSL_CERT_FILE`; here it adds to
//!   it, so public endpoints keep working.) A named file that cannot be read or holds no
//!   certificate is an error when the client is built, not a silent fallback.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The environment variable naming an extra PEM bundle of trusted CAs.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{SSL_CERT_FILE}={path:?}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("no trusted CA certificates: the system has no CA bundle and {SSL_CERT_FILE} is unset")]
    NoRoots,
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// Make rustls on ring the process's crypto provider (what reqwest's `rustls-no-provider` asks
/// for). Idempotent; a provider installed earlier is kept.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing one is fine: a provider is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The CAs outgoing HTTPS trusts: the system bundle plus an optional extra PEM file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// Extra CAs (PEM, one or more certificates), added to the system bundle.
    pub extra_ca_file: Option<PathBuf>,
}

impl Trust {
    /// What the process's environment says: `SSL_CERT_FILE`, read once per process.
    pub fn from_env() -> Trust {
        static FROM_ENV: OnceLock<Trust> = OnceLock::new();
        FROM_ENV
            .get_or_init(|| Trust {
                extra_ca_file: std::env::var_os(SSL_CERT_FILE)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from),
            })
            .clone()
    }

    /// The system bundle and these extra CAs (tests pass the CA of their own HTTPS endpoint).
    pub fn with_extra_ca_file(path: impl Into<PathBuf>) -> Trust {
        Trust {
            extra_ca_file: Some(path.into()),
        }
    }

    /// The root certificates: system bundle first, then the extra file's.
    pub fn roots(&self) -> Result<Vec<CertificateDer<'static>>, ClientError> {
        let mut roots = system_roots().to_vec();
        if let Some(path) = &self.extra_ca_file {
            roots.extend(read_ca_file(path)?);
        }
        if roots.is_empty() {
            return Err(ClientError::NoRoots);
        }
        Ok(roots)
    }
}

/// The certificates of a PEM file; an error when it cannot be read or holds none.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let error = |reason: String| ClientError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(format!("cannot read it: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(format!("not a PEM certificate bundle: {e}")))?;
    if certs.is_empty() {
        return Err(error("holds no PEM certificate".into()));
    }
    // Refuse what rustls could not use as a root, naming the file, rather than fail later.
    let mut store = rustls::RootCertStore::empty();
    for cert in &certs {
        store
            .add(cert.clone())
            .map_err(|e| error(format!("holds a certificate rustls cannot use: {e}")))?;
    }
    Ok(certs)
}

/// The system's CA bundle, read once: the certificate directories OpenSSL would search on this
/// OS (`/etc/ssl/certs` on Debian and in the images). Deliberately not `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`, which would replace it; [`Trust`] adds `SSL_CERT_FILE` on top. Certificates
/// rustls cannot parse are skipped, as every TLS stack does with a system bundle.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = Vec::new();
        for dir in openssl_probe::candidate_cert_dirs() {
            let found = rustls_native_certs::load_certs_from_paths(None, Some(dir));
            roots.extend(found.certs);
        }
        roots.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        roots.dedup();
        let mut store = rustls::RootCertStore::empty();
        roots.retain(|cert| store.add(cert.clone()).is_ok());
        roots
    })
}

fn certificates(trust: &Trust) -> Result<Vec<reqwest::Certificate>, ClientError> {
    trust
        .roots()?
        .iter()
        .map(|der| {
            reqwest::Certificate::from_der(der.as_ref())
                .map_err(|e| ClientError::Build(e.to_string()))
        })
        .collect()
}

/// Default time limit of a request made by these clients (connect, send, read the answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// An async client builder with the process's trust ([`Trust::from_env`]).
pub fn builder() -> Result<reqwest::ClientBuilder, ClientError> {
    builder_with(&Trust::from_env())
}

/// An async client builder trusting exactly `trust`'s roots, HTTPS only through rustls on ring,
/// [`DEFAULT_TIMEOUT`]. Callers add what is theirs (a shorter timeout, default headers).
pub fn builder_with(trust: &Trust) -> Result<reqwest::ClientBuilder, ClientError> {
    install_crypto_provider();
    Ok(reqwest::Client::builder()
        .tls_certs_only(certificates(trust)?)
        .timeout(DEFAULT_TIMEOUT))
}

/// The blocking twin of [`builder_with`] (the OTLP exporter sends from its own thread). Build
/// and drop the client outside any async runtime, as reqwest requires.
pub fn blocking_builder_with(
    trust: &Trust,
) -> Result<reqwest::blocking::ClientBuilder, ClientError> {
    install_crypto_provider();
    Ok(reqwest::blocking::Client::builder()
        .tls_certs_only(certificates(trust)?)
        .timeout(DEFAULT_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_or_empty_ca_file_is_an_error_naming_it() {
        let missing = Trust::with_extra_ca_file("/nonexistent/ca.pem");
        let err = missing.roots().unwrap_err().to_string();
        assert!(
            err.contains("SSL_CERT_FILE") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );

        let empty = std::env::temp_dir().join(format!("sf-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = Trust::with_extra_ca_file(&empty).roots().unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        std::fs::remove_file(empty).unwrap();
    }

    #[test]
    fn clients_build_with_the_system_bundle_alone() {
        builder_with(&Trust::default()).unwrap().build().unwrap();
    }
}
