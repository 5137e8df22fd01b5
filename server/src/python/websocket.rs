//! Websockets (RFC 6455) for `uwsgi.websocket_*`, as uWSGI 2.0 serves them: the
//! handshake answers `101` with `Sec-WebSocket-Accept`; messages are read from the
//! client's socket (masked frames, fragments joined, pings answered, a close answered
//! and reported as an error) and written as single unmasked frames; the server pings an
//! idle client every `PING_FREQ` and gives up when no pong comes within
//! `PONG_TOLERANCE`; a frame or message larger than `--websockets-max-size` KiB ends
//! the session.

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// The GUID RFC 6455 appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// uWSGI's `--websockets-ping-freq` default.
pub const PING_FREQ: Duration = Duration::from_secs(30);
/// uWSGI's `--websockets-pong-tolerance` default.
pub const PONG_TOLERANCE: Duration = Duration::from_secs(3);

/// Opcodes.
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for `key`: base64 of the SHA-1 of the key and the GUID.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64(&sha.digest().bytes())
}

/// Standard base64 with padding (only the 20 bytes of a SHA-1 are ever encoded).
fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One frame as the server writes it: FIN set, unmasked.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    let len = payload.len();
    match (u8::try_from(len), u16::try_from(len)) {
        (Ok(tiny), _) if tiny < 126 => out.push(tiny),
        (_, Ok(short)) => {
            out.push(126);
            out.extend_from_slice(&short.to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A text frame (`websocket_send`) or a binary one (`websocket_send_binary`).
pub fn message_frame(payload: &[u8], binary: bool) -> Vec<u8> {
    frame(if binary { BINARY } else { TEXT }, payload)
}

/// A frame read from the client, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("frame of {size} bytes, over --websockets-max-size ({max} bytes)")]
    TooLarge { size: u64, max: u64 },
    #[error("continuation frame without a message to continue")]
    StrayContinuation,
    #[error("the client closed the websocket")]
    Closed,
    #[error("no PONG received in {0} seconds")]
    NoPong(u64),
    #[error("{0}")]
    Io(String),
}

/// Reads one frame from the front of `buf`: `Ok(None)` when incomplete, else the
/// frame and the bytes it took. `max`: the largest payload accepted.
pub fn parse_frame(buf: &[u8], max: u64) -> Result<Option<(Frame, usize)>, WsError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let mut at = 2;
    let size = match buf[1] & 0x7f {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            at = 4;
            u64::from(u16::from_be_bytes([b[0], b[1]]))
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            at = 10;
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(b);
            u64::from_be_bytes(bytes)
        }
        n => u64::from(n),
    };
    if size > max {
        return Err(WsError::TooLarge { size, max });
    }
    let mask = if masked {
        let Some(m) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let Some(data) = buf.get(at..at.saturating_add(size)) else {
        return Ok(None);
    };
    let mut payload = data.to_vec();
    if let Some(mask) = mask {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    Ok(Some((
        Frame {
            fin,
            opcode,
            payload,
        },
        at + size,
    )))
}

/// What a received frame asks the session to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A whole message for the application.
    Message(Vec<u8>),
    /// Write this frame back (a pong), then go on reading.
    Reply(Vec<u8>),
    /// Nothing to do: go on reading.
    Continue,
}

/// One request's websocket state.
#[derive(Debug)]
pub struct Session {
    /// Bytes read from the client and not parsed yet.
    pub buf: Vec<u8>,
    /// The message being assembled from fragments.
    partial: Option<Vec<u8>>,
    /// The session ended (a close came, or an error): every call fails.
    pub closed: bool,
    pub last_ping: Option<Instant>,
    pub last_pong: Instant,
    /// The largest frame or message, bytes.
    pub max: u64,
}

impl Session {
    pub fn new(max: u64) -> Session {
        Session {
            buf: Vec::new(),
            partial: None,
            closed: false,
            last_ping: None,
            last_pong: Instant::now(),
            max,
        }
    }

    /// Takes the next complete frame out of the buffer and says what to do with it;
    /// `Ok(None)` when more bytes are needed.
    pub fn step(&mut self) -> Result<Option<Step>, WsError> {
        let Some((frame, used)) = parse_frame(&self.buf, self.max)? else {
            return Ok(None);
        };
        self.buf.drain(..used);
        let step = match frame.opcode {
            CONTINUATION => {
                let Some(partial) = self.partial.as_mut() else {
                    return Err(WsError::StrayContinuation);
                };
                partial.extend_from_slice(&frame.payload);
                let size = partial.len() as u64;
                if size > self.max {
                    return Err(WsError::TooLarge {
                        size,
                        max: self.max,
                    });
                }
                if frame.fin {
                    Step::Message(self.partial.take().unwrap_or_default())
                } else {
                    Step::Continue
                }
            }
            TEXT | BINARY => {
                if frame.fin {
                    Step::Message(frame.payload)
                } else {
                    self.partial = Some(frame.payload);
                    Step::Continue
                }
            }
            CLOSE => {
                self.closed = true;
                return Err(WsError::Closed);
            }
            PING => Step::Reply(frame_pong(&frame.payload)),
            PONG => {
                self.last_pong = Instant::now();
                Step::Continue
            }
            _ => Step::Continue,
        };
        Ok(Some(step))
    }

    /// After `PING_FREQ` without traffic: a ping to send, or the error when the last
    /// ping got no pong within `PONG_TOLERANCE`.
    pub fn keepalive(&mut self, now: Instant) -> Result<Option<Vec<u8>>, WsError> {
        match self.last_ping {
            Some(ping) if self.last_pong < ping => {
                if now.duration_since(ping) > PONG_TOLERANCE {
                    return Err(WsError::NoPong(PONG_TOLERANCE.as_secs()));
                }
                Ok(None)
            }
            Some(ping) if now.duration_since(ping) < PING_FREQ => Ok(None),
            _ => {
                self.last_ping = Some(now);
                Ok(Some(frame(PING, b"")))
            }
        }
    }
}

/// The pong answering a ping (it echoes the ping's payload, as RFC 6455 asks).
fn frame_pong(payload: &[u8]) -> Vec<u8> {
    frame(PONG, payload)
}

/// The close frame the server answers a client's close with (uWSGI's `\x88\x00`).
pub fn close_frame() -> Vec<u8> {
    frame(CLOSE, b"")
}

thread_local! {
    /// The current request's websocket, once `websocket_handshake` or a first
    /// `websocket_recv` opened it.
    pub static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

/// Forgets the previous request's websocket.
pub fn reset() {
    SESSION.with(|s| s.borrow_mut().take());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        let len = u16::try_from(payload.len()).unwrap();
        if len < 126 {
            out.push(0x80 | u8::try_from(len).unwrap());
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&len.to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn accept_key_of_rfc_6455() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[test]
    fn server_frames_use_the_shortest_length() {
        assert_eq!(frame(TEXT, b"Hello"), b"\x81\x05Hello");
        let f = frame(BINARY, &[0; 300]);
        assert_eq!(&f[..4], &[0x82, 126, 1, 44]);
        let f = frame(BINARY, &vec![0; 70_000]);
        assert_eq!(&f[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn frames_parse_at_every_split_and_unmask() {
        let bytes = masked(TEXT, true, b"Hello");
        for cut in 0..bytes.len() {
            assert_eq!(parse_frame(&bytes[..cut], 1024), Ok(None));
        }
        let (frame, used) = parse_frame(&bytes, 1024).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(frame.payload, b"Hello");
        assert!(matches!(
            parse_frame(&masked(BINARY, true, &[1; 200]), 100),
            Err(WsError::TooLarge {
                size: 200,
                max: 100
            })
        ));
    }

    #[test]
    fn sessions_join_fragments_answer_pings_and_stop_at_close() {
        let mut s = Session::new(1024);
        s.buf.extend(masked(TEXT, false, b"Hel"));
        s.buf.extend(masked(PING, true, b"p"));
        s.buf.extend(masked(CONTINUATION, true, b"lo"));
        s.buf.extend(masked(CLOSE, true, b""));
        assert_eq!(s.step(), Ok(Some(Step::Continue)));
        assert_eq!(s.step(), Ok(Some(Step::Reply(b"\x8a\x01p".to_vec()))));
        assert_eq!(s.step(), Ok(Some(Step::Message(b"Hello".to_vec()))));
        assert_eq!(s.step(), Err(WsError::Closed));
        assert!(s.closed);
        let mut s = Session::new(1024);
        s.buf.extend(masked(CONTINUATION, true, b"x"));
        assert_eq!(s.step(), Err(WsError::StrayContinuation));
    }

    #[test]
    fn pings_go_out_when_idle_and_a_missing_pong_ends_the_session() {
        let mut s = Session::new(10);
        let t0 = Instant::now();
        assert_eq!(s.keepalive(t0), Ok(Some(b"\x89\x00".to_vec())));
        assert_eq!(s.keepalive(t0 + Duration::from_secs(1)), Ok(None));
        assert!(s.keepalive(t0 + Duration::from_secs(5)).is_err());
    }
}
