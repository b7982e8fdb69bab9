//! The PROXY protocol version 2 header an inbound TCP listener with `proxy_protocol: v2`
//! writes to the app before the first byte of the connection, so the app learns who called:
//! the address and port the mTLS connection came from (the calling sidecar), the listener's
//! address, and what the handshake verified.
//!
//! TLVs (the spec's rules: a receiver skips types it does not know):
//! - `PP2_TYPE_SSL` (0x20): client flags `PP2_CLIENT_SSL`, `PP2_CLIENT_CERT_SESS`, and
//!   `PP2_CLIENT_CERT_CONN` when the certificate was sent on this connection (not resumed);
//!   `verify` 0 (the certificate was verified); sub-TLV `PP2_SUBTYPE_SSL_VERSION` "TLSv1.3".
//! - [`TLV_SPIFFE_ID`] (0xE0, in the range the spec reserves for applications, 0xE0..=0xEF):
//!   the verified peer's SPIFFE ID, UTF-8, exactly as in its certificate's URI SAN.

use std::net::{IpAddr, SocketAddr};

use ward_identity::SpiffeId;

/// The v2 signature every header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Our TLV type for the verified peer's SPIFFE ID.
pub const TLV_SPIFFE_ID: u8 = 0xE0;
const TLV_SSL: u8 = 0x20;
const SUBTYPE_SSL_VERSION: u8 = 0x21;
const CLIENT_SSL: u8 = 0x01;
const CLIENT_CERT_CONN: u8 = 0x02;
const CLIENT_CERT_SESS: u8 = 0x04;
/// Version 2, command PROXY.
const V2_PROXY: u8 = 0x21;
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;

fn tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    // A SPIFFE ID is at most 2048 bytes, so every value here fits the 16-bit length.
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// Both addresses in one family: IPv4 when both are, else IPv6 (IPv4 mapped).
fn same_family(src: SocketAddr, dst: SocketAddr) -> (u8, Vec<u8>) {
    let mut body = Vec::with_capacity(36);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            body.extend_from_slice(&src.port().to_be_bytes());
            body.extend_from_slice(&dst.port().to_be_bytes());
            (TCP4, body)
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            body.extend_from_slice(&v6(s).octets());
            body.extend_from_slice(&v6(d).octets());
            body.extend_from_slice(&src.port().to_be_bytes());
            body.extend_from_slice(&dst.port().to_be_bytes());
            (TCP6, body)
        }
    }
}

/// The header for a connection from `src` accepted at `dst`, from the verified `peer`;
/// `resumed` when the TLS session was resumed (no certificate sent on this connection).
pub fn v2_header(src: SocketAddr, dst: SocketAddr, peer: &SpiffeId, resumed: bool) -> Vec<u8> {
    let (family, mut body) = same_family(src, dst);
    let mut ssl = vec![CLIENT_SSL | CLIENT_CERT_SESS | if resumed { 0 } else { CLIENT_CERT_CONN }];
    ssl.extend_from_slice(&0u32.to_be_bytes());
    tlv(&mut ssl, SUBTYPE_SSL_VERSION, b"TLSv1.3");
    tlv(&mut body, TLV_SSL, &ssl);
    tlv(&mut body, TLV_SPIFFE_ID, peer.as_str().as_bytes());
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&SIGNATURE);
    out.push(V2_PROXY);
    out.push(family);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_bytes() {
        let peer = SpiffeId::parse("spiffe://example.org/a").unwrap();
        let h = v2_header(
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:8443".parse().unwrap(),
            &peer,
            false,
        );
        assert_eq!(&h[..12], &SIGNATURE);
        assert_eq!((h[12], h[13]), (0x21, 0x11));
        let len = u16::from_be_bytes([h[14], h[15]]) as usize;
        assert_eq!(h.len(), 16 + len);
        assert_eq!(&h[16..20], &[10, 0, 0, 1]);
        assert_eq!(&h[20..24], &[10, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 40000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 8443);
        assert!(h.ends_with(b"\xe0\x00\x16spiffe://example.org/a"));
    }

    #[test]
    fn mixed_families_become_ipv6() {
        let peer = SpiffeId::parse("spiffe://example.org/a").unwrap();
        let h = v2_header(
            "10.0.0.1:1".parse().unwrap(),
            "[::1]:2".parse().unwrap(),
            &peer,
            true,
        );
        assert_eq!(h[13], 0x21);
        assert_eq!(
            &h[16..32],
            &"::ffff:10.0.0.1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
    }
}
