//! The running server: bound sockets, the state every worker shares, and the worker
//! threads. `--processes × --threads` workers share each listener. On a `--socket`, each
//! blocks in `accept` and serves its connections one at a time, as a uWSGI worker does,
//! and the kernel hands every connection to one of them; on an `--http-socket`, they
//! take ready connections from the process's poller ([`crate::http::park`]), so idle
//! keep-alive connections hold no thread.

use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use uwsgi_protocol::packet::Request;
use uwsgi_protocol::{Limits, Packet};

use crate::app::{App, Status};
use crate::config::{PeerRule, ServerConfig};
use crate::connection::{self, Peer, ServeError};
use crate::dispatch::Outcome;
pub use crate::handlers::subscription::{SubscribedNode, Subscriptions};
use crate::http::park::Poller;
use crate::listen::{self, Listener};
use crate::scoreboard::{Scoreboard, WorkerField};
use crate::state::ServerState;
use crate::state::shm::SharedMutex;

/// Longest ping warning message, as in uWSGI.
const MAX_WARNING: usize = 80;

/// What every worker of a server shares.
pub struct Shared {
    /// The shared application state: caches, RPC, signals, spoolers, queue, locks.
    pub state: Arc<ServerState>,
    /// Decoding limits from `--buffer-size`, `--max-vars`, `--limit-post`.
    pub limits: Limits,
    /// The hosted application.
    pub app: Arc<dyn App>,
    /// What every worker reports about itself, in memory shared across processes.
    pub scoreboard: Scoreboard,
    /// Registered subscriptions (modifier1 224, from `--udp` sockets).
    pub subscriptions: Subscriptions,
    /// Nodes announced by cluster packets (modifier1 95, from `--udp` sockets), in
    /// memory shared by every process.
    pub cluster: crate::handlers::cluster::ClusterNodes,
    /// The reply to a cluster configuration request (modifier1 99), built once from
    /// the settings.
    pub cluster_config: crate::handlers::cluster::ConfigReply,
    /// The admin option slots (modifier1 10), in shared memory.
    pub admin: crate::handlers::admin::AdminOptions,
    /// The longest a whole request packet may take to arrive (`--socket-timeout`).
    pub socket_timeout: Duration,
    /// `--http-socket` limits.
    pub http: crate::http::Settings,
    /// The mules' and farms' message queues (`--mule`, `--farm`).
    pub mules: crate::mules::Mules,
    /// The ping warning message: a length byte and up to 80 bytes, shared by every
    /// process so `set_warning_message` in one worker is seen by all.
    warning: SharedMutex,
    allowed_modifiers: Option<[bool; 256]>,
    management: Vec<PeerRule>,
    /// Per-socket overrides, by the socket's file descriptor (inherited unchanged by
    /// forked workers and across a re-exec reload).
    policies: Vec<(i32, SocketRules)>,
    log: Mutex<Box<dyn Write + Send>>,
    request_log: crate::reqlog::RequestLog,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("limits", &self.limits)
            .field("requests", &self.total_requests())
            .field("scoreboard", &self.scoreboard)
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
        let allowed_modifiers = config.allowed_modifiers.as_deref().map(modifier_table);
        let spooler_processes = config.spoolers.len() * config.spooler_processes;
        let scoreboard = Scoreboard::new(
            config.processes,
            config.cores(),
            spooler_processes,
            config.mules.len(),
        )?;
        scoreboard.set_spooler_frequency(config.spooler_frequency.as_secs().max(1));
        let warning = SharedMutex::new(1 + MAX_WARNING)?;
        {
            let mut area = warning.lock();
            let message = &config.warning_message[..config.warning_message.len().min(MAX_WARNING)];
            area[0] = u8::try_from(message.len()).unwrap_or(0);
            area[1..=message.len()].copy_from_slice(message);
        }
        Ok(Shared {
            scoreboard,
            state,
            limits: config.limits(),
            app,
            subscriptions: Subscriptions::default(),
            cluster: crate::handlers::cluster::ClusterNodes::new()?,
            cluster_config: crate::handlers::cluster::ConfigReply::new(
                &config.settings,
                crate::handlers::cluster::MAX_REPLY,
            ),
            admin: crate::handlers::admin::AdminOptions::new(config)?,
            socket_timeout: config.socket_timeout,
            http: crate::http::Settings::from_config(config),
            mules: crate::mules::Mules::new(config.mules.clone(), &config.farms)?,
            warning,
            allowed_modifiers,
            management: config.management_allow_from.clone(),
            policies: Vec::new(),
            log: Mutex::new(log),
            request_log: config.request_log.clone(),
        })
    }

    /// The ping warning message.
    pub fn warning_message(&self) -> Vec<u8> {
        let area = self.warning.lock();
        let len = usize::from(area[0]).min(MAX_WARNING);
        area[1..=len].to_vec()
    }

    /// Sets the ping warning message (`uwsgi.set_warning_message`), at most 80 bytes as
    /// in uWSGI; longer messages are cut.
    pub fn set_warning_message(&self, message: &[u8]) {
        let message = &message[..message.len().min(MAX_WARNING)];
        let mut area = self.warning.lock();
        area[0] = u8::try_from(message.len()).unwrap_or(0);
        area[1..=message.len()].copy_from_slice(message);
    }

    /// The rules of the socket the calling thread is serving, if it has its own.
    fn socket_rules(&self) -> Option<&SocketRules> {
        if self.policies.is_empty() {
            return None;
        }
        let fd = SERVING_SOCKET.with(std::cell::Cell::get);
        self.policies
            .iter()
            .find(|(socket, _)| *socket == fd)
            .map(|(_, rules)| rules)
    }

    /// Whether `--allowed-modifiers` (or the serving socket's
    /// `--socket-allowed-modifiers`) lets `modifier1` through.
    pub fn modifier_allowed(&self, modifier1: u8) -> bool {
        let table = self
            .socket_rules()
            .and_then(|rules| rules.allowed_modifiers.as_ref())
            .or(self.allowed_modifiers.as_ref());
        table.is_none_or(|table| table[usize::from(modifier1)])
    }

    /// Whether `peer` may send management packets (`--management-allow-from`, or the
    /// serving socket's `--socket-management-allow-from`): by default loopback and unix
    /// peers.
    pub fn management_allowed(&self, peer: Peer) -> bool {
        let rules = self
            .socket_rules()
            .and_then(|rules| rules.management.as_ref())
            .unwrap_or(&self.management);
        if rules.is_empty() {
            return peer.ip().is_none_or(|ip| match ip {
                std::net::IpAddr::V6(v6) => v6
                    .to_ipv4_mapped()
                    .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
                v4 => v4.is_loopback(),
            });
        }
        rules.iter().any(|rule| rule.matches(peer.ip()))
    }

    /// Requests served so far.
    pub fn total_requests(&self) -> u64 {
        self.scoreboard.total_requests()
    }

    /// Writes one line to the server log, in one `write` so that the lines of several
    /// processes appending to one `--logto` file never interleave.
    pub fn log(&self, line: std::fmt::Arguments<'_>) {
        let mut text = line.to_string();
        text.push('\n');
        if let Ok(mut log) = self.log.lock() {
            let _ = log.write_all(text.as_bytes());
            let _ = log.flush();
        }
    }

    /// Writes a whole line (newline included) in one `write`, as [`Shared::log`].
    pub fn log_bytes(&self, line: &[u8]) {
        if let Ok(mut log) = self.log.lock() {
            let _ = log.write_all(line);
            let _ = log.flush();
        }
    }

    /// Counts an application request and writes its request log line: uWSGI's
    /// default line or `--logformat`'s, unless `--disable-logging` leaves it out (see
    /// [`crate::reqlog`]). The application's log variables are taken here, on the
    /// thread that served the request.
    pub fn log_request(&self, request: &Request<'_>, peer: Peer, status: &Status, took: Duration) {
        let (worker, core) = current_worker();
        let (mine, total) = self.scoreboard.count_app_request(worker);
        self.scoreboard.worker(worker, WorkerField::Tx).fetch_add(
            (status.head_bytes + status.body_bytes) as u64,
            Ordering::Relaxed,
        );
        let extras = self.app.take_log_extras();
        if !extras.log_this && !self.admin.log_filters().wanted(status, took) {
            return;
        }
        let started = std::time::SystemTime::now()
            .checked_sub(took)
            .unwrap_or(std::time::UNIX_EPOCH);
        let line = self.request_log.line(&crate::reqlog::Record {
            request,
            peer,
            status,
            started,
            took,
            worker,
            core,
            worker_requests: mine,
            total_requests: total,
            extras: &extras,
        });
        self.log_bytes(&line);
    }
}

/// A server with its sockets bound, ready to run.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<Arc<Listener>>,
    /// What each listener speaks (same order as `listeners`).
    protocols: Vec<Protocol>,
    udp: Vec<Arc<UdpSocket>>,
    /// What each of `udp` receives (same order).
    udp_roles: Vec<UdpRole>,
    stats: Option<Arc<Listener>>,
    /// `--snmp=ADDR`: the SNMP agent's own socket.
    snmp: Option<Arc<UdpSocket>>,
    workers_per_listener: usize,
    stopping: Arc<AtomicBool>,
    config: ServerConfig,
    /// The poller of the `--http-socket` listeners in the single-process mode (forked
    /// workers make their own after the fork).
    poller: Option<Arc<Poller>>,
}

/// What a UDP socket receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UdpRole {
    /// `--udp`: uwsgi packets for the UDP services (subscriptions…).
    Service,
    /// `--cache-udp-server` or a `--cache2` `udp=` address: replicated writes for the
    /// cache of this name.
    CacheSync(String),
    /// `--snmp=ADDR`: every datagram is an SNMP request.
    Snmp,
}

/// The sockets of a server: bound now, or inherited from the master that re-executed
/// itself to reload (see [`crate::master`]).
#[derive(Debug)]
pub(crate) struct Sockets {
    /// `--socket` listeners, then `--http-socket` ones.
    pub(crate) listeners: Vec<Arc<Listener>>,
    /// What each listener speaks.
    pub(crate) protocols: Vec<Protocol>,
    /// `--udp` sockets, then the cache sync ones ([`ServerConfig::cache_udp_bindings`]).
    pub(crate) udp: Vec<Arc<UdpSocket>>,
    /// What each of `udp` receives.
    pub(crate) udp_roles: Vec<UdpRole>,
    pub(crate) stats: Option<Arc<Listener>>,
    /// `--snmp=ADDR`.
    pub(crate) snmp: Option<Arc<UdpSocket>>,
}

/// Every UDP address to bind, with its role: `--udp` ones, then the cache sync ones.
pub(crate) fn udp_bindings(config: &ServerConfig) -> io::Result<Vec<(SocketAddr, UdpRole)>> {
    let caches = config
        .cache_udp_bindings()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    Ok(config
        .udp_sockets
        .iter()
        .map(|addr| (*addr, UdpRole::Service))
        .chain(
            caches
                .into_iter()
                .map(|(addr, cache)| (addr, UdpRole::CacheSync(cache))),
        )
        .collect())
}

impl Sockets {
    /// Binds every socket of `config`.
    pub(crate) fn bind(config: &ServerConfig) -> io::Result<Sockets> {
        let mut listeners = Vec::new();
        let mut protocols = Vec::new();
        let stream_sockets = config
            .sockets
            .iter()
            .map(|addr| (addr, Protocol::Uwsgi))
            .chain(
                config
                    .http_sockets
                    .iter()
                    .map(|addr| (addr, Protocol::Http)),
            );
        for (addr, protocol) in stream_sockets {
            protocols.push(protocol);
            let listener = Listener::bind(addr, config.listen_backlog, config.chmod_socket)
                .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
            listeners.push(Arc::new(listener));
        }
        let mut udp = Vec::new();
        let mut udp_roles = Vec::new();
        for (addr, role) in udp_bindings(config)? {
            let socket = listen::bind_udp(addr, &config.multicast)
                .map_err(|e| io::Error::new(e.kind(), format!("binding udp {addr}: {e}")))?;
            udp.push(Arc::new(socket));
            udp_roles.push(role);
        }
        let stats = match &config.stats {
            Some(addr) => Some(Arc::new(
                Listener::bind(addr, config.listen_backlog, config.chmod_socket)
                    .map_err(|e| io::Error::new(e.kind(), format!("binding stats {addr}: {e}")))?,
            )),
            None => None,
        };
        let snmp = match config.snmp_addr {
            Some(addr) => Some(Arc::new(
                listen::bind_udp(addr, &config.multicast)
                    .map_err(|e| io::Error::new(e.kind(), format!("binding snmp {addr}: {e}")))?,
            )),
            None => None,
        };
        Ok(Sockets {
            listeners,
            protocols,
            udp,
            udp_roles,
            stats,
            snmp,
        })
    }
}

/// Resolves the per-socket policies of `config` to the bound sockets' descriptors.
fn socket_policies(config: &ServerConfig, sockets: &Sockets) -> Vec<(i32, SocketRules)> {
    use crate::config::SocketRef;
    use std::os::fd::AsRawFd;
    config
        .socket_policies
        .iter()
        .filter_map(|policy| {
            let fd = match config.socket_index(&policy.socket)? {
                SocketRef::Stream(i) => sockets.listeners.get(i)?.as_fd().as_raw_fd(),
                SocketRef::Datagram(i) => sockets.udp.get(i)?.as_raw_fd(),
            };
            let rules = SocketRules {
                allowed_modifiers: policy.allowed_modifiers.as_deref().map(modifier_table),
                management: policy.management_allow_from.clone(),
            };
            Some((fd, rules))
        })
        .collect()
}

impl Server {
    /// Binds every socket of `config` (so errors show before anything runs), builds the
    /// state and initialises the app; this process is worker 1 and serves with threads
    /// (the single-process mode; [`crate::master`] runs the forked one).
    pub fn bind(config: ServerConfig, app: Arc<dyn App>) -> io::Result<Server> {
        let sockets = Sockets::bind(&config)?;
        let mut server = Server::build(config, app, sockets)?;
        server.poller = server.http_poller(0)?.map(Arc::new);
        // Every worker of this mode is a thread of this one process: it is worker 1.
        server.shared.app.start_worker(1, false).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("worker start: {e}"))
        })?;
        for worker in 0..server.shared.scoreboard.workers() {
            server.shared.scoreboard.reset_for_spawn(worker);
            for (field, value) in [
                (WorkerField::Pid, u64::from(std::process::id())),
                (WorkerField::Accepting, 1),
            ] {
                server
                    .shared
                    .scoreboard
                    .worker(worker, field)
                    .store(value, Ordering::Relaxed);
            }
        }
        server.write_pidfiles()?;
        Ok(server)
    }

    /// Builds the state (shared memory included) and initialises the app around bound
    /// sockets, without starting any worker.
    pub(crate) fn build(
        config: ServerConfig,
        app: Arc<dyn App>,
        sockets: Sockets,
    ) -> io::Result<Server> {
        for listener in &sockets.listeners {
            listener
                .set_connection_defaults(Some(config.socket_timeout).filter(|t| !t.is_zero()))?;
        }
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let state = Arc::new(
            ServerState::new(config.state_config().map_err(invalid)?)
                .map_err(|e| invalid(e.to_string()))?,
        );
        // uWSGI copies caches from their sync nodes before loading the app (so the app
        // starts with the items) and before any worker forks. The lines are logged once
        // the log exists; a failure stops the start, as uWSGI exits.
        let sync_log = std::cell::RefCell::new(Vec::new());
        crate::handlers::cache::sync_caches(
            state.caches(),
            Some(config.socket_timeout)
                .filter(|t| !t.is_zero())
                .unwrap_or(Duration::from_secs(4)),
            state.now(),
            &|line| sync_log.borrow_mut().push(line.to_string()),
        )
        .map_err(|e| invalid(format!("{}\n{e}", sync_log.borrow().join("\n"))))?;
        let fds: Vec<i32> = sockets
            .listeners
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
        let mut shared = Shared::new(&config, Arc::clone(&app), Arc::clone(&state))?;
        shared.policies = socket_policies(&config, &sockets);
        let shared = Arc::new(shared);
        for line in sync_log.into_inner() {
            shared.log(format_args!("{line}"));
        }
        // Failed replication sends go to the server's log (weakly: the caches live in
        // the state the log's owner holds).
        let log_to = Arc::downgrade(&shared);
        let logger: crate::state::cache_sync::SyncLogger = Arc::new(move |line| {
            if let Some(shared) = log_to.upgrade() {
                shared.log(line);
            }
        });
        state.caches().set_sync_logger(&logger);
        state.caches().set_full_logger(&logger);
        for cache in state.caches().iter() {
            for (node, addr) in cache.replicator().map_or(&[][..], |r| r.nodes()) {
                shared.log(format_args!(
                    "added udp node {node} ({addr}) for cache \"{}\"",
                    cache.name()
                ));
            }
        }
        for (socket, role) in sockets.udp.iter().zip(&sockets.udp_roles) {
            if let (UdpRole::CacheSync(cache), Ok(addr)) = (role, socket.local_addr()) {
                shared.log(format_args!(
                    "udp server for cache \"{cache}\" running on {addr}"
                ));
            }
        }
        app.attach_server(&shared);
        Ok(Server {
            shared,
            listeners: sockets.listeners,
            protocols: sockets.protocols,
            udp: sockets.udp,
            udp_roles: sockets.udp_roles,
            stats: sockets.stats,
            snmp: sockets.snmp,
            workers_per_listener: config.processes.saturating_mul(config.cores()).max(1),
            stopping: Arc::new(AtomicBool::new(false)),
            config,
            poller: None,
        })
    }

    /// A poller for this server's `--http-socket` listeners, if it has any: one per
    /// process, made in the process that serves them, reporting its parked count in
    /// `worker`'s scoreboard slot.
    pub(crate) fn http_poller(&self, worker: usize) -> io::Result<Option<Poller>> {
        let http: Vec<Arc<Listener>> = self
            .listeners
            .iter()
            .zip(&self.protocols)
            .filter(|(_, p)| **p == Protocol::Http)
            .map(|(l, _)| Arc::clone(l))
            .collect();
        if http.is_empty() {
            return Ok(None);
        }
        let poller = Poller::new(http, self.shared.http.max_parked)?;
        poller.publish_to(Arc::clone(&self.shared), worker);
        Ok(Some(poller))
    }

    /// `--pidfile` and `--pidfile2`: this process's pid.
    pub(crate) fn write_pidfiles(&self) -> io::Result<()> {
        for pidfile in [&self.config.pidfile, &self.config.pidfile2]
            .into_iter()
            .flatten()
        {
            std::fs::write(pidfile, format!("{}\n", std::process::id()))?;
        }
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub(crate) fn listeners(&self) -> &[Arc<Listener>] {
        &self.listeners
    }

    /// What each of [`Self::listeners`] speaks.
    pub(crate) fn protocols(&self) -> &[Protocol] {
        &self.protocols
    }

    pub(crate) fn udp_sockets(&self) -> &[Arc<UdpSocket>] {
        &self.udp
    }

    /// What each of [`Self::udp_sockets`] receives.
    pub(crate) fn udp_roles(&self) -> &[UdpRole] {
        &self.udp_roles
    }

    pub(crate) fn stats_listener(&self) -> Option<&Arc<Listener>> {
        self.stats.as_ref()
    }

    pub(crate) fn snmp_socket(&self) -> Option<&Arc<UdpSocket>> {
        self.snmp.as_ref()
    }

    /// The SNMP agent's bound address, if `--snmp=ADDR` was given.
    pub fn snmp_addr(&self) -> Option<std::net::SocketAddr> {
        self.snmp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The stats server's bound address, if `--stats` was given.
    pub fn stats_addr(&self) -> Option<String> {
        self.stats.as_ref().map(|l| l.local_addr())
    }

    /// The bound `--http-socket` addresses, in the order given.
    pub fn http_addrs(&self) -> Vec<String> {
        self.listeners
            .iter()
            .zip(&self.protocols)
            .filter(|(_, p)| **p == Protocol::Http)
            .map(|(l, _)| l.local_addr())
            .collect()
    }

    /// The bound addresses, stream sockets first (`--socket`, then `--http-socket`;
    /// real ports where 0 was asked).
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
    pub fn start(mut self) -> Running {
        let mut threads = Vec::new();
        let cores = self.config.cores();
        if self.poller.is_none() {
            match self.http_poller(0) {
                Ok(poller) => self.poller = poller.map(Arc::new),
                Err(err) => self.shared.log(format_args!("http poller: {err}")),
            }
        }
        for (listener, protocol) in self.listeners.iter().zip(&self.protocols) {
            for index in 0..self.workers_per_listener {
                let listener = Arc::clone(listener);
                let shared = Arc::clone(&self.shared);
                let stopping = Arc::clone(&self.stopping);
                // Thread `index` plays core `index % threads` of worker `index / threads`.
                let seat = Seat {
                    worker: index / cores,
                    core: index % cores,
                    max_requests: 0,
                    in_accept: None,
                };
                // The threads of the HTTP listeners all serve the one poller.
                let poller = match protocol {
                    Protocol::Uwsgi => None,
                    Protocol::Http => match &self.poller {
                        Some(poller) => Some(Arc::clone(poller)),
                        None => continue,
                    },
                };
                threads.push(std::thread::spawn(move || match poller {
                    Some(poller) => crate::http::park::run(&poller, &seat, &shared, &stopping),
                    None => worker(seat, &listener, &shared, &stopping),
                }));
            }
        }
        if let Some(stats) = &self.stats {
            let (stats, shared, stopping) = (
                Arc::clone(stats),
                Arc::clone(&self.shared),
                Arc::clone(&self.stopping),
            );
            let sockets: Vec<(String, i32)> = self
                .listeners
                .iter()
                .map(|l| (l.local_addr(), std::os::fd::AsRawFd::as_raw_fd(&l.as_fd())))
                .collect();
            threads.push(std::thread::spawn(move || {
                crate::stats::serve(&stats, &shared, &sockets, &stopping);
            }));
        }
        threads.extend(crate::background::start(&self.shared, &self.stopping));
        let datagram_sockets = (self.udp.iter().zip(self.udp_roles.iter().cloned()))
            .chain(self.snmp.iter().map(|s| (s, UdpRole::Snmp)));
        for (socket, role) in datagram_sockets {
            let socket = Arc::clone(socket);
            let role = role.clone();
            let shared = Arc::clone(&self.shared);
            let stopping = Arc::clone(&self.stopping);
            threads.push(std::thread::spawn(move || {
                datagram_worker(&socket, &role, &shared, &stopping);
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
        if let Some(poller) = &server.poller {
            poller.close_all();
        }
        server.shared.app.stop_worker();
        server.cleanup(true);
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

    /// The bound `--http-socket` addresses.
    pub fn http_addrs(&self) -> Vec<String> {
        self.server.http_addrs()
    }

    /// The stats server's address, if any.
    pub fn stats_addr(&self) -> Option<String> {
        self.server.stats_addr()
    }

    /// A handle that stops this server from another thread (a signal handler).
    pub fn stopper(&self) -> Stopper {
        let uwsgi = self
            .server
            .listeners
            .iter()
            .zip(&self.server.protocols)
            .filter(|(_, p)| **p == Protocol::Uwsgi)
            .map(|(l, _)| Arc::clone(l));
        Stopper {
            stopping: Arc::clone(&self.server.stopping),
            listeners: uwsgi.collect(),
            stats: self.server.stats.clone(),
            poller: self.server.poller.clone(),
        }
    }

    /// The `--http-socket` connections of this process: accepted so far, and parked
    /// (open, waiting for their next request) now.
    pub fn http_connections(&self) -> HttpConnections {
        self.server
            .poller
            .as_ref()
            .map_or(HttpConnections::default(), |p| HttpConnections {
                accepted: p.accepted(),
                parked: p.parked(),
            })
    }

    /// Blocks until every worker has stopped.
    pub fn wait(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
        if let Some(poller) = &self.server.poller {
            poller.close_all();
        }
        self.server.shared.app.stop_worker();
        self.server.cleanup(true);
    }
}

/// The `--http-socket` connections of a process ([`Running::http_connections`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpConnections {
    /// Connections accepted so far.
    pub accepted: u64,
    /// Connections open and waiting for their next request, holding no thread.
    pub parked: usize,
}

/// Stops a running server gracefully: no new connection is accepted, and every worker
/// finishes the request it is serving before it exits; idle HTTP connections are
/// closed.
#[derive(Debug, Clone)]
pub struct Stopper {
    stopping: Arc<AtomicBool>,
    /// The `--socket` listeners, whose workers block in `accept`.
    listeners: Vec<Arc<Listener>>,
    stats: Option<Arc<Listener>>,
    poller: Option<Arc<Poller>>,
}

impl Stopper {
    /// Asks the workers to stop: wakes the HTTP threads waiting on the poller, and
    /// those blocked in `accept` with a connection that they close at once.
    pub fn stop(&self, workers_per_listener: usize) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(poller) = &self.poller {
            poller.wake_all();
        }
        let wakes = self
            .listeners
            .iter()
            .flat_map(|l| std::iter::repeat_n(l, workers_per_listener))
            .chain(self.stats.iter());
        for listener in wakes {
            listener.poke();
        }
    }
}

impl Server {
    /// `--vacuum`: removes the unix sockets and, when `pidfiles`, the pidfiles.
    pub(crate) fn cleanup(&self, pidfiles: bool) {
        if !self.config.vacuum {
            return;
        }
        for listener in self.listeners.iter().chain(self.stats.iter()) {
            if let Listener::Unix(_, path) = listener.as_ref() {
                let _ = std::fs::remove_file(path);
            }
        }
        if pidfiles {
            for pidfile in [&self.config.pidfile, &self.config.pidfile2]
                .into_iter()
                .flatten()
            {
                let _ = std::fs::remove_file(pidfile);
            }
        }
    }
}

/// A socket's own access rules (see [`crate::config::SocketPolicy`]).
#[derive(Debug)]
struct SocketRules {
    allowed_modifiers: Option<[bool; 256]>,
    management: Option<Vec<PeerRule>>,
}

fn modifier_table(list: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    for m in list {
        table[usize::from(*m)] = true;
    }
    table
}

thread_local! {
    /// The descriptor of the socket the current thread is serving (-1: none), for the
    /// per-socket access rules.
    static SERVING_SOCKET: std::cell::Cell<i32> = const { std::cell::Cell::new(-1) };
}

/// Set in a grunt (a worker forked by `uwsgi.grunt()` in the middle of a request): it
/// exits once that request is answered.
static GRUNT: AtomicBool = AtomicBool::new(false);

/// Makes this process a grunt (see [`exit_if_grunt`]). Only the Python host forks grunts.
#[cfg(feature = "python")]
pub(crate) fn become_grunt() {
    GRUNT.store(true, Ordering::SeqCst);
}

/// In a grunt, after its request was answered: ends the process (before the worker's
/// accounting, since a grunt is not a worker).
pub(crate) fn exit_if_grunt() {
    if GRUNT.load(Ordering::SeqCst) {
        std::process::exit(0);
    }
}

/// Marks the calling thread as serving `socket` (its per-socket rules apply).
pub(crate) fn serving_socket(socket: &impl std::os::fd::AsFd) {
    use std::os::fd::AsRawFd;
    serving_socket_fd(socket.as_fd().as_raw_fd());
}

/// [`serving_socket`] by descriptor.
pub(crate) fn serving_socket_fd(fd: i32) {
    SERVING_SOCKET.with(|current| current.set(fd));
}

thread_local! {
    /// The (worker, core) the current thread serves as, 0-based.
    static CURRENT: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// The (worker, core) of the calling thread, 0-based; (0, 0) outside a worker thread.
pub fn current_worker() -> (usize, usize) {
    CURRENT.with(std::cell::Cell::get)
}

/// Makes the calling thread the worker thread of `seat`.
pub(crate) fn take_seat(seat: &Seat, shared: &Shared) {
    CURRENT.with(|current| current.set((seat.worker, seat.core)));
    shared.app.start_thread();
}

/// Where a worker thread sits.
#[derive(Debug, Clone)]
pub(crate) struct Seat {
    /// 0-based worker index.
    pub(crate) worker: usize,
    /// 0-based core (thread) index within the worker.
    pub(crate) core: usize,
    /// `--max-requests` (0: none): past it the thread sets `stopping`.
    pub(crate) max_requests: u64,
    /// Set while the thread waits in `accept`: only then may it be interrupted by the
    /// forked worker's wake-up signal.
    pub(crate) in_accept: Option<Arc<AtomicBool>>,
}

/// What a stream listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// The uwsgi protocol (`--socket`): one request per connection, served by threads
    /// blocking in `accept` ([`worker`]).
    Uwsgi,
    /// Plain HTTP/1.1 (`--http-socket`), with keep-alive, served by threads taking
    /// ready connections from the process's poller ([`crate::http::park`]).
    Http,
}

/// One worker thread of a `--socket` listener: accepts on `listener` and serves each
/// connection (one request) until `stopping` is set. A connection accepted is always
/// served, even when the stop came meanwhile (a graceful stop never drops a connection
/// it took from the queue); the stop is noticed when `accept` returns: with a
/// connection, on the listener's timeout, or interrupted by a signal (the forked
/// workers' wake-up).
pub(crate) fn worker(seat: Seat, listener: &Listener, shared: &Shared, stopping: &AtomicBool) {
    take_seat(&seat, shared);
    serving_socket(&listener.as_fd());
    let mut buffer = Vec::with_capacity(usize::from(shared.limits.max_datasize) + 4);
    let waiting = |now: bool| {
        if let Some(flag) = &seat.in_accept {
            flag.store(now, Ordering::SeqCst);
        }
    };
    while !stopping.load(Ordering::SeqCst) {
        waiting(true);
        // Looked at again: a stop that came before the flag was set sent no wake-up.
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let accepted = match listener {
            Listener::Tcp(l) => listen::accept_tcp(l).map(Accepted::Tcp),
            Listener::Unix(l, _) => listen::accept_unix(l).map(Accepted::Unix),
        };
        waiting(false);
        let served = match accepted {
            Ok(Accepted::Tcp((stream, addr))) => Ok({
                // Shared with an app that holds the connection during the request.
                let stream = Arc::new(stream);
                let request = shared.scoreboard.begin(seat.worker, seat.core);
                serve_one(&stream, Peer::Inet(addr), shared, &mut buffer, |t| {
                    stream.set_read_timeout(t)?;
                    stream.set_write_timeout(t)
                });
                exit_if_grunt();
                // Counted before the close, so whoever saw the reply also sees it in the
                // stats.
                let count = request.finish();
                drop(stream);
                count
            }),
            Ok(Accepted::Unix(stream)) => Ok({
                // Unix sockets do not inherit the listener's timeouts (Linux creates the
                // accepted socket anew rather than cloning the listener).
                let timeout = Some(shared.socket_timeout).filter(|t| !t.is_zero());
                let timeouts_set = stream
                    .set_read_timeout(timeout)
                    .and_then(|()| stream.set_write_timeout(timeout));
                match timeouts_set {
                    Err(err) => {
                        shared.log(format_args!("cannot set socket timeouts: {err}"));
                        drop(stream);
                    }
                    Ok(()) => {
                        // Shared with an app that holds the connection during the request.
                        let stream = Arc::new(stream);
                        let request = shared.scoreboard.begin(seat.worker, seat.core);
                        serve_one(&stream, Peer::Unix, shared, &mut buffer, |t| {
                            stream.set_read_timeout(t)?;
                            stream.set_write_timeout(t)
                        });
                        exit_if_grunt();
                        // Counted before the close, so whoever saw the reply also sees
                        // it in the stats.
                        drop(request);
                        drop(stream);
                    }
                }
                shared
                    .scoreboard
                    .get(seat.worker, WorkerField::DeltaRequests)
            }),
            Err(err) => Err(err),
        };
        match served {
            Ok(count) => {
                if seat.max_requests > 0 && count >= seat.max_requests {
                    stopping.store(true, Ordering::SeqCst);
                }
            }
            // The listener's receive timeout also bounds `accept`, and a signal
            // interrupts it: look at `stopping` again.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            // Out of file descriptors or a transient accept error: pause, don't spin.
            Err(err) => {
                shared.log(format_args!("accept failed: {err}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// A connection just accepted.
enum Accepted {
    Tcp((std::net::TcpStream, std::net::SocketAddr)),
    Unix(std::os::unix::net::UnixStream),
}

fn serve_one<S: Send + Sync + std::os::fd::AsFd + 'static>(
    stream: &Arc<S>,
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

fn datagram_worker(socket: &UdpSocket, role: &UdpRole, shared: &Shared, stopping: &AtomicBool) {
    let mut buffer = vec![0u8; usize::from(u16::MAX) + 4];
    // Wake up now and then to notice a stop.
    if let Err(err) = socket.set_read_timeout(Some(Duration::from_millis(200))) {
        shared.log(format_args!("udp socket: {err}"));
        return;
    }
    while !stopping.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buffer) {
            Ok((len, from)) => answer_datagram(&buffer[..len], from, socket, role, shared),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(err) => {
                shared.log(format_args!("udp receive failed: {err}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Most datagrams the master's loop handles from one socket per wake-up, so a flood
/// cannot keep it from its other duties (the rest wait for the next round).
const DATAGRAMS_PER_WAKEUP: usize = 1024;

/// Handles the datagrams waiting on a non-blocking UDP socket (the master's loop), at
/// most [`DATAGRAMS_PER_WAKEUP`].
pub(crate) fn answer_datagrams(socket: &UdpSocket, role: &UdpRole, shared: &Shared) {
    let mut buffer = vec![0u8; usize::from(u16::MAX) + 4];
    for _ in 0..DATAGRAMS_PER_WAKEUP {
        let Ok((len, from)) = socket.recv_from(&mut buffer) else {
            break;
        };
        answer_datagram(&buffer[..len], from, socket, role, shared);
    }
}

fn answer_datagram(
    datagram: &[u8],
    from: std::net::SocketAddr,
    socket: &UdpSocket,
    role: &UdpRole,
    shared: &Shared,
) {
    // uWSGI's master: SNMP first on `--udp` sockets, when the agent runs (spec §7.6).
    let snmp = *role == UdpRole::Snmp
        || (*role == UdpRole::Service
            && datagram.first() == Some(&crate::handlers::snmp::SNMP_FIRST_BYTE)
            && shared.state.snmp().is_some());
    if snmp {
        crate::handlers::snmp::answer(datagram, from, socket, shared);
        return;
    }
    serving_socket(socket);
    let peer = Peer::Inet(from);
    if let UdpRole::CacheSync(cache) = role {
        crate::dispatch::apply_cache_sync(datagram, cache, from, peer, shared);
        return;
    }
    match Packet::decode_datagram(datagram, &shared.limits) {
        Ok(packet) => crate::dispatch::answer_datagram(&packet, socket, from, peer, shared),
        Err(err) => shared.log(format_args!("invalid datagram from {from}: {err}")),
    }
}
