//! [`Value`] → marshal bytes.

use super::bigint::BigInt;
use super::error::MarshalError;
use super::value::Value;
use super::{DEFAULT_MAX_DEPTH, DEFAULT_VERSION, FLAG_REF, MAX_VERSION, code};

/// When the writer sets the 0x80 "reference" flag on a type byte (versions 3 and 4).
///
/// A flagged object is entered in the reader's reference table so later `r` codes can
/// point to it. This writer never emits `r` (a [`Value`] tree has no shared objects), so
/// the flag changes only bytes, never the loaded value. CPython flags exactly the
/// objects whose reference count is above one when dumped, which depends on the
/// program state; neither policy reproduces that in general:
///
/// * [`RefFlags::Never`] gives CPython's bytes for a freshly built object nobody else
///   holds (no flag anywhere) — except small ints and interned strings, which CPython
///   always shares.
/// * [`RefFlags::Always`] flags every object except `None`, `True`, `False`,
///   `StopIteration` and `Ellipsis` (which CPython never flags): CPython's bytes when
///   every object is also referenced from elsewhere and none repeats.
///
/// Versions 0 to 2 have no flag; both policies write the same bytes there.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefFlags {
    /// Never set the flag (the default: smallest output, simplest to compare).
    #[default]
    Never,
    /// Set the flag on every object that is not a singleton.
    Always,
}

/// Writer settings: version, reference-flag policy, depth limit.
///
/// ```
/// use uwsgi_protocol::marshal::{RefFlags, Value, WriteOptions};
///
/// let v = Value::Tuple(vec![Value::Int(1), Value::from("a")]);
/// assert_eq!(WriteOptions::new(4).write(&v)?, b")\x02i\x01\x00\x00\x00z\x01a");
/// let flagged = WriteOptions::new(4).ref_flags(RefFlags::Always).write(&v)?;
/// assert_eq!(flagged, b"\xa9\x02\xe9\x01\x00\x00\x00\xfa\x01a");
/// # Ok::<(), uwsgi_protocol::marshal::MarshalError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    version: u8,
    ref_flags: RefFlags,
    max_depth: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions::new(DEFAULT_VERSION)
    }
}

impl WriteOptions {
    /// Writes marshal `version` (0 to 4; checked when writing) with [`RefFlags::Never`].
    pub fn new(version: u8) -> Self {
        WriteOptions {
            version,
            ref_flags: RefFlags::Never,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    /// The reference-flag policy (only matters for versions 3 and 4).
    #[must_use]
    pub fn ref_flags(mut self, ref_flags: RefFlags) -> Self {
        self.ref_flags = ref_flags;
        self
    }

    /// Maximum nesting depth; the outermost object is at depth 1.
    #[must_use]
    pub fn max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// The version written.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Encodes `value`.
    pub fn write(&self, value: &Value) -> Result<Vec<u8>, MarshalError> {
        let mut out = Vec::new();
        self.write_into(value, &mut out)?;
        Ok(out)
    }

    /// Appends the encoding of `value` to `out` (on error, `out` may hold a partial
    /// encoding).
    pub fn write_into(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), MarshalError> {
        if self.version > MAX_VERSION {
            return Err(MarshalError::UnsupportedVersion {
                version: self.version,
            });
        }
        Writer { opts: *self, out }.value(value)
    }
}

struct Writer<'a> {
    opts: WriteOptions,
    out: &'a mut Vec<u8>,
}

fn len_i32(len: usize) -> Result<[u8; 4], MarshalError> {
    i32::try_from(len)
        .map(i32::to_le_bytes)
        .map_err(|_| MarshalError::LengthOverflow { len })
}

impl Writer<'_> {
    fn ty(&mut self, code: u8) {
        let flag = if self.opts.version >= 3 && self.opts.ref_flags == RefFlags::Always {
            FLAG_REF
        } else {
            0
        };
        self.out.push(code | flag);
    }

    fn len(&mut self, len: usize) -> Result<(), MarshalError> {
        self.out.extend_from_slice(&len_i32(len)?);
        Ok(())
    }

    fn bytes(&mut self, code: u8, data: &[u8]) -> Result<(), MarshalError> {
        self.ty(code);
        self.len(data.len())?;
        self.out.extend_from_slice(data);
        Ok(())
    }

    fn float_text(&mut self, x: f64) {
        let text = float_repr_17g(x);
        // At most 24 characters ("-2.2250738585072014e-308"), so the u8 length fits.
        let len = u8::try_from(text.len()).unwrap_or(u8::MAX);
        self.out.push(len);
        self.out
            .extend_from_slice(&text.as_bytes()[..usize::from(len)]);
    }

    fn int(&mut self, small: Option<i64>, big: &dyn Fn() -> BigInt) {
        if let Some(i) = small.and_then(|i| i32::try_from(i).ok()) {
            self.ty(code::INT);
            self.out.extend_from_slice(&i.to_le_bytes());
            return;
        }
        let n = big();
        self.ty(code::LONG);
        let digits = n.marshal_digits();
        // A digit count beyond i32 would need a number of more than 32 GiB.
        let count = i32::try_from(digits.len()).unwrap_or(i32::MAX);
        let signed = if n.is_negative() { -count } else { count };
        self.out.extend_from_slice(&signed.to_le_bytes());
        for d in digits {
            self.out.extend_from_slice(&d.to_le_bytes());
        }
    }

    /// A container header: type code and item count.
    fn header(&mut self, code: u8, len: usize) -> Result<(), MarshalError> {
        self.ty(code);
        self.len(len)
    }

    /// Writes `value` and everything in it, depth-first, with an explicit stack (no
    /// recursion, so deep values cannot exhaust the thread's stack).
    fn value(&mut self, value: &Value) -> Result<(), MarshalError> {
        let mut todo: Vec<Task<'_>> = vec![Task::Value(value, 1)];
        while let Some(task) = todo.pop() {
            let (value, depth) = match task {
                Task::Value(value, depth) => (value, depth),
                Task::Byte(byte) => {
                    self.out.push(byte);
                    continue;
                }
            };
            if depth > self.opts.max_depth {
                return Err(MarshalError::TooDeep {
                    limit: self.opts.max_depth,
                });
            }
            let children: &[Value] = match value {
                Value::Tuple(items) => {
                    match u8::try_from(items.len()) {
                        Ok(short) if self.opts.version >= 4 => {
                            self.ty(code::SMALL_TUPLE);
                            self.out.push(short);
                        }
                        _ => self.header(code::TUPLE, items.len())?,
                    }
                    items
                }
                Value::List(items) => {
                    self.header(code::LIST, items.len())?;
                    items
                }
                Value::Set(items) => {
                    self.header(code::SET, items.len())?;
                    items
                }
                Value::FrozenSet(items) => {
                    self.header(code::FROZENSET, items.len())?;
                    items
                }
                Value::Dict(pairs) => {
                    self.ty(code::DICT);
                    todo.push(Task::Byte(code::NULL));
                    for (k, v) in pairs.iter().rev() {
                        todo.push(Task::Value(v, depth + 1));
                        todo.push(Task::Value(k, depth + 1));
                    }
                    continue;
                }
                leaf => {
                    self.leaf(leaf)?;
                    continue;
                }
            };
            todo.extend(children.iter().rev().map(|c| Task::Value(c, depth + 1)));
        }
        Ok(())
    }

    fn leaf(&mut self, value: &Value) -> Result<(), MarshalError> {
        let v = self.opts.version;
        match value {
            // Singletons are never flagged (CPython writes them before any ref logic).
            Value::None => self.out.push(code::NONE),
            Value::Bool(true) => self.out.push(code::TRUE),
            Value::Bool(false) => self.out.push(code::FALSE),
            Value::StopIteration => self.out.push(code::STOPITER),
            Value::Ellipsis => self.out.push(code::ELLIPSIS),
            Value::Int(i) => self.int(Some(*i), &|| BigInt::from(*i)),
            Value::BigInt(b) => self.int(b.to_i64(), &|| b.clone()),
            Value::Float(x) if v >= 2 => {
                self.ty(code::BINARY_FLOAT);
                self.out.extend_from_slice(&x.to_le_bytes());
            }
            Value::Float(x) => {
                self.ty(code::FLOAT);
                self.float_text(*x);
            }
            Value::Complex { re, im } if v >= 2 => {
                self.ty(code::BINARY_COMPLEX);
                self.out.extend_from_slice(&re.to_le_bytes());
                self.out.extend_from_slice(&im.to_le_bytes());
            }
            Value::Complex { re, im } => {
                self.ty(code::COMPLEX);
                self.float_text(*re);
                self.float_text(*im);
            }
            Value::Bytes(b) => self.bytes(code::STRING, b)?,
            Value::Str(s) if v >= 4 && s.is_ascii() => match u8::try_from(s.len()) {
                Ok(short) => {
                    self.ty(code::SHORT_ASCII);
                    self.out.push(short);
                    self.out.extend_from_slice(s.as_bytes());
                }
                Err(_) => self.bytes(code::ASCII, s.as_bytes())?,
            },
            Value::Str(s) => self.bytes(code::UNICODE, s.as_bytes())?,
            // Containers are handled by `value`.
            Value::Tuple(_)
            | Value::List(_)
            | Value::Dict(_)
            | Value::Set(_)
            | Value::FrozenSet(_) => {}
        }
        Ok(())
    }
}

/// A pending piece of output.
enum Task<'v> {
    /// A value and its depth (the outermost is 1).
    Value(&'v Value, usize),
    /// A raw byte (the dict terminator).
    Byte(u8),
}

/// Formats a float like C's `%.17g` / CPython's `PyOS_double_to_string(x, 'g', 17, 0)`,
/// which is what CPython 3 (and Python 2) write for `f` and `x` in versions 0 and 1:
/// 17 significant digits, trailing zeros removed, exponent form below 1e-4 and from
/// 1e17 on, `inf`, `-inf`, and `nan` (the sign of a NaN is dropped).
pub(crate) fn float_repr_17g(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0");
    }
    // Rust rounds exactly (half to even on exact ties), like David Gay's dtoa used by
    // CPython. "d.dddddddddddddddde[-]X"
    let sci = format!("{:.16e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    if !(-4..17).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{dot}{rest}e{esign}{:02}", exp.unsigned_abs())
    } else if exp < 0 {
        let zeros = "0".repeat(usize::try_from(-exp - 1).unwrap_or(0));
        format!("{sign}0.{zeros}{digits}")
    } else {
        let int_len = usize::try_from(exp + 1).unwrap_or(1);
        if digits.len() <= int_len {
            let zeros = "0".repeat(int_len - digits.len());
            format!("{sign}{digits}{zeros}")
        } else {
            let (int_part, frac) = digits.split_at(int_len);
            format!("{sign}{int_part}.{frac}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::float_repr_17g;

    #[test]
    fn percent_17g() {
        for (x, text) in [
            (0.1, "0.10000000000000001"),
            (1.0, "1"),
            (1.5, "1.5"),
            (-0.0, "-0"),
            (1e100, "1e+100"),
            (1e-5, "1.0000000000000001e-05"),
            (2f64.powi(-25), "2.9802322387695312e-08"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (5e-324, "4.9406564584124654e-324"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (f64::NAN, "nan"),
            (-f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(float_repr_17g(x), text, "{x:?}");
        }
    }
}
