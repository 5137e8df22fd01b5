//! The 4-byte packet header: modifier1, a little-endian 16-bit datasize, modifier2.

use bytes::BufMut;
use nom::Parser;
use nom::number::complete::{le_u16, u8 as byte};

use crate::error::DecodeError;

/// The largest block a header can announce.
pub const MAX_DATASIZE: usize = u16::MAX as usize;

/// The first header byte: which handler a packet is for.
///
/// Every value the uwsgi protocol registry names has a variant; any other byte is kept in
/// [`Modifier1::Other`]. Convert with `Modifier1::from(u8)` and `u8::from(Modifier1)`;
/// `Other` never holds a value that has a named variant when built through `From<u8>`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modifier1 {
    /// 0: WSGI (Python) request, the default application slot; what nginx sends.
    Wsgi,
    /// 5: PSGI (Perl) request.
    Psgi,
    /// 6: Lua WSAPI request.
    Lua,
    /// 7: Rack (Ruby) request.
    Rack,
    /// 8: JVM request (JWSGI, Ring).
    Jvm,
    /// 9: CGI request.
    Cgi,
    /// 10: management: read or set a numbered server option.
    Admin,
    /// 11: Go request.
    Go,
    /// 14: PHP request.
    Php,
    /// 15: Mono ASP.NET request.
    Mono,
    /// 17: enqueue a spooler job.
    Spooler,
    /// 18: call a C symbol.
    Symcall,
    /// 19: server-side includes.
    Ssi,
    /// 22: evaluate code (0.9.x only).
    Eval,
    /// 23: XSLT.
    Xslt,
    /// 24: V8 JavaScript.
    V8,
    /// 25: GridFS.
    Gridfs,
    /// 26: FastFuncs (0.9.x only).
    FastFunc,
    /// 27: GlusterFS.
    Glusterfs,
    /// 28: Rados.
    Rados,
    /// 30: WSGI with SCRIPT_NAME stripped from PATH_INFO.
    WsgiScriptName,
    /// 31: generic message (reserved).
    Message,
    /// 32: array message (reserved).
    ArrayMessage,
    /// 33: a marshalled Python object.
    Marshal,
    /// 35: WebDAV request, or the Emperor/fork-server control packet.
    Webdav,
    /// 48: not a header at all: the ASN.1 SEQUENCE tag that starts an SNMP datagram.
    Snmp,
    /// 72 (`'H'`): the first byte of a raw `HTTP/...` response.
    HttpResponse,
    /// 73: cluster announce (hostname) over UDP.
    ClusterAnnounce,
    /// 74: custom multicast message over UDP.
    Multicast,
    /// 95: cluster membership announce (vars) over UDP.
    ClusterNode,
    /// 96: remote log line over UDP.
    ClusterLog,
    /// 97: brutal reload (documented only).
    BrutalReload,
    /// 98: graceful reload over UDP.
    GracefulReload,
    /// 99: cluster configuration request (modifier2 0) or response (1).
    ClusterConfig,
    /// 100: ping.
    Ping,
    /// 101: echo.
    Echo,
    /// 109: Legion (encrypted, UDP).
    Legion,
    /// 110: raise a uWSGI signal.
    Signal,
    /// 111: cache.
    Cache,
    /// 115: Emperor to vassal configuration push.
    EmperorConfig,
    /// 123: raw-body marker used by corerouter subscriptions.
    RawBody,
    /// 173: RPC.
    Rpc,
    /// 200: close mark for persistent connections (documented only).
    CloseMark,
    /// 224: subscription to a corerouter.
    Subscription,
    /// 250: example/C++ plugin slot.
    Example,
    /// 255: generic response / acknowledgement.
    Response,
    /// Any value without a name in the registry.
    Other(u8),
}

macro_rules! modifier1_table {
    ($($name:ident = $value:literal),* $(,)?) => {
        impl From<u8> for Modifier1 {
            fn from(value: u8) -> Self {
                match value {
                    $($value => Modifier1::$name,)*
                    other => Modifier1::Other(other),
                }
            }
        }

        impl From<Modifier1> for u8 {
            fn from(value: Modifier1) -> u8 {
                match value {
                    $(Modifier1::$name => $value,)*
                    Modifier1::Other(other) => other,
                }
            }
        }
    };
}

modifier1_table! {
    Wsgi = 0, Psgi = 5, Lua = 6, Rack = 7, Jvm = 8, Cgi = 9, Admin = 10, Go = 11, Php = 14,
    Mono = 15, Spooler = 17, Symcall = 18, Ssi = 19, Eval = 22, Xslt = 23, V8 = 24,
    Gridfs = 25, FastFunc = 26, Glusterfs = 27, Rados = 28, WsgiScriptName = 30,
    Message = 31, ArrayMessage = 32, Marshal = 33, Webdav = 35, Snmp = 48,
    HttpResponse = 72, ClusterAnnounce = 73, Multicast = 74, ClusterNode = 95,
    ClusterLog = 96, BrutalReload = 97, GracefulReload = 98, ClusterConfig = 99,
    Ping = 100, Echo = 101, Legion = 109, Signal = 110, Cache = 111, EmperorConfig = 115,
    RawBody = 123, Rpc = 173, CloseMark = 200, Subscription = 224, Example = 250,
    Response = 255,
}

impl Modifier1 {
    /// The numeric value on the wire.
    pub fn value(self) -> u8 {
        u8::from(self)
    }

    /// `true` for the application request slots whose block is vars followed by a body
    /// of `CONTENT_LENGTH` bytes (0, 5–9, 11, 14, 15, 18, 19, 23–25, 27, 28, 30, 35).
    pub fn is_app_request(self) -> bool {
        matches!(
            self,
            Modifier1::Wsgi
                | Modifier1::Psgi
                | Modifier1::Lua
                | Modifier1::Rack
                | Modifier1::Jvm
                | Modifier1::Cgi
                | Modifier1::Go
                | Modifier1::Php
                | Modifier1::Mono
                | Modifier1::Symcall
                | Modifier1::Ssi
                | Modifier1::Xslt
                | Modifier1::V8
                | Modifier1::Gridfs
                | Modifier1::Glusterfs
                | Modifier1::Rados
                | Modifier1::WsgiScriptName
                | Modifier1::Webdav
        )
    }
}

impl std::fmt::Display for Modifier1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.value())
    }
}

/// The 4-byte header that starts every uwsgi packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Which handler the packet is for.
    pub modifier1: Modifier1,
    /// Size of the block that follows (a request body is not counted).
    pub datasize: u16,
    /// Sub-command or flag; its meaning depends on modifier1.
    pub modifier2: u8,
}

impl Header {
    /// Encoded size of a header.
    pub const LEN: usize = 4;

    /// A header from its three fields.
    pub fn new(modifier1: impl Into<Modifier1>, datasize: u16, modifier2: u8) -> Self {
        Header {
            modifier1: modifier1.into(),
            datasize,
            modifier2,
        }
    }

    /// Parses the first 4 bytes of `input`. Fewer than 4 bytes is
    /// [`DecodeError::Incomplete`]; a header is never invalid by itself.
    #[inline]
    pub fn parse(input: &[u8]) -> Result<Header, DecodeError> {
        if input.len() < Self::LEN {
            return Err(DecodeError::incomplete(Self::LEN - input.len()));
        }
        let parsed: nom::IResult<&[u8], (u8, u16, u8)> = (byte, le_u16, byte).parse(input);
        match parsed {
            Ok((_, (modifier1, datasize, modifier2))) => Ok(Header {
                modifier1: Modifier1::from(modifier1),
                datasize,
                modifier2,
            }),
            // Unreachable with 4 bytes present; reported as a need for more input.
            Err(_) => Err(DecodeError::incomplete(Self::LEN)),
        }
    }

    /// The 4 bytes of this header.
    pub fn to_bytes(self) -> [u8; 4] {
        let [lo, hi] = self.datasize.to_le_bytes();
        [self.modifier1.value(), lo, hi, self.modifier2]
    }

    /// Appends the 4 bytes of this header to `dst`.
    pub fn encode(self, dst: &mut impl BufMut) {
        dst.put_slice(&self.to_bytes());
    }

    /// Size of the block plus the header.
    pub fn packet_len(self) -> usize {
        Self::LEN + usize::from(self.datasize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_through_modifier1() {
        for value in 0..=255u8 {
            let m = Modifier1::from(value);
            assert_eq!(m.value(), value);
            if let Modifier1::Other(inner) = m {
                assert_eq!(inner, value);
            }
        }
    }

    #[test]
    fn named_values_match_the_registry() {
        let table: &[(u8, Modifier1)] = &[
            (0, Modifier1::Wsgi),
            (10, Modifier1::Admin),
            (17, Modifier1::Spooler),
            (30, Modifier1::WsgiScriptName),
            (33, Modifier1::Marshal),
            (72, Modifier1::HttpResponse),
            (100, Modifier1::Ping),
            (101, Modifier1::Echo),
            (109, Modifier1::Legion),
            (110, Modifier1::Signal),
            (111, Modifier1::Cache),
            (173, Modifier1::Rpc),
            (224, Modifier1::Subscription),
            (255, Modifier1::Response),
            (1, Modifier1::Other(1)),
        ];
        for &(value, m) in table {
            assert_eq!(Modifier1::from(value), m, "modifier1 {value}");
        }
    }

    #[test]
    fn header_known_answers() {
        // m1=0, datasize 35, m2=0 (spec §1.1)
        let h = Header::parse(&[0x00, 0x23, 0x00, 0x00]).unwrap();
        assert_eq!(h, Header::new(Modifier1::Wsgi, 35, 0));
        assert_eq!(h.to_bytes(), [0x00, 0x23, 0x00, 0x00]);
        // "HTTP" read as a header (spec §1.2)
        let h = Header::parse(b"HTTP/1.1").unwrap();
        assert_eq!(h, Header::new(Modifier1::HttpResponse, 0x5454, b'P'));
        let h = Header::new(Modifier1::Rpc, 0x1234, 5);
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, [0xad, 0x34, 0x12, 0x05]);
    }

    #[test]
    fn short_headers_are_incomplete() {
        for len in 0..4 {
            assert_eq!(
                Header::parse(&[0u8; 3][..len]),
                Err(DecodeError::Incomplete { needed: 4 - len })
            );
        }
    }
}
