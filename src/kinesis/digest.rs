//! MD5, for one message or for many side by side.
//!
//! Every record the producer routes costs the MD5 of its partition key, and every
//! aggregate the MD5 of its body. MD5 is serial within one message, but independent
//! messages can share SIMD lanes: hashed together, short keys go about five times and
//! 51 KB aggregates about ten times faster than one after another.
//!
//! This is the one entry point for MD5 in the program (hash keys, aggregate trailers,
//! key strategies, file fingerprints, iterator checksums). The deaggregator alone
//! checks trailers with the `md-5` crate, so that what the producer writes is verified
//! by an implementation it does not share.
//!
//! `md5-many` is an alpha release, pinned exactly for that reason; it is kept because
//! batched trailers are about twelve times faster here. It picks the widest SIMD the
//! CPU has at run time; the baseline level (SSE2 on x86-64, what a CPU without AVX2
//! gets) is tested against the reference below, as is the detected one.

use std::sync::LazyLock;

use md5_many::Md5Many;

/// An MD5 digest.
pub type Md5Digest = [u8; 16];

/// The batch engine, built once: it picks the widest SIMD the CPU has.
static ENGINE: LazyLock<Md5Many> = LazyLock::new(Md5Many::new);

/// The MD5 of one message.
pub fn md5(message: &[u8]) -> Md5Digest {
    md5_many::md5(message)
}

/// The MD5 of one message as 32 lowercase hex digits.
pub fn md5_hex(message: &[u8]) -> String {
    hex(&md5(message))
}

/// Bytes as lowercase hex digits, two per byte (digests in keys and signatures).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    out
}

/// The MD5 of each message, in order, computed side by side.
pub fn md5_each(messages: &[&[u8]]) -> Vec<Md5Digest> {
    let mut digests = vec![[0u8; 16]; messages.len()];
    match messages {
        [] => {}
        [one] => digests[0] = md5(one),
        many => ENGINE.hash_many(many, &mut digests),
    }
    digests
}

#[cfg(test)]
mod tests {
    use md5::{Digest, Md5};

    use super::*;

    #[test]
    fn each_digest_equals_the_reference_md5() {
        // Lengths on both sides of every padding boundary up to three blocks, mixed in
        // one batch, so lanes finish at different blocks.
        let messages: Vec<Vec<u8>> = (0..200usize)
            .map(|len| (0..len).map(|i| (i * 7 + len) as u8).collect())
            .collect();
        let slices: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let digests = md5_each(&slices);
        for (message, digest) in messages.iter().zip(&digests) {
            assert_eq!(digest.as_slice(), Md5::digest(message).as_slice());
            assert_eq!(md5(message), *digest);
        }
        assert_eq!(md5_each(&slices[3..4]), vec![md5(&messages[3])]);
        assert!(md5_each(&[]).is_empty());
    }

    /// The level a CPU without AVX2 or AVX-512 runs, and the one this CPU runs, both
    /// give the reference digests.
    #[test]
    fn the_baseline_simd_level_gives_the_reference_digests_too() {
        let messages: Vec<Vec<u8>> = (0..150usize)
            .map(|len| (0..len * 3).map(|i| (i * 13 + len) as u8).collect())
            .collect();
        let slices: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        for level in [
            fearless_simd::Level::baseline(),
            fearless_simd::Level::new(),
        ] {
            let mut digests = vec![[0u8; 16]; slices.len()];
            Md5Many::from_level(level).hash_many(&slices, &mut digests);
            for (message, digest) in messages.iter().zip(&digests) {
                assert_eq!(
                    digest.as_slice(),
                    Md5::digest(message).as_slice(),
                    "{level:?}"
                );
            }
        }
    }

    #[test]
    fn hex_is_lowercase_and_32_digits() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"user-0"), "b01a0e23da718a08989311b8b2dfb069");
    }
}
