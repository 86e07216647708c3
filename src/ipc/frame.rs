//! The codec: u32 big-endian length + CBOR. Nothing is parsed twice or by hand.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::FrameError;

/// The largest frame body anyone may send; bigger frames close the connection.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Cap of one file read or written by the agent's file tools: the content
/// crosses the socket in one frame, with room left for the rest of the message.
pub const MAX_FILE_BYTES: u64 = 448 * 1024;
const _: () = assert!(MAX_FILE_BYTES < MAX_FRAME_BYTES as u64);

/// Encodes a message, refusing one that would exceed the cap.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::new();
    ciborium::ser::into_writer(value, &mut buf).map_err(|e| FrameError::Encode(e.to_string()))?;
    if buf.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len: buf.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(buf)
}

/// Decodes exactly one message; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    let mut rest = bytes;
    let value =
        ciborium::de::from_reader(&mut rest).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Reads one frame body. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len_buf = [0u8; 4];
    match r.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len_buf) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Writes one frame (length prefix and body) and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> Result<(), FrameError> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        len: body.len(),
        max: MAX_FRAME_BYTES,
    })?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{ComponentRequest, Frame};

    #[test]
    fn round_trip() {
        let f = Frame {
            id: 7,
            body: ComponentRequest::Ping,
        };
        let bytes = encode(&f).unwrap();
        let back: Frame<ComponentRequest> = decode(&bytes).unwrap();
        assert_eq!(back.id, 7);
        assert!(matches!(back.body, ComponentRequest::Ping));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&Frame {
            id: 1,
            body: ComponentRequest::Ping,
        })
        .unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<Frame<ComponentRequest>>(&bytes),
            Err(FrameError::TrailingBytes(1))
        ));
    }

    #[test]
    fn garbage_and_unknown_variants_are_malformed() {
        assert!(matches!(
            decode::<Frame<ComponentRequest>>(&[0xff, 0x00, 0x13]),
            Err(FrameError::Malformed(_))
        ));
        #[derive(serde::Serialize)]
        enum Other {
            Launch,
        }
        let bytes = encode(&Frame {
            id: 1,
            body: Other::Launch,
        })
        .unwrap();
        assert!(matches!(
            decode::<Frame<ComponentRequest>>(&bytes),
            Err(FrameError::Malformed(_))
        ));
        // Deeply nested arrays must not overflow the stack.
        let deep = vec![0x81u8; 100_000];
        assert!(decode::<Frame<ComponentRequest>>(&deep).is_err());
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_reading() {
        let mut data: &[u8] = &((MAX_FRAME_BYTES as u32) + 1).to_be_bytes();
        assert!(matches!(
            read_frame(&mut data).await,
            Err(FrameError::TooLarge { .. })
        ));
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty).await.unwrap().is_none());
    }
}
