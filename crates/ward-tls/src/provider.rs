//! The one place the crypto provider, key-exchange groups and protocol versions are chosen.
//!
//! ward composes its provider from two rustls providers, each used where it is the better one
//! on the machines ward was measured on (2 vCPU x86-64; `make bench` and
//! `cargo bench -p ward-e2e --bench handshake`, figures in docs/benchmarks.md):
//!
//! - **Key exchange from aws-lc-rs**: it has the hybrid post-quantum group `X25519MLKEM768`
//!   (ring has no ML-KEM), and its X25519 is about twice as fast as ring's, which pays for
//!   ML-KEM: a full handshake with the hybrid costs what ring's X25519 one did.
//! - **Everything else from ring**: its AES-128-GCM is about 11% faster here, and a
//!   handshake with aws-lc-rs for everything was about 90 µs (15%) slower.
//!
//! The default groups are `X25519MLKEM768`, then `X25519`, then `secp256r1`. A ward client's
//! first ClientHello carries an `X25519MLKEM768` share and, for free, the X25519 share inside
//! it, so a ward server answers without a HelloRetryRequest and a classical-only server can
//! still pick X25519 at once. A server picks the first group in the *client's* list that it
//! allows, so clients without ML-KEM (OpenSSL 3.0's curl and s_client, Python's ssl) get
//! X25519. A listener configured with `[X25519MLKEM768]` only refuses them.
//! TLS 1.3 is the only version ward speaks.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{NamedGroup, SupportedProtocolVersion};

/// A key-exchange group ward can offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KxGroup {
    /// X25519 combined with ML-KEM-768 (IANA 0x11EC): post-quantum hybrid.
    X25519Mlkem768,
    /// X25519 (classical).
    X25519,
    /// NIST P-256 (classical).
    Secp256r1,
}

impl KxGroup {
    /// Every group, in ward's default order of preference.
    pub const ALL: [KxGroup; 3] = [KxGroup::X25519Mlkem768, KxGroup::X25519, KxGroup::Secp256r1];

    /// The group's name as written in config files and shown in logs and metrics (the IANA
    /// registry's description).
    pub fn name(self) -> &'static str {
        match self {
            KxGroup::X25519Mlkem768 => "X25519MLKEM768",
            KxGroup::X25519 => "X25519",
            KxGroup::Secp256r1 => "secp256r1",
        }
    }

    /// The group named `name` (exact, as [`KxGroup::name`] writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == name)
    }

    /// Whether the group protects the traffic keys against a quantum computer.
    pub fn post_quantum(self) -> bool {
        self == KxGroup::X25519Mlkem768
    }

    fn rustls(self) -> &'static dyn SupportedKxGroup {
        use rustls::crypto::aws_lc_rs::kx_group;
        match self {
            KxGroup::X25519Mlkem768 => kx_group::X25519MLKEM768,
            KxGroup::X25519 => kx_group::X25519,
            KxGroup::Secp256r1 => kx_group::SECP256R1,
        }
    }
}

impl fmt::Display for KxGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The groups a listener offers and accepts, most preferred first: never empty, no repeats.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyExchange(Vec<KxGroup>);

impl Default for KeyExchange {
    fn default() -> Self {
        Self(KxGroup::ALL.to_vec())
    }
}

/// What is wrong with a list of key-exchange groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyExchangeError {
    /// No group at all.
    #[error("must name at least one group")]
    Empty,
    /// A group listed twice.
    #[error("names {0} twice")]
    Repeated(KxGroup),
}

impl KeyExchange {
    /// The groups in this order; `Err` says what is wrong with the list.
    pub fn new(groups: Vec<KxGroup>) -> Result<Self, KeyExchangeError> {
        if groups.is_empty() {
            return Err(KeyExchangeError::Empty);
        }
        for (i, g) in groups.iter().enumerate() {
            if groups[..i].contains(g) {
                return Err(KeyExchangeError::Repeated(*g));
            }
        }
        Ok(Self(groups))
    }

    /// The groups, most preferred first.
    pub fn groups(&self) -> &[KxGroup] {
        &self.0
    }

    /// Whether every group is post-quantum (a peer without ML-KEM is refused).
    pub fn post_quantum_only(&self) -> bool {
        self.0.iter().all(|g| g.post_quantum())
    }
}

impl fmt::Display for KeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|g| g.name()).collect();
        write!(f, "[{}]", names.join(", "))
    }
}

/// The name ward logs for a negotiated group (`other` for a group ward does not offer, which
/// cannot be negotiated with ward's own configs).
pub fn group_label(group: NamedGroup) -> &'static str {
    KxGroup::ALL
        .into_iter()
        .find(|g| g.rustls().name() == group)
        .map_or("other", KxGroup::name)
}

/// The crypto provider every ward TLS config uses by default (all groups, hybrid first).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(compose(&KeyExchange::default())))
        .clone()
}

/// The provider with `groups` as its key-exchange groups.
pub fn crypto_provider_with(groups: &KeyExchange) -> Arc<CryptoProvider> {
    if *groups == KeyExchange::default() {
        return crypto_provider();
    }
    Arc::new(compose(groups))
}

fn compose(groups: &KeyExchange) -> CryptoProvider {
    use rustls::crypto::ring::cipher_suite as suite;
    CryptoProvider {
        // AES-128-GCM with SHA-256 first: its key schedule hashes with the CPU's SHA
        // extensions (SHA-384 has none) and its AES has 10 rounds to AES-256's 14. The
        // others stay for clients that ask for them. TLS 1.3 suites only.
        cipher_suites: vec![
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: groups.groups().iter().map(|g| g.rustls()).collect(),
        ..rustls::crypto::ring::default_provider()
    }
}

/// Protocol versions ward offers and accepts: TLS 1.3 only.
pub static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lists_are_checked() {
        for g in KxGroup::ALL {
            assert_eq!(KxGroup::from_name(g.name()), Some(g));
            assert_eq!(group_label(g.rustls().name()), g.name());
        }
        assert_eq!(KxGroup::from_name("x25519"), None);
        assert_eq!(group_label(NamedGroup::secp384r1), "other");
        assert!(KeyExchange::new(vec![]).is_err());
        let twice = KeyExchange::new(vec![KxGroup::X25519, KxGroup::X25519]).unwrap_err();
        assert!(twice.to_string().contains("X25519 twice"), "{twice}");
        assert!(KeyExchange::new(vec![KxGroup::X25519Mlkem768])
            .unwrap()
            .post_quantum_only());
        assert!(!KeyExchange::default().post_quantum_only());
        let names: Vec<NamedGroup> = crypto_provider()
            .kx_groups
            .iter()
            .map(|g| g.name())
            .collect();
        assert_eq!(
            names,
            [
                NamedGroup::X25519MLKEM768,
                NamedGroup::X25519,
                NamedGroup::secp256r1
            ]
        );
    }
}
