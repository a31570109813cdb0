//! The QUIC transport's TLS and connection settings: mutual TLS 1.3 against the cluster CA
//! with ring as the only crypto provider, ALPN `lineup/1`, and the stream, keep-alive,
//! idle and initial-RTT limits of every peer connection (constants in `quic.rs`).

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use super::quic::{ALPN_PROTOCOL, PEER_IDLE_TIMEOUT_MS, PEER_INITIAL_RTT_MS, PEER_KEEP_ALIVE_MS, PEER_STREAMS_MAX};
use crate::certs::SiteIdentity;
use crate::ClusterError;

/// Installs ring as the process-wide rustls crypto provider. Our own configs name ring
/// explicitly, so this only matters for other rustls users in the process; call it at every
/// entry point (binary main, tests) anyway, as the project's rule says. Idempotent.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn tls_err(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Tls(e.to_string())
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    config.max_concurrent_bidi_streams(PEER_STREAMS_MAX.into());
    config.max_concurrent_uni_streams(0u32.into());
    config.keep_alive_interval(Some(Duration::from_millis(PEER_KEEP_ALIVE_MS)));
    let idle = quinn::IdleTimeout::try_from(Duration::from_millis(PEER_IDLE_TIMEOUT_MS))
        .expect("the idle timeout constant fits QUIC's varint");
    config.max_idle_timeout(Some(idle));
    config.initial_rtt(Duration::from_millis(PEER_INITIAL_RTT_MS));
    Arc::new(config)
}

pub(super) fn server_config(identity: &SiteIdentity) -> Result<quinn::ServerConfig, ClusterError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(identity.ca_roots.clone(), provider.clone())
            .build()
            .map_err(tls_err)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.cert_chain.clone(), identity.key.clone_key())
        .map_err(tls_err)?;
    tls.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).map_err(tls_err)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport_config());
    Ok(config)
}

pub(super) fn client_config(identity: &SiteIdentity) -> Result<quinn::ClientConfig, ClusterError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_root_certificates(identity.ca_roots.clone())
        .with_client_auth_cert(identity.cert_chain.clone(), identity.key.clone_key())
        .map_err(tls_err)?;
    tls.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(tls_err)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport_config());
    Ok(config)
}
