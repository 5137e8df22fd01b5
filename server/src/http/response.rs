//! The response side: the app writes a raw HTTP response; this writer reads the head it
//! writes, then frames the body so the connection can stay open: `Content-Length`
//! passes through, no length on HTTP/1.1 becomes chunked, no length on HTTP/1.0 ends at
//! close. `HEAD`, 204 and 304 responses carry no body bytes.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use super::body::Exchange;

/// Largest response head an app may write.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most header lines in a response head.
const MAX_RESPONSE_HEADERS: usize = 128;
/// Largest write gathered in memory (a chunk's size line, data and CRLF; the head and
/// the first body bytes); bigger data is written straight from the app's buffer.
const FLUSH_AT: usize = 16 * 1024;
/// Request body bytes the server reads and drops, after the app returns, to keep the
/// connection open; a larger unread body closes it instead.
pub const DRAIN_LIMIT: u64 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Still reading the app's head.
    Head,
    /// `Content-Length` bytes left to pass.
    Length(u64),
    /// Each write becomes a chunk.
    Chunked,
    /// Passed as is; the connection closes at the end.
    UntilClose,
    /// Body bytes are dropped (`HEAD`, 204, 304).
    NoBody,
}

/// The writer handed to the app.
pub struct Framer<'a, W> {
    out: W,
    exchange: &'a Exchange,
    is_head: bool,
    minor: u8,
    keep_alive: bool,
    /// Set when the server stops: read when the head goes out, so a response that
    /// started before the stop and ends after it still says `Connection: close`.
    stopping: Option<&'a AtomicBool>,
    head: Vec<u8>,
    mode: Mode,
    pending: Vec<u8>,
    sent_any: bool,
    close: bool,
    status: u16,
    /// The connection's descriptor, when it has one (`uwsgi.connection_fd()`, and the
    /// websocket and chunked-input functions read the client through it).
    fd: Option<i32>,
}

impl<W> std::fmt::Debug for Framer<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framer")
            .field("mode", &self.mode)
            .field("close", &self.close)
            .finish_non_exhaustive()
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

impl<'a, W: Write> Framer<'a, W> {
    /// `keep_alive`: whether the connection may stay open as far as the request goes.
    pub fn new(out: W, exchange: &'a Exchange, is_head: bool, minor: u8, keep_alive: bool) -> Self {
        Framer {
            out,
            exchange,
            is_head,
            minor,
            keep_alive,
            stopping: None,
            head: Vec::new(),
            mode: Mode::Head,
            pending: Vec::with_capacity(FLUSH_AT),
            sent_any: false,
            close: false,
            status: 0,
            fd: None,
        }
    }

    /// Gives the app the connection's descriptor (see [`crate::app::Output::raw_fd`]).
    pub fn with_fd(mut self, fd: Option<i32>) -> Self {
        self.fd = fd;
        self
    }

    /// Closes the connection after the response if `stopping` is set by the time its
    /// head is written.
    pub fn closing_when(mut self, stopping: &'a AtomicBool) -> Self {
        self.stopping = Some(stopping);
        self
    }

    /// The final status sent, 0 if none yet.
    pub fn status(&self) -> u16 {
        self.status
    }

    fn send_pending(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.sent_any = true;
            let result = self.out.write_all(&self.pending);
            self.pending.clear();
            result?;
        }
        Ok(())
    }

    fn push(&mut self, data: &[u8]) -> io::Result<()> {
        if self.pending.len() + data.len() <= FLUSH_AT {
            self.pending.extend_from_slice(data);
            return Ok(());
        }
        self.send_pending()?;
        if data.len() >= FLUSH_AT {
            self.sent_any = true;
            self.out.write_all(data)
        } else {
            self.pending.extend_from_slice(data);
            Ok(())
        }
    }

    /// Reads the app's head and writes ours: its status line and headers without
    /// `Connection`/`Keep-Alive`, then the framing and connection headers we chose.
    fn start(&mut self, head: &[u8]) -> io::Result<()> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => {
                return Err(invalid(
                    "the application wrote an invalid HTTP response head",
                ));
            }
        }
        let code = response.code.unwrap_or(500);
        if (100..200).contains(&code) && code != 101 {
            // An interim response: passed on, the final head comes next.
            self.push(head)?;
            return self.send_pending();
        }
        let mut length: Option<u64> = None;
        let mut transfer_encoding = false;
        let mut app_close = false;
        for header in response.headers.iter() {
            let name = header.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let value = header.value.trim_ascii();
                let n = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| invalid("the application wrote an invalid Content-Length"))?;
                if length.is_some_and(|old| old != n) {
                    return Err(invalid(
                        "the application wrote two different Content-Length",
                    ));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                transfer_encoding = true;
            } else if name.eq_ignore_ascii_case(b"connection") {
                app_close |= has_token(header.value, b"close");
            }
        }
        self.mode = if code == 101 {
            Mode::UntilClose
        } else if self.is_head || code == 204 || code == 304 {
            Mode::NoBody
        } else if transfer_encoding {
            // The app framed the body itself: passed through, ended by closing.
            Mode::UntilClose
        } else if let Some(n) = length {
            Mode::Length(n)
        } else if self.minor >= 1 {
            Mode::Chunked
        } else {
            Mode::UntilClose
        };
        let remaining = self.exchange.remaining.load(Ordering::Relaxed);
        self.close = !self.keep_alive
            || self.stopping.is_some_and(|s| s.load(Ordering::Relaxed))
            || app_close
            || self.mode == Mode::UntilClose
            || remaining > DRAIN_LIMIT
            || (remaining > 0 && self.exchange.continue_pending.load(Ordering::Relaxed));
        self.status = code;
        self.exchange
            .response_started
            .store(true, Ordering::Relaxed);
        if code == 101 {
            // Switching protocols: the head goes out as written.
            self.push(head)?;
            return self.send_pending();
        }
        let status_line_end = head
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(head.len(), |i| i + 2);
        let mut out = Vec::with_capacity(head.len() + 64);
        out.extend_from_slice(&head[..status_line_end]);
        for header in response.headers.iter() {
            let name = header.name.as_bytes();
            if name.eq_ignore_ascii_case(b"connection") || name.eq_ignore_ascii_case(b"keep-alive")
            {
                continue;
            }
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(header.value);
            out.extend_from_slice(b"\r\n");
        }
        if self.mode == Mode::Chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if self.minor == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        self.push(&out)?;
        if self.exchange.continue_pending.load(Ordering::Relaxed) {
            // The client waits for 100 Continue or a final response: give it this one.
            self.send_pending()?;
        }
        Ok(())
    }

    fn body(&mut self, data: &[u8]) -> io::Result<()> {
        match self.mode {
            Mode::Head => Err(invalid("body before the head")),
            Mode::NoBody => Ok(()),
            Mode::UntilClose => self.push(data),
            Mode::Length(left) => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                self.push(&data[..n])?;
                self.mode = Mode::Length(left - n as u64);
                if n < data.len() {
                    self.close = true;
                    return Err(invalid(
                        "the application wrote more than its Content-Length",
                    ));
                }
                Ok(())
            }
            Mode::Chunked => {
                if data.is_empty() {
                    return Ok(());
                }
                self.push(format!("{:x}\r\n", data.len()).as_bytes())?;
                self.push(data)?;
                self.push(b"\r\n")
            }
        }
    }

    /// Ends the response after the app returned (`ok`: it returned success). Sends a
    /// 500 if the app produced no response at all. Returns whether the connection may
    /// carry another request.
    pub fn finish(&mut self, ok: bool) -> io::Result<bool> {
        if self.mode == Mode::Head || (!ok && !self.sent_any) {
            // No complete head, or a failure before anything reached the client.
            self.pending.clear();
            self.status = 500;
            self.out.write_all(&super::error_response(500))?;
            self.out.flush()?;
            return Ok(false);
        }
        match self.mode {
            Mode::Length(left) if left > 0 => self.close = true,
            Mode::Chunked if ok => self.push(b"0\r\n\r\n")?,
            _ => {}
        }
        if !ok {
            self.close = true;
        }
        self.send_pending()?;
        self.out.flush()?;
        Ok(!self.close)
    }
}

/// Files go through the framer like any other body bytes (the default copy), so their
/// length is framed too. The descriptor is given for reading the client (websockets,
/// `uwsgi.chunked_read`); bytes written past the framer would break its framing.
impl<W: Write + Send> crate::app::Output for Framer<'_, W> {
    fn raw_fd(&self) -> Option<i32> {
        self.fd
    }
}

impl<W: Write> Write for Framer<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.mode != Mode::Head {
            // Each write of the body goes out at once (an app may stream); the head
            // waits for the first one so both leave in one packet.
            self.body(data)?;
            if !data.is_empty() {
                self.send_pending()?;
            }
            return Ok(data.len());
        }
        let searched_from = self.head.len().saturating_sub(3);
        self.head.extend_from_slice(data);
        let Some(end) = self.head[searched_from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| searched_from + i + 4)
        else {
            if self.head.len() > MAX_RESPONSE_HEAD {
                return Err(invalid("the application's response head is too large"));
            }
            return Ok(data.len());
        };
        let rest = self.head.split_off(end);
        let head = std::mem::take(&mut self.head);
        self.start(&head)?;
        if !rest.is_empty() {
            if self.mode == Mode::Head {
                // After an interim response: the rest starts the next head.
                self.write_all(&rest)?;
            } else {
                self.body(&rest)?;
                self.send_pending()?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.mode != Mode::Head {
            self.send_pending()?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame(minor: u8, is_head: bool, keep: bool, writes: &[&[u8]]) -> (String, bool) {
        let exchange = Exchange::default();
        let mut out = Vec::new();
        let mut framer = Framer::new(&mut out, &exchange, is_head, minor, keep);
        let mut ok = true;
        for w in writes {
            ok &= framer.write_all(w).is_ok();
        }
        let keep = framer.finish(ok).unwrap();
        (String::from_utf8(out).unwrap(), keep)
    }

    #[test]
    fn length_passes_through_and_keeps_alive() {
        let (out, keep) = frame(
            1,
            false,
            true,
            &[
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n",
                b"hel",
                b"lo",
            ],
        );
        assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        assert!(keep);
    }

    #[test]
    fn no_length_is_chunked_on_1_1_and_closed_on_1_0() {
        let (out, keep) = frame(
            1,
            false,
            true,
            &[b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nab", b"", b"cde"],
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nX: y\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
        );
        assert!(keep);
        let (out, keep) = frame(0, false, true, &[b"HTTP/1.0 200 OK\r\n\r\nabc"]);
        assert_eq!(out, "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nabc");
        assert!(!keep);
    }

    #[test]
    fn head_drops_the_body_and_http_1_0_keep_alive_is_announced() {
        let (out, keep) = frame(
            0,
            true,
            true,
            &[b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc"],
        );
        assert_eq!(
            out,
            "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n"
        );
        assert!(keep);
    }

    /// Records every write call separately.
    struct Calls(Vec<Vec<u8>>);

    impl Write for Calls {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.push(data.to_vec());
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_head_waits_for_the_first_body_write_then_writes_stream() {
        let exchange = Exchange::default();
        let mut calls = Calls(Vec::new());
        let mut framer = Framer::new(&mut calls, &exchange, false, 1, true);
        framer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n")
            .unwrap();
        framer.write_all(b"abc").unwrap();
        framer.write_all(b"def").unwrap();
        assert!(framer.finish(true).unwrap());
        assert_eq!(
            calls.0,
            [
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc".to_vec(),
                b"def".to_vec()
            ]
        );
    }

    #[test]
    fn bad_heads_become_500_and_short_bodies_close() {
        let (out, keep) = frame(1, false, true, &[b"nonsense\r\n\r\n"]);
        assert!(out.starts_with("HTTP/1.1 500"), "{out}");
        assert!(!keep);
        let (out, keep) = frame(1, false, true, &[]);
        assert!(out.starts_with("HTTP/1.1 500"), "{out}");
        assert!(!keep);
        let (out, keep) = frame(
            1,
            false,
            true,
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab"],
        );
        assert!(out.ends_with("Connection: close\r\n\r\nab") || out.ends_with("\r\n\r\nab"));
        assert!(!keep);
    }
}
