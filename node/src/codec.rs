//! Encodings shared by the Raft log, snapshots, RPC and disk: base64 bytes in JSON, and
//! checksummed length-prefixed frames.

/// Serde helper: `Vec<u8>` as a base64 string (Consul's `Value` encoding, and compact in JSON).
pub mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// Bytes of frame header: u32 length + u32 CRC32 (little endian).
pub const FRAME_HEADER_BYTES: usize = 8;

/// Encodes `payload` as `[len u32][crc32 u32][payload]`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Why a frame could not be decoded.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the header or the declared length: a torn write at the tail.
    #[error("truncated frame at offset {offset}")]
    Truncated { offset: usize },
    /// The payload does not match its checksum: corruption.
    #[error("checksum mismatch at offset {offset}")]
    Checksum { offset: usize },
}

/// Decodes the frame starting at `offset` of `buf`: returns the payload and the next offset.
pub fn unframe(buf: &[u8], offset: usize) -> Result<(&[u8], usize), FrameError> {
    let rest = buf.get(offset..).unwrap_or_default();
    if rest.len() < FRAME_HEADER_BYTES {
        return Err(FrameError::Truncated { offset });
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let Some(payload) = rest.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
        return Err(FrameError::Truncated { offset });
    };
    if crc32fast::hash(payload) != crc {
        return Err(FrameError::Checksum { offset });
    }
    Ok((payload, offset + FRAME_HEADER_BYTES + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_detects_tears_and_flips() {
        let mut buf = frame(b"hello");
        buf.extend(frame(b"world"));
        let (p, next) = unframe(&buf, 0).unwrap();
        assert_eq!(p, b"hello");
        assert_eq!(unframe(&buf, next).unwrap().0, b"world");
        assert_eq!(unframe(&buf[..buf.len() - 1], next), Err(FrameError::Truncated { offset: next }));
        let mut flipped = buf.clone();
        flipped[FRAME_HEADER_BYTES] ^= 1;
        assert_eq!(unframe(&flipped, 0), Err(FrameError::Checksum { offset: 0 }));
    }
}
