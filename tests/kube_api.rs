//! A stand-in for the one thing ward-ca asks of the Kubernetes API server: its service-account
//! signing keys, `GET /openid/v1/jwks` over HTTPS with the CA's own bearer token, from a
//! server whose certificate names `kubernetes.default.svc` under a CA the pod gets as
//! `ca.crt`. The test signs projected-token look-alikes with the matching key
//! ([`crate::jwt::JwtSigner`]), so the CA's real attestor path runs.
//!
//! It listens on the test network's gateway address, which exists only once the first pod
//! joins the network: the socket is bound with `IP_FREEBIND` so it can wait there first.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The host names the API server's certificate carries.
pub const API_HOSTS: [&str; 3] = [
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "kubernetes.default",
];

/// The running stand-in.
#[derive(Debug)]
pub struct ApiServer {
    /// The CA certificate (PEM) that signed its certificate: the pods' `ca.crt`.
    pub ca_pem: String,
    /// Requests answered 200 (a JWKS served to the right bearer).
    pub served: Arc<AtomicUsize>,
    /// Requests refused (no or wrong bearer token, another path).
    pub refused: Arc<AtomicUsize>,
}

impl ApiServer {
    /// Serves `jwks` at `bind` to requests carrying `Authorization: Bearer <token>` with one
    /// of the `bearers` (the tokens the test issued for the API server's audience).
    pub async fn start(
        bind: SocketAddr,
        dir: &Path,
        jwks: String,
        bearers: Arc<Mutex<BTreeSet<String>>>,
    ) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, &ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(API_HOSTS.map(String::from).to_vec())
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let (cert_file, key_file) = (dir.join("api.pem"), dir.join("api.key"));
        ward_tls::files::write_atomic(&cert_file, leaf.pem().as_bytes(), 0o644).unwrap();
        ward_tls::files::write_atomic(
            &key_file,
            leaf_key.serialize_pem().as_bytes(),
            ward_tls::files::KEY_MODE,
        )
        .unwrap();
        let chain = ward_tls::pem::load_certs(&cert_file).unwrap();
        let key = ward_tls::pem::load_private_key(&key_file).unwrap();
        let tls = ward_tls::server_config_web(chain, key, &[b"http/1.1"]).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        socket.set_freebind_v4(true).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.bind(&bind.into()).unwrap();
        socket.listen(64).unwrap();
        socket.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(socket.into()).unwrap();

        let (served, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (ok, no) = (served.clone(), refused.clone());
        crate::https::answer(listener, acceptor, move |head| {
            let authorized = head.lines().any(|l| {
                l.split_once(':').is_some_and(|(name, value)| {
                    name.eq_ignore_ascii_case("authorization")
                        && value
                            .trim()
                            .strip_prefix("Bearer ")
                            .is_some_and(|t| bearers.lock().unwrap().contains(t.trim()))
                })
            });
            if !head.starts_with("GET /openid/v1/jwks ") {
                no.fetch_add(1, Ordering::SeqCst);
                ("404 Not Found", String::from("{}"))
            } else if !authorized {
                no.fetch_add(1, Ordering::SeqCst);
                ("401 Unauthorized", String::from("{}"))
            } else {
                ok.fetch_add(1, Ordering::SeqCst);
                ("200 OK", jwks.clone())
            }
        });
        Self {
            ca_pem: ca.pem(),
            served,
            refused,
        }
    }
}
