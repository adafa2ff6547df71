//! Wire framing of the LAN transport.
//!
//! A frame is `length: u32 big-endian ‖ type: u8 ‖ payload`, where `length` counts the type
//! byte and the payload. A frame whose length exceeds the receiver's cap is refused before a
//! byte of its payload is read; the connection is then dropped.
//!
//! A [`FrameType::Message`] payload is exactly the bytes the sender passed to
//! `Transport::send` (a SPEC §3 signed message or envelope), so it can be decoded with
//! [`crate::messages::decode`] as is.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes before the payload: the 4-byte length and the type byte.
pub const HEADER_LEN: usize = 5;

/// Smallest cap that still fits the hello frames.
pub const MIN_FRAME_CAP: usize = 128;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// First hello step: the sender's chain id and a fresh nonce (see [`super::hello`]).
    Challenge = 1,
    /// Second hello step: the sender's address, listen port and signature.
    Proof = 2,
    /// A protocol message: the payload is the bytes given to `send`.
    Message = 3,
    /// Keepalive probe; answered with [`FrameType::Pong`].
    Ping = 4,
    /// Keepalive answer.
    Pong = 5,
}

impl FrameType {
    /// The type for a wire byte, if it is one.
    pub fn from_byte(b: u8) -> Option<FrameType> {
        Some(match b {
            1 => FrameType::Challenge,
            2 => FrameType::Proof,
            3 => FrameType::Message,
            4 => FrameType::Ping,
            5 => FrameType::Pong,
            _ => return None,
        })
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is.
    pub kind: FrameType,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Why no frame could be read; every one of them ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is above the cap.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversized {
        /// The announced length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A length of zero: not even a type byte.
    #[error("empty frame")]
    Empty,
    /// The type byte is not a [`FrameType`].
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed inside a frame")]
    Truncated,
    /// The socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Appends the encoding of one frame to `out`.
///
/// Panics if `payload` cannot be described by a `u32` length (never the case below the cap).
pub fn encode_into(kind: FrameType, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len() + 1).expect("frame length fits in u32");
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

/// The encoding of one frame.
pub fn encode(kind: FrameType, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(kind, payload, &mut out);
    out
}

/// Parses one frame from the front of `buf`: `Ok(None)` until it is complete, else the frame
/// and how many bytes it took. Errors as soon as the header is wrong.
pub fn parse(buf: &[u8], max_frame_bytes: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max_frame_bytes {
        return Err(FrameError::Oversized {
            len,
            max: max_frame_bytes,
        });
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let kind = FrameType::from_byte(buf[4]).ok_or(FrameError::UnknownType(buf[4]))?;
    let total = 4 + len;
    if buf.len() < total {
        return Ok(None);
    }
    let payload = buf[HEADER_LEN..total].to_vec();
    Ok(Some((Frame { kind, payload }, total)))
}

/// Reads frames from a byte stream, buffering so that [`FrameReader::next_frame`] can be
/// cancelled (e.g. by a timeout) without losing or splitting a frame.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    max_frame_bytes: usize,
}

/// How much the reader asks the socket for at least.
const READ_CHUNK: usize = 16 * 1024;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader refusing frames longer than `max_frame_bytes`.
    pub fn new(inner: R, max_frame_bytes: usize) -> Self {
        FrameReader {
            inner,
            buf: Vec::new(),
            start: 0,
            max_frame_bytes,
        }
    }

    /// The next frame. Cancel-safe: bytes already read stay buffered for the next call.
    pub async fn next_frame(&mut self) -> Result<Frame, FrameError> {
        loop {
            if let Some((frame, used)) = parse(&self.buf[self.start..], self.max_frame_bytes)? {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                return Ok(frame);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            // Room for the rest of the current frame (its length is known and capped) or a chunk.
            let want = if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                (4 + len as usize - self.buf.len()).max(READ_CHUNK)
            } else {
                READ_CHUNK
            };
            self.buf.reserve(want);
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Err(if self.buf.is_empty() {
                    FrameError::Closed
                } else {
                    FrameError::Truncated
                });
            }
        }
    }

    /// Changes the cap (the hello runs under a small one; messages under the configured one).
    pub fn set_max_frame_bytes(&mut self, max_frame_bytes: usize) {
        self.max_frame_bytes = max_frame_bytes;
    }

    /// The underlying stream.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Writes one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: FrameType,
    payload: &[u8],
) -> std::io::Result<()> {
    w.write_all(&encode(kind, payload)).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_partial_input() {
        let bytes = encode(FrameType::Message, b"hello");
        assert_eq!(bytes, [0, 0, 0, 6, 3, b'h', b'e', b'l', b'l', b'o']);
        for cut in 0..bytes.len() {
            assert!(parse(&bytes[..cut], 1024).unwrap().is_none(), "cut {cut}");
        }
        let (frame, used) = parse(&bytes, 1024).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(frame.kind, FrameType::Message);
        assert_eq!(frame.payload, b"hello");
    }

    #[test]
    fn bad_headers_are_refused_before_the_payload() {
        assert!(matches!(
            parse(&[0, 0, 4, 1], 1024),
            Err(FrameError::Oversized { len: 1025, .. })
        ));
        assert!(matches!(parse(&[0, 0, 0, 0], 1024), Err(FrameError::Empty)));
        assert!(matches!(
            parse(&[0, 0, 0, 1, 99], 1024),
            Err(FrameError::UnknownType(99))
        ));
    }

    #[tokio::test]
    async fn reader_splits_a_stream_of_frames() {
        let mut wire = encode(FrameType::Ping, b"");
        encode_into(FrameType::Message, &[7u8; 40_000], &mut wire);
        encode_into(FrameType::Pong, b"", &mut wire);
        wire.extend_from_slice(&[0, 0]);
        let mut r = FrameReader::new(&wire[..], 64 * 1024);
        assert_eq!(r.next_frame().await.unwrap().kind, FrameType::Ping);
        assert_eq!(r.next_frame().await.unwrap().payload.len(), 40_000);
        assert_eq!(r.next_frame().await.unwrap().kind, FrameType::Pong);
        assert!(matches!(r.next_frame().await, Err(FrameError::Truncated)));
    }
}
