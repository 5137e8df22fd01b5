//! `uwsgi-cli decode`: print every packet found in a byte stream, or one marshal value.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use uwsgi_protocol::{DecodeError, Limits, MAX_DATASIZE, Packet};

use crate::{input, invalid_input, render};

/// Options of `decode`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    uwsgi-cli decode capture.bin\n  \
    printf '64000000' | uwsgi-cli decode --hex --json\n  \
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
    #[arg(long)]
    pub marshal: bool,
    /// Largest block a packet may announce, like uWSGI's --buffer-size.
    #[arg(long, default_value_t = MAX_DATASIZE as u16, value_name = "BYTES")]
    pub buffer_size: u16,
}

/// Runs `decode`.
pub fn run(args: &DecodeArgs) -> Result<()> {
    let bytes = input::read(args.file.as_deref(), args.hex)?;
    let mut out = std::io::stdout().lock();
    if args.marshal {
        let value = uwsgi_protocol::marshal::from_slice(&bytes)
            .map_err(|err| invalid_input(format!("invalid marshal data: {err}")))?;
        let json = render::marshal_json(&value);
        if args.json {
            writeln!(out, "{json}")?;
        } else {
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        return Ok(());
    }
    let limits = Limits {
        max_datasize: args.buffer_size,
        max_vars: usize::MAX,
        max_array_items: usize::MAX,
        max_body: u64::MAX,
    };
    let mut pos = 0;
    let mut index = 1;
    while pos < bytes.len() {
        let decoded = match Packet::decode(&bytes[pos..], &limits) {
            Ok(decoded) => decoded,
            Err(DecodeError::Incomplete { needed }) => {
                return Err(invalid_input(format!(
                    "input ends inside packet #{index} (starting at byte {pos}): at least {needed} more byte(s) needed"
                )));
            }
            Err(DecodeError::Invalid(reason)) => {
                return Err(invalid_input(format!(
                    "packet #{index} starting at byte {pos} is invalid: {reason} (offsets count from that packet's first byte)"
                )));
            }
        };
        if args.json {
            writeln!(
                out,
                "{}",
                render::packet_json(&decoded.packet, pos, decoded.body_len)
            )?;
        } else {
            writeln!(
                out,
                "{}",
                render::packet_text(&decoded.packet, index, pos, decoded.body_len)
            )?;
        }
        let body_start = pos + decoded.consumed;
        let available = (bytes.len() - body_start) as u64;
        if decoded.body_len > available {
            return Err(invalid_input(format!(
                "input ends inside the body of packet #{index} (starting at byte {pos}): {} of {} body bytes present",
                available, decoded.body_len
            )));
        }
        // body_len <= available, which is a usize.
        pos = body_start + usize::try_from(decoded.body_len).unwrap_or(0);
        index += 1;
    }
    Ok(())
}
