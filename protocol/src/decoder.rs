//! A streaming decoder for the server side of a connection.
//!
//! Feed it bytes as they arrive, in any chunking; it hands out [`Event`]s that borrow
//! from its buffer: a [`Packet`] once its header and block are complete, then the
//! request body (`CONTENT_LENGTH` bytes, or a cache magic value) in [`Event::Body`]
//! chunks as they arrive — a body is never buffered whole and can never be read as the
//! next packet. Running out of bytes is [`DecodeError::Incomplete`]; a violation of the
//! format or of the [`Limits`] is [`DecodeError::Invalid`], after which the stream cannot
//! be resynchronised and every further call returns the same error.

use crate::error::{DecodeError, InvalidPacket};
use crate::limits::Limits;
use crate::packet::Packet;

/// What the decoder produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete packet (header and block).
    Packet(Packet<'a>),
    /// A chunk of the body of the last packet.
    Body {
        /// The bytes.
        data: &'a [u8],
        /// `true` on the chunk that completes the body.
        last: bool,
    },
}

/// Incremental decoder over a byte stream.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    limits: Limits,
    buf: Vec<u8>,
    /// Start of the bytes not yet handed out.
    start: usize,
    /// Bytes handed out by the last event, released on the next call.
    pending: usize,
    /// Body bytes of the current packet still to come.
    body_remaining: u64,
    failed: Option<InvalidPacket>,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl StreamDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        StreamDecoder {
            limits,
            buf: Vec::new(),
            start: 0,
            pending: 0,
            body_remaining: 0,
            failed: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn release(&mut self) {
        self.start += self.pending;
        self.pending = 0;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    fn compact(&mut self) {
        self.release();
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// A writable region of `len` bytes at the end of the buffer, so a socket can read
    /// straight into it; follow with [`StreamDecoder::commit`].
    pub fn prepare(&mut self, len: usize) -> &mut [u8] {
        self.compact();
        let old = self.buf.len();
        self.buf.resize(old + len, 0);
        &mut self.buf[old..]
    }

    /// Keeps the first `filled` bytes of the region given by the last
    /// [`StreamDecoder::prepare`] and drops the rest.
    pub fn commit(&mut self, prepared: usize, filled: usize) {
        let keep = self.buf.len() - prepared + filled.min(prepared);
        self.buf.truncate(keep);
    }

    /// Bytes received but not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start - self.pending
    }

    /// Body bytes of the current packet still expected.
    pub fn body_remaining(&self) -> u64 {
        self.body_remaining
    }

    /// `true` at a packet boundary with nothing buffered: a clean place for the peer to
    /// close the connection.
    pub fn is_idle(&self) -> bool {
        self.failed.is_none() && self.body_remaining == 0 && self.buffered() == 0
    }

    /// The next event, or why there is none yet.
    pub fn next_event(&mut self) -> Result<Event<'_>, DecodeError> {
        if let Some(reason) = &self.failed {
            return Err(DecodeError::Invalid(reason.clone()));
        }
        self.release();
        let available = &self.buf[self.start..];

        if self.body_remaining > 0 {
            if available.is_empty() {
                return Err(DecodeError::incomplete(
                    usize::try_from(self.body_remaining).unwrap_or(usize::MAX),
                ));
            }
            let take = usize::try_from(self.body_remaining)
                .map_or(available.len(), |r| r.min(available.len()));
            // take <= available.len(), which fits u64 on every supported target.
            self.body_remaining -= u64::try_from(take).unwrap_or(self.body_remaining);
            self.pending = take;
            return Ok(Event::Body {
                data: &available[..take],
                last: self.body_remaining == 0,
            });
        }

        match Packet::decode(available, &self.limits) {
            Ok(decoded) => {
                self.pending = decoded.consumed;
                self.body_remaining = decoded.body_len;
                Ok(Event::Packet(decoded.packet))
            }
            Err(DecodeError::Invalid(reason)) => {
                self.failed = Some(reason.clone());
                Err(DecodeError::Invalid(reason))
            }
            Err(incomplete) => Err(incomplete),
        }
    }

    /// Call when the peer closed: `Ok` if the stream ended at a packet boundary, the
    /// stored error if it failed, otherwise `Incomplete` with what was missing.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if let Some(reason) = &self.failed {
            return Err(DecodeError::Invalid(reason.clone()));
        }
        if self.body_remaining > 0 {
            let have = u64::try_from(self.buffered()).unwrap_or(u64::MAX);
            let missing = self.body_remaining.saturating_sub(have);
            if missing > 0 {
                return Err(DecodeError::incomplete(
                    usize::try_from(missing).unwrap_or(usize::MAX),
                ));
            }
        }
        if self.buffered() > 0 && self.body_remaining == 0 {
            let rest = &self.buf[self.start + self.pending..];
            return match Packet::decode(rest, &self.limits) {
                Err(err) => Err(err),
                Ok(_) => Ok(()),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vars::VarsBuilder;

    #[test]
    fn request_then_body_then_next_packet() {
        let vars =
            VarsBuilder::from_pairs([("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "5")]).unwrap();
        let mut stream = Vec::new();
        crate::packet::Request::new(crate::Modifier1::Wsgi, vars.as_vars()).encode(&mut stream);
        stream.extend_from_slice(b"hello");
        stream.extend_from_slice(&[0x64, 0, 0, 0]);

        let mut dec = StreamDecoder::default();
        for chunk in stream.chunks(3) {
            dec.feed(chunk);
        }
        match dec.next_event().unwrap() {
            Event::Packet(Packet::Request(req)) => assert_eq!(req.content_length(), 5),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            dec.next_event().unwrap(),
            Event::Body {
                data: b"hello",
                last: true
            }
        );
        assert!(matches!(
            dec.next_event().unwrap(),
            Event::Packet(Packet::Ping(_))
        ));
        assert_eq!(dec.next_event(), Err(DecodeError::Incomplete { needed: 4 }));
        assert!(dec.is_idle());
        assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn invalid_poisons_the_stream() {
        let mut dec = StreamDecoder::default();
        dec.feed(&[0x00, 0x88, 0x13, 0x00]); // datasize 5000 > 4096
        let want = DecodeError::Invalid(InvalidPacket::DatasizeTooLarge {
            datasize: 5000,
            max: 4096,
        });
        assert_eq!(dec.next_event(), Err(want.clone()));
        dec.feed(&[0x64, 0, 0, 0]);
        assert_eq!(dec.next_event(), Err(want.clone()));
        assert_eq!(dec.finish(), Err(want));
    }

    #[test]
    fn prepare_and_commit_read_in_place() {
        let mut dec = StreamDecoder::default();
        let region = dec.prepare(16);
        region[..4].copy_from_slice(&[0x64, 0, 0, 0]);
        dec.commit(16, 4);
        assert_eq!(dec.buffered(), 4);
        assert!(matches!(
            dec.next_event().unwrap(),
            Event::Packet(Packet::Ping(_))
        ));
    }

    #[test]
    fn truncated_body_is_reported_at_finish() {
        let vars = VarsBuilder::from_pairs([("CONTENT_LENGTH", "10")]).unwrap();
        let mut stream = Vec::new();
        crate::packet::Request::new(crate::Modifier1::Wsgi, vars.as_vars()).encode(&mut stream);
        stream.extend_from_slice(b"abc");
        let mut dec = StreamDecoder::default();
        dec.feed(&stream);
        assert!(matches!(dec.next_event().unwrap(), Event::Packet(_)));
        assert_eq!(
            dec.next_event().unwrap(),
            Event::Body {
                data: b"abc",
                last: false
            }
        );
        assert_eq!(dec.finish(), Err(DecodeError::Incomplete { needed: 7 }));
    }
}
