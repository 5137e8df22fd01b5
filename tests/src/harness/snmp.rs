//! Harness of the `snmp` target: `uwsgi_protocol::snmp` against a transliteration of
//! uWSGI's `manage_snmp` / `build_snmp_response` (core/snmp.c).
//!
//! Properties, on any bytes:
//!
//! * `parse_get_request` never panics, and accepts exactly what the model of uWSGI's
//!   walk accepts (the model stops where uWSGI would read past the datagram), with the
//!   same version, community, request-id and OID;
//! * for every value kind the response is byte-for-byte the model's in-place patch;
//! * an accepted canonical request's response reads back with `parse_response`, with
//!   the same fields and value;
//! * `parse_response` never panics; what it accepts is a SEQUENCE whose length byte
//!   covers the rest, ending with a value of its type's width;
//! * a rejection names bytes that are there (`Truncated`: an offset past the end) and
//!   is the same when parsed again.

use uwsgi_protocol::snmp::{
    Oid, Rejected, SnmpValue, UWSGI_OID_BASE, parse_get_request, parse_response,
};

/// What the model of uWSGI's walk found.
struct Accepted {
    version: u64,
    community: Vec<u8>,
    request_id: Vec<u8>,
    /// X and Y for `17.X.Y`, or the metric OID bytes.
    oid: Result<(u8, u8), Vec<u8>>,
    pdu_tag_at: usize,
    seq1: usize,
    seq2: usize,
    seq3: usize,
}

/// uWSGI's `get_snmp_integer` at `ptr` (the length byte): (ptrdelta, value), `None` for
/// a length above 4 or bytes past the datagram.
fn get_snmp_integer(buf: &[u8], ptr: usize) -> Option<(usize, u64)> {
    let tlen = usize::from(*buf.get(ptr)?);
    if tlen > 4 {
        return None;
    }
    let bytes = buf.get(ptr + 1..ptr + 1 + tlen)?;
    let value = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Some((tlen + 1, value))
}

/// `manage_snmp`, line by line, with every read bounds-checked.
fn model(buf: &[u8]) -> Option<Accepted> {
    let size = buf.len();
    let at = |i: usize| buf.get(i).copied();
    if size > 127 - 8 {
        return None;
    }
    let mut ptr = 1;
    let total = at(ptr)?;
    if !(13..=119).contains(&total) {
        return None;
    }
    ptr += 1;
    if at(ptr)? != 0x02 {
        return None;
    }
    ptr += 1;
    // A length above 4 makes uWSGI step back onto the INTEGER tag, which then fails the
    // OCTET STRING check: a rejection either way.
    let (delta, version) = get_snmp_integer(buf, ptr)?;
    if version > 2 {
        return None;
    }
    ptr += delta;
    if at(ptr)? != 0x04 {
        return None;
    }
    ptr += 1;
    let community_len = usize::from(at(ptr)?);
    if !(1..=72).contains(&community_len) {
        return None;
    }
    ptr += 1;
    let community = buf.get(ptr..ptr + community_len)?.to_vec();
    ptr += community_len;
    if at(ptr)? != 0xa0 {
        return None;
    }
    let pdu_tag_at = ptr;
    ptr += 1;
    let seq1 = ptr;
    // uWSGI compares the byte (as an int) with `(size - community_len) - 9`.
    if Some(usize::from(at(ptr)?)) != size.checked_sub(community_len + 9) {
        return None;
    }
    ptr += 1;
    let mut request_id = Vec::new();
    for field in 0..3 {
        if at(ptr)? != 0x02 {
            return None;
        }
        ptr += 1;
        let (delta, value) = get_snmp_integer(buf, ptr)?;
        if ptr + delta >= size {
            return None;
        }
        if field == 0 {
            request_id = buf[ptr + 1..ptr + delta].to_vec();
        } else if value != 0 {
            return None;
        }
        ptr += delta;
    }
    if at(ptr)? != 0x30 {
        return None;
    }
    ptr += 1;
    if at(ptr)? > 119 {
        return None;
    }
    let seq2 = ptr;
    ptr += 1;
    if at(ptr)? != 0x30 {
        return None;
    }
    ptr += 1;
    if at(ptr)? < 15 {
        return None;
    }
    let seq3 = ptr;
    ptr += 1;
    if at(ptr)? != 0x06 {
        return None;
    }
    ptr += 1;
    let oidlen = usize::from(at(ptr)?);
    if oidlen < 11 {
        return None;
    }
    ptr += 1;
    if buf.get(ptr..ptr + 9)? != UWSGI_OID_BASE {
        return None;
    }
    ptr += 9;
    let x = at(ptr)?;
    let oid = if x == 1 || x == 2 {
        ptr += 1;
        let y = at(ptr)?;
        if !(1..=100).contains(&y) {
            return None;
        }
        ptr += 1;
        if buf.get(ptr..ptr + 2)? != [0x05, 0x00] {
            return None;
        }
        Ok((x, y))
    } else {
        Err(buf.get(ptr..ptr + oidlen - 9)?.to_vec())
    };
    Some(Accepted {
        version,
        community,
        request_id,
        oid,
        pdu_tag_at,
        seq1,
        seq2,
        seq3,
    })
}

/// `build_snmp_response` + `snmp_int_to_snmp` on a copy of the request.
fn model_response(buf: &[u8], accepted: &Accepted, tag: u8, value: u64) -> Vec<u8> {
    let size = buf.len();
    let mut out = buf.to_vec();
    out[accepted.pdu_tag_at] = 0xa2;
    let content: Vec<u8> = match tag {
        0x46 => value.to_be_bytes().to_vec(),
        0x05 | 0 => Vec::new(),
        // uWSGI: `int32_t val32 = (int32_t) snmp_val`, the low 32 bits.
        _ => u32::try_from(value & 0xffff_ffff)
            .expect("masked")
            .to_be_bytes()
            .to_vec(),
    };
    out.truncate(size - 2);
    out.push(tag);
    let grow = u8::try_from(content.len()).expect("at most 8 bytes");
    out.push(grow);
    out.extend_from_slice(&content);
    for at in [1, accepted.seq1, accepted.seq2, accepted.seq3] {
        out[at] = out[at].wrapping_add(grow);
    }
    out
}

/// The harness.
pub fn check(data: &[u8]) {
    let parsed = parse_get_request(data);
    let expected = model(data);
    match (&parsed, &expected) {
        (Ok(request), Some(model)) => {
            assert_eq!(u64::from(request.version), model.version);
            assert_eq!(request.community, model.community.as_slice());
            assert_eq!(request.request_id, model.request_id.as_slice());
            match (&request.oid, &model.oid) {
                (Oid::Server(y), Ok((1, my))) | (Oid::Custom(y), Ok((2, my))) => {
                    assert_eq!(y, my)
                }
                (Oid::Metric(bytes), Err(model_bytes)) => assert_eq!(bytes, model_bytes),
                (ours, theirs) => panic!("OID {ours:?} vs model {theirs:?}"),
            }
            let seed = data.iter().fold(0x9e37_79b9_7f4a_7c15u64, |acc, b| {
                acc.rotate_left(7) ^ u64::from(*b)
            });
            for value in [
                SnmpValue::Null,
                SnmpValue::Counter32(u32::try_from(seed & 0xffff_ffff).expect("masked")),
                SnmpValue::Gauge(u32::try_from(seed >> 32).expect("shifted")),
                SnmpValue::Counter64(seed),
            ] {
                let raw = match value {
                    SnmpValue::Null => 0,
                    SnmpValue::Counter32(v) | SnmpValue::Gauge(v) => u64::from(v),
                    SnmpValue::Counter64(v) => v,
                };
                let response = request.response(value);
                assert_eq!(
                    response,
                    model_response(data, model, value.tag(), raw),
                    "{value:?}"
                );
                assert!(response.len() <= 127);
                if request.is_canonical() {
                    let back = parse_response(&response).expect("canonical response reads back");
                    assert_eq!(back.value, value);
                    assert_eq!(back.community, request.community);
                    assert_eq!(back.request_id, request.request_id);
                    assert_eq!(u64::from(back.version), model.version);
                    assert_eq!(&back.oid[..9], UWSGI_OID_BASE.as_slice());
                }
            }
        }
        (Err(reason), None) => check_rejection(data, reason),
        (ours, theirs) => panic!(
            "parse {:?} but the model of uWSGI {}",
            ours.as_ref().map(|r| r.oid),
            if theirs.is_some() {
                "accepts"
            } else {
                "rejects"
            }
        ),
    }
    if let Ok(response) = parse_response(data) {
        let width = response.value.content().len();
        assert!(data.len() >= width + 2);
        assert_eq!(data[data.len() - width - 2], response.value.tag());
        assert_eq!(data[0], 0x30);
        assert_eq!(usize::from(data[1]), data.len() - 2);
    }
}

fn check_rejection(data: &[u8], reason: &Rejected) {
    match *reason {
        Rejected::TooLong { len } => assert!(len == data.len() && len > 119),
        Rejected::Truncated { offset } => assert!(offset >= data.len()),
        Rejected::Tag { offset, found, .. } | Rejected::Length { offset, found, .. } => {
            assert_eq!(data[offset], found)
        }
        Rejected::NoNull { offset } => assert!(offset < data.len()),
        _ => {}
    }
    // A rejection is stable: parsing again gives the same reason.
    assert_eq!(parse_get_request(data).err(), Some(*reason));
}
