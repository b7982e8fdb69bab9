//! `ward-demo-workload`: the frontend app of `make demo` as a SPIFFE-aware app would be
//! written, with the `spiffe` crate from crates.io (nothing here wrote its client) and the
//! `jsonwebtoken` crate as a relying party that knows nothing of ward.
//!
//! `ward-demo-workload <socket> <audience> <oidc-host:port>`: fetches its X.509-SVID over the
//! Workload API and checks that it chains to the fetched bundle; fetches a JWT-SVID for
//! `audience`; then verifies it the way a cloud IdP would: the discovery document, its
//! `jwks_uri` (fetched from the same listener, as an ingress in front of it would route), the
//! key named by the token's `kid`, and `iss`/`aud`/`exp`. Exit status 1 on any failure.

#![allow(clippy::print_stdout)] // this binary reports to its operator on stdout

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;
use spiffe::{TrustDomain, WorkloadApiClient};
use ward_tls::{TrustBundles, Usage};

/// One plain HTTP GET (the discovery listener speaks HTTP; TLS is the ingress's job).
fn get(addr: &str, path: &str) -> Result<Value, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {path}: {}", head.lines().next().unwrap_or("")));
    }
    serde_json::from_str(body).map_err(|e| format!("GET {path}: {e}"))
}

async fn run(socket: &str, audience: &str, oidc: &str) -> Result<(), String> {
    let client = WorkloadApiClient::connect_to(format!("unix:{socket}"))
        .await
        .map_err(|e| e.to_string())?;
    let svid = client.fetch_x509_svid().await.map_err(|e| e.to_string())?;
    let id = svid.spiffe_id().to_string();
    let td = TrustDomain::new(svid.spiffe_id().trust_domain_name()).map_err(|e| e.to_string())?;
    let bundles = client
        .fetch_x509_bundles()
        .await
        .map_err(|e| e.to_string())?;
    let roots = bundles
        .get(&td)
        .ok_or("no bundle for my trust domain")?
        .authorities()
        .iter()
        .map(|c| rustls_pki_types::CertificateDer::from(c.as_ref().to_vec()))
        .collect();
    let ward_td = ward_identity::TrustDomain::new(svid.spiffe_id().trust_domain_name())
        .map_err(|e| e.to_string())?;
    let ours = TrustBundles::single(ward_td, roots).map_err(|e| e.to_string())?;
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> = svid
        .cert_chain()
        .iter()
        .map(|c| rustls_pki_types::CertificateDer::from(c.as_ref().to_vec()))
        .collect();
    let leaf = ward_tls::verify_svid(
        &ours,
        &chain[0],
        &chain[1..],
        rustls_pki_types::UnixTime::now(),
        Usage::Client,
    )
    .map_err(|e| format!("my SVID does not chain to my bundle: {e}"))?;
    println!(
        "X.509-SVID {id} over the Workload API: serial {}..., {} certificates, a key of its own; chains to the bundle",
        &leaf.serial_hex[..12.min(leaf.serial_hex.len())],
        chain.len()
    );

    let token = client
        .fetch_jwt_token([audience], None)
        .await
        .map_err(|e| e.to_string())?;
    let doc = get(oidc, "/.well-known/openid-configuration")?;
    let issuer = doc["issuer"].as_str().ok_or("no issuer in discovery")?;
    let jwks_uri = doc["jwks_uri"].as_str().ok_or("no jwks_uri in discovery")?;
    let path = jwks_uri
        .strip_prefix(issuer.trim_end_matches('/'))
        .ok_or("jwks_uri is not under the issuer")?;
    let keys = get(oidc, path)?;
    let kid = decode_header(&token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("the token names no kid")?;
    let jwk = keys["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kid"] == kid.as_str()))
        .ok_or_else(|| format!("no key {kid} at {jwks_uri}"))?;
    let key = DecodingKey::from_ec_components(
        jwk["x"].as_str().unwrap_or(""),
        jwk["y"].as_str().unwrap_or(""),
    )
    .map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    let claims = decode::<Value>(&token, &key, &validation)
        .map_err(|e| format!("the JWT-SVID does not verify: {e}"))?
        .claims;
    if claims["sub"] != id.as_str() {
        return Err(format!("sub {} is not {id}", claims["sub"]));
    }
    println!(
        "JWT-SVID for aud={audience} verified through discovery: iss={issuer}, sub={}, kid={kid}, lives {}s",
        claims["sub"].as_str().unwrap_or(""),
        claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, audience, oidc] = args.as_slice() else {
        eprintln!("usage: ward-demo-workload <socket> <audience> <oidc-host:port>");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ward-demo-workload: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(socket, audience, oidc)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ward-demo-workload: {e}");
            ExitCode::FAILURE
        }
    }
}
