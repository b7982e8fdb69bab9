//! The injector's own settings (`--config inject.yaml`): what every injected pod shares, the
//! trust domain, the CA, the images and the mesh's address ranges. Strict YAML: an unknown key
//! or a bad value is refused with file, line and column.

use std::path::Path;

use serde::Deserialize;
use ward_yaml::YamlError;

/// Validated injector settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectConfig {
    /// The trust domain of the sidecars.
    pub trust_domain: String,
    /// ward-ca's URL, as a pod reaches it (`https://ward-ca.ward-system.svc:8443`).
    pub ca_url: String,
    /// The ward-proxy image.
    pub proxy_image: String,
    /// The ward-intercept image.
    pub intercept_image: String,
    /// The pod and Service ranges whose destinations go through the sidecar.
    pub mesh_cidrs: Vec<String>,
    /// The sidecar's uid (must differ from the app's: the rules exempt it by uid).
    pub proxy_uid: u32,
    /// The ConfigMap in each namespace with the CA's `bundle.pem`.
    pub bundle_config_map: String,
    /// The audience of the projected service-account token the sidecar enrolls with.
    pub token_audience: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    trust_domain: String,
    ca_url: String,
    images: Images,
    mesh_cidrs: Vec<String>,
    #[serde(default = "default_uid")]
    proxy_uid: u32,
    #[serde(default = "default_bundle")]
    bundle_config_map: String,
    #[serde(default = "default_audience")]
    token_audience: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Images {
    proxy: String,
    intercept: String,
}

fn default_uid() -> u32 {
    65533
}

fn default_bundle() -> String {
    "ward-bundle".into()
}

fn default_audience() -> String {
    "ward-ca".into()
}

impl InjectConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, YamlError> {
        let text = ward_yaml::read_file(path)?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Checks `text` (from `file`).
    pub fn parse(file: &str, text: &str) -> Result<Self, YamlError> {
        let raw: File = ward_yaml::from_str(file, text)?;
        let bad = |msg: String| YamlError::whole_file(file, msg);
        if !raw.ca_url.starts_with("https://") {
            return Err(bad(format!(
                "ca_url {:?} must be https://host:port",
                raw.ca_url
            )));
        }
        if raw.mesh_cidrs.is_empty() {
            return Err(bad(
                "mesh_cidrs: name the pod and Service ranges (without them nothing is intercepted)"
                    .into(),
            ));
        }
        for cidr in &raw.mesh_cidrs {
            crate::annotations::cidr(cidr).map_err(|e| bad(format!("mesh_cidrs: {e}")))?;
        }
        if raw.proxy_uid == 0 {
            return Err(bad("proxy_uid must not be 0".into()));
        }
        Ok(Self {
            trust_domain: raw.trust_domain,
            ca_url: raw.ca_url,
            proxy_image: raw.images.proxy,
            intercept_image: raw.images.intercept,
            mesh_cidrs: raw.mesh_cidrs,
            proxy_uid: raw.proxy_uid,
            bundle_config_map: raw.bundle_config_map,
            token_audience: raw.token_audience,
        })
    }
}
