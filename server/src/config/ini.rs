//! uWSGI's ini format: `[section]` headers, `key = value` lines, `;` and `#` comments,
//! repeated keys kept in order. Values are expanded later, by [`super::expand`], once
//! every source is known, because `%(name)` may refer to an option set anywhere.

use std::path::Path;

use super::ConfigError;

/// The `key = value` pairs of one section, in file order, with their line numbers.
pub(super) fn section_pairs(
    text: &str,
    path: &Path,
    section: &str,
) -> Result<Vec<(String, String, usize)>, ConfigError> {
    let mut current: Option<&str> = None;
    let mut found = false;
    let mut pairs = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let Some(name) = name.strip_suffix(']') else {
                return Err(ConfigError::Syntax {
                    file: path.to_path_buf(),
                    line: line_no,
                    reason: "a section header must end with ']'".into(),
                });
            };
            current = Some(name.trim());
            found |= current == Some(section);
            continue;
        }
        if current != Some(section) {
            continue;
        }
        // uWSGI accepts a bare key as a boolean switch (`master` alone means true).
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key.trim(), value.trim()),
            None => (line, "true"),
        };
        if key.is_empty() {
            return Err(ConfigError::Syntax {
                file: path.to_path_buf(),
                line: line_no,
                reason: "a line has '=' but no option name before it".into(),
            });
        }
        pairs.push((key.to_owned(), unquote(value).to_owned(), line_no));
    }
    if !found {
        return Err(ConfigError::MissingSection {
            file: path.to_path_buf(),
            section: section.to_owned(),
        });
    }
    Ok(pairs)
}

/// `"value"` and `'value'` lose their quotes, as uWSGI's ini reader does.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_section_with_repeats_comments_and_bare_switches() {
        let text = "\
; comment
[other]
socket = :1
[uwsgi]
socket = 127.0.0.1:3031
# another comment
socket = /tmp/app.sock
master
processes = \"4\"
";
        let pairs = section_pairs(text, Path::new("app.ini"), "uwsgi").unwrap();
        let simple: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v, _)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            simple,
            [
                ("socket", "127.0.0.1:3031"),
                ("socket", "/tmp/app.sock"),
                ("master", "true"),
                ("processes", "4"),
            ]
        );
        assert_eq!(pairs[0].2, 5);
    }

    #[test]
    fn a_missing_section_is_an_error() {
        let err = section_pairs("[a]\nx=1\n", Path::new("f.ini"), "uwsgi").unwrap_err();
        assert!(err.to_string().contains("[uwsgi]"), "{err}");
    }

    #[test]
    fn an_unclosed_header_names_its_line() {
        let err = section_pairs("[uwsgi\n", Path::new("f.ini"), "uwsgi").unwrap_err();
        assert!(err.to_string().contains("f.ini:1"), "{err}");
    }
}
