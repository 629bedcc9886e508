//! Framing of RPC messages on a byte stream: checksummed frames ([`crate::codec::frame`]) holding
//! the binary encoding ([`crate::codec::encode`]).

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::codec::{frame, header_len, unframe, FRAME_HEADER_BYTES};
use crate::io::Stream;

/// Largest accepted RPC frame: 64 MiB (bounded by `max_payload_entries` × the 512 KiB value limit,
/// and by the snapshot chunk size).
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Writes one message.
pub async fn write_msg<S: Stream + ?Sized, T: Serialize>(stream: &mut S, msg: &T) -> std::io::Result<()> {
    let payload = crate::codec::encode(msg).map_err(std::io::Error::other)?;
    stream.write_all(&frame(&payload)).await?;
    stream.flush().await
}

/// Reads one message. Errors: EOF, a frame over [`MAX_FRAME_BYTES`], a checksum mismatch, or a body
/// that does not decode.
pub async fn read_msg<S: Stream + ?Sized, T: DeserializeOwned>(stream: &mut S) -> std::io::Result<T> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    stream.read_exact(&mut header).await?;
    let len = header_len(&header, 0).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("rpc frame too large: {len} bytes")));
    }
    let mut buf = Vec::with_capacity(FRAME_HEADER_BYTES + len);
    buf.extend_from_slice(&header);
    buf.resize(FRAME_HEADER_BYTES + len, 0);
    stream.read_exact(&mut buf[FRAME_HEADER_BYTES..]).await?;
    let (payload, _) = unframe(&buf, 0).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    crate::codec::decode(payload).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
