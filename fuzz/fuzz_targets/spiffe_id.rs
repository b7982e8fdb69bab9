//! SPIFFE ID and pattern parsing on arbitrary bytes: never panics, and whatever parses
//! prints back to exactly the input and parses again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_identity::{IdPattern, SpiffeId};

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = SpiffeId::parse_bytes(data) {
        assert_eq!(id.as_str().as_bytes(), data);
        assert_eq!(SpiffeId::parse(id.as_str()).unwrap(), id);
        assert!(!id.trust_domain_name().is_empty());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(pattern) = IdPattern::parse(text) {
            let again = IdPattern::parse(&pattern.to_string()).unwrap();
            assert_eq!(again.to_string(), pattern.to_string());
        }
    }
});
