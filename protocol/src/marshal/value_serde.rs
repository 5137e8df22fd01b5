//! `Serialize` / `Deserialize` for [`Value`] and [`BigInt`].
//!
//! serde's data model has no tuple-versus-list distinction at the value level, no sets,
//! no complex numbers and no integers above 128 bits. To round-trip a [`Value`] through
//! this crate's own [`Serializer`](super::Serializer) and [`Value`] deserializer without
//! loss, both sides use private marker names (the trick toml uses for datetimes):
//!
//! * Serializing: sets, frozensets, complex numbers and integers beyond 128 bits are
//!   wrapped in newtype structs with marker names; `StopIteration` and `Ellipsis` are
//!   unit structs with marker names. Other serializers see a plain sequence, pair,
//!   hexadecimal string or unit (serde_json: arrays, a string, `null`).
//! * Deserializing: `Value` asks for a newtype struct with a marker name. This crate's
//!   deserializer then hands tuples, sets, frozensets, dicts, complex numbers, big
//!   integers, `StopIteration` and `Ellipsis` over as a one-entry map whose key is a
//!   marker; other deserializers call `visit_newtype_struct` and the plain mapping
//!   applies (JSON arrays become lists, objects dicts with `str` keys).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::bigint::BigInt;
use super::value::Value;

/// Private marker names. Long and unusual, so they do not collide with real data.
pub(crate) mod token {
    pub const VALUE: &str = "$__uwsgi_marshal_private_Value";
    pub const TUPLE: &str = "$__uwsgi_marshal_private_Tuple";
    pub const DICT: &str = "$__uwsgi_marshal_private_Dict";
    pub const SET: &str = "$__uwsgi_marshal_private_Set";
    pub const FROZENSET: &str = "$__uwsgi_marshal_private_FrozenSet";
    pub const COMPLEX: &str = "$__uwsgi_marshal_private_Complex";
    pub const BIGINT: &str = "$__uwsgi_marshal_private_BigInt";
    pub const STOPITER: &str = "$__uwsgi_marshal_private_StopIteration";
    pub const ELLIPSIS: &str = "$__uwsgi_marshal_private_Ellipsis";
}

/// Python's default limit for `int(str)` (`sys.get_int_max_str_digits()`): decimal
/// parsing is quadratic, so longer decimal strings are refused when deserializing a
/// [`BigInt`] (hexadecimal has no limit).
const MAX_DECIMAL_DIGITS: usize = 4300;

impl Serialize for BigInt {
    /// As `i128` or `u128` when it fits, else a hexadecimal string (`"-0x1f..."`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(v) = self.to_i128() {
            serializer.serialize_i128(v)
        } else if let Some(v) = self.to_u128() {
            serializer.serialize_u128(v)
        } else {
            serializer.serialize_newtype_struct(token::BIGINT, &self.to_hex())
        }
    }
}

struct BigIntVisitor;

impl Visitor<'_> for BigIntVisitor {
    type Value = BigInt;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer, or an integer as hexadecimal or decimal text")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<BigInt, E> {
        Ok(BigInt::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<BigInt, E> {
        Ok(BigInt::from(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<BigInt, E> {
        Ok(BigInt::from(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<BigInt, E> {
        Ok(BigInt::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<BigInt, E> {
        let unsigned = v.strip_prefix('-').unwrap_or(v);
        let parsed = if unsigned.starts_with("0x") || unsigned.starts_with("0X") {
            BigInt::from_hex(v)
        } else if v.len() > MAX_DECIMAL_DIGITS + 1 {
            return Err(E::invalid_length(v.len(), &"at most 4300 decimal digits"));
        } else {
            v.parse()
        };
        parsed.map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for BigInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BigIntVisitor)
    }
}

/// Serializes a slice as a sequence (Vec<Value> would do, but without a clone).
struct Items<'a>(&'a [Value]);

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::None => serializer.serialize_none(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::BigInt(b) => b.serialize(serializer),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Complex { re, im } => {
                serializer.serialize_newtype_struct(token::COMPLEX, &(re, im))
            }
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Tuple(items) => {
                let mut tuple = serializer.serialize_tuple(items.len())?;
                for item in items {
                    tuple.serialize_element(item)?;
                }
                tuple.end()
            }
            Value::List(items) => serializer.collect_seq(items),
            Value::Dict(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::Set(items) => serializer.serialize_newtype_struct(token::SET, &Items(items)),
            Value::FrozenSet(items) => {
                serializer.serialize_newtype_struct(token::FROZENSET, &Items(items))
            }
            Value::StopIteration => serializer.serialize_unit_struct(token::STOPITER),
            Value::Ellipsis => serializer.serialize_unit_struct(token::ELLIPSIS),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(token::VALUE, ValueVisitor)
    }
}

struct ValueVisitor;

/// Reads the pairs of a map as they come (the payload of a tagged dict).
struct DictPairs;

impl<'de> DeserializeSeed<'de> for DictPairs {
    type Value = Vec<(Value, Value)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DictPairs {
    type Value = Vec<(Value, Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(pairs)
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(first) = map.next_key::<Value>()? else {
            return Ok(Value::Dict(Vec::new()));
        };
        if let Some(kind) = Tag::of(&first) {
            return read_tagged(kind, map);
        }
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024) + 1);
        let value = map.next_value()?;
        pairs.push((first, value));
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(Value::Dict(pairs))
    }
}

/// The kinds of tagged maps this crate's deserializer produces for `Value`.
#[derive(Clone, Copy)]
enum Tag {
    Tuple,
    Set,
    FrozenSet,
    Dict,
    Complex,
    BigInt,
    StopIteration,
    Ellipsis,
}

impl Tag {
    fn of(key: &Value) -> Option<Tag> {
        let Value::Str(key) = key else { return None };
        Some(match key.as_str() {
            token::TUPLE => Tag::Tuple,
            token::SET => Tag::Set,
            token::FROZENSET => Tag::FrozenSet,
            token::DICT => Tag::Dict,
            token::COMPLEX => Tag::Complex,
            token::BIGINT => Tag::BigInt,
            token::STOPITER => Tag::StopIteration,
            token::ELLIPSIS => Tag::Ellipsis,
            _ => return None,
        })
    }
}

/// Reads the payload of a tagged map. Kept apart from `visit_map` (and the items and
/// pairs in their own small seeds) so the frames of this recursive path stay small.
fn read_tagged<'de, A: MapAccess<'de>>(kind: Tag, mut map: A) -> Result<Value, A::Error> {
    match kind {
        Tag::Tuple => map.next_value_seed(ItemsSeed).map(Value::Tuple),
        Tag::Set => map.next_value_seed(ItemsSeed).map(Value::Set),
        Tag::FrozenSet => map.next_value_seed(ItemsSeed).map(Value::FrozenSet),
        Tag::Dict => map.next_value_seed(DictPairs).map(Value::Dict),
        Tag::Complex => {
            let (re, im): (f64, f64) = map.next_value()?;
            Ok(Value::Complex { re, im })
        }
        Tag::BigInt => {
            let text: String = map.next_value()?;
            let big = BigInt::from_hex(&text).map_err(de::Error::custom)?;
            Ok(Value::from(big))
        }
        Tag::StopIteration => map.next_value::<()>().map(|()| Value::StopIteration),
        Tag::Ellipsis => map.next_value::<()>().map(|()| Value::Ellipsis),
    }
}

/// Reads the items of a sequence as values.
struct ItemsSeed;

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Vec<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}
