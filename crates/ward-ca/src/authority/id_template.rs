//! A Kubernetes identity as a SPIFFE ID: an operator's `id_template` rendered with the
//! namespace and service account a verified token names, each checked to be a DNS label first
//! so no claim can add a segment or a character the template did not plan.

use ward_identity::{SpiffeId, TrustDomain};

/// Whether `s` is an RFC 1123 DNS label: 1-63 of `a-z 0-9 -`, starting and ending with a
/// letter or digit (what Kubernetes namespace names are).
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Why a Kubernetes identity could not become a SPIFFE ID.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdTemplateError {
    /// A claim is not a DNS label.
    #[error("{what} {value:?} is not a DNS label (1-63 of a-z 0-9 -)")]
    NotDnsLabel {
        /// `namespace` or `service account`.
        what: &'static str,
        /// The claim.
        value: String,
    },
    /// The rendered text is not a SPIFFE ID.
    #[error("{text:?} is not a valid SPIFFE ID: {source}")]
    InvalidId {
        /// What the template rendered.
        text: String,
        /// Which rule it breaks.
        source: ward_identity::IdError,
    },
    /// The ID is outside the trust domain, or has no path.
    #[error("{id} must be a workload ID in trust domain {td}")]
    NotWorkload {
        /// The rendered ID.
        id: SpiffeId,
        /// The CA's trust domain.
        td: TrustDomain,
    },
}

/// Renders an ID template for a namespace and service account, each a DNS label (checked
/// before rendering, so no claim can add a segment or a character the template did not plan).
pub fn render_template(
    template: &str,
    td: &TrustDomain,
    namespace: &str,
    sa: &str,
) -> Result<SpiffeId, IdTemplateError> {
    for (what, value) in [("namespace", namespace), ("service account", sa)] {
        if !is_dns_label(value) {
            return Err(IdTemplateError::NotDnsLabel {
                what,
                value: value.to_owned(),
            });
        }
    }
    let text = template
        .replace("{trust_domain}", td.as_str())
        .replace("{namespace}", namespace)
        .replace("{service_account}", sa);
    let id = SpiffeId::parse(&text).map_err(|source| IdTemplateError::InvalidId {
        text: text.clone(),
        source,
    })?;
    if !id.is_member_of(td) || !id.is_workload() {
        return Err(IdTemplateError::NotWorkload { id, td: td.clone() });
    }
    Ok(id)
}
