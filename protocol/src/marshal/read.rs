//! marshal bytes → [`Value`].

use super::bigint::{BigInt, DIGIT_MAX};
use super::error::MarshalError;
use super::value::Value;
use super::{DEFAULT_MAX_DEPTH, DEFAULT_REF_BUDGET, FLAG_REF, code};

/// How to read Python 2's interned strings (`t`) — the only type code whose meaning
/// changed between Python 2 and Python 3.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Like CPython 3: `t` is a `str` and must be UTF-8 ([`Value::Str`]).
    #[default]
    Python3,
    /// Like CPython 2: `t` is an interned byte string ([`Value::Bytes`]), as written by
    /// Python 2 (for example uWSGI 1.4 clients) for identifiers and dict keys.
    Python2,
}

/// Reader settings. The defaults read what CPython 3 reads, plus Python 2's `I`, `R`.
///
/// ```
/// use uwsgi_protocol::marshal::{Dialect, ReadOptions, Value};
///
/// // Python 2's marshal.dumps(('ab', 'ab'), 1): an interned string, then a reference to it.
/// let bytes = b"(\x02\x00\x00\x00t\x02\x00\x00\x00abR\x00\x00\x00\x00";
/// let py2 = ReadOptions::new().dialect(Dialect::Python2).read(bytes)?;
/// let ab = Value::Bytes(b"ab".to_vec());
/// assert_eq!(py2, Value::Tuple(vec![ab.clone(), ab]));
/// # Ok::<(), uwsgi_protocol::marshal::MarshalError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    dialect: Dialect,
    max_depth: usize,
    ref_budget: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            dialect: Dialect::Python3,
            max_depth: DEFAULT_MAX_DEPTH,
            ref_budget: DEFAULT_REF_BUDGET,
        }
    }
}

impl ReadOptions {
    /// The defaults: [`Dialect::Python3`], [`DEFAULT_MAX_DEPTH`], [`DEFAULT_REF_BUDGET`].
    pub fn new() -> Self {
        ReadOptions::default()
    }

    /// How to read `t` (interned strings).
    #[must_use]
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Maximum nesting depth; the outermost object is at depth 1. Values much above the
    /// default risk exhausting the thread's stack: reading is recursive.
    #[must_use]
    pub fn max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// Maximum number of input bytes that back-references (`r`, `R`) may re-read in
    /// total. Each reference copies the object it points to; this bounds the work and
    /// memory an input can cause through references to references.
    #[must_use]
    pub fn ref_budget(mut self, bytes: usize) -> Self {
        self.ref_budget = bytes;
        self
    }

    /// Reads exactly one object that must span the whole input.
    pub fn read(&self, input: &[u8]) -> Result<Value, MarshalError> {
        let (value, used) = self.read_prefix(input)?;
        if used < input.len() {
            return Err(MarshalError::TrailingBytes {
                offset: used,
                len: input.len() - used,
            });
        }
        Ok(value)
    }

    /// Reads one object from the start of `input`; returns it and the number of bytes
    /// it took. Bytes after it are not looked at.
    pub fn read_prefix(&self, input: &[u8]) -> Result<(Value, usize), MarshalError> {
        let mut reader = Reader {
            input,
            pos: 0,
            opts: *self,
            refs: Vec::new(),
            interned: Vec::new(),
            budget_left: self.ref_budget,
            stack: Vec::new(),
            containers: 0,
            replays: 0,
        };
        let value = reader.run()?;
        Ok((value, reader.pos))
    }
}

/// A slot of the reference table.
#[derive(Clone, Copy)]
enum Slot {
    /// Reserved by a container whose items are still being read.
    Pending,
    /// A complete object, stored as the span of input that encodes it. A reference
    /// re-reads the span: no copy is kept unless the object is actually referenced.
    Ready { start: usize, end: usize },
}

/// What a partly read container still needs. The reader keeps these on an explicit
/// stack instead of recursing, so deep input cannot exhaust the thread's stack.
enum Frame {
    /// A tuple, list, set or frozenset: `remaining` more items.
    Items {
        ty: u8,
        items: Vec<Value>,
        remaining: usize,
        start: usize,
        slot: Option<usize>,
    },
    /// A dict: alternately a key (or the NULL terminator) and a value.
    Dict {
        pairs: Vec<(Value, Value)>,
        key: Option<Value>,
        start: usize,
        slot: Option<usize>,
    },
    /// A back-reference being re-read: when its object is complete, reading resumes
    /// at `resume`.
    Replay { resume: usize },
}

/// The outcome of reading one type byte.
enum Step {
    /// A complete object.
    Value(Value),
    /// A container or back-reference was opened; its content follows.
    Opened,
    /// The NULL code.
    Null,
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    opts: ReadOptions,
    /// FLAG_REF objects, by index (version 3+ `r` references).
    refs: Vec<Slot>,
    /// Spans of `t` strings, by index (Python 2 `R` references).
    interned: Vec<(usize, usize)>,
    budget_left: usize,
    stack: Vec<Frame>,
    /// Number of `Items` and `Dict` frames on the stack (the nesting depth).
    containers: usize,
    /// Number of `Replay` frames on the stack: while above zero, nothing is registered.
    replays: usize,
}

impl Reader<'_> {
    fn eof(&self, needed: usize) -> MarshalError {
        MarshalError::UnexpectedEof {
            offset: self.input.len(),
            needed: needed.max(1),
        }
    }

    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], MarshalError> {
        let rest = self.remaining();
        if n > rest {
            return Err(self.eof(n - rest));
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.input[start..start + n])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MarshalError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, MarshalError> {
        Ok(self.array::<1>()?[0])
    }

    fn i32(&mut self) -> Result<i32, MarshalError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    /// A 32-bit length field: negative values are errors.
    fn len32(&mut self) -> Result<usize, MarshalError> {
        let offset = self.pos;
        let len = self.i32()?;
        usize::try_from(len).map_err(|_| MarshalError::NegativeLength { len, offset })
    }

    fn f64_bin(&mut self) -> Result<f64, MarshalError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    fn f64_text(&mut self) -> Result<f64, MarshalError> {
        let offset = self.pos;
        let n = usize::from(self.u8()?);
        let text = self.take(n)?;
        parse_float_text(text).ok_or(MarshalError::InvalidFloatText { offset })
    }

    fn utf8(&mut self, n: usize) -> Result<String, MarshalError> {
        let offset = self.pos;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| MarshalError::InvalidUtf8 { offset })
    }

    /// `a`/`A`/`z`/`Z`: CPython builds the string from the bytes as Latin-1.
    fn latin1(&mut self, n: usize) -> Result<String, MarshalError> {
        Ok(self.take(n)?.iter().map(|&b| char::from(b)).collect())
    }

    fn long(&mut self, offset: usize) -> Result<Value, MarshalError> {
        let n = self.i32()?;
        if n == i32::MIN {
            return Err(MarshalError::BadLong {
                offset,
                reason: "digit count out of range",
            });
        }
        let count = usize::try_from(n.unsigned_abs()).map_err(|_| MarshalError::BadLong {
            offset,
            reason: "digit count out of range",
        })?;
        let raw = self.take(count.saturating_mul(2))?;
        let digits: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        if digits.iter().any(|&d| d > DIGIT_MAX) {
            return Err(MarshalError::BadLong {
                offset,
                reason: "digit out of range",
            });
        }
        if digits.last() == Some(&0) {
            return Err(MarshalError::BadLong {
                offset,
                reason: "unnormalized (most significant digit is zero)",
            });
        }
        let big = BigInt::from_marshal_digits(n < 0, &digits).ok_or(MarshalError::BadLong {
            offset,
            reason: "digit out of range",
        })?;
        Ok(Value::from(big))
    }

    /// Reads one complete object, iteratively.
    fn run(&mut self) -> Result<Value, MarshalError> {
        loop {
            let start = self.pos;
            let step = self.step(start)?;
            let mut value = match step {
                Step::Opened => continue,
                Step::Value(value) => value,
                Step::Null => match self.stack.last() {
                    Some(Frame::Dict { key: None, .. }) => self.close_top()?,
                    _ => return Err(MarshalError::NullObject { offset: start }),
                },
            };
            // Hand the value to the frames above, closing each that becomes complete.
            loop {
                match self.stack.last_mut() {
                    None => return Ok(value),
                    Some(Frame::Items {
                        items, remaining, ..
                    }) => {
                        items.push(value);
                        *remaining -= 1;
                        if *remaining > 0 {
                            break;
                        }
                        value = self.close_top()?;
                    }
                    Some(Frame::Dict { pairs, key, .. }) => {
                        match key.take() {
                            None => *key = Some(value),
                            Some(k) => pairs.push((k, value)),
                        }
                        break;
                    }
                    Some(Frame::Replay { resume }) => {
                        self.pos = *resume;
                        self.stack.pop();
                        self.replays -= 1;
                    }
                }
            }
        }
    }

    /// Pops the top container frame and builds its value (registering it if flagged).
    fn close_top(&mut self) -> Result<Value, MarshalError> {
        let (value, start, slot) = match self.stack.pop() {
            Some(Frame::Items {
                ty,
                items,
                start,
                slot,
                ..
            }) => (container_value(ty, items), start, slot),
            Some(Frame::Dict {
                pairs, start, slot, ..
            }) => (Value::Dict(pairs), start, slot),
            // Only called with a container on top.
            _ => {
                return Err(MarshalError::Custom(
                    "marshal reader: no open container".into(),
                ));
            }
        };
        self.containers -= 1;
        if let Some(index) = slot {
            self.refs[index] = Slot::Ready {
                start,
                end: self.pos,
            };
        }
        Ok(value)
    }

    /// Reads one type byte and what directly follows it.
    fn step(&mut self, start: usize) -> Result<Step, MarshalError> {
        let byte = self.u8()?;
        if self.containers >= self.opts.max_depth {
            return Err(MarshalError::TooDeep {
                limit: self.opts.max_depth,
            });
        }
        let flagged = byte & FLAG_REF != 0 && self.replays == 0;
        let ty = byte & !FLAG_REF;
        let value = match ty {
            code::NULL => return Ok(Step::Null),
            // Singletons are never entered in the reference table, even when flagged.
            code::NONE => return Ok(Step::Value(Value::None)),
            code::FALSE => return Ok(Step::Value(Value::Bool(false))),
            code::TRUE => return Ok(Step::Value(Value::Bool(true))),
            code::STOPITER => return Ok(Step::Value(Value::StopIteration)),
            code::ELLIPSIS => return Ok(Step::Value(Value::Ellipsis)),
            code::REF => return self.open_ref(start).map(|()| Step::Opened),
            code::STRINGREF => return self.open_stringref(start).map(|()| Step::Opened),
            code::TUPLE
            | code::SMALL_TUPLE
            | code::LIST
            | code::SET
            | code::FROZENSET
            | code::DICT => return self.open_container(start, ty, flagged),
            _ => self.read_leaf(start, ty)?,
        };
        if flagged {
            self.refs.push(Slot::Ready {
                start,
                end: self.pos,
            });
        }
        Ok(Step::Value(value))
    }

    /// Tuples, lists, dicts, sets, frozensets. A flagged container takes its reference
    /// index before its items (as in CPython), so the items' indexes come after it.
    fn open_container(
        &mut self,
        start: usize,
        ty: u8,
        flagged: bool,
    ) -> Result<Step, MarshalError> {
        let n = match ty {
            code::DICT => 0,
            code::SMALL_TUPLE => usize::from(self.u8()?),
            _ => self.len32()?,
        };
        // Each item takes at least one byte: refuse (as EOF) counts the rest of the
        // input cannot hold, so no allocation trusts the length.
        let rest = self.remaining();
        if n > rest {
            return Err(self.eof(n - rest));
        }
        let slot = flagged.then(|| {
            self.refs.push(Slot::Pending);
            self.refs.len() - 1
        });
        if ty != code::DICT && n == 0 {
            if let Some(index) = slot {
                self.refs[index] = Slot::Ready {
                    start,
                    end: self.pos,
                };
            }
            return Ok(Step::Value(container_value(ty, Vec::new())));
        }
        self.stack.push(if ty == code::DICT {
            Frame::Dict {
                pairs: Vec::new(),
                key: None,
                start,
                slot,
            }
        } else {
            Frame::Items {
                ty,
                items: Vec::with_capacity(n),
                remaining: n,
                start,
                slot,
            }
        });
        self.containers += 1;
        Ok(Step::Opened)
    }

    /// Starts re-reading the object at `start..end` (a referenced object): it takes the
    /// place of the reference, at the same depth.
    fn open_replay(&mut self, start: usize, end: usize) -> Result<(), MarshalError> {
        let cost = end - start;
        if cost > self.budget_left {
            return Err(MarshalError::RefBudgetExceeded {
                limit: self.opts.ref_budget,
            });
        }
        self.budget_left -= cost;
        self.stack.push(Frame::Replay { resume: self.pos });
        self.replays += 1;
        self.pos = start;
        Ok(())
    }

    fn open_ref(&mut self, offset: usize) -> Result<(), MarshalError> {
        let raw = self.i32()?;
        let bad = MarshalError::BadRef {
            index: i64::from(raw),
            offset,
        };
        let index = usize::try_from(raw).map_err(|_| bad.clone())?;
        match self.refs.get(index) {
            None => Err(bad),
            Some(Slot::Pending) => Err(MarshalError::RecursiveRef { index, offset }),
            Some(&Slot::Ready { start, end }) => self.open_replay(start, end),
        }
    }

    fn open_stringref(&mut self, offset: usize) -> Result<(), MarshalError> {
        let raw = self.i32()?;
        let bad = MarshalError::BadRef {
            index: i64::from(raw),
            offset,
        };
        let index = usize::try_from(raw).map_err(|_| bad.clone())?;
        match self.interned.get(index) {
            None => Err(bad),
            Some(&(start, end)) => self.open_replay(start, end),
        }
    }

    /// Every non-container object that carries data.
    fn read_leaf(&mut self, start: usize, ty: u8) -> Result<Value, MarshalError> {
        Ok(match ty {
            code::CODE => return Err(MarshalError::CodeObject { offset: start }),
            code::INT => Value::Int(i64::from(self.i32()?)),
            code::INT64 => Value::Int(i64::from_le_bytes(self.array()?)),
            code::LONG => self.long(start)?,
            code::FLOAT => Value::Float(self.f64_text()?),
            code::BINARY_FLOAT => Value::Float(self.f64_bin()?),
            code::COMPLEX => {
                let re = self.f64_text()?;
                let im = self.f64_text()?;
                Value::Complex { re, im }
            }
            code::BINARY_COMPLEX => {
                let re = self.f64_bin()?;
                let im = self.f64_bin()?;
                Value::Complex { re, im }
            }
            code::STRING => {
                let n = self.len32()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            code::INTERNED => {
                let n = self.len32()?;
                let value = match self.opts.dialect {
                    Dialect::Python3 => Value::Str(self.utf8(n)?),
                    Dialect::Python2 => Value::Bytes(self.take(n)?.to_vec()),
                };
                if self.replays == 0 {
                    self.interned.push((start, self.pos));
                }
                value
            }
            code::UNICODE => {
                let n = self.len32()?;
                Value::Str(self.utf8(n)?)
            }
            code::ASCII | code::ASCII_INTERNED => {
                let n = self.len32()?;
                Value::Str(self.latin1(n)?)
            }
            code::SHORT_ASCII | code::SHORT_ASCII_INTERNED => {
                let n = usize::from(self.u8()?);
                Value::Str(self.latin1(n)?)
            }
            other => {
                return Err(MarshalError::UnknownType {
                    code: other,
                    offset: start,
                });
            }
        })
    }
}

fn container_value(ty: u8, items: Vec<Value>) -> Value {
    match ty {
        code::LIST => Value::List(items),
        code::SET => Value::Set(items),
        code::FROZENSET => Value::FrozenSet(items),
        _ => Value::Tuple(items),
    }
}

/// Parses the text of an `f`/`x` float: what Python's `repr`/`%.17g` produce, plus the
/// spellings `float()` accepts for infinities and NaN.
fn parse_float_text(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?;
    // Rust's parser is a superset of C's strtod here except for hex floats, which
    // marshal never writes; it also rejects surrounding white space, like CPython.
    if s.is_empty() || s.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    s.parse::<f64>().ok()
}
