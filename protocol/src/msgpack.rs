//! MessagePack payloads: any serde type as the body of a uwsgi message or an RPC argument.
//!
//! uwsgi blocks and RPC array items have 16-bit sizes, so a payload is at most
//! [`MAX_PAYLOAD`] bytes; the encoders refuse larger results with
//! [`EncodeError::TooLarge`] (what: [`Field::Payload`]) before anything is sent.
//!
//! Structs are encoded **as maps with field names** by default ([`to_payload`], like
//! `rmp_serde::to_vec_named`): Python's `msgpack.unpackb` then gives a `dict` keyed by
//! field name, which is what Python peers expect and survives field reordering or
//! additions. [`to_payload_compact`] writes structs as arrays (smaller, positional; the
//! peer must know the field order). [`from_payload`] reads both forms.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use uwsgi_protocol::msgpack;
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Job { id: u32, name: String }
//!
//! let job = Job { id: 7, name: "resize".into() };
//! let payload = msgpack::to_payload(&job)?;       // {"id": 7, "name": "resize"}
//! assert_eq!(payload[0], 0x82);                   // a two-entry map
//! assert_eq!(msgpack::from_payload::<Job>(&payload)?, job);
//! # Ok::<(), msgpack::MsgpackError>(())
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{EncodeError, Field};

/// Largest payload a uwsgi block or RPC item can carry: 65535 bytes.
pub const MAX_PAYLOAD: usize = u16::MAX as usize;

/// Why a MessagePack payload could not be built or read.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MsgpackError {
    /// The value could not be encoded (for example a map with a key rmp-serde refuses,
    /// or a sequence of unknown length).
    #[error("msgpack encoding failed: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The payload is not valid MessagePack for the requested type.
    #[error("msgpack decoding failed: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// The encoded payload does not fit the 16-bit size of a block or RPC item.
    #[error(transparent)]
    TooLarge(#[from] EncodeError),
    /// Bytes left after the first MessagePack value: a payload holds exactly one.
    #[error("{len} trailing byte(s) after the msgpack value at offset {offset}")]
    TrailingBytes {
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        len: usize,
    },
}

fn check_size(bytes: Vec<u8>) -> Result<Vec<u8>, MsgpackError> {
    crate::error::check_len(Field::Payload, bytes.len(), MAX_PAYLOAD)?;
    Ok(bytes)
}

/// Encodes `value` with structs as maps keyed by field name
/// (`rmp_serde::to_vec_named`); at most [`MAX_PAYLOAD`] bytes.
pub fn to_payload<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, MsgpackError> {
    check_size(rmp_serde::to_vec_named(value)?)
}

/// Encodes `value` with structs as positional arrays (`rmp_serde::to_vec`); at most
/// [`MAX_PAYLOAD`] bytes.
pub fn to_payload_compact<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, MsgpackError> {
    check_size(rmp_serde::to_vec(value)?)
}

/// Decodes a payload holding exactly one MessagePack value (structs may be maps or
/// arrays).
pub fn from_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, MsgpackError> {
    let mut rest = payload;
    let value = {
        let mut de = rmp_serde::Deserializer::new(&mut rest);
        T::deserialize(&mut de)?
    };
    if !rest.is_empty() {
        return Err(MsgpackError::TrailingBytes {
            offset: payload.len() - rest.len(),
            len: rest.len(),
        });
    }
    Ok(value)
}

/// A value carried as a MessagePack payload: `Msgpack(job).to_payload()`,
/// `Msgpack::<Job>::from_payload(bytes)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Msgpack<T>(pub T);

impl<T: Serialize> Msgpack<T> {
    /// [`to_payload`] of the inner value.
    pub fn to_payload(&self) -> Result<Vec<u8>, MsgpackError> {
        to_payload(&self.0)
    }

    /// [`to_payload_compact`] of the inner value.
    pub fn to_payload_compact(&self) -> Result<Vec<u8>, MsgpackError> {
        to_payload_compact(&self.0)
    }
}

impl<T: DeserializeOwned> Msgpack<T> {
    /// [`from_payload`], wrapped.
    pub fn from_payload(payload: &[u8]) -> Result<Self, MsgpackError> {
        from_payload(payload).map(Msgpack)
    }
}
