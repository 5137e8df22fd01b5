//! Splitting the raw HTTP response an application request gets back.

/// An HTTP response as uWSGI writes it for modifier1 0: a status line, `Name: value`
/// header lines, an empty line, then the body (no chunked or length framing: the body
/// runs to the end of the connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse<'a> {
    /// `HTTP/1.0`, `HTTP/1.1`, … (uWSGI copies the request's `SERVER_PROTOCOL`).
    pub version: &'a str,
    /// The status code.
    pub status: u16,
    /// The reason phrase (may be empty).
    pub reason: &'a str,
    /// The header lines in order, values without leading whitespace.
    pub headers: Vec<(&'a str, &'a str)>,
    /// Everything after the empty line.
    pub body: &'a [u8],
}

impl<'a> HttpResponse<'a> {
    /// Splits `bytes`, or `None` when they do not start with an `HTTP/` status line and
    /// a UTF-8 header section ended by an empty line.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(bytes.get(..end)?).ok()?;
        let body = bytes.get(end + 4..)?;
        let mut lines = head.split("\r\n");
        let (version, rest) = lines.next()?.split_once(' ')?;
        if !version.starts_with("HTTP/") {
            return None;
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 {
            return None;
        }
        let status = code.parse().ok()?;
        let headers = lines
            .map(|line| {
                line.split_once(':')
                    .map(|(name, value)| (name, value.trim_start()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(HttpResponse {
            version,
            status,
            reason,
            headers,
            body,
        })
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_uwsgi_response() {
        let raw =
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nX-Body-Len: 0\r\n\r\nfixed body\n";
        let http = HttpResponse::parse(raw).unwrap();
        assert_eq!(http.version, "HTTP/1.0");
        assert_eq!(http.status, 200);
        assert_eq!(http.reason, "OK");
        assert_eq!(http.header("content-type"), Some("text/plain"));
        assert_eq!(http.headers.len(), 2);
        assert_eq!(http.body, b"fixed body\n");
    }

    #[test]
    fn refuses_what_is_not_http() {
        assert!(HttpResponse::parse(b"HTTP/1.0 200 OK\r\n").is_none());
        assert!(HttpResponse::parse(b"Status: 200 OK\r\n\r\n").is_none());
        assert!(HttpResponse::parse(b"HTTP/1.0 2000 OK\r\n\r\n").is_none());
        assert!(HttpResponse::parse(b"HTTP/1.0 200 OK\r\nnocolon\r\n\r\n").is_none());
        let bare = HttpResponse::parse(b"HTTP/1.1 404\r\n\r\n").unwrap();
        assert_eq!((bare.status, bare.reason, bare.body), (404, "", &b""[..]));
    }
}
