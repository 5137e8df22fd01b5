//! A small arbitrary-precision integer, stored the way marshal stores integers.
//!
//! marshal writes integers that do not fit 32 bits as a sign plus a list of 15-bit
//! "digits", least significant first (type code `l`). [`BigInt`] keeps exactly that
//! representation, so reading and writing are copies, and offers the few operations a
//! data format needs: conversions from and to the primitive integers, decimal
//! formatting and parsing, comparison. It is not meant for arithmetic.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Bits per marshal digit.
pub(crate) const DIGIT_BITS: u32 = 15;
/// Largest value of one marshal digit.
pub(crate) const DIGIT_MAX: u16 = 0x7fff;

/// An integer of any size: a sign and a magnitude in base 2^15 (marshal's `l` layout).
///
/// The representation is always normalized (no most-significant zero digit, zero is
/// never negative), so the derived equality and hashing are numeric.
///
/// ```
/// use uwsgi_protocol::marshal::BigInt;
///
/// let n: BigInt = "-1267650600228229401496703205376".parse()?; // -2**100
/// assert_eq!(n.to_string(), "-1267650600228229401496703205376");
/// assert_eq!(n.to_i128(), Some(-(1i128 << 100)));
/// assert_eq!(n.to_i64(), None);
/// assert_eq!(BigInt::from(u64::MAX).to_u64(), Some(u64::MAX));
/// # Ok::<(), uwsgi_protocol::marshal::ParseBigIntError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct BigInt {
    negative: bool,
    /// Magnitude, base 2^15, least significant first, no trailing (most significant) zero.
    digits: Vec<u16>,
}

/// The text given to [`BigInt::from_str`] is not a decimal integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid decimal integer")]
pub struct ParseBigIntError;

impl BigInt {
    /// Zero.
    pub fn zero() -> Self {
        BigInt::default()
    }

    /// Builds an integer from marshal digits (base 2^15, least significant first).
    ///
    /// Returns `None` when a digit is larger than `0x7fff`. Most-significant zero
    /// digits are accepted and dropped.
    pub fn from_marshal_digits(negative: bool, digits: &[u16]) -> Option<Self> {
        if digits.iter().any(|&d| d > DIGIT_MAX) {
            return None;
        }
        let mut n = BigInt {
            negative,
            digits: digits.to_vec(),
        };
        n.normalize();
        Some(n)
    }

    /// The magnitude as marshal digits (base 2^15, least significant first); empty for 0.
    pub fn marshal_digits(&self) -> &[u16] {
        &self.digits
    }

    /// `true` when the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// `true` when the value is zero.
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    fn normalize(&mut self) {
        while self.digits.last() == Some(&0) {
            self.digits.pop();
        }
        if self.digits.is_empty() {
            self.negative = false;
        }
    }

    fn from_magnitude(negative: bool, mut m: u128) -> Self {
        let mut digits = Vec::new();
        while m != 0 {
            let b = m.to_le_bytes();
            digits.push(u16::from_le_bytes([b[0], b[1]]) & DIGIT_MAX);
            m >>= DIGIT_BITS;
        }
        let mut n = BigInt { negative, digits };
        n.normalize();
        n
    }

    /// The magnitude as a `u128`, if it fits.
    fn magnitude_u128(&self) -> Option<u128> {
        let mut acc: u128 = 0;
        for &d in self.digits.iter().rev() {
            if acc.leading_zeros() < DIGIT_BITS {
                return None;
            }
            acc = (acc << DIGIT_BITS) | u128::from(d);
        }
        Some(acc)
    }

    /// The value as an `i128`, if it fits.
    pub fn to_i128(&self) -> Option<i128> {
        let m = self.magnitude_u128()?;
        if self.negative {
            if m == i128::MIN.unsigned_abs() {
                Some(i128::MIN)
            } else {
                i128::try_from(m).ok().map(|v| -v)
            }
        } else {
            i128::try_from(m).ok()
        }
    }

    /// The value as a `u128`, if it fits (not negative).
    pub fn to_u128(&self) -> Option<u128> {
        if self.negative {
            None
        } else {
            self.magnitude_u128()
        }
    }

    /// The value as an `i64`, if it fits.
    pub fn to_i64(&self) -> Option<i64> {
        self.to_i128().and_then(|v| i64::try_from(v).ok())
    }

    /// The value as a `u64`, if it fits.
    pub fn to_u64(&self) -> Option<u64> {
        self.to_u128().and_then(|v| u64::try_from(v).ok())
    }

    /// The value as an `i32`, if it fits (marshal then uses the 4-byte `i` code).
    pub fn to_i32(&self) -> Option<i32> {
        self.to_i128().and_then(|v| i32::try_from(v).ok())
    }

    /// Number of bits of the magnitude (0 for zero).
    pub fn bits(&self) -> u64 {
        match self.digits.last() {
            None => 0,
            Some(&top) => {
                let full = u64::try_from(self.digits.len() - 1).unwrap_or(u64::MAX / 16);
                full * u64::from(DIGIT_BITS) + u64::from(16 - top.leading_zeros())
            }
        }
    }

    /// Hexadecimal text: `0x1f`, `-0x1f`, `0x0`. Linear time, unlike decimal
    /// formatting, which is quadratic in the number of digits.
    pub fn to_hex(&self) -> String {
        let mut nibbles: Vec<u8> = Vec::with_capacity(self.digits.len() * 4 + 1);
        let mut acc: u32 = 0;
        let mut bits: u32 = 0;
        for &d in &self.digits {
            acc |= u32::from(d) << bits;
            bits += DIGIT_BITS;
            while bits >= 4 {
                nibbles.push(acc.to_le_bytes()[0] & 0xf);
                acc >>= 4;
                bits -= 4;
            }
        }
        if bits > 0 {
            nibbles.push(acc.to_le_bytes()[0] & 0xf);
        }
        while nibbles.last() == Some(&0) {
            nibbles.pop();
        }
        let mut text = String::with_capacity(nibbles.len() + 3);
        if self.negative {
            text.push('-');
        }
        text.push_str("0x");
        if nibbles.is_empty() {
            text.push('0');
        }
        for &n in nibbles.iter().rev() {
            text.push(char::from(b"0123456789abcdef"[usize::from(n)]));
        }
        text
    }

    /// Parses what [`BigInt::to_hex`] writes: an optional `-`, then `0x` (or `0X`) and
    /// one or more hexadecimal digits (either case). Linear time.
    pub fn from_hex(text: &str) -> Result<Self, ParseBigIntError> {
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let body = body
            .strip_prefix("0x")
            .or_else(|| body.strip_prefix("0X"))
            .ok_or(ParseBigIntError)?;
        if body.is_empty() {
            return Err(ParseBigIntError);
        }
        let mut digits = Vec::with_capacity(body.len() * 4 / 15 + 1);
        let mut acc: u32 = 0;
        let mut bits: u32 = 0;
        for c in body.chars().rev() {
            let nibble = c.to_digit(16).ok_or(ParseBigIntError)?;
            acc |= nibble << bits;
            bits += 4;
            if bits >= DIGIT_BITS {
                let b = acc.to_le_bytes();
                digits.push(u16::from_le_bytes([b[0], b[1]]) & DIGIT_MAX);
                acc >>= DIGIT_BITS;
                bits -= DIGIT_BITS;
            }
        }
        if bits > 0 {
            let b = acc.to_le_bytes();
            digits.push(u16::from_le_bytes([b[0], b[1]]) & DIGIT_MAX);
        }
        let mut n = BigInt { negative, digits };
        n.normalize();
        Ok(n)
    }

    /// The magnitude regrouped into base 2^30 limbs (least significant first).
    fn limbs30(&self) -> Vec<u64> {
        self.digits
            .chunks(2)
            .map(|c| {
                let lo = u64::from(c[0]);
                let hi = c.get(1).map_or(0, |&d| u64::from(d));
                lo | (hi << DIGIT_BITS)
            })
            .collect()
    }

    fn compare_magnitude(&self, other: &Self) -> Ordering {
        self.digits
            .len()
            .cmp(&other.digits.len())
            .then_with(|| self.digits.iter().rev().cmp(other.digits.iter().rev()))
    }
}

macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for BigInt {
            fn from(v: $t) -> Self {
                BigInt::from_magnitude(v < 0, u128::from(v.unsigned_abs()))
            }
        }
    )*};
}
macro_rules! from_unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for BigInt {
            fn from(v: $t) -> Self {
                BigInt::from_magnitude(false, u128::from(v))
            }
        }
    )*};
}
from_signed!(i8, i16, i32, i64, i128);
from_unsigned!(u8, u16, u32, u64, u128);

impl Ord for BigInt {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.compare_magnitude(other),
            (true, true) => other.compare_magnitude(self),
        }
    }
}

impl PartialOrd for BigInt {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// 10^9: the decimal chunk used by formatting and parsing.
const DEC_CHUNK: u64 = 1_000_000_000;
const LIMB_BITS: u32 = 30;
const LIMB_MASK: u64 = (1 << LIMB_BITS) - 1;

impl fmt::Display for BigInt {
    /// Decimal, with a leading `-` for negative values (like Python's `str(int)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.pad_integral(true, "", "0");
        }
        // Repeated division of the base-2^30 magnitude by 10^9 (remainders < 2^30, so
        // `rem << 30 | limb` stays below 2^60).
        let mut limbs = self.limbs30();
        let mut chunks: Vec<u64> = Vec::new();
        while !limbs.is_empty() {
            let mut rem: u64 = 0;
            for limb in limbs.iter_mut().rev() {
                let cur = (rem << LIMB_BITS) | *limb;
                *limb = cur / DEC_CHUNK;
                rem = cur % DEC_CHUNK;
            }
            chunks.push(rem);
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
        }
        let mut text = String::with_capacity(chunks.len() * 9);
        let mut iter = chunks.iter().rev();
        if let Some(first) = iter.next() {
            text.push_str(&first.to_string());
        }
        for chunk in iter {
            text.push_str(&format!("{chunk:09}"));
        }
        f.pad_integral(!self.negative, "", &text)
    }
}

impl fmt::Debug for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BigInt({self})")
    }
}

impl FromStr for BigInt {
    type Err = ParseBigIntError;

    /// Parses an optional sign followed by one or more ASCII decimal digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseBigIntError);
        }
        // Multiply-accumulate in base 2^30, nine decimal digits at a time.
        let mut limbs: Vec<u64> = Vec::new();
        let bytes = body.as_bytes();
        let first = bytes.len() % 9;
        let mut start = 0;
        let mut end = if first == 0 { 9 } else { first };
        while start < bytes.len() {
            let chunk = &bytes[start..end];
            let mut value: u64 = 0;
            let mut scale: u64 = 1;
            for &b in chunk {
                value = value * 10 + u64::from(b - b'0');
                scale *= 10;
            }
            let mut carry = value;
            for limb in limbs.iter_mut() {
                let cur = *limb * scale + carry;
                *limb = cur & LIMB_MASK;
                carry = cur >> LIMB_BITS;
            }
            while carry != 0 {
                limbs.push(carry & LIMB_MASK);
                carry >>= LIMB_BITS;
            }
            start = end;
            end += 9;
        }
        let mut digits = Vec::with_capacity(limbs.len() * 2);
        for limb in limbs {
            let b = limb.to_le_bytes();
            let lo = u16::from_le_bytes([b[0], b[1]]) & DIGIT_MAX;
            let hb = (limb >> DIGIT_BITS).to_le_bytes();
            let hi = u16::from_le_bytes([hb[0], hb[1]]) & DIGIT_MAX;
            digits.push(lo);
            digits.push(hi);
        }
        let mut n = BigInt { negative, digits };
        n.normalize();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_round_trips() {
        for v in [
            0i128,
            1,
            -1,
            32767,
            32768,
            -32768,
            i128::from(i64::MIN),
            i128::MAX,
            i128::MIN,
        ] {
            let n = BigInt::from(v);
            assert_eq!(n.to_i128(), Some(v));
            assert_eq!(n.to_string(), v.to_string());
            assert_eq!(v.to_string().parse::<BigInt>(), Ok(n));
        }
        assert_eq!(BigInt::from(u128::MAX).to_u128(), Some(u128::MAX));
        assert_eq!(BigInt::from(u128::MAX).to_i128(), None);
        assert_eq!(BigInt::from(-1).to_u64(), None);
        assert_eq!(BigInt::from(1u64 << 63).to_i64(), None);
    }

    #[test]
    fn marshal_digits_layout() {
        // 2**70 = 0x400 * 2**60: five digits, the top one 0x400.
        let n: BigInt = "-1180591620717411303424".parse().unwrap();
        assert_eq!(n.marshal_digits(), &[0, 0, 0, 0, 0x400]);
        assert!(n.is_negative());
        assert_eq!(n.bits(), 71);
        assert_eq!(BigInt::from_marshal_digits(false, &[0x8000]), None);
        assert_eq!(
            BigInt::from_marshal_digits(true, &[0, 0]),
            Some(BigInt::zero())
        );
    }

    #[test]
    fn big_decimal_round_trip() {
        let text = "123456789012345678901234567890123456789012345678901234567890";
        let n: BigInt = text.parse().unwrap();
        assert_eq!(n.to_string(), text);
        assert_eq!(
            format!("-{text}").parse::<BigInt>().map(|n| n.to_string()),
            Ok(format!("-{text}"))
        );
        assert!("".parse::<BigInt>().is_err());
        assert!("-".parse::<BigInt>().is_err());
        assert!("1_0".parse::<BigInt>().is_err());
        assert!(BigInt::from(-5) < BigInt::from(3));
        assert!(BigInt::from(-5) < BigInt::from(-3));
        assert!(n > BigInt::from(u128::MAX));
    }

    #[test]
    fn hex_round_trip() {
        for v in [
            0i128,
            1,
            -1,
            0x7fff,
            0x8000,
            -0x1234_5678_9abc_def0,
            i128::MIN,
            i128::MAX,
        ] {
            let n = BigInt::from(v);
            let expected = if v < 0 {
                format!("-0x{:x}", v.unsigned_abs())
            } else {
                format!("0x{v:x}")
            };
            assert_eq!(n.to_hex(), expected);
            assert_eq!(BigInt::from_hex(&expected), Ok(n));
        }
        let big: BigInt = "340282366920938463463374607431768211456".parse().unwrap(); // 2**128
        assert_eq!(big.to_hex(), format!("0x1{}", "0".repeat(32)));
        assert_eq!(BigInt::from_hex("0X00FF"), Ok(BigInt::from(255)));
        assert!(BigInt::from_hex("ff").is_err());
        assert!(BigInt::from_hex("0x").is_err());
        assert!(BigInt::from_hex("0xg").is_err());
    }
}
