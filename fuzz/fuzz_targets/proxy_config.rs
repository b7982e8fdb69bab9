//! The proxy config parser on arbitrary text: never panics (errors carry file:line:column).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ward_proxy::Config::parse(Path::new("fuzz.yaml"), text, Path::new("/nonexistent"));
});
