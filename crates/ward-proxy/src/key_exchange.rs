//! `key_exchange:` on a listener: the TLS key-exchange groups it offers and accepts, most
//! preferred first, by the names ward-tls gives them (`X25519MLKEM768`, `X25519`,
//! `secp256r1`). Absent means all three in that order.

use ward_tls::{KeyExchange, KxGroup};
use ward_yaml::{Spanned, YamlError};

/// The raw field as read from YAML.
pub type KeyExchangeFile = Option<Spanned<Vec<Spanned<String>>>>;

/// Checks `field` of listener `listener` in `file`: known names, no repeats, not empty.
pub fn parse(
    field: &KeyExchangeFile,
    listener: &str,
    file: &str,
) -> Result<KeyExchange, YamlError> {
    let Some(list) = field else {
        return Ok(KeyExchange::default());
    };
    let mut groups = Vec::new();
    for name in &list.value {
        let group = KxGroup::from_name(&name.value).ok_or_else(|| {
            let known: Vec<&str> = KxGroup::ALL.iter().map(|g| g.name()).collect();
            YamlError::at(
                file,
                name.referenced.line(),
                name.referenced.column(),
                format!(
                    "{listener:?}: key_exchange: unknown group {:?} (known: {})",
                    name.value,
                    known.join(", ")
                ),
            )
        })?;
        groups.push(group);
    }
    KeyExchange::new(groups).map_err(|e| {
        YamlError::at(
            file,
            list.referenced.line(),
            list.referenced.column(),
            format!("{listener:?}: key_exchange {e}"),
        )
    })
}
