//! Just enough HPACK (RFC 7541) to rewrite one header in a request's header block: walk the
//! field representations, follow the client's dynamic table (what each entry's name is and
//! how big it is), decode Huffman strings, and replace the value of `:authority` when it is
//! not a valid authority, by one of the same decoded length, so that the client's and the
//! server's dynamic tables keep identical sizes and indices.
//!
//! Everything else in the block is copied byte for byte; an indexed reference to a rewritten
//! entry needs nothing, since the server's table holds the rewritten value. A block this
//! does not understand is reported as `None`, and the caller passes the bytes through
//! untouched (the HTTP/2 server then judges them as it would have).

use std::collections::VecDeque;

/// The code length of each symbol (0-255, then EOS) of HPACK's Huffman code (RFC 7541
/// Appendix B). The code is canonical: codes of one length are consecutive in symbol order,
/// and shorter codes come first, so the lengths define it.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// The names of the static table (RFC 7541 Appendix A), index 1 first: only their lengths
/// matter here (an entry's size), and whether index 1 (`:authority`) is named.
const STATIC_NAMES: [&str; 61] = [
    ":authority",
    ":method",
    ":method",
    ":path",
    ":path",
    ":scheme",
    ":scheme",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
];

/// The canonical decoding tables: for each code length, the first code and the index of its
/// first symbol in `symbols` (sorted by length, then symbol).
struct Canonical {
    first_code: [u32; 31],
    first_index: [u16; 31],
    count: [u16; 31],
    symbols: [u16; 257],
}

const fn canonical() -> Canonical {
    let mut t = Canonical {
        first_code: [0; 31],
        first_index: [0; 31],
        count: [0; 31],
        symbols: [0; 257],
    };
    let mut n = 0;
    let mut len = 1;
    let mut code: u32 = 0;
    while len <= 30 {
        t.first_code[len] = code;
        t.first_index[len] = n as u16;
        let mut sym = 0;
        while sym < 257 {
            if HUFFMAN_LENGTHS[sym] as usize == len {
                t.symbols[n] = sym as u16;
                n += 1;
                t.count[len] += 1;
            }
            sym += 1;
        }
        code = (code + t.count[len] as u32) << 1;
        len += 1;
    }
    t
}

static CANONICAL: Canonical = canonical();

/// The code lengths (for tests that encode).
#[cfg(test)]
pub(crate) fn huffman_lengths() -> &'static [u8; 257] {
    &HUFFMAN_LENGTHS
}

/// Decodes a Huffman-coded string; `None` when it is not valid HPACK Huffman.
pub fn huffman_decode(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5);
    let (mut code, mut len) = (0u32, 0usize);
    for byte in bytes {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            if len > 30 {
                return None;
            }
            let offset = code.wrapping_sub(CANONICAL.first_code[len]);
            if offset < u32::from(CANONICAL.count[len]) {
                let sym = CANONICAL.symbols[CANONICAL.first_index[len] as usize + offset as usize];
                if sym == 256 {
                    return None; // EOS inside a string is an error
                }
                out.push(sym as u8);
                code = 0;
                len = 0;
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (a prefix of EOS).
    (len < 8 && code == (1u32 << len) - 1).then_some(out)
}

/// Reads an HPACK integer with an `n`-bit prefix at `pos`; the value and the next position.
fn integer(block: &[u8], pos: usize, n: u32) -> Option<(usize, usize)> {
    let max = (1usize << n) - 1;
    let first = usize::from(*block.get(pos)?) & max;
    if first < max {
        return Some((first, pos + 1));
    }
    let (mut value, mut shift, mut at) = (max, 0u32, pos + 1);
    loop {
        let b = usize::from(*block.get(at)?);
        at += 1;
        value = value.checked_add((b & 0x7f).checked_shl(shift)?)?;
        if b & 0x80 == 0 {
            return Some((value, at));
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Reads a string literal at `pos`: its decoded bytes and the next position.
fn string(block: &[u8], pos: usize) -> Option<(Vec<u8>, usize)> {
    let huffman = block.get(pos)? & 0x80 != 0;
    let (len, start) = integer(block, pos, 7)?;
    let raw = block.get(start..start.checked_add(len)?)?;
    let value = if huffman {
        huffman_decode(raw)?
    } else {
        raw.to_vec()
    };
    Some((value, start + len))
}

/// Writes an HPACK integer with an `n`-bit prefix whose high bits are `flags`.
fn put_integer(out: &mut Vec<u8>, flags: u8, n: u32, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// Whether the `http` crate (and so the HTTP/2 server) accepts `value` as an authority:
/// conservatively, letters, digits, `.` and `-` only.
fn plain_authority(value: &[u8]) -> bool {
    value
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
}

/// A value of the same length the server accepts: every other byte becomes `x`.
fn same_length_authority(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .map(|&b| if plain_authority(&[b]) { b } else { b'x' })
        .collect()
}

/// The client's dynamic table, as far as this needs it: for each entry (newest first),
/// whether its name is `:authority`, its name's length and its size.
#[derive(Debug)]
pub struct Table {
    entries: VecDeque<(bool, usize, usize)>,
    size: usize,
    max: usize,
}

impl Default for Table {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            max: 4096,
        }
    }
}

impl Table {
    fn insert(&mut self, authority: bool, name_len: usize, value_len: usize) {
        let size = name_len + value_len + 32;
        self.entries.push_front((authority, name_len, size));
        self.size += size;
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max {
            match self.entries.pop_back() {
                Some((_, _, s)) => self.size -= s,
                None => break,
            }
        }
    }

    /// Whether index `idx` names `:authority`, and its name's length (for the size of an
    /// entry that reuses the name).
    fn name(&self, idx: usize) -> Option<(bool, usize)> {
        match idx {
            0 => None,
            1..=61 => Some((idx == 1, STATIC_NAMES[idx - 1].len())),
            _ => self
                .entries
                .get(idx - 62)
                .map(|(authority, name_len, _)| (*authority, *name_len)),
        }
    }

    /// Rewrites one complete header block; `None` when it cannot be parsed (the table is then
    /// no longer to be trusted, and the caller stops rewriting). The block is returned
    /// unchanged when nothing needed rewriting.
    pub fn rewrite(&mut self, block: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(block.len() + 16);
        let mut pos = 0;
        while pos < block.len() {
            let first = block[pos];
            if first & 0x80 != 0 {
                // Indexed field: copied; a rewritten entry is rewritten on both sides.
                let (_, next) = integer(block, pos, 7)?;
                out.extend_from_slice(&block[pos..next]);
                pos = next;
                continue;
            }
            if first & 0xe0 == 0x20 {
                // Dynamic table size update.
                let (max, next) = integer(block, pos, 5)?;
                self.max = max;
                self.evict();
                out.extend_from_slice(&block[pos..next]);
                pos = next;
                continue;
            }
            // A literal: with incremental indexing (01), without (0000) or never (0001).
            let (indexing, prefix) = if first & 0xc0 == 0x40 {
                (true, 6)
            } else {
                (false, 4)
            };
            let (idx, after_index) = integer(block, pos, prefix)?;
            let (authority, name_len, value_at) = if idx == 0 {
                let (name, next) = string(block, after_index)?;
                (name == b":authority", name.len(), next)
            } else {
                let (authority, name_len) = self.name(idx)?;
                (authority, name_len, after_index)
            };
            let (value, next) = string(block, value_at)?;
            if indexing {
                self.insert(authority, name_len, value.len());
            }
            if authority && !plain_authority(&value) && !value.is_empty() {
                out.extend_from_slice(&block[pos..value_at]);
                let replaced = same_length_authority(&value);
                put_integer(&mut out, 0x00, 7, replaced.len());
                out.extend_from_slice(&replaced);
            } else {
                out.extend_from_slice(&block[pos..next]);
            }
            pos = next;
        }
        Some(out)
    }
}
