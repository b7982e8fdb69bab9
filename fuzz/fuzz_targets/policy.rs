//! Policy YAML to compiled policy, for TCP and HTTP listeners: never panics, and a compiled
//! policy evaluates any peer without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_identity::SpiffeId;
use ward_policy::{compile, Listener};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let listeners = [
        Listener {
            name: "api",
            http: false,
        },
        Listener {
            name: "web",
            http: true,
        },
    ];
    if let Ok(policy) = compile("fuzz.yaml", text, Some(&listeners)) {
        let peer = SpiffeId::parse("spiffe://example.org/ns/web/sa/frontend").unwrap();
        let _ = policy.evaluate(&peer, "api");
        let _ = policy.evaluate(&peer, "web");
    }
});
