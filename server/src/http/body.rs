//! Reading a connection: the buffered input every request shares (so bytes after one
//! request stay for the next), the `Content-Length` body reader handed to the app, and
//! the chunked decoder.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::request::Reject;

/// Read timeouts, set on the socket only when they change.
pub struct Timeouts<'a> {
    set: &'a (dyn Fn(Option<Duration>) -> io::Result<()> + Sync),
    current: Option<Option<Duration>>,
}

impl std::fmt::Debug for Timeouts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeouts")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl<'a> Timeouts<'a> {
    /// `initial` is what the socket has now (inherited from the listener).
    pub fn new(
        set: &'a (dyn Fn(Option<Duration>) -> io::Result<()> + Sync),
        initial: Option<Duration>,
    ) -> Self {
        Timeouts {
            set,
            current: Some(initial),
        }
    }

    /// The timeout the socket has now, as far as this knows (`None`: unknown).
    pub fn current(&self) -> Option<Option<Duration>> {
        self.current
    }

    fn apply(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // A zero duration means "no time left", not "block forever".
        let timeout = timeout.map(|t| t.max(Duration::from_millis(1)));
        if self.current != Some(timeout) {
            (self.set)(timeout)?;
            self.current = Some(timeout);
        }
        Ok(())
    }
}

fn timed_out(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, "the client sent nothing in time")
        }
        _ => e,
    }
}

/// A connection's read side: a buffer holding bytes received but not consumed yet.
pub struct Input<'a, S> {
    stream: &'a S,
    buf: &'a mut Vec<u8>,
    start: usize,
    end: usize,
    /// The socket's read timeouts.
    pub timeouts: Timeouts<'a>,
}

impl<S> std::fmt::Debug for Input<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("buffered", &(self.end - self.start))
            .finish_non_exhaustive()
    }
}

impl<'a, S> Input<'a, S>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    /// `capacity`: the buffer's size, at least the largest head plus a little.
    pub fn new(
        stream: &'a S,
        buf: &'a mut Vec<u8>,
        capacity: usize,
        timeouts: Timeouts<'a>,
    ) -> Self {
        // The bytes in it do not matter (nothing is available yet): zeroed only when
        // it grows, not at every turn of a connection.
        if buf.len() != capacity {
            buf.clear();
            buf.resize(capacity, 0);
        }
        Input {
            stream,
            buf,
            start: 0,
            end: 0,
            timeouts,
        }
    }

    /// Bytes received and not consumed.
    pub fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Puts `bytes` (kept from an earlier turn on this connection) in front of
    /// whatever is read next. Only as much as the buffer holds is taken.
    pub fn preload(&mut self, bytes: &[u8]) {
        self.consume(self.end - self.start);
        let n = bytes.len().min(self.buf.len());
        self.buf[..n].copy_from_slice(&bytes[..n]);
        self.end = n;
    }

    /// Whether the buffer has room for another read (after moving what is left to its
    /// start).
    pub fn has_room(&self) -> bool {
        self.end - self.start < self.buf.len()
    }

    /// Reads what the socket holds right now, through `read_now` (a read that never
    /// waits), into the buffer as [`Input::fill`] does. Returns what `read_now` returns:
    /// 0 at end of stream (or when the buffer is full, see [`Input::has_room`]).
    pub fn fill_now(
        &mut self,
        read_now: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Ok(0);
        }
        let n = read_now(&mut self.buf[self.end..])?;
        self.end += n.min(self.buf.len() - self.end);
        Ok(n)
    }

    /// Marks `n` available bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes into the buffer (moving what is left to its start first, when
    /// the end is reached). Returns 0 at end of stream or when the buffer is full.
    pub fn fill(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Ok(0);
        }
        self.timeouts.apply(timeout)?;
        let mut reader = self.stream;
        let n = reader.read(&mut self.buf[self.end..]).map_err(timed_out)?;
        self.end += n;
        Ok(n)
    }

    /// Reads straight into `out` (used when nothing is buffered, to skip a copy).
    fn read_direct(&mut self, out: &mut [u8], timeout: Option<Duration>) -> io::Result<usize> {
        self.timeouts.apply(timeout)?;
        let mut reader = self.stream;
        reader.read(out).map_err(timed_out)
    }

    /// Reads one CRLF-terminated line of at most `max` bytes, returning its length (the
    /// line is the first bytes of [`Input::available`], the CRLF consumed after it by
    /// [`Input::consume_line`]).
    fn line(&mut self, max: usize, timeout: Option<Duration>) -> Result<usize, BodyError> {
        let mut searched = 0;
        loop {
            let available = self.available();
            if let Some(i) = available[searched..].iter().position(|b| *b == b'\n') {
                let i = searched + i;
                if i == 0 || available[i - 1] != b'\r' {
                    return Err(BodyError::Reject(Reject {
                        status: 400,
                        reason: "bare LF in the chunked body",
                    }));
                }
                if i - 1 > max {
                    break;
                }
                return Ok(i - 1);
            }
            searched = available.len();
            if searched > max + 1 {
                break;
            }
            if self.fill(timeout)? == 0 {
                return Err(BodyError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed inside the chunked body",
                )));
            }
        }
        Err(BodyError::Reject(Reject {
            status: 400,
            reason: "chunk-size or trailer line too long",
        }))
    }
}

/// What the body reader and the response writer share about one exchange.
#[derive(Debug, Default)]
pub struct Exchange {
    /// Body bytes the client still owes.
    pub remaining: AtomicU64,
    /// The final response head has been produced.
    pub response_started: AtomicBool,
    /// The client waits for `100 Continue` before sending the body.
    pub continue_pending: AtomicBool,
}

/// The `100 Continue` interim response.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A `Content-Length` body: buffered bytes first, then the socket, never past the
/// announced length. The first read that needs the socket sends `100 Continue` when the
/// client asked for it and no final response has started.
pub struct FixedBody<'i, 'a, S> {
    input: &'i mut Input<'a, S>,
    exchange: &'i Exchange,
    timeout: Option<Duration>,
}

impl<S> std::fmt::Debug for FixedBody<'_, '_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedBody")
            .field(
                "remaining",
                &self.exchange.remaining.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl<'i, 'a, S> FixedBody<'i, 'a, S>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    /// A reader of `exchange.remaining` bytes; `timeout` bounds each socket read.
    pub fn new(
        input: &'i mut Input<'a, S>,
        exchange: &'i Exchange,
        timeout: Option<Duration>,
    ) -> Self {
        FixedBody {
            input,
            exchange,
            timeout,
        }
    }
}

impl<S> Read for FixedBody<'_, '_, S>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let remaining = self.exchange.remaining.load(Ordering::Relaxed);
        if remaining == 0 || out.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(out.len());
        let available = self.input.available();
        let n = if available.is_empty() {
            if self.exchange.continue_pending.load(Ordering::Relaxed)
                && !self.exchange.response_started.load(Ordering::Relaxed)
            {
                let mut writer = self.input.stream;
                writer.write_all(CONTINUE)?;
                writer.flush()?;
                self.exchange
                    .continue_pending
                    .store(false, Ordering::Relaxed);
            }
            let n = self.input.read_direct(&mut out[..want], self.timeout)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the client closed with {remaining} body byte(s) unsent"),
                ));
            }
            n
        } else {
            let n = want.min(available.len());
            out[..n].copy_from_slice(&available[..n]);
            self.input.consume(n);
            n
        };
        self.exchange
            .remaining
            .store(remaining - n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Why a chunked body was not read to its end.
#[derive(Debug)]
pub enum BodyError {
    /// The client broke the chunked syntax or a limit: answer with this status.
    Reject(Reject),
    /// The socket failed or timed out.
    Io(io::Error),
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> Self {
        BodyError::Io(e)
    }
}

/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Bytes of a decoded chunked body kept in memory; the rest goes to a temporary file.
pub const CHUNKED_MEMORY: usize = 1 << 20;

/// Decodes a whole chunked body from `input`: at most `max_body` decoded bytes and
/// `max_trailers` bytes of trailer lines (which are read and dropped). Every line must
/// end with CRLF, chunk sizes are 1 to 16 hex digits, and extensions are skipped.
pub fn read_chunked<S>(
    input: &mut Input<'_, S>,
    max_body: u64,
    max_trailers: usize,
    timeout: Option<Duration>,
) -> Result<Spooled, BodyError>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    let bad = |reason| {
        BodyError::Reject(Reject {
            status: 400,
            reason,
        })
    };
    let mut body = Spooled::default();
    loop {
        let len = input.line(MAX_CHUNK_LINE, timeout)?;
        let line = &input.available()[..len];
        let digits = line
            .iter()
            .position(|b| *b == b';')
            .map_or(line, |i| &line[..i]);
        let extension = &line[digits.len()..];
        if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad("invalid chunk size"));
        }
        if extension
            .iter()
            .any(|b| b.is_ascii_control() && *b != b'\t')
        {
            return Err(bad("control byte in a chunk extension"));
        }
        let size = digits.iter().fold(0u64, |n, d| {
            n * 16 + u64::from((*d as char).to_digit(16).unwrap_or(0))
        });
        input.consume(len + 2);
        if size == 0 {
            break;
        }
        if body
            .len
            .checked_add(size)
            .is_none_or(|total| total > max_body)
        {
            return Err(BodyError::Reject(Reject {
                status: 413,
                reason: "chunked body larger than --limit-post",
            }));
        }
        let mut left = size;
        while left > 0 {
            if input.available().is_empty() && input.fill(timeout)? == 0 {
                return Err(BodyError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed inside a chunk",
                )));
            }
            let available = input.available();
            let n = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(available.len());
            body.write_all(&available[..n])?;
            input.consume(n);
            left -= n as u64;
        }
        if input.line(0, timeout)? != 0 {
            return Err(bad("chunk data longer than its size"));
        }
        input.consume(2);
    }
    let mut trailers = 0;
    loop {
        let len = input.line(MAX_CHUNK_LINE, timeout)?;
        if len == 0 {
            input.consume(2);
            break;
        }
        trailers += len + 2;
        if trailers > max_trailers {
            return Err(BodyError::Reject(Reject {
                status: 431,
                reason: "chunked trailers longer than --buffer-size",
            }));
        }
        let line = &input.available()[..len];
        let colon = line.iter().position(|b| *b == b':');
        if colon.is_none_or(|c| c == 0) || line.iter().any(|b| b.is_ascii_control() && *b != b'\t')
        {
            return Err(bad("malformed trailer line"));
        }
        input.consume(len + 2);
    }
    Ok(body)
}

/// A decoded body: in memory up to [`CHUNKED_MEMORY`] bytes, then in an unlinked
/// temporary file (mode 0600) so a large upload does not grow the worker.
#[derive(Debug, Default)]
pub struct Spooled {
    memory: Vec<u8>,
    file: Option<File>,
    /// Decoded bytes so far.
    pub len: u64,
}

impl Spooled {
    fn spill(&mut self) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "uwsgi-rs-body-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        file.write_all(&self.memory)?;
        self.memory = Vec::new();
        Ok(file)
    }

    /// A reader over the whole body, from its start.
    pub fn into_reader(self) -> io::Result<Box<dyn Read + Send>> {
        match self.file {
            Some(mut file) => {
                file.rewind()?;
                Ok(Box::new(io::BufReader::with_capacity(64 * 1024, file)))
            }
            None => Ok(Box::new(io::Cursor::new(self.memory))),
        }
    }
}

impl Write for Spooled {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.file.is_none() && self.memory.len() + data.len() > CHUNKED_MEMORY {
            self.file = Some(self.spill()?);
        }
        match &mut self.file {
            Some(file) => file.write_all(data)?,
            None => self.memory.extend_from_slice(data),
        }
        self.len += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
