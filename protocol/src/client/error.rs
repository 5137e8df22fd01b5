//! Errors of the client.

use std::fmt;
use std::io;

use super::Address;
use crate::error::{DecodeError, EncodeError};

/// Which step of an exchange ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Establishing the connection.
    Connect,
    /// Waiting for reply bytes.
    Read,
    /// Sending the request.
    Write,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Read => "read",
            Phase::Write => "write",
        })
    }
}

/// Why a client call did not produce an answer.
///
/// Only failures are errors. Answers the protocol defines as negative but normal — a cache
/// miss, a key that already exists, an RPC function that yields nothing — are `Ok` values
/// (`Option` / `bool`) on the calls that can get them. The two acknowledgement replies
/// that mean "the server refused" (`ff 0000 00` to a signal or a spool request) are
/// [`Error::Rejected`], as uWSGI's own Python client raises for them.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket call failed (connection refused, reset mid-reply, name resolution, …).
    #[error("{address}: {source}")]
    Io {
        /// The peer.
        address: Address,
        /// The OS error.
        source: io::Error,
    },
    /// The peer did not answer within the configured [`Timeouts`](super::Timeouts).
    #[error("{address}: {phase} timed out")]
    Timeout {
        /// The peer.
        address: Address,
        /// The step that timed out.
        phase: Phase,
    },
    /// The reply bytes are not a valid reply to the request (the codec's verdict).
    #[error("{address}: invalid reply: {source}")]
    Protocol {
        /// The peer.
        address: Address,
        /// The decoding error; `Incomplete` means the connection closed mid-reply.
        source: DecodeError,
    },
    /// The reply is, or announces, more bytes than the client's cap allows.
    #[error("{address}: reply exceeds the cap of {limit} bytes")]
    ReplyTooLarge {
        /// The peer.
        address: Address,
        /// The cap in force.
        limit: usize,
    },
    /// The connection closed without a byte where the protocol always answers (ping,
    /// signal, spool, application requests).
    #[error("{address}: connection closed without a reply")]
    NoReply {
        /// The peer.
        address: Address,
    },
    /// A well-formed reply of a kind this call does not expect.
    #[error("{address}: unexpected {kind} reply")]
    UnexpectedReply {
        /// The peer.
        address: Address,
        /// The reply kind ([`Reply::kind`](crate::Reply::kind)).
        kind: &'static str,
    },
    /// The server acknowledged with a failure status (`ff 0000 00`): signal queue full,
    /// no spooler configured, …
    #[error("{address}: {what} rejected (status {status})")]
    Rejected {
        /// The peer.
        address: Address,
        /// `"signal"` or `"spool"`.
        what: &'static str,
        /// The modifier2 of the acknowledgement.
        status: u8,
    },
    /// The request does not fit the protocol (a key, item or block over 65535 bytes, …).
    #[error("cannot encode the request: {0}")]
    Encode(#[from] EncodeError),
    /// Reading the packet to forward ([`Client::forward`](super::Client::forward)) failed.
    #[error("reading the packet to forward: {0}")]
    Input(#[source] io::Error),
    /// The packet to forward is not a valid uwsgi packet (`Incomplete` means its source
    /// ended inside the header, block or body).
    #[error("the packet to forward is invalid: {0}")]
    InvalidRequest(#[source] DecodeError),
    /// The body length differs from the request's `CONTENT_LENGTH` var.
    #[error("CONTENT_LENGTH announces {declared} byte(s) but the body has {actual}")]
    BodyLength {
        /// What `CONTENT_LENGTH` says (0 when absent).
        declared: u64,
        /// The body's length.
        actual: usize,
    },
}

impl Error {
    /// The peer, when the error happened while talking to one.
    pub fn address(&self) -> Option<&Address> {
        match self {
            Error::Io { address, .. }
            | Error::Timeout { address, .. }
            | Error::Protocol { address, .. }
            | Error::ReplyTooLarge { address, .. }
            | Error::NoReply { address }
            | Error::UnexpectedReply { address, .. }
            | Error::Rejected { address, .. } => Some(address),
            Error::Encode(_)
            | Error::BodyLength { .. }
            | Error::Input(_)
            | Error::InvalidRequest(_) => None,
        }
    }

    /// `true` for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// An I/O error in `phase`, classified: the OS's timeout kinds become
    /// [`Error::Timeout`].
    pub(crate) fn io(address: &Address, phase: Phase, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
                address: address.clone(),
                phase,
            },
            _ => Error::Io {
                address: address.clone(),
                source,
            },
        }
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
