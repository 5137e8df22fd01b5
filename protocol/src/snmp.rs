//! uWSGI's embedded SNMP agent on the wire (docs/protocol.md "SNMP", spec §7.6).
//!
//! uWSGI does not carry an ASN.1 decoder: it walks a GetRequest **positionally**, with
//! single-byte BER lengths, accepts exactly one varbind naming an OID under
//! `1.3.6.1.4.1.35156.17`, and answers by patching the request in place. This module
//! reproduces that walk byte for byte, so the same datagrams are answered and the same
//! bytes come back:
//!
//! * [`parse_get_request`]: the request as uWSGI accepts it ([`GetRequest`]), or why it
//!   is ignored ([`Rejected`]). uWSGI never sends an error PDU: a rejected datagram gets
//!   no answer at all. The community is returned, not checked: comparing it with the
//!   configured one is the caller's job.
//! * [`GetRequest::response`]: the GetResponse, built as uWSGI builds it: the PDU tag
//!   `A0` becomes `A2`, the datagram's last two bytes (the `05 00` NULL) become the
//!   value's type, length and big-endian value, and the four enclosing length bytes grow
//!   by the value's length.
//! * [`parse_response`]: a strict reader of such a response (for clients and tests).
//! * [`build_get_request`]: the canonical request a client such as `snmpget` sends.
//!
//! The walk is uWSGI's, including its leniencies: the first byte is never looked at (the
//! `--udp` dispatch looks at it: `0x30`), the varbind list and varbind lengths are only
//! range-checked, and a longer OID whose first two arcs after the base are valid is
//! answered as `17.X.Y`. Where uWSGI would read past the end of the datagram (into its
//! receive buffer) this walk stops with [`Rejected::Truncated`] instead. Nothing here
//! panics or allocates while parsing.

/// Longest datagram uWSGI answers (`127 - 8`, so a Counter64 answer still fits a
/// single-byte length).
pub const MAX_REQUEST: usize = 119;
const MAX_REQUEST_BYTE: u8 = 119;
/// Shortest outer SEQUENCE length uWSGI accepts.
pub const MIN_MESSAGE_LENGTH: u8 = 13;
/// Longest community string.
pub const MAX_COMMUNITY: usize = 72;
/// The custom slots and server values are numbered 1..=`MAX_INDEX`.
pub const MAX_INDEX: u8 = 100;
/// `1.3.6.1.4.1.35156.17` BER-encoded: uWSGI's enterprise OID (35156) and its SNMP
/// subtree (17).
pub const UWSGI_OID_BASE: [u8; 9] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x92, 0x54, 0x11];

/// BER tags this module reads or writes.
pub mod tag {
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// SEQUENCE.
    pub const SEQUENCE: u8 = 0x30;
    /// SNMP Counter32 (application 1).
    pub const COUNTER32: u8 = 0x41;
    /// SNMP Gauge32 (application 2).
    pub const GAUGE: u8 = 0x42;
    /// SNMP Counter64 (application 6).
    pub const COUNTER64: u8 = 0x46;
    /// GetRequest-PDU.
    pub const GET_REQUEST: u8 = 0xa0;
    /// GetResponse-PDU.
    pub const GET_RESPONSE: u8 = 0xa2;
}

/// An INTEGER field of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegerField {
    /// The SNMP version (0 = v1, 1 = v2c).
    Version,
    /// The PDU's request-id.
    RequestId,
    /// The PDU's error-status.
    ErrorStatus,
    /// The PDU's error-index.
    ErrorIndex,
}

/// The OID a request names, after `1.3.6.1.4.1.35156.17`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oid<'a> {
    /// `17.1.Y`: a server value (1: total requests, 30 + N: worker N's requests).
    Server(u8),
    /// `17.2.Y`: custom slot Y, set by the `snmp_*` Python functions.
    Custom(u8),
    /// `17.<other>`: uWSGI 2.0's metrics subsystem; the OID bytes after the base
    /// (`oid length - 9` of them).
    Metric(&'a [u8]),
}

impl Oid<'_> {
    /// The OID bytes after the base, as they appear in a canonical request.
    pub fn suffix(&self) -> Vec<u8> {
        match self {
            Oid::Server(y) => vec![1, *y],
            Oid::Custom(y) => vec![2, *y],
            Oid::Metric(bytes) => bytes.to_vec(),
        }
    }
}

/// A GetRequest as uWSGI's agent accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetRequest<'a> {
    datagram: &'a [u8],
    /// The version INTEGER (0..=2).
    pub version: u32,
    /// The community string (1..=72 bytes), for the caller to compare.
    pub community: &'a [u8],
    /// The request-id INTEGER's content bytes (0..=4 of them), echoed in the response.
    pub request_id: &'a [u8],
    /// The OID asked for.
    pub oid: Oid<'a>,
    pdu_tag_at: usize,
    pdu_len_at: usize,
    list_len_at: usize,
    varbind_len_at: usize,
}

/// A value in a GetResponse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpValue {
    /// No value (unset slot, unknown server OID): `05 00`.
    Null,
    /// Counter32: `41 04` + 4 bytes.
    Counter32(u32),
    /// Gauge32: `42 04` + 4 bytes.
    Gauge(u32),
    /// Counter64: `46 08` + 8 bytes.
    Counter64(u64),
}

impl SnmpValue {
    /// The value for a slot of BER type `tag` holding `value`, as uWSGI encodes it:
    /// Counter64 keeps 64 bits, Counter32 and Gauge the low 32 bits, anything else is
    /// NULL.
    pub fn from_tag(tag: u8, value: u64) -> SnmpValue {
        let low = u32::try_from(value & 0xffff_ffff).unwrap_or(u32::MAX);
        match tag {
            tag::COUNTER32 => SnmpValue::Counter32(low),
            tag::GAUGE => SnmpValue::Gauge(low),
            tag::COUNTER64 => SnmpValue::Counter64(value),
            _ => SnmpValue::Null,
        }
    }

    /// The BER type byte.
    pub fn tag(&self) -> u8 {
        match self {
            SnmpValue::Null => tag::NULL,
            SnmpValue::Counter32(_) => tag::COUNTER32,
            SnmpValue::Gauge(_) => tag::GAUGE,
            SnmpValue::Counter64(_) => tag::COUNTER64,
        }
    }

    /// The value's content bytes (big-endian, fixed width as uWSGI writes them).
    pub fn content(&self) -> Vec<u8> {
        match self {
            SnmpValue::Null => Vec::new(),
            SnmpValue::Counter32(v) | SnmpValue::Gauge(v) => v.to_be_bytes().to_vec(),
            SnmpValue::Counter64(v) => v.to_be_bytes().to_vec(),
        }
    }
}

/// Why a datagram is not answered. uWSGI drops all of these silently.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// More than [`MAX_REQUEST`] bytes.
    #[error("datagram of {len} bytes exceeds {MAX_REQUEST}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A byte the walk needs lies past the end of the datagram.
    #[error("datagram ends before offset {offset}")]
    Truncated {
        /// The first missing offset.
        offset: usize,
    },
    /// The outer SEQUENCE length byte is outside 13..=119.
    #[error("message length byte {found} outside {MIN_MESSAGE_LENGTH}..={MAX_REQUEST}")]
    MessageLength {
        /// The byte.
        found: u8,
    },
    /// Not the expected BER tag.
    #[error("tag {found:#04x} at offset {offset}, expected {expected:#04x}")]
    Tag {
        /// Where.
        offset: usize,
        /// What is there.
        found: u8,
        /// What uWSGI wants there.
        expected: u8,
    },
    /// An INTEGER longer than 4 bytes.
    #[error("{field:?} INTEGER of {len} bytes (at most 4)")]
    IntegerTooLong {
        /// Which INTEGER.
        field: IntegerField,
        /// Its length byte.
        len: u8,
    },
    /// Version above 2.
    #[error("SNMP version {version} (at most 2)")]
    Version {
        /// The version read.
        version: u32,
    },
    /// A community length outside 1..=72.
    #[error("community of {len} bytes (1..={MAX_COMMUNITY})")]
    CommunityLength {
        /// The length byte.
        len: u8,
    },
    /// The PDU length byte is not `datagram length - community length - 9`.
    #[error("PDU length byte {found}, expected {expected}")]
    PduLength {
        /// The byte.
        found: u8,
        /// What uWSGI computes from the datagram length.
        expected: usize,
    },
    /// A PDU INTEGER that reaches the end of the datagram.
    #[error("{field:?} INTEGER reaches the end of the datagram")]
    IntegerAtEnd {
        /// Which INTEGER.
        field: IntegerField,
    },
    /// A non-zero error-status or error-index.
    #[error("{field:?} is {value}, expected 0")]
    NotZero {
        /// Which INTEGER.
        field: IntegerField,
        /// Its value.
        value: u32,
    },
    /// A varbind list length above 119.
    #[error("varbind list length {len} above {MAX_REQUEST}")]
    ListLength {
        /// The length byte.
        len: u8,
    },
    /// A varbind length below 15 (too short for a uWSGI OID and a NULL).
    #[error("varbind length {len} below 15")]
    VarbindLength {
        /// The length byte.
        len: u8,
    },
    /// An OID length below 11.
    #[error("OID length {len} below 11")]
    OidLength {
        /// The length byte.
        len: u8,
    },
    /// The OID is not under `1.3.6.1.4.1.35156.17`.
    #[error("OID outside 1.3.6.1.4.1.35156.17")]
    ForeignOid,
    /// `17.X.Y` with Y outside 1..=100.
    #[error("OID index {index} outside 1..={MAX_INDEX}")]
    Index {
        /// Y.
        index: u8,
    },
    /// The two bytes after `17.X.Y` are not a NULL (`05 00`).
    #[error("no NULL value at offset {offset}")]
    NoNull {
        /// Where the NULL was expected.
        offset: usize,
    },
    /// [`parse_response`]: a length byte that does not match what it encloses.
    #[error("length byte at offset {offset} is {found}, the content is {actual} bytes")]
    Length {
        /// Where.
        offset: usize,
        /// The byte.
        found: u8,
        /// The actual content length.
        actual: usize,
    },
    /// [`parse_response`]: a value type or width this agent never sends.
    #[error("value type {tag:#04x} with length {len}")]
    Value {
        /// The type byte.
        tag: u8,
        /// Its length byte.
        len: u8,
    },
    /// [`parse_response`]: bytes after the value.
    #[error("{len} byte(s) after the value")]
    Trailing {
        /// How many.
        len: usize,
    },
}

/// A bounds-checked view: every read names its offset.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn at(&self, offset: usize) -> Result<u8, Rejected> {
        self.0
            .get(offset)
            .copied()
            .ok_or(Rejected::Truncated { offset })
    }

    fn slice(&self, offset: usize, len: usize) -> Result<&'a [u8], Rejected> {
        let end = offset
            .checked_add(len)
            .ok_or(Rejected::Truncated { offset })?;
        self.0.get(offset..end).ok_or(Rejected::Truncated {
            offset: self.0.len().max(offset),
        })
    }

    fn expect(&self, offset: usize, expected: u8) -> Result<(), Rejected> {
        let found = self.at(offset)?;
        if found == expected {
            Ok(())
        } else {
            Err(Rejected::Tag {
                offset,
                found,
                expected,
            })
        }
    }

    /// uWSGI's `get_snmp_integer` at the length byte `offset`: at most 4 content bytes,
    /// big-endian. Returns (value, content bytes).
    fn integer(&self, offset: usize, field: IntegerField) -> Result<(u32, &'a [u8]), Rejected> {
        let len = self.at(offset)?;
        if len > 4 {
            return Err(Rejected::IntegerTooLong { field, len });
        }
        let content = self.slice(offset + 1, usize::from(len))?;
        let value = content
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        Ok((value, content))
    }
}

/// Walks `datagram` as uWSGI's agent does (`manage_snmp`), returning the request or the
/// first check that fails. The community is not compared with anything.
pub fn parse_get_request(datagram: &[u8]) -> Result<GetRequest<'_>, Rejected> {
    let len = datagram.len();
    if len > MAX_REQUEST {
        return Err(Rejected::TooLong { len });
    }
    let b = Bytes(datagram);
    // The first byte (the SEQUENCE tag) is skipped unread, as in uWSGI.
    let message = b.at(1)?;
    if !(MIN_MESSAGE_LENGTH..=MAX_REQUEST_BYTE).contains(&message) {
        return Err(Rejected::MessageLength { found: message });
    }
    b.expect(2, tag::INTEGER)?;
    let (version, raw_version) = b.integer(3, IntegerField::Version)?;
    if version > 2 {
        return Err(Rejected::Version { version });
    }
    let mut p = 4 + raw_version.len();
    b.expect(p, tag::OCTET_STRING)?;
    let community_len = b.at(p + 1)?;
    if community_len == 0 || usize::from(community_len) > MAX_COMMUNITY {
        return Err(Rejected::CommunityLength { len: community_len });
    }
    let community = b.slice(p + 2, usize::from(community_len))?;
    p += 2 + community.len();
    b.expect(p, tag::GET_REQUEST)?;
    let pdu_tag_at = p;
    let pdu_len_at = p + 1;
    let pdu_len = b.at(pdu_len_at)?;
    // uWSGI's check assumes a one-byte version: the PDU runs to the datagram's end.
    let expected = len.checked_sub(community.len() + 9);
    if expected != Some(usize::from(pdu_len)) {
        return Err(Rejected::PduLength {
            found: pdu_len,
            expected: expected.unwrap_or(0),
        });
    }
    p += 2;
    let mut request_id: &[u8] = &[];
    for field in [
        IntegerField::RequestId,
        IntegerField::ErrorStatus,
        IntegerField::ErrorIndex,
    ] {
        b.expect(p, tag::INTEGER)?;
        let (value, content) = b.integer(p + 1, field)?;
        // uWSGI: `ptr + ptrdelta >= buffer + size` with ptr on the length byte.
        if p + 2 + content.len() >= len {
            return Err(Rejected::IntegerAtEnd { field });
        }
        match field {
            IntegerField::RequestId => request_id = content,
            _ if value != 0 => return Err(Rejected::NotZero { field, value }),
            _ => {}
        }
        p += 2 + content.len();
    }
    b.expect(p, tag::SEQUENCE)?;
    let list_len_at = p + 1;
    let list_len = b.at(list_len_at)?;
    if usize::from(list_len) > MAX_REQUEST {
        return Err(Rejected::ListLength { len: list_len });
    }
    b.expect(p + 2, tag::SEQUENCE)?;
    let varbind_len_at = p + 3;
    let varbind_len = b.at(varbind_len_at)?;
    if varbind_len < 15 {
        return Err(Rejected::VarbindLength { len: varbind_len });
    }
    b.expect(p + 4, tag::OID)?;
    let oid_len = b.at(p + 5)?;
    if oid_len < 11 {
        return Err(Rejected::OidLength { len: oid_len });
    }
    p += 6;
    if b.slice(p, UWSGI_OID_BASE.len())? != UWSGI_OID_BASE {
        return Err(Rejected::ForeignOid);
    }
    p += UWSGI_OID_BASE.len();
    let oid = match b.at(p)? {
        group @ (1 | 2) => {
            let index = b.at(p + 1)?;
            if index == 0 || index > MAX_INDEX {
                return Err(Rejected::Index { index });
            }
            if b.slice(p + 2, 2)? != [tag::NULL, 0] {
                return Err(Rejected::NoNull { offset: p + 2 });
            }
            if group == 1 {
                Oid::Server(index)
            } else {
                Oid::Custom(index)
            }
        }
        _ => Oid::Metric(b.slice(p, usize::from(oid_len) - UWSGI_OID_BASE.len())?),
    };
    Ok(GetRequest {
        datagram,
        version,
        community,
        request_id,
        oid,
        pdu_tag_at,
        pdu_len_at,
        list_len_at,
        varbind_len_at,
    })
}

impl GetRequest<'_> {
    /// The datagram this request was read from.
    pub fn as_bytes(&self) -> &[u8] {
        self.datagram
    }

    /// The GetResponse carrying `value`, built as uWSGI builds it (see the module
    /// documentation). At most [`MAX_REQUEST`] + 8 = 127 bytes. Length bytes grow with
    /// 8-bit wrap-around, as uWSGI's do.
    pub fn response(&self, value: SnmpValue) -> Vec<u8> {
        let content = value.content();
        let grow = u8::try_from(content.len()).unwrap_or(0);
        let keep = self.datagram.len().saturating_sub(2);
        let mut out = Vec::with_capacity(keep + 2 + content.len());
        out.extend_from_slice(&self.datagram[..keep]);
        out.push(value.tag());
        out.push(grow);
        out.extend_from_slice(&content);
        out[self.pdu_tag_at] = tag::GET_RESPONSE;
        for at in [1, self.pdu_len_at, self.list_len_at, self.varbind_len_at] {
            out[at] = out[at].wrapping_add(grow);
        }
        out
    }

    /// Whether the request is also well-formed BER in the layout real clients send
    /// (every length matching what it encloses, the NULL last): then its response
    /// reads back with [`parse_response`].
    pub fn is_canonical(&self) -> bool {
        strict_walk(self.datagram, tag::GET_REQUEST)
            .is_ok_and(|walk| walk.value == [tag::NULL, 0] && walk.oid == self.oid_bytes())
    }

    fn oid_bytes(&self) -> Vec<u8> {
        let mut oid = UWSGI_OID_BASE.to_vec();
        oid.extend(self.oid.suffix());
        oid
    }
}

/// A GetResponse as [`GetRequest::response`] builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResponse<'a> {
    /// The version INTEGER.
    pub version: u32,
    /// The community string.
    pub community: &'a [u8],
    /// The request-id content bytes.
    pub request_id: &'a [u8],
    /// The whole OID, BER content bytes (base included).
    pub oid: &'a [u8],
    /// The value.
    pub value: SnmpValue,
}

struct Walk<'a> {
    version: u32,
    community: &'a [u8],
    request_id: &'a [u8],
    oid: &'a [u8],
    value: &'a [u8],
}

/// A strict walk of `30 L 02 v 04 c PDU L 02 id 02 0 02 0 30 L 30 L 06 oid value`, every
/// length consistent and nothing after the value.
fn strict_walk(datagram: &[u8], pdu_tag: u8) -> Result<Walk<'_>, Rejected> {
    let b = Bytes(datagram);
    let enclosing = |at: usize| -> Result<(), Rejected> {
        let found = b.at(at)?;
        let actual = datagram.len() - (at + 1);
        if usize::from(found) == actual && found < 0x80 {
            Ok(())
        } else {
            Err(Rejected::Length {
                offset: at,
                found,
                actual,
            })
        }
    };
    b.expect(0, tag::SEQUENCE)?;
    enclosing(1)?;
    b.expect(2, tag::INTEGER)?;
    let (version, raw) = b.integer(3, IntegerField::Version)?;
    let mut p = 4 + raw.len();
    b.expect(p, tag::OCTET_STRING)?;
    let community_len = b.at(p + 1)?;
    if community_len >= 0x80 {
        return Err(Rejected::CommunityLength { len: community_len });
    }
    let community = b.slice(p + 2, usize::from(community_len))?;
    p += 2 + community.len();
    b.expect(p, pdu_tag)?;
    enclosing(p + 1)?;
    p += 2;
    let mut request_id: &[u8] = &[];
    for field in [
        IntegerField::RequestId,
        IntegerField::ErrorStatus,
        IntegerField::ErrorIndex,
    ] {
        b.expect(p, tag::INTEGER)?;
        let (value, content) = b.integer(p + 1, field)?;
        match field {
            IntegerField::RequestId => request_id = content,
            _ if value != 0 => return Err(Rejected::NotZero { field, value }),
            _ => {}
        }
        p += 2 + content.len();
    }
    b.expect(p, tag::SEQUENCE)?;
    enclosing(p + 1)?;
    b.expect(p + 2, tag::SEQUENCE)?;
    enclosing(p + 3)?;
    b.expect(p + 4, tag::OID)?;
    let oid_len = b.at(p + 5)?;
    if oid_len >= 0x80 {
        return Err(Rejected::OidLength { len: oid_len });
    }
    let oid = b.slice(p + 6, usize::from(oid_len))?;
    p += 6 + oid.len();
    let value = b.slice(p, datagram.len().saturating_sub(p))?;
    Ok(Walk {
        version,
        community,
        request_id,
        oid,
        value,
    })
}

/// Reads a GetResponse strictly: well-formed BER in the canonical layout, one varbind,
/// a value of the types this agent sends (NULL, Counter32, Gauge, Counter64 at their
/// fixed widths) and nothing after it.
pub fn parse_response(datagram: &[u8]) -> Result<GetResponse<'_>, Rejected> {
    let walk = strict_walk(datagram, tag::GET_RESPONSE)?;
    let offset = datagram.len() - walk.value.len();
    let (&value_tag, rest) = walk
        .value
        .split_first()
        .ok_or(Rejected::Truncated { offset })?;
    let (&value_len, content) = rest
        .split_first()
        .ok_or(Rejected::Truncated { offset: offset + 1 })?;
    let width = match value_tag {
        tag::NULL => 0,
        tag::COUNTER32 | tag::GAUGE => 4,
        tag::COUNTER64 => 8,
        _ => usize::MAX,
    };
    if usize::from(value_len) != width {
        return Err(Rejected::Value {
            tag: value_tag,
            len: value_len,
        });
    }
    if content.len() != width {
        return match content.len().checked_sub(width) {
            Some(extra) => Err(Rejected::Trailing { len: extra }),
            None => Err(Rejected::Truncated {
                offset: datagram.len(),
            }),
        };
    }
    let big_endian = content
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let value = match value_tag {
        tag::NULL => SnmpValue::Null,
        _ => SnmpValue::from_tag(value_tag, big_endian),
    };
    Ok(GetResponse {
        version: walk.version,
        community: walk.community,
        request_id: walk.request_id,
        oid: walk.oid,
        value,
    })
}

/// Why [`build_get_request`] refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Community empty or longer than 72 bytes.
    #[error("community of {len} bytes (1..={MAX_COMMUNITY})")]
    Community {
        /// Its length.
        len: usize,
    },
    /// The request would exceed [`MAX_REQUEST`] bytes or the OID is not one uWSGI reads.
    #[error("request of {len} bytes (at most {MAX_REQUEST}) or unusable OID")]
    TooLong {
        /// The length it would have.
        len: usize,
    },
}

/// The BER content bytes of a signed INTEGER, minimal two's complement.
fn ber_integer(value: i32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 3 {
        let (first, next) = (bytes[start], bytes[start + 1]);
        let redundant = (first == 0 && next & 0x80 == 0) || (first == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

/// The canonical GetRequest for one OID under the uWSGI base, as `snmpget -v1`/`-v2c`
/// sends it (version 0 = v1, 1 = v2c).
pub fn build_get_request(
    version: u8,
    community: &[u8],
    request_id: i32,
    oid: Oid<'_>,
) -> Result<Vec<u8>, BuildError> {
    if community.is_empty() || community.len() > MAX_COMMUNITY {
        return Err(BuildError::Community {
            len: community.len(),
        });
    }
    let mut oid_bytes = UWSGI_OID_BASE.to_vec();
    oid_bytes.extend(oid.suffix());
    let id = ber_integer(request_id);
    let varbind_len = 2 + oid_bytes.len() + 2;
    let pdu_len = (2 + id.len()) + 3 + 3 + 2 + 2 + varbind_len;
    let total = 2 + 3 + 2 + community.len() + 2 + pdu_len;
    if total > MAX_REQUEST || oid_bytes.len() < 11 {
        return Err(BuildError::TooLong { len: total });
    }
    // Every length below is at most MAX_REQUEST, checked above.
    let byte = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
    let mut out = Vec::with_capacity(total);
    out.extend([tag::SEQUENCE, byte(total - 2), tag::INTEGER, 1, version]);
    out.extend([tag::OCTET_STRING, byte(community.len())]);
    out.extend_from_slice(community);
    out.extend([
        tag::GET_REQUEST,
        byte(pdu_len),
        tag::INTEGER,
        byte(id.len()),
    ]);
    out.extend_from_slice(&id);
    out.extend([tag::INTEGER, 1, 0, tag::INTEGER, 1, 0]);
    out.extend([tag::SEQUENCE, byte(varbind_len + 2)]);
    out.extend([
        tag::SEQUENCE,
        byte(varbind_len),
        tag::OID,
        byte(oid_bytes.len()),
    ]);
    out.extend_from_slice(&oid_bytes);
    out.extend([tag::NULL, 0]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// Spec §7.6 [V14]: request id 1, community `public`, custom slot 6.
    const REQUEST: &str = "302902010004067075626c6963 a01c 020101 020100 020100 3011 300f 060b2b060104018292541102 06 0500";
    const GAUGE_42: &str = "302d02010004067075626c6963 a220 020101 020100 020100 3015 3013 060b2b060104018292541102 06 4204 0000002a";

    #[test]
    fn spec_example_parses() {
        let bytes = hex(REQUEST);
        let request = parse_get_request(&bytes).unwrap();
        assert_eq!(request.version, 0);
        assert_eq!(request.community, b"public");
        assert_eq!(request.request_id, [1]);
        assert_eq!(request.oid, Oid::Custom(6));
        assert!(request.is_canonical());
        assert_eq!(request.as_bytes(), bytes.as_slice());
    }

    #[test]
    fn spec_example_response_is_byte_exact() {
        let bytes = hex(REQUEST);
        let request = parse_get_request(&bytes).unwrap();
        assert_eq!(request.response(SnmpValue::Gauge(42)), hex(GAUGE_42));
        let response = request.response(SnmpValue::Counter64(1_234_567_890_123));
        assert!(response.ends_with(&hex("46 08 0000011f71fb04cb")));
        assert_eq!(response.len(), bytes.len() + 8);
        assert_eq!(&response[..2], &[0x30, 0x29 + 8]);
        // NULL: only the PDU tag changes.
        let mut null = bytes.clone();
        null[13] = 0xa2;
        assert_eq!(request.response(SnmpValue::Null), null);
    }

    #[test]
    fn responses_read_back() {
        let bytes = hex(REQUEST);
        let request = parse_get_request(&bytes).unwrap();
        for value in [
            SnmpValue::Null,
            SnmpValue::Counter32(7),
            SnmpValue::Gauge(u32::MAX),
            SnmpValue::Counter64(u64::MAX),
        ] {
            let response = request.response(value);
            let parsed = parse_response(&response).unwrap();
            assert_eq!(parsed.value, value);
            assert_eq!(parsed.community, b"public");
            assert_eq!(parsed.request_id, [1]);
            assert_eq!(&parsed.oid[..9], UWSGI_OID_BASE);
            assert_eq!(&parsed.oid[9..], [2, 6]);
            // A response is not a request.
            assert!(matches!(
                parse_get_request(&response),
                Err(Rejected::Tag { found: 0xa2, .. }) | Err(Rejected::PduLength { .. })
            ));
        }
    }

    #[test]
    fn builder_reproduces_the_spec_example() {
        let built = build_get_request(0, b"public", 1, Oid::Custom(6)).unwrap();
        assert_eq!(built, hex(REQUEST));
        let v2c = build_get_request(1, b"public", 0x1234_5678, Oid::Server(1)).unwrap();
        let request = parse_get_request(&v2c).unwrap();
        assert_eq!(request.version, 1);
        assert_eq!(request.request_id, [0x12, 0x34, 0x56, 0x78]);
        assert_eq!(request.oid, Oid::Server(1));
        assert!(request.is_canonical());
        // Request ids as BER signed integers.
        assert_eq!(ber_integer(0), [0]);
        assert_eq!(ber_integer(200), [0, 200]);
        assert_eq!(ber_integer(-1), [0xff]);
        assert_eq!(ber_integer(-129), [0xff, 0x7f]);
        assert!(matches!(
            build_get_request(0, b"", 1, Oid::Server(1)),
            Err(BuildError::Community { len: 0 })
        ));
        assert!(build_get_request(0, &[b'c'; 73], 1, Oid::Server(1)).is_err());
        assert!(build_get_request(0, &[b'c'; 72], 1, Oid::Server(1)).is_ok());
    }

    #[test]
    fn each_check_rejects() {
        let good = hex(REQUEST);
        let with = |at: usize, byte: u8| {
            let mut bytes = good.clone();
            bytes[at] = byte;
            parse_get_request(&bytes).map(|_| ())
        };
        // The first byte is not looked at.
        assert!(with(0, 0x99).is_ok());
        assert_eq!(with(1, 12), Err(Rejected::MessageLength { found: 12 }));
        assert_eq!(with(1, 120), Err(Rejected::MessageLength { found: 120 }));
        assert!(with(1, 13).is_ok());
        assert!(matches!(
            with(2, 0x04),
            Err(Rejected::Tag { offset: 2, .. })
        ));
        assert_eq!(with(4, 3), Err(Rejected::Version { version: 3 }));
        assert!(with(4, 2).is_ok());
        assert!(matches!(
            with(5, 0x02),
            Err(Rejected::Tag { offset: 5, .. })
        ));
        assert_eq!(with(6, 0), Err(Rejected::CommunityLength { len: 0 }));
        assert_eq!(with(6, 73), Err(Rejected::CommunityLength { len: 73 }));
        assert!(matches!(
            with(13, 0xa1),
            Err(Rejected::Tag { found: 0xa1, .. })
        ));
        assert!(matches!(
            with(14, 0x1d),
            Err(Rejected::PduLength {
                found: 0x1d,
                expected: 0x1c
            })
        ));
        assert!(matches!(
            with(16, 5),
            Err(Rejected::IntegerTooLong {
                field: IntegerField::RequestId,
                len: 5
            })
        ));
        assert_eq!(
            with(20, 1),
            Err(Rejected::NotZero {
                field: IntegerField::ErrorStatus,
                value: 1
            })
        );
        assert_eq!(
            with(23, 9),
            Err(Rejected::NotZero {
                field: IntegerField::ErrorIndex,
                value: 9
            })
        );
        assert!(matches!(
            with(24, 0x31),
            Err(Rejected::Tag { offset: 24, .. })
        ));
        assert_eq!(with(25, 120), Err(Rejected::ListLength { len: 120 }));
        // Only range-checked, as in uWSGI.
        assert!(with(25, 0).is_ok());
        assert_eq!(with(27, 14), Err(Rejected::VarbindLength { len: 14 }));
        assert!(with(27, 0xff).is_ok());
        assert_eq!(with(29, 10), Err(Rejected::OidLength { len: 10 }));
        assert_eq!(with(32, 0x07), Err(Rejected::ForeignOid));
        assert_eq!(with(40, 0), Err(Rejected::Index { index: 0 }));
        assert_eq!(with(40, 101), Err(Rejected::Index { index: 101 }));
        assert!(with(40, 100).is_ok());
        assert_eq!(with(41, 0x04), Err(Rejected::NoNull { offset: 41 }));
        assert_eq!(with(42, 0x01), Err(Rejected::NoNull { offset: 41 }));
        let mut server = good.clone();
        server[39] = 1;
        assert_eq!(
            parse_get_request(&server).map(|r| r.oid),
            Ok(Oid::Server(6))
        );
    }

    #[test]
    fn length_limits_and_truncation() {
        let good = hex(REQUEST);
        for cut in 0..good.len() {
            assert!(
                parse_get_request(&good[..cut]).is_err(),
                "prefix of {cut} accepted"
            );
        }
        let mut long = good.clone();
        long.extend([0; 80]);
        assert_eq!(
            parse_get_request(&long),
            Err(Rejected::TooLong { len: 123 })
        );
        // Every community up to 72 bytes fits a 17.X.Y request (37 + 72 bytes).
        let built = build_get_request(0, &[b'x'; 72], 0, Oid::Server(1)).unwrap();
        assert_eq!(built.len(), 109);
        assert!(parse_get_request(&built).is_ok());
        let built = build_get_request(0, &[b'x'; 72], 0, Oid::Metric(&[3; 13]));
        assert!(matches!(built, Err(BuildError::TooLong { len: 120 })));
    }

    #[test]
    fn metric_oids_are_passed_through() {
        // 17.3.1 with a 12-byte OID: uWSGI 2.0's metrics subsystem.
        let mut bytes = hex(REQUEST);
        bytes[29] = 12;
        bytes[39] = 3;
        bytes[40] = 1;
        bytes.insert(41, 5);
        bytes[1] += 1;
        bytes[14] += 1;
        bytes[25] += 1;
        bytes[27] += 1;
        let request = parse_get_request(&bytes).unwrap();
        assert_eq!(request.oid, Oid::Metric(&[3, 1, 5]));
        assert!(request.is_canonical());
    }

    #[test]
    fn value_encodings() {
        assert_eq!(
            SnmpValue::from_tag(0x41, 0x1_0000_0005),
            SnmpValue::Counter32(5)
        );
        assert_eq!(SnmpValue::from_tag(0x42, 7), SnmpValue::Gauge(7));
        assert_eq!(
            SnmpValue::from_tag(0x46, u64::MAX),
            SnmpValue::Counter64(u64::MAX)
        );
        assert_eq!(SnmpValue::from_tag(0, 9), SnmpValue::Null);
        assert_eq!(SnmpValue::Gauge(42).content(), [0, 0, 0, 42]);
        assert!(SnmpValue::Null.content().is_empty());
    }
}
