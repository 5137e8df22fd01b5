//! Cache dump images (`uwsgi_protocol::cache_dump`, spec §6.1 "6 dump").
//!
//! The first 4 bytes choose a small receiver geometry (items 1..=16, blocksize 1..=64,
//! blocks items..items+15, keysize 1..=32); the rest is a whole dump reply.

use uwsgi_protocol::DecodeError;
use uwsgi_protocol::cache_dump::{
    DumpEntry, DumpGeometry, DumpImage, DumpLayout, Placement, decode_reply, encode_image,
};

/// uWSGI's djb33x (any function would do: the chains are not read back).
fn djb33x(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &c| {
        h.wrapping_mul(33) ^ (c as i8 as i32 as u32)
    })
}

/// * never a panic; used ≤ input; decoding the used bytes alone gives the same image;
/// * every strict prefix of the used bytes is `Incomplete`;
/// * every item's key is 1..=keysize bytes and its value lies in the image;
/// * the items re-encoded (bitmap placement, which fits whatever the slots held when the
///   values do not overlap) decode to the same keys, values, expiries and hits.
pub fn check(data: &[u8]) {
    let [a, b, c, d, rest @ ..] = data else {
        return;
    };
    let items = u64::from(a % 16) + 1;
    let geometry = DumpGeometry::new(
        items,
        u64::from(b % 64) + 1,
        items + u64::from(c % 16),
        u64::from(d % 32) + 1,
    )
    .expect("small geometries are valid");
    let (image, used) = match decode_reply(rest, geometry, 128) {
        Ok(ok) => ok,
        Err(DecodeError::Incomplete { needed }) => {
            assert!(needed >= 1);
            return;
        }
        Err(DecodeError::Invalid(_)) => {
            return;
        }
    };
    assert!(used <= rest.len());
    assert_eq!(image.as_bytes().len(), geometry.image_len());
    let again = decode_reply(&rest[..used], geometry, 128).expect("used bytes decode alone");
    assert_eq!(again, (image, used));
    for end in [0, used / 2, used.saturating_sub(1)] {
        if end < used {
            assert!(matches!(
                decode_reply(&rest[..end], geometry, 128),
                Err(DecodeError::Incomplete { .. })
            ));
        }
    }
    let entries: Vec<DumpEntry<'_>> = image
        .items()
        .map(|item| {
            assert!(!item.key.is_empty() && item.key.len() as u64 <= geometry.keysize());
            assert!((1..geometry.items()).contains(&item.slot));
            DumpEntry {
                key: item.key,
                value: item.value,
                expires: item.expires,
                hits: item.hits,
            }
        })
        .collect();
    let layout = DumpLayout {
        placement: Placement::Bitmap,
        hashsize: u64::from(*a) + 1,
        lru: b % 2 == 0,
    };
    // Empty values and values that do not fit one after the other are refused.
    if let Ok(ours) = encode_image(&geometry, &layout, &djb33x, &entries) {
        let (back, _) = DumpImage::parse(&ours, geometry).expect("our image decodes");
        let got: Vec<_> = back
            .items()
            .map(|i| (i.key, i.value, i.expires, i.hits, i.flags))
            .collect();
        let want: Vec<_> = entries
            .iter()
            .map(|e| (e.key, e.value, e.expires, e.hits, 0))
            .collect();
        assert_eq!(got, want);
    }
}
