//! `uwsgi-cli decode`: print every packet found in a byte stream, in a packet capture, or
//! one marshal value.
//!
//! All of the work is [`render_input`], a pure function (bytes and options in, text out,
//! no I/O) so that it can be fuzzed and tested without a process.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::Result;
use clap::Args;
use serde_json::{Map, Value as Json, json};
use uwsgi_protocol::{DecodeError, Header, InvalidPacket, Limits, MAX_DATASIZE, Packet, Reply};

use crate::exit::Outcome;
use crate::pcap::{self, PcapError};
use crate::{input, render};

/// Options of `decode`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    uwsgi-cli decode capture.bin\n  \
    printf '64000000' | uwsgi-cli decode --hex --json\n  \
    tcpdump -i lo -w uwsgi.pcap port 3031   # then:\n  \
    uwsgi-cli decode uwsgi.pcap\n  \
    uwsgi-cli decode --marshal --json value.marshal")]
pub struct DecodeArgs {
    /// File to read; `-` or nothing for stdin.
    pub file: Option<String>,
    /// The input is hex text (whitespace ignored), not raw bytes.
    #[arg(long)]
    pub hex: bool,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// The input is one Python marshal stream (any version 0–4), not uwsgi packets.
    #[arg(long, conflicts_with = "pcap")]
    pub marshal: bool,
    /// The input is a pcap or pcapng capture (detected by its magic number anyway).
    #[arg(long)]
    pub pcap: bool,
    /// Largest block a packet may announce, like uWSGI's --buffer-size.
    #[arg(long, default_value_t = MAX_DATASIZE as u16, value_name = "BYTES")]
    pub buffer_size: u16,
}

/// What [`render_input`] is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The input is hex text.
    pub hex: bool,
    /// JSON lines instead of text.
    pub json: bool,
    /// The input is one marshal stream.
    pub marshal: bool,
    /// The input must be a capture (otherwise: detected by its magic number).
    pub pcap: bool,
    /// Largest block a packet may announce.
    pub buffer_size: u16,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            hex: false,
            json: false,
            marshal: false,
            pcap: false,
            buffer_size: u16::MAX,
        }
    }
}

impl From<&DecodeArgs> for DecodeOptions {
    fn from(args: &DecodeArgs) -> Self {
        DecodeOptions {
            hex: args.hex,
            json: args.json,
            marshal: args.marshal,
            pcap: args.pcap,
            buffer_size: args.buffer_size,
        }
    }
}

/// Why input does not decode. Offsets inside packets count from the packet's first byte.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeFailure {
    /// A character that is not a hex digit or whitespace.
    #[error("invalid hex character {character:?} at offset {offset} of the input text")]
    InvalidHex {
        /// The character (its byte, as a char).
        character: char,
        /// Its offset in the text.
        offset: usize,
    },
    /// Hex text with an odd number of digits.
    #[error("odd number of hex digits in the input text")]
    OddHex,
    /// Marshal data that does not decode.
    #[error("invalid marshal data: {0}")]
    Marshal(String),
    /// The input ends inside a packet.
    #[error(
        "input ends inside packet #{index} (starting at byte {offset}): at least {needed} more byte(s) needed"
    )]
    Incomplete {
        /// 1-based packet number.
        index: usize,
        /// Where the packet starts.
        offset: usize,
        /// Bytes missing, at least.
        needed: usize,
    },
    /// A packet the codec rejects.
    #[error(
        "packet #{index} starting at byte {offset} is invalid: {reason} (offsets count from that packet's first byte)"
    )]
    Invalid {
        /// 1-based packet number.
        index: usize,
        /// Where the packet starts.
        offset: usize,
        /// The codec's verdict.
        reason: InvalidPacket,
    },
    /// The input ends inside a packet's body.
    #[error(
        "input ends inside the body of packet #{index} (starting at byte {offset}): {available} of {body_len} body bytes present"
    )]
    BodyTruncated {
        /// 1-based packet number.
        index: usize,
        /// Where the packet starts.
        offset: usize,
        /// Body bytes present.
        available: u64,
        /// Body bytes announced.
        body_len: u64,
    },
    /// The capture container is not readable.
    #[error("{0}")]
    Pcap(#[from] PcapError),
    /// Some conversations or datagrams of a capture are not valid uwsgi (each is reported
    /// in the output).
    #[error("{failed} conversation(s) or datagram(s) in the capture are not valid uwsgi")]
    CaptureFlows {
        /// How many.
        failed: usize,
    },
}

/// The text [`render_input`] produced, and the error that stopped it, if any (the text
/// then holds what decoded before the error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendering {
    /// Lines for stdout, each ending in `\n`.
    pub output: String,
    /// Why decoding stopped early, or why the result is not all valid.
    pub error: Option<DecodeFailure>,
}

/// Hex text to bytes; whitespace is ignored anywhere.
pub fn decode_hex(text: &[u8]) -> Result<Vec<u8>, DecodeFailure> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    for (offset, &c) in text.iter().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let nibble = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => {
                return Err(DecodeFailure::InvalidHex {
                    character: char::from(c),
                    offset,
                });
            }
        };
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push(h << 4 | nibble),
        }
    }
    if high.is_some() {
        return Err(DecodeFailure::OddHex);
    }
    Ok(out)
}

/// Decodes `input` as `decode` does and renders the result: the whole of `decode` but
/// reading the input and writing the output. Never panics, whatever the input.
pub fn render_input(input: &[u8], options: &DecodeOptions) -> Rendering {
    let mut output = String::new();
    let error = render_into(input, options, &mut output).err();
    Rendering { output, error }
}

fn render_into(
    input: &[u8],
    options: &DecodeOptions,
    out: &mut String,
) -> Result<(), DecodeFailure> {
    let decoded_hex;
    let bytes = if options.hex {
        decoded_hex = decode_hex(input)?;
        &decoded_hex[..]
    } else {
        input
    };
    if options.marshal {
        let value = uwsgi_protocol::marshal::from_slice(bytes)
            .map_err(|err| DecodeFailure::Marshal(err.to_string()))?;
        let json = render::marshal_json(&value);
        if options.json {
            line(out, &json.to_string());
        } else {
            line(
                out,
                &serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string()),
            );
        }
        return Ok(());
    }
    let limits = Limits {
        max_datasize: options.buffer_size,
        max_vars: usize::MAX,
        max_array_items: usize::MAX,
        max_body: u64::MAX,
    };
    if options.pcap || pcap::is_capture(bytes) {
        return render_capture(bytes, &limits, options.json, out);
    }
    render_stream(bytes, &limits, options.json, &Map::new(), out).map(|_| ())
}

fn line(out: &mut String, text: &str) {
    out.push_str(text);
    out.push('\n');
}

/// Every packet of a stream, in order; returns the first packet's header.
fn render_stream(
    bytes: &[u8],
    limits: &Limits,
    json: bool,
    context: &Map<String, Json>,
    out: &mut String,
) -> Result<Option<Header>, DecodeFailure> {
    let mut pos = 0;
    let mut index = 1;
    let mut first = None;
    while pos < bytes.len() {
        let decoded = match Packet::decode(&bytes[pos..], limits) {
            Ok(decoded) => decoded,
            Err(DecodeError::Incomplete { needed }) => {
                return Err(DecodeFailure::Incomplete {
                    index,
                    offset: pos,
                    needed,
                });
            }
            Err(DecodeError::Invalid(reason)) => {
                return Err(DecodeFailure::Invalid {
                    index,
                    offset: pos,
                    reason,
                });
            }
        };
        first.get_or_insert(decoded.packet.header());
        if json {
            let mut fields = context.clone();
            if let Json::Object(packet) =
                render::packet_json(&decoded.packet, pos, decoded.body_len)
            {
                fields.extend(packet);
            }
            line(out, &Json::Object(fields).to_string());
        } else {
            line(
                out,
                &render::packet_text(&decoded.packet, index, pos, decoded.body_len),
            );
        }
        let body_start = pos + decoded.consumed;
        let available = (bytes.len() - body_start) as u64;
        if decoded.body_len > available {
            return Err(DecodeFailure::BodyTruncated {
                index,
                offset: pos,
                available,
                body_len: decoded.body_len,
            });
        }
        // body_len <= available, which is a usize.
        pos = body_start + usize::try_from(decoded.body_len).unwrap_or(0);
        index += 1;
    }
    Ok(first)
}

fn render_capture(
    bytes: &[u8],
    limits: &Limits,
    json: bool,
    out: &mut String,
) -> Result<(), DecodeFailure> {
    let (capture, error) = pcap::read(bytes);
    if let Some(error @ PcapError::NotACapture) = error {
        return Err(error.into());
    }
    let mut failed = 0;
    let mut report =
        |out: &mut String, context: &Map<String, Json>, err: &dyn std::fmt::Display| {
            failed += 1;
            if json {
                let mut fields = context.clone();
                fields.insert("error".into(), json!(err.to_string()));
                line(out, &Json::Object(fields).to_string());
            } else {
                line(out, &format!("    error: {err}"));
            }
        };
    for conv in &capture.conversations {
        let (Some(client), Some(server)) = (conv.client, conv.server) else {
            continue;
        };
        if conv.to_server.is_empty() && conv.to_client.is_empty() {
            continue;
        }
        let mut context = Map::new();
        context.insert("frame".into(), json!(conv.first_frame));
        context.insert("transport".into(), json!("tcp"));
        context.insert("flow".into(), json!(format!("{client} > {server}")));
        if !json {
            let gap = if conv.gap {
                " (bytes missing from the capture)"
            } else {
                ""
            };
            line(
                out,
                &format!(
                    "== tcp {client} > {server} (frame {}){gap}",
                    conv.first_frame
                ),
            );
        }
        let mut request = context.clone();
        request.insert("direction".into(), json!("request"));
        let header = match render_stream(&conv.to_server, limits, json, &request, out) {
            Ok(header) => header,
            Err(err) => {
                report(out, &request, &err);
                continue;
            }
        };
        let mut reply_context = context;
        reply_context.insert("direction".into(), json!("reply"));
        let Some(header) = header else {
            if !conv.to_client.is_empty() {
                let mut fields = reply_context;
                fields.insert("kind".into(), json!("raw"));
                fields.insert("payload".into(), render::bytes_json(&conv.to_client));
                if json {
                    line(out, &Json::Object(fields).to_string());
                } else {
                    line(
                        out,
                        &format!(
                            "reply (no request): {}",
                            render::bytes_text_multiline(&conv.to_client)
                        ),
                    );
                }
            }
            continue;
        };
        match Reply::decode(&conv.to_client, header, true, limits) {
            Ok((reply, _)) => {
                if json {
                    let mut fields = reply_context;
                    fields.extend(render::reply_fields(&reply));
                    line(out, &Json::Object(fields).to_string());
                } else {
                    let mut text = String::new();
                    let _ = write!(text, "reply: {}", render::reply_text(&reply));
                    line(out, &text);
                }
            }
            Err(err) => report(out, &reply_context, &err),
        }
    }
    for datagram in &capture.datagrams {
        let mut context = Map::new();
        context.insert("frame".into(), json!(datagram.frame));
        context.insert("transport".into(), json!("udp"));
        context.insert(
            "flow".into(),
            json!(format!("{} > {}", datagram.src, datagram.dst)),
        );
        if !json {
            line(
                out,
                &format!(
                    "== udp {} > {} (frame {})",
                    datagram.src, datagram.dst, datagram.frame
                ),
            );
        }
        match Packet::decode_datagram(&datagram.payload, limits) {
            Ok(packet) => {
                if json {
                    let mut fields = context;
                    if let Json::Object(p) = render::packet_json(&packet, 0, 0) {
                        fields.extend(p);
                    }
                    line(out, &Json::Object(fields).to_string());
                } else {
                    line(out, &render::packet_text(&packet, 1, 0, 0));
                }
            }
            Err(err) => report(out, &context, &err),
        }
    }
    if let Some(error) = error {
        return Err(error.into());
    }
    if failed > 0 {
        return Err(DecodeFailure::CaptureFlows { failed });
    }
    Ok(())
}

/// Runs `decode`.
pub fn run(args: &DecodeArgs, out: &mut dyn Write) -> Result<Outcome> {
    let bytes = input::read(args.file.as_deref())?;
    let rendering = render_input(&bytes, &DecodeOptions::from(args));
    out.write_all(rendering.output.as_bytes())?;
    match rendering.error {
        None => Ok(Outcome::Ok),
        Some(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ignores_whitespace_and_reports_junk() {
        assert_eq!(decode_hex(b"64 00\n00 0A"), Ok(vec![0x64, 0, 0, 0x0a]));
        assert_eq!(decode_hex(b"6"), Err(DecodeFailure::OddHex));
        assert!(matches!(
            decode_hex(b"zz"),
            Err(DecodeFailure::InvalidHex { offset: 0, .. })
        ));
    }

    /// `render_input` is what a fuzz target will call: no input may panic it, and JSON
    /// output is always one valid object per line.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let prefixes: [&[u8]; 5] = [
            b"",
            &[
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0,
                0, 0,
            ],
            &[
                0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a,
            ],
            &[0x00, 0x10, 0x00, 0x00],
            &[0xad, 0x08, 0x00, 0x00],
        ];
        for round in 0..3000 {
            let len = usize::try_from(next() % 96).unwrap_or(0);
            let mut input = prefixes[round % prefixes.len()].to_vec();
            input.extend((0..len).map(|_| next().to_le_bytes()[0]));
            for (json, marshal, pcap) in [
                (true, false, false),
                (false, false, false),
                (true, false, true),
                (true, true, false),
            ] {
                let options = DecodeOptions {
                    json,
                    marshal,
                    pcap,
                    ..DecodeOptions::default()
                };
                let rendering = render_input(&input, &options);
                if json {
                    for line in rendering.output.lines() {
                        assert!(serde_json::from_str::<Json>(line).is_ok(), "{line}");
                    }
                }
            }
        }
    }

    #[test]
    fn keeps_what_decoded_before_an_error() {
        let options = DecodeOptions {
            hex: true,
            json: true,
            ..DecodeOptions::default()
        };
        let rendering = render_input(b"64000000 6400", &options);
        assert_eq!(rendering.output.lines().count(), 1);
        assert!(matches!(
            rendering.error,
            Some(DecodeFailure::Incomplete {
                index: 2,
                offset: 4,
                ..
            })
        ));
    }
}
