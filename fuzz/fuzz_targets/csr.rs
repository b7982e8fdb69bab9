//! CSR handling in the issuer on arbitrary input (PEM or DER): never panics; a key comes out
//! only of a CSR whose own signature verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(der) = ward_ca::authority::csr::decode(data) {
        let _ = ward_ca::authority::csr::public_key(&der);
    }
});
