//! Encodings shared by the Raft log, snapshots, RPC and disk: the one binary encoding
//! ([`encode`], [`decode`]: MessagePack with named fields, via `rmp-serde`), base64 bytes for the
//! JSON edges, and checksummed length-prefixed frames.
//!
//! Why MessagePack: it is compact (bytes are bytes, not base64), self-describing, so openraft's
//! serde types (which rely on `deserialize_any` in places) decode without special cases, and with
//! named fields a later version can add a field with `#[serde(default)]` and still read old data.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value that could not be encoded or decoded in the binary encoding.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encode: {0}")]
    Encode(String),
    #[error("decode: {0}")]
    Decode(String),
}

/// Encodes `value` in Concord's binary encoding (MessagePack, struct fields by name).
/// Errors: the value's `Serialize` impl fails (e.g. a map with non-string keys is fine; a
/// custom impl that errors is not).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec_named(value).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes bytes produced by [`encode`]. Errors: truncated or malformed input, or a shape that
/// does not match `T` (never panics on untrusted bytes).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|e| CodecError::Decode(e.to_string()))
}

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

/// Bytes of frame header: u32 payload length, u32 CRC32 of the length, u32 CRC32 of the payload
/// (little endian). The length has its own checksum so a flipped bit in it is caught as
/// corruption rather than misread as a frame that runs to the end of the file (which would look
/// like a torn write and be cut, losing acknowledged data; found by the simulator:
/// disk-corruption seed 89).
pub const FRAME_HEADER_BYTES: usize = 12;

/// Encodes `payload` as `[len][crc32(len)][crc32(payload)][payload]`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    frame_into(&mut out, payload);
    out
}

/// [`frame`], appended to `out` (no intermediate copy of a large payload).
pub fn frame_into(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    out.reserve(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc32fast::hash(&len).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why a frame could not be decoded.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes end inside the header, or inside a payload whose (checksummed) length says it
    /// is longer: the tail of a write that never completed. The only repairable case.
    #[error("truncated frame at offset {offset}")]
    Truncated { offset: usize },
    /// The header's length field fails its checksum: corruption.
    #[error("frame header checksum mismatch at offset {offset}")]
    HeaderChecksum { offset: usize },
    /// The payload does not match its checksum: corruption.
    #[error("checksum mismatch at offset {offset}")]
    Checksum { offset: usize },
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Validates a frame header; returns the payload length. `header` must be
/// [`FRAME_HEADER_BYTES`] long.
pub fn header_len(header: &[u8], offset: usize) -> Result<usize, FrameError> {
    if header.len() < FRAME_HEADER_BYTES {
        return Err(FrameError::Truncated { offset });
    }
    if crc32fast::hash(&header[0..4]) != le_u32(&header[4..8]) {
        return Err(FrameError::HeaderChecksum { offset });
    }
    Ok(le_u32(&header[0..4]) as usize)
}

/// Decodes the frame starting at `offset` of `buf`: returns the payload and the next offset.
pub fn unframe(buf: &[u8], offset: usize) -> Result<(&[u8], usize), FrameError> {
    let rest = buf.get(offset..).unwrap_or_default();
    let len = header_len(rest, offset)?;
    let crc = le_u32(&rest[8..12]);
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
    fn binary_encoding_round_trips_openraft_entries_and_rejects_garbage() {
        use crate::raft::Entry;
        let entry: Entry = openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 7), 42),
            payload: openraft::EntryPayload::Membership(openraft::Membership::new(
                vec![[1u64, 2, 3].into_iter().collect()],
                None,
            )),
        };
        let bytes = encode(&entry).unwrap();
        let back: Entry = decode(&bytes).unwrap();
        assert_eq!(format!("{back:?}"), format!("{entry:?}"));
        let vote = openraft::Vote::<u64>::new(5, 2);
        assert_eq!(decode::<openraft::Vote<u64>>(&encode(&vote).unwrap()).unwrap(), vote);
        assert!(decode::<Entry>(&bytes[..bytes.len() / 2]).is_err());
    }

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
        let mut long = buf.clone();
        long[1] ^= 0x10; // the length now claims the frame runs past the end
        assert_eq!(unframe(&long, 0), Err(FrameError::HeaderChecksum { offset: 0 }));
    }
}
