//! [`Value`] as a serde `Deserializer`: drives any `Deserialize` type from a value.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, Unexpected, VariantAccess,
    Visitor,
};
use serde::forward_to_deserialize_any;

use super::bigint::BigInt;
use super::error::MarshalError;
use super::value::Value;
use super::value_serde::token;

impl<'de> IntoDeserializer<'de, MarshalError> for Value {
    type Deserializer = Value;

    fn into_deserializer(self) -> Value {
        self
    }
}

fn visit_items<'de, V: Visitor<'de>>(
    items: Vec<Value>,
    visitor: V,
) -> Result<V::Value, MarshalError> {
    let mut seq = SeqDeserializer::new(items.into_iter());
    let out = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(out)
}

fn visit_dict<'de, V: Visitor<'de>>(
    pairs: Vec<(Value, Value)>,
    visitor: V,
) -> Result<V::Value, MarshalError> {
    let mut map = MapDeserializer::new(pairs.into_iter());
    let out = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(out)
}

fn visit_bigint<'de, V: Visitor<'de>>(big: BigInt, visitor: V) -> Result<V::Value, MarshalError> {
    if let Some(v) = big.to_i64() {
        visitor.visit_i64(v)
    } else if let Some(v) = big.to_u64() {
        visitor.visit_u64(v)
    } else if let Some(v) = big.to_i128() {
        visitor.visit_i128(v)
    } else if let Some(v) = big.to_u128() {
        visitor.visit_u128(v)
    } else {
        visitor.visit_string(big.to_hex())
    }
}

impl Value {
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Value::None | Value::StopIteration | Value::Ellipsis => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Int(i) => Unexpected::Signed(*i),
            Value::BigInt(_) => Unexpected::Other("big integer"),
            Value::Float(f) => Unexpected::Float(*f),
            Value::Complex { .. } => Unexpected::Other("complex number"),
            Value::Bytes(b) => Unexpected::Bytes(b),
            Value::Str(s) => Unexpected::Str(s),
            Value::Tuple(_) | Value::List(_) | Value::Set(_) | Value::FrozenSet(_) => {
                Unexpected::Seq
            }
            Value::Dict(_) => Unexpected::Map,
        }
    }

    /// The self-describing form read by `Value`'s own `Deserialize` impl: everything
    /// the serde data model cannot tell apart is handed over as a one-entry map keyed
    /// by a private marker.
    fn deserialize_tagged<'de, V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, MarshalError> {
        let (key, payload) = match self {
            Value::Tuple(items) => (token::TUPLE, Value::List(items)),
            Value::Set(items) => (token::SET, Value::List(items)),
            Value::FrozenSet(items) => (token::FROZENSET, Value::List(items)),
            Value::Dict(pairs) => (token::DICT, Value::Dict(pairs)),
            Value::Complex { re, im } => (
                token::COMPLEX,
                Value::Tuple(vec![Value::Float(re), Value::Float(im)]),
            ),
            Value::BigInt(big) => (token::BIGINT, Value::Str(big.to_hex())),
            Value::StopIteration => (token::STOPITER, Value::None),
            Value::Ellipsis => (token::ELLIPSIS, Value::None),
            plain => return de::Deserializer::deserialize_any(plain, visitor),
        };
        visitor.visit_map(Tagged {
            key: Some(key),
            value: Some(payload),
        })
    }
}

/// A one-entry map `{marker: payload}`.
struct Tagged {
    key: Option<&'static str>,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for Tagged {
    type Error = MarshalError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, MarshalError> {
        match self.key.take() {
            Some(key) => seed.deserialize(Value::from(key)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, MarshalError> {
        let value = self
            .value
            .take()
            .ok_or_else(|| MarshalError::Custom("value requested twice".to_owned()))?;
        seed.deserialize(value)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(usize::from(self.key.is_some()))
    }
}

/// `Value` is a self-describing serde `Deserializer`:
///
/// | Python value | visitor call |
/// |---|---|
/// | `None`, `StopIteration`, `Ellipsis` | `visit_unit` (`visit_none` for `Option`) |
/// | `bool` | `visit_bool` |
/// | `int` | `visit_i64`, or `visit_u64` / `visit_i128` / `visit_u128` when larger, or a hexadecimal string beyond 128 bits |
/// | `float` | `visit_f64` |
/// | `complex` | a sequence `[re, im]` |
/// | `bytes` | `visit_byte_buf` |
/// | `str` | `visit_string` |
/// | `tuple`, `list`, `set`, `frozenset` | `visit_seq` |
/// | `dict` | `visit_map` |
///
/// Enums are read from a `str` (unit variant) or a one-entry `dict` `{variant: value}`;
/// Python 2 byte strings are accepted for variant names and, through serde's own
/// string visitors, wherever text is expected.
impl<'de> de::Deserializer<'de> for Value {
    type Error = MarshalError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, MarshalError> {
        match self {
            Value::None | Value::StopIteration | Value::Ellipsis => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::BigInt(big) => visit_bigint(big, visitor),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Complex { re, im } => {
                visit_items(vec![Value::Float(re), Value::Float(im)], visitor)
            }
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::Str(s) => visitor.visit_string(s),
            Value::Tuple(items)
            | Value::List(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => visit_items(items, visitor),
            Value::Dict(pairs) => visit_dict(pairs, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, MarshalError> {
        match self {
            Value::None => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, MarshalError> {
        if name == token::VALUE {
            self.deserialize_tagged(visitor)
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, MarshalError> {
        match self {
            variant @ (Value::Str(_) | Value::Bytes(_)) => visitor.visit_enum(Enum {
                variant,
                value: None,
            }),
            Value::Dict(mut pairs) if pairs.len() == 1 => {
                let (variant, value) = pairs.remove(0);
                match variant {
                    Value::Str(_) | Value::Bytes(_) => visitor.visit_enum(Enum {
                        variant,
                        value: Some(value),
                    }),
                    other => Err(de::Error::invalid_type(
                        other.unexpected(),
                        &"a variant name (str)",
                    )),
                }
            }
            other => Err(de::Error::invalid_type(
                other.unexpected(),
                &"a variant name (str) or a one-entry dict {variant: value}",
            )),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, MarshalError> {
        match self {
            Value::Tuple(items)
            | Value::List(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => visit_items(items, visitor),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, MarshalError> {
        match self {
            Value::Dict(pairs) => visit_dict(pairs, visitor),
            other => other.deserialize_any(visitor),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct struct
        identifier ignored_any
    }
}

struct Enum {
    variant: Value,
    value: Option<Value>,
}

impl<'de> EnumAccess<'de> for Enum {
    type Error = MarshalError;
    type Variant = Variant;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Variant), MarshalError> {
        let variant = seed.deserialize(self.variant)?;
        Ok((variant, Variant(self.value)))
    }
}

struct Variant(Option<Value>);

impl<'de> VariantAccess<'de> for Variant {
    type Error = MarshalError;

    fn unit_variant(self) -> Result<(), MarshalError> {
        match self.0 {
            None | Some(Value::None) => Ok(()),
            Some(other) => Err(de::Error::invalid_type(other.unexpected(), &"unit variant")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, MarshalError> {
        match self.0 {
            Some(value) => seed.deserialize(value),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"newtype variant",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, MarshalError> {
        match self.0 {
            Some(value) => de::Deserializer::deserialize_seq(value, visitor),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"tuple variant",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, MarshalError> {
        match self.0 {
            Some(value) => de::Deserializer::deserialize_map(value, visitor),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"struct variant",
            )),
        }
    }
}
