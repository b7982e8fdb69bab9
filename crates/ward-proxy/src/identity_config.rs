//! The `identity:` section of the proxy config: PEM files, or a ward CA (one URL or a list of
//! replicas, the bootstrap bundle, the token, the CA's SPIFFE ID). Exactly one of the two;
//! every problem is reported at its line.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use ward_identity::{IdPattern, TrustDomain};
use ward_yaml::{Location, Spanned, YamlError};

/// Where the workload's identity comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityConfig {
    /// PEM files, re-read when they change.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key (must be mode 0600 or stricter).
        key: PathBuf,
        /// Trust bundle (roots) of the trust domain.
        bundle: PathBuf,
    },
    /// Enroll with and renew from a ward CA.
    Ca {
        /// `https://host:port` of each CA replica, tried in turn (a connect error, a TLS
        /// failure or a 5xx moves to the next).
        urls: Vec<hyper::Uri>,
        /// Bootstrap roots used to authenticate the CA until `/v1/bundle` takes over.
        bundle: PathBuf,
        /// Join token or projected service-account token.
        token_file: PathBuf,
        /// The CA's SPIFFE ID.
        server_id: IdPattern,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityFile {
    files: Option<FilesFile>,
    ca: Option<Spanned<CaFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaFile {
    url: OneOrMany,
    bundle: String,
    token_file: String,
    server_id: Option<String>,
}

/// A URL, or a list of them (`url: https://ca:8443` or `url: [https://ca-0:8443, ...]`).
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an https:// URL or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut all = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    all.push(url);
                }
                Ok(OneOrMany(all))
            }
        }
        d.deserialize_any(Either)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesFile {
    cert: String,
    key: String,
    bundle: String,
}

/// Validates the `identity:` section; relative paths are resolved against `base`.
pub(crate) fn parse(
    raw: &Spanned<IdentityFile>,
    trust_domain: &TrustDomain,
    file: &str,
    base: &Path,
) -> Result<IdentityConfig, YamlError> {
    let at = |loc: &Location, msg: String| YamlError::at(file, loc.line(), loc.column(), msg);
    let resolve = |p: &str| base.join(p);
    let identity = match (&raw.value.files, &raw.value.ca) {
        (Some(f), None) => IdentityConfig::Files {
            cert: resolve(&f.cert),
            key: resolve(&f.key),
            bundle: resolve(&f.bundle),
        },
        (None, Some(c)) => {
            let mut urls = Vec::new();
            for text in &c.value.url.0 {
                let url: hyper::Uri = text.parse().map_err(|_| {
                    at(&c.referenced, format!("identity.ca.url {text:?} is not a URL"))
                })?;
                if url.scheme_str() != Some("https") || url.host().is_none() {
                    return Err(at(&c.referenced, format!("identity.ca.url {text:?} must be https://host:port")));
                }
                urls.push(url);
            }
            if urls.is_empty() {
                return Err(at(&c.referenced, "identity.ca.url: give at least one https:// URL".into()));
            }
            let default_id = format!("spiffe://{}/ward/ca", trust_domain);
            let id_text = c.value.server_id.clone().unwrap_or(default_id);
            let server_id = IdPattern::parse(&id_text)
                .map_err(|e| at(&c.referenced, format!("identity.ca.server_id {id_text:?}: {e}")))?;
            IdentityConfig::Ca {
                urls,
                bundle: resolve(&c.value.bundle),
                token_file: resolve(&c.value.token_file),
                server_id,
            }
        }
        _ => {
            return Err(at(
                &raw.referenced,
                "identity: set exactly one of `files: { cert, key, bundle }` or `ca: { url, bundle, token_file }`".into(),
            ))
        }
    };
    Ok(identity)
}
