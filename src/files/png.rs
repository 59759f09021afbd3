//! Small generated PNG images: the frames of a "processed" video
//! (`GET /v2/files/{file_uuid}/frames`). No image crate: a PNG is a
//! signature and three chunks, and its pixels may be zlib data made of
//! stored (uncompressed) deflate blocks, so CRC-32 and Adler-32 are all the
//! arithmetic it needs. The picture is a colour gradient that differs per
//! file and per frame, so a client can tell frames apart.

/// Width and height of a frame, in pixels (16:9).
pub(crate) const WIDTH: u32 = 64;
pub(crate) const HEIGHT: u32 = 36;

/// CRC-32 (ISO 3309, as PNG chunks use it), bit by bit: frames are tiny.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for part in parts {
        for &byte in *part {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

/// Adler-32 (RFC 1950), zlib's checksum.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= 65_521;
        b %= 65_521;
    }
    (b << 16) | a
}

/// `data` as a zlib stream of stored deflate blocks (RFC 1950, 1951 §3.2.4).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// An 8-bit RGB PNG of `WIDTH` × `HEIGHT` pixels; `seed` picks its colours.
pub(crate) fn frame(seed: u64) -> Vec<u8> {
    let [r0, g0, b0, step, ..] = seed.to_le_bytes();
    let mut pixels = Vec::with_capacity(((WIDTH * 3 + 1) * HEIGHT) as usize);
    for y in 0..HEIGHT {
        pixels.push(0); // filter type: none
        for x in 0..WIDTH {
            let (x, y) = (x as u8, y as u8);
            pixels.push(r0.wrapping_add(x.wrapping_mul(4)));
            pixels.push(g0.wrapping_add(y.wrapping_mul(7)));
            pixels.push(b0.wrapping_add(x.wrapping_add(y).wrapping_mul(step | 1)));
        }
    }
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&WIDTH.to_be_bytes());
    header.extend_from_slice(&HEIGHT.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), compression, filter, interlace: 0.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &zlib_stored(&pixels));
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_their_reference_values() {
        assert_eq!(crc32(&[b"123456789"]), 0xcbf4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xcbf4_3926);
        assert_eq!(crc32(&[b"IEND"]), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert_eq!(adler32(&[0xff; 100_000]), {
            // Reference: the sums taken modulo 65521 without the chunking.
            let (mut a, mut b) = (1u64, 0u64);
            for _ in 0..100_000 {
                a = (a + 255) % 65_521;
                b = (b + a) % 65_521;
            }
            ((b << 16) | a) as u32
        });
    }

    #[test]
    fn stored_blocks_carry_the_bytes_with_their_lengths() {
        let data = vec![7u8; 70_000];
        let z = zlib_stored(&data);
        assert_eq!(&z[..2], &[0x78, 0x01]);
        // First block: not final, 65535 bytes.
        assert_eq!(&z[2..7], &[0, 0xff, 0xff, 0, 0]);
        let second = 7 + 65_535;
        let len = (70_000 - 65_535) as u16;
        assert_eq!(z[second], 1);
        assert_eq!(&z[second + 1..second + 3], &len.to_le_bytes());
        assert_eq!(&z[second + 3..second + 5], &(!len).to_le_bytes());
        assert_eq!(z.len(), 2 + 5 + 65_535 + 5 + len as usize + 4);
        assert_eq!(&z[z.len() - 4..], &adler32(&data).to_be_bytes());
    }

    #[test]
    fn a_frame_is_a_well_formed_png_and_seeds_differ() {
        let png = frame(42);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[16..20], &WIDTH.to_be_bytes());
        assert_eq!(&png[20..24], &HEIGHT.to_be_bytes());
        // Every chunk's CRC holds.
        let mut at = 8;
        let mut kinds = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind = &png[at + 4..at + 8];
            let data = &png[at + 8..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32(&[kind, data]));
            kinds.push(String::from_utf8_lossy(kind).into_owned());
            at += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        assert_ne!(frame(1), frame(2));
    }
}
