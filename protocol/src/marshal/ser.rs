//! serde `Serialize` → [`Value`].

use serde::ser::{self, Serialize};

use super::DEFAULT_MAX_DEPTH;
use super::bigint::BigInt;
use super::error::MarshalError;
use super::value::Value;
use super::value_serde::token;

/// A serde serializer that builds a [`Value`]; [`to_vec_version`](super::to_vec_version)
/// then encodes it.
///
/// | Rust / serde | Python value |
/// |---|---|
/// | `bool` | `bool` |
/// | every integer type, `i128`, `u128` | `int` (`i` or `l` on the wire) |
/// | `f32`, `f64` | `float` |
/// | `char`, `str` | `str` |
/// | bytes (`serde_bytes`) | `bytes` |
/// | `()`, unit struct, `None` | `None` |
/// | `Some(x)`, newtype struct | `x` |
/// | sequence (`Vec`, sets, ...) | `list` |
/// | tuple, tuple struct | `tuple` |
/// | map, struct | `dict` (struct fields as `str` keys) |
/// | unit variant | `str` (the variant name) |
/// | newtype / tuple / struct variant | `{variant: value}` (one-key `dict`, like serde_json) |
///
/// [`Value`] itself serializes to exactly itself (sets, frozensets, complex numbers,
/// tuples and big integers included), through private marker names this serializer
/// recognizes.
#[derive(Debug, Clone, Copy)]
pub struct Serializer {
    depth: usize,
    max_depth: usize,
}

impl Default for Serializer {
    fn default() -> Self {
        Serializer::new()
    }
}

impl Serializer {
    /// A serializer with [`DEFAULT_MAX_DEPTH`].
    pub fn new() -> Self {
        Serializer {
            depth: 1,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    /// Maximum nesting depth of the produced value (the outermost object is level 1).
    #[must_use]
    pub fn max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// The serializer for the items of a container at this level.
    fn child(&self) -> Serializer {
        Serializer {
            depth: self.depth.saturating_add(1),
            max_depth: self.max_depth,
        }
    }

    /// Fails when an object at this serializer's level would be too deep.
    fn check(self) -> Result<Serializer, MarshalError> {
        if self.depth > self.max_depth {
            return Err(MarshalError::TooDeep {
                limit: self.max_depth,
            });
        }
        Ok(self)
    }

    /// [`Serializer::child`], checked.
    fn checked_child(&self) -> Result<Serializer, MarshalError> {
        self.child().check()
    }
}

fn capacity(len: Option<usize>) -> usize {
    // Never trust a size hint for more than a modest pre-allocation.
    len.unwrap_or(0).min(1024)
}

fn variant_dict(variant: &'static str, value: Value) -> Value {
    Value::Dict(vec![(Value::Str(variant.to_owned()), value)])
}

fn marker_error(name: &str, got: &Value) -> MarshalError {
    MarshalError::Custom(format!(
        "marker {name} wraps an unexpected {}",
        got.type_name()
    ))
}

impl ser::Serializer for Serializer {
    type Ok = Value;
    type Error = MarshalError;
    type SerializeSeq = SerializeItems;
    type SerializeTuple = SerializeItems;
    type SerializeTupleStruct = SerializeItems;
    type SerializeTupleVariant = SerializeItems;
    type SerializeMap = SerializeDict;
    type SerializeStruct = SerializeDict;
    type SerializeStructVariant = SerializeDict;

    fn serialize_bool(self, v: bool) -> Result<Value, MarshalError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, MarshalError> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, MarshalError> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, MarshalError> {
        Ok(Value::from(v))
    }
    fn serialize_none(self) -> Result<Value, MarshalError> {
        Ok(Value::None)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Value, MarshalError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, MarshalError> {
        Ok(Value::None)
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<Value, MarshalError> {
        Ok(match name {
            token::STOPITER => Value::StopIteration,
            token::ELLIPSIS => Value::Ellipsis,
            _ => Value::None,
        })
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, MarshalError> {
        Ok(Value::from(variant))
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, MarshalError> {
        let inner = value.serialize(self)?;
        match name {
            token::SET | token::FROZENSET => match inner {
                Value::List(items) | Value::Tuple(items) if name == token::SET => {
                    Ok(Value::Set(items))
                }
                Value::List(items) | Value::Tuple(items) => Ok(Value::FrozenSet(items)),
                other => Err(marker_error(name, &other)),
            },
            token::COMPLEX => match inner {
                Value::Tuple(parts) => match parts.as_slice() {
                    [Value::Float(re), Value::Float(im)] => Ok(Value::Complex { re: *re, im: *im }),
                    _ => Err(marker_error(name, &Value::Tuple(parts))),
                },
                other => Err(marker_error(name, &other)),
            },
            token::BIGINT => match &inner {
                Value::Str(s) => BigInt::from_hex(s)
                    .map(Value::from)
                    .map_err(|e| MarshalError::Custom(e.to_string())),
                other => Err(marker_error(name, other)),
            },
            _ => Ok(inner),
        }
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, MarshalError> {
        let inner = value.serialize(self.checked_child()?)?;
        Ok(variant_dict(variant, inner))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SerializeItems, MarshalError> {
        SerializeItems::new(self, len, ItemsKind::List)
    }
    fn serialize_tuple(self, len: usize) -> Result<SerializeItems, MarshalError> {
        SerializeItems::new(self, Some(len), ItemsKind::Tuple)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SerializeItems, MarshalError> {
        SerializeItems::new(self, Some(len), ItemsKind::Tuple)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeItems, MarshalError> {
        // The tuple sits one level below the one-key dict.
        SerializeItems::new(
            self.checked_child()?,
            Some(len),
            ItemsKind::Variant(variant),
        )
    }
    fn serialize_map(self, len: Option<usize>) -> Result<SerializeDict, MarshalError> {
        SerializeDict::new(self, len, None)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SerializeDict, MarshalError> {
        SerializeDict::new(self, Some(len), None)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeDict, MarshalError> {
        SerializeDict::new(self.checked_child()?, Some(len), Some(variant))
    }
}

#[derive(Debug, Clone, Copy)]
enum ItemsKind {
    List,
    Tuple,
    Variant(&'static str),
}

/// Collects the items of a sequence, tuple, tuple struct or tuple variant.
#[derive(Debug)]
pub struct SerializeItems {
    child: Serializer,
    items: Vec<Value>,
    kind: ItemsKind,
}

impl SerializeItems {
    fn new(parent: Serializer, len: Option<usize>, kind: ItemsKind) -> Result<Self, MarshalError> {
        Ok(SerializeItems {
            child: parent.child(),
            items: Vec::with_capacity(capacity(len)),
            kind,
        })
    }

    fn push<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), MarshalError> {
        self.items.push(value.serialize(self.child.check()?)?);
        Ok(())
    }

    fn finish(self) -> Value {
        match self.kind {
            ItemsKind::List => Value::List(self.items),
            ItemsKind::Tuple => Value::Tuple(self.items),
            ItemsKind::Variant(variant) => variant_dict(variant, Value::Tuple(self.items)),
        }
    }
}

impl ser::SerializeSeq for SerializeItems {
    type Ok = Value;
    type Error = MarshalError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), MarshalError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, MarshalError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SerializeItems {
    type Ok = Value;
    type Error = MarshalError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), MarshalError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, MarshalError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SerializeItems {
    type Ok = Value;
    type Error = MarshalError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), MarshalError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, MarshalError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for SerializeItems {
    type Ok = Value;
    type Error = MarshalError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), MarshalError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, MarshalError> {
        Ok(self.finish())
    }
}

/// Collects the entries of a map, struct or struct variant.
#[derive(Debug)]
pub struct SerializeDict {
    child: Serializer,
    pairs: Vec<(Value, Value)>,
    pending_key: Option<Value>,
    variant: Option<&'static str>,
}

impl SerializeDict {
    fn new(
        parent: Serializer,
        len: Option<usize>,
        variant: Option<&'static str>,
    ) -> Result<Self, MarshalError> {
        Ok(SerializeDict {
            child: parent.child(),
            pairs: Vec::with_capacity(capacity(len)),
            pending_key: None,
            variant,
        })
    }

    fn field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), MarshalError> {
        let value = value.serialize(self.child.check()?)?;
        self.pairs.push((Value::from(key), value));
        Ok(())
    }

    fn finish(self) -> Value {
        let dict = Value::Dict(self.pairs);
        match self.variant {
            Some(variant) => variant_dict(variant, dict),
            None => dict,
        }
    }
}

impl ser::SerializeMap for SerializeDict {
    type Ok = Value;
    type Error = MarshalError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), MarshalError> {
        self.pending_key = Some(key.serialize(self.child.check()?)?);
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), MarshalError> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| MarshalError::Custom("map value without a key".to_owned()))?;
        let value = value.serialize(self.child.check()?)?;
        self.pairs.push((key, value));
        Ok(())
    }
    fn end(self) -> Result<Value, MarshalError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for SerializeDict {
    type Ok = Value;
    type Error = MarshalError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), MarshalError> {
        self.field(key, value)
    }
    fn end(self) -> Result<Value, MarshalError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for SerializeDict {
    type Ok = Value;
    type Error = MarshalError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), MarshalError> {
        self.field(key, value)
    }
    fn end(self) -> Result<Value, MarshalError> {
        Ok(self.finish())
    }
}
