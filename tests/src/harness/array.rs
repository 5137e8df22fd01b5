//! The array block: `Array` (validated view) and `ArrayBuilder`.

use arbitrary::Unstructured;
use uwsgi_protocol::{Array, ArrayBuilder, EncodeError, Field, MAX_DATASIZE};

use super::model;

/// The item limits every block is parsed with.
const MAX_ITEMS: [usize; 6] = [0, 1, 2, 3, 255, usize::MAX];

/// Runs [`check_block`] on the input as a block, then [`check_generated`] on items
/// generated from it.
pub fn check(data: &[u8]) {
    check_block(data);
    check_generated(data);
}

/// `Array::parse(block, max)` for several `max` agrees with the model (uWSGI's rules:
/// empty items skipped, a length in the last two bytes or a stray byte rejects the
/// array); on success the view yields the non-empty items, and re-encoding them through
/// `ArrayBuilder` gives the block byte-exact when it holds no empty item, and otherwise
/// the block with the empty items removed (which parses to the same items).
pub fn check_block(block: &[u8]) {
    let walk = model::walk_array(block);
    let want_items = walk.items();
    for max in MAX_ITEMS {
        let got = Array::parse(block, max);
        assert_eq!(
            got.as_ref().map(|a| a.len()).map_err(Clone::clone),
            model::expect_array(block, max),
            "Array::parse(max_items {max}) disagrees with the documented rules"
        );
        let at = Array::parse_at(block, 4, max);
        assert_eq!(
            at.map(|a| a.len()),
            got.as_ref()
                .map(|a| a.len())
                .map_err(|e| model::shift(e.clone(), 4)),
            "parse_at(base 4) must shift the offsets by 4"
        );
        if let Err(e) = &got {
            for offset in model::offsets(e) {
                assert!(offset <= block.len(), "{e:?}: offset past the block");
            }
        }
        // The view itself is the same whatever the limit: check it once.
        let (Ok(array), usize::MAX) = (got, max) else {
            continue;
        };
        let items: Vec<&[u8]> = array.iter().collect();
        assert_eq!(items, want_items, "iteration yields the non-empty items");
        assert!(items.iter().all(|i| !i.is_empty()));
        assert_eq!(array.len(), items.len(), "len() == iteration count");
        assert_eq!(array.iter().len(), items.len(), "ExactSizeIterator");
        assert_eq!(array.is_empty(), items.is_empty());
        assert_eq!(array.first(), items.first().copied());
        assert_eq!(array.as_bytes(), block);
        assert_eq!(array.into_iter().count(), items.len());
        let _ = format!("{array:?}");

        let rebuilt = ArrayBuilder::from_items(array.iter()).expect("decoded items rebuild");
        assert_eq!(rebuilt.len(), items.len());
        let has_empty = walk.entries.iter().any(|e| e.is_empty());
        let rebuilt_block = rebuilt.clone().into_block();
        if has_empty {
            let mut canonical = Vec::new();
            for item in &items {
                let len = u16::try_from(item.len()).expect("items come from a 16-bit field");
                canonical.extend_from_slice(&len.to_le_bytes());
                canonical.extend_from_slice(item);
            }
            assert_eq!(rebuilt_block, canonical, "empty items are dropped");
        } else {
            assert_eq!(rebuilt_block, block, "re-encoding is byte-exact");
            assert_eq!(rebuilt.as_array(), array);
        }
        let again = Array::parse(&rebuilt_block, max).expect("the rebuilt block parses");
        assert_eq!(again.iter().collect::<Vec<_>>(), items);
    }
}

/// What `ArrayBuilder::push` must do with `item` on a builder holding `block_len` bytes.
fn expect_push(block_len: usize, item: &[u8]) -> Result<(), EncodeError> {
    if item.is_empty() {
        return Err(EncodeError::EmptyItem);
    }
    if item.len() > MAX_DATASIZE {
        return Err(EncodeError::TooLarge {
            what: Field::Item,
            len: item.len(),
            max: MAX_DATASIZE,
        });
    }
    let grown = block_len + 2 + item.len();
    if grown > MAX_DATASIZE {
        return Err(EncodeError::TooLarge {
            what: Field::Block,
            len: grown,
            max: MAX_DATASIZE,
        });
    }
    Ok(())
}

/// Arbitrary items → `ArrayBuilder` → `Array::parse` gives the same items; refused
/// pushes are refused for the documented reason and change nothing.
pub fn check_generated(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(n) = u.int_in_range(0..=24usize) else {
        return;
    };
    let mut builder = ArrayBuilder::new();
    let mut accepted: Vec<Vec<u8>> = Vec::new();
    for _ in 0..n {
        let Ok(item) = model::bytes(&mut u) else {
            break;
        };
        let before = builder.clone();
        let want = expect_push(before.as_array().as_bytes().len(), &item);
        let got = builder.push(&item).map(|_| ());
        assert_eq!(got, want, "push of a {}-byte item", item.len());
        if got.is_ok() {
            accepted.push(item);
        } else {
            assert_eq!(
                builder, before,
                "a refused push leaves the builder unchanged"
            );
        }
    }
    assert_eq!(builder.len(), accepted.len());
    assert_eq!(builder.is_empty(), accepted.is_empty());
    let block = builder.clone().into_block();
    assert!(block.len() <= MAX_DATASIZE);
    let array = Array::parse(&block, usize::MAX).expect("a built block always parses");
    let items: Vec<&[u8]> = array.iter().collect();
    let want: Vec<&[u8]> = accepted.iter().map(Vec::as_slice).collect();
    assert_eq!(items, want, "built → parsed");
    assert_eq!(builder.as_array(), array);
    assert_eq!(
        ArrayBuilder::from_items(&accepted).expect("accepted before"),
        builder
    );
    if block.len() <= 4096 {
        check_block(&block);
    }
}
