//! One connection: read one packet within the limits and the socket timeout, answer it,
//! close. Whose fault an error was (the peer's or ours) is kept in [`ServeError`].

use std::io::{self, Read, Write};
use std::time::Duration;

use uwsgi_protocol::packet::{Message, Payload, Reply};
use uwsgi_protocol::{DecodeError, Event, InvalidPacket, Limits, Packet, StreamDecoder};

/// Per-connection settings, named after uWSGI's options.
#[derive(Debug, Clone)]
pub struct Config {
    /// Decoding limits; `max_datasize` is uWSGI's `--buffer-size` (default 4096).
    pub limits: Limits,
    /// Longest wait for each read or write, uWSGI's `--socket-timeout` (default 4 s).
    pub socket_timeout: Duration,
    /// The ping warning message (`uwsgi.set_warning_message`), at most 80 bytes.
    pub warning_message: Vec<u8>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::DEFAULT,
            socket_timeout: Duration::from_secs(4),
            warning_message: Vec::new(),
        }
    }
}

/// How a connection ended without a reply.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The peer sent bytes that are not a valid packet.
    #[error("peer sent an invalid packet: {0}")]
    Invalid(#[from] InvalidPacket),
    /// The peer closed before a whole packet arrived.
    #[error("peer closed the connection mid-packet ({needed} more byte(s) were due)")]
    Truncated {
        /// Bytes still missing.
        needed: usize,
    },
    /// The peer closed without sending anything (a connect/close probe).
    #[error("peer closed the connection without sending anything")]
    Empty,
    /// No handler serves this modifier1; like uWSGI, the connection is closed.
    #[error("unavailable modifier requested: {0}")]
    Unavailable(u8),
    /// A read or write failed or timed out.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
}

/// Serves one request on `stream` and returns the number of reply bytes written.
pub fn serve<S: Read + Write>(stream: &mut S, config: &Config) -> Result<usize, ServeError> {
    let mut decoder = StreamDecoder::new(config.limits);
    let reply = loop {
        match decoder.next_event() {
            Ok(Event::Packet(packet)) => break answer(&packet, config)?,
            Ok(Event::Body { .. }) => continue,
            Err(DecodeError::Invalid(reason)) => return Err(reason.into()),
            Err(DecodeError::Incomplete { needed }) => {
                let want = needed.clamp(4, 64 * 1024);
                let region = decoder.prepare(want);
                let read = stream.read(region)?;
                decoder.commit(want, read);
                if read == 0 {
                    return Err(if decoder.buffered() == 0 {
                        ServeError::Empty
                    } else {
                        ServeError::Truncated { needed }
                    });
                }
            }
        }
    };
    stream.write_all(&reply)?;
    stream.flush()?;
    Ok(reply.len())
}

fn answer(packet: &Packet<'_>, config: &Config) -> Result<Vec<u8>, ServeError> {
    match packet {
        Packet::Ping(_) => {
            let warning = Payload::new(&config.warning_message).unwrap_or(Payload::EMPTY);
            Ok(Reply::Pong(Message::new(1, warning)).to_vec())
        }
        Packet::Echo(message) => Ok(message.payload.as_bytes().to_vec()),
        other => Err(ServeError::Unavailable(other.header().modifier1.value())),
    }
}
