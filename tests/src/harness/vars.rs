//! The vars block: `Vars` (validated view) and `VarsBuilder`.

use std::collections::HashSet;

use arbitrary::Unstructured;
use uwsgi_protocol::{EncodeError, Field, MAX_DATASIZE, Vars, VarsBuilder};

use super::model;

/// The pair limits every block is parsed with.
const MAX_PAIRS: [usize; 6] = [0, 1, 2, 3, 128, usize::MAX];

/// Runs [`check_block`] on the input as a block, then [`check_generated`] on pairs
/// generated from it.
pub fn check(data: &[u8]) {
    check_block(data);
    check_generated(data);
}

/// `Vars::parse(block, max)` for several `max`: the result (count or exact error) agrees
/// with the model of docs/protocol.md, `parse_at` shifts the error offsets, and on
/// success the view is consistent ([`check_view`]).
pub fn check_block(block: &[u8]) {
    let walk = model::walk_vars(block);
    for max in MAX_PAIRS {
        let got = Vars::parse(block, max);
        assert_eq!(
            got.as_ref().map(|v| v.len()).map_err(Clone::clone),
            model::expect_vars(block, max),
            "Vars::parse(max_pairs {max}) disagrees with the documented rules"
        );
        let at = Vars::parse_at(block, 4, max);
        assert_eq!(
            at.map(|v| v.len()),
            got.as_ref()
                .map(|v| v.len())
                .map_err(|e| model::shift(e.clone(), 4)),
            "parse_at(base 4) must shift the offsets by 4"
        );
        if let Err(e) = &got {
            for offset in model::offsets(e) {
                assert!(offset <= block.len(), "{e:?}: offset past the block");
            }
        }
        // The view itself is the same whatever the limit: check it once.
        if let (Ok(vars), usize::MAX) = (got, max) {
            check_view(block, vars, &walk.pairs);
        }
    }
}

/// A valid view: iteration gives the model's pairs, `len` and the iterator agree,
/// re-encoding the pairs through `VarsBuilder` reproduces the block byte-exact, and
/// `get` (last occurrence), `get_first` and `get_all` agree with the iteration.
fn check_view(block: &[u8], vars: Vars<'_>, want: &[(&[u8], &[u8])]) {
    let pairs: Vec<_> = vars.iter().collect();
    assert_eq!(pairs, want, "iteration");
    assert_eq!(vars.len(), pairs.len(), "len() == iteration count");
    assert_eq!(vars.iter().len(), pairs.len(), "ExactSizeIterator");
    assert_eq!(vars.is_empty(), pairs.is_empty());
    assert_eq!(vars.as_bytes(), block);
    assert_eq!((&vars).into_iter().collect::<Vec<_>>(), pairs);
    assert_eq!(vars.into_iter().count(), pairs.len());

    let rebuilt = VarsBuilder::from_pairs(vars.iter()).expect("decoded pairs always rebuild");
    assert_eq!(rebuilt.len(), vars.len());
    assert_eq!(rebuilt.block_len(), block.len());
    assert_eq!(
        rebuilt.as_vars(),
        vars,
        "rebuilt view equals the parsed one"
    );
    assert_eq!(rebuilt.into_block(), block, "re-encoding is byte-exact");

    let mut seen = HashSet::new();
    for (key, _) in pairs.iter().take(16) {
        if !seen.insert(*key) {
            continue;
        }
        let all: Vec<&[u8]> = pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(vars.get(key), all.last().copied(), "get = last occurrence");
        assert_eq!(vars.get_first(key), all.first().copied(), "get_first");
        assert_eq!(vars.get_all(key).collect::<Vec<_>>(), all, "get_all");
    }
    assert_eq!(vars.get(b""), None, "no pair has an empty key");
    // Longer than any key the block can hold.
    let absent = [block, b"!"].concat();
    assert_eq!(vars.get(&absent), None);
    assert_eq!(vars.get_first(&absent), None);
    assert_eq!(vars.get_all(&absent).count(), 0);
    let _ = format!("{vars:?}");
}

/// What `VarsBuilder::push` must do with `(key, value)` on a builder holding
/// `block_len` bytes.
fn expect_push(block_len: usize, key: &[u8], value: &[u8]) -> Result<(), EncodeError> {
    if key.is_empty() {
        return Err(EncodeError::EmptyKey);
    }
    for (what, len) in [(Field::Key, key.len()), (Field::Value, value.len())] {
        if len > MAX_DATASIZE {
            return Err(EncodeError::TooLarge {
                what,
                len,
                max: MAX_DATASIZE,
            });
        }
    }
    let grown = block_len + 4 + key.len() + value.len();
    if grown > MAX_DATASIZE {
        return Err(EncodeError::TooLarge {
            what: Field::Block,
            len: grown,
            max: MAX_DATASIZE,
        });
    }
    Ok(())
}

/// Arbitrary pairs → `VarsBuilder` → `Vars::parse` gives the same pairs. Every refused
/// push is refused for the documented reason and leaves the builder unchanged.
pub fn check_generated(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(pairs) = model::pairs(&mut u) else {
        return;
    };
    let mut builder = VarsBuilder::with_capacity(usize::from(u16::MAX) + 10);
    let mut accepted: Vec<(&[u8], &[u8])> = Vec::new();
    for (key, value) in &pairs {
        let before = builder.clone();
        let want = expect_push(builder.block_len(), key, value);
        let got = builder.push(key, value).map(|_| ());
        assert_eq!(got, want, "push of a {}-byte key", key.len());
        if got.is_ok() {
            accepted.push((key, value));
        } else {
            assert_eq!(
                builder, before,
                "a refused push leaves the builder unchanged"
            );
        }
    }
    assert_eq!(builder.len(), accepted.len());
    assert_eq!(builder.is_empty(), accepted.is_empty());
    assert!(builder.block_len() <= MAX_DATASIZE);
    let block = builder.clone().into_block();
    let vars = Vars::parse(&block, usize::MAX).expect("a built block always parses");
    assert_eq!(vars.iter().collect::<Vec<_>>(), accepted, "built → parsed");
    assert_eq!(builder.as_vars(), vars);
    // The same pairs through `with` and `from_pairs`.
    let mut chained = VarsBuilder::new();
    for (k, v) in &accepted {
        chained = chained.with(k, v).expect("accepted before");
    }
    assert_eq!(chained, builder);
    assert_eq!(
        VarsBuilder::from_pairs(accepted.iter().copied()).expect("accepted before"),
        builder
    );
    if block.len() <= 4096 {
        check_block(&block);
    }
}
