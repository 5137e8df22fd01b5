//! The request head: parsed with httparse under explicit limits, checked against the
//! framing attacks HTTP/1.1 is known for, and turned into the vars block nginx's
//! `uwsgi_params` (and uWSGI's own http-socket) would send.

use uwsgi_protocol::VarsBuilder;

/// Most header lines in one request head.
pub const MAX_HEADERS: usize = 100;

/// Why a request head was refused: the status sent back before the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    /// HTTP status sent to the client.
    pub status: u16,
    /// What was wrong, for the log.
    pub reason: &'static str,
}

const fn reject(status: u16, reason: &'static str) -> Reject {
    Reject { status, reason }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Per-connection facts that go into every request's vars.
#[derive(Debug, Clone)]
pub struct Context {
    /// `SERVER_NAME` (the host name, as uWSGI's http-socket sends).
    pub server_name: String,
    /// `SERVER_ADDR`.
    pub server_addr: String,
    /// `SERVER_PORT`.
    pub server_port: String,
    /// `REMOTE_ADDR`.
    pub remote_addr: String,
    /// `REMOTE_PORT`.
    pub remote_port: String,
}

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    /// Every var but `CONTENT_LENGTH` (which depends on how the body is read).
    pub vars: VarsBuilder,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// A `HEAD` request: the response carries no body.
    pub is_head: bool,
    /// The body's framing.
    pub framing: Framing,
    /// `Expect: 100-continue` was sent (HTTP/1.1 only).
    pub expect_continue: bool,
    /// The client asked to keep the connection open after this exchange.
    pub keep_alive: bool,
    /// Bytes of the head, leading empty lines included.
    pub len: usize,
}

/// Parses the head at the start of `input`, looking at no more than `limit` bytes.
/// `Ok(None)`: more bytes are needed (and may come).
pub fn parse(input: &[u8], limit: usize, context: &Context) -> Result<Option<Head>, Reject> {
    let window = &input[..input.len().min(limit)];
    // The request line (after any empty lines a client may send first) must be
    // printable ASCII: no control bytes, no raw 8-bit bytes in the URI.
    let mut line_start = 0;
    while window[line_start..].starts_with(b"\r\n") {
        line_start += 2;
    }
    let line_end = window[line_start..]
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .map(|end| line_start + end);
    let line = match line_end {
        Some(end) => &window[line_start..end],
        // A line still arriving may end with the CR of its CRLF.
        None => {
            let partial = &window[line_start..];
            partial.strip_suffix(b"\r").unwrap_or(partial)
        }
    };
    if line.iter().any(|b| !(0x20..0x7f).contains(b)) {
        return Err(reject(400, "control or non-ASCII byte in the request line"));
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    // Lines end with CRLF only: a bare LF is refused (httparse would accept it), so no
    // front end can disagree with us about where a header ends.
    let bare_lf = |head: &[u8]| {
        head.first() == Some(&b'\n')
            || head
                .windows(2)
                .any(|pair| pair[1] == b'\n' && pair[0] != b'\r')
    };
    let len = match request.parse(window) {
        Ok(httparse::Status::Complete(len)) => {
            if bare_lf(&window[..len]) {
                return Err(reject(400, "bare LF line ending"));
            }
            len
        }
        Ok(httparse::Status::Partial) => {
            if bare_lf(window) {
                return Err(reject(400, "bare LF line ending"));
            }
            if window.len() < limit {
                return Ok(None);
            }
            return Err(match line_end {
                None => reject(414, "request line longer than --buffer-size"),
                Some(_) => reject(431, "request head longer than --buffer-size"),
            });
        }
        Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many header lines")),
        Err(httparse::Error::Version) => return Err(reject(505, "unsupported HTTP version")),
        Err(_) => return Err(reject(400, "malformed request head")),
    };
    let (Some(method), Some(uri), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(reject(400, "malformed request line"));
    };
    build(method, uri, minor, request.headers, len, context).map(Some)
}

/// The request's headers, after the special ones are taken out.
#[derive(Default)]
struct Fields<'b> {
    content_length: Option<u64>,
    codings: Vec<&'b [u8]>,
    transfer_encoding: bool,
    hosts: usize,
    close: bool,
    keep_alive: bool,
    expect: Option<&'b [u8]>,
    /// (var name, joined value), in order of first appearance.
    vars: Vec<(Vec<u8>, Vec<u8>)>,
}

fn build(
    method: &str,
    uri: &str,
    minor: u8,
    headers: &[httparse::Header<'_>],
    len: usize,
    context: &Context,
) -> Result<Head, Reject> {
    let fields = fields(headers)?;
    if minor >= 1 && fields.hosts == 0 {
        return Err(reject(400, "HTTP/1.1 request without Host"));
    }
    let framing = match (fields.content_length, fields.transfer_encoding) {
        (Some(_), true) => {
            return Err(reject(400, "both Content-Length and Transfer-Encoding"));
        }
        (_, true) if minor == 0 => {
            return Err(reject(400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        (_, true) => match fields.codings.as_slice() {
            [only] if only.eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
            [.., last] if last.eq_ignore_ascii_case(b"chunked") => {
                return Err(reject(501, "transfer coding other than chunked"));
            }
            _ => return Err(reject(400, "Transfer-Encoding does not end with chunked")),
        },
        (None, false) => Framing::None,
        (Some(n), false) => Framing::Length(n),
    };
    let expect_continue = match fields.expect {
        // HTTP/1.0 servers must ignore Expect.
        Some(_) if minor == 0 => false,
        Some(value) if value.eq_ignore_ascii_case(b"100-continue") => true,
        Some(_) => return Err(reject(417, "unsupported expectation")),
        None => false,
    };
    let (path, query) = split_target(method, uri)?;
    let path_info = decode_path(path)?;

    let mut vars = VarsBuilder::with_capacity(len + 256);
    let too_big = |_| reject(431, "request vars do not fit a uwsgi packet");
    let protocol: &[u8] = if minor == 0 { b"HTTP/1.0" } else { b"HTTP/1.1" };
    vars.push("REQUEST_METHOD", method).map_err(too_big)?;
    vars.push("REQUEST_URI", uri).map_err(too_big)?;
    vars.push("PATH_INFO", &path_info).map_err(too_big)?;
    vars.push("QUERY_STRING", query).map_err(too_big)?;
    vars.push("SERVER_PROTOCOL", protocol).map_err(too_big)?;
    vars.push("REQUEST_SCHEME", "http").map_err(too_big)?;
    vars.push("SCRIPT_NAME", "").map_err(too_big)?;
    vars.push("SERVER_NAME", &context.server_name)
        .map_err(too_big)?;
    vars.push("SERVER_ADDR", &context.server_addr)
        .map_err(too_big)?;
    vars.push("SERVER_PORT", &context.server_port)
        .map_err(too_big)?;
    vars.push("REMOTE_ADDR", &context.remote_addr)
        .map_err(too_big)?;
    vars.push("REMOTE_PORT", &context.remote_port)
        .map_err(too_big)?;
    for (name, value) in &fields.vars {
        vars.push(name, value).map_err(too_big)?;
    }
    let keep_alive = if minor == 0 {
        fields.keep_alive && !fields.close
    } else {
        !fields.close
    };
    Ok(Head {
        vars,
        minor,
        is_head: method == "HEAD",
        framing,
        expect_continue,
        keep_alive,
        len,
    })
}

fn fields<'b>(headers: &[httparse::Header<'b>]) -> Result<Fields<'b>, Reject> {
    let mut fields = Fields::default();
    for header in headers {
        let name = header.name.as_bytes();
        let value = trim(header.value);
        // nginx drops header names with underscores by default: `X_Real_IP` would
        // otherwise arrive as the same var as `X-Real-IP` and let a client forge it.
        if name.contains(&b'_') {
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = parse_content_length(value)?;
            if fields.content_length.is_some_and(|old| old != length) {
                return Err(reject(400, "differing Content-Length values"));
            }
            fields.content_length = Some(length);
            continue;
        }
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            fields.transfer_encoding = true;
            for coding in value.split(|b| *b == b',').map(trim) {
                fields.codings.push(coding);
            }
            continue;
        }
        if name.eq_ignore_ascii_case(b"host") {
            fields.hosts += 1;
            if fields.hosts > 1 {
                return Err(reject(400, "more than one Host"));
            }
            if !value.iter().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
            }) {
                return Err(reject(400, "invalid Host"));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|b| *b == b',').map(trim) {
                fields.close |= token.eq_ignore_ascii_case(b"close");
                fields.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            if fields.expect.is_some() {
                return Err(reject(400, "more than one Expect"));
            }
            fields.expect = Some(value);
        }
        let var = if name.eq_ignore_ascii_case(b"content-type") {
            b"CONTENT_TYPE".to_vec()
        } else {
            let mut var = Vec::with_capacity(name.len() + 5);
            var.extend_from_slice(b"HTTP_");
            var.extend(name.iter().map(|b| match b {
                b'-' => b'_',
                other => other.to_ascii_uppercase(),
            }));
            var
        };
        match fields.vars.iter_mut().find(|(known, _)| *known == var) {
            // Repeated headers are joined, as uWSGI does; cookies with "; " (the one
            // separator cookie parsers understand), everything else with ", ".
            Some((_, joined)) => {
                joined.extend_from_slice(if var == b"HTTP_COOKIE" { b"; " } else { b", " });
                joined.extend_from_slice(value);
            }
            None => fields.vars.push((var, value.to_vec())),
        }
    }
    Ok(fields)
}

/// `Content-Length`: decimal digits only; a list of identical values counts as one.
fn parse_content_length(value: &[u8]) -> Result<u64, Reject> {
    let mut length = None;
    for item in value.split(|b| *b == b',').map(trim) {
        if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
            return Err(reject(400, "invalid Content-Length"));
        }
        let n = item.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if length.is_some_and(|old| old != n) {
            return Err(reject(400, "differing Content-Length values"));
        }
        length = Some(n);
    }
    length.ok_or(reject(400, "invalid Content-Length"))
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &value[start..end.max(start)]
}

/// The path and query of the request target: origin form `/p?q`, absolute form
/// `http://host/p?q`, or `*` for `OPTIONS`.
fn split_target<'u>(method: &str, uri: &'u str) -> Result<(&'u str, &'u str), Reject> {
    let mut target = uri;
    if target == "*" {
        if method == "OPTIONS" {
            return Ok(("*", ""));
        }
        return Err(reject(400, "asterisk target outside OPTIONS"));
    }
    for scheme in ["http://", "https://"] {
        if target
            .get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
        {
            let rest = &target[scheme.len()..];
            target = rest.find(['/', '?']).map_or("/", |i| &rest[i..]);
            break;
        }
    }
    if !target.starts_with('/') {
        // `?q` right after an absolute-form authority: the path is `/`.
        if let Some(query) = target.strip_prefix('?') {
            return Ok(("/", query));
        }
        return Err(reject(400, "request target is not a path"));
    }
    Ok(match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    })
}

/// `PATH_INFO` as nginx's `$document_uri`: percent-decoded, then `.` and `..` segments
/// resolved. Invalid escapes, an encoded NUL and `..` above the root are refused.
fn decode_path(path: &str) -> Result<Vec<u8>, Reject> {
    if path == "*" {
        return Ok(b"*".to_vec());
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                return Err(reject(400, "invalid percent-encoding in the path"));
            };
            let byte = u8::try_from(hi * 16 + lo).unwrap_or(0);
            if byte == 0 {
                return Err(reject(400, "encoded NUL in the path"));
            }
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    remove_dot_segments(&decoded)
}

fn remove_dot_segments(path: &[u8]) -> Result<Vec<u8>, Reject> {
    if !path.split(|b| *b == b'/').any(|s| s == b"." || s == b"..") {
        return Ok(path.to_vec());
    }
    let mut out: Vec<&[u8]> = Vec::new();
    let segments: Vec<&[u8]> = path.split(|b| *b == b'/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (index, segment) in segments.into_iter().enumerate() {
        match segment {
            b"." => trailing_slash = index == last,
            b".." => {
                if out.pop().is_none() {
                    return Err(reject(400, "path climbs above the root"));
                }
                trailing_slash = index == last;
            }
            other => {
                out.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut result = Vec::with_capacity(path.len());
    for segment in &out {
        result.push(b'/');
        result.extend_from_slice(segment);
    }
    if trailing_slash || result.is_empty() {
        result.push(b'/');
    }
    Ok(result)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context {
            server_name: "box".into(),
            server_addr: "127.0.0.1".into(),
            server_port: "8080".into(),
            remote_addr: "127.0.0.2".into(),
            remote_port: "5555".into(),
        }
    }

    fn ok(text: &[u8]) -> Head {
        parse(text, 4096, &context()).unwrap().unwrap()
    }

    fn var(head: &Head, key: &str) -> Option<String> {
        head.vars
            .as_vars()
            .get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn vars_of_a_simple_get() {
        let head = ok(b"GET /a%20b/./c/../d?x=1&y=%20 HTTP/1.1\r\nHost: h:1\r\nX-A: 1\r\nx-a: 2\r\nCookie: a=1\r\nCookie: b=2\r\nContent-Type: text/x\r\n\r\n");
        assert_eq!(var(&head, "REQUEST_METHOD").unwrap(), "GET");
        assert_eq!(
            var(&head, "REQUEST_URI").unwrap(),
            "/a%20b/./c/../d?x=1&y=%20"
        );
        assert_eq!(var(&head, "PATH_INFO").unwrap(), "/a b/d");
        assert_eq!(var(&head, "QUERY_STRING").unwrap(), "x=1&y=%20");
        assert_eq!(var(&head, "SERVER_PROTOCOL").unwrap(), "HTTP/1.1");
        assert_eq!(var(&head, "HTTP_HOST").unwrap(), "h:1");
        assert_eq!(var(&head, "HTTP_X_A").unwrap(), "1, 2");
        assert_eq!(var(&head, "HTTP_COOKIE").unwrap(), "a=1; b=2");
        assert_eq!(var(&head, "CONTENT_TYPE").unwrap(), "text/x");
        assert_eq!(var(&head, "HTTP_CONTENT_TYPE"), None);
        assert_eq!(var(&head, "REMOTE_PORT").unwrap(), "5555");
        assert_eq!(head.framing, Framing::None);
        assert!(head.keep_alive);
    }

    #[test]
    fn partial_and_limits() {
        assert!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\n", 4096, &context())
                .unwrap()
                .is_none()
        );
        // Bytes after the head (a body with bare LFs) are not the head's business.
        let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na\nb");
        assert_eq!(head.framing, Framing::Length(3));
        assert_eq!(head.len, 47);
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert_eq!(
            parse(long.as_bytes(), 50, &context()).unwrap_err().status,
            414
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(100));
        assert_eq!(
            parse(big.as_bytes(), 60, &context()).unwrap_err().status,
            431
        );
    }

    #[test]
    fn framing_rules() {
        let status = |t: &[u8]| parse(t, 4096, &context()).map(|h| h.unwrap().framing);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            status(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n"
            ),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(Framing::Chunked)
        );
        for (text, code) in [
            (&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..], 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", 400),
            (b"GET / HTTP/1.1\nHost: a\n\n", 400),
            (b"GET /../x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ] {
            assert_eq!(
                parse(text, 4096, &context()).unwrap_err().status,
                code,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse(&bytes, 512, &context());
        }

        #[test]
        fn every_prefix_of_a_valid_head_needs_more(
            path in "/[a-z0-9%/._-]{0,40}",
            value in "[ -~]{0,40}",
        ) {
            let text = format!("GET {path} HTTP/1.1\r\nHost: h\r\nX-V: {value}\r\n\r\n");
            let full = parse(text.as_bytes(), 4096, &context());
            for end in 0..text.len() {
                match parse(&text.as_bytes()[..end], 4096, &context()) {
                    Ok(None) => {}
                    Ok(Some(_)) => proptest::prop_assert!(false, "complete at {}", end),
                    // A prefix may only fail the way the whole head fails.
                    Err(e) => proptest::prop_assert_eq!(Some(e), full.as_ref().err().copied()),
                }
            }
        }
    }

    #[test]
    fn underscored_headers_are_dropped_and_targets_split() {
        let head =
            ok(b"GET http://example.com/p?q=1 HTTP/1.1\r\nHost: a\r\nX_Real_IP: 1.2.3.4\r\n\r\n");
        assert_eq!(var(&head, "HTTP_X_REAL_IP"), None);
        assert_eq!(var(&head, "PATH_INFO").unwrap(), "/p");
        assert_eq!(var(&head, "QUERY_STRING").unwrap(), "q=1");
        let head = ok(b"OPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(var(&head, "PATH_INFO").unwrap(), "*");
        assert!(head.keep_alive);
        let head = ok(b"GET /a/. HTTP/1.0\r\n\r\n");
        assert_eq!(var(&head, "PATH_INFO").unwrap(), "/a/");
        assert!(!head.keep_alive);
    }
}
