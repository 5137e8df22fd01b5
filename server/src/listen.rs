//! Listening sockets: parsing uWSGI's address forms and binding them with the options
//! that apply (`--listen` backlog, `--chmod-socket`, multicast membership).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

/// Where a stream socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// TCP, IPv4 or IPv6.
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
}

impl ListenAddr {
    /// `host:port`, `:port` (every IPv4 interface), `[v6]:port`, or a unix socket path
    /// (anything containing `/`, or `unix:PATH`).
    pub fn parse(text: &str) -> Result<ListenAddr, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if text.contains('/') {
            return Ok(ListenAddr::Unix(PathBuf::from(text)));
        }
        resolve_inet(text).map(ListenAddr::Tcp)
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `host:port`, `:port` or `[v6]:port` as one address (the first the resolver returns).
pub fn resolve_inet(text: &str) -> Result<SocketAddr, String> {
    let expected = "expected HOST:PORT, :PORT, [V6]:PORT or a unix socket path";
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| expected.to_string())?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !text.contains(':') {
        return Err(expected.to_string());
    }
    text.to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| "the name resolves to no address".to_string())
}

/// A bound stream listener.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// Unix; the path is kept for `--vacuum`.
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

impl Listener {
    /// Sets the read and write timeouts (and, for TCP, `TCP_NODELAY`) on the listening
    /// socket. Linux copies them into every accepted TCP connection, which saves each
    /// request three system calls (unix connections still set theirs). The read timeout
    /// also bounds each `accept`.
    pub fn set_connection_defaults(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        let socket = match self {
            Listener::Tcp(l) => {
                let socket = socket2::SockRef::from(l);
                socket.set_tcp_nodelay(true)?;
                socket
            }
            Listener::Unix(l, _) => socket2::SockRef::from(l),
        };
        socket.set_read_timeout(timeout)?;
        socket.set_write_timeout(timeout)
    }

    /// Binds `addr` with `backlog`; unix sockets get `mode` when given. A stale unix
    /// socket file left by a previous run is replaced, but never a regular file.
    pub fn bind(addr: &ListenAddr, backlog: i32, mode: Option<u32>) -> io::Result<Listener> {
        match addr {
            ListenAddr::Tcp(inet) => {
                let socket = Socket::new(Domain::for_address(*inet), Type::STREAM, None)?;
                socket.set_reuse_address(true)?;
                if inet.is_ipv6() {
                    socket.set_only_v6(false).ok();
                }
                socket.bind(&SockAddr::from(*inet))?;
                socket.listen(backlog)?;
                Ok(Listener::Tcp(socket.into()))
            }
            ListenAddr::Unix(path) => {
                remove_stale_socket(path)?;
                let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
                socket.bind(&SockAddr::unix(path)?)?;
                socket.listen(backlog)?;
                if let Some(mode) = mode {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                }
                Ok(Listener::Unix(socket.into(), path.clone()))
            }
        }
    }

    /// Connects to this listener and hangs up at once: a worker blocked in `accept`
    /// wakes up, finds an empty connection and looks at its stop flag.
    pub fn poke(&self) {
        match self {
            Listener::Tcp(l) => {
                if let Ok(mut addr) = l.local_addr() {
                    if addr.ip().is_unspecified() {
                        addr.set_ip(match addr {
                            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                        });
                    }
                    let _ = std::net::TcpStream::connect_timeout(
                        &addr,
                        std::time::Duration::from_secs(1),
                    );
                }
            }
            Listener::Unix(_, path) => {
                let _ = std::os::unix::net::UnixStream::connect(path);
            }
        }
    }

    /// The listening socket's file descriptor.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }

    /// The bound address, with the real port when 0 was asked.
    pub fn local_addr(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string()),
            Listener::Unix(_, path) => path.display().to_string(),
        }
    }
}

/// Accepts one TCP connection. Unlike `TcpListener::accept`, an `accept` interrupted by a
/// signal returns [`io::ErrorKind::Interrupted`] instead of retrying, which is how a
/// forked worker's threads are told to look at their stop flag.
pub fn accept_tcp(
    listener: &std::net::TcpListener,
) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    let (fd, addr) = rustix::net::acceptfrom_with(listener, rustix::net::SocketFlags::CLOEXEC)?;
    let stream = std::net::TcpStream::from(fd);
    let addr = match addr.map(SocketAddr::try_from) {
        Some(Ok(addr)) => addr,
        _ => stream.peer_addr()?,
    };
    Ok((stream, addr))
}

/// Accepts one unix connection; interrupted as [`accept_tcp`].
pub fn accept_unix(
    listener: &std::os::unix::net::UnixListener,
) -> io::Result<std::os::unix::net::UnixStream> {
    let fd = rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC)?;
    Ok(std::os::unix::net::UnixStream::from(fd))
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// How a UDP socket bound to a multicast group address joins it and sends to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multicast {
    /// `--multicast-ttl`: TTL (IPv6: hop limit) of the datagrams this socket sends.
    pub ttl: u32,
    /// `--multicast-loop`: whether the datagrams it sends are looped back to this host.
    pub loop_back: bool,
    /// `--multicast-interface`: the IPv4 interface the group is joined on and sent
    /// through; `None` lets the routing table choose (uWSGI joins with `INADDR_ANY`).
    pub interface: Option<Ipv4Addr>,
}

impl Default for Multicast {
    /// uWSGI's defaults: TTL 1, loop on, any interface.
    fn default() -> Self {
        Multicast {
            ttl: 1,
            loop_back: true,
            interface: None,
        }
    }
}

/// Binds a UDP socket; a multicast group address binds the port on every interface and
/// joins the group, with `multicast`'s settings.
pub fn bind_udp(addr: SocketAddr, multicast: &Multicast) -> io::Result<UdpSocket> {
    let Multicast {
        ttl,
        loop_back,
        interface,
    } = *multicast;
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    socket.set_reuse_address(true)?;
    match addr.ip() {
        IpAddr::V4(group) if group.is_multicast() => {
            socket.bind(&SockAddr::from(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                addr.port(),
            )))?;
            let interface = interface.unwrap_or(Ipv4Addr::UNSPECIFIED);
            socket.join_multicast_v4(&group, &interface)?;
            if !interface.is_unspecified() {
                socket.set_multicast_if_v4(&interface)?;
            }
            socket.set_multicast_ttl_v4(ttl)?;
            socket.set_multicast_loop_v4(loop_back)?;
        }
        IpAddr::V6(group) if group.is_multicast() => {
            socket.set_only_v6(true)?;
            socket.bind(&SockAddr::from(SocketAddr::new(
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                addr.port(),
            )))?;
            socket.join_multicast_v6(&group, 0)?;
            socket.set_multicast_hops_v6(ttl)?;
            socket.set_multicast_loop_v6(loop_back)?;
        }
        _ => socket.bind(&SockAddr::from(addr))?,
    }
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_forms() {
        assert_eq!(
            ListenAddr::parse(":3031").unwrap(),
            ListenAddr::Tcp("0.0.0.0:3031".parse().unwrap())
        );
        assert_eq!(
            ListenAddr::parse("[::1]:3031").unwrap(),
            ListenAddr::Tcp("[::1]:3031".parse().unwrap())
        );
        assert_eq!(
            ListenAddr::parse("/tmp/app.sock").unwrap(),
            ListenAddr::Unix("/tmp/app.sock".into())
        );
        assert_eq!(
            ListenAddr::parse("unix:app.sock").unwrap(),
            ListenAddr::Unix("app.sock".into())
        );
        assert!(ListenAddr::parse("3031").is_err());
        assert!(ListenAddr::parse(":http").is_err());
    }

    #[test]
    fn refuses_to_replace_a_regular_file() {
        let dir = std::env::temp_dir().join(format!("uwsgi-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-a-socket");
        std::fs::write(&path, b"keep me").unwrap();
        let err = Listener::bind(&ListenAddr::Unix(path.clone()), 10, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The connections waiting to be accepted on the listening socket `fd` (uWSGI's
/// `listen_queue` and its stats' `queue`, which it reads with `TCP_INFO`). Read from the kernel's socket table
/// (`/proc/net/tcp`, `/proc/net/tcp6`), whose receive-queue column is the accept
/// backlog for a socket in LISTEN state: no `unsafe` `getsockopt` needed. Unix sockets
/// have no such column (uWSGI reads theirs with a patched kernel only): 0, as for any
/// socket the table does not describe.
pub fn listen_queue(fd: i32) -> u64 {
    let Ok(link) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
        return 0;
    };
    let link = link.to_string_lossy();
    let Some(inode) = link
        .strip_prefix("socket:[")
        .and_then(|rest| rest.strip_suffix(']'))
    else {
        return 0;
    };
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .find_map(|text| backlog_in_tcp_table(&text, inode))
        .unwrap_or(0)
}

/// The accept backlog of the listening socket with `inode` in a `/proc/net/tcp` text
/// (the rx column: for a socket in LISTEN state the kernel puts the accept queue's
/// length there; its limit is not in this table).
fn backlog_in_tcp_table(text: &str, inode: &str) -> Option<u64> {
    /// `st` value of a socket in LISTEN state.
    const LISTEN: &str = "0A";
    text.lines().skip(1).find_map(|line| {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid
        // timeout inode ...
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(9) != Some(&inode) || fields.get(3) != Some(&LISTEN) {
            return None;
        }
        let (_, rx) = fields.get(4)?.split_once(':')?;
        u64::from_str_radix(rx, 16).ok()
    })
}

#[cfg(test)]
mod listen_queue_tests {
    use super::*;

    #[test]
    fn backlog_is_the_rx_column_of_the_listening_entry() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0BDB 00000000:0000 0A 00000064:00000003 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0BDB 0100007F:D2F0 01 00000000:00000007 00:00000000 00000000     0        0 4243 1 0000000000000000 20 4 30 10 -1
";
        assert_eq!(backlog_in_tcp_table(table, "4242"), Some(3));
        // An established connection is not a listening socket.
        assert_eq!(backlog_in_tcp_table(table, "4243"), None);
        assert_eq!(backlog_in_tcp_table(table, "1"), None);
    }

    #[test]
    fn pending_connections_are_counted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        assert_eq!(listen_queue(fd), 0);
        let addr = listener.local_addr().unwrap();
        let _waiting: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        assert_eq!(listen_queue(fd), 2);
    }
}
