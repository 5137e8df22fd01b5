//! `uwsgi.parsefile(filename)`: the vars of a file holding one uwsgi packet.
//!
//! Such files are spool files (`11 LLLL 00 | vars | body`, written by `uwsgi.spool`) and
//! saved requests (modifier1 0). uWSGI answers `None` for *every* failure: a file that
//! cannot be opened or read, one shorter than its header announces, another modifier1, or a
//! malformed vars block. The reason only goes to uWSGI's log; here it goes to the Python
//! logger `uwsgi` at DEBUG level.
//!
//! The work is [`read_packet_file`] (I/O) and [`packet_vars`] (pure, on the codec); the
//! Python function releases the GIL around them and only builds the dict.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use uwsgi_protocol::{DecodeError, Header, Limits, Modifier1, Packet, Vars};

/// Key/value pairs in file order, duplicates included.
pub type OwnedVars = Vec<(Vec<u8>, Vec<u8>)>;

/// Why a file has no vars to give.
#[derive(Debug, thiserror::Error)]
pub enum ParseFileError {
    /// The file could not be opened or read.
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
    /// The file ends before the header, or before the block the header announces.
    #[error("the file ends {needed} byte(s) before the packet does")]
    Truncated {
        /// Bytes missing, at least.
        needed: usize,
    },
    /// A packet, but not a request (modifier1 0) nor a spool job (modifier1 17).
    #[error("modifier1 {0} is neither a request (0) nor a spool job (17)")]
    Modifier(Modifier1),
    /// The vars block is malformed.
    #[error("{0}")]
    Invalid(DecodeError),
}

impl From<DecodeError> for ParseFileError {
    fn from(err: DecodeError) -> Self {
        match err {
            DecodeError::Incomplete { needed } => ParseFileError::Truncated { needed },
            invalid => ParseFileError::Invalid(invalid),
        }
    }
}

/// The limits of uWSGI's `parsefile`: a block up to 65535 bytes with any number of vars
/// (it does not apply `--buffer-size` or `--max-vars` to files), any `CONTENT_LENGTH`.
const FILE_LIMITS: Limits = Limits::PERMISSIVE;

/// The vars of the packet at the start of `bytes`, when its modifier1 is 0 or 17.
///
/// Bytes after the block (a spool file's body, a request body) are ignored. The vars are
/// checked by the codec's strict parser (spec §3.1).
pub fn packet_vars(bytes: &[u8]) -> Result<Vars<'_>, ParseFileError> {
    let header = Header::parse(bytes)?;
    if !matches!(header.modifier1, Modifier1::Wsgi | Modifier1::Spooler) {
        return Err(ParseFileError::Modifier(header.modifier1));
    }
    let decoded = Packet::decode(bytes, &FILE_LIMITS)?;
    match decoded.packet.vars() {
        Some(vars) => Ok(vars),
        // Modifier1 0 decodes as a request and 17 as a spool job, both with vars.
        None => Err(ParseFileError::Modifier(header.modifier1)),
    }
}

/// Reads the header and the block it announces (never the body), then [`packet_vars`].
pub fn read_packet_file(path: &Path) -> Result<OwnedVars, ParseFileError> {
    let mut file = File::open(path)?;
    let mut packet = Vec::with_capacity(Header::LEN);
    read_up_to(&mut file, Header::LEN, &mut packet)?;
    let header = Header::parse(&packet)?;
    read_up_to(&mut file, usize::from(header.datasize), &mut packet)?;
    let vars = packet_vars(&packet)?;
    Ok(vars
        .iter()
        .map(|(key, value)| (key.to_vec(), value.to_vec()))
        .collect())
}

/// Appends up to `len` bytes to `buf`, fewer only at end of file.
fn read_up_to(file: &mut File, len: usize, buf: &mut Vec<u8>) -> io::Result<()> {
    // usize -> u64 cannot truncate on any supported target (at most 64-bit pointers).
    let limit = u64::try_from(len).unwrap_or(u64::MAX);
    file.take(limit).read_to_end(buf)?;
    Ok(())
}

/// `parsefile(filename, /)`: a dict of the vars (bytes keys and values; a repeated key
/// keeps its last value) of the uwsgi request or spool packet in `filename`, or `None`
/// when the file cannot be read or holds no such packet.
///
/// `filename` is a `str`, `bytes` or `os.PathLike` (uWSGI takes `str` only).
#[pyfunction]
#[pyo3(signature = (filename, /))]
pub fn parsefile<'py>(
    py: Python<'py>,
    filename: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let path = fs_path(filename)?;
    match py.detach(|| read_packet_file(&path)) {
        Ok(pairs) => {
            let dict = PyDict::new(py);
            for (key, value) in pairs {
                dict.set_item(PyBytes::new(py, &key), PyBytes::new(py, &value))?;
            }
            Ok(Some(dict))
        }
        Err(why) => {
            // Where uWSGI writes its log line: the `uwsgi` logger, at DEBUG level.
            let logger = py
                .import("logging")?
                .call_method1("getLogger", ("uwsgi",))?;
            logger.call_method1("debug", ("parsefile(%r): %s", filename, why.to_string()))?;
            Ok(None)
        }
    }
}

/// A file name from `str`, `bytes` or `os.PathLike`, through `os.fspath` (which raises
/// `TypeError` for anything else). A NUL character raises `ValueError`, as in `open()`.
fn fs_path(filename: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let fspath = filename
        .py()
        .import("os")?
        .call_method1("fspath", (filename,))?;
    let path = match fspath.cast::<PyBytes>() {
        Ok(bytes) => PathBuf::from(OsString::from_vec(bytes.as_bytes().to_vec())),
        Err(_) => fspath.extract::<PathBuf>()?,
    };
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(PyValueError::new_err("embedded null character"));
    }
    Ok(path)
}

/// Adds `parsefile` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parsefile, m)?)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use pyo3::types::PyString;
    use uwsgi_protocol::{InvalidPacket, VarsBuilder};

    use super::*;
    use crate::test_support::{hex, with_python};

    fn packet(modifier1: u8, block: &[u8], modifier2: u8) -> Vec<u8> {
        let datasize = u16::try_from(block.len()).unwrap();
        let mut out = Header::new(modifier1, datasize, modifier2)
            .to_bytes()
            .to_vec();
        out.extend_from_slice(block);
        out
    }

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file.flush().unwrap();
        file
    }

    fn pairs(vars: Vars<'_>) -> Vec<(&[u8], &[u8])> {
        vars.iter().collect()
    }

    #[test]
    fn spool_file_from_the_spec() {
        // uWSGI 1.4 wrote {'x': '1'} as this file (spec §7.5).
        let bytes = hex("11 0600 00 0100 78 0100 31");
        assert_eq!(
            pairs(packet_vars(&bytes).unwrap()),
            [(&b"x"[..], &b"1"[..])]
        );
    }

    #[test]
    fn spool_file_body_and_modifier2_are_ignored() {
        let block = VarsBuilder::from_pairs([("a", "1"), ("b", "")])
            .unwrap()
            .into_block();
        let mut bytes = packet(17, &block, 9);
        bytes.extend_from_slice(b"the body, not vars");
        let vars = packet_vars(&bytes).unwrap();
        assert_eq!(pairs(vars), [(&b"a"[..], &b"1"[..]), (&b"b"[..], &b""[..])]);
    }

    #[test]
    fn request_file_keeps_duplicates_in_order() {
        let block = VarsBuilder::from_pairs([
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", "99999999999"),
            ("HTTP_X", "1"),
            ("HTTP_X", "2"),
        ])
        .unwrap()
        .into_block();
        let bytes = packet(0, &block, 0);
        let vars = packet_vars(&bytes).unwrap();
        assert_eq!(vars.len(), 4);
        assert_eq!(vars.get("HTTP_X"), Some(&b"2"[..]));
    }

    #[test]
    fn empty_packets_have_no_vars() {
        assert!(packet_vars(&hex("00 0000 00")).unwrap().is_empty());
        assert!(packet_vars(&hex("11 0000 00")).unwrap().is_empty());
    }

    #[test]
    fn large_blocks_and_many_vars_are_accepted() {
        // More than --buffer-size (4096) bytes and more than 128 pairs: uWSGI's parsefile
        // applies neither limit.
        let mut builder = VarsBuilder::new();
        for i in 0..300 {
            builder.push(format!("key{i}"), [b'v'; 20]).unwrap();
        }
        let block = builder.into_block();
        assert!(block.len() > 4096);
        assert_eq!(packet_vars(&packet(17, &block, 0)).unwrap().len(), 300);
    }

    #[test]
    fn other_modifiers_are_refused() {
        for modifier1 in [1, 5, 10, 16, 18, 100, 111, 173, 255] {
            let bytes = packet(modifier1, &hex("0100 78 0100 31"), 0);
            assert!(
                matches!(
                    packet_vars(&bytes),
                    Err(ParseFileError::Modifier(m)) if m.value() == modifier1
                ),
                "modifier1 {modifier1}"
            );
        }
    }

    #[test]
    fn short_input_is_truncated() {
        assert!(matches!(
            packet_vars(&hex("11 06")),
            Err(ParseFileError::Truncated { needed: 2 })
        ));
        assert!(matches!(
            packet_vars(&hex("11 0600 00 0100 78")),
            Err(ParseFileError::Truncated { needed: 3 })
        ));
        assert!(matches!(
            packet_vars(&[]),
            Err(ParseFileError::Truncated { needed: 4 })
        ));
    }

    #[test]
    fn malformed_vars_are_invalid() {
        let cases: &[(&str, InvalidPacket)] = &[
            ("0000 0100 31", InvalidPacket::EmptyKey { offset: 4 }),
            (
                "0100 78 0100 31 01",
                InvalidPacket::TrailingBytes { offset: 10, len: 1 },
            ),
            (
                "0500 6162 63",
                InvalidPacket::KeyPastEnd {
                    offset: 6,
                    len: 5,
                    end: 9,
                },
            ),
            (
                // uWSGI's parsefile skips the length of a key that runs to the block end
                // and reads on from there, finding {"x": ""} here; the codec refuses.
                "0500 0100 78 0000",
                InvalidPacket::KeyPastEnd {
                    offset: 6,
                    len: 5,
                    end: 11,
                },
            ),
            (
                "0100 78 0500 31",
                InvalidPacket::ValuePastEnd {
                    offset: 9,
                    len: 5,
                    end: 10,
                },
            ),
        ];
        for (block, cause) in cases {
            let bytes = packet(17, &hex(block), 0);
            match packet_vars(&bytes) {
                Err(ParseFileError::Invalid(DecodeError::Invalid(got))) => {
                    assert_eq!(&got, cause, "{block}");
                }
                other => panic!("{block}: {other:?}"),
            }
        }
    }

    #[test]
    fn reads_only_the_announced_block() {
        let mut bytes = hex("11 0600 00 0100 78 0100 31");
        bytes.extend(std::iter::repeat_n(0xff, 100_000));
        let file = file_with(&bytes);
        assert_eq!(
            read_packet_file(file.path()).unwrap(),
            [(b"x".to_vec(), b"1".to_vec())]
        );
    }

    #[test]
    fn file_failures() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        match read_packet_file(&missing) {
            Err(ParseFileError::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_packet_file(dir.path()),
            Err(ParseFileError::Io(_))
        ));
        let short = file_with(&hex("11 0600 00 0100"));
        assert!(matches!(
            read_packet_file(short.path()),
            Err(ParseFileError::Truncated { needed: 4 })
        ));
        let garbage = file_with(b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(
            read_packet_file(garbage.path()),
            Err(ParseFileError::Modifier(Modifier1::Other(b'G')))
        ));
    }

    #[test]
    fn python_function_builds_a_bytes_dict() {
        with_python(|py| {
            let block = VarsBuilder::from_pairs([("k", "old"), ("z", "26"), ("k", "new")])
                .unwrap()
                .into_block();
            let file = file_with(&packet(0, &block, 0));
            let name = file.path().to_str().unwrap();
            let dict = parsefile(py, &PyString::new(py, name))?.expect("a dict");
            assert_eq!(dict.len(), 2);
            let keys: Vec<Vec<u8>> = dict
                .keys()
                .iter()
                .map(|k| k.cast_into::<PyBytes>().map(|b| b.as_bytes().to_vec()))
                .collect::<Result<_, _>>()?;
            assert_eq!(keys, [b"k".to_vec(), b"z".to_vec()]);
            let value = dict.get_item(PyBytes::new(py, b"k"))?.expect("k");
            assert_eq!(value.cast::<PyBytes>()?.as_bytes(), b"new");
            // bytes and os.PathLike name the same file.
            let by_bytes = parsefile(py, &PyBytes::new(py, name.as_bytes()))?;
            assert!(by_bytes.expect("a dict").eq(&dict)?);
            let pathlib = py.import("pathlib")?.getattr("Path")?.call1((name,))?;
            assert!(parsefile(py, &pathlib)?.expect("a dict").eq(&dict)?);
            Ok(())
        });
    }

    #[test]
    fn python_function_failures() {
        with_python(|py| {
            let garbage = file_with(b"not a packet");
            let name = PyString::new(py, garbage.path().to_str().unwrap());
            assert!(parsefile(py, &name)?.is_none());
            assert!(parsefile(py, &PyString::new(py, "/nonexistent/spool"))?.is_none());

            let err = parsefile(py, &PyString::new(py, "a\0b")).unwrap_err();
            assert!(err.is_instance_of::<PyValueError>(py));
            let err = parsefile(py, 3_i32.into_pyobject(py)?.as_any()).unwrap_err();
            assert!(err.is_instance_of::<pyo3::exceptions::PyTypeError>(py));
            Ok(())
        });
    }
}
