//! Length-prefixed frames on a byte stream.
//!
//! A frame is a big-endian `u32` length followed by that many bytes. The length is checked
//! against the caller's limit *before* anything is allocated or read, so a peer that claims
//! 4 GiB costs us four bytes of reading. Truncated frames and oversize lengths become
//! [`ClusterError::Frame`]; nothing here panics on peer input.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ClusterError;

/// Largest frame a peer may send us (request or response). Raft batches
/// ([`crate::node::MAX_PAYLOAD_ENTRIES`]) and snapshot chunks
/// ([`crate::node::SNAPSHOT_CHUNK_BYTES`]) are sized to stay well under it.
pub const PEER_FRAME_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Bound on what decoding one peer frame may claim (bincode's accounting: bytes read plus
/// buffers a length prefix asks for). Twice the frame size leaves room for a legitimate
/// frame and none for a hostile length prefix.
pub const PEER_DECODE_LIMIT_BYTES: usize = 2 * PEER_FRAME_MAX_BYTES;

/// Bytes of the length prefix.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Capacity reserved up front for a frame's body; beyond it the buffer grows as bytes come.
pub const FRAME_READ_CHUNK_BYTES: usize = 64 * 1024;

/// Writes one frame. Refuses a body over `max_bytes` (we never send what the peer must
/// refuse).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
    max_bytes: usize,
) -> Result<(), ClusterError> {
    if body.len() > max_bytes {
        return Err(ClusterError::Frame(format!("outgoing frame of {} bytes exceeds {max_bytes} bytes", body.len())));
    }
    let len = u32::try_from(body.len()).map_err(|_| ClusterError::Frame("frame length does not fit u32".into()))?;
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(body).await?;
    Ok(())
}

/// Reads one frame, refusing a declared length over `max_bytes` before reading the body.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max_bytes: usize) -> Result<Vec<u8>, ClusterError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    reader.read_exact(&mut header).await.map_err(|e| ClusterError::Frame(format!("truncated frame header: {e}")))?;
    let len = u32::from_be_bytes(header) as usize;
    if len > max_bytes {
        return Err(ClusterError::Frame(format!("frame of {len} bytes exceeds the limit of {max_bytes} bytes")));
    }
    // The buffer grows with the bytes that really arrive: a peer that declares 8 MiB and
    // sends ten bytes costs ten bytes (and a chunk), not 8 MiB per stream.
    let mut body = Vec::with_capacity(len.min(FRAME_READ_CHUNK_BYTES));
    let read = reader
        .take(len as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| ClusterError::Frame(format!("truncated frame body (declared {len} bytes): {e}")))?;
    if read < len {
        return Err(ClusterError::Frame(format!("truncated frame body (declared {len} bytes, got {read})")));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello", 16).await.unwrap();
        write_frame(&mut wire, b"", 16).await.unwrap();
        let mut reader = wire.as_slice();
        assert_eq!(read_frame(&mut reader, 16).await.unwrap(), b"hello");
        assert_eq!(read_frame(&mut reader, 16).await.unwrap(), b"");
        assert!(reader.is_empty());
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_reading_the_body() {
        let wire = u32::MAX.to_be_bytes();
        let err = read_frame(&mut wire.as_slice(), PEER_FRAME_MAX_BYTES).await.unwrap_err();
        assert!(matches!(err, ClusterError::Frame(ref m) if m.contains("exceeds")), "{err}");
        let mut out = Vec::new();
        assert!(write_frame(&mut out, &[0u8; 17], 16).await.is_err());
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn a_frame_that_declares_more_than_it_sends_is_truncated_and_a_large_one_arrives_whole() {
        let mut wire = (PEER_FRAME_MAX_BYTES as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(b"ten bytes!");
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(&wire).await.unwrap();
        drop(client);
        let err = read_frame(&mut server, PEER_FRAME_MAX_BYTES).await.unwrap_err();
        assert!(matches!(err, ClusterError::Frame(ref m) if m.contains("got 10")), "{err}");
        // A whole frame larger than the first chunk still arrives intact.
        let big = vec![7u8; 3 * FRAME_READ_CHUNK_BYTES + 5];
        let mut wire = Vec::new();
        write_frame(&mut wire, &big, PEER_FRAME_MAX_BYTES).await.unwrap();
        assert_eq!(read_frame(&mut wire.as_slice(), PEER_FRAME_MAX_BYTES).await.unwrap(), big);
    }

    #[tokio::test]
    async fn truncated_frames_are_errors() {
        for wire in [vec![], vec![0u8, 0], vec![0, 0, 0, 9, 1, 2, 3]] {
            let err = read_frame(&mut wire.as_slice(), 16).await.unwrap_err();
            assert!(matches!(err, ClusterError::Frame(ref m) if m.contains("truncated")), "{err}");
        }
    }
}
