//! Integration tests of the marshal codec: known answers for every type code, the
//! CPython 3.11 golden vectors, property tests, serde mapping, and a cross-check that
//! runs `python3` once to load everything we write.

// Test helpers outside #[test] functions may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::process::{Command, Stdio};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde::{Deserialize, Serialize};
use uwsgi_protocol::marshal::{
    self, BigInt, Dialect, MarshalError, ReadOptions, RefFlags, Value, WriteOptions,
};

// ---------------------------------------------------------------------------------
// helpers

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len() % 2 == 0, "odd hex: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn s(x: &str) -> Value {
    Value::from(x)
}

fn b(x: &[u8]) -> Value {
    Value::Bytes(x.to_vec())
}

fn big(text: &str) -> Value {
    Value::from(text.parse::<BigInt>().unwrap())
}

fn py2() -> ReadOptions {
    ReadOptions::new().dialect(Dialect::Python2)
}

// ---------------------------------------------------------------------------------
// known answers: what uWSGI 1.4 (Python 2.7, marshal version 1) clients send

#[test]
fn python2_version1_known_answers_decode() {
    let cases: Vec<(&str, Value)> = vec![
        ("6901000000", Value::Int(1)),
        ("490000008000000000", Value::Int(1 << 31)),
        (
            "6cfbffffff00000000000000000004",
            big("-1180591620717411303424"),
        ),
        ("6603312e35", Value::Float(1.5)),
        (
            "6613302e3130303030303030303030303030303031",
            Value::Float(0.1),
        ),
        ("750300000068c3a9", s("h\u{e9}")),
        ("3c01000000 6901000000", Value::Set(vec![Value::Int(1)])),
        (
            "5b05000000 6603312e35 4e 54 7502000000c3a9 6c05000000 0000 0000 0000 0000 1000",
            Value::List(vec![
                Value::Float(1.5),
                Value::None,
                Value::Bool(true),
                s("\u{e9}"),
                Value::from(1u128 << 64),
            ]),
        ),
    ];
    for (h, expected) in cases {
        assert_eq!(marshal::from_slice(&hex(h)), Ok(expected.clone()), "{h}");
        assert_eq!(py2().read(&hex(h)).unwrap(), expected, "{h} (py2)");
    }
}

#[test]
fn python2_interned_strings_and_string_refs() {
    // b'ab' interned: `t`. CPython 3 reads `t` as str; the Python 2 dialect as bytes.
    let t = hex("74020000006162");
    assert_eq!(marshal::from_slice(&t).unwrap(), s("ab"));
    assert_eq!(py2().read(&t).unwrap(), b(b"ab"));

    // ('ab', 'ab'): the second is `R` 0, a reference into the interned list.
    let pair = hex("2802000000 7402000000 6162 5200000000");
    assert_eq!(
        marshal::from_slice(&pair).unwrap(),
        Value::Tuple(vec![s("ab"), s("ab")])
    );
    assert_eq!(
        py2().read(&pair).unwrap(),
        Value::Tuple(vec![b(b"ab"), b(b"ab")])
    );

    // {'a': 1}
    let dict = hex("7b 7401000000 61 6901000000 30");
    assert_eq!(
        marshal::from_slice(&dict).unwrap(),
        Value::Dict(vec![(s("a"), Value::Int(1))])
    );
    assert_eq!(
        py2().read(&dict).unwrap(),
        Value::Dict(vec![(b(b"a"), Value::Int(1))])
    );
    // Written back the CPython 3 way (`u`, never `t`).
    let v = marshal::from_slice(&dict).unwrap();
    assert_eq!(
        marshal::to_vec(&v, 1).unwrap(),
        hex("7b 7501000000 61 6901000000 30")
    );

    // The uWSGI 1.4 wire example (1, 'a').
    let wire = hex("28 02000000 69 01000000 74 01000000 61");
    assert_eq!(
        marshal::from_slice(&wire).unwrap(),
        Value::Tuple(vec![Value::Int(1), s("a")])
    );
    assert_eq!(
        py2().read(&wire).unwrap(),
        Value::Tuple(vec![Value::Int(1), b(b"a")])
    );

    // `R` indexes only `t` strings (not `s`), in order of appearance.
    let two = hex("2804000000 7401000000 61 7301000000 78 7401000000 62 5201000000");
    assert_eq!(
        py2().read(&two).unwrap(),
        Value::Tuple(vec![b(b"a"), b(b"x"), b(b"b"), b(b"b")])
    );
    // Invalid interned index / negative index.
    let bad = hex("2802000000 7401000000 61 5201000000");
    assert_eq!(
        marshal::from_slice(&bad),
        Err(MarshalError::BadRef {
            index: 1,
            offset: 11
        })
    );
    assert_eq!(
        marshal::from_slice(&hex("52ffffffff")),
        Err(MarshalError::BadRef {
            index: -1,
            offset: 0
        })
    );
}

#[test]
fn python2_encode_known_answers_that_python3_writes_identically() {
    let cases: Vec<(Value, &str)> = vec![
        (Value::Int(1), "6901000000"),
        (
            big("-1180591620717411303424"),
            "6cfbffffff00000000000000000004",
        ),
        (Value::Float(1.5), "6603312e35"),
        (
            Value::Float(0.1),
            "6613302e3130303030303030303030303030303031",
        ),
        (s("h\u{e9}"), "750300000068c3a9"),
        (Value::Set(vec![Value::Int(1)]), "3c01000000 6901000000"),
        (
            Value::List(vec![
                Value::Float(1.5),
                Value::None,
                Value::Bool(true),
                s("\u{e9}"),
                Value::from(1u128 << 64),
            ]),
            "5b05000000 6603312e35 4e 54 7502000000c3a9 6c05000000 0000 0000 0000 0000 1000",
        ),
        // Python 3 writes 2**31 as `l` where Python 2 wrote `I`.
        (Value::Int(1 << 31), "6c03000000 0000 0000 0200"),
    ];
    for (v, h) in cases {
        assert_eq!(
            to_hex(&marshal::to_vec(&v, 1).unwrap()),
            to_hex(&hex(h)),
            "{v:?}"
        );
    }
}

// ---------------------------------------------------------------------------------
// every type code, decode

#[test]
fn decode_every_type_code() {
    let cases: Vec<(&str, Value)> = vec![
        ("4e", Value::None),
        ("46", Value::Bool(false)),
        ("54", Value::Bool(true)),
        ("53", Value::StopIteration),
        ("2e", Value::Ellipsis),
        ("69feffffff", Value::Int(-2)),
        ("4900000000000000ff", Value::Int(-(1 << 56))),
        ("6c00000000", Value::Int(0)),
        ("6cfeffffff 0100 0100", Value::Int(-32769)),
        ("67000000000000f83f", Value::Float(1.5)),
        ("6604 2d696e66", Value::Float(f64::NEG_INFINITY)),
        ("6603 6e616e", Value::Float(f64::NAN)),
        ("6606 31652b313030", Value::Float(1e100)),
        (
            "78 03 312e35 04 2d322e35",
            Value::Complex { re: 1.5, im: -2.5 },
        ),
        (
            "79 000000000000f83f 00000000000004c0",
            Value::Complex { re: 1.5, im: -2.5 },
        ),
        ("7303000000 00ff61", b(b"\x00\xffa")),
        ("7500000000", s("")),
        ("7504000000 f09f9880", s("\u{1f600}")),
        ("6102000000 6869", s("hi")),
        ("4102000000 6869", s("hi")),
        ("7a02 6869", s("hi")),
        ("5a02 6869", s("hi")),
        // a/A/z/Z bytes are Latin-1 for CPython.
        ("7a01 e9", s("\u{e9}")),
        ("2800000000", Value::Tuple(vec![])),
        (
            "2902 4e 54",
            Value::Tuple(vec![Value::None, Value::Bool(true)]),
        ),
        ("5b01000000 2e", Value::List(vec![Value::Ellipsis])),
        ("7b30", Value::Dict(vec![])),
        (
            "7b 6901000000 4e 6902000000 4e 30",
            Value::Dict(vec![
                (Value::Int(1), Value::None),
                (Value::Int(2), Value::None),
            ]),
        ),
        ("3c00000000", Value::Set(vec![])),
        ("3e01000000 4e", Value::FrozenSet(vec![Value::None])),
        // FLAG_REF on a leaf, then `r` to it.
        (
            "5b02000000 e907000000 7200000000",
            Value::List(vec![Value::Int(7), Value::Int(7)]),
        ),
        // A flagged container takes its index before its items.
        (
            "5b02000000 db01000000 e905000000 7201000000",
            Value::List(vec![Value::List(vec![Value::Int(5)]), Value::Int(5)]),
        ),
        // Flagged singletons are not entered in the table (as in CPython): r0 is 5.
        (
            "5b03000000 ce e905000000 7200000000",
            Value::List(vec![Value::None, Value::Int(5), Value::Int(5)]),
        ),
        // A flag on `r` itself is ignored.
        (
            "5b02000000 f501000000 61 f200000000",
            Value::List(vec![s("a"), s("a")]),
        ),
        // A reference to a complete container copies it.
        (
            "5b02000000 a902 e901000000 7a0161 7200000000",
            Value::List(vec![
                Value::Tuple(vec![Value::Int(1), s("a")]),
                Value::Tuple(vec![Value::Int(1), s("a")]),
            ]),
        ),
    ];
    for (h, expected) in cases {
        assert_eq!(marshal::from_slice(&hex(h)), Ok(expected), "{h}");
    }
}

#[test]
fn decode_errors_are_typed() {
    use MarshalError as E;
    let cases: Vec<(&str, MarshalError)> = vec![
        (
            "",
            E::UnexpectedEof {
                offset: 0,
                needed: 1,
            },
        ),
        (
            "69 0100",
            E::UnexpectedEof {
                offset: 3,
                needed: 2,
            },
        ),
        ("63 00000000", E::CodeObject { offset: 0 }),
        ("e3 00000000", E::CodeObject { offset: 0 }),
        (
            "3f",
            E::UnknownType {
                code: b'?',
                offset: 0,
            },
        ),
        ("5b01000000 01", E::UnknownType { code: 1, offset: 5 }),
        ("30", E::NullObject { offset: 0 }),
        ("2801000000 30", E::NullObject { offset: 5 }),
        ("7b 4e 30", E::NullObject { offset: 2 }),
        (
            "7200000000",
            E::BadRef {
                index: 0,
                offset: 0,
            },
        ),
        (
            "72ffffffff",
            E::BadRef {
                index: -1,
                offset: 0,
            },
        ),
        // A list of one item followed by a stray `r`.
        (
            "5b01000000 e901000000 7201000000",
            E::TrailingBytes { offset: 10, len: 5 },
        ),
        // References to a container still being read: CPython would build a cycle.
        (
            "db01000000 7200000000",
            E::RecursiveRef {
                index: 0,
                offset: 5,
            },
        ),
        (
            "a801000000 7200000000",
            E::RecursiveRef {
                index: 0,
                offset: 5,
            },
        ),
        (
            "fb 7200000000 4e 30",
            E::RecursiveRef {
                index: 0,
                offset: 1,
            },
        ),
        (
            "be01000000 7200000000",
            E::RecursiveRef {
                index: 0,
                offset: 5,
            },
        ),
        ("73ffffffff", E::NegativeLength { len: -1, offset: 1 }),
        (
            "2800000080",
            E::NegativeLength {
                len: i32::MIN,
                offset: 1,
            },
        ),
        ("5bfeffffff", E::NegativeLength { len: -2, offset: 1 }),
        // Lengths beyond the input are EOF, and nothing is allocated from them.
        (
            "73ffffff7f 61",
            E::UnexpectedEof {
                offset: 6,
                needed: 0x7fff_fffe,
            },
        ),
        (
            "28ffffff7f 4e",
            E::UnexpectedEof {
                offset: 6,
                needed: 0x7fff_fffe,
            },
        ),
        (
            "6cffffff7f",
            E::UnexpectedEof {
                offset: 5,
                needed: 0xffff_fffe,
            },
        ),
        (
            "6c00000080",
            E::BadLong {
                offset: 0,
                reason: "digit count out of range",
            },
        ),
        (
            "6c01000000 0000",
            E::BadLong {
                offset: 0,
                reason: "unnormalized (most significant digit is zero)",
            },
        ),
        (
            "6c01000000 0080",
            E::BadLong {
                offset: 0,
                reason: "digit out of range",
            },
        ),
        ("6603 616263", E::InvalidFloatText { offset: 1 }),
        ("6604 696e6621", E::InvalidFloatText { offset: 1 }),
        ("6604 312e3520", E::InvalidFloatText { offset: 1 }),
        ("6600", E::InvalidFloatText { offset: 1 }),
        ("78 03312e35 01ff", E::InvalidFloatText { offset: 5 }),
        ("7501000000 ff", E::InvalidUtf8 { offset: 5 }),
        ("7402000000 c328", E::InvalidUtf8 { offset: 5 }),
        ("4e 4e", E::TrailingBytes { offset: 1, len: 1 }),
    ];
    for (h, expected) in cases {
        assert_eq!(marshal::from_slice(&hex(h)), Err(expected), "{h}");
    }
    // Python 2 dialect reads invalid UTF-8 in `t` as bytes.
    assert_eq!(py2().read(&hex("7402000000 c328")).unwrap(), b(b"\xc3("));
    // from_slice_prefix reports the consumed length instead of refusing extra bytes.
    assert_eq!(
        marshal::from_slice_prefix(&hex("4e 4e")).unwrap(),
        (Value::None, 1)
    );
}

fn nested_lists(levels: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..levels {
        out.extend_from_slice(&hex("5b01000000"));
    }
    out.push(b'N');
    out
}

#[test]
fn depth_limit() {
    assert_eq!(marshal::DEFAULT_MAX_DEPTH, 200);
    // None inside 199 lists sits at depth 200: accepted; one more list is refused.
    assert!(marshal::from_slice(&nested_lists(199)).is_ok());
    assert_eq!(
        marshal::from_slice(&nested_lists(200)),
        Err(MarshalError::TooDeep { limit: 200 })
    );
    assert!(
        ReadOptions::new()
            .max_depth(500)
            .read(&nested_lists(499))
            .is_ok()
    );
    // Writing checks the same limit.
    let mut v = Value::None;
    for _ in 0..200 {
        v = Value::List(vec![v]);
    }
    assert_eq!(
        marshal::to_vec(&v, 4),
        Err(MarshalError::TooDeep { limit: 200 })
    );
    assert_eq!(
        marshal::to_value(&v),
        Err(MarshalError::TooDeep { limit: 200 })
    );
    if let Value::List(mut items) = v {
        let inner = items.remove(0);
        let bytes = marshal::to_vec(&inner, 4).unwrap();
        assert_eq!(marshal::from_slice(&bytes).unwrap(), inner);
        assert_eq!(marshal::to_value(&inner).unwrap(), inner);
    }
    // A reference cannot be used to build a value deeper than the limit: a flagged
    // 150-deep list, referenced from 100 levels down.
    let mut bytes = hex("5b02000000");
    bytes.extend_from_slice(&hex("db01000000"));
    bytes.extend_from_slice(&nested_lists(149));
    for _ in 0..100 {
        bytes.extend_from_slice(&hex("5b01000000"));
    }
    bytes.extend_from_slice(&hex("7200000000"));
    assert_eq!(
        marshal::from_slice(&bytes),
        Err(MarshalError::TooDeep { limit: 200 })
    );
}

#[test]
fn reference_bombs_hit_the_budget() {
    // item k is a flagged list [r(k-1), r(k-1)]: each level doubles the decoded size.
    let levels = 40u32;
    let mut bytes = hex("5b");
    bytes.extend_from_slice(&levels.to_le_bytes());
    bytes.extend_from_slice(&hex("db02000000 4e 4e"));
    for k in 1..levels {
        bytes.extend_from_slice(&hex("db02000000"));
        for _ in 0..2 {
            bytes.push(b'r');
            bytes.extend_from_slice(&(k - 1).to_le_bytes());
        }
    }
    assert_eq!(
        marshal::from_slice(&bytes),
        Err(MarshalError::RefBudgetExceeded {
            limit: marshal::DEFAULT_REF_BUDGET
        })
    );
    // A modest number of levels fits and decodes to the full tree.
    let small: Vec<u8> = {
        let mut v = hex("5b03000000 db02000000 4e 4e");
        v.extend_from_slice(&hex("db02000000 7200000000 7200000000"));
        v.extend_from_slice(&hex("7201000000"));
        v
    };
    let l0 = Value::List(vec![Value::None, Value::None]);
    let l1 = Value::List(vec![l0.clone(), l0.clone()]);
    assert_eq!(
        marshal::from_slice(&small).unwrap(),
        Value::List(vec![l0, l1.clone(), l1])
    );
    assert_eq!(
        ReadOptions::new().ref_budget(20).read(&small),
        Err(MarshalError::RefBudgetExceeded { limit: 20 })
    );
}

// ---------------------------------------------------------------------------------
// every type code, encode

#[test]
fn encode_every_type_per_version() {
    let long_ascii = "x".repeat(300);
    let mut long_a = hex("612c010000");
    long_a.extend_from_slice(long_ascii.as_bytes());
    let mut long_u = hex("752c010000");
    long_u.extend_from_slice(long_ascii.as_bytes());
    let many: Vec<Value> = vec![Value::None; 256];
    let mut tuple256_v4 = hex("2800010000");
    tuple256_v4.extend(std::iter::repeat_n(b'N', 256));

    let cases: Vec<(Value, u8, Vec<u8>)> = vec![
        (Value::None, 0, hex("4e")),
        (Value::Bool(false), 4, hex("46")),
        (Value::StopIteration, 2, hex("53")),
        (Value::Ellipsis, 3, hex("2e")),
        (Value::Int(-1), 3, hex("69ffffffff")),
        (
            Value::Int(i64::MIN),
            0,
            hex("6cfbffffff 0000 0000 0000 0000 0800"),
        ),
        (Value::BigInt(BigInt::from(7)), 2, hex("6907000000")),
        (Value::Float(-0.0), 0, hex("66022d30")),
        (Value::Float(1.5), 2, hex("67000000000000f83f")),
        (Value::Float(f64::NAN), 1, hex("66036e616e")),
        (
            Value::Complex { re: 1.0, im: -2.5 },
            0,
            hex("780131042d322e35"),
        ),
        (
            Value::Complex { re: 1.0, im: -2.5 },
            4,
            hex("79000000000000f03f00000000000004c0"),
        ),
        (b(b"ab"), 4, hex("73020000006162")),
        (s("ab"), 3, hex("75020000006162")),
        (s("ab"), 4, hex("7a026162")),
        (s(""), 4, hex("7a00")),
        (s("\u{e9}"), 4, hex("7502000000c3a9")),
        (s(&long_ascii), 4, long_a),
        (s(&long_ascii), 3, long_u),
        (Value::Tuple(vec![]), 3, hex("2800000000")),
        (Value::Tuple(vec![Value::None]), 4, hex("2901 4e")),
        (Value::Tuple(many), 4, tuple256_v4),
        (
            Value::List(vec![Value::Int(1)]),
            4,
            hex("5b01000000 6901000000"),
        ),
        (
            Value::Dict(vec![(s("a"), Value::None)]),
            0,
            hex("7b 750100000061 4e 30"),
        ),
        (Value::Set(vec![]), 4, hex("3c00000000")),
        (
            Value::FrozenSet(vec![Value::Int(2)]),
            1,
            hex("3e01000000 6902000000"),
        ),
    ];
    for (v, version, expected) in cases {
        let got = marshal::to_vec(&v, version).unwrap();
        assert_eq!(to_hex(&got), to_hex(&expected), "{v:?} v{version}");
        assert_eq!(marshal::from_slice(&got).unwrap(), v);
    }
    assert_eq!(
        marshal::to_vec(&Value::None, 5),
        Err(MarshalError::UnsupportedVersion { version: 5 })
    );
}

#[test]
fn ref_flag_policies() {
    let v = Value::List(vec![
        Value::Int(1),
        s("a"),
        Value::None,
        Value::Tuple(vec![Value::Bool(true)]),
    ]);
    let always = WriteOptions::new(3).ref_flags(RefFlags::Always);
    assert_eq!(
        to_hex(&always.write(&v).unwrap()),
        to_hex(&hex("db04000000 e901000000 f50100000061 4e a801000000 54"))
    );
    // Loads back equal (every flagged object is registered, none is referenced).
    assert_eq!(marshal::from_slice(&always.write(&v).unwrap()).unwrap(), v);
    // No flag before version 3, whatever the policy.
    assert_eq!(
        WriteOptions::new(2)
            .ref_flags(RefFlags::Always)
            .write(&v)
            .unwrap(),
        marshal::to_vec(&v, 2).unwrap()
    );
    // Never: no byte of a v3 encoding has the flag here.
    assert_eq!(
        to_hex(&marshal::to_vec(&v, 3).unwrap()),
        to_hex(&hex("5b04000000 6901000000 750100000061 4e 2801000000 54"))
    );
}

// ---------------------------------------------------------------------------------
// golden vectors from CPython 3.11.7

/// A tiny parser for the `python_repr` field of the vectors: literals, containers,
/// frozenset(...), complex `(a+bj)`.
struct Repr {
    chars: Vec<char>,
    pos: usize,
}

impl Repr {
    fn parse(text: &str) -> Value {
        let mut p = Repr {
            chars: text.chars().collect(),
            pos: 0,
        };
        let v = p.value();
        p.ws();
        assert_eq!(p.pos, p.chars.len(), "trailing repr text in {text}");
        v
    }

    fn peek(&self) -> char {
        self.chars.get(self.pos).copied().unwrap_or('\0')
    }

    fn ws(&mut self) {
        while self.peek() == ' ' {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.peek() == c {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) {
        assert!(self.eat(c), "expected {c:?} at {}", self.pos);
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_ascii_alphanumeric() || self.peek() == '_' {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn items(&mut self, close: char) -> Vec<Value> {
        let mut out = Vec::new();
        while !self.eat(close) {
            out.push(self.value());
            if !self.eat(',') {
                self.expect(close);
                break;
            }
        }
        out
    }

    fn value(&mut self) -> Value {
        self.ws();
        match self.peek() {
            '(' => {
                self.pos += 1;
                if self.eat(')') {
                    return Value::Tuple(vec![]);
                }
                let first = self.value();
                self.ws();
                if let (Value::Float(_) | Value::Int(_), '+' | '-') = (&first, self.peek()) {
                    // complex: (re±imj)
                    let re = match first {
                        Value::Float(f) => f,
                        Value::Int(i) => i as f64,
                        _ => unreachable!(),
                    };
                    let Value::Complex { im, .. } = self.number() else {
                        panic!("expected imaginary part")
                    };
                    self.expect(')');
                    return Value::Complex { re, im };
                }
                let mut items = vec![first];
                if self.eat(',') {
                    items.extend(self.items(')'));
                } else {
                    self.expect(')');
                }
                Value::Tuple(items)
            }
            '[' => {
                self.pos += 1;
                Value::List(self.items(']'))
            }
            '{' => {
                self.pos += 1;
                if self.eat('}') {
                    return Value::Dict(vec![]);
                }
                let first = self.value();
                if self.eat(':') {
                    let mut pairs = vec![(first, self.value())];
                    while self.eat(',') {
                        if self.eat('}') {
                            return Value::Dict(pairs);
                        }
                        let k = self.value();
                        self.expect(':');
                        pairs.push((k, self.value()));
                    }
                    self.expect('}');
                    Value::Dict(pairs)
                } else {
                    let mut items = vec![first];
                    if self.eat(',') {
                        items.extend(self.items('}'));
                    } else {
                        self.expect('}');
                    }
                    Value::Set(items)
                }
            }
            '\'' | '"' => Value::Str(String::from_utf8(self.quoted(false)).unwrap()),
            'b' if matches!(self.chars.get(self.pos + 1), Some('\'' | '"')) => {
                self.pos += 1;
                Value::Bytes(self.quoted(true))
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => self.number(),
            _ => match self.word().as_str() {
                "None" => Value::None,
                "True" => Value::Bool(true),
                "False" => Value::Bool(false),
                "Ellipsis" => Value::Ellipsis,
                "StopIteration" => Value::StopIteration,
                "inf" => Value::Float(f64::INFINITY),
                "nan" => Value::Float(f64::NAN),
                "frozenset" => {
                    self.expect('(');
                    let inner = if self.eat(')') {
                        vec![]
                    } else {
                        let Value::Set(items) = self.value() else {
                            panic!("frozenset of a non-set")
                        };
                        self.expect(')');
                        items
                    };
                    Value::FrozenSet(inner)
                }
                "set" => {
                    self.expect('(');
                    self.expect(')');
                    Value::Set(vec![])
                }
                other => panic!("unknown repr word {other:?}"),
            },
        }
    }

    /// int, float, `inf`, or an imaginary literal (returned as Complex{re: 0, im}).
    fn number(&mut self) -> Value {
        self.ws();
        let start = self.pos;
        if matches!(self.peek(), '-' | '+') {
            self.pos += 1;
        }
        while self.peek().is_ascii_alphanumeric() || matches!(self.peek(), '.') {
            // exponent signs
            if matches!(self.peek(), 'e' | 'E')
                && matches!(self.chars.get(self.pos + 1), Some('+' | '-'))
            {
                self.pos += 1;
            }
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        if let Some(im) = text.strip_suffix('j') {
            return Value::Complex {
                re: 0.0,
                im: im.parse().unwrap(),
            };
        }
        if text.contains(['.', 'e', 'n', 'i']) {
            return Value::Float(text.parse().unwrap());
        }
        Value::from(text.parse::<BigInt>().unwrap())
    }

    /// A quoted literal; returns UTF-8 (str) or raw bytes.
    fn quoted(&mut self, bytes: bool) -> Vec<u8> {
        let q = self.peek();
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek();
            self.pos += 1;
            match c {
                c if c == q => break,
                '\\' => {
                    let e = self.peek();
                    self.pos += 1;
                    let mut hexn = |n: usize| {
                        let t: String = self.chars[self.pos..self.pos + n].iter().collect();
                        self.pos += n;
                        u32::from_str_radix(&t, 16).unwrap()
                    };
                    let code = match e {
                        'n' => u32::from('\n'),
                        'r' => u32::from('\r'),
                        't' => u32::from('\t'),
                        '\\' | '\'' | '"' => u32::from(e),
                        'x' => hexn(2),
                        'u' => hexn(4),
                        'U' => hexn(8),
                        other => panic!("escape {other:?}"),
                    };
                    if bytes {
                        out.push(u8::try_from(code).unwrap());
                    } else {
                        let mut buf = [0; 4];
                        out.extend_from_slice(
                            char::from_u32(code)
                                .unwrap()
                                .encode_utf8(&mut buf)
                                .as_bytes(),
                        );
                    }
                }
                '\0' => panic!("unterminated literal"),
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        out
    }
}

#[test]
fn repr_parser_sanity() {
    assert_eq!(
        Repr::parse("{'k': (1, [2.5, {'x': b'y'}], frozenset({7})), 'n': None}"),
        Value::Dict(vec![
            (
                s("k"),
                Value::Tuple(vec![
                    Value::Int(1),
                    Value::List(vec![
                        Value::Float(2.5),
                        Value::Dict(vec![(s("x"), b(b"y"))])
                    ]),
                    Value::FrozenSet(vec![Value::Int(7)]),
                ])
            ),
            (s("n"), Value::None),
        ])
    );
    assert_eq!(
        Repr::parse("(1-2.5j)"),
        Value::Complex { re: 1.0, im: -2.5 }
    );
    assert_eq!(Repr::parse("(1,)"), Value::Tuple(vec![Value::Int(1)]));
    assert_eq!(Repr::parse("b'ab\\x00\\xff'"), b(b"ab\x00\xff"));
    assert_eq!(Repr::parse("-0.0"), Value::Float(-0.0));
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    version: u8,
    python_repr: String,
    hex: String,
    source: String,
}

fn vectors() -> Vec<Vector> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/vectors/marshal.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("tests/vectors/marshal.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Walks marshal bytes and rewrites them without the reference flag and with interned
/// string codes replaced by their plain form (`t`→`u`, `Z`→`z`, `A`→`a`). `None` when
/// the bytes contain an `r` back-reference (the comparison would not make sense).
fn normalize(bytes: &[u8]) -> Option<Vec<u8>> {
    fn walk(b: &[u8], pos: &mut usize, out: &mut Vec<u8>) -> Option<()> {
        let code = b[*pos] & 0x7f;
        *pos += 1;
        out.push(match code {
            b't' => b'u',
            b'Z' => b'z',
            b'A' => b'a',
            c => c,
        });
        let copy = |n: usize, pos: &mut usize, out: &mut Vec<u8>| {
            out.extend_from_slice(&b[*pos..*pos + n]);
            *pos += n;
        };
        let i32_at = |pos: usize| i32::from_le_bytes(b[pos..pos + 4].try_into().unwrap());
        match code {
            b'N' | b'T' | b'F' | b'S' | b'.' | b'0' => {}
            b'i' => copy(4, pos, out),
            b'g' => copy(8, pos, out),
            b'y' => copy(16, pos, out),
            b'l' => {
                let n = i32_at(*pos).unsigned_abs() as usize;
                copy(4 + 2 * n, pos, out);
            }
            b'f' => copy(1 + usize::from(b[*pos]), pos, out),
            b'x' => {
                copy(1 + usize::from(b[*pos]), pos, out);
                copy(1 + usize::from(b[*pos]), pos, out);
            }
            b's' | b't' | b'u' | b'a' | b'A' => {
                let n = i32_at(*pos) as usize;
                copy(4 + n, pos, out);
            }
            b'z' | b'Z' => copy(1 + usize::from(b[*pos]), pos, out),
            b'(' | b'[' | b'<' | b'>' => {
                let n = i32_at(*pos) as usize;
                copy(4, pos, out);
                for _ in 0..n {
                    walk(b, pos, out)?;
                }
            }
            b')' => {
                let n = usize::from(b[*pos]);
                copy(1, pos, out);
                for _ in 0..n {
                    walk(b, pos, out)?;
                }
            }
            b'{' => loop {
                if b[*pos] & 0x7f == b'0' {
                    out.push(b'0');
                    *pos += 1;
                    break;
                }
                walk(b, pos, out)?;
                walk(b, pos, out)?;
            },
            b'r' => return None,
            other => panic!("normalize: unexpected code {other}"),
        }
        Some(())
    }
    let mut out = Vec::new();
    let mut pos = 0;
    walk(bytes, &mut pos, &mut out)?;
    assert_eq!(pos, bytes.len());
    Some(out)
}

#[test]
fn golden_vectors_cpython_3_11() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 145);
    let mut by_name: BTreeMap<String, Vec<(u8, Value)>> = BTreeMap::new();
    let mut masked_compared = 0;
    let mut with_refs = Vec::new();
    for v in &vectors {
        assert!(v.source.contains("3.11.7"), "{}", v.source);
        let bytes = hex(&v.hex);
        let expected = Repr::parse(&v.python_repr);
        let decoded = marshal::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{} v{}: {e}", v.name, v.version));
        assert_eq!(decoded, expected, "{} v{}", v.name, v.version);
        // Also through serde (Value's Deserialize) and in the Python 2 dialect, which
        // only differs for `t` (none here is written by Python 3 below version 3).
        assert_eq!(marshal::from_slice_as::<Value>(&bytes).unwrap(), expected);

        let ours = marshal::to_vec(&expected, v.version).unwrap();
        if v.version <= 2 {
            assert_eq!(to_hex(&ours), v.hex, "{} v{}", v.name, v.version);
            assert_eq!(py2().read(&bytes).unwrap(), expected);
        } else {
            assert_eq!(marshal::from_slice(&ours).unwrap(), expected);
            match normalize(&bytes) {
                Some(theirs) => {
                    assert_eq!(
                        to_hex(&normalize(&ours).unwrap()),
                        to_hex(&theirs),
                        "{} v{} (flag bits masked, interning ignored)",
                        v.name,
                        v.version
                    );
                    // Our flagging policy never adds anything but flags.
                    assert_eq!(normalize(&ours).unwrap(), ours);
                    masked_compared += 1;
                }
                None => with_refs.push(format!("{} v{}", v.name, v.version)),
            }
            let flagged = WriteOptions::new(v.version)
                .ref_flags(RefFlags::Always)
                .write(&expected)
                .unwrap();
            assert_eq!(marshal::from_slice(&flagged).unwrap(), expected);
        }
        by_name
            .entry(v.name.clone())
            .or_default()
            .push((v.version, decoded));
    }
    assert_eq!(by_name.len(), 29);
    for (name, decoded) in &by_name {
        assert_eq!(decoded.len(), 5, "{name}");
        for (version, value) in decoded {
            assert_eq!(value, &decoded[0].1, "{name}: v{version} differs from v0");
        }
    }
    // Only the vectors with real back-references (shared small ints and repeated
    // objects) cannot be compared byte for byte.
    assert_eq!(
        with_refs,
        [
            "dict_simple v3",
            "dict_simple v4",
            "repeated_refs v3",
            "repeated_refs v4"
        ]
    );
    assert_eq!(masked_compared, 29 * 2 - 4);
}

#[test]
fn golden_prefixes_are_eof() {
    for v in vectors() {
        let bytes = hex(&v.hex);
        for cut in 0..bytes.len() {
            let err = marshal::from_slice(&bytes[..cut]).unwrap_err();
            assert!(err.is_eof(), "{} v{} cut {cut}: {err}", v.name, v.version);
        }
    }
}

// ---------------------------------------------------------------------------------
// property tests

fn float_key(x: f64) -> u64 {
    if x == 0.0 { 0 } else { x.to_bits() }
}

/// A key equal for values Python considers equal (for the hashable values generated).
fn hkey(v: &Value) -> String {
    match v {
        Value::None => "N".into(),
        Value::Bool(b) => format!("i{}", i32::from(*b)),
        Value::Int(_) | Value::BigInt(_) => format!("i{}", v.to_bigint().unwrap().to_hex()),
        Value::Float(f) => format!("f{}", float_key(*f)),
        Value::Complex { re, im } => format!("c{}/{}", float_key(*re), float_key(*im)),
        Value::Bytes(x) => format!("b{}", to_hex(x)),
        Value::Str(x) => format!("s{x:?}"),
        Value::Tuple(items) => {
            format!("({})", items.iter().map(hkey).collect::<Vec<_>>().join(","))
        }
        Value::FrozenSet(items) | Value::Set(items) => {
            let mut keys: Vec<_> = items.iter().map(hkey).collect();
            keys.sort();
            format!("{{{}}}", keys.join(","))
        }
        Value::StopIteration => "S".into(),
        Value::Ellipsis => ".".into(),
        Value::List(_) | Value::Dict(_) => panic!("unhashable"),
    }
}

fn dedup(items: Vec<Value>) -> Vec<Value> {
    let mut seen = HashSet::new();
    items.into_iter().filter(|v| seen.insert(hkey(v))).collect()
}

fn dedup_pairs(pairs: Vec<(Value, Value)>) -> Vec<(Value, Value)> {
    let mut seen = HashSet::new();
    pairs
        .into_iter()
        .filter(|(k, _)| seen.insert(hkey(k)))
        .collect()
}

fn arb_bigint() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i128>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (any::<bool>(), vec(0u16..=0x7fff, 1..14)).prop_map(|(neg, digits)| {
            Value::from(BigInt::from_marshal_digits(neg, &digits).unwrap())
        }),
    ]
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z_]{0,12}", "[ -~]{250,300}"]
}

fn arb_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("NaN-free", |x| !x.is_nan()),
        -1e6f64..1e6,
        prop::sample::select(vec![
            0.0,
            -0.0,
            0.1,
            1e22,
            1e16,
            1e17,
            5e-324,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE
        ]),
    ]
}

fn arb_hashable() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        Just(Value::Ellipsis),
        Just(Value::StopIteration),
        any::<i64>().prop_map(Value::Int),
        arb_bigint(),
        arb_text().prop_map(Value::Str),
        vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
        // Floats and complex numbers that can never equal an int or each other's zero.
        (-1e9f64..1e9)
            .prop_filter("fraction", |x| x.fract() != 0.0)
            .prop_map(Value::Float),
        (
            arb_float(),
            arb_float().prop_filter("imaginary", |x| *x != 0.0)
        )
            .prop_map(|(re, im)| Value::Complex { re, im }),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Tuple),
            vec(inner, 0..4).prop_map(|v| Value::FrozenSet(dedup(v))),
        ]
    })
    .boxed()
}

fn arb_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Ellipsis),
        Just(Value::StopIteration),
        any::<i64>().prop_map(Value::Int),
        any::<i32>().prop_map(Value::from),
        arb_bigint(),
        arb_float().prop_map(Value::Float),
        (arb_float(), arb_float()).prop_map(|(re, im)| Value::Complex { re, im }),
        arb_text().prop_map(Value::Str),
        vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            vec(inner.clone(), 0..6).prop_map(Value::List),
            vec((arb_hashable(), inner), 0..5).prop_map(|p| Value::Dict(dedup_pairs(p))),
            vec(arb_hashable(), 0..5).prop_map(|v| Value::Set(dedup(v))),
            vec(arb_hashable(), 0..5).prop_map(|v| Value::FrozenSet(dedup(v))),
        ]
    })
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn prop_round_trip_every_version(value in arb_value()) {
        for version in 0..=4u8 {
            let bytes = marshal::to_vec(&value, version).unwrap();
            prop_assert_eq!(&marshal::from_slice(&bytes).unwrap(), &value, "v{}", version);
            // The serde path writes the same bytes and reads the same value.
            prop_assert_eq!(&marshal::to_vec_version(&value, version).unwrap(), &bytes);
            prop_assert_eq!(&marshal::from_slice_as::<Value>(&bytes).unwrap(), &value);
            if version >= 3 {
                let flagged = WriteOptions::new(version).ref_flags(RefFlags::Always).write(&value).unwrap();
                prop_assert_eq!(flagged.len(), bytes.len());
                prop_assert_eq!(&marshal::from_slice(&flagged).unwrap(), &value);
            }
        }
        prop_assert_eq!(&marshal::to_value(&value).unwrap(), &value);
    }

    #[test]
    fn prop_strict_prefixes_are_eof(value in arb_value(), version in 0..=4u8) {
        let bytes = marshal::to_vec(&value, version).unwrap();
        let step = (bytes.len() / 300).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let err = marshal::from_slice(&bytes[..cut]).unwrap_err();
            prop_assert!(err.is_eof(), "cut {}: {}", cut, err);
        }
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        let _ = marshal::from_slice(&bytes);
        let _ = py2().read_prefix(&bytes);
        let _ = marshal::from_slice_as::<serde_json::Value>(&bytes);
        let _ = marshal::from_slice_as::<HashMap<String, Vec<i64>>>(&bytes);
    }

    #[test]
    fn prop_mutated_encodings_never_panic(
        value in arb_value(),
        version in 0..=4u8,
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = marshal::to_vec(&value, version).unwrap();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(v) = marshal::from_slice(&bytes) {
            // Whatever decodes must encode again.
            prop_assert!(marshal::to_vec(&v, 4).is_ok());
        }
    }
}

#[test]
fn nan_round_trips_as_nan() {
    for version in 0..=4 {
        for v in [
            Value::Float(f64::NAN),
            Value::Complex {
                re: f64::NAN,
                im: -f64::NAN,
            },
        ] {
            let back = marshal::from_slice(&marshal::to_vec(&v, version).unwrap()).unwrap();
            assert_eq!(back, v, "v{version}");
        }
    }
}

// ---------------------------------------------------------------------------------
// serde mapping

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Sized(u32),
    Pair(i8, String),
    Shaped { w: u16, h: u16 },
}

#[derive(Debug, Clone, PartialEq)]
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u64,
    name: String,
    tags: Vec<String>,
    kinds: Vec<Kind>,
    point: (i32, f64),
    maybe: Option<i64>,
    nothing: Option<i64>,
    huge: u128,
    data: Blob,
    scores: BTreeMap<String, i32>,
    unit: (),
}

fn sample_job() -> Job {
    Job {
        id: u64::MAX,
        name: "r\u{e9}size".into(),
        tags: vec!["a".into(), "b".into()],
        kinds: vec![
            Kind::Plain,
            Kind::Sized(9),
            Kind::Pair(-1, "x".into()),
            Kind::Shaped { w: 3, h: 4 },
        ],
        point: (-7, 0.5),
        maybe: Some(42),
        nothing: None,
        huge: u128::MAX,
        data: Blob(vec![0, 255, 10]),
        scores: BTreeMap::from([("x".to_owned(), 1), ("y".to_owned(), -2)]),
        unit: (),
    }
}

/// The Python value the job must become, written by hand.
fn sample_job_value() -> Value {
    let d = |pairs: Vec<(&str, Value)>| {
        Value::Dict(pairs.into_iter().map(|(k, v)| (s(k), v)).collect())
    };
    d(vec![
        ("id", Value::from(u64::MAX)),
        ("name", s("r\u{e9}size")),
        ("tags", Value::List(vec![s("a"), s("b")])),
        (
            "kinds",
            Value::List(vec![
                s("Plain"),
                d(vec![("Sized", Value::Int(9))]),
                d(vec![("Pair", Value::Tuple(vec![Value::Int(-1), s("x")]))]),
                d(vec![(
                    "Shaped",
                    d(vec![("w", Value::Int(3)), ("h", Value::Int(4))]),
                )]),
            ]),
        ),
        (
            "point",
            Value::Tuple(vec![Value::Int(-7), Value::Float(0.5)]),
        ),
        ("maybe", Value::Int(42)),
        ("nothing", Value::None),
        ("huge", big("340282366920938463463374607431768211455")),
        ("data", b(b"\x00\xff\n")),
        (
            "scores",
            d(vec![("x", Value::Int(1)), ("y", Value::Int(-2))]),
        ),
        ("unit", Value::None),
    ])
}

#[test]
fn serde_struct_round_trip() {
    let job = sample_job();
    assert_eq!(marshal::to_value(&job).unwrap(), sample_job_value());
    for version in 0..=4 {
        let bytes = marshal::to_vec_version(&job, version).unwrap();
        assert_eq!(
            bytes,
            marshal::to_vec(&sample_job_value(), version).unwrap()
        );
        assert_eq!(marshal::from_slice_as::<Job>(&bytes).unwrap(), job);
    }
}

#[test]
fn serde_reads_python2_dicts_and_flexible_shapes() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct Req {
        cmd: String,
        args: Vec<i32>,
        mode: Kind,
    }
    // Python 2: {'cmd': 'go', 'args': (1, 2), 'mode': 'Plain'} with interned keys
    // and byte-string values, read in the Python 2 dialect.
    let v = Value::Dict(vec![
        (b(b"cmd"), b(b"go")),
        (b(b"args"), Value::Tuple(vec![Value::Int(1), Value::Int(2)])),
        (b(b"mode"), b(b"Plain")),
    ]);
    let req: Req = marshal::from_value(v).unwrap();
    assert_eq!(
        req,
        Req {
            cmd: "go".into(),
            args: vec![1, 2],
            mode: Kind::Plain
        }
    );
    // Sets and frozensets deserialize as sequences, dicts as maps.
    let set = Value::Set(vec![Value::Int(3), Value::Int(1)]);
    assert_eq!(marshal::from_value::<Vec<u8>>(set).unwrap(), vec![3, 1]);
    let m: HashMap<i32, Option<String>> = marshal::from_value(Value::Dict(vec![
        (Value::Int(1), Value::None),
        (Value::Int(2), s("two")),
    ]))
    .unwrap();
    assert_eq!(m[&1], None);
    assert_eq!(m[&2].as_deref(), Some("two"));
    // Type mismatches are Custom errors with serde's message, not panics.
    let err = marshal::from_value::<u8>(Value::Int(300)).unwrap_err();
    assert!(
        matches!(err, MarshalError::Custom(ref m) if m.contains("300")),
        "{err}"
    );
    let err = marshal::from_value::<(i32, i32)>(Value::Tuple(vec![Value::Int(1)])).unwrap_err();
    assert!(matches!(err, MarshalError::Custom(_)));
    let err = marshal::from_value::<Kind>(Value::Int(1)).unwrap_err();
    assert!(matches!(err, MarshalError::Custom(_)));
    // Big integers reach i128/u128 targets.
    assert_eq!(
        marshal::from_value::<i128>(big("-170141183460469231731687303715884105728")).unwrap(),
        i128::MIN
    );
    assert!(marshal::from_value::<u64>(Value::from(1u128 << 64)).is_err());
}

#[test]
fn value_through_serde_json_degrades_gracefully() {
    let v = Value::Dict(vec![
        (s("t"), Value::Tuple(vec![Value::Int(1), s("a")])),
        (s("set"), Value::Set(vec![Value::Int(2)])),
        (s("c"), Value::Complex { re: 1.0, im: -2.0 }),
        (s("big"), Value::from(BigInt::from(u128::MAX))),
        (
            s("huge"),
            big("-1267650600228229401496703205376000000000000"),
        ),
        (s("b"), b(b"\x01\x02")),
        (s("stop"), Value::StopIteration),
        (s("none"), Value::None),
    ]);
    // serde_json::Value cannot hold u128, but its writer can.
    let json = serde_json::to_string(&v).unwrap();
    let expected = concat!(
        r#"{"t":[1,"a"],"set":[2],"c":[1.0,-2.0],"#,
        r#""big":340282366920938463463374607431768211455,"#,
        r#""huge":"-0xe8d4a510000000000000000000000000000","#,
        r#""b":[1,2],"stop":null,"none":null}"#
    );
    assert_eq!(json, expected);
    assert_eq!(
        BigInt::from_hex("-0xe8d4a510000000000000000000000000000")
            .unwrap()
            .to_string(),
        "-1267650600228229401496703205376000000000000"
    );
    // And JSON into a Value: arrays are lists, objects dicts with str keys.
    let back: Value =
        serde_json::from_str(r#"{"a": [1, 2.5, null, true], "b": 18446744073709551615}"#).unwrap();
    assert_eq!(
        back,
        Value::Dict(vec![
            (
                s("a"),
                Value::List(vec![
                    Value::Int(1),
                    Value::Float(2.5),
                    Value::None,
                    Value::Bool(true)
                ])
            ),
            (s("b"), Value::from(u64::MAX)),
        ])
    );
    // A marshal Value deserialized into serde_json::Value (deserialize_any path).
    let Value::Dict(mut pairs) = v else {
        unreachable!()
    };
    // (serde_json::Value has no u128 and refuses bytes: use serde_json::to_value(&v)
    // for those, which maps bytes to arrays.)
    pairs.retain(|(k, _)| k != &s("big") && k != &s("b"));
    let j: serde_json::Value = marshal::from_value(Value::Dict(pairs)).unwrap();
    assert_eq!(j["t"], serde_json::json!([1, "a"]));
    assert_eq!(
        j["huge"],
        serde_json::json!("-0xe8d4a510000000000000000000000000000")
    );
}

// ---------------------------------------------------------------------------------
// CPython cross-check: ONE python3 process loads everything we write

/// An independent description of a value, rebuilt into Python objects by the script.
fn describe(v: &Value) -> serde_json::Value {
    use serde_json::json;
    let float = |x: f64| to_hex(&x.to_le_bytes());
    let items = |xs: &[Value]| xs.iter().map(describe).collect::<Vec<_>>();
    match v {
        Value::None => json!({"t": "none"}),
        Value::Bool(x) => json!({"t": "bool", "v": x}),
        Value::Int(i) => {
            let text = if *i < 0 {
                format!("-{:#x}", i.unsigned_abs())
            } else {
                format!("{i:#x}")
            };
            json!({"t": "int", "v": text})
        }
        Value::BigInt(n) => json!({"t": "int", "v": n.to_hex()}),
        Value::Float(x) => json!({"t": "float", "v": float(*x)}),
        Value::Complex { re, im } => json!({"t": "complex", "re": float(*re), "im": float(*im)}),
        Value::Bytes(x) => json!({"t": "bytes", "v": to_hex(x)}),
        Value::Str(x) => json!({"t": "str", "v": x}),
        Value::Tuple(xs) => json!({"t": "tuple", "v": items(xs)}),
        Value::List(xs) => json!({"t": "list", "v": items(xs)}),
        Value::Set(xs) => json!({"t": "set", "v": items(xs)}),
        Value::FrozenSet(xs) => json!({"t": "frozenset", "v": items(xs)}),
        Value::Dict(pairs) => {
            json!({"t": "dict", "v": pairs.iter().map(|(k, v)| json!([describe(k), describe(v)])).collect::<Vec<_>>()})
        }
        Value::StopIteration => json!({"t": "stopiter"}),
        Value::Ellipsis => json!({"t": "ellipsis"}),
    }
}

/// CPython's set iteration order is its own, so bytes can only be compared when no set
/// has two or more items.
fn order_is_canonical(v: &Value) -> bool {
    match v {
        Value::Set(xs) | Value::FrozenSet(xs) => xs.len() < 2 && xs.iter().all(order_is_canonical),
        Value::Tuple(xs) | Value::List(xs) => xs.iter().all(order_is_canonical),
        Value::Dict(pairs) => pairs
            .iter()
            .all(|(k, v)| order_is_canonical(k) && order_is_canonical(v)),
        _ => true,
    }
}

const PY_CHECK: &str = r#"
import sys, json, marshal, struct, math

def f(h):
    return struct.unpack('<d', bytes.fromhex(h))[0]

def build(d):
    t = d['t']
    if t == 'none': return None
    if t == 'bool': return d['v']
    if t == 'int': return int(d['v'], 16)
    if t == 'float': return f(d['v'])
    if t == 'complex': return complex(f(d['re']), f(d['im']))
    if t == 'bytes': return bytes.fromhex(d['v'])
    if t == 'str': return d['v']
    if t == 'tuple': return tuple(build(x) for x in d['v'])
    if t == 'list': return [build(x) for x in d['v']]
    if t == 'set': return set(build(x) for x in d['v'])
    if t == 'frozenset': return frozenset(build(x) for x in d['v'])
    if t == 'dict':
        out = {}
        for k, v in d['v']:
            out[build(k)] = build(v)
        return out
    if t == 'stopiter': return StopIteration
    if t == 'ellipsis': return Ellipsis
    raise ValueError(t)

def canon(x):
    t = type(x)
    if x is None or x is StopIteration or x is Ellipsis: return repr(x)
    if t is bool: return repr(x)
    if t is int: return 'int:' + hex(x)
    if t is float: return 'float:' + ('nan' if math.isnan(x) else x.hex())
    if t is complex: return 'complex:' + canon(x.real) + ',' + canon(x.imag)
    if t is bytes: return 'bytes:' + x.hex()
    if t is str: return 'str:' + ascii(x)
    if t is tuple: return 'tuple(' + ','.join(map(canon, x)) + ')'
    if t is list: return 'list[' + ','.join(map(canon, x)) + ']'
    if t is dict: return 'dict{' + ','.join(canon(k) + ':' + canon(v) for k, v in x.items()) + '}'
    if t is set: return 'set{' + ','.join(sorted(map(canon, x))) + '}'
    if t is frozenset: return 'frozenset{' + ','.join(sorted(map(canon, x))) + '}'
    raise TypeError(t)

failures = 0
count = 0
bytes_compared = 0
for line in sys.stdin:
    case = json.loads(line)
    count += 1
    data = bytes.fromhex(case['hex'])
    try:
        got = marshal.loads(data)
    except Exception as e:
        failures += 1
        print('LOAD FAILED', case['label'], repr(e))
        continue
    exp = build(case['expect'])
    if canon(got) != canon(exp):
        failures += 1
        print('MISMATCH', case['label'], canon(got)[:300], '!=', canon(exp)[:300])
    if case['compare_bytes']:
        bytes_compared += 1
        theirs = marshal.dumps(exp, case['version'])
        if theirs != data:
            failures += 1
            print('BYTES DIFFER', case['label'], theirs.hex()[:200], data.hex()[:200])
print('checked', count, 'bytes', bytes_compared, 'failures', failures)
sys.exit(1 if failures else 0)
"#;

#[test]
fn cpython_loads_everything_we_write() {
    let mut cases: Vec<(String, Value)> = Vec::new();
    let mut seen = HashSet::new();
    for v in vectors() {
        if seen.insert(v.name.clone()) {
            cases.push((format!("vector {}", v.name), Repr::parse(&v.python_repr)));
        }
    }
    let edge = [
        Value::Float(f64::NAN),
        Value::Float(2f64.powi(-25)),
        Value::Float(1e22),
        Value::Float(5e-324),
        Value::Float(f64::MAX),
        Value::Float(-1e-7),
        Value::Complex {
            re: f64::INFINITY,
            im: -0.0,
        },
        Value::Int(i64::MIN),
        Value::Int(i64::from(i32::MIN) - 1),
        Value::from(u128::MAX),
        big(&format!("-{}", "9".repeat(200))),
        s(&"y".repeat(255)),
        s(&"y".repeat(256)),
        s("\u{0}\u{7f}\u{80}\u{ffff}\u{10ffff}"),
        Value::Tuple(vec![Value::Int(1); 255]),
        Value::Tuple(vec![Value::Int(1); 256]),
        Value::FrozenSet(vec![]),
        Value::Dict(vec![
            (
                Value::Tuple(vec![Value::Int(1), s("a")]),
                Value::Set(vec![]),
            ),
            (Value::FrozenSet(vec![Value::Int(1)]), Value::StopIteration),
            (Value::Ellipsis, Value::List(vec![])),
        ]),
        marshal::to_value(&sample_job()).unwrap(),
    ];
    cases.extend(edge.into_iter().map(|v| ("edge".to_owned(), v)));
    // Independent expectation for the serde struct (hand-written Value).
    let job_expected = sample_job_value();

    let mut runner = TestRunner::deterministic();
    let strategy = arb_value();
    for i in 0..300 {
        let v = strategy.new_tree(&mut runner).unwrap().current();
        cases.push((format!("proptest #{i}"), v));
    }

    let mut input = String::new();
    let mut lines = 0;
    for (label, value) in &cases {
        for version in 0..=4u8 {
            let mut push = |tag: &str, bytes: Vec<u8>, expect: &Value, compare: bool| {
                let line = serde_json::json!({
                    "label": format!("{label} v{version}{tag}"),
                    "version": version,
                    "hex": to_hex(&bytes),
                    "expect": describe(expect),
                    "compare_bytes": compare,
                });
                input.push_str(&line.to_string());
                input.push('\n');
                lines += 1;
            };
            let compare = version <= 2 && order_is_canonical(value);
            push("", marshal::to_vec(value, version).unwrap(), value, compare);
            if version >= 3 {
                let flagged = WriteOptions::new(version)
                    .ref_flags(RefFlags::Always)
                    .write(value)
                    .unwrap();
                push(" flagged", flagged, value, false);
            }
        }
    }
    for version in 0..=4u8 {
        let bytes = marshal::to_vec_version(&sample_job(), version).unwrap();
        let line = serde_json::json!({
            "label": format!("serde Job v{version}"),
            "version": version,
            "hex": to_hex(&bytes),
            "expect": describe(&job_expected),
            "compare_bytes": version <= 2,
        });
        input.push_str(&line.to_string());
        input.push('\n');
        lines += 1;
    }

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let child = Command::new(&python)
        .args(["-c", PY_CHECK])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var("UWSGI_SKIP_PYTHON").as_deref() == Ok("1") => {
            eprintln!("python3 not runnable ({e}); skipped because UWSGI_SKIP_PYTHON=1");
            return;
        }
        Err(e) => panic!(
            "cannot run {python} ({e}): the CPython cross-check needs python3 \
             (set UWSGI_SKIP_PYTHON=1 to skip it explicitly)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "CPython disagrees:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("checked {lines} ")) && stdout.contains("failures 0"),
        "{stdout}"
    );
    eprintln!("{stdout}");
}

/// Depth (levels of single-item lists) of a value, without recursion.
fn list_depth(mut v: &Value) -> usize {
    let mut depth = 1;
    while let Value::List(items) = v {
        depth += 1;
        v = &items[0];
    }
    depth
}

#[test]
fn reader_and_writer_do_not_recurse() {
    // 3000 levels read and written on a thread with a 128 KiB stack: the codec keeps
    // its own stack on the heap.
    let handle = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(|| {
            let bytes = nested_lists(2999);
            let opts = ReadOptions::new().max_depth(3000);
            let v = opts.read(&bytes).unwrap();
            let again = WriteOptions::new(4).max_depth(3000).write(&v).unwrap();
            assert_eq!(again, bytes);
            assert_eq!(
                WriteOptions::new(4).max_depth(2999).write(&v),
                Err(MarshalError::TooDeep { limit: 2999 })
            );
            v
        })
        .unwrap();
    let v = handle.join().unwrap();
    assert_eq!(list_depth(&v), 3000);
}

#[test]
fn serde_paths_at_the_default_depth_limit() {
    // The serde layers do recurse. At the default limit they fit a 2 MiB stack (the
    // default for spawned threads) even in debug builds.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let bytes = nested_lists(199);
            let mut tuples = Value::None;
            for _ in 0..199 {
                tuples = Value::Tuple(vec![tuples]);
            }
            let lists = marshal::from_slice_as::<Value>(&bytes).unwrap();
            assert_eq!(list_depth(&lists), 200);
            assert_eq!(marshal::to_value(&lists).unwrap(), lists);
            assert_eq!(
                marshal::from_value::<Value>(tuples.clone()).unwrap(),
                tuples
            );
            assert_eq!(marshal::to_value(&tuples).unwrap(), tuples);
            let json: serde_json::Value = marshal::from_slice_as(&bytes).unwrap();
            assert!(json.is_array());
        })
        .unwrap()
        .join()
        .unwrap();
}
