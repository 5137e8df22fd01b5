//! Decimal numbers carried inside vars.

/// `CONTENT_LENGTH` as uWSGI reads it: the leading run of ASCII digits, stopping at the
/// first other byte; an empty or non-numeric value is 0. Where uWSGI would overflow
/// silently, this saturates at `u64::MAX`, which every body limit then rejects.
pub fn content_length(value: &[u8]) -> u64 {
    let mut total: u64 = 0;
    for &byte in value.iter().take_while(|b| b.is_ascii_digit()) {
        total = total
            .saturating_mul(10)
            .saturating_add(u64::from(byte - b'0'));
    }
    total
}

/// A strict unsigned decimal: one or more ASCII digits and nothing else, no overflow.
pub fn strict_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Formats `n` as ASCII decimal into a stack buffer, returning the used part.
pub(crate) fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        // n % 10 < 10, so the narrowing cannot lose anything.
        buf[i] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_follows_uwsgi() {
        let cases: &[(&[u8], u64)] = &[
            (b"", 0),
            (b"0", 0),
            (b"11", 11),
            (b"12abc", 12),
            (b" 12", 0),
            (b"-5", 0),
            (b"+5", 0),
            (b"abc", 0),
            (b"007", 7),
            (b"99999999999999999999999", u64::MAX),
        ];
        for &(input, want) in cases {
            assert_eq!(
                content_length(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn strict_decimal_rejects_junk() {
        assert_eq!(strict_decimal(b"100"), Some(100));
        assert_eq!(strict_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(strict_decimal(b"18446744073709551616"), None);
        assert_eq!(strict_decimal(b""), None);
        assert_eq!(strict_decimal(b"1a"), None);
        assert_eq!(strict_decimal(b"-1"), None);
    }

    #[test]
    fn decimal_formats() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(70000, &mut buf), b"70000");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }
}
