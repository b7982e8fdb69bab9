//! The X509-SVID profile check on arbitrary DER: never panics; whatever passes names a
//! workload ID that parses on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_identity::{SpiffeId, SvidProfile};

fuzz_target!(|data: &[u8]| {
    if let Ok(leaf) = SvidProfile::check(data) {
        assert!(leaf.id.is_workload());
        assert_eq!(SpiffeId::parse(leaf.id.as_str()).unwrap(), leaf.id);
    }
});
