//! Refusals the HTTP/2 server makes before a request reaches ward are counted, not silent: a
//! request with a connection-specific header (malformed in HTTP/2) gets RST_STREAM
//! PROTOCOL_ERROR, a DATA frame on stream 0 gets GOAWAY PROTOCOL_ERROR, and each shows in
//! `ward_workload_api_http2_resets_total{scope, code}` (and the page still parses with
//! promtool). The frames are written by hand: they are what a broken client sends, and no
//! client library sends them on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::Duration;

use support::workload::ca_and_sidecar;
use support::Pki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use ward_e2e::TestCa;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK literal header without indexing, with a new name.
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut b = vec![0x00, name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    b.push(value.len() as u8);
    b.extend_from_slice(value.as_bytes());
    b
}

/// The frames the server sends within `within`: (type, stream, payload).
async fn frames_back(conn: &mut UnixStream, within: Duration) -> Vec<(u8, u32, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(within, async {
        while let Ok(n) = conn.read(&mut buf).await {
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let mut frames = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= 9 {
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        if rest.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        frames.push((rest[3], stream, rest[9..9 + len].to_vec()));
        rest = &rest[9 + len..];
    }
    frames
}

fn resets(text: &str, scope: &str, code: &str) -> f64 {
    ward_e2e::metrics::sample_or_zero(
        text,
        &format!("ward_workload_api_http2_resets_total{{scope=\"{scope}\",code=\"{code}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_by_the_http2_server_are_counted() {
    let test_ca = TestCa::new("example.org");
    let pki = Pki::new();
    let (ca, proxy, socket) = ca_and_sidecar(&test_ca, &pki).await;

    // A request with `connection: close`: malformed in HTTP/2 (RFC 9113, 8.2.2).
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    let path = "/SpiffeWorkloadAPI/FetchJWTBundles";
    block.extend([0x04, path.len() as u8]);
    block.extend_from_slice(path.as_bytes());
    block.extend([0x01, 9]);
    block.extend_from_slice(b"localhost");
    block.extend(literal("content-type", "application/grpc"));
    block.extend(literal("workload.spiffe.io", "true"));
    block.extend(literal("connection", "close"));
    let mut conn = UnixStream::connect(&socket).await.unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x1, 0x5, 1, &block));
    conn.write_all(&out).await.unwrap();
    let back = frames_back(&mut conn, Duration::from_secs(2)).await;
    let rst = back
        .iter()
        .find(|(kind, stream, _)| *kind == 0x3 && *stream == 1)
        .unwrap_or_else(|| panic!("no RST_STREAM for stream 1: {back:?}"));
    assert_eq!(rst.2, 1u32.to_be_bytes(), "PROTOCOL_ERROR");
    let text = proxy.metrics.encode();
    assert_eq!(resets(&text, "stream", "protocol_error"), 1.0, "{text}");

    // DATA on stream 0: a connection error.
    let mut conn = UnixStream::connect(&socket).await.unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x0, 0, 0, b"junk"));
    conn.write_all(&out).await.unwrap();
    let back = frames_back(&mut conn, Duration::from_secs(2)).await;
    let goaway = back
        .iter()
        .find(|(kind, _, _)| *kind == 0x7)
        .unwrap_or_else(|| panic!("no GOAWAY: {back:?}"));
    assert_eq!(goaway.2[4..8], 1u32.to_be_bytes(), "PROTOCOL_ERROR");
    let text = proxy.metrics.encode();
    assert_eq!(resets(&text, "connection", "protocol_error"), 1.0, "{text}");
    assert_eq!(resets(&text, "stream", "protocol_error"), 1.0, "{text}");
    ward_e2e::metrics::promtool_parses(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    proxy.shutdown().await;
    ca.running.shutdown().await;
}
