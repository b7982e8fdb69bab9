#!/usr/bin/env bash
# The interim demo: a CA, one workload CSR, an issued SVID, and openssl's independent verdict.
# (The full demo with sidecars, policy and revocation replaces this when the sidecar lands.)
set -euo pipefail

ward_ca="$(pwd)/target/debug/ward-ca"
work="$(mktemp -d -t ward-demo.XXXXXX)"
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. Create a CA for trust domain example.org (root 10y, issuer 1y, keys 0600)"
"$ward_ca" init --dir ca --trust-domain example.org
ls -l ca | sed 's/^/   /'

say "2. A workload makes its own P-256 key and a CSR that asks for too much"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout frontend.key -out frontend.csr -subj "/CN=i-am-admin" \
  -addext "subjectAltName=URI:spiffe://example.org/admin" 2>/dev/null
echo "   CSR subject and SAN ask for: CN=i-am-admin, spiffe://example.org/admin"

say "3. The CA issues a 1-hour SVID; the ID comes from the CA, only the key from the CSR"
"$ward_ca" issue --dir ca --csr frontend.csr \
  --id spiffe://example.org/ns/web/sa/frontend --ttl 1h --out frontend.pem

say "4. The certificate, as openssl reads it"
openssl x509 -in frontend.pem -noout -subject -issuer -dates -ext \
  subjectAltName,basicConstraints,keyUsage,extendedKeyUsage 2>/dev/null | sed 's/^/   /'

say "5. openssl verify -x509_strict, for client and for server use"
awk '/BEGIN/{n++} n==1' frontend.pem > leaf.pem
for purpose in sslclient sslserver; do
  printf '   %s: ' "$purpose"
  openssl verify -x509_strict -purpose "$purpose" -CAfile ca/root.pem -untrusted ca/issuer.pem leaf.pem
done

say "6. Bad input is refused with one line and changes nothing"
"$ward_ca" issue --dir ca --csr frontend.csr --id spiffe://example.org/a/../admin 2>&1 | sed 's/^/   /' || true
"$ward_ca" issue --dir ca --csr frontend.csr --id spiffe://example.org/x --ttl 48h 2>&1 | sed 's/^/   /' || true
"$ward_ca" init --dir ca --trust-domain example.org 2>&1 | sed 's/^/   /' || true

say "Done: temporary files removed."
