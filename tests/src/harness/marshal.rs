//! Python marshal: the reader (every version, both dialects), the writer (versions 0–4,
//! both reference-flag policies) and the serde bridge of `Value`.
//!
//! Equality is `Value`'s own (docs/payloads.md): structural, integers compared by
//! number across `Int`/`BigInt`, floats by bits except that every NaN equals every NaN
//! (so `0.0 != -0.0` and a lost sign is noticed). That is the right notion for a round
//! trip: the writer keeps a binary float's bits (versions 2+) and a text float (versions
//! 0–1, `%.17g`) round-trips every finite double exactly; only a NaN's payload and sign
//! can be lost, by the text form, which writes every NaN as `nan`.

use arbitrary::Unstructured;
use uwsgi_protocol::marshal::{
    self, BigInt, Dialect, MAX_VERSION, MarshalError, ReadOptions, RefFlags, Value, WriteOptions,
};

use super::model;

/// Values with more nodes than this are read but not written back (an input of
/// back-references can expand to millions of nodes within the default 16 MiB budget;
/// writing those ten times would only make the fuzzer slow).
const MAX_ROUNDTRIP_NODES: usize = 20_000;

/// Reads the input with both dialects, as a whole and as a prefix:
///
/// * `read_prefix` uses at most the input; `read` is the same value when that is all
///   of it and `TrailingBytes` at exactly the right offset otherwise; errors agree;
///   `UnexpectedEof` points at the end of the input;
/// * every strict prefix of the bytes a value was read from is `UnexpectedEof`;
/// * every value read is written back with every version and flag policy, and reads
///   back equal ([`check_value`]).
pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    for dialect in [Dialect::Python3, Dialect::Python2] {
        let opts = ReadOptions::new().dialect(dialect);
        let prefix = opts.read_prefix(data);
        let whole = opts.read(data);
        match prefix {
            Ok((value, used)) => {
                assert!(used >= 1 && used <= data.len(), "used {used}");
                if used == data.len() {
                    assert_eq!(whole, Ok(value.clone()));
                } else {
                    assert_eq!(
                        whole,
                        Err(MarshalError::TrailingBytes {
                            offset: used,
                            len: data.len() - used
                        })
                    );
                }
                assert_eq!(opts.read(&data[..used]), Ok(value.clone()));
                for len in model::prefix_lengths(used, &mut u) {
                    match opts.read_prefix(&data[..len]) {
                        Err(e) if e.is_eof() => {}
                        other => panic!("strict prefix {len} of a {used}-byte object: {other:?}"),
                    }
                }
                if nodes(&value, MAX_ROUNDTRIP_NODES) <= MAX_ROUNDTRIP_NODES {
                    check_value(&value);
                }
            }
            Err(e) => {
                assert_eq!(whole, Err(e.clone()), "read and read_prefix agree");
                if let MarshalError::UnexpectedEof { offset, needed } = e {
                    assert_eq!(offset, data.len());
                    assert!(needed >= 1);
                }
            }
        }
    }
    if data.len() <= 64 {
        assert_eq!(
            marshal::from_slice(data),
            ReadOptions::new().read(data),
            "from_slice uses the default options"
        );
    }
}

/// Counts the nodes of `value`, stopping early once past `limit`.
fn nodes(value: &Value, limit: usize) -> usize {
    let mut count = 0;
    let mut todo = vec![value];
    while let Some(v) = todo.pop() {
        count += 1;
        if count > limit {
            break;
        }
        match v {
            Value::Tuple(items)
            | Value::List(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => todo.extend(items),
            Value::Dict(pairs) => {
                for (k, v) in pairs {
                    todo.push(k);
                    todo.push(v);
                }
            }
            _ => {}
        }
    }
    count
}

/// Every version and reference-flag policy: write → read gives an equal value, using
/// all the bytes, and writing what was read gives the same bytes again (the writer is
/// canonical); version 4 also reads back equal in the Python 2 dialect (the writer never
/// emits `t`); strict prefixes of the encoding are `UnexpectedEof`. `Value`'s serde
/// bridge is lossless: `to_value(&v) == v` and `from_value::<Value>(v) == v`.
pub fn check_value(value: &Value) {
    let mut flagged_v4 = Vec::new();
    for version in 0..=MAX_VERSION {
        let never = marshal::to_vec(value, version)
            .unwrap_or_else(|e| panic!("v{version}: cannot write {value:?}: {e}"));
        for flags in [RefFlags::Never, RefFlags::Always] {
            let opts = WriteOptions::new(version).ref_flags(flags);
            let bytes = if flags == RefFlags::Never {
                never.clone()
            } else {
                let flagged = opts
                    .write(value)
                    .unwrap_or_else(|e| panic!("v{version} {flags:?}: cannot write: {e}"));
                if version < 3 {
                    assert_eq!(flagged, never, "v{version} has no reference flag");
                    continue;
                }
                flagged
            };
            let (back, used) = marshal::from_slice_prefix(&bytes)
                .unwrap_or_else(|e| panic!("v{version} {flags:?}: cannot read back: {e}"));
            assert_eq!(used, bytes.len(), "v{version} {flags:?}: bytes used");
            assert_eq!(back, *value, "v{version} {flags:?}: write → read");
            let again = opts.write(&back).expect("an equal value writes");
            assert_eq!(
                again, bytes,
                "v{version} {flags:?}: the writer is canonical"
            );
            if version == MAX_VERSION && flags == RefFlags::Always {
                flagged_v4 = bytes;
            }
        }
    }
    let py2 = ReadOptions::new()
        .dialect(Dialect::Python2)
        .read(&flagged_v4)
        .expect("the Python 2 dialect reads what the writer writes");
    assert_eq!(py2, *value, "v4 read in the Python 2 dialect");
    // Strict prefixes of one encoding (v4, flagged: the most codes).
    let step = (flagged_v4.len() / 4).max(1);
    for len in (0..flagged_v4.len()).step_by(step) {
        let got = marshal::from_slice_prefix(&flagged_v4[..len]);
        assert!(
            matches!(&got, Err(e) if e.is_eof()),
            "strict prefix {len} of {}: {got:?}",
            flagged_v4.len()
        );
    }
    assert_eq!(
        marshal::to_value(value).as_ref(),
        Ok(value),
        "Value → serde → Value"
    );
    assert_eq!(
        marshal::from_value::<Value>(value.clone()).as_ref(),
        Ok(value),
        "Value as a serde Deserializer into Value"
    );
    assert!(matches!(
        WriteOptions::new(MAX_VERSION + 1).write(value),
        Err(MarshalError::UnsupportedVersion { .. })
    ));
}

/// A generated `Value`: every variant, floats from arbitrary bits (NaN payloads,
/// `-0.0`, infinities, subnormals), big integers from arbitrary 15-bit digits, ASCII
/// strings long and short (the `z`/`a`/`u` choice of version 4), tuples past 255 items
/// (`)` vs `(`), nested containers up to `depth`.
fn value(u: &mut Unstructured<'_>, depth: usize, budget: &mut usize) -> arbitrary::Result<Value> {
    *budget = budget.saturating_sub(1);
    let leaf_only = depth == 0 || *budget == 0;
    let choice = if leaf_only {
        u.int_in_range(0..=10u8)?
    } else {
        u.int_in_range(0..=16u8)?
    };
    Ok(match choice {
        0 => Value::None,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Int(u.arbitrary()?),
        3 => {
            let n = u.int_in_range(0..=12usize)?;
            let mut digits = Vec::with_capacity(n);
            for _ in 0..n {
                digits.push(u.arbitrary::<u16>()? & 0x7fff);
            }
            let big = BigInt::from_marshal_digits(u.arbitrary()?, &digits)
                .expect("digits are masked to 15 bits");
            if u.arbitrary()? {
                Value::from(big)
            } else {
                // Not normalized: a BigInt that may fit i64. Still a valid Value.
                Value::BigInt(big)
            }
        }
        4 => Value::Float(f64::from_bits(u.arbitrary()?)),
        5 => Value::Complex {
            re: f64::from_bits(u.arbitrary()?),
            im: f64::from_bits(u.arbitrary()?),
        },
        6 => Value::Bytes(u.arbitrary()?),
        7 => Value::Str(u.arbitrary()?),
        8 => {
            let len = u.int_in_range(0..=300usize)?;
            *budget = budget.saturating_sub(len / 64);
            let c = char::from(u.int_in_range(0..=127u8)?);
            Value::Str(std::iter::repeat_n(c, len).collect())
        }
        9 => {
            if u.arbitrary()? {
                Value::StopIteration
            } else {
                Value::Ellipsis
            }
        }
        10 => Value::Int(i64::from(u.arbitrary::<i32>()?)),
        11 => Value::Tuple(items(u, depth, budget)?),
        12 => Value::List(items(u, depth, budget)?),
        13 => Value::Set(items(u, depth, budget)?),
        14 => Value::FrozenSet(items(u, depth, budget)?),
        15 => {
            let n = u.int_in_range(0..=6usize)?;
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                pairs.push((value(u, depth - 1, budget)?, value(u, depth - 1, budget)?));
            }
            Value::Dict(pairs)
        }
        _ => {
            let n = u.int_in_range(250..=260usize)?;
            *budget = budget.saturating_sub(8);
            Value::Tuple(vec![Value::None; n])
        }
    })
}

fn items(
    u: &mut Unstructured<'_>,
    depth: usize,
    budget: &mut usize,
) -> arbitrary::Result<Vec<Value>> {
    let n = u.int_in_range(0..=8usize)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(value(u, depth - 1, budget)?);
    }
    Ok(out)
}

/// An arbitrary `Value` built from the input, then [`check_value`]: written with every
/// version and flag policy it reads back equal, canonically, and prefixes are EOF.
pub fn check_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut budget = 24;
    let Ok(v) = value(&mut u, 6, &mut budget) else {
        return;
    };
    check_value(&v);
}
