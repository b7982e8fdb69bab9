//! rustls configurations for ward's two roles, both mutual TLS 1.3 with SPIFFE verification.
//!
//! Session resumption is a choice of the caller ([`Resumption`]). Off, every connection is a
//! full handshake. On, TLS 1.3 resumption goes through ward's own session stores
//! ([`crate::session`]), which hand a session back only while the identities it carries still
//! pass every check a full handshake would make; TLS 1.2 resumption and 0-RTT are never on.

use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};
use ward_identity::IdPattern;

use crate::error::TlsError;
use crate::provider::{crypto_provider, crypto_provider_with, KeyExchange, PROTOCOL_VERSIONS};
use crate::session::{ClientSessions, ServerSessions};
use crate::store::CertStore;
use crate::verify::{ClientAuthorizer, SpiffeClientVerifier, SpiffeServerVerifier};

/// Whether a config resumes TLS 1.3 sessions (see [`crate::session`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resumption {
    /// Every connection is a full handshake.
    Off,
    /// Sessions are resumed while every check still passes; connections must run their
    /// handshakes inside [`crate::session::scope`] for sessions to be recorded.
    On,
}

/// A server config: presents the store's identity and requires a client SVID from a trusted
/// domain, which `authorizer` (if any) must then accept. `alpn` lists protocols to offer, most
/// preferred first; `groups` the key-exchange groups accepted.
pub fn server_config(
    store: &CertStore,
    authorizer: Option<Arc<dyn ClientAuthorizer>>,
    alpn: &[&[u8]],
    resumption: Resumption,
    groups: &KeyExchange,
) -> Result<ServerConfig, TlsError> {
    let verifier = match &authorizer {
        Some(a) => SpiffeClientVerifier::with_authorizer(store.bundles().clone(), a.clone()),
        None => SpiffeClientVerifier::new(store.bundles().clone()),
    };
    let config = ServerConfig::builder_with_provider(crypto_provider_with(groups))
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(store.resolver());
    let mut config = ward_settings(config, alpn);
    if resumption == Resumption::On {
        config.session_storage = Arc::new(ServerSessions::new(store, authorizer));
        // One ticket per connection: each resumed connection replaces the ticket it used.
        config.send_tls13_tickets = 1;
    }
    Ok(config)
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

/// A server config that asks for no client certificate: for endpoints anyone may read (the
/// SPIFFE bundle endpoint), served with the store's identity, TLS 1.3 only.
pub fn server_config_public(store: &CertStore, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
    let config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_no_client_auth()
        .with_cert_resolver(store.resolver());
    Ok(ward_settings(config, alpn))
}

/// The same with a fixed certificate chain and key (an operator's web certificate).
pub fn server_config_web(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, TlsError> {
    let config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(ward_settings(config, alpn))
}

/// A server config with the given client verifier and the store's identity, TLS 1.3 only.
fn server_config_with(
    store: &CertStore,
    verifier: SpiffeClientVerifier,
    alpn: &[&[u8]],
) -> Result<ServerConfig, TlsError> {
    let config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(store.resolver());
    Ok(ward_settings(config, alpn))
}

/// What every ward server config has: no session resumption (until a caller installs ward's
/// session store) and the given ALPN protocols.
fn ward_settings(mut config: ServerConfig, alpn: &[&[u8]]) -> ServerConfig {
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A client config: presents the store's identity and accepts only a server whose SVID
/// matches one of `expected`. The first of `groups` gets a key share in the first
/// ClientHello (with the X25519 share inside a hybrid, when X25519 is also offered).
pub fn client_config(
    store: &CertStore,
    expected: Vec<IdPattern>,
    alpn: &[&[u8]],
    resumption: Resumption,
    groups: &KeyExchange,
) -> Result<ClientConfig, TlsError> {
    let verifier = SpiffeServerVerifier::new(store.bundles().clone(), expected);
    let mut config = ClientConfig::builder_with_provider(crypto_provider_with(groups))
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(store.resolver());
    config.resumption = match resumption {
        Resumption::Off => rustls::client::Resumption::disabled(),
        Resumption::On => rustls::client::Resumption::store(Arc::new(ClientSessions::new(store)))
            .tls12_resumption(rustls::client::Tls12Resumption::Disabled),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
