//! Where a client connects: a TCP host and port, a unix socket path, or a Linux abstract
//! socket name.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use socket2::{Domain, SockAddr};

/// A uwsgi peer address.
///
/// Parsed from the strings uWSGI itself accepts (see [`Address::from_str`]) and displayed
/// back in a form that parses to the same value.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A host name or IP literal and a port. An IP literal is used as it is; a name is
    /// resolved at every connect (the system resolver, bounded by the connect timeout:
    /// see [`Address::resolve_within`]), and each resolved address is tried in turn.
    Tcp {
        /// Host name, IPv4 literal or IPv6 literal (without brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// A unix socket path.
    Unix(PathBuf),
    /// A name in the Linux abstract socket namespace (written `@name`).
    Abstract(Vec<u8>),
}

/// A string that is not an [`Address`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {input:?}: {reason}")]
pub struct AddressError {
    /// The rejected input.
    pub input: String,
    /// Why, in words.
    pub reason: &'static str,
}

impl Address {
    /// A TCP address.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }

    /// A unix socket path.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Address::Unix(path.into())
    }

    /// The socket domains and addresses to try, in order.
    ///
    /// An IP literal never reaches the resolver. A host name is resolved by the system
    /// resolver (`getaddrinfo`), which takes no timeout: with a `limit`, it runs on a
    /// helper thread and the call gives up after `limit` (an `io::ErrorKind::TimedOut`
    /// error), leaving the thread to finish the lookup on its own and exit.
    pub fn resolve_within(&self, limit: Option<Duration>) -> io::Result<Vec<(Domain, SockAddr)>> {
        match self {
            Address::Tcp { host, port } => {
                let addrs = match host.parse::<IpAddr>() {
                    Ok(ip) => vec![SocketAddr::new(ip, *port)],
                    Err(_) => lookup(host, *port, limit)?,
                };
                Ok(addrs
                    .into_iter()
                    .map(|addr| (Domain::for_address(addr), SockAddr::from(addr)))
                    .collect())
            }
            Address::Unix(path) => Ok(vec![(Domain::UNIX, SockAddr::unix(path)?)]),
            Address::Abstract(name) => Ok(vec![(Domain::UNIX, abstract_addr(name)?)]),
        }
    }
}

/// Resolves `host` with the system resolver, giving up after `limit` when there is one.
fn lookup(host: &str, port: u16, limit: Option<Duration>) -> io::Result<Vec<SocketAddr>> {
    let resolve = move |host: &str| (host, port).to_socket_addrs().map(Iterator::collect);
    let Some(limit) = limit else {
        return resolve(host);
    };
    let (tx, rx) = mpsc::sync_channel(1);
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("uwsgi-resolve".to_owned())
        .spawn(move || {
            // The caller may have given up already: then nobody reads the answer.
            let _ = tx.send(resolve(&name));
        })?;
    match rx.recv_timeout(limit) {
        Ok(answer) => answer,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("resolving {host} took longer than {limit:?}"),
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(io::Error::other(format!(
            "the resolver thread for {host} ended without an answer"
        ))),
    }
}

#[cfg(unix)]
pub(crate) fn abstract_addr(name: &[u8]) -> io::Result<SockAddr> {
    use std::os::unix::ffi::OsStringExt;
    // A leading NUL byte selects the abstract namespace.
    let mut path = Vec::with_capacity(name.len() + 1);
    path.push(0);
    path.extend_from_slice(name);
    SockAddr::unix(std::ffi::OsString::from_vec(path))
}

#[cfg(not(unix))]
pub(crate) fn abstract_addr(_name: &[u8]) -> io::Result<SockAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix sockets exist only on Linux",
    ))
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::tcp(addr.ip().to_string(), addr.port())
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// Accepts, in this order of precedence:
    ///
    /// * `unix:PATH` — a unix socket path (`unix:@name` is an abstract name);
    /// * `@name` — a Linux abstract socket name;
    /// * anything containing a `/` — a unix socket path;
    /// * `[v6]:port` — an IPv6 literal and a port;
    /// * `host:port` — a host name or IPv4 literal and a port.
    fn from_str(input: &str) -> Result<Self, AddressError> {
        let fail = |reason| AddressError {
            input: input.to_owned(),
            reason,
        };
        let local = input.strip_prefix("unix:").unwrap_or(input);
        if let Some(name) = local.strip_prefix('@') {
            if name.is_empty() {
                return Err(fail("empty abstract socket name"));
            }
            return Ok(Address::Abstract(name.as_bytes().to_vec()));
        }
        if local.len() != input.len() || input.contains('/') {
            if local.is_empty() {
                return Err(fail("empty unix socket path"));
            }
            return Ok(Address::Unix(PathBuf::from(local)));
        }
        let (host, port) = if let Some(rest) = input.strip_prefix('[') {
            let (host, port) = rest.split_once("]:").ok_or(fail("expected [IPv6]:port"))?;
            host.parse::<Ipv6Addr>()
                .map_err(|_| fail("not an IPv6 address between the brackets"))?;
            (host, port)
        } else {
            let (host, port) = input.rsplit_once(':').ok_or(fail(
                "expected host:port, [IPv6]:port or a unix socket path",
            ))?;
            if host.contains(':') {
                return Err(fail("an IPv6 address needs brackets: [addr]:port"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(fail("empty host"));
        }
        let port = port.parse().map_err(|_| fail("port is not 0-65535"))?;
        Ok(Address::tcp(host, port))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
            Address::Unix(path) => {
                let path = path.to_string_lossy();
                // (A relative path starting with `@` cannot be written so that it parses
                // back as a path; no uWSGI setup uses one.)
                if path.contains('/') {
                    f.write_str(&path)
                } else {
                    write!(f, "unix:{path}")
                }
            }
            Address::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let cases: &[(&str, Address)] = &[
            ("127.0.0.1:3031", Address::tcp("127.0.0.1", 3031)),
            ("localhost:80", Address::tcp("localhost", 80)),
            ("[::1]:3031", Address::tcp("::1", 3031)),
            ("/tmp/uwsgi.sock", Address::unix("/tmp/uwsgi.sock")),
            ("./rel.sock", Address::unix("./rel.sock")),
            ("unix:/tmp/u.sock", Address::unix("/tmp/u.sock")),
            ("unix:u.sock", Address::unix("u.sock")),
            ("@uwsgi", Address::Abstract(b"uwsgi".to_vec())),
            ("unix:@uwsgi", Address::Abstract(b"uwsgi".to_vec())),
        ];
        for (input, want) in cases {
            let got: Address = input.parse().unwrap();
            assert_eq!(&got, want, "{input}");
            let again: Address = got.to_string().parse().unwrap();
            assert_eq!(&again, want, "display of {input} is {got}");
        }
    }

    #[test]
    fn rejects_junk() {
        for input in [
            "",
            "nocolon",
            ":3031",
            "host:",
            "host:99999",
            "::1:3031",
            "[::1]",
            "[x]:1",
            "unix:",
            "@",
        ] {
            assert!(input.parse::<Address>().is_err(), "{input:?} parsed");
        }
    }

    #[test]
    fn ip_literals_skip_the_resolver_and_names_are_bounded() {
        // A literal resolves even with no time at all: no lookup happens.
        let v6 = Address::tcp("::1", 7)
            .resolve_within(Some(Duration::ZERO))
            .unwrap();
        assert_eq!(v6.len(), 1);
        assert_eq!(v6[0].1.as_socket(), Some("[::1]:7".parse().unwrap()));
        let v4 = Address::tcp("10.1.2.3", 9)
            .resolve_within(Some(Duration::ZERO))
            .unwrap();
        assert_eq!(v4[0].1.as_socket(), Some("10.1.2.3:9".parse().unwrap()));
        // A name with no time left does not wait for the resolver (which may still
        // answer first: `.invalid` never resolves, so the result is an error either way).
        let start = std::time::Instant::now();
        let result = Address::tcp("name.invalid", 1).resolve_within(Some(Duration::ZERO));
        assert!(result.is_err());
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn displays_canonically() {
        assert_eq!(Address::tcp("::1", 1).to_string(), "[::1]:1");
        assert_eq!(Address::unix("u.sock").to_string(), "unix:u.sock");
        assert_eq!(Address::unix("/a/b").to_string(), "/a/b");
        assert_eq!(Address::Abstract(b"x".to_vec()).to_string(), "@x");
        let v4: SocketAddr = "10.0.0.1:9".parse().unwrap();
        assert_eq!(Address::from(v4).to_string(), "10.0.0.1:9");
    }
}
