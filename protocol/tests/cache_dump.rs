//! Cache dumps captured from real uWSGI 2.0.30 (`tests/vectors/cache-dump/`, see its
//! README): decoded item by item, and the plain one re-encoded byte-exact.

use std::path::PathBuf;

use uwsgi_protocol::cache_dump::{
    DumpEntry, DumpGeometry, DumpImage, DumpLayout, Placement, decode_reply, encode_image,
    encode_reply,
};
use uwsgi_protocol::{DecodeError, InvalidPacket};

fn vector(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/cache-dump")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// uWSGI's djb33x.
fn djb33x(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &c| {
        h.wrapping_mul(33) ^ (c as i8 as i32 as u32)
    })
}

#[test]
fn plain_dump_decodes_and_reencodes_byte_exact() {
    let reply = vector("uwsgi-2.0.30-plain.bin");
    let geometry = DumpGeometry::new(4, 16, 4, 16).unwrap();
    let (image, used) = decode_reply(&reply, geometry, 128).unwrap();
    assert_eq!(used, reply.len());
    let items: Vec<_> = image
        .items()
        .map(|i| (i.slot, i.key, i.value, i.expires, i.hits, i.flags))
        .collect();
    assert_eq!(
        items,
        [
            (1, &b"exp"[..], &b"soon"[..], 1_795_598_227, 0, 0),
            (2, b"key2", b"value-two", 0, 0, 0),
            (3, b"k1", b"v1", 0, 0, 0),
        ]
    );
    // The same items in the same slots, written by us: the same bytes, hashes and all.
    let entries: Vec<_> = image
        .items()
        .map(|i| DumpEntry {
            key: i.key,
            value: i.value,
            expires: i.expires,
            hits: i.hits,
        })
        .collect();
    let layout = DumpLayout {
        placement: Placement::SlotBlock,
        hashsize: 65536,
        lru: false,
    };
    let ours = encode_image(&geometry, &layout, &djb33x, &entries).unwrap();
    assert_eq!(ours, image.as_bytes());
    assert_eq!(encode_reply(&geometry, &ours), reply);
}

#[test]
fn bitmap_dump_decodes() {
    let reply = vector("uwsgi-2.0.30-bitmap.bin");
    let geometry = DumpGeometry::new(4, 8, 8, 8).unwrap();
    let (image, _) = decode_reply(&reply, geometry, 128).unwrap();
    let items: Vec<_> = image.items().map(|i| (i.slot, i.key, i.value)).collect();
    assert_eq!(
        items,
        [(2, &b"b"[..], &b"x"[..]), (3, b"a", b"0123456789abc")]
    );
}

#[test]
fn a_receiver_of_another_size_refuses_the_dump() {
    let reply = vector("uwsgi-2.0.30-plain.bin");
    let wrong_items = DumpGeometry::new(5, 16, 5, 16).unwrap();
    assert!(matches!(
        decode_reply(&reply, wrong_items, 128),
        Err(DecodeError::Invalid(InvalidPacket::DumpMismatch {
            what: "items",
            ..
        }))
    ));
    let wrong_blocksize = DumpGeometry::new(4, 32, 4, 16).unwrap();
    assert!(matches!(
        decode_reply(&reply, wrong_blocksize, 128),
        Err(DecodeError::Invalid(InvalidPacket::DumpMismatch {
            what: "blocksize",
            ..
        }))
    ));
    // keysize is not sent: a receiver with another keysize reads another table (and
    // here wants more bytes than were sent), as uWSGI would.
    let wrong_keysize = DumpGeometry::new(4, 16, 4, 32).unwrap();
    assert!(decode_reply(&reply, wrong_keysize, 128).is_err());
    // Every prefix of the image is incomplete.
    let image = &reply[29..];
    let plain = DumpGeometry::new(4, 16, 4, 16).unwrap();
    for end in 0..image.len() {
        assert!(
            DumpImage::parse(&image[..end], plain)
                .unwrap_err()
                .is_incomplete()
        );
    }
}
