//! The server RPC wire format: checksummed frames ([`crate::codec::frame`]) on one TCP
//! connection, each holding one [`Envelope`] in the binary encoding ([`crate::codec::encode`]).
//!
//! A request carries an id chosen by the client; its response carries the same id and may come
//! back in any order. Frames larger than [`MAX_FRAME_BYTES`], frames failing their checksums and
//! envelopes that do not decode are protocol errors: the reader stops and the connection closes.

use bytes::{Buf, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::codec::{self, frame, header_len, unframe, FRAME_HEADER_BYTES};

/// Largest accepted RPC frame: 64 MiB (bounded by `max_payload_entries` × the 512 KiB value limit,
/// and by the snapshot chunk size). Enforced when sending and when receiving.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Read buffer growth step: 64 KiB (large frames grow the buffer as their bytes arrive, so a
/// forged length cannot make the reader allocate 64 MiB up front).
const READ_CHUNK_BYTES: usize = 64 << 10;

/// One message on a server RPC connection.
#[derive(Debug, Serialize, Deserialize)]
pub enum Envelope {
    /// Client → server: call `method` (an endpoint name like `"KVS.Apply"`) with `body`
    /// (already in the binary encoding).
    Request {
        id: u64,
        method: String,
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// Server → client: the handler's answer to request `id`.
    Ok {
        id: u64,
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// Server → client: the handler refused or failed request `id`.
    Err { id: u64, error: String },
}

/// Why a frame could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The encoded message exceeds [`MAX_FRAME_BYTES`] (nothing was sent).
    #[error("rpc frame too large: {0} bytes (limit {MAX_FRAME_BYTES})")]
    TooLarge(usize),
    /// The message could not be encoded or decoded.
    #[error("rpc codec: {0}")]
    Codec(#[from] codec::CodecError),
    /// The peer sent a frame that fails its checksum or length check.
    #[error("rpc frame: {0}")]
    Frame(#[from] codec::FrameError),
    /// The connection failed or closed.
    #[error("rpc connection: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes and frames `env`. Errors: encoding fails, or the frame exceeds [`MAX_FRAME_BYTES`].
pub fn encode_frame(env: &Envelope) -> Result<Vec<u8>, WireError> {
    let payload = codec::encode(env)?;
    if payload.len() + FRAME_HEADER_BYTES > MAX_FRAME_BYTES {
        return Err(WireError::TooLarge(payload.len() + FRAME_HEADER_BYTES));
    }
    Ok(frame(&payload))
}

/// Reads envelopes from a byte stream. Cancel-safe: bytes already read stay buffered if a
/// `next` future is dropped (so it can sit in a `tokio::select!` or under a timeout).
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps the read half of a connection.
    pub fn new(inner: R) -> Self {
        Self { inner, buf: BytesMut::with_capacity(READ_CHUNK_BYTES) }
    }

    /// The next envelope. Errors: EOF ([`WireError::Io`] with `UnexpectedEof`), a bad frame, a
    /// frame over [`MAX_FRAME_BYTES`], or an undecodable envelope.
    pub async fn next(&mut self) -> Result<Envelope, WireError> {
        loop {
            if self.buf.len() >= FRAME_HEADER_BYTES {
                let len = header_len(&self.buf[..FRAME_HEADER_BYTES], 0)?;
                let total = FRAME_HEADER_BYTES + len;
                if total > MAX_FRAME_BYTES {
                    return Err(WireError::TooLarge(total));
                }
                if self.buf.len() >= total {
                    let (payload, _) = unframe(&self.buf[..total], 0)?;
                    let env = codec::decode(payload);
                    self.buf.advance(total);
                    return Ok(env?);
                }
                self.buf.reserve((total - self.buf.len()).min(READ_CHUNK_BYTES));
            } else {
                self.buf.reserve(READ_CHUNK_BYTES);
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}
