//! Receiving datagrams: multicast groups, broadcast, unicast UDP and unix datagram sockets.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::{Address, Error, Phase, Result};

/// How [`DatagramListener::bind`] sets up its socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ListenOptions {
    /// The local IPv4 address of the interface that joins an IPv4 multicast group
    /// (e.g. 127.0.0.1 for `lo`); `None` lets the kernel choose.
    pub interface: Option<Ipv4Addr>,
    /// The interface index that joins an IPv6 multicast group (0: the kernel's choice).
    pub interface_index: u32,
}

/// One datagram received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The sender (`ip:port`, or the sender's socket path), when known.
    pub source: Option<String>,
    /// The datagram, whole.
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
enum Inner {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

/// A bound datagram socket that receives uwsgi datagrams (multicast messages, cluster
/// announcements, subscriptions, logs…).
///
/// * a multicast `group:port` (IPv4 or IPv6) binds the wildcard address on `port` with
///   `SO_REUSEADDR` and joins the group;
/// * `255.255.255.255:port` binds the wildcard address with broadcast allowed;
/// * any other `ip:port` binds that address (port 0 picks a free port, see
///   [`DatagramListener::local_address`]);
/// * a unix path or `@name` binds a unix datagram socket there.
#[derive(Debug)]
pub struct DatagramListener {
    inner: Inner,
    address: Address,
    buffer: Vec<u8>,
}

/// The largest datagram: a 4-byte header and a 65535-byte block.
const MAX_DATAGRAM: usize = 4 + 65535;

impl DatagramListener {
    /// Binds (and joins, for a group) as described on the type.
    pub fn bind(address: &Address, options: &ListenOptions) -> Result<Self> {
        let io = |e| Error::io(address, Phase::Connect, e);
        let inner = match address {
            Address::Tcp { host, port } => {
                let ip: IpAddr = host.parse().map_err(|_| {
                    io(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "listening needs an IP address, not a host name",
                    ))
                })?;
                Inner::Udp(bind_udp(ip, *port, options).map_err(io)?)
            }
            Address::Unix(path) => Inner::Unix(UnixDatagram::bind(path).map_err(io)?),
            Address::Abstract(name) => {
                let socket = Socket::new(Domain::UNIX, Type::DGRAM, None).map_err(io)?;
                socket
                    .bind(&super::address::abstract_addr(name).map_err(io)?)
                    .map_err(io)?;
                Inner::Unix(socket.into())
            }
        };
        let mut listener = DatagramListener {
            inner,
            address: address.clone(),
            buffer: vec![0; MAX_DATAGRAM],
        };
        listener.address = listener.local_address();
        Ok(listener)
    }

    /// The address listened on, with the port the kernel chose when asked for port 0
    /// (for a group: the group and that port).
    pub fn local_address(&self) -> Address {
        match (&self.inner, &self.address) {
            (Inner::Udp(socket), Address::Tcp { host, .. }) => match socket.local_addr() {
                Ok(local) => Address::tcp(host.clone(), local.port()),
                Err(_) => self.address.clone(),
            },
            _ => self.address.clone(),
        }
    }

    /// Waits for the next datagram, at most `timeout` (`None`: forever).
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Datagram> {
        let io = |e| Error::io(&self.address, Phase::Read, e);
        let timeout = timeout.filter(|t| !t.is_zero());
        match &self.inner {
            Inner::Udp(socket) => {
                socket.set_read_timeout(timeout).map_err(io)?;
                let (n, from) = socket.recv_from(&mut self.buffer).map_err(io)?;
                Ok(Datagram {
                    source: Some(from.to_string()),
                    bytes: self.buffer[..n].to_vec(),
                })
            }
            Inner::Unix(socket) => {
                socket.set_read_timeout(timeout).map_err(io)?;
                let (n, from) = socket.recv_from(&mut self.buffer).map_err(io)?;
                Ok(Datagram {
                    source: from.as_pathname().map(|p| p.display().to_string()),
                    bytes: self.buffer[..n].to_vec(),
                })
            }
        }
    }
}

fn bind_udp(ip: IpAddr, port: u16, options: &ListenOptions) -> io::Result<UdpSocket> {
    let domain = match ip {
        IpAddr::V4(_) => Domain::IPV4,
        IpAddr::V6(_) => Domain::IPV6,
    };
    let socket = Socket::new(domain, Type::DGRAM, None)?;
    let wildcard = match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let shared = ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST);
    if shared {
        // Several listeners of one group (or broadcast port) on a host is the norm.
        socket.set_reuse_address(true)?;
        if domain == Domain::IPV6 {
            socket.set_only_v6(true)?;
        }
        socket.bind(&SocketAddr::new(wildcard, port).into())?;
    } else {
        socket.bind(&SocketAddr::new(ip, port).into())?;
    }
    match ip {
        IpAddr::V4(group) if group.is_multicast() => {
            let interface = options.interface.unwrap_or(Ipv4Addr::UNSPECIFIED);
            socket.join_multicast_v4(&group, &interface)?;
        }
        IpAddr::V6(group) if group.is_multicast() => {
            socket.join_multicast_v6(&group, options.interface_index)?;
        }
        IpAddr::V4(Ipv4Addr::BROADCAST) => socket.set_broadcast(true)?,
        _ => {}
    }
    Ok(socket.into())
}
