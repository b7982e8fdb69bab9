//! A minimal, strict DER reader for the one place ward must see raw bytes: the entries of a
//! subjectAltName `SEQUENCE OF GeneralName`.
//!
//! It reads definite-length, low-tag-number TLVs only (all that DER allows for these types)
//! and fails on anything truncated or oversized rather than guessing.

/// One tag-length-value element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    /// The identifier octet.
    pub tag: u8,
    /// The content octets.
    pub value: &'a [u8],
}

impl Tlv<'_> {
    /// True for a context-specific tag `[n]`, primitive or constructed.
    pub fn is_context(&self, n: u8) -> bool {
        self.tag & 0xc0 == 0x80 && self.tag & 0x1f == n
    }
}

/// Parses one TLV from the front of `input`, returning it and the remaining bytes.
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), &'static str> {
    let (&tag, rest) = input.split_first().ok_or("truncated tag")?;
    if tag & 0x1f == 0x1f {
        return Err("high tag numbers are not supported");
    }
    let (&first, rest) = rest.split_first().ok_or("truncated length")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err("indefinite or oversized length");
        }
        if rest.len() < n {
            return Err("truncated length");
        }
        let (len_bytes, rest) = rest.split_at(n);
        if len_bytes[0] == 0 {
            return Err("non-minimal length");
        }
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return Err("non-minimal length");
        }
        (len, rest)
    };
    if rest.len() < len {
        return Err("content shorter than its length");
    }
    let (value, rest) = rest.split_at(len);
    Ok((Tlv { tag, value }, rest))
}

/// Parses `input` as exactly one `SEQUENCE` and returns its elements.
pub(crate) fn sequence_items(input: &[u8]) -> Result<Vec<Tlv<'_>>, &'static str> {
    let (seq, rest) = read_tlv(input)?;
    if seq.tag != 0x30 {
        return Err("expected a SEQUENCE");
    }
    if !rest.is_empty() {
        return Err("trailing bytes after the SEQUENCE");
    }
    let mut items = Vec::new();
    let mut body = seq.value;
    while !body.is_empty() {
        let (item, rest) = read_tlv(body)?;
        items.push(item);
        body = rest;
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let mut long = vec![0x30, 0x81, 0x83, 0x86, 0x81, 0x80];
        long.extend(std::iter::repeat_n(b'a', 0x80));
        let items = sequence_items(&long).unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0].is_context(6));
        assert_eq!(items[0].value.len(), 0x80);
    }

    #[test]
    fn refuses_truncation_and_trailing_bytes() {
        assert!(sequence_items(&[0x30, 0x03, 0x86, 0x05, b'a']).is_err());
        assert!(sequence_items(&[0x30, 0x00, 0x00]).is_err());
        assert!(sequence_items(&[0x30, 0x80]).is_err());
        assert!(sequence_items(&[0x30, 0x81, 0x01, 0x00]).is_err());
        assert!(sequence_items(&[]).is_err());
    }
}
