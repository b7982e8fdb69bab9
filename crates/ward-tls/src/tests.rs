//! Unit tests of the file and PEM helpers and of refusal-reason mapping. Handshakes between
//! real issued identities are tested end to end in the workspace `tests/` package.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use super::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn write_atomic_sets_mode_replaces_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    files::write_atomic(&path, b"one", files::KEY_MODE).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"one");
    assert_eq!(mode(&path), 0o600);
    files::write_atomic(&path, b"two", files::KEY_MODE).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn write_atomic_failure_leaves_destination_untouched() {
    // The temporary file is created and written, and the last step fails: the destination is
    // a non-empty directory, which no file can be renamed over.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("old"), b"old contents").unwrap();
    let err = files::write_atomic(&path, b"new contents", files::PUBLIC_MODE).unwrap_err();
    assert!(err.to_string().contains("rename into place"), "{err}");
    assert_eq!(std::fs::read(path.join("old")).unwrap(), b"old contents");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("f")],
        "temporary file left behind"
    );
    // A missing directory fails before anything is written.
    let missing = dir.path().join("missing-dir").join("f");
    let err = files::write_atomic(&missing, b"x", files::PUBLIC_MODE).unwrap_err();
    assert!(err.to_string().contains("create temporary file"), "{err}");
}

#[test]
fn key_permissions_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    let key = rcgen::KeyPair::generate().unwrap();
    files::write_atomic(&path, key.serialize_pem().as_bytes(), 0o644).unwrap();
    let err = pem::load_private_key(&path).unwrap_err();
    assert!(
        matches!(err, PemError::KeyPermissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    pem::load_private_key(&path).unwrap();
    // Errors name the file, never the key.
    std::fs::write(&path, "garbage").unwrap();
    let err = pem::load_private_key(&path).unwrap_err().to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
}

#[test]
fn pem_round_trip_and_refusals() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let text = pem::certs_to_pem([cert.der(), cert.der()]);
    assert!(text.lines().all(|l| l.len() <= 64));
    let back = pem::certs_from_pem("t", text.as_bytes()).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(&back[0], cert.der());
    assert!(matches!(
        pem::certs_from_pem("t", b"nothing here"),
        Err(PemError::NoCertificates(_))
    ));
    assert!(TrustBundles::single("td".parse().unwrap(), Vec::new()).is_err());
}

#[test]
fn refusal_reasons_are_stable_codes() {
    let other = |e: VerifyError| {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(e),
        )))
    };
    let profile = other(VerifyError::Profile(ward_identity::ProfileError::CaLeaf));
    assert_eq!(refusal_reason(&profile), "ca_leaf");
    assert_eq!(describe(&profile), "invalid peer certificate: peer certificate is not a valid SVID: leaf certificate is a CA (basicConstraints CA:TRUE)");
    let unknown = other(VerifyError::UnknownTrustDomain("x.org".into()));
    assert_eq!(refusal_reason(&unknown), "unknown_trust_domain");
    let expired = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
    assert_eq!(refusal_reason(&expired), "expired");
    assert_eq!(
        refusal_reason(&rustls::Error::NoCertificatesPresented),
        "no_client_certificate"
    );
}
