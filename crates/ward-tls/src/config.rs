//! rustls configurations for ward's two roles, both mutual TLS 1.3 with SPIFFE verification.
//!
//! Session resumption is off on both sides. A TLS 1.3 resumed session carries the client
//! identity of the handshake that created it, so a workload that renewed its certificate would
//! go on being authenticated as its old certificate (until that expires, and then be refused on
//! every reconnect), and neither chain verification, revocation nor the handshake-time policy
//! check would run. Every connection is therefore a full handshake.

use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};
use ward_identity::IdPattern;

use crate::error::TlsError;
use crate::provider::{crypto_provider, PROTOCOL_VERSIONS};
use crate::store::CertStore;
use crate::verify::{ClientAuthorizer, SpiffeClientVerifier, SpiffeServerVerifier};

/// A server config: presents the store's identity and requires a client SVID from a trusted
/// domain, which `authorizer` (if any) must then accept. `alpn` lists protocols to offer, most
/// preferred first.
pub fn server_config(
    store: &CertStore,
    authorizer: Option<Arc<dyn ClientAuthorizer>>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, TlsError> {
    let verifier = match authorizer {
        Some(a) => SpiffeClientVerifier::with_authorizer(store.bundles().clone(), a),
        None => SpiffeClientVerifier::new(store.bundles().clone()),
    };
    server_config_with(store, verifier, alpn)
}

/// A server config for endpoints where some clients have no certificate yet (enrollment):
/// client certificates are requested, verified in full when presented, but not required.
pub fn server_config_optional_client_auth(
    store: &CertStore,
    alpn: &[&[u8]],
) -> Result<ServerConfig, TlsError> {
    server_config_with(
        store,
        SpiffeClientVerifier::optional(store.bundles().clone()),
        alpn,
    )
}

/// The one way ward builds a server config: TLS 1.3, the given client verifier, the store's
/// identity, no session resumption.
fn server_config_with(
    store: &CertStore,
    verifier: SpiffeClientVerifier,
    alpn: &[&[u8]],
) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(store.resolver());
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A client config: presents the store's identity and accepts only a server whose SVID
/// matches one of `expected`.
pub fn client_config(
    store: &CertStore,
    expected: Vec<IdPattern>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, TlsError> {
    let verifier = SpiffeServerVerifier::new(store.bundles().clone(), expected);
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(store.resolver());
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
