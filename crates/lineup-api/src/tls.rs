//! TLS for the API, with rustls and the ring provider named explicitly (ring is the only
//! provider in the tree): the server's [`ApiTls`] from PEM files, the handshake under its
//! timeout, and [`client_config`], which trusts only the CA certificates it is given (the
//! CLI's `--ca-file`, the tests).

use crate::error::ApiError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The only application protocol the API speaks (WebSockets upgrade from HTTP/1.1).
const ALPN_HTTP1: &[u8] = b"http/1.1";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Tls(format!("{what}: {e}"))
}

/// The server's certificate chain and key, ready to accept connections. `Debug` never
/// prints the key; two values are equal when they are the same loaded config.
#[derive(Clone)]
pub struct ApiTls {
    config: Arc<rustls::ServerConfig>,
}

impl ApiTls {
    /// From PEM text: the certificate chain (the server's certificate first, then any
    /// intermediates) and its private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, ApiError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error("the certificate file", e))?;
        if chain.is_empty() {
            return Err(ApiError::Tls("the certificate file holds no certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| tls_error("the key file", e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS versions", e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| tls_error("the certificate and key", e))?;
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(Self { config: Arc::new(config) })
    }

    /// From the PEM files `cert` and `key`; the error names the file that could not be read.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, ApiError> {
        let read = |path: &Path| std::fs::read(path).map_err(|e| tls_error(&format!("read {}", path.display()), e));
        Self::from_pem(&read(cert)?, &read(key)?)
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiTls { .. }")
    }
}

impl PartialEq for ApiTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for ApiTls {}

/// The TLS handshake of an accepted connection, within `timeout_ms`; `None` (and the
/// connection dropped) when it fails or takes longer: a plain-HTTP client, a client that
/// does not trust the certificate, or one that never finishes.
pub(crate) async fn handshake<S>(
    acceptor: &TlsAcceptor,
    stream: S,
    timeout_ms: u64,
    peer: SocketAddr,
) -> Option<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(Duration::from_millis(timeout_ms), acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%error, %peer, "API TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, timeout_ms, "API TLS handshake timed out");
            None
        }
    }
}

/// A client config that trusts exactly the CA certificates in `ca_pem` (no platform roots:
/// a node's API certificate comes from the cluster CA or the operator's own CA).
pub fn client_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, ApiError> {
    let certs = CertificateDer::pem_slice_iter(ca_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error("the CA file", e))?;
    let mut roots = rustls::RootCertStore::empty();
    // Lenient, so a system bundle (/etc/ssl/certs/ca-certificates.crt) can be named too.
    roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(ApiError::Tls("the CA file holds no usable CA certificate".into()));
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("TLS versions", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}
