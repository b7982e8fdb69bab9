//! The HPACK rewriting checked against the RFC 7541 examples and against header blocks as
//! gRPC C-core and grpc-java encode `:authority` over a Unix socket.

use super::hpack::{huffman_decode, Table};

/// Huffman-encodes `s` with the canonical code the lengths define (a test-side encoder,
/// checked against the RFC's own example below).
fn huffman(s: &[u8]) -> Vec<u8> {
    let lens = super::hpack::huffman_lengths();
    let mut order: Vec<usize> = (0..257).collect();
    order.sort_by_key(|&k| (lens[k], k));
    let mut codes = [0u32; 257];
    let (mut code, mut prev) = (0u32, lens[order[0]]);
    for (n, &k) in order.iter().enumerate() {
        if n > 0 {
            code = (code + 1) << (lens[k] - prev);
        }
        prev = lens[k];
        codes[k] = code;
    }
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u64, 0u32);
    for &b in s {
        acc = (acc << lens[b as usize]) | u64::from(codes[b as usize]);
        bits += u32::from(lens[b as usize]);
        while bits >= 8 {
            out.push((acc >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) as u8) | ((1u8 << (8 - bits)) - 1));
    }
    out
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn huffman_decodes_the_rfc_examples() {
    // RFC 7541 C.4.1 and C.4.2.
    assert_eq!(
        huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")).unwrap(),
        b"www.example.com"
    );
    assert_eq!(huffman_decode(&hex("a8eb 1064 9cbf")).unwrap(), b"no-cache");
    assert_eq!(
        huffman(b"www.example.com"),
        hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")
    );
    for s in [
        &b"tmp%2Frun%2Fworkload.sock"[..],
        b"/run/workload.sock",
        b"",
        b"\x00\xff~",
    ] {
        assert_eq!(huffman_decode(&huffman(s)).unwrap(), s);
    }
    // Bad padding (zeros), and an EOS inside the string, are refused.
    assert_eq!(huffman_decode(&[0x07]).unwrap(), b"0"); // "0" in 5 bits, then 3 one bits
    assert!(huffman_decode(&[0x00]).is_none()); // ...but not zero bits
    assert!(huffman_decode(&[0x00, 0x00]).is_none());
    assert!(huffman_decode(&[0xff, 0xff, 0xff, 0xff]).is_none());
}

/// A literal with incremental indexing of `:authority` (static name index 1).
fn authority_literal(value: &[u8], huff: bool) -> Vec<u8> {
    let mut b = vec![0x41];
    let v = if huff { huffman(value) } else { value.to_vec() };
    assert!(v.len() < 127);
    b.push(if huff { 0x80 } else { 0 } | v.len() as u8);
    b.extend(v);
    b
}

#[test]
fn an_authority_that_is_a_socket_path_is_rewritten_to_one_of_the_same_length() {
    for (sent, huff) in [
        (&b"tmp%2Frun%2Fworkload.sock"[..], true), // gRPC C-core
        (b"/run/workload.sock", false),            // grpc-java
    ] {
        let mut table = Table::default();
        // :method POST (indexed 3), :scheme http (6), :path literal, :authority literal.
        let mut block = vec![0x83, 0x86, 0x44, 0x03];
        block.extend(b"/x/");
        block.extend(authority_literal(sent, huff));
        let out = table.rewrite(&block).unwrap();
        let mut expected = vec![0x83, 0x86, 0x44, 0x03];
        expected.extend(b"/x/");
        let replaced: Vec<u8> = sent
            .iter()
            .map(|b| {
                if b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-' {
                    *b
                } else {
                    b'x'
                }
            })
            .collect();
        expected.extend(authority_literal(&replaced, false));
        assert_eq!(out, expected, "{}", String::from_utf8_lossy(sent));
        // The next request names the entry by index (62): it passes as it is.
        assert_eq!(table.rewrite(&[0x83, 0xbe]).unwrap(), vec![0x83, 0xbe]);
    }
}

#[test]
fn a_valid_authority_and_other_headers_pass_untouched() {
    let mut table = Table::default();
    let mut block = authority_literal(b"localhost", true);
    // A literal without indexing of a new name, never-indexed, and a size update.
    block.extend([0x00, 0x03]);
    block.extend(b"abc");
    block.extend([0x03]);
    block.extend(b"def");
    block.extend([0x10, 0x01, b'n', 0x01, b'v']);
    let out = table.rewrite(&block).unwrap();
    assert_eq!(out, block);
    let mut with_update = vec![0x3f, 0xe1, 0x1f]; // size update to 4096
    with_update.extend(authority_literal(b"/s", false));
    let out = table.rewrite(&with_update).unwrap();
    assert_eq!(&out[..3], &[0x3f, 0xe1, 0x1f]);
    assert!(out.ends_with(b"xs"));
}

#[test]
fn an_authority_named_through_the_dynamic_table_is_found() {
    let mut table = Table::default();
    // First: a literal with indexing of ":authority" with a literal name (index 0).
    let mut block = vec![0x40, 0x0a];
    block.extend(b":authority");
    block.extend([0x02]);
    block.extend(b"ok");
    assert_eq!(table.rewrite(&block).unwrap(), block);
    // Then a literal without indexing naming entry 62 (":authority") with a path value.
    let out = table.rewrite(&[0x0f, 0x2f, 0x02, b'/', b'a']).unwrap();
    assert_eq!(out, vec![0x0f, 0x2f, 0x02, b'x', b'a']);
}

#[test]
fn blocks_that_do_not_parse_are_refused_not_guessed() {
    let mut table = Table::default();
    for bad in [
        &[0x41][..],               // a literal without its value
        &[0x41, 0x05, b'a'],       // a value shorter than its length
        &[0xff, 0xff, 0xff, 0xff], // an integer that never ends
        &[0x40, 0x81, 0x00, 0x00], // a Huffman name with bad padding
        &[0x0f, 0x30, 0x00],       // a name from a dynamic entry that does not exist
    ] {
        assert!(table.rewrite(bad).is_none(), "{bad:02x?}");
    }
}
