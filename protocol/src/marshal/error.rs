//! The error type of the marshal reader, writer and serde layers.

use std::fmt::Display;

/// Everything that can go wrong while reading or writing marshal data, or while mapping
/// it to and from Rust types through serde.
///
/// Offsets count bytes from the start of the input given to the reader.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarshalError {
    /// The input ends inside an object. A longer input could still be valid.
    #[error("unexpected end of marshal data at offset {offset}: {needed} more byte(s) needed")]
    UnexpectedEof {
        /// Where the missing bytes would start (the input length).
        offset: usize,
        /// Lower bound on the number of missing bytes (at least 1).
        needed: usize,
    },
    /// A type code that is not part of the format.
    #[error("unknown marshal type code {code:#04x} at offset {offset}")]
    UnknownType {
        /// The type byte, with the 0x80 reference flag removed.
        code: u8,
        /// Offset of the type byte.
        offset: usize,
    },
    /// A code object (`c`): valid marshal, but bytecode is not data and is not supported.
    #[error("code object at offset {offset}: marshalled code objects are not supported")]
    CodeObject {
        /// Offset of the type byte.
        offset: usize,
    },
    /// The NULL code (`0`) where an object is required (anywhere but a dict key).
    #[error("NULL object at offset {offset} where a value is required")]
    NullObject {
        /// Offset of the `0` byte.
        offset: usize,
    },
    /// A back-reference (`r`, or Python 2's `R`) to an index that does not exist.
    #[error("invalid back-reference to index {index} at offset {offset}")]
    BadRef {
        /// The index read from the input.
        index: i64,
        /// Offset of the type byte.
        offset: usize,
    },
    /// A back-reference to a container that is still being read (a cycle). CPython can
    /// build such self-containing objects; an owned [`Value`](super::Value) tree cannot.
    #[error(
        "back-reference at offset {offset} to object {index}, which is still being read (cycles are not supported)"
    )]
    RecursiveRef {
        /// The referenced index.
        index: usize,
        /// Offset of the type byte.
        offset: usize,
    },
    /// A length or count field below zero.
    #[error("negative length {len} at offset {offset}")]
    NegativeLength {
        /// The length read.
        len: i32,
        /// Offset of the length field.
        offset: usize,
    },
    /// A malformed `l` integer (size out of range, digit above 0x7fff, zero top digit).
    #[error("malformed long integer at offset {offset}: {reason}")]
    BadLong {
        /// Offset of the type byte.
        offset: usize,
        /// What is wrong, in words.
        reason: &'static str,
    },
    /// A string that must be UTF-8 (`u`, and `t` when read as Python 3 text) is not.
    #[error("invalid UTF-8 in string at offset {offset}")]
    InvalidUtf8 {
        /// Offset of the string bytes.
        offset: usize,
    },
    /// A text float (`f`, `x`) that is not a number.
    #[error("invalid float text at offset {offset}")]
    InvalidFloatText {
        /// Offset of the length byte of the text.
        offset: usize,
    },
    /// Objects nested deeper than the configured limit (reading, writing or serializing).
    #[error("objects nested deeper than the limit of {limit}")]
    TooDeep {
        /// The configured maximum depth.
        limit: usize,
    },
    /// Back-references would copy more input than allowed (protects against inputs that
    /// expand exponentially through nested references).
    #[error("back-references copy more than the limit of {limit} bytes")]
    RefBudgetExceeded {
        /// The configured budget, in input bytes.
        limit: usize,
    },
    /// Bytes left after the object when the whole input had to be one object.
    #[error("{len} trailing byte(s) after the marshal object at offset {offset}")]
    TrailingBytes {
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        len: usize,
    },
    /// A marshal version this writer does not produce (0 to 4 are supported).
    #[error("marshal version {version} is not supported for writing (0..=4)")]
    UnsupportedVersion {
        /// The requested version.
        version: u8,
    },
    /// A string, bytes object or container too long for marshal's 32-bit length field.
    #[error("length {len} does not fit marshal's 32-bit length field")]
    LengthOverflow {
        /// The length that was refused.
        len: usize,
    },
    /// A message from serde (a `Serialize` or `Deserialize` implementation, or a type
    /// mismatch found while mapping a value to a Rust type).
    #[error("{0}")]
    Custom(String),
}

impl serde::ser::Error for MarshalError {
    fn custom<T: Display>(msg: T) -> Self {
        MarshalError::Custom(msg.to_string())
    }
}

impl serde::de::Error for MarshalError {
    fn custom<T: Display>(msg: T) -> Self {
        MarshalError::Custom(msg.to_string())
    }
}

impl MarshalError {
    /// `true` for [`MarshalError::UnexpectedEof`]: the input ended inside an object.
    pub fn is_eof(&self) -> bool {
        matches!(self, MarshalError::UnexpectedEof { .. })
    }
}
