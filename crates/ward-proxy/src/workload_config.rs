//! The `workload_api:` section of the proxy config: the socket and who may call, checked
//! whole, and refused unless the identity comes from a CA (the app's SVID is a second
//! certificate asked of the CA for a key made for the app; `identity: files` has no CA to ask,
//! and handing the app the sidecar's own key is what the Workload API promises never to do).

use std::path::Path;

use ward_workload::WorkloadApiConfig;
use ward_yaml::{Spanned, YamlError};

use crate::identity_config::IdentityConfig;

/// Validates the `workload_api:` section (its socket path resolved against `base`).
pub(crate) fn parse(
    raw: &Option<Spanned<WorkloadApiConfig>>,
    identity: &IdentityConfig,
    file: &str,
    base: &Path,
) -> Result<Option<WorkloadApiConfig>, YamlError> {
    let Some(section) = raw else { return Ok(None) };
    let at = |msg: String| {
        let loc = &section.referenced;
        YamlError::at(file, loc.line(), loc.column(), msg)
    };
    let mut config = section.value.clone();
    config.socket = base.join(&config.socket);
    if let Some(problem) = config.problem() {
        return Err(at(problem));
    }
    if !matches!(identity, IdentityConfig::Ca { .. }) {
        return Err(at(
            "workload_api needs `identity: ca`: the app gets a certificate of its \
             own from the CA, never the sidecar's key, and `identity: files` has no CA to ask"
                .into(),
        ));
    }
    Ok(Some(config))
}
