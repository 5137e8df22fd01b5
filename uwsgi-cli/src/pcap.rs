//! Reading packet captures (pcap and pcapng) of uwsgi traffic: the container formats are
//! read here (a few bounds-checked fields), the link, IP, TCP and UDP headers by
//! `etherparse`, and TCP payloads are put back together per connection, in capture order.
//!
//! Reassembly is deliberately simple: each direction of a connection appends payloads in
//! the order they were captured, skipping bytes already seen (retransmissions) by their
//! sequence numbers. A segment that arrives after a later one (reordering) is taken as a
//! retransmission and dropped; a hole in the sequence (a capture that missed a segment)
//! is noted on the conversation and the bytes after it are appended anyway.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

/// Why a capture cannot be read.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    /// The input starts with no pcap or pcapng magic number.
    #[error("not a pcap or pcapng capture")]
    NotACapture,
    /// A header or record runs past the end of the input.
    #[error("capture truncated at byte {offset}")]
    Truncated {
        /// Where the cut record starts.
        offset: usize,
    },
    /// A pcapng block length is impossible (under 12, not a multiple of 4).
    #[error("pcapng block at byte {offset} has an invalid length {len}")]
    BadBlock {
        /// Where the block starts.
        offset: usize,
        /// Its stated length.
        len: u32,
    },
}

/// Does `input` start like a capture file?
pub fn is_capture(input: &[u8]) -> bool {
    matches!(
        input.get(..4),
        Some(
            [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x0a, 0x0d, 0x0d, 0x0a]
        )
    )
}

/// One captured frame's link type and bytes.
#[derive(Debug, Clone, Copy)]
struct Frame<'a> {
    /// 1-based number in the capture, as Wireshark counts.
    number: usize,
    link_type: u32,
    data: &'a [u8],
}

/// A little reader of u16/u32 fields in either byte order.
#[derive(Debug, Clone, Copy)]
struct Fields<'a> {
    input: &'a [u8],
    big_endian: bool,
}

impl<'a> Fields<'a> {
    fn bytes(&self, at: usize, len: usize) -> Option<&'a [u8]> {
        self.input.get(at..at.checked_add(len)?)
    }

    fn u16(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes(at, 2)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes(at, 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
}

fn usize_of(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Every frame of a classic pcap or a pcapng file; a truncated tail ends the list with
/// an error beside the frames read so far.
fn frames(input: &[u8]) -> (Vec<Frame<'_>>, Option<PcapError>) {
    match input.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => pcapng_frames(input),
        Some([0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]) => pcap_frames(input, false),
        Some([0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d]) => pcap_frames(input, true),
        _ => (Vec::new(), Some(PcapError::NotACapture)),
    }
}

fn pcap_frames(input: &[u8], big_endian: bool) -> (Vec<Frame<'_>>, Option<PcapError>) {
    let fields = Fields { input, big_endian };
    let Some(link_type) = fields.u32(20) else {
        return (Vec::new(), Some(PcapError::Truncated { offset: 0 }));
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at < input.len() {
        let record = fields
            .u32(at + 8)
            .and_then(|len| fields.bytes(at + 16, usize_of(len)));
        let Some(data) = record else {
            return (out, Some(PcapError::Truncated { offset: at }));
        };
        out.push(Frame {
            number: out.len() + 1,
            link_type,
            data,
        });
        at += 16 + data.len();
    }
    (out, None)
}

fn pcapng_frames(input: &[u8]) -> (Vec<Frame<'_>>, Option<PcapError>) {
    let mut out = Vec::new();
    let mut interfaces: Vec<u32> = Vec::new();
    let mut big_endian = false;
    let mut at = 0;
    let error = loop {
        if at >= input.len() {
            break None;
        }
        let truncated = Some(PcapError::Truncated { offset: at });
        let Some(raw_type) = input.get(at..at + 4) else {
            break truncated;
        };
        if raw_type == [0x0a, 0x0d, 0x0d, 0x0a] {
            // Section header: its byte-order magic sets the order for the section.
            match input.get(at + 8..at + 12) {
                Some([0x4d, 0x3c, 0x2b, 0x1a]) => big_endian = false,
                Some([0x1a, 0x2b, 0x3c, 0x4d]) => big_endian = true,
                _ => break truncated,
            }
            interfaces.clear();
        }
        let fields = Fields { input, big_endian };
        let (Some(block_type), Some(len)) = (fields.u32(at), fields.u32(at + 4)) else {
            break truncated;
        };
        if len < 12 || len % 4 != 0 {
            break Some(PcapError::BadBlock { offset: at, len });
        }
        let Some(block) = fields.bytes(at, usize_of(len)) else {
            break truncated;
        };
        let block_fields = Fields {
            input: block,
            big_endian,
        };
        match block_type {
            // Interface description: the link type of the next interface id.
            1 => interfaces.push(block_fields.u16(8).map_or(u32::MAX, u32::from)),
            // Enhanced packet / obsolete packet: interface, then captured length at 20.
            6 | 2 => {
                let interface = if block_type == 6 {
                    block_fields.u32(8)
                } else {
                    block_fields.u16(8).map(u32::from)
                };
                let data = block_fields
                    .u32(20)
                    .and_then(|cap| block_fields.bytes(28, usize_of(cap)));
                if let (Some(interface), Some(data)) = (interface, data) {
                    let link_type = interfaces
                        .get(usize_of(interface))
                        .copied()
                        .unwrap_or(u32::MAX);
                    out.push(Frame {
                        number: out.len() + 1,
                        link_type,
                        data,
                    });
                }
            }
            // Simple packet: interface 0, original length at 8, data to the block's end.
            3 => {
                let data = block_fields.u32(8).and_then(|orig| {
                    let room = block.len().saturating_sub(16);
                    block_fields.bytes(12, usize_of(orig).min(room))
                });
                if let Some(data) = data {
                    out.push(Frame {
                        number: out.len() + 1,
                        link_type: interfaces.first().copied().unwrap_or(u32::MAX),
                        data,
                    });
                }
            }
            _ => {}
        }
        at += block.len();
    };
    (out, error)
}

/// A TCP or UDP payload with its endpoints.
#[derive(Debug, Clone, Copy)]
struct Segment<'a> {
    frame: usize,
    src: SocketAddr,
    dst: SocketAddr,
    tcp: Option<TcpFlags>,
    payload: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct TcpFlags {
    seq: u32,
    syn: bool,
    ack: bool,
}

/// The IP layer onwards of one frame, by link type; `None` for anything else.
fn slice<'a>(frame: &Frame<'a>) -> Option<SlicedPacket<'a>> {
    let data = frame.data;
    match frame.link_type {
        1 => SlicedPacket::from_ethernet(data).ok(),
        // BSD loopback: a 4-byte address family, then IP.
        0 => SlicedPacket::from_ip(data.get(4..)?).ok(),
        101 | 228 | 229 => SlicedPacket::from_ip(data).ok(),
        113 => SlicedPacket::from_linux_sll(data).ok(),
        // Linux cooked v2: a 20-byte header, then the network layer.
        276 => SlicedPacket::from_ip(data.get(20..)?).ok(),
        _ => None,
    }
}

fn segment<'a>(frame: &Frame<'a>) -> Option<Segment<'a>> {
    let sliced = slice(frame)?;
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match &sliced.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return None,
    };
    match sliced.transport? {
        TransportSlice::Tcp(tcp) => Some(Segment {
            frame: frame.number,
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            tcp: Some(TcpFlags {
                seq: tcp.sequence_number(),
                syn: tcp.syn(),
                ack: tcp.ack(),
            }),
            payload: tcp.payload(),
        }),
        TransportSlice::Udp(udp) => Some(Segment {
            frame: frame.number,
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            tcp: None,
            payload: udp.payload(),
        }),
        _ => None,
    }
}

/// One TCP connection, both directions reassembled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    /// The frame that opened it (its first segment in the capture).
    pub first_frame: usize,
    /// The side that sent the SYN (or, with no SYN captured, the first payload).
    pub client: Option<SocketAddr>,
    /// The other side.
    pub server: Option<SocketAddr>,
    /// Bytes the client sent.
    pub to_server: Vec<u8>,
    /// Bytes the server sent.
    pub to_client: Vec<u8>,
    /// A hole in either direction's sequence numbers (bytes missing from the capture).
    pub gap: bool,
    next_to_server: Option<u32>,
    next_to_client: Option<u32>,
}

/// One UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Its frame number.
    pub frame: usize,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// What a capture holds, in the order each conversation or datagram first appears.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    /// TCP connections.
    pub conversations: Vec<Conversation>,
    /// UDP datagrams.
    pub datagrams: Vec<Datagram>,
    /// Frames that carry neither (ARP, ICMP, other link types, IP fragments…).
    pub skipped_frames: usize,
}

/// Appends `payload` at sequence `seq` to a direction expecting `next`.
fn append(buf: &mut Vec<u8>, next: &mut Option<u32>, seq: u32, payload: &[u8], gap: &mut bool) {
    let expected = *next.get_or_insert(seq);
    // Wrapping distance: negative = bytes we already have.
    let ahead = seq.wrapping_sub(expected) as i32;
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    if ahead < 0 {
        let seen = ahead.unsigned_abs();
        if seen < len {
            buf.extend_from_slice(&payload[usize_of(seen)..]);
            *next = Some(seq.wrapping_add(len));
        }
    } else {
        if ahead > 0 {
            *gap = true;
        }
        buf.extend_from_slice(payload);
        *next = Some(seq.wrapping_add(len));
    }
}

/// Reads a capture and reassembles its uwsgi-bearing traffic. Returns what was read and,
/// when the capture is cut or malformed, the error that stopped the reading.
pub fn read(input: &[u8]) -> (Capture, Option<PcapError>) {
    let (frames, error) = frames(input);
    let mut capture = Capture::default();
    // Unordered endpoint pair -> index of its current conversation.
    let mut open: HashMap<(SocketAddr, SocketAddr), usize> = HashMap::new();
    for frame in &frames {
        let Some(seg) = segment(frame) else {
            capture.skipped_frames += 1;
            continue;
        };
        let Some(flags) = seg.tcp else {
            capture.datagrams.push(Datagram {
                frame: seg.frame,
                src: seg.src,
                dst: seg.dst,
                payload: seg.payload.to_vec(),
            });
            continue;
        };
        let key = if seg.src <= seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let opening = flags.syn && !flags.ack;
        let index = match open.get(&key) {
            // A new SYN on a pair already in use: the port was reused, a new connection.
            Some(&i) if !(opening && capture.conversations[i].client.is_some()) => i,
            _ => {
                capture.conversations.push(Conversation {
                    first_frame: seg.frame,
                    ..Conversation::default()
                });
                open.insert(key, capture.conversations.len() - 1);
                capture.conversations.len() - 1
            }
        };
        let conv = &mut capture.conversations[index];
        if conv.client.is_none() && (opening || !seg.payload.is_empty()) {
            conv.client = Some(seg.src);
            conv.server = Some(seg.dst);
        }
        let to_server = conv.client == Some(seg.src);
        let (buf, next) = if to_server {
            (&mut conv.to_server, &mut conv.next_to_server)
        } else {
            (&mut conv.to_client, &mut conv.next_to_client)
        };
        if flags.syn {
            // The SYN takes one sequence number; data starts after it.
            *next = Some(flags.seq.wrapping_add(1));
        }
        if !seg.payload.is_empty() {
            append(buf, next, flags.seq, seg.payload, &mut conv.gap);
        }
    }
    (capture, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic little-endian pcap with raw-IP link type (101) holding `packets`.
    fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        out.extend([0; 8]);
        out.extend(65535u32.to_le_bytes());
        out.extend(101u32.to_le_bytes());
        for p in packets {
            out.extend([0; 8]);
            out.extend(u32::try_from(p.len()).unwrap_or(0).to_le_bytes());
            out.extend(u32::try_from(p.len()).unwrap_or(0).to_le_bytes());
            out.extend(p);
        }
        out
    }

    fn tcp(src: u16, dst: u16, seq: u32, syn: bool, ack: bool, payload: &[u8]) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(src, dst, seq, 65535);
        let builder = if syn { builder.syn() } else { builder };
        let builder = if ack { builder.ack(1) } else { builder };
        let mut out = Vec::new();
        builder
            .write(&mut out, payload)
            .expect("a small packet builds");
        out
    }

    #[test]
    fn reassembles_both_directions_skipping_retransmissions() {
        let frames = [
            tcp(5000, 3031, 99, true, false, b""),
            tcp(3031, 5000, 499, true, true, b""),
            tcp(5000, 3031, 100, false, true, b"\x64\x00"),
            tcp(5000, 3031, 100, false, true, b"\x64\x00"),
            // overlaps the byte at 101, adds two
            tcp(5000, 3031, 101, false, true, b"\x00\x00\x00"),
            tcp(3031, 5000, 500, false, true, b"\x64\x00\x00\x01"),
        ];
        let (capture, error) = read(&pcap(&frames));
        assert_eq!(error, None);
        assert_eq!(capture.conversations.len(), 1);
        let conv = &capture.conversations[0];
        assert_eq!(conv.client.map(|a| a.port()), Some(5000));
        assert_eq!(conv.to_server, [0x64, 0, 0, 0]);
        assert_eq!(conv.to_client, [0x64, 0, 0, 1]);
        assert!(!conv.gap);
    }

    #[test]
    fn truncated_and_foreign_input() {
        let mut bytes = pcap(&[tcp(1, 2, 0, false, true, b"abc")]);
        bytes.truncate(bytes.len() - 1);
        let (capture, error) = read(&bytes);
        assert_eq!(error, Some(PcapError::Truncated { offset: 24 }));
        assert!(capture.conversations.is_empty());
        assert_eq!(read(b"nope").1, Some(PcapError::NotACapture));
        assert!(!is_capture(b"\x64\x00\x00\x00"));
    }
}
