//! The 4-byte header.

use uwsgi_protocol::{DecodeError, Header, Modifier1};

/// `Header::parse`: fewer than 4 bytes is `Incomplete` with the exact count missing;
/// otherwise parse → encode gives back the 4 bytes, and encode → parse the header, for
/// every value; `Modifier1` conversions are lossless and `Other` never hides a named
/// value.
pub fn check(data: &[u8]) {
    let parsed = Header::parse(data);
    if data.len() < Header::LEN {
        assert_eq!(
            parsed,
            Err(DecodeError::Incomplete {
                needed: Header::LEN - data.len()
            }),
            "short header"
        );
        return;
    }
    let header = parsed.expect("4 bytes always make a header");
    assert_eq!(header.to_bytes(), data[..4], "parse → to_bytes");
    let mut out = Vec::new();
    header.encode(&mut out);
    assert_eq!(out, data[..4], "parse → encode");
    assert_eq!(Header::parse(&out), Ok(header), "encode → parse");
    assert_eq!(
        Header::new(header.modifier1.value(), header.datasize, header.modifier2),
        header
    );
    assert_eq!(header.packet_len(), 4 + usize::from(header.datasize));
    assert_eq!(
        header.datasize,
        u16::from_le_bytes([data[1], data[2]]),
        "datasize is little-endian"
    );

    let m1 = header.modifier1;
    assert_eq!(m1.value(), data[0]);
    assert_eq!(u8::from(m1), data[0]);
    assert_eq!(Modifier1::from(data[0]), m1);
    assert_eq!(m1.to_string(), data[0].to_string(), "Display is the number");
    if let Modifier1::Other(inner) = m1 {
        assert_eq!(inner, data[0]);
    }
    // Application slots, as listed in docs/protocol.md §3.
    let app = [
        0u8, 5, 6, 7, 8, 9, 11, 14, 15, 18, 19, 23, 24, 25, 27, 28, 30, 35,
    ];
    assert_eq!(
        m1.is_app_request(),
        app.contains(&data[0]),
        "is_app_request"
    );
}
