//! The one place that knows the wire and disk encoding (bincode 2 in serde mode).
//!
//! Everything that crosses a process boundary — Raft log entries, snapshots, peer frames,
//! command results — is encoded here, so swapping the format (bincode is unmaintained
//! upstream) touches one module. Decoding always runs with an explicit size limit, so a
//! hostile length prefix can never make us allocate beyond it.

use serde::{de::DeserializeOwned, Serialize};

/// Largest encoded value we ever decode (a full snapshot of a large federation fits well
/// below this; peer frames use their own, smaller limit on top).
pub const DECODE_LIMIT_BYTES: usize = 256 * 1024 * 1024;

/// Version byte written in front of every versioned envelope ([`encode_versioned`]).
/// Bump it when the layout of a log entry or snapshot changes; old bytes then fail loudly
/// with [`CodecError::UnknownVersion`] instead of decoding into garbage.
pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("could not encode: {0}")]
    Encode(String),
    #[error("could not decode: {0}")]
    Decode(String),
    #[error("value of {len_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    TooLarge { len_bytes: usize, limit_bytes: usize },
    #[error("{extra_bytes} trailing bytes after the value")]
    TrailingBytes { extra_bytes: usize },
    #[error("unknown format version {found} (this build reads version {FORMAT_VERSION})")]
    UnknownVersion { found: u8 },
    #[error("empty input")]
    Empty,
}

fn config<const LIMIT: usize>(
) -> bincode::config::Configuration<bincode::config::LittleEndian, bincode::config::Varint, bincode::config::Limit<LIMIT>>
{
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Encode a value (no version byte).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config::<DECODE_LIMIT_BYTES>()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decode a value that must fill `bytes` exactly, refusing anything larger than `limit_bytes`.
pub fn decode_with_limit<T: DeserializeOwned>(bytes: &[u8], limit_bytes: usize) -> Result<T, CodecError> {
    if bytes.len() > limit_bytes {
        return Err(CodecError::TooLarge { len_bytes: bytes.len(), limit_bytes });
    }
    // The bincode limit bounds every allocation made while decoding (a length prefix
    // claiming 4 GiB fails before anything is reserved).
    let (value, read) = bincode::serde::decode_from_slice(bytes, config::<DECODE_LIMIT_BYTES>())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes { extra_bytes: bytes.len() - read });
    }
    Ok(value)
}

/// Decode with the default limit.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_with_limit(bytes, DECODE_LIMIT_BYTES)
}

/// Encode with a leading [`FORMAT_VERSION`] byte (log entries, snapshots).
pub fn encode_versioned<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_VERSION];
    out.extend(encode(value)?);
    Ok(out)
}

/// Decode bytes written by [`encode_versioned`].
pub fn decode_versioned<T: DeserializeOwned>(bytes: &[u8], limit_bytes: usize) -> Result<T, CodecError> {
    let (&version, rest) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion { found: version });
    }
    decode_with_limit(rest, limit_bytes)
}

/// Decode bytes written by [`encode_versioned`] that arrive from another process (a peer's
/// frame). The input must be at most `LIMIT_BYTES` long, and the decoder's accounting, which
/// bounds what a length prefix may make it allocate (a string's buffer is allocated at its
/// declared length before it is read), uses the same bound instead of
/// [`DECODE_LIMIT_BYTES`]: a small hostile frame cannot make us allocate 256 MiB.
pub fn decode_versioned_bounded<T: DeserializeOwned, const LIMIT_BYTES: usize>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, rest) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion { found: version });
    }
    if rest.len() > LIMIT_BYTES {
        return Err(CodecError::TooLarge { len_bytes: rest.len(), limit_bytes: LIMIT_BYTES });
    }
    let (value, read) = bincode::serde::decode_from_slice(rest, config::<LIMIT_BYTES>())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if read != rest.len() {
        return Err(CodecError::TrailingBytes { extra_bytes: rest.len() - read });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let value = (7u64, String::from("sales"), vec![1u8, 2, 3]);
        let bytes = encode_versioned(&value).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (u64, String, Vec<u8>) = decode_versioned(&bytes, 1024).unwrap();
        assert_eq!(back, value);
        assert_eq!(
            decode_versioned::<(u64, String, Vec<u8>)>(&bytes, 4),
            Err(CodecError::TooLarge { len_bytes: bytes.len() - 1, limit_bytes: 4 })
        );
        let mut wrong = bytes.clone();
        wrong[0] = 99;
        assert_eq!(
            decode_versioned::<(u64, String, Vec<u8>)>(&wrong, 1024),
            Err(CodecError::UnknownVersion { found: 99 })
        );
        let mut trailing = bytes[1..].to_vec();
        trailing.push(0);
        assert_eq!(decode::<(u64, String, Vec<u8>)>(&trailing), Err(CodecError::TrailingBytes { extra_bytes: 1 }));
    }

    #[test]
    fn bounded_decode_refuses_a_declared_length_over_its_bound() {
        let value = (7u64, String::from("sales"));
        let bytes = encode_versioned(&value).unwrap();
        assert_eq!(decode_versioned_bounded::<(u64, String), 1024>(&bytes), Ok(value));
        // A string declaring 100 MiB inside a 16-byte frame: refused by the accounting
        // before its buffer is allocated.
        let mut hostile = vec![FORMAT_VERSION, 7, 0xFC];
        hostile.extend_from_slice(&(100u32 * 1024 * 1024).to_le_bytes());
        hostile.extend_from_slice(b"sales");
        assert!(matches!(decode_versioned_bounded::<(u64, String), 1024>(&hostile), Err(CodecError::Decode(_))));
        assert!(matches!(
            decode_versioned_bounded::<(u64, String), 4>(&bytes),
            Err(CodecError::TooLarge { limit_bytes: 4, .. })
        ));
    }

    #[test]
    fn hostile_length_prefix_is_refused_without_allocating() {
        // A Vec<u8> whose varint length claims u64::MAX elements.
        let bytes = [0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(decode::<Vec<u8>>(&bytes).is_err());
        assert!(decode::<String>(&[]).is_err());
    }
}
