//! `uwsgi-cli decode`'s input handling (`uwsgi_cli::decode::render_input`): any bytes,
//! raw or as hex, with any options, render without panicking; JSON output is valid JSON
//! on every line (an object per packet); hex input renders exactly like the bytes it
//! spells.

use uwsgi_cli::decode::{DecodeOptions, render_input};

/// Options from the first input byte; the rest is the input.
fn options(flags: u8) -> DecodeOptions {
    DecodeOptions {
        hex: false,
        json: flags & 1 != 0,
        marshal: flags & 2 != 0,
        pcap: flags & 4 != 0,
        buffer_size: if flags & 8 != 0 { 4096 } else { u16::MAX },
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `cli_decode` target.
pub fn check(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let options = options(flags);
    let rendered = render_input(input, &options);
    assert!(
        rendered.output.is_empty() || rendered.output.ends_with('\n'),
        "output lines end with a newline"
    );
    if options.json {
        for line in rendered.output.lines() {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("invalid JSON line {line:?}: {e}"));
            // Packets are objects; with --marshal the line is the value itself.
            assert!(
                options.marshal || value.is_object(),
                "each packet line is a JSON object: {line}"
            );
        }
    }
    // The same bytes given as hex (with whitespace) render the same way.
    let hex_text = to_hex(input);
    let spaced: String = hex_text
        .as_bytes()
        .chunks(8)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" \n");
    let from_hex = render_input(
        spaced.as_bytes(),
        &DecodeOptions {
            hex: true,
            ..options
        },
    );
    assert_eq!(
        from_hex.output, rendered.output,
        "hex input renders like raw input"
    );
    assert_eq!(
        from_hex.error.map(|e| e.to_string()),
        rendered.error.map(|e| e.to_string()),
        "hex input fails like raw input"
    );
}
