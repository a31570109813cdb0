//! HTTP Basic credentials: encoding for the client, decoding for the stand-in's server face.
//! Written out here (a few lines of base64) rather than adding a crate for it.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Longest `Authorization` header value decoded.
pub const AUTHORIZATION_LENGTH_MAX_BYTES: usize = 1024;

fn encode_base64(input: &[u8]) -> String {
    let mut output = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let triple = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for index in 0..4 {
            if index <= chunk.len() {
                output.push(ALPHABET[((triple >> (18 - 6 * index)) & 0x3f) as usize] as char);
            } else {
                output.push('=');
            }
        }
    }
    output
}

fn decode_base64(input: &str) -> Option<Vec<u8>> {
    let input = input.as_bytes();
    if input.len() % 4 != 0 {
        return None;
    }
    let mut output = Vec::with_capacity(input.len() / 4 * 3);
    for chunk in input.chunks(4) {
        let mut triple: u32 = 0;
        let mut padding = 0;
        for (index, &byte) in chunk.iter().enumerate() {
            let sextet = if byte == b'=' && index >= 2 {
                padding += 1;
                0
            } else if padding > 0 {
                return None;
            } else {
                ALPHABET.iter().position(|&symbol| symbol == byte)? as u32
            };
            triple = (triple << 6) | sextet;
        }
        let bytes = [(triple >> 16) as u8, (triple >> 8) as u8, triple as u8];
        output.extend_from_slice(&bytes[..3 - padding]);
    }
    Some(output)
}

/// `Basic base64(user:password)`.
pub fn authorization_value(username: &str, password: &str) -> String {
    format!("Basic {}", encode_base64(format!("{username}:{password}").as_bytes()))
}

/// Decodes an `Authorization: Basic ...` value into `(user, password)`. `None` for anything
/// else, including an empty password (Asterisk rejects those too).
pub fn parse_authorization(value: &str) -> Option<(String, String)> {
    if value.len() > AUTHORIZATION_LENGTH_MAX_BYTES {
        return None;
    }
    let encoded = value.strip_prefix("Basic ")?.trim();
    let decoded = String::from_utf8(decode_base64(encoded)?).ok()?;
    let (username, password) = decoded.split_once(':')?;
    if password.is_empty() {
        return None;
    }
    Some((username.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_rfc_4648() {
        assert_eq!(encode_base64(b""), "");
        assert_eq!(encode_base64(b"f"), "Zg==");
        assert_eq!(encode_base64(b"fo"), "Zm8=");
        assert_eq!(encode_base64(b"foo"), "Zm9v");
        assert_eq!(authorization_value("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let header = authorization_value("lineup", "s3cret:with:colons");
        assert_eq!(parse_authorization(&header), Some(("lineup".into(), "s3cret:with:colons".into())));
        for bad in ["Bearer x", "Basic !!!!", "Basic Zg=", "Basic bGluZXVwOg==", "Basic Z=g="] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }
}
