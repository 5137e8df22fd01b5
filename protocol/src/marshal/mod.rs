//! Python's `marshal` format: a reader, a writer, an owned [`Value`] and serde support.
//!
//! uWSGI's Python plugin and its clients exchange some payloads as `marshal.dumps(...)`
//! (uWSGI 1.4 era clients run Python 2 and write version 1). This module reads every
//! data type of marshal versions 0 to 4 — as written by CPython 2 and 3 — and writes
//! versions 0 to 4 the way CPython 3 does.
//!
//! * [`from_slice`] / [`to_vec`]: bytes ↔ [`Value`], with [`ReadOptions`] and
//!   [`WriteOptions`] for the dialect, limits and reference-flag policy.
//! * [`to_value`] / [`from_value`], [`to_vec_version`] / [`from_slice_as`]: any
//!   `Serialize` / `Deserialize` type through the same format. Serialization goes
//!   through a [`Value`] first ([`Serializer`]); deserialization reads a [`Value`] and
//!   then drives the visitor from it ([`Value`] implements [`serde::Deserializer`]).
//!
//! Code objects (`c`) are refused with [`MarshalError::CodeObject`]: this is a data
//! codec. Malformed input of any kind gives a [`MarshalError`]; nothing panics, and
//! nothing is allocated from a length the rest of the input cannot back.
//!
//! ```
//! use uwsgi_protocol::marshal::{self, Value};
//!
//! // Python 2: marshal.dumps((1, 'a'), 1)
//! let bytes = b"(\x02\x00\x00\x00i\x01\x00\x00\x00t\x01\x00\x00\x00a";
//! let v = marshal::from_slice(bytes)?;
//! assert_eq!(v, Value::Tuple(vec![Value::Int(1), Value::from("a")]));
//! // Written back as CPython 3 would (version 1 writes `u` for str).
//! assert_eq!(marshal::to_vec(&v, 1)?, b"(\x02\x00\x00\x00i\x01\x00\x00\x00u\x01\x00\x00\x00a");
//! # Ok::<(), marshal::MarshalError>(())
//! ```
//!
//! See `docs/payloads.md` for the type table and the design choices.

mod bigint;
mod de;
mod error;
mod read;
mod ser;
mod value;
mod value_serde;
mod write;

pub use bigint::{BigInt, ParseBigIntError};
pub use error::MarshalError;
pub use read::{Dialect, ReadOptions};
pub use ser::Serializer;
pub use value::Value;
pub use write::{RefFlags, WriteOptions};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version [`to_vec_version`] users usually want and [`WriteOptions::default`]
/// writes: 4, CPython 3's default.
pub const DEFAULT_VERSION: u8 = 4;

/// The version uWSGI's own Python 2 era clients (uWSGI 1.4) write: 1.
pub const UWSGI_CLIENT_VERSION: u8 = 1;

/// The highest version the writer knows.
pub const MAX_VERSION: u8 = 4;

/// Default maximum nesting depth, for reading, writing and serializing: 200 levels (the
/// outermost object is level 1). CPython allows 2000, but its frames are small; ours are
/// larger, and real payloads are shallow. Configurable in [`ReadOptions`] and
/// [`WriteOptions`].
pub const DEFAULT_MAX_DEPTH: usize = 200;

/// Default number of input bytes back-references may re-read in total: 16 MiB.
pub const DEFAULT_REF_BUDGET: usize = 16 << 20;

/// The bit OR-ed into a type byte to enter the object in the reference table (v3+).
pub(crate) const FLAG_REF: u8 = 0x80;

/// Type codes (the ASCII characters CPython uses).
pub(crate) mod code {
    pub const NULL: u8 = b'0';
    pub const NONE: u8 = b'N';
    pub const FALSE: u8 = b'F';
    pub const TRUE: u8 = b'T';
    pub const STOPITER: u8 = b'S';
    pub const ELLIPSIS: u8 = b'.';
    pub const INT: u8 = b'i';
    pub const INT64: u8 = b'I';
    pub const FLOAT: u8 = b'f';
    pub const BINARY_FLOAT: u8 = b'g';
    pub const COMPLEX: u8 = b'x';
    pub const BINARY_COMPLEX: u8 = b'y';
    pub const LONG: u8 = b'l';
    pub const STRING: u8 = b's';
    pub const INTERNED: u8 = b't';
    pub const REF: u8 = b'r';
    pub const STRINGREF: u8 = b'R';
    pub const TUPLE: u8 = b'(';
    pub const LIST: u8 = b'[';
    pub const DICT: u8 = b'{';
    pub const CODE: u8 = b'c';
    pub const UNICODE: u8 = b'u';
    pub const SET: u8 = b'<';
    pub const FROZENSET: u8 = b'>';
    pub const ASCII: u8 = b'a';
    pub const ASCII_INTERNED: u8 = b'A';
    pub const SMALL_TUPLE: u8 = b')';
    pub const SHORT_ASCII: u8 = b'z';
    pub const SHORT_ASCII_INTERNED: u8 = b'Z';
}

/// Reads one object that spans the whole input, with the default [`ReadOptions`].
pub fn from_slice(input: &[u8]) -> Result<Value, MarshalError> {
    ReadOptions::default().read(input)
}

/// Reads one object from the start of `input`; returns it and how many bytes it took.
pub fn from_slice_prefix(input: &[u8]) -> Result<(Value, usize), MarshalError> {
    ReadOptions::default().read_prefix(input)
}

/// Encodes `value` as marshal `version` (0 to 4), without reference flags.
pub fn to_vec(value: &Value, version: u8) -> Result<Vec<u8>, MarshalError> {
    WriteOptions::new(version).write(value)
}

/// Converts any `Serialize` type to a [`Value`] (see [`Serializer`] for the mapping).
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, MarshalError> {
    value.serialize(Serializer::new())
}

/// Builds any `Deserialize` type from a [`Value`].
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, MarshalError> {
    T::deserialize(value)
}

/// Encodes any `Serialize` type as marshal `version`.
pub fn to_vec_version<T: Serialize + ?Sized>(
    value: &T,
    version: u8,
) -> Result<Vec<u8>, MarshalError> {
    to_vec(&to_value(value)?, version)
}

/// Decodes one marshal object spanning the whole input into any `Deserialize` type.
pub fn from_slice_as<T: DeserializeOwned>(input: &[u8]) -> Result<T, MarshalError> {
    from_value(from_slice(input)?)
}
