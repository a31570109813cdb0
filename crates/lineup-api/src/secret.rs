//! Bearer tokens: made from the operating system's random source, stored and looked up as
//! SHA-256 digests, compared in constant time. A token is 128 random bits, so one SHA-256
//! is enough to keep it from being recovered from its digest (a slow password hash would
//! only cost time on every request).

/// Random bytes in a token: 128 bits.
pub const TOKEN_RANDOM_BYTES: usize = 16;
/// Bytes in a SHA-256 digest.
pub const SHA256_BYTES: usize = 32;

/// A fresh token: [`TOKEN_RANDOM_BYTES`] from the OS random source, as lowercase hex.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(to_hex(&bytes))
}

/// The SHA-256 digest of a token's bytes.
pub fn sha256(token: &str) -> [u8; SHA256_BYTES] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The SHA-256 digest of a token as lowercase hex (what a node config's `token_sha256` holds).
pub fn sha256_hex(token: &str) -> String {
    to_hex(&sha256(token))
}

/// A digest written as 64 hex digits (either case); `None` for anything else.
pub fn parse_sha256_hex(text: &str) -> Option<[u8; SHA256_BYTES]> {
    let text = text.as_bytes();
    if text.len() != SHA256_BYTES * 2 {
        return None;
    }
    let mut digest = [0u8; SHA256_BYTES];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        digest[i] = (high * 16 + low) as u8;
    }
    Some(digest)
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(DIGITS[usize::from(b >> 4)] as char);
        text.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    text
}

/// Whether `a` and `b` hold the same bytes, in time that does not depend on where they
/// differ. Length is not secret (tokens are long and random); contents are.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_matches_only_equal_bytes() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abcdef", b"abcde"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn new_tokens_are_128_bit_hex_and_differ() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_RANDOM_BYTES * 2);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn sha256_hex_is_the_known_digest_and_parses_back() {
        let hex = sha256_hex("abc");
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(parse_sha256_hex(&hex.to_uppercase()), Some(sha256("abc")));
        assert_eq!(parse_sha256_hex("ba78"), None);
        assert_eq!(parse_sha256_hex(&hex.replace('b', "g")), None);
    }
}
