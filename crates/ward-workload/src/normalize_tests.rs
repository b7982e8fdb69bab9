//! The frame layer of the `:authority` normalization: header blocks split over CONTINUATION
//! frames, padded and prioritized HEADERS, blocks that grow past a frame, and input it does
//! not understand, which passes exactly as it came.

use tokio::io::AsyncReadExt;

use super::normalize::Normalize;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

async fn normalized(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Normalize::new(input).read_to_end(&mut out).await.unwrap();
    out
}

/// `:method POST`, then `:authority` (literal with indexing) with `value` as raw bytes.
fn block(value: &[u8]) -> Vec<u8> {
    let mut b = vec![0x83, 0x41, value.len() as u8];
    b.extend(value);
    b
}

#[tokio::test]
async fn split_padded_and_prioritized_headers_come_out_whole_and_rewritten() {
    let settings = frame(0x4, 0, 0, &[]);
    let b = block(b"/run/w.sock");
    // HEADERS with PADDED (2 bytes of padding) and PRIORITY, the block split in two over a
    // CONTINUATION frame; END_STREAM set.
    let mut payload = vec![2];
    payload.extend([0, 0, 0, 0, 16]);
    payload.extend(&b[..4]);
    payload.extend([0, 0]);
    let mut input = PREFACE.to_vec();
    input.extend(&settings);
    input.extend(frame(0x1, 0x1 | 0x8 | 0x20, 1, &payload));
    input.extend(frame(0x9, 0x4, 1, &b[4..]));
    let data = frame(0x0, 0x1, 1, b"hello");
    input.extend(&data);
    let mut expected = PREFACE.to_vec();
    expected.extend(&settings);
    let mut rewritten = vec![0, 0, 0, 0, 16];
    rewritten.extend(block(b"xrunxw.sock"));
    expected.extend(frame(0x1, 0x1 | 0x20 | 0x4, 1, &rewritten));
    expected.extend(&data);
    assert_eq!(normalized(&input).await, expected);
}

#[tokio::test]
async fn a_block_that_grows_past_a_frame_goes_on_in_continuations() {
    // 300 Huffman-coded `%` (6 bits each, 225 bytes) grow to 300 raw bytes; many of them
    // make a block over 16 KiB once rewritten.
    let mut b = Vec::new();
    for _ in 0..70 {
        b.extend([0x41, 0x80 | 0x7f, 225 - 127]);
        b.extend(std::iter::repeat_n(0b0101_0101u8, 225)); // `%` = 010101, four per 3 bytes
    }
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x1, 0x4, 3, &b));
    let out = normalized(&input).await;
    let mut at = PREFACE.len();
    let mut kinds = Vec::new();
    let mut block: Vec<u8> = Vec::new();
    while at < out.len() {
        let len =
            usize::from(out[at]) << 16 | usize::from(out[at + 1]) << 8 | usize::from(out[at + 2]);
        assert!(len <= 16_384);
        kinds.push((out[at + 3], out[at + 4] & 0x4 != 0));
        block.extend(&out[at + 9..at + 9 + len]);
        at += 9 + len;
    }
    assert_eq!(kinds.first(), Some(&(0x1, false)));
    assert_eq!(kinds.last(), Some(&(0x9, true)));
    assert_eq!(block.len(), 70 * (1 + 3 + 300)); // 0x41, a 3-byte length, 300 raw bytes
    assert!(block.windows(300).any(|w| w.iter().all(|&c| c == b'x')));
}

#[tokio::test]
async fn input_it_does_not_understand_passes_as_it_came() {
    for input in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        [PREFACE, &frame(0x1, 0x4, 1, &[0x41, 0x05, b'a'])].concat(), // block cut short
        [
            PREFACE,
            &frame(0x1, 0x0, 1, &block(b"/a")),
            &frame(0x0, 0, 1, b"x"),
        ]
        .concat(), // DATA inside a block
        [PREFACE, &[0x10, 0, 0, 0x0, 0, 0, 0, 0, 1]].concat(), // a frame over 1 MiB announced
        [PREFACE, &frame(0x1, 0x4, 1, &block(b"ok"))[..12]].concat(), // cut mid-frame
    ] {
        assert_eq!(normalized(&input).await, input);
    }
}
