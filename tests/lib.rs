//! Helpers for ward's end-to-end tests: a real CA on disk, identities issued by it, forged
//! certificates signed by its real issuer key, and TLS handshakes over loopback sockets.
//!
//! Everything is generated at test time; no key is committed.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failure is a test failure

pub mod foreign;
pub mod hostile;
pub mod https;
pub mod jwt;
pub mod kit;
pub mod kube_api;
pub mod kube_play;
pub mod metrics;
pub mod netns;
pub mod podman;
pub mod postgres;
pub mod processes;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration as StdDuration;

use rcgen::{CertificateParams, KeyPair};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use time::OffsetDateTime;
use ward_ca::keys::dir;
use ward_ca::Issuer;
use ward_identity::{IdPattern, SpiffeId, TrustDomain};
use ward_tls::pem::{load_certs, load_private_key};
use ward_tls::provider::{crypto_provider, PROTOCOL_VERSIONS};
use ward_tls::{BundleStore, CertStore, SpiffeClientVerifier, SpiffeServerVerifier, TrustBundles};

/// A chain (leaf first) and its private key.
#[derive(Debug)]
pub struct Material {
    /// Leaf, then issuer.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

/// Stores a join token for `id`, valid `ttl_secs`, through a CA's state (any engine) and
/// returns the token.
pub async fn token_in_state(state: &ward_ca::state::Store, id: &str, ttl_secs: i64) -> String {
    let t = ward_ca::authority::tokens::generate().unwrap();
    let record = t.record(id, ward_ca::state::unix_now(), ttl_secs);
    state.create_token(record).await.unwrap();
    t.secret
}

/// A CA created with `ward_ca::keys::dir::init` in a temporary directory.
#[derive(Debug)]
pub struct TestCa {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The loaded issuer.
    pub issuer: Issuer,
}

impl TestCa {
    /// A new CA for `td`.
    pub fn new(td: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        dir::init(
            &dir.path().join("ca"),
            &TrustDomain::new(td).unwrap(),
            false,
        )
        .unwrap();
        let issuer = Issuer::load(&dir.path().join("ca")).unwrap();
        Self { dir, issuer }
    }

    /// The CA directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    /// The `ca_dir:` line of a daemon config over this CA whose state is `state` (a `state:`
    /// block): none with PostgreSQL, whose replicas keep the CA in the database instead.
    pub fn ca_dir_yaml(&self, state: &str) -> String {
        if state.contains("postgres:") {
            String::new()
        } else {
            format!("ca_dir: {}\n", self.path().display())
        }
    }

    /// Puts this CA into the database `config` keeps its keys in (nothing when it names a CA
    /// directory); for a later replica on the same database it is there already.
    pub async fn store_for(&self, config: &ward_ca::config::CaConfig) {
        if !matches!(config.keys, ward_ca::config::CaKeys::Database { .. }) {
            return;
        }
        match ward_ca::keys::db::import_dir(config, &self.path()).await {
            Ok(_)
            | Err(ward_ca::keys::KeysError::State(ward_ca::state::StateError::Conflict(_))) => {}
            Err(e) => panic!("{e}"),
        }
    }

    /// A bundle store trusting this CA's root for its trust domain.
    pub fn bundles(&self) -> BundleStore {
        let roots = load_certs(&self.path().join(dir::BUNDLE)).unwrap();
        BundleStore::new(TrustBundles::single(self.issuer.trust_domain().clone(), roots).unwrap())
    }

    /// Issues a real SVID for `id` through the issuer's CSR path.
    pub fn issue(&self, id: &str) -> Material {
        self.issue_with_dns(id, &[])
    }

    /// The same, with DNS SANs (for clients such as curl that check host names).
    pub fn issue_with_dns(&self, id: &str, dns: &[String]) -> Material {
        issue_from(&self.issuer, id, dns)
    }

    /// Signs arbitrary leaf parameters with the real issuer key (for hostile certificates).
    pub fn forge(&self, params: &CertificateParams) -> Material {
        self.steal_issuer().forge(params)
    }

    /// A copy of the issuing certificate and key in the CA directory now, as an attacker who
    /// stole them would hold it (it keeps signing after the CA rotates away from it).
    pub fn steal_issuer(&self) -> StolenIssuer {
        StolenIssuer {
            cert: load_certs(&self.path().join(dir::ISSUER_CERT))
                .unwrap()
                .remove(0),
            key: load_private_key(&self.path().join(dir::ISSUER_KEY)).unwrap(),
        }
    }
}

/// An issuing certificate and its private key, outside the CA's control.
#[derive(Debug)]
pub struct StolenIssuer {
    /// The issuing CA certificate.
    pub cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl StolenIssuer {
    /// Signs `params` (with a fresh leaf key), chained to the stolen issuer.
    pub fn forge(&self, params: &CertificateParams) -> Material {
        let ca_key = KeyPair::try_from(&self.key).unwrap();
        let signer = rcgen::Issuer::from_ca_cert_der(&self.cert, ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &signer).unwrap();
        Material {
            chain: vec![cert.der().clone(), self.cert.clone()],
            key: pkcs8(&key),
        }
    }
}

/// A real SVID for `id` (valid for an hour) from `issuer`, through its CSR path.
pub fn issue_from(issuer: &Issuer, id: &str, dns: &[String]) -> Material {
    let key = KeyPair::generate().unwrap();
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    let issued = issuer
        .issue(
            csr.der(),
            &SpiffeId::parse(id).unwrap(),
            dns,
            StdDuration::from_secs(3600),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    Material {
        chain: issued.chain,
        key: pkcs8(&key),
    }
}

/// Leaf parameters exactly like ward-ca's profile, valid now for an hour; tests break one rule.
pub fn leaf_params(id: &str) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    ward_ca::authority::issuer::leaf_params(
        &SpiffeId::parse(id).unwrap(),
        now - time::Duration::seconds(30),
        now + time::Duration::hours(1),
    )
    .unwrap()
}

fn pkcs8(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// A certificate store for `ca`'s trust domain holding `material` (which must be valid).
pub fn store_with(ca: &TestCa, material: Material) -> CertStore {
    let store = CertStore::new(ca.issuer.trust_domain().clone(), ca.bundles());
    store.publish(material.chain, material.key).unwrap();
    store
}

/// What each side of a loopback handshake saw.
#[derive(Debug)]
pub struct HandshakeOutcome {
    /// The client's ID as seen and verified by the server, or the server's error.
    pub server_saw: Result<SpiffeId, String>,
    /// The server's ID as seen and verified by the client, or the client's error.
    pub client_saw: Result<SpiffeId, String>,
}

/// Runs a handshake between two ward identities, the client expecting a server matching
/// `expected`.
pub fn handshake(server: &CertStore, client: &CertStore, expected: &str) -> HandshakeOutcome {
    let server_config = ward_tls::server_config(
        server,
        None,
        &[],
        ward_tls::Resumption::Off,
        &Default::default(),
    )
    .unwrap();
    let client_config = ward_tls::client_config(
        client,
        vec![IdPattern::parse(expected).unwrap()],
        &[],
        ward_tls::Resumption::Off,
        &Default::default(),
    )
    .unwrap();
    handshake_configs(Arc::new(server_config), Arc::new(client_config))
}

/// Moves everything `from` wants to send into `to` and processes it, through `buf`; panics
/// on a TLS error.
pub fn transfer(from: &mut rustls::Connection, to: &mut rustls::Connection, buf: &mut Vec<u8>) {
    buf.clear();
    while from.wants_write() {
        from.write_tls(buf).unwrap();
    }
    let mut rd = buf.as_slice();
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets().unwrap();
    }
}

/// Runs a handshake between `client` and `server` in memory (no socket) and returns both
/// connections, client first, with the handshake complete; panics on a TLS error. `buf`
/// carries the flights (a caller in a loop reuses it).
pub fn handshake_in_memory(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    buf: &mut Vec<u8>,
) -> (rustls::Connection, rustls::Connection) {
    let name = ServerName::try_from("ward.invalid").unwrap();
    let mut c = rustls::Connection::Client(ClientConnection::new(client, name).unwrap());
    let mut s = rustls::Connection::Server(ServerConnection::new(server).unwrap());
    while c.is_handshaking() || s.is_handshaking() {
        transfer(&mut c, &mut s, buf);
        transfer(&mut s, &mut c, buf);
    }
    (c, s)
}

/// A server config that presents `material` as is (no store validation) and verifies clients
/// with ward's verifier: the server side of hostile-client tests.
pub fn raw_server_config(bundles: BundleStore, material: Material) -> ServerConfig {
    ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .unwrap()
        .with_client_cert_verifier(Arc::new(SpiffeClientVerifier::new(bundles)))
        .with_single_cert(material.chain, material.key)
        .unwrap()
}

/// A client config that presents `material` as is and verifies the server with ward's
/// verifier against `expected`: the client side of hostile-server tests.
pub fn raw_client_config(bundles: BundleStore, material: Material, expected: &str) -> ClientConfig {
    let verifier = SpiffeServerVerifier::new(bundles, vec![IdPattern::parse(expected).unwrap()]);
    ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(material.chain, material.key)
        .unwrap()
}

/// An I/O error from a TLS stream, with ward's verifier message when that is the cause.
pub fn explain(err: std::io::Error) -> String {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => ward_tls::describe(tls),
        None => err.to_string(),
    }
}

/// Runs a TLS handshake over a real 127.0.0.1 socket, then exchanges one message each way so
/// both sides have finished verifying, and reports the peer ID each side saw.
pub fn handshake_configs(
    server_config: Arc<ServerConfig>,
    client_config: Arc<ClientConfig>,
) -> HandshakeOutcome {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server_thread = thread::spawn(move || -> Result<SpiffeId, String> {
        let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(StdDuration::from_secs(10)))
            .unwrap();
        let conn = ServerConnection::new(server_config).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, sock);
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(explain)?;
        tls.write_all(b"pong").map_err(explain)?;
        tls.flush().map_err(explain)?;
        ward_tls::peer_id(tls.conn.peer_certificates()).ok_or_else(|| "no peer id".to_string())
    });
    let client_saw = (|| -> Result<SpiffeId, String> {
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(StdDuration::from_secs(10)))
            .unwrap();
        let name = ServerName::try_from("ward.invalid").unwrap();
        let conn = ClientConnection::new(client_config, name).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, sock);
        tls.write_all(b"ping").map_err(explain)?;
        tls.flush().map_err(explain)?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(explain)?;
        ward_tls::peer_id(tls.conn.peer_certificates()).ok_or_else(|| "no peer id".to_string())
    })();
    let server_saw = server_thread.join().unwrap();
    HandshakeOutcome {
        server_saw,
        client_saw,
    }
}
