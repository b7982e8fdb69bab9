//! The Workload API side of the sidecar tests: a CA-backed sidecar config with the Workload
//! API for given uids, and a `spiffe` crate client of its socket.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use spiffe::WorkloadApiClient;

use super::ca::Ca;
use super::{Pki, FRONTEND};

/// Short certificates (renewed at about 6 s), JWT-SVIDs, and a 1 s bundle hint.
pub const CA_EXTRA: &str = "ttl: { min: 10s, default: 12s, max: 1h }\njwt_svid: { default_ttl: 5m, max_ttl: 10m }\nbundle_refresh_hint: 1s\n";

pub fn own_uid(dir: &Path) -> u32 {
    std::fs::metadata(dir).unwrap().uid()
}

/// A sidecar config for FRONTEND with the Workload API on `socket` for `uids`.
pub fn config(pki: &Pki, ca: &Ca, socket: &Path, uids: &[u32]) -> ward_proxy::Config {
    let token = pki.file("frontend.token", &ca.token(FRONTEND));
    let policy = pki.file("policy.yaml", "rules: []\n");
    let text = format!(
        "trust_domain: example.org\nidentity:\n  ca: {{ url: \"{}\", bundle: {}, token_file: {} }}\n\
         policy: {}\nadmin: \"127.0.0.1:0\"\nreload_interval: 1s\n\
         workload_api: {{ socket: {}, allowed_uids: {uids:?} }}\n",
        ca.url(),
        ca.bundle().display(),
        token.display(),
        policy.display(),
        socket.display(),
    );
    let path = pki.file("frontend.yaml", &text);
    ward_proxy::Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub async fn client(socket: &Path) -> WorkloadApiClient {
    WorkloadApiClient::connect_to(format!("unix:{}", socket.display()))
        .await
        .unwrap()
}

/// The leaf's serial number, as its DER bytes.
pub fn serial(svid: &spiffe::X509Svid) -> Vec<u8> {
    let leaf = svid.leaf().as_ref();
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).unwrap();
    cert.raw_serial().to_vec()
}

/// A CA (with `CA_EXTRA`) and a sidecar for FRONTEND serving the Workload API to this
/// process's uid on `pki`'s `workload.sock`: (CA, sidecar, socket). Keep `test_ca` and `pki`.
pub async fn ca_and_sidecar(
    test_ca: &ward_e2e::TestCa,
    pki: &Pki,
) -> (Ca, ward_proxy::RunningProxy, std::path::PathBuf) {
    let ca = super::ca::start_ca(test_ca, CA_EXTRA).await;
    let socket = pki.path("workload.sock");
    let proxy = ward_proxy::start(config(pki, &ca, &socket, &[own_uid(&pki.path(""))]))
        .await
        .unwrap();
    (ca, proxy, socket)
}
