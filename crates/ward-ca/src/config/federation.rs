//! Trust-domain federation (SPIFFE Federation): the `federation:` section of the config.
//!
//! ```yaml
//! federation:
//!   bundle_endpoint: { listen: "0.0.0.0:8445", path: /bundle, profile: https_spiffe }
//!   federates_with:
//!     - trust_domain: b.example
//!       url: https://ward-ca.b.example:8445/bundle
//!       profile: https_spiffe
//!       endpoint_spiffe_id: spiffe://b.example/ward/ca
//!       bundle_file: b.example.json        # the first bundle, obtained out of band
//! ```
//!
//! The bundle endpoint serves this trust domain's SPIFFE bundle (the JWKS document of the
//! SPIFFE Trust Domain and Bundle specification) on a listener of its own, without client
//! authentication: `https_spiffe` with the CA's own SVID (the peer authenticates it with our
//! bundle, which it already holds), or `https_web` with an operator's certificate (behind or
//! instead of an ingress). Each `federates_with` entry names a foreign trust domain whose
//! bundle is fetched from its endpoint; `https_spiffe` endpoints are authenticated with the
//! bundle previously known for that domain (first from `bundle_file`), `https_web` ones with
//! the roots in `ca_file`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use ward_identity::{SpiffeId, TrustDomain};
use ward_yaml::{Location, Spanned, YamlError};

/// How a bundle endpoint is authenticated (SPIFFE Federation, "endpoint profiles").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// TLS with the endpoint's SVID, verified with the domain's own bundle.
    HttpsSpiffe,
    /// TLS with a web PKI certificate.
    HttpsWeb,
}

/// This CA's bundle endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEndpoint {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The path the bundle is served at.
    pub path: String,
    /// `https_web`: the certificate chain and key files; `None` for `https_spiffe`.
    pub web_cert: Option<(PathBuf, PathBuf)>,
}

/// How a foreign endpoint is authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchAuth {
    /// Its SVID must be this ID, verified with the foreign domain's current bundle.
    HttpsSpiffe {
        /// The endpoint's SPIFFE ID.
        endpoint_id: SpiffeId,
    },
    /// Its certificate must chain to these PEM roots.
    HttpsWeb {
        /// The roots.
        ca_file: PathBuf,
    },
}

/// One foreign trust domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Federate {
    /// The foreign trust domain.
    pub trust_domain: TrustDomain,
    /// Its bundle endpoint, `https://host:port/path`.
    pub url: String,
    /// How the endpoint is authenticated.
    pub auth: FetchAuth,
    /// The first bundle (a SPIFFE bundle document), until one has been fetched and stored.
    pub bundle_file: Option<PathBuf>,
}

/// `federation:` validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FederationConfig {
    /// Our bundle endpoint, if served.
    pub bundle_endpoint: Option<BundleEndpoint>,
    /// The foreign trust domains.
    pub federates_with: Vec<Federate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FederationFile {
    bundle_endpoint: Option<Spanned<EndpointFile>>,
    #[serde(default)]
    federates_with: Vec<Spanned<FederateFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointFile {
    listen: String,
    #[serde(default = "default_path")]
    path: String,
    profile: Profile,
    cert_file: Option<String>,
    key_file: Option<String>,
}

fn default_path() -> String {
    "/bundle".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FederateFile {
    trust_domain: String,
    url: String,
    profile: Profile,
    endpoint_spiffe_id: Option<String>,
    ca_file: Option<String>,
    bundle_file: Option<String>,
}

/// Validates `federation:` for a CA of `own`; `at` places a problem at its line.
pub(crate) fn validate(
    raw: Option<&Spanned<FederationFile>>,
    own: &TrustDomain,
    base: &Path,
    at: &dyn Fn(&Location, String) -> YamlError,
) -> Result<FederationConfig, YamlError> {
    let Some(raw) = raw else {
        return Ok(FederationConfig::default());
    };
    let bundle_endpoint = match &raw.value.bundle_endpoint {
        None => None,
        Some(e) => {
            let bad = |m: String| at(&e.referenced, format!("federation.bundle_endpoint: {m}"));
            let v = &e.value;
            let listen = v
                .listen
                .parse()
                .map_err(|_| bad(format!("listen {:?} is not an IP:port address", v.listen)))?;
            if !v.path.starts_with('/') || v.path.contains(['?', '#', ' ']) {
                return Err(bad(format!(
                    "path {:?} must start with / and have no query",
                    v.path
                )));
            }
            let web_cert = match (v.profile, &v.cert_file, &v.key_file) {
                (Profile::HttpsSpiffe, None, None) => None,
                (Profile::HttpsSpiffe, _, _) => {
                    return Err(bad("https_spiffe serves with the CA's own SVID: cert_file and key_file belong to https_web".into()))
                }
                (Profile::HttpsWeb, Some(c), Some(k)) => Some((base.join(c), base.join(k))),
                (Profile::HttpsWeb, _, _) => {
                    return Err(bad("https_web needs cert_file and key_file (the web certificate chain and its key)".into()))
                }
            };
            Some(BundleEndpoint {
                listen,
                path: v.path.clone(),
                web_cert,
            })
        }
    };
    let mut seen = HashSet::new();
    let mut federates_with = Vec::new();
    for f in &raw.value.federates_with {
        let bad = |m: String| at(&f.referenced, format!("federation.federates_with: {m}"));
        let v = &f.value;
        let td = TrustDomain::new(&v.trust_domain)
            .map_err(|e| bad(format!("trust_domain {:?}: {e}", v.trust_domain)))?;
        if &td == own {
            return Err(bad(format!("{td} is this CA's own trust domain")));
        }
        if !seen.insert(td.clone()) {
            return Err(bad(format!("{td} is listed twice")));
        }
        ward_https::parse_https_url(&v.url).map_err(|e| bad(format!("url: {e}")))?;
        let auth = match (v.profile, &v.endpoint_spiffe_id, &v.ca_file) {
            (Profile::HttpsSpiffe, Some(id), None) => {
                let endpoint_id = SpiffeId::parse(id)
                    .map_err(|e| bad(format!("endpoint_spiffe_id {id:?}: {e}")))?;
                if !endpoint_id.is_member_of(&td) {
                    return Err(bad(format!("endpoint_spiffe_id {endpoint_id} is not in {td}, whose bundle authenticates it")));
                }
                FetchAuth::HttpsSpiffe { endpoint_id }
            }
            (Profile::HttpsSpiffe, _, _) => {
                return Err(bad(format!("{td}: https_spiffe needs endpoint_spiffe_id (and no ca_file)")))
            }
            (Profile::HttpsWeb, None, Some(ca)) => FetchAuth::HttpsWeb {
                ca_file: base.join(ca),
            },
            (Profile::HttpsWeb, _, _) => {
                return Err(bad(format!("{td}: https_web needs ca_file (the roots of the endpoint's web certificate) and no endpoint_spiffe_id")))
            }
        };
        federates_with.push(Federate {
            trust_domain: td,
            url: v.url.clone(),
            auth,
            bundle_file: v.bundle_file.as_ref().map(|b| base.join(b)),
        });
    }
    Ok(FederationConfig {
        bundle_endpoint,
        federates_with,
    })
}
