//! Exit codes, one meaning each, and the one place errors are mapped to them
//! (documented in docs/cli.md).

use uwsgi_protocol::client::{self, AddressError};

/// Success: the server answered and the answer is positive.
pub const OK: u8 = 0;
/// The server answered, negatively: not found, false, no result, refused, HTTP error
/// status with `--fail`, some pings lost.
pub const NEGATIVE: u8 = 1;
/// Usage: bad option or argument, unreadable local file, a request that does not fit
/// the protocol (clap uses 2 for its own errors too).
pub const USAGE: u8 = 2;
/// Connection failure: refused, reset, unreachable, name not resolved.
pub const CONNECTION: u8 = 3;
/// Timeout: connect, write or read took longer than `--timeout`.
pub const TIMEOUT: u8 = 4;
/// Protocol error: the reply (or the data given to `decode`/`route`) is not valid uwsgi,
/// or there was no reply where the protocol always gives one.
pub const PROTOCOL: u8 = 5;

/// How a command that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Positive answer (exit 0).
    Ok,
    /// Negative answer (exit 1); the command already said what it was.
    Negative,
}

impl Outcome {
    /// `Ok` when `positive`, else `Negative`.
    pub fn from_bool(positive: bool) -> Self {
        if positive {
            Outcome::Ok
        } else {
            Outcome::Negative
        }
    }

    /// The exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => OK,
            Outcome::Negative => NEGATIVE,
        }
    }
}

/// An error that names its exit code explicitly.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// What to print.
    pub message: String,
    /// The process exit code.
    pub code: u8,
}

impl Failure {
    /// An error with exit code `code`.
    pub fn error(code: u8, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Failure {
            message: message.into(),
            code,
        })
    }
}

/// The exit code of a client error.
pub fn client_code(error: &client::Error) -> u8 {
    match error {
        client::Error::Io { .. } => CONNECTION,
        client::Error::Timeout { .. } => TIMEOUT,
        client::Error::Rejected { .. } => NEGATIVE,
        client::Error::Encode(_) | client::Error::BodyLength { .. } | client::Error::Input(_) => {
            USAGE
        }
        _ => PROTOCOL,
    }
}

/// The exit code for an error: the first cause in its chain that has one; anything else
/// (a local file, a bad argument) is a usage error.
pub fn code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<client::Error>() {
            return client_code(e);
        }
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.code;
        }
        if cause
            .downcast_ref::<crate::decode::DecodeFailure>()
            .is_some()
        {
            return PROTOCOL;
        }
        if cause.downcast_ref::<AddressError>().is_some() {
            return USAGE;
        }
    }
    USAGE
}
