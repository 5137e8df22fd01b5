//! # uwsgi-protocol
//!
//! A sans-IO codec for the uwsgi wire protocol spoken by uWSGI, nginx (`uwsgi_pass`) and
//! the `uwsgi` Python module: no sockets, no clocks, no runtime. Bytes go in, typed
//! packets come out, and typed packets encode back to the exact bytes real peers send.
//!
//! * [`Header`] and [`Modifier1`]: the 4-byte header.
//! * [`Vars`] / [`VarsBuilder`], [`Array`] / [`ArrayBuilder`]: the two block encodings,
//!   zero-copy when decoding, size-checked when building (so encoding cannot fail).
//! * [`packet`]: a typed packet for every modifier1 with a defined layout, requests and
//!   replies, decode and encode.
//! * [`decoder::StreamDecoder`]: feed bytes in any chunking, get packets and request
//!   bodies out, under explicit [`Limits`].
//! * [`marshal`]: Python's marshal format as a serde data format, plus a [`marshal::Value`].
//! * [`msgpack`]: MessagePack payloads through rmp-serde.
//! * [`snmp`]: the GetRequest / GetResponse of uWSGI's embedded SNMP agent.
//! * `client` (feature): a small blocking client on std + socket2.
//!
//! Errors distinguish *need more bytes* ([`DecodeError::Incomplete`]) from *invalid*
//! ([`DecodeError::Invalid`]), whose [`InvalidPacket`] cause carries offsets and limits.

pub mod array;
pub mod cache_dump;
#[cfg(feature = "client")]
pub mod client;
pub mod decoder;
pub mod error;
pub mod header;
pub mod limits;
pub mod marshal;
pub mod msgpack;
pub mod packet;
pub mod snmp;
pub mod vars;
mod wire;

pub use array::{Array, ArrayBuilder};
pub use decoder::{Event, StreamDecoder};
pub use error::{DecodeError, EncodeError, Field, InvalidPacket};
pub use header::{Header, MAX_DATASIZE, Modifier1};
pub use limits::Limits;
pub use packet::{Decoded, Packet, Reply};
pub use vars::{Vars, VarsBuilder};
