//! The local check docs/operations.md gives before registering ward with a cloud ("Check it
//! locally first"), run as written: its Python, with PyJWT (a JWT library nobody here wrote)
//! and the standard library only, follows the OIDC listener's discovery document (served over
//! HTTPS by the listener itself, with a lab certificate made by `openssl req`) to `jwks_uri`
//! and verifies a JWT-SVID the CA issued: it prints the caller's SPIFFE ID, and refuses a
//! token for another audience. (`make test` installs PyJWT in target/venv-python:
//! scripts/ensure-python-clients.sh.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use support::jwt::*;
use support::Harness;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python block of operations.md's local check.
fn documented_check() -> String {
    let ops = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    let from = ops
        .find("**Check it locally first**")
        .expect("operations.md has the local check");
    let block = &ops[from..];
    let start = block.find("```python\n").expect("a Python block") + "```python\n".len();
    let len = block[start..].find("```").unwrap();
    block[start..start + len].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_pyjwt_check_verifies_a_jwt_svid_through_discovery() {
    let python = root().join("target/venv-python/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/ensure-python-clients.sh (make test does)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    self_signed_localhost(dir.path(), "oidc");
    let port = ward_e2e::kit::free_port();
    let issuer = format!("https://localhost:{port}");
    let config = format!(
        "jwt_svid: {{ default_ttl: 5m, max_ttl: 10m }}\noidc: {{ listen: \"127.0.0.1:{port}\", issuer: \"{issuer}\", cert_file: oidc.pem, key_file: oidc.key }}\n"
    );
    let h = Harness::start_with("jwks_file: jwks.json", &config, dir).await;
    let me = h.recorded(FRONTEND);
    let script = documented_check().replace("https://oidc.example.com", &issuer);
    std::fs::write(h.dir.path().join("check.py"), &script).unwrap();
    let check = |audience: &'static str| {
        let (h, me, python) = (&h, &me, &python);
        async move {
            let resp = jwt(h, Some(copy(me)), json!({"audience": [audience]})).await;
            assert_eq!(resp.status, 200, "{}", resp.json());
            let token = resp.json()["token"].as_str().unwrap().to_owned();
            std::fs::write(h.dir.path().join("frontend.jwt"), token).unwrap();
            let out = Command::new(python)
                .current_dir(h.dir.path())
                .env("SSL_CERT_FILE", h.dir.path().join("oidc.pem"))
                .arg("check.py")
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (ok, sub, err) = check("sts.amazonaws.com").await;
    assert!(ok, "{err}\n{script}");
    assert_eq!(sub, FRONTEND);
    let (ok, _, err) = check("someone-else").await;
    assert!(!ok, "a token for another audience verified");
    assert!(err.contains("InvalidAudienceError"), "{err}");
}
