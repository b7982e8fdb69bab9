//! The real `ward-ca serve` in its own mount namespace, with its state directory on a file
//! system the test chooses (a small tmpfs, a loop-mounted ext4), for the tests of a state
//! directory that fills up or goes read-only. The namespace runs one shell script:
//!
//! ```text
//! <mount>                        # put a file system on ./state
//! ward-ca serve &                # the daemon, enrolling with Kubernetes tokens
//! <during>                       # runs while the daemon serves
//! wait                           # until the test stops the daemon
//! <after>
//! ward-ca certs list > certs.txt # what the database holds
//! ```
//!
//! Mounts vanish with the namespace, so a failed test leaves nothing mounted.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test file uses a subset

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::KeyPair;
use serde_json::json;
use ward_e2e::https::{connector, Conn, Response};
use ward_e2e::jwt::{jwks, kube_claims, JwtSigner};
use ward_e2e::kit::free_port;
use ward_e2e::Material;

use crate::support::{self, AUDIENCE, ISSUER};

const BIN: &str = env!("CARGO_BIN_EXE_ward-ca");

/// A TLS connection to the daemon, trusting the CA directory's bundle.
async fn open(dir: &Path, port: u16, client: Option<Material>) -> std::io::Result<Conn> {
    let roots = ward_tls::pem::load_certs(&dir.join("ca/bundle.pem")).unwrap();
    let bundles = ward_tls::BundleStore::new(
        ward_tls::TrustBundles::single("example.org".parse().unwrap(), roots).unwrap(),
    );
    let c = connector(bundles, "spiffe://example.org/ward/ca", client);
    Conn::open(&c, ([127, 0, 0, 1], port).into()).await
}

/// The shell lines that run in the namespace around the daemon.
pub struct Script<'a> {
    /// `unshare` options: `-rm` (a user namespace, no privilege needed) or `-m` (needs root).
    pub unshare: &'a str,
    pub mount: &'a str,
    pub during: &'a str,
    pub after: &'a str,
}

/// A running daemon in its namespace, and a keep-alive connection to it.
pub struct MountedCa {
    dir: tempfile::TempDir,
    port: u16,
    ns: Child,
    signer: JwtSigner,
    key: KeyPair,
    csr: String,
    conn: Conn,
}

impl MountedCa {
    pub async fn start(script: Script<'_>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let init = Command::new(BIN)
            .current_dir(dir)
            .args(["init", "--dir", "ca", "--trust-domain", "example.org"])
            .output()
            .unwrap();
        assert!(init.status.success());
        let signer = JwtSigner::es256("k1");
        std::fs::write(dir.join("jwks.json"), jwks(&[&signer])).unwrap();
        let port = free_port();
        std::fs::write(
            dir.join("ca.yaml"),
            format!(
                "trust_domain: example.org\nca_dir: ca\nlisten: \"127.0.0.1:{port}\"\nstate: state/state.db\n\
                 attestors:\n  kubernetes: {{ issuer: \"{ISSUER}\", audience: {AUDIENCE}, jwks_file: jwks.json }}\n\
                 limits: {{ enroll_per_ip_per_sec: 100000 }}\n"
            ),
        )
        .unwrap();
        std::fs::create_dir(dir.join("state")).unwrap();
        let text = format!(
            "set -e\n{}\n\"$BIN\" serve --config ca.yaml 2> ca.log &\nserve=$!\necho $serve > serve.pid\n\
             {}\nwait $serve || true\n{}\n\"$BIN\" certs list --config ca.yaml > certs.txt 2> certs.err\n",
            script.mount, script.during, script.after
        );
        let mut ns = Command::new("unshare")
            .args([script.unshare, "sh", "-c", &text])
            .current_dir(dir)
            .env("BIN", BIN)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("unshare (util-linux) must be installed");

        let deadline = Instant::now() + Duration::from_secs(20);
        let conn = loop {
            if let Ok(conn) = open(dir, port, None).await {
                break conn;
            }
            assert!(
                ns.try_wait().unwrap().is_none(),
                "the CA did not start: {}",
                std::fs::read_to_string(dir.join("ca.log")).unwrap_or_default()
            );
            assert!(Instant::now() < deadline, "the CA did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (key, csr) = support::csr();
        Self {
            dir: tmp,
            port,
            ns,
            signer,
            key,
            csr,
            conn,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The text of a file in the CA's directory ("" if it is missing).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }

    /// Enrolls the service account `sa<i>` on the keep-alive connection.
    pub async fn enroll(&mut self, i: usize) -> Response {
        let sa = format!("sa{i}");
        let token = self
            .signer
            .sign(&kube_claims(ISSUER, AUDIENCE, "ns", &sa, 600));
        let body = json!({ "csr": self.csr, "token": token }).to_string();
        self.conn
            .request("POST", "/v1/enroll", body.as_bytes())
            .await
            .unwrap()
    }

    /// Renews the certificate of a successful enroll response, presenting it on a fresh
    /// connection.
    pub async fn renew(&self, enrolled: &Response) -> Response {
        let client = support::material(enrolled, &self.key);
        let mut conn = open(self.path(), self.port, Some(client)).await.unwrap();
        let body = json!({ "csr": self.csr }).to_string();
        conn.request("POST", "/v1/renew", body.as_bytes())
            .await
            .unwrap()
    }

    fn signal(&self, signal: &str) -> bool {
        let pid = self.read("serve.pid");
        Command::new("kill")
            .args([signal, pid.trim()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// SIGTERMs the daemon, lets the script finish, and returns what `certs list` printed.
    pub fn stop(&mut self) -> String {
        assert!(self.signal("-TERM"), "the daemon is not running");
        let status = self.ns.wait().unwrap();
        assert!(
            status.success(),
            "the namespace script failed: {}",
            self.read("certs.err")
        );
        self.read("certs.txt")
    }
}

/// A test that fails half-way must not leave the daemon serving: it holds the test's output
/// pipes, and `cargo test` would wait for it forever.
impl Drop for MountedCa {
    fn drop(&mut self) {
        if self.ns.try_wait().is_ok_and(|s| s.is_none()) {
            // The script runs in its own process group: end all of it.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.ns.id())])
                .status();
            let _ = self.ns.wait();
        }
    }
}
