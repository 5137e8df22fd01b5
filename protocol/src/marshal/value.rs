//! [`Value`]: an owned tree of every data object marshal can carry.

use super::bigint::BigInt;

/// One Python object of the kinds marshal can hold (everything except code objects).
///
/// Containers keep the order of the wire: a [`Value::Dict`] is a list of pairs (any key
/// type, duplicates allowed) and sets are lists of items. Nothing is hashed, so values
/// Python could not put in a set or use as a dict key (a list, say) are representable;
/// CPython refuses them when loading.
///
/// # Integers
///
/// Integers that fit `i64` are [`Value::Int`]. The reader produces [`Value::BigInt`] only
/// for values outside `i64`; [`Value::from`] on a [`BigInt`], `u64`, `i128` or `u128`
/// normalizes the same way. Equality compares integers numerically across both
/// variants, and the writer picks the marshal code from the number, not the variant.
///
/// # Equality
///
/// `PartialEq` is structural and order-sensitive (also for dicts and sets), with two
/// rules for floats (in `Float` and `Complex`): two NaNs are equal whatever their bits,
/// and `0.0` differs from `-0.0`. That makes `==` an equivalence relation (so `Value`
/// is also `Eq`) and lets round-trip tests notice a lost sign or NaN. It differs from
/// Python, where `nan != nan`, `0.0 == -0.0` and `1 == 1.0 == True`.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None` (`N`).
    None,
    /// `True` / `False` (`T` / `F`).
    Bool(bool),
    /// An `int` that fits `i64` (`i`, Python 2 `I`, or `l`).
    Int(i64),
    /// An `int` outside the `i64` range (`l`).
    BigInt(BigInt),
    /// A `float` (`g`, or text `f` in versions 0 and 1).
    Float(f64),
    /// A `complex` (`y`, or text `x` in versions 0 and 1).
    Complex {
        /// Real part.
        re: f64,
        /// Imaginary part.
        im: f64,
    },
    /// A `bytes` object (`s`; Python 2's `str`, and Python 2 interned `t` when read with
    /// [`Dialect::Python2`](super::Dialect::Python2)).
    Bytes(Vec<u8>),
    /// A `str` (`u`, `a`, `A`, `z`, `Z`, and `t` as CPython 3 reads it).
    Str(String),
    /// A `tuple` (`(` or `)`).
    Tuple(Vec<Value>),
    /// A `list` (`[`).
    List(Vec<Value>),
    /// A `dict` (`{`): pairs in wire order.
    Dict(Vec<(Value, Value)>),
    /// A `set` (`<`): items in wire order.
    Set(Vec<Value>),
    /// A `frozenset` (`>`): items in wire order.
    FrozenSet(Vec<Value>),
    /// The `StopIteration` exception class (`S`).
    StopIteration,
    /// `Ellipsis` / `...` (`.`).
    Ellipsis,
}

fn float_eq(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn int_eq(small: i64, big: &BigInt) -> bool {
    big.to_i64() == Some(small)
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value as V;
        match (self, other) {
            (V::None, V::None) | (V::StopIteration, V::StopIteration) => true,
            (V::Ellipsis, V::Ellipsis) => true,
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::Int(a), V::Int(b)) => a == b,
            (V::BigInt(a), V::BigInt(b)) => a == b,
            (V::Int(a), V::BigInt(b)) | (V::BigInt(b), V::Int(a)) => int_eq(*a, b),
            (V::Float(a), V::Float(b)) => float_eq(*a, *b),
            (V::Complex { re: r1, im: i1 }, V::Complex { re: r2, im: i2 }) => {
                float_eq(*r1, *r2) && float_eq(*i1, *i2)
            }
            (V::Bytes(a), V::Bytes(b)) => a == b,
            (V::Str(a), V::Str(b)) => a == b,
            (V::Tuple(a), V::Tuple(b))
            | (V::List(a), V::List(b))
            | (V::Set(a), V::Set(b))
            | (V::FrozenSet(a), V::FrozenSet(b)) => a == b,
            (V::Dict(a), V::Dict(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Value {
    /// The Python type name of the value (`"int"`, `"tuple"`, `"NoneType"`...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Complex { .. } => "complex",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::StopIteration => "StopIteration",
            Value::Ellipsis => "ellipsis",
        }
    }

    /// `true` for [`Value::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }

    /// The boolean, for [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, for [`Value::Int`] and for a [`Value::BigInt`] that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::BigInt(b) => b.to_i64(),
            _ => None,
        }
    }

    /// Any integer as a [`BigInt`].
    pub fn to_bigint(&self) -> Option<BigInt> {
        match self {
            Value::Int(i) => Some(BigInt::from(*i)),
            Value::BigInt(b) => Some(b.clone()),
            _ => None,
        }
    }

    /// The float, for [`Value::Float`].
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The text, for [`Value::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, for [`Value::Bytes`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The items of a tuple, list, set or frozenset.
    pub fn as_items(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) | Value::Set(v) | Value::FrozenSet(v) => Some(v),
            _ => None,
        }
    }

    /// The pairs of a dict.
    pub fn as_dict(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// Looks a key up in a dict (the first equal key wins; linear search).
    pub fn get(&self, key: &Value) -> Option<&Value> {
        self.as_dict()?
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// Looks a `str` key up in a dict. A Python 2 byte-string key (`s` or `t` read as
    /// bytes) with the same bytes matches too.
    pub fn get_str(&self, key: &str) -> Option<&Value> {
        self.as_dict()?.iter().find_map(|(k, v)| {
            let hit = match k {
                Value::Str(s) => s == key,
                Value::Bytes(b) => b.as_slice() == key.as_bytes(),
                _ => false,
            };
            hit.then_some(v)
        })
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

macro_rules! from_small_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_small_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<BigInt> for Value {
    /// [`Value::Int`] when the number fits `i64`, else [`Value::BigInt`].
    fn from(v: BigInt) -> Self {
        match v.to_i64() {
            Some(i) => Value::Int(i),
            None => Value::BigInt(v),
        }
    }
}

macro_rules! from_wide_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                match i64::try_from(v) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::BigInt(BigInt::from(v)),
                }
            }
        }
    )*};
}
from_wide_int!(u64, i128, u128);

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl From<Vec<Value>> for Value {
    /// A list.
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}

impl From<()> for Value {
    /// `None`.
    fn from((): ()) -> Self {
        Value::None
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    /// `None`, or the value.
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::None, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_rules() {
        assert_eq!(Value::Float(f64::NAN), Value::Float(-f64::NAN));
        assert_ne!(Value::Float(0.0), Value::Float(-0.0));
        assert_eq!(Value::Int(5), Value::BigInt(BigInt::from(5)));
        assert_ne!(Value::Int(1), Value::Bool(true));
        assert_ne!(Value::Int(1), Value::Float(1.0));
        assert_ne!(Value::Tuple(vec![]), Value::List(vec![]));
        assert_eq!(Value::from(u64::MAX), Value::BigInt(BigInt::from(u64::MAX)));
        assert!(matches!(Value::from(-5i128), Value::Int(-5)));
    }

    #[test]
    fn dict_lookup() {
        let d = Value::Dict(vec![
            (Value::Bytes(b"a".to_vec()), Value::Int(1)),
            (Value::Int(2), Value::Int(3)),
        ]);
        assert_eq!(d.get_str("a"), Some(&Value::Int(1)));
        assert_eq!(d.get(&Value::Int(2)), Some(&Value::Int(3)));
        assert_eq!(d.get_str("b"), None);
    }
}
