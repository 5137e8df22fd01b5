//! The running server: bound sockets, the state every worker shares, and the worker
//! threads. Each worker blocks in `accept` on one listener and serves its connections one
//! at a time, as a uWSGI worker does; `--processes × --threads` workers share each
//! listener and the kernel hands every connection to one of them.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uwsgi_protocol::packet::Request;
use uwsgi_protocol::{Limits, Packet, Vars};

use crate::app::{App, Status};
use crate::config::{PeerRule, ServerConfig};
use crate::connection::{self, Peer, ServeError};
use crate::dispatch::Outcome;
use crate::listen::{self, Listener};
use crate::state::ServerState;

/// What every worker of a server shares.
pub struct Shared {
    /// The shared application state: caches, RPC, signals, spoolers, queue, locks.
    pub state: Arc<ServerState>,
    /// Decoding limits from `--buffer-size`, `--max-vars`, `--limit-post`.
    pub limits: Limits,
    /// The hosted application.
    pub app: Arc<dyn App>,
    /// Per-worker counters for the stats server, index = worker id - 1.
    pub workers: Vec<crate::stats::WorkerCounters>,
    /// Registered subscriptions (modifier1 224).
    pub subscriptions: Subscriptions,
    /// The longest a whole request packet may take to arrive (`--socket-timeout`).
    pub socket_timeout: Duration,
    warning: RwLock<Vec<u8>>,
    allowed_modifiers: Option<[bool; 256]>,
    management: Vec<PeerRule>,
    log: Mutex<Box<dyn Write + Send>>,
    disable_logging: bool,
    requests: AtomicU64,
    pid: u32,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("limits", &self.limits)
            .field("requests", &self.total_requests())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn new(
        config: &ServerConfig,
        app: Arc<dyn App>,
        state: Arc<ServerState>,
    ) -> io::Result<Shared> {
        let log: Box<dyn Write + Send> = match &config.logto {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Box::new(io::stderr()),
        };
        let allowed_modifiers = config.allowed_modifiers.as_ref().map(|list| {
            let mut table = [false; 256];
            for m in list {
                table[usize::from(*m)] = true;
            }
            table
        });
        let workers = (0..config.processes.saturating_mul(config.threads).max(1))
            .map(|_| crate::stats::WorkerCounters::default())
            .collect();
        Ok(Shared {
            workers,
            state,
            limits: config.limits(),
            app,
            subscriptions: Subscriptions::default(),
            socket_timeout: config.socket_timeout,
            warning: RwLock::new(config.warning_message.clone()),
            allowed_modifiers,
            management: config.management_allow_from.clone(),
            log: Mutex::new(log),
            disable_logging: config.disable_logging,
            requests: AtomicU64::new(0),
            pid: std::process::id(),
        })
    }

    /// The ping warning message.
    pub fn warning_message(&self) -> Vec<u8> {
        self.warning.read().map(|w| w.clone()).unwrap_or_default()
    }

    /// Sets the ping warning message (`uwsgi.set_warning_message`), at most 80 bytes as
    /// in uWSGI; longer messages are cut.
    pub fn set_warning_message(&self, message: &[u8]) {
        if let Ok(mut warning) = self.warning.write() {
            *warning = message[..message.len().min(80)].to_vec();
        }
    }

    /// Whether `--allowed-modifiers` lets `modifier1` through.
    pub fn modifier_allowed(&self, modifier1: u8) -> bool {
        self.allowed_modifiers
            .is_none_or(|table| table[usize::from(modifier1)])
    }

    /// Whether `peer` may send management packets: by default loopback and unix peers.
    pub fn management_allowed(&self, peer: Peer) -> bool {
        if self.management.is_empty() {
            return peer.ip().is_none_or(|ip| match ip {
                std::net::IpAddr::V6(v6) => v6
                    .to_ipv4_mapped()
                    .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
                v4 => v4.is_loopback(),
            });
        }
        self.management.iter().any(|rule| rule.matches(peer.ip()))
    }

    /// Requests served so far.
    pub fn total_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Writes one line to the server log.
    pub fn log(&self, line: std::fmt::Arguments<'_>) {
        if let Ok(mut log) = self.log.lock() {
            let _ = writeln!(log, "{line}");
        }
    }

    /// uWSGI's request log line for an application request.
    pub fn log_request(&self, request: &Request<'_>, peer: Peer, status: &Status, took: Duration) {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        crate::stats::add_tx(self, status.head_bytes + status.body_bytes);
        if self.disable_logging {
            return;
        }
        let [method, uri, protocol] = request.vars.get_many([
            b"REQUEST_METHOD".as_slice(),
            b"REQUEST_URI",
            b"SERVER_PROTOCOL",
        ]);
        let text = |v: Option<&[u8]>| String::from_utf8_lossy(v.unwrap_or(b"-")).into_owned();
        let addr = request.vars.get("REMOTE_ADDR").map_or_else(
            || peer.to_string(),
            |a| String::from_utf8_lossy(a).into_owned(),
        );
        self.log(format_args!(
            "[pid: {}|app: 0|req: {n}/{n}] {addr} () {{{} vars in {} bytes}} [{}] {} {} => generated {} bytes in {} msecs ({} {}) {} headers in {} bytes (1 switches on core 0)",
            self.pid,
            request.vars.len(),
            request.vars.as_bytes().len(),
            http_date_now(),
            text(method),
            text(uri),
            status.body_bytes,
            took.as_millis(),
            text(protocol),
            status.code,
            status.headers,
            status.head_bytes,
        ));
    }
}

/// Seconds since the epoch, as uWSGI's log prints a ctime; kept numeric to stay
/// dependency-free and unambiguous across time zones.
fn http_date_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("epoch {secs}")
}

/// One subscribed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribedNode {
    /// The node's address as it announced it (`address` var).
    pub address: String,
    /// `modifier1` var, 0 when absent.
    pub modifier1: u8,
    /// `modifier2` var, 0 when absent.
    pub modifier2: u8,
    /// When it last announced itself.
    pub last_seen: Instant,
}

/// The subscription table: key (usually a host name) → nodes.
#[derive(Debug, Default)]
pub struct Subscriptions {
    table: Mutex<HashMap<Vec<u8>, Vec<SubscribedNode>>>,
}

impl Subscriptions {
    /// Applies one subscription packet: a node (re)subscribing to `key`, or leaving it
    /// when `unsubscribe` is set. Packets without `key` or `address` are ignored.
    pub fn record(&self, vars: Vars<'_>, _peer: Peer) {
        let [key, address, modifier1, modifier2, unsubscribe] = vars.get_many([
            b"key".as_slice(),
            b"address",
            b"modifier1",
            b"modifier2",
            b"unsubscribe",
        ]);
        let (Some(key), Some(address)) = (key, address) else {
            return;
        };
        let small = |v: Option<&[u8]>| {
            v.and_then(|v| std::str::from_utf8(v).ok()?.parse::<u8>().ok())
                .unwrap_or(0)
        };
        let address = String::from_utf8_lossy(address).into_owned();
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        let nodes = table.entry(key.to_vec()).or_default();
        nodes.retain(|node| node.address != address);
        if unsubscribe.is_none_or(|v| v.is_empty() || v == b"0") {
            nodes.push(SubscribedNode {
                address,
                modifier1: small(modifier1),
                modifier2: small(modifier2),
                last_seen: Instant::now(),
            });
        }
        if nodes.is_empty() {
            table.remove(key);
        }
    }

    /// The nodes subscribed to `key`.
    pub fn nodes(&self, key: &[u8]) -> Vec<SubscribedNode> {
        self.table
            .lock()
            .map(|t| t.get(key).cloned().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// A server with its sockets bound, ready to run.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<Arc<Listener>>,
    udp: Vec<Arc<UdpSocket>>,
    stats: Option<Arc<Listener>>,
    workers_per_listener: usize,
    stopping: Arc<AtomicBool>,
    config: ServerConfig,
}

impl Server {
    /// Binds every socket of `config` (so errors show before anything runs).
    pub fn bind(config: ServerConfig, app: Arc<dyn App>) -> io::Result<Server> {
        let mut listeners = Vec::new();
        for addr in &config.sockets {
            let listener = Listener::bind(addr, config.listen_backlog, config.chmod_socket)
                .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
            listener
                .set_connection_defaults(Some(config.socket_timeout).filter(|t| !t.is_zero()))?;
            listeners.push(Arc::new(listener));
        }
        let mut udp = Vec::new();
        for addr in &config.udp_sockets {
            let socket = listen::bind_udp(*addr, config.multicast_ttl, config.multicast_loop)
                .map_err(|e| io::Error::new(e.kind(), format!("binding udp {addr}: {e}")))?;
            udp.push(Arc::new(socket));
        }
        let stats = match &config.stats {
            Some(addr) => Some(Arc::new(
                Listener::bind(addr, config.listen_backlog, config.chmod_socket)
                    .map_err(|e| io::Error::new(e.kind(), format!("binding stats {addr}: {e}")))?,
            )),
            None => None,
        };
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let state = Arc::new(
            ServerState::new(config.state_config().map_err(invalid)?)
                .map_err(|e| invalid(e.to_string()))?,
        );
        let fds: Vec<i32> = listeners
            .iter()
            .map(|l| {
                use std::os::fd::AsRawFd;
                match l.as_ref() {
                    Listener::Tcp(l) => l.as_raw_fd(),
                    Listener::Unix(l, _) => l.as_raw_fd(),
                }
            })
            .collect();
        app.sockets_bound(&fds);
        app.init(&state)
            .map_err(|e| invalid(format!("application init: {e}")))?;
        // Every worker of this build is a thread of this one process: it is worker 1.
        app.start_worker(1, false)
            .map_err(|e| invalid(format!("worker start: {e}")))?;
        if let Some(pidfile) = &config.pidfile {
            std::fs::write(pidfile, format!("{}\n", std::process::id()))?;
        }
        Ok(Server {
            shared: Arc::new(Shared::new(&config, app, state)?),
            listeners,
            udp,
            stats,
            workers_per_listener: config.processes.saturating_mul(config.threads).max(1),
            stopping: Arc::new(AtomicBool::new(false)),
            config,
        })
    }

    /// The stats server's bound address, if `--stats` was given.
    pub fn stats_addr(&self) -> Option<String> {
        self.stats.as_ref().map(|l| l.local_addr())
    }

    /// The bound addresses, stream sockets first (real ports where 0 was asked).
    pub fn local_addrs(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|l| l.local_addr())
            .chain(self.udp.iter().map(|u| {
                u.local_addr()
                    .map_or_else(|e| e.to_string(), |a| a.to_string())
            }))
            .collect()
    }

    /// The state shared by the workers.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Starts the workers and returns at once; [`Running::wait`] blocks.
    pub fn start(self) -> Running {
        let mut threads = Vec::new();
        for listener in &self.listeners {
            for index in 0..self.workers_per_listener {
                let listener = Arc::clone(listener);
                let shared = Arc::clone(&self.shared);
                let stopping = Arc::clone(&self.stopping);
                threads.push(std::thread::spawn(move || {
                    worker(index, &listener, &shared, &stopping);
                }));
            }
        }
        if let Some(stats) = &self.stats {
            let (stats, shared, stopping) = (
                Arc::clone(stats),
                Arc::clone(&self.shared),
                Arc::clone(&self.stopping),
            );
            let sockets: Vec<String> = self.listeners.iter().map(|l| l.local_addr()).collect();
            threads.push(std::thread::spawn(move || {
                crate::stats::serve(&stats, &shared, &sockets, &stopping);
            }));
        }
        threads.extend(crate::background::start(
            &self.shared,
            &self.stopping,
            self.config.spooler_frequency,
        ));
        for socket in &self.udp {
            let socket = Arc::clone(socket);
            let shared = Arc::clone(&self.shared);
            let stopping = Arc::clone(&self.stopping);
            threads.push(std::thread::spawn(move || {
                datagram_worker(&socket, &shared, &stopping);
            }));
        }
        Running {
            threads,
            server: self,
        }
    }
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    threads: Vec<JoinHandle<()>>,
    server: Server,
}

impl Running {
    /// Stops gracefully and waits for the workers (stream sockets; UDP threads end with
    /// the process).
    pub fn shutdown(self) {
        self.stopper().stop(self.server.workers_per_listener);
        let Running { threads, server } = self;
        for thread in threads
            .into_iter()
            .take(server.listeners.len() * server.workers_per_listener)
        {
            let _ = thread.join();
        }
        server.shared.app.stop_worker();
        server.cleanup();
    }

    /// Workers per stream socket.
    pub fn workers_per_listener(&self) -> usize {
        self.server.workers_per_listener
    }
}

impl Running {
    /// The bound addresses.
    pub fn local_addrs(&self) -> Vec<String> {
        self.server.local_addrs()
    }

    /// The stats server's address, if any.
    pub fn stats_addr(&self) -> Option<String> {
        self.server.stats_addr()
    }

    /// A handle that stops this server from another thread (a signal handler).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            stopping: Arc::clone(&self.server.stopping),
            listeners: self.server.listeners.clone(),
            stats: self.server.stats.clone(),
        }
    }

    /// Blocks until every worker has stopped.
    pub fn wait(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
        self.server.shared.app.stop_worker();
        self.server.cleanup();
    }
}

/// Stops a running server gracefully: no new connection is accepted, and every worker
/// finishes the request it is serving before it exits.
#[derive(Debug, Clone)]
pub struct Stopper {
    stopping: Arc<AtomicBool>,
    listeners: Vec<Arc<Listener>>,
    stats: Option<Arc<Listener>>,
}

impl Stopper {
    /// Asks the workers to stop, and wakes those blocked in `accept` with a connection
    /// that they close at once.
    pub fn stop(&self, workers_per_listener: usize) {
        self.stopping.store(true, Ordering::SeqCst);
        let wakes = self
            .listeners
            .iter()
            .flat_map(|l| std::iter::repeat_n(l, workers_per_listener))
            .chain(self.stats.iter());
        for listener in wakes {
            match listener.as_ref() {
                Listener::Tcp(l) => {
                    if let Ok(mut addr) = l.local_addr() {
                        if addr.ip().is_unspecified() {
                            addr.set_ip(match addr {
                                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                            });
                        }
                        let _ = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1));
                    }
                }
                Listener::Unix(_, path) => {
                    let _ = std::os::unix::net::UnixStream::connect(path);
                }
            }
        }
    }
}

impl Server {
    /// `--vacuum`: removes the unix sockets and the pidfile.
    fn cleanup(&self) {
        if !self.config.vacuum {
            return;
        }
        for listener in &self.listeners {
            if let Listener::Unix(_, path) = listener.as_ref() {
                let _ = std::fs::remove_file(path);
            }
        }
        if let Some(pidfile) = &self.config.pidfile {
            let _ = std::fs::remove_file(pidfile);
        }
    }
}

fn worker(index: usize, listener: &Listener, shared: &Shared, stopping: &AtomicBool) {
    let Some(counters) = shared.workers.get(index) else {
        return;
    };
    crate::stats::set_current_worker(index);
    let mut buffer = Vec::with_capacity(usize::from(shared.limits.max_datasize) + 4);
    while !stopping.load(Ordering::Relaxed) {
        let result = match listener {
            Listener::Tcp(l) => l.accept().map(|(stream, addr)| {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let _request = counters.begin();
                serve_one(&stream, Peer::Inet(addr), shared, &mut buffer, |t| {
                    stream.set_read_timeout(t)?;
                    stream.set_write_timeout(t)
                });
            }),
            Listener::Unix(l, _) => l.accept().map(|(stream, _)| {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let _request = counters.begin();
                // Unix sockets do not inherit the listener's timeouts (Linux creates the
                // accepted socket anew rather than cloning the listener).
                let timeout = Some(shared.socket_timeout).filter(|t| !t.is_zero());
                if let Err(err) = stream
                    .set_read_timeout(timeout)
                    .and_then(|()| stream.set_write_timeout(timeout))
                {
                    shared.log(format_args!("cannot set socket timeouts: {err}"));
                    return;
                }
                serve_one(&stream, Peer::Unix, shared, &mut buffer, |t| {
                    stream.set_read_timeout(t)?;
                    stream.set_write_timeout(t)
                })
            }),
        };
        match result {
            Ok(()) => {}
            // The listener's receive timeout also bounds `accept`: a quiet moment.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // Out of file descriptors or a transient accept error: pause, don't spin.
            Err(err) => {
                shared.log(format_args!("accept failed: {err}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn serve_one<S: Sync + std::os::fd::AsFd>(
    stream: &S,
    peer: Peer,
    shared: &Shared,
    buffer: &mut Vec<u8>,
    set_timeouts: impl Fn(Option<Duration>) -> io::Result<()>,
) where
    for<'s> &'s S: io::Read + io::Write,
{
    match connection::serve_socket(stream, peer, shared, buffer, &set_timeouts) {
        Ok(Outcome::Replied) | Err(ServeError::Empty) => {}
        Ok(Outcome::Closed(reason)) => {
            shared.log(format_args!("closed without reply ({peer}): {reason}"));
        }
        Err(err) => shared.log(format_args!("{peer}: {err}")),
    }
}

fn datagram_worker(socket: &UdpSocket, shared: &Shared, stopping: &AtomicBool) {
    let mut buffer = vec![0u8; usize::from(u16::MAX) + 4];
    // Wake up now and then to notice a stop.
    if let Err(err) = socket.set_read_timeout(Some(Duration::from_millis(200))) {
        shared.log(format_args!("udp socket: {err}"));
        return;
    }
    while !stopping.load(Ordering::Relaxed) {
        let (len, from) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(err) => {
                shared.log(format_args!("udp receive failed: {err}"));
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let peer = Peer::Inet(from);
        match Packet::decode_datagram(&buffer[..len], &shared.limits) {
            Ok(packet) => crate::dispatch::answer_datagram(&packet, socket, from, peer, shared),
            Err(err) => shared.log(format_args!("invalid datagram from {from}: {err}")),
        }
    }
}
