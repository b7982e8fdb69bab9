//! A CA daemon started in-process on port 0 with a test CA, a JWKS file and a fresh state
//! database, plus helpers to create tokens and CSRs and to call the API.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test file uses a subset

pub mod jwt;

use std::path::PathBuf;

use rcgen::{CertificateParams, KeyPair, SanType};
use serde_json::json;
use ward_ca::authority::tokens;
use ward_ca::config::CaConfig;
use ward_ca::server::RunningCa;
use ward_ca::state::sqlite::{self, queries};
use ward_ca::state::unix_now;
use ward_e2e::https::{connector, Conn, Response};
use ward_e2e::jwt::{jwks, JwtSigner};
use ward_e2e::{Material, TestCa};

pub const ISSUER: &str = "https://k8s.test";
pub const AUDIENCE: &str = "ward-ca";
pub const ADMIN: &str = "spiffe://example.org/ward/admin";

/// A running CA with everything needed to talk to it.
pub struct Harness {
    pub ca: TestCa,
    pub dir: tempfile::TempDir,
    pub running: RunningCa,
    pub signer: JwtSigner,
}

impl Harness {
    /// Starts a CA; `extra` is appended to the config (e.g. a `limits:` line).
    pub async fn start(extra: &str) -> Self {
        Self::start_with("jwks_file: jwks.json", extra, tempfile::tempdir().unwrap()).await
    }

    /// Starts a CA whose Kubernetes attestor gets its keys from `jwks` (a YAML fragment),
    /// with `dir` as its working directory.
    pub async fn start_with(jwks_source: &str, extra: &str, dir: tempfile::TempDir) -> Self {
        Self::start_on("state: state.db\n", jwks_source, extra, dir).await
    }

    /// Starts a CA with `state` (a `state:` YAML block) as its state.
    pub async fn start_on(
        state: &str,
        jwks_source: &str,
        extra: &str,
        dir: tempfile::TempDir,
    ) -> Self {
        let ca = TestCa::new("example.org");
        let signer = JwtSigner::es256("k1");
        std::fs::write(dir.path().join("jwks.json"), jwks(&[&signer])).unwrap();
        // With PostgreSQL the replicas keep the CA in the database: the test CA goes there.
        let ca_dir = ca.ca_dir_yaml(state);
        let text = format!(
            "trust_domain: example.org\n{ca_dir}listen: \"127.0.0.1:0\"\n{state}dns_names: [localhost]\n\
             attestors:\n  join_token: {{ enabled: true }}\n  kubernetes: {{ issuer: \"{ISSUER}\", audience: {AUDIENCE}, {jwks_source} }}\n\
             admins: [\"{ADMIN}\"]\n{extra}"
        );
        // Also on disk, for the operator commands (`ward-ca ... --config`).
        std::fs::write(dir.path().join("ca.yaml"), &text).unwrap();
        let config =
            CaConfig::parse("ca.yaml", &text, dir.path()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        ca.store_for(&config).await;
        let running = ward_ca::server::start(config).await.unwrap();
        Self {
            ca,
            dir,
            running,
            signer,
        }
    }

    /// Another replica: a second daemon with the same config (CA, state, limits) on its own
    /// port.
    pub async fn replica(&self) -> RunningCa {
        let text = std::fs::read_to_string(self.dir.path().join("ca.yaml")).unwrap();
        let config = CaConfig::parse("ca.yaml", &text, self.dir.path()).unwrap();
        ward_ca::server::start(config).await.unwrap()
    }

    /// A connection to the daemon at `addr`, optionally presenting a client SVID.
    pub async fn conn_to(&self, addr: std::net::SocketAddr, client: Option<Material>) -> Conn {
        let c = connector(self.ca.bundles(), "spiffe://example.org/ward/ca", client);
        Conn::open(&c, addr).await.unwrap()
    }

    /// Stores a join token through the running daemon's state (any engine).
    pub async fn token_in_state(&self, id: &str, ttl_secs: i64) -> String {
        ward_e2e::token_in_state(&self.running.service.state, id, ttl_secs).await
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// Stores a join token for `id` expiring in `ttl_secs` (negative: already expired).
    pub fn token(&self, id: &str, ttl_secs: i64) -> String {
        let t = tokens::generate().unwrap();
        let conn = sqlite::open(&self.state_path()).unwrap();
        queries::insert_token(&conn, &t.record(id, unix_now(), ttl_secs)).unwrap();
        t.secret
    }

    /// An SVID for `id` made the way operators make admin certificates: `ward-ca issue
    /// --config`, which records it in the daemon's state (the CA acts only on certificates it
    /// has a record of, and no attestor issues an admin ID).
    pub fn recorded(&self, id: &str) -> Material {
        let (key, pem) = csr();
        let csr_path = self.dir.path().join("recorded.csr");
        let out_path = self.dir.path().join("recorded.pem");
        std::fs::write(&csr_path, pem).unwrap();
        let config = self.dir.path().join("ca.yaml");
        let args = [
            "ward-ca",
            "issue",
            "--config",
            config.to_str().unwrap(),
            "--csr",
            csr_path.to_str().unwrap(),
            "--id",
            id,
            "--out",
            out_path.to_str().unwrap(),
        ];
        let cli = <ward_ca::cli::Cli as clap::Parser>::try_parse_from(args).unwrap();
        ward_ca::cli::run(cli, &mut Vec::new(), &mut Vec::new()).unwrap();
        Material {
            chain: ward_tls::pem::load_certs(&out_path).unwrap(),
            key: rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }

    /// A connection, optionally presenting a client SVID.
    pub async fn conn(&self, client: Option<Material>) -> Conn {
        let c = connector(self.ca.bundles(), "spiffe://example.org/ward/ca", client);
        Conn::open(&c, self.running.addr).await.unwrap()
    }

    /// POSTs JSON on a fresh anonymous connection.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Response {
        self.conn(None)
            .await
            .request("POST", path, body.to_string().as_bytes())
            .await
            .unwrap()
    }

    /// Enrolls with `token`, returning the response and the key the CSR was made with.
    pub async fn enroll(&self, token: &str) -> (Response, KeyPair) {
        let (key, pem) = csr();
        (
            self.post("/v1/enroll", &json!({"csr": pem, "token": token}))
                .await,
            key,
        )
    }

    /// A Kubernetes token for `ns`/`sa` signed by the configured key.
    pub fn kube_token(&self, ns: &str, sa: &str) -> String {
        self.signer
            .sign(&ward_e2e::jwt::kube_claims(ISSUER, AUDIENCE, ns, sa, 600))
    }

    /// The value of the metric sample line starting with `prefix`. A missing sample fails
    /// the test: a renamed metric or label must not read as zero.
    pub fn metric(&self, prefix: &str) -> f64 {
        ward_e2e::metrics::must(&self.running.service.metrics.encode(), prefix)
    }

    /// The same for a counter whose label set may not have been counted yet: zero then,
    /// but only when the metric family itself is exported.
    pub fn metric_or_zero(&self, prefix: &str) -> f64 {
        ward_e2e::metrics::sample_or_zero(&self.running.service.metrics.encode(), prefix)
    }
}

/// Runs the `ward-ca` binary in `dir`: exit code and standard error.
pub fn ward(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ward-ca"));
    let (code, _, stderr) = ward_e2e::kit::run_in(bin, dir, args);
    (code, stderr)
}

/// Runs the `ward-ca` binary in `dir`: exit code and standard output followed by standard
/// error (for reports such as `rotate status`, which go to standard output).
pub fn ward_all(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ward-ca"));
    let (code, stdout, stderr) = ward_e2e::kit::run_in(bin, dir, args);
    (code, stdout + &stderr)
}

/// A P-256 key and a PEM CSR that asks for an admin ID, a DNS name and CA:true.
pub fn csr() -> (KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["evil.example.com".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::URI(ADMIN.try_into().unwrap()));
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

/// The material of a successful enroll/renew response, for use as a client certificate.
pub fn material(resp: &Response, key: &KeyPair) -> Material {
    let chain = ward_tls::pem::certs_from_pem(
        "response",
        resp.json()["chain"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    Material {
        chain,
        key: rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

/// Asserts a refusal: the status, the stable code, and the JSON shape.
pub fn refused(resp: &Response, status: u16, code: &str) {
    let body = resp.json();
    assert_eq!(
        (resp.status, body["error"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
