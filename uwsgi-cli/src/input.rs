//! Reading the bytes a subcommand works on: a file or stdin, raw or as hex text.

use std::io::Read;

use anyhow::{Context, Result};

/// Reads `path` (`-` or `None` for stdin), decoding hex text when `hex` is set.
pub fn read(path: Option<&str>, hex: bool) -> Result<Vec<u8>> {
    let raw = match path {
        None | Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading stdin")?;
            buf
        }
        Some(path) => std::fs::read(path).with_context(|| format!("reading {path}"))?,
    };
    if hex { decode_hex(&raw) } else { Ok(raw) }
}

/// Hex text to bytes; whitespace is ignored anywhere.
pub fn decode_hex(text: &[u8]) -> Result<Vec<u8>> {
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
                return Err(crate::invalid_input(format!(
                    "invalid hex character {:?} at offset {offset} of the input text",
                    char::from(c)
                )));
            }
        };
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push(h << 4 | nibble),
        }
    }
    if high.is_some() {
        return Err(crate::invalid_input(
            "odd number of hex digits in the input text",
        ));
    }
    Ok(out)
}

/// Bytes to lowercase hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_ignores_whitespace() {
        assert_eq!(decode_hex(b"64 00\n00 0A").unwrap(), vec![0x64, 0, 0, 0x0a]);
        assert_eq!(encode_hex(&[0x64, 0, 0xff]), "6400ff");
        assert!(decode_hex(b"6").is_err());
        assert!(decode_hex(b"zz").is_err());
    }
}
