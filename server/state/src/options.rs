//! Parsing of uWSGI's option value syntaxes shared by several structures: the
//! `key=value,key=value` lists of `--cache2` and `--sharedarea`, and plain numbers.
//!
//! uWSGI splits a key/value list on unescaped `,`, then each item at its first unescaped
//! `=`; a backslash makes the next character literal (so `\,` and `\=` can appear inside a
//! value). Items without `=` are ignored, as uWSGI ignores them. When a key repeats, the
//! last occurrence wins (uWSGI overwrites the pointer it fills).

use std::num::IntErrorKind;

/// One `key=value` item of a uWSGI key/value option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, with escapes resolved.
    pub key: String,
    /// The value, with escapes resolved.
    pub value: String,
}

/// Splits `input` into its `key=value` items, in order, duplicates kept.
pub fn parse_kvlist(input: &str) -> Vec<KeyValue> {
    split_unescaped(input, ',')
        .into_iter()
        .filter_map(|item| {
            // The list split keeps the backslashes, so this split can still tell an
            // escaped `=` from the separator; escapes are resolved last.
            let mut parts = split_unescaped_once(&item, '=');
            let value = parts.pop()?;
            let key = parts.pop()?;
            Some(KeyValue {
                key: unescape(&key),
                value: unescape(&value),
            })
        })
        .collect()
}

/// Splits on `separator` where it is not preceded by a backslash. The pieces keep their
/// backslashes so a second, finer split can still tell escaped characters apart.
fn split_unescaped(input: &str, separator: char) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            pieces.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Splits at the first unescaped `separator`: `[key, value]`, or `[]` when there is none.
fn split_unescaped_once(input: &str, separator: char) -> Vec<String> {
    let mut escaped = false;
    for (index, c) in input.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            let (key, rest) = input.split_at(index);
            let value = rest.get(separator.len_utf8()..).unwrap_or_default();
            return vec![key.to_owned(), value.to_owned()];
        }
    }
    Vec::new()
}

/// Resolves backslash escapes: `\x` becomes `x`; a trailing lone backslash is dropped.
fn unescape(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// Why a number in an option value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Not a decimal number (uWSGI's `strtoull` would silently read a prefix or 0).
    #[error("{option}: {value:?} is not a decimal number")]
    NotANumber {
        /// The option or key being parsed.
        option: String,
        /// The offending text.
        value: String,
    },
    /// Does not fit the field.
    #[error("{option}: {value:?} is out of range")]
    OutOfRange {
        /// The option or key being parsed.
        option: String,
        /// The offending text.
        value: String,
    },
}

/// A decimal unsigned number, surrounding blanks allowed.
pub fn parse_u64(option: &str, value: &str) -> Result<u64, NumberError> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|err| number_error(option, value, err.kind()))
}

/// A decimal signed number, surrounding blanks allowed.
pub fn parse_i64(option: &str, value: &str) -> Result<i64, NumberError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|err| number_error(option, value, err.kind()))
}

fn number_error(option: &str, value: &str, kind: &IntErrorKind) -> NumberError {
    let (option, value) = (option.to_owned(), value.to_owned());
    match kind {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
            NumberError::OutOfRange { option, value }
        }
        _ => NumberError::NotANumber { option, value },
    }
}

/// uWSGI's boolean keys (`bitmap`, `purge_lru`, …) are switched on by their mere
/// presence, whatever the value. We follow that, except that the usual spellings of
/// "off" switch them off: a config saying `bitmap=0` surely does not want a bitmap.
pub fn parse_flag(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "0" | "false" | "no" | "off"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(input: &str) -> Vec<(String, String)> {
        parse_kvlist(input)
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect()
    }

    #[test]
    fn kvlist_splits_items_and_pairs() {
        assert_eq!(
            pairs("name=foo,items=100,blocksize=4096"),
            vec![
                ("name".into(), "foo".into()),
                ("items".into(), "100".into()),
                ("blocksize".into(), "4096".into()),
            ]
        );
    }

    #[test]
    fn kvlist_ignores_items_without_equals_and_empty_items() {
        assert_eq!(pairs("bitmap,,name=x,"), vec![("name".into(), "x".into())]);
    }

    #[test]
    fn kvlist_value_keeps_later_equals_signs() {
        assert_eq!(pairs("store=/a=b"), vec![("store".into(), "/a=b".into())]);
    }

    #[test]
    fn kvlist_backslash_escapes_separators() {
        assert_eq!(
            pairs(r"nodes=a\,b,name=x\=y"),
            vec![
                ("nodes".into(), "a,b".into()),
                ("name".into(), "x=y".into())
            ]
        );
        assert_eq!(pairs(r"k\=ey=v"), vec![("k=ey".into(), "v".into())]);
    }

    #[test]
    fn kvlist_of_empty_string_is_empty() {
        assert!(pairs("").is_empty());
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(parse_u64("items", " 100 "), Ok(100));
        assert!(matches!(
            parse_u64("items", "10x"),
            Err(NumberError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_u64("items", "-1"),
            Err(NumberError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_u64("items", "99999999999999999999"),
            Err(NumberError::OutOfRange { .. })
        ));
        assert_eq!(parse_i64("math_initial", "-5"), Ok(-5));
    }

    #[test]
    fn flags_are_on_unless_spelled_off() {
        assert!(parse_flag(""));
        assert!(parse_flag("1"));
        assert!(parse_flag("yes"));
        assert!(!parse_flag("0"));
        assert!(!parse_flag("False"));
        assert!(!parse_flag("off"));
    }
}
