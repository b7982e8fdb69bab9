//! SPIFFE verification of peer certificates, and the rustls verifiers built on it.
//!
//! [`verify_svid`] is the whole rule: the leaf passes the SVID profile, the bundle is chosen
//! by the leaf's own trust domain, and webpki validates the chain to those roots for the
//! usage at hand. [`SpiffeClientVerifier`] (server side: who is calling me?) accepts any valid
//! SVID of a trusted domain, leaving authorization to policy; [`SpiffeServerVerifier`] (client
//! side: did I reach the right service?) also requires the expected SPIFFE ID and ignores DNS
//! names entirely. The verified ID is read back from the session with [`peer_id`].

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use ward_identity::{IdPattern, SpiffeId, SvidLeaf, SvidProfile};

use crate::bundle::{BundleStore, SpkiHash, TrustBundles};
use crate::error::VerifyError;
use crate::provider::crypto_provider;

/// Which side of a TLS connection the peer certificate authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// The peer is a TLS client (id-kp-clientAuth).
    Client,
    /// The peer is a TLS server (id-kp-serverAuth).
    Server,
}

/// Clock skew tolerated between ward's hosts (CA and sidecars): certificates are issued
/// backdated 30 s, and a notBefore up to this much later than our clock is accepted too.
pub const MAX_CLOCK_SKEW_SECS: u64 = 150;

/// Verifies a leaf and its intermediates as an SVID of a trusted domain at time `now`.
pub fn verify_svid(
    bundles: &TrustBundles,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    usage: Usage,
) -> Result<SvidLeaf, VerifyError> {
    verify_svid_path(bundles, end_entity, intermediates, now, usage).map(|(leaf, _)| leaf)
}

/// [`verify_svid`], also returning the key hash of the CA certificate that signed the leaf.
pub fn verify_svid_path(
    bundles: &TrustBundles,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    usage: Usage,
) -> Result<(SvidLeaf, SpkiHash), VerifyError> {
    let leaf = SvidProfile::check(end_entity)?;
    let td = leaf.id.trust_domain_name();
    let anchors = bundles
        .anchors(td)
        .ok_or_else(|| VerifyError::UnknownTrustDomain(td.to_owned()))?;
    let chain_err = |error| VerifyError::Chain {
        id: leaf.id.clone(),
        error,
    };
    let cert = webpki::EndEntityCert::try_from(end_entity).map_err(chain_err)?;
    let eku = match usage {
        Usage::Client => webpki::KeyUsage::client_auth(),
        Usage::Server => webpki::KeyUsage::server_auth(),
    };
    let verify_at = |time: UnixTime| {
        cert.verify_for_usage(
            algorithms().all,
            anchors,
            intermediates,
            time,
            eku,
            None,
            None,
        )
        .map(|path| SpkiHash::of_spki(path.issuer_spki().as_ref()))
    };
    // A certificate that is not valid yet by our clock but is by a clock up to
    // MAX_CLOCK_SKEW_SECS ahead was most likely just issued by a CA whose clock is ahead:
    // accept it, checking every date against that later time (so expiry only gets stricter).
    let issuer = match verify_at(now) {
        Err(webpki::Error::CertNotValidYet { .. }) => verify_at(UnixTime::since_unix_epoch(
            std::time::Duration::from_secs(now.as_secs().saturating_add(MAX_CLOCK_SKEW_SECS)),
        )),
        other => other,
    }
    .map_err(chain_err)?;
    // A chain to a trusted root is not enough when the bundle names the issuers its CA
    // still allows: one retired by a rotation (or signing straight from the root) is refused.
    if !bundles.allows_issuer(td, &issuer) {
        return Err(VerifyError::RetiredIssuer {
            id: leaf.id,
            issuer: issuer.to_hex(),
        });
    }
    if bundles.revocation_for(&leaf).is_some() {
        return Err(VerifyError::Revoked {
            serial: leaf.serial_hex.clone(),
            id: leaf.id,
        });
    }
    Ok((leaf, issuer))
}

/// The SPIFFE ID of the peer of an established session, from its (already verified) leaf.
pub fn peer_id(peer_certificates: Option<&[CertificateDer<'_>]>) -> Option<SpiffeId> {
    let leaf = peer_certificates?.first()?;
    SvidProfile::check(leaf).ok().map(|l| l.id)
}

/// Maps a verification failure to the rustls error (and so the TLS alert) that fits it best.
fn to_rustls(err: VerifyError) -> rustls::Error {
    let cert_err = match &err {
        VerifyError::Chain { error, .. } => match error {
            webpki::Error::CertExpired { .. } => Some(CertificateError::Expired),
            webpki::Error::CertNotValidYet { .. } => Some(CertificateError::NotValidYet),
            webpki::Error::UnknownIssuer => Some(CertificateError::UnknownIssuer),
            webpki::Error::InvalidSignatureForPublicKey => Some(CertificateError::BadSignature),
            _ => None,
        },
        VerifyError::Revoked { .. } => Some(CertificateError::Revoked),
        _ => None,
    };
    tracing::debug!(reason = err.reason(), error = %err, "peer certificate refused");
    rustls::Error::InvalidCertificate(
        cert_err.unwrap_or_else(|| CertificateError::Other(rustls::OtherError(Arc::new(err)))),
    )
}

/// A stable refusal code for a handshake error produced by ward's verifiers.
pub fn refusal_reason(err: &rustls::Error) -> &'static str {
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::UnknownIssuer => "unknown_issuer",
            CertificateError::BadSignature => "bad_signature",
            CertificateError::Revoked => "revoked",
            CertificateError::ApplicationVerificationFailure => "policy_denied",
            CertificateError::Other(other) => other
                .0
                .downcast_ref::<VerifyError>()
                .map_or("invalid_certificate", VerifyError::reason),
            _ => "invalid_certificate",
        },
        rustls::Error::NoCertificatesPresented => "no_client_certificate",
        rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoKxGroupsInCommon) => {
            NO_SHARED_GROUP
        }
        _ => "handshake_failed",
    }
}

/// The refusal reason of a handshake whose peer offered none of the key-exchange groups
/// this end accepts (a listener that requires `X25519MLKEM768`, a client without ML-KEM).
pub const NO_SHARED_GROUP: &str = "no_shared_key_exchange";

/// Why a TLS handshake over a socket failed, as (stable reason code, human detail): the
/// refusal code of a certificate ward's verifiers refused, else the kind of I/O failure
/// (`eof` when the peer hung up mid-handshake, `io_error` otherwise).
pub fn handshake_failure(err: &std::io::Error) -> (&'static str, String) {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => (refusal_reason(tls), describe(tls)),
        None if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            ("eof", "peer closed during the handshake".into())
        }
        None => ("io_error", err.to_string()),
    }
}

/// Human text for a handshake error, reading ward's own verifier errors back out of rustls'
/// wrapper (whose `Display` would show only their `Debug` form).
pub fn describe(err: &rustls::Error) -> String {
    let cert = match err {
        rustls::Error::InvalidCertificate(cert) => cert,
        rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoKxGroupsInCommon) => {
            return "the peer offers none of the key-exchange groups this end accepts".into()
        }
        _ => return err.to_string(),
    };
    let words = match cert {
        CertificateError::Other(other) => match other.0.downcast_ref::<VerifyError>() {
            Some(v) => return format!("invalid peer certificate: {v}"),
            None => return err.to_string(),
        },
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate has expired"
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate is not valid yet"
        }
        CertificateError::UnknownIssuer => "not issued by a root in the trust bundle",
        CertificateError::BadSignature => "signature does not verify",
        CertificateError::Revoked => "certificate has been revoked",
        CertificateError::ApplicationVerificationFailure => "peer is not allowed by policy",
        _ => return err.to_string(),
    };
    format!("invalid peer certificate: {words}")
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    crypto_provider().signature_verification_algorithms
}

fn verify_sig13(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
}

fn verify_sig12(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
}

/// Decides during the handshake whether a client whose SVID verified may proceed. The proxy
/// implements it with its policy per listener, so a denied peer receives a TLS
/// `access_denied` alert and never completes the handshake.
pub trait ClientAuthorizer: Send + Sync + std::fmt::Debug {
    /// `true` lets the handshake continue; `false` refuses it with `access_denied`.
    fn authorize(&self, peer: &SvidLeaf) -> bool;
}

/// Verifies TLS clients: any valid SVID of a trusted domain (mandatory), then the optional
/// authorizer.
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    bundles: BundleStore,
    authorizer: Option<Arc<dyn ClientAuthorizer>>,
    /// False only for servers with endpoints open to anonymous clients (the CA's enroll);
    /// a certificate that is presented is still verified in full.
    mandatory: bool,
}

impl SpiffeClientVerifier {
    /// A verifier that reads the bundles in force at each handshake.
    pub fn new(bundles: BundleStore) -> Self {
        Self {
            bundles,
            authorizer: None,
            mandatory: true,
        }
    }

    /// A verifier that lets clients without a certificate through (the handler then decides),
    /// and verifies in full any certificate that is presented.
    pub fn optional(bundles: BundleStore) -> Self {
        Self {
            bundles,
            authorizer: None,
            mandatory: false,
        }
    }

    /// The same, asking `authorizer` about every client that verified.
    pub fn with_authorizer(bundles: BundleStore, authorizer: Arc<dyn ClientAuthorizer>) -> Self {
        Self {
            bundles,
            authorizer: Some(authorizer),
            mandatory: true,
        }
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: a client sends its one SVID regardless.
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let bundles = self.bundles.current();
        let leaf = verify_svid(&bundles, end_entity, intermediates, now, Usage::Client)
            .map_err(to_rustls)?;
        crate::session::record_peer(&leaf, bundles.anchors_epoch());
        if let Some(authorizer) = &self.authorizer {
            if !authorizer.authorize(&leaf) {
                // rustls turns this into the `access_denied` alert.
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_sig12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_sig13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

/// Verifies TLS servers: a valid SVID whose ID matches one of the expected patterns. The DNS
/// name the client dialled plays no part.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    bundles: BundleStore,
    expected: Vec<IdPattern>,
}

impl SpiffeServerVerifier {
    /// A verifier that accepts a server whose ID matches any of `expected`.
    pub fn new(bundles: BundleStore, expected: Vec<IdPattern>) -> Self {
        Self { bundles, expected }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let bundles = self.bundles.current();
        let leaf = verify_svid(&bundles, end_entity, intermediates, now, Usage::Server)
            .map_err(to_rustls)?;
        if !self.expected.iter().any(|p| p.matches(&leaf.id)) {
            let expected = self
                .expected
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(to_rustls(VerifyError::UnexpectedPeer {
                got: leaf.id,
                expected,
            }));
        }
        crate::session::record_peer(&leaf, bundles.anchors_epoch());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_sig12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_sig13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}
