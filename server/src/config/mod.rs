//! Server configuration from uWSGI-style sources: the command line, `--ini` files and
//! `UWSGI_*` environment variables.
//!
//! Every source is first flattened into one ordered list of settings (`name`, `value`,
//! where it came from); `--ini` is replaced in place by the file's pairs. Placeholders
//! are then expanded, every name is checked against [`options::OPTIONS`], and the list is
//! applied to a [`ServerConfig`]. So an option behaves the same whichever way it is given,
//! and every error names the file and line (or argument, or variable) at fault.

mod ini;
pub mod options;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::listen::ListenAddr;
use crate::state::StateConfig;
use crate::state::cache::CacheConfig;
use crate::state::queue::QueueConfig;
use crate::state::sharedarea::SharedAreaConfig;
use crate::state::snmp::SnmpConfig;
use crate::state::spooler::SpoolerConfig;
use options::{Arity, Support};

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The `n`th command-line argument (1-based).
    Argument(usize),
    /// A line of an ini file.
    Ini {
        /// The file as given.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// An environment variable.
    Environment(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Argument(n) => write!(f, "command-line argument {n}"),
            Origin::Ini { file, line } => write!(f, "{}:{line}", file.display()),
            Origin::Environment(var) => write!(f, "environment variable {var}"),
        }
    }
}

/// Why the configuration was refused. The server does not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A name that is neither an option nor a placeholder used anywhere.
    #[error("{origin}: unknown option '{name}' (see docs/migrating-from-uwsgi.md)")]
    Unknown {
        /// The name as written.
        name: String,
        /// Where.
        origin: Origin,
    },
    /// A known uWSGI option this server refuses.
    #[error("{origin}: option '{name}' is not supported: {reason}")]
    Refused {
        /// The option.
        name: String,
        /// Why, and what to do instead.
        reason: &'static str,
        /// Where.
        origin: Origin,
    },
    /// A value that does not parse for its option.
    #[error("{origin}: bad value '{value}' for '{name}': {reason}")]
    BadValue {
        /// The option.
        name: String,
        /// The value after expansion.
        value: String,
        /// What was expected.
        reason: String,
        /// Where.
        origin: Origin,
    },
    /// An option that needs a value was given none.
    #[error("{origin}: option '{name}' needs a value")]
    MissingValue {
        /// The option.
        name: String,
        /// Where.
        origin: Origin,
    },
    /// `%(name)` with no setting or placeholder of that name before it.
    #[error("{origin}: placeholder %({name}) is not defined")]
    UndefinedPlaceholder {
        /// The placeholder.
        name: String,
        /// Where.
        origin: Origin,
    },
    /// `$(VAR)` naming an unset environment variable.
    #[error("{origin}: environment variable {var} is not set")]
    UndefinedEnvironment {
        /// The variable.
        var: String,
        /// Where.
        origin: Origin,
    },
    /// An ini file that could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// An ini file that is not valid ini.
    #[error("{}:{line}: {reason}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// `--ini FILE:section` naming a section the file does not have.
    #[error("{}: no [{section}] section", file.display())]
    MissingSection {
        /// The file.
        file: PathBuf,
        /// The section.
        section: String,
    },
    /// Ini files including each other too deeply.
    #[error("{origin}: --ini nested more than {max} levels deep")]
    TooDeep {
        /// The nesting limit.
        max: usize,
        /// Where.
        origin: Origin,
    },
    /// Nothing to listen on.
    #[error("no socket to listen on: give --socket, --http-socket or --udp")]
    NoSocket,
    /// A per-socket policy names a socket that is not configured.
    #[error(
        "--socket-allowed-modifiers / --socket-management-allow-from name {socket:?}, which is not a --socket, --http-socket or --udp address of this configuration"
    )]
    UnknownPolicySocket {
        /// The socket as written.
        socket: String,
    },
}

/// Access rules for one socket, overriding `--allowed-modifiers` and
/// `--management-allow-from` there (each `None` keeps the global rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPolicy {
    /// The socket, as given to `--socket`, `--http-socket` or `--udp`.
    pub socket: String,
    /// Modifiers answered on this socket.
    pub allowed_modifiers: Option<Vec<u8>>,
    /// Peers allowed to send management packets on this socket.
    pub management_allow_from: Option<Vec<PeerRule>>,
}

/// A configured socket, by kind and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketRef {
    /// The i-th stream listener: `--socket` entries, then `--http-socket` ones.
    Stream(usize),
    /// The i-th `--udp` socket.
    Datagram(usize),
}

fn parse_modifiers(list: &str) -> Result<Vec<u8>, String> {
    list.split(',')
        .map(|m| m.trim().parse::<u8>())
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| "expected comma-separated numbers 0..=255".to_owned())
}

fn parse_peer_rules(list: &str) -> Result<Vec<PeerRule>, String> {
    list.split(',')
        .map(|rule| PeerRule::parse(rule.trim()))
        .collect()
}

/// Deepest `--ini` nesting accepted (an ini including itself would otherwise loop).
const MAX_INI_DEPTH: usize = 16;

/// One setting, before or after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The name as written (an option name, an alias or a placeholder).
    pub name: String,
    /// The value (`"true"` for a bare switch).
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
    /// The ini file it was read from, for `%d`/`%n`-style magic variables.
    file: Option<PathBuf>,
}

/// Peers allowed to send management packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerRule {
    /// Connections on unix sockets.
    Unix,
    /// An address range.
    Network {
        /// The network address.
        addr: std::net::IpAddr,
        /// Prefix length in bits.
        prefix: u8,
    },
}

impl PeerRule {
    fn parse(text: &str) -> Result<PeerRule, String> {
        if text == "unix" {
            return Ok(PeerRule::Unix);
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| "expected an IP address, ADDR/PREFIX or 'unix'".to_string())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("prefix length must be 0..={max}"))?,
        };
        Ok(PeerRule::Network { addr, prefix })
    }

    /// Whether `peer` (None for a unix-socket peer) matches.
    pub fn matches(&self, peer: Option<std::net::IpAddr>) -> bool {
        match (self, peer) {
            (PeerRule::Unix, None) => true,
            (PeerRule::Network { addr, prefix }, Some(peer)) => {
                in_network(*addr, *prefix, canonical(peer))
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 peers compare as IPv4.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

fn in_network(net: std::net::IpAddr, prefix: u8, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr::{V4, V6};
    match (net, ip) {
        (V4(net), V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (V6(net), V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// The whole configuration of a server, with uWSGI's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `--socket`: stream listeners.
    pub sockets: Vec<ListenAddr>,
    /// `--http-socket`: plain HTTP listeners.
    pub http_sockets: Vec<ListenAddr>,
    /// `--http-socket-modifier1`.
    pub http_modifier1: u8,
    /// `--http-keepalive`: idle time between requests on an HTTP connection.
    pub http_keepalive: Duration,
    /// `--http-max-parked`: idle HTTP connections a worker process keeps.
    pub http_max_parked: usize,
    /// `--udp`: datagram listeners.
    pub udp_sockets: Vec<std::net::SocketAddr>,
    /// `--chmod-socket`: mode of unix sockets.
    pub chmod_socket: Option<u32>,
    /// `--listen`: accept backlog.
    pub listen_backlog: i32,
    /// `--multicast-ttl`, `--multicast-loop`, `--multicast-interface`.
    pub multicast: crate::listen::Multicast,
    /// `--vacuum`.
    pub vacuum: bool,
    /// `--buffer-size`: largest request block.
    pub buffer_size: u16,
    /// `--max-vars`: half the pair limit, as in uWSGI.
    pub max_vars: usize,
    /// `--limit-post`: largest body, 0 for the codec's own limit.
    pub limit_post: u64,
    /// `--socket-timeout`.
    pub socket_timeout: Duration,
    /// `--post-buffering`.
    pub post_buffering: usize,
    /// `--processes`.
    pub processes: usize,
    /// `--threads`.
    pub threads: usize,
    /// `--async`: async cores per worker (0: no async mode), served as threads.
    pub async_cores: usize,
    /// `--master`: fork and supervise worker processes.
    pub master: bool,
    /// `--max-requests`: recycle a worker after this many requests (0: never).
    pub max_requests: u64,
    /// `--harakiri`: kill a worker stuck on one request this long (zero: never).
    pub harakiri: Duration,
    /// `--harakiri-verbose`.
    pub harakiri_verbose: bool,
    /// `--reload-mercy`: how long a reload or shutdown waits for the processes.
    pub reload_mercy: Duration,
    /// `--worker-reload-mercy`: how long a recycled worker may take to finish.
    pub worker_reload_mercy: Duration,
    /// `--die-on-term`: SIGTERM shuts the master down instead of reloading it.
    pub die_on_term: bool,
    /// `--pidfile2`.
    pub pidfile2: Option<PathBuf>,
    /// `--stats`: where the stats server listens.
    pub stats: Option<ListenAddr>,
    /// `--snmp` or `--snmp-community`: the SNMP agent runs (answering on `--udp`
    /// sockets, and on [`ServerConfig::snmp_addr`] when given).
    pub snmp: bool,
    /// `--snmp=ADDR`: the agent's own UDP socket.
    pub snmp_addr: Option<std::net::SocketAddr>,
    /// `--snmp-community` (at most 72 bytes).
    pub snmp_community: Option<Vec<u8>>,
    /// `--pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `--logto`.
    pub logto: Option<PathBuf>,
    /// The request log: `--logformat`, `--disable-logging` and the filters that log
    /// some requests despite it (`--log-4xx`, `--log-5xx`, `--log-slow`, `--log-big`,
    /// `--log-zero`), `--log-micros`, `--log-x-forwarded-for`.
    pub request_log: crate::reqlog::RequestLog,
    /// `--allowed-modifiers`: `None` answers every modifier with a handler.
    pub allowed_modifiers: Option<Vec<u8>>,
    /// `--management-allow-from`: empty means the default (loopback and unix peers).
    pub management_allow_from: Vec<PeerRule>,
    /// Per-socket overrides of the two above (`--socket-allowed-modifiers`,
    /// `--socket-management-allow-from`), each naming a socket as it was configured.
    pub socket_policies: Vec<SocketPolicy>,
    /// `--warning-message`.
    pub warning_message: Vec<u8>,
    /// `--cache2` option strings, in order.
    pub cache2: Vec<String>,
    /// `--cache` items.
    pub cache_items: Option<u64>,
    /// `--cache-blocksize`.
    pub cache_blocksize: Option<u64>,
    /// `--cache-udp-server`: where the `--cache` cache receives replicated writes.
    pub cache_udp_servers: Vec<String>,
    /// `--cache-udp-node`: where the `--cache` cache replicates its writes.
    pub cache_udp_nodes: Vec<String>,
    /// `--cache-sync`: the node the `--cache` cache is copied from at start.
    pub cache_sync: Option<String>,
    /// `--queue` slots.
    pub queue: Option<u64>,
    /// `--queue-blocksize`.
    pub queue_blocksize: Option<u64>,
    /// `--sharedarea` option strings (a page count or uWSGI's key=value form).
    pub sharedareas: Vec<String>,
    /// `--locks`.
    pub locks: u64,
    /// `--spooler` directories.
    pub spoolers: Vec<PathBuf>,
    /// `--spooler-processes`.
    pub spooler_processes: usize,
    /// `--mule [FILE]` and `--mules N`: one entry per mule, its script or `None` for the
    /// default message loop.
    pub mules: Vec<Option<PathBuf>>,
    /// `--farm NAME:1,2`: farms of 1-based mule ids.
    pub farms: Vec<(String, Vec<usize>)>,
    /// `--spooler-frequency`.
    pub spooler_frequency: Duration,
    /// Every effective setting by option name, in order (what `uwsgi.opt` exposes).
    pub settings: Vec<(String, String)>,
    /// The ini files settings were read from, in the order they were read (nested
    /// includes too): the files uWSGI's magic variables describe
    /// ([`ServerConfig::magic_table`]).
    pub config_files: Vec<PathBuf>,
    /// The Python host's options.
    pub python: PythonConfig,
}

/// What the Python host loads and how (`--wsgi-file`, `--module`, `--mount`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonConfig {
    /// `--wsgi-file`.
    pub wsgi_file: Option<PathBuf>,
    /// `--module` / `--wsgi` / `-w`: `pkg.mod` or `pkg.mod:callable`.
    pub module: Option<String>,
    /// `--callable`: default `application`.
    pub callable: Option<String>,
    /// `--mount /prefix=app`: (mountpoint, app) in order.
    pub mounts: Vec<(String, String)>,
    /// `--pythonpath`.
    pub pythonpath: Vec<PathBuf>,
    /// `--chdir`.
    pub chdir: Option<PathBuf>,
    /// `--home`: a virtualenv.
    pub home: Option<PathBuf>,
    /// `--env K=V`.
    pub env: Vec<(String, String)>,
    /// `--enable-threads`.
    pub enable_threads: bool,
    /// `--lazy-apps`.
    pub lazy_apps: bool,
    /// `--grunt`: `uwsgi.grunt()` may fork.
    pub grunt: bool,
    /// `--websockets-max-size`, in KiB (uWSGI's default 1024).
    pub websockets_max_size: u64,
    /// `--need-app`.
    pub need_app: bool,
    /// `--import`.
    pub imports: Vec<String>,
    /// `--shared-import`.
    pub shared_imports: Vec<String>,
    /// `--py-autoreload`: how often the loaded modules' files are checked (zero: never).
    pub autoreload: Duration,
    /// `--py-auto-reload-ignore`: module names the auto-reloader skips.
    pub autoreload_ignore: Vec<String>,
}

impl PythonConfig {
    /// Whether any option asks for a Python application (or Python code to run).
    pub fn wanted(&self) -> bool {
        self.wsgi_file.is_some()
            || self.module.is_some()
            || !self.mounts.is_empty()
            || !self.imports.is_empty()
            || !self.shared_imports.is_empty()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            sockets: Vec::new(),
            http_sockets: Vec::new(),
            http_modifier1: 0,
            http_keepalive: Duration::from_secs(5),
            http_max_parked: crate::http::DEFAULT_MAX_PARKED,
            udp_sockets: Vec::new(),
            chmod_socket: None,
            listen_backlog: 100,
            multicast: crate::listen::Multicast::default(),
            vacuum: false,
            buffer_size: 4096,
            max_vars: 64,
            limit_post: 0,
            socket_timeout: Duration::from_secs(4),
            post_buffering: 0,
            processes: 1,
            threads: 1,
            async_cores: 0,
            master: false,
            max_requests: 0,
            harakiri: Duration::ZERO,
            harakiri_verbose: false,
            reload_mercy: Duration::from_secs(60),
            worker_reload_mercy: Duration::from_secs(60),
            die_on_term: false,
            pidfile2: None,
            stats: None,
            snmp: false,
            snmp_addr: None,
            snmp_community: None,
            pidfile: None,
            logto: None,
            request_log: crate::reqlog::RequestLog::default(),
            allowed_modifiers: None,
            management_allow_from: Vec::new(),
            socket_policies: Vec::new(),
            warning_message: Vec::new(),
            cache2: Vec::new(),
            cache_items: None,
            cache_blocksize: None,
            cache_udp_servers: Vec::new(),
            cache_udp_nodes: Vec::new(),
            cache_sync: None,
            queue: None,
            queue_blocksize: None,
            sharedareas: Vec::new(),
            locks: 0,
            spoolers: Vec::new(),
            spooler_processes: 1,
            mules: Vec::new(),
            farms: Vec::new(),
            spooler_frequency: Duration::from_secs(30),
            settings: Vec::new(),
            config_files: Vec::new(),
            python: PythonConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Reads the command line (without the program name) and the environment.
    pub fn from_sources(
        args: &[String],
        env: &[(String, String)],
    ) -> Result<ServerConfig, ConfigError> {
        let mut settings = environment_settings(env);
        settings.extend(argument_settings(args)?);
        ServerConfig::from_unexpanded(include_ini_files(settings, 0)?, env)
    }

    /// Expands and applies settings whose `ini` includes are already read.
    fn from_unexpanded(
        settings: Vec<Setting>,
        env: &[(String, String)],
    ) -> Result<ServerConfig, ConfigError> {
        // Placeholders are the names used as `%(name)` before expansion replaces them.
        let placeholders: std::collections::HashSet<String> = placeholder_names(&settings)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let settings = expand(settings, env)?;
        ServerConfig::from_settings(&settings, &placeholders)
    }

    /// Reads one ini text as if it were the file `path` given with `--ini path:section`
    /// (nested `ini` keys are read from disk relative to `path`). For tests and fuzzing:
    /// the same path through the parser, expansion and checks as a real file.
    pub fn from_ini_text(
        text: &str,
        path: &Path,
        section: &str,
        env: &[(String, String)],
    ) -> Result<ServerConfig, ConfigError> {
        let settings = ini_settings(ini::section_pairs(text, path, section)?, path);
        ServerConfig::from_unexpanded(include_ini_files(settings, 1)?, env)
    }

    /// Applies expanded settings, checking every name; names in `placeholders` are not
    /// options and are skipped.
    pub fn from_settings(
        settings: &[Setting],
        placeholders: &std::collections::HashSet<String>,
    ) -> Result<ServerConfig, ConfigError> {
        let mut config = ServerConfig::default();
        for setting in settings {
            let Some(spec) = options::find(&setting.name) else {
                if placeholders.contains(&setting.name) {
                    continue;
                }
                return Err(ConfigError::Unknown {
                    name: setting.name.clone(),
                    origin: setting.origin.clone(),
                });
            };
            if let Support::Refused(reason) = spec.support {
                return Err(ConfigError::Refused {
                    name: spec.name.to_owned(),
                    reason,
                    origin: setting.origin.clone(),
                });
            }
            config.apply(spec.name, spec.arity, setting)?;
            config
                .settings
                .push((spec.name.to_owned(), setting.value.clone()));
            if let Some(file) = &setting.file
                && !config.config_files.contains(file)
            {
                config.config_files.push(file.clone());
            }
        }
        if config.sockets.is_empty()
            && config.http_sockets.is_empty()
            && config.udp_sockets.is_empty()
        {
            return Err(ConfigError::NoSocket);
        }
        for policy in &config.socket_policies {
            if config.socket_index(&policy.socket).is_none() {
                return Err(ConfigError::UnknownPolicySocket {
                    socket: policy.socket.clone(),
                });
            }
        }
        Ok(config)
    }

    /// Which socket a policy names: `Stream(i)` is the i-th stream listener (`--socket`
    /// entries, then `--http-socket` ones), `Datagram(i)` the i-th `--udp` socket. The
    /// name is compared as an address, so `127.0.0.1:3031` and `127.0.0.1:3031 ` match.
    pub fn socket_index(&self, socket: &str) -> Option<SocketRef> {
        if let Ok(addr) = ListenAddr::parse(socket)
            && let Some(i) = (self.sockets.iter())
                .chain(&self.http_sockets)
                .position(|a| *a == addr)
        {
            return Some(SocketRef::Stream(i));
        }
        let udp: std::net::SocketAddr = socket.parse().ok()?;
        self.udp_sockets
            .iter()
            .position(|a| *a == udp)
            .map(SocketRef::Datagram)
    }

    /// Requests a worker serves at once, each on its own thread: `--threads`, or
    /// `--async` cores when more.
    pub fn cores(&self) -> usize {
        self.threads.max(self.async_cores).max(1)
    }

    /// Whether this configuration runs a master with forked workers: `--master`, or an
    /// option that needs a supervisor (`--max-requests`, `--harakiri`, `--mule`,
    /// `--py-autoreload`, as uWSGI's options flagged `UWSGI_OPT_MASTER`). Without them,
    /// `--processes N` runs N × `--threads` worker threads in one process (uWSGI would
    /// fork N unsupervised workers; here the single-process mode keeps every worker on
    /// one shared state, and `--master` gives the real thing).
    pub fn uses_master(&self) -> bool {
        self.master
            || self.max_requests > 0
            || !self.harakiri.is_zero()
            || !self.mules.is_empty()
            || !self.python.autoreload.is_zero()
    }

    fn apply(&mut self, name: &str, arity: Arity, setting: &Setting) -> Result<(), ConfigError> {
        let value = setting.value.as_str();
        let bad = |reason: &str| ConfigError::BadValue {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
            origin: setting.origin.clone(),
        };
        let number = |max: u64| -> Result<u64, ConfigError> {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| bad(&format!("expected a whole number up to {max}")))
        };
        let flag =
            || parse_bool(value).ok_or_else(|| bad("expected true/false, yes/no, on/off or 1/0"));
        if arity != Arity::Flag && arity != Arity::Optional && value.is_empty() {
            return Err(ConfigError::MissingValue {
                name: name.to_owned(),
                origin: setting.origin.clone(),
            });
        }
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        match name {
            "master" => self.master = flag()?,
            "die-on-term" => self.die_on_term = flag()?,
            "max-requests" => self.max_requests = number(u64::from(u32::MAX))?,
            "harakiri" => self.harakiri = Duration::from_secs(number(86_400 * 365)?),
            "harakiri-verbose" => self.harakiri_verbose = flag()?,
            "reload-mercy" => self.reload_mercy = Duration::from_secs(number(86_400)?),
            "worker-reload-mercy" => {
                self.worker_reload_mercy = Duration::from_secs(number(86_400)?);
            }
            "pidfile2" => self.pidfile2 = Some(PathBuf::from(value)),
            "ini" | "strict" | "set-placeholder" => {
                if arity == Arity::Flag {
                    flag()?;
                }
            }
            "socket" => self
                .sockets
                .push(ListenAddr::parse(value).map_err(|e| bad(&e))?),
            "http-socket" => self
                .http_sockets
                .push(ListenAddr::parse(value).map_err(|e| bad(&e))?),
            "http-socket-modifier1" => {
                self.http_modifier1 = u8::try_from(number(255)?).unwrap_or(0);
            }
            "http-keepalive" => self.http_keepalive = Duration::from_secs(number(86_400)?),
            "http-max-parked" => {
                self.http_max_parked = usize::try_from(number(1_000_000)?).unwrap_or(1_000_000);
            }
            "udp" => self
                .udp_sockets
                .push(crate::listen::resolve_inet(value).map_err(|e| bad(&e))?),
            "chmod-socket" => {
                let mode = if value.is_empty() || value == "true" {
                    0o666
                } else {
                    u32::from_str_radix(value, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| bad("expected an octal mode such as 660"))?
                };
                self.chmod_socket = Some(mode);
            }
            "listen" => self.listen_backlog = i32::try_from(number(65535)?).unwrap_or(100),
            "multicast-ttl" => self.multicast.ttl = u32::try_from(number(255)?).unwrap_or(1),
            // uWSGI's takes a number (any non-zero switches the loop on); alone, or as
            // a boolean word, it reads as a switch.
            "multicast-loop" => {
                self.multicast.loop_back = match value.parse::<i64>() {
                    Ok(number) => number != 0,
                    Err(_) if value.is_empty() => true,
                    Err(_) => flag()?,
                };
            }
            "multicast-interface" => {
                self.multicast.interface = Some(
                    value
                        .parse::<std::net::Ipv4Addr>()
                        .map_err(|_| bad("expected an IPv4 address"))?,
                );
            }
            "vacuum" => self.vacuum = flag()?,
            "buffer-size" => {
                self.buffer_size = u16::try_from(number(65535)?).unwrap_or(u16::MAX);
            }
            "max-vars" => self.max_vars = to_usize(number(32767)?),
            "limit-post" => self.limit_post = number(u64::MAX)?,
            "socket-timeout" => self.socket_timeout = Duration::from_secs(number(86_400)?),
            "post-buffering" => self.post_buffering = to_usize(number(1 << 30)?),
            "processes" => self.processes = to_usize(number(1024)?).max(1),
            "threads" => self.threads = to_usize(number(1024)?).max(1),
            "async" => self.async_cores = to_usize(number(1024)?),
            "snmp" => {
                self.snmp = true;
                self.snmp_addr = if value.is_empty() || value == "true" {
                    None
                } else {
                    Some(crate::listen::resolve_inet(value).map_err(|e| bad(&e))?)
                };
            }
            "snmp-community" => {
                if value.len() > crate::state::snmp::MAX_COMMUNITY {
                    return Err(bad("at most 72 bytes"));
                }
                self.snmp = true;
                self.snmp_community = Some(value.as_bytes().to_vec());
            }
            "stats" => self.stats = Some(ListenAddr::parse(value).map_err(|e| bad(&e))?),
            "pidfile" => self.pidfile = Some(PathBuf::from(value)),
            "logto" => self.logto = Some(PathBuf::from(value)),
            "disable-logging" => self.request_log.filters.disabled = flag()?,
            "logformat" => {
                self.request_log.format =
                    Some(crate::reqlog::LogFormat::parse(value).map_err(|e| bad(&e))?);
            }
            "logformat-strftime" => {
                flag()?;
            }
            "log-4xx" => self.request_log.filters.log_4xx = flag()?,
            "log-5xx" => self.request_log.filters.log_5xx = flag()?,
            "log-zero" => self.request_log.filters.zero = flag()?,
            "log-slow" => self.request_log.filters.slow_ms = number(u64::from(u32::MAX))?,
            "log-big" => self.request_log.filters.big = number(u64::MAX)?,
            "log-micros" => self.request_log.micros = flag()?,
            "log-x-forwarded-for" => self.request_log.x_forwarded_for = flag()?,
            "allowed-modifiers" => {
                self.allowed_modifiers = Some(parse_modifiers(value).map_err(|e| bad(&e))?);
            }
            "management-allow-from" => {
                self.management_allow_from
                    .extend(parse_peer_rules(value).map_err(|e| bad(&e))?);
            }
            "socket-allowed-modifiers" | "socket-management-allow-from" => {
                let (socket, list) = value
                    .rsplit_once('=')
                    .ok_or_else(|| bad("expected SOCKET=LIST, SOCKET as given to --socket"))?;
                let socket = socket.trim().to_owned();
                let index = match self.socket_policies.iter().position(|p| p.socket == socket) {
                    Some(index) => index,
                    None => {
                        self.socket_policies.push(SocketPolicy {
                            socket,
                            allowed_modifiers: None,
                            management_allow_from: None,
                        });
                        self.socket_policies.len() - 1
                    }
                };
                let policy = &mut self.socket_policies[index];
                if name == "socket-allowed-modifiers" {
                    policy.allowed_modifiers = Some(parse_modifiers(list).map_err(|e| bad(&e))?);
                } else {
                    policy.management_allow_from =
                        Some(parse_peer_rules(list).map_err(|e| bad(&e))?);
                }
            }
            "warning-message" => {
                if value.len() > 80 {
                    return Err(bad("at most 80 bytes"));
                }
                self.warning_message = value.as_bytes().to_vec();
            }
            "cache2" => {
                CacheConfig::from_cache2_option(value).map_err(|e| bad(&e.to_string()))?;
                self.cache2.push(value.to_owned());
            }
            "cache" => self.cache_items = Some(number(u64::from(u32::MAX))?),
            "cache-blocksize" => self.cache_blocksize = Some(number(u64::from(u32::MAX))?),
            "cache-udp-server" => {
                crate::listen::resolve_inet(value).map_err(|e| bad(&e))?;
                self.cache_udp_servers.push(value.to_owned());
            }
            "cache-udp-node" => {
                crate::state::cache_sync::resolve_node(value).map_err(|e| bad(&e.reason))?;
                self.cache_udp_nodes.push(value.to_owned());
            }
            "cache-sync" => self.cache_sync = Some(value.to_owned()),
            "queue" => self.queue = Some(number(u64::from(u32::MAX))?),
            "queue-blocksize" => self.queue_blocksize = Some(number(u64::from(u32::MAX))?),
            "sharedarea" => {
                SharedAreaConfig::from_option(value).map_err(|e| bad(&e.to_string()))?;
                self.sharedareas.push(value.to_owned());
            }
            "locks" => self.locks = number(65535)?,
            "spooler" => self.spoolers.push(PathBuf::from(value)),
            // Always ordered (see `state_config`): only the value is checked.
            "spooler-ordered" => {
                flag()?;
            }
            "spooler-processes" => self.spooler_processes = to_usize(number(64)?).max(1),
            "mule" => self.mules.push(if value.is_empty() || value == "true" {
                None
            } else {
                Some(PathBuf::from(value))
            }),
            "mules" => {
                let n = to_usize(number(256)?);
                self.mules.extend(std::iter::repeat_n(None, n));
            }
            "farm" => {
                let (name, ids) = value
                    .split_once(':')
                    .ok_or_else(|| bad("expected NAME:MULE[,MULE...]"))?;
                let members = ids
                    .split(',')
                    .map(|id| id.trim().parse::<usize>().ok().filter(|&n| n > 0))
                    .collect::<Option<Vec<usize>>>()
                    .filter(|m| !name.is_empty() && !m.is_empty())
                    .ok_or_else(|| bad("expected NAME:MULE[,MULE...]"))?;
                self.farms.push((name.to_owned(), members));
            }
            "spooler-frequency" => {
                self.spooler_frequency = Duration::from_secs(number(86_400)?.max(1))
            }
            "wsgi-file" => self.python.wsgi_file = Some(PathBuf::from(value)),
            "module" => self.python.module = Some(value.to_owned()),
            "callable" => self.python.callable = Some(value.to_owned()),
            "mount" => {
                let (mountpoint, app) = value
                    .split_once('=')
                    .filter(|(_, app)| !app.is_empty())
                    .ok_or_else(|| bad("expected MOUNTPOINT=APP (a file or a module)"))?;
                self.python
                    .mounts
                    .push((mountpoint.to_owned(), app.to_owned()));
            }
            "pythonpath" => self.python.pythonpath.push(PathBuf::from(value)),
            "chdir" => self.python.chdir = Some(PathBuf::from(value)),
            "home" => self.python.home = Some(PathBuf::from(value)),
            "env" => {
                let (key, val) = value.split_once('=').unwrap_or((value, ""));
                if key.is_empty() || key.contains('\0') || val.contains('\0') {
                    return Err(bad("expected NAME=VALUE"));
                }
                self.python.env.push((key.to_owned(), val.to_owned()));
            }
            "enable-threads" => self.python.enable_threads = flag()?,
            "lazy-apps" => self.python.lazy_apps = flag()?,
            "grunt" => self.python.grunt = flag()?,
            "websockets-max-size" => self.python.websockets_max_size = number(1 << 30)?,
            "need-app" => self.python.need_app = flag()?,
            "import" => self.python.imports.push(value.to_owned()),
            "shared-import" => self.python.shared_imports.push(value.to_owned()),
            "py-autoreload" => self.python.autoreload = Duration::from_secs(number(86_400)?),
            "py-auto-reload-ignore" => self.python.autoreload_ignore.push(value.to_owned()),
            "plugins" => {
                for plugin in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    if !is_python_plugin(plugin) {
                        return Err(bad("only the python plugin exists here (it is built in)"));
                    }
                }
            }
            other => {
                // Every supported row of the table has an arm above; a row without one
                // is a bug in this file, reported rather than ignored.
                return Err(ConfigError::Refused {
                    name: other.to_owned(),
                    reason: "listed as supported but not applied (a bug: please report it)",
                    origin: setting.origin.clone(),
                });
            }
        }
        Ok(())
    }

    /// The shared-state configuration these options describe. Every value was checked
    /// when the option was read, so this only fails on a combination (two caches with
    /// one name, for example).
    pub fn state_config(&self) -> Result<StateConfig, String> {
        let mut caches = Vec::new();
        if let Some(items) = self.cache_items {
            let mut legacy = CacheConfig::legacy(items, self.cache_blocksize);
            legacy.nodes.clone_from(&self.cache_udp_nodes);
            legacy.sync.extend(self.cache_sync.clone());
            legacy.udp_servers.clone_from(&self.cache_udp_servers);
            caches.push(legacy);
        } else if !self.cache_udp_servers.is_empty()
            || !self.cache_udp_nodes.is_empty()
            || self.cache_sync.is_some()
        {
            // uWSGI ignores them silently without the cache they belong to.
            return Err(
                "--cache-udp-server, --cache-udp-node and --cache-sync belong to the --cache \
                 cache, which is not configured (a --cache2 cache takes nodes=, udp= and sync=)"
                    .to_owned(),
            );
        }
        for option in &self.cache2 {
            caches.push(
                CacheConfig::from_cache2_option(option)
                    .map_err(|e| format!("--cache2 {option}: {e}"))?,
            );
        }
        let sharedareas = self
            .sharedareas
            .iter()
            .map(|o| SharedAreaConfig::from_option(o).map_err(|e| format!("--sharedarea {o}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let queue = self.queue.map(|slots| {
            let mut queue = QueueConfig::new(slots);
            if let Some(blocksize) = self.queue_blocksize {
                queue.blocksize = blocksize;
            }
            queue
        });
        Ok(StateConfig {
            caches,
            queue,
            sharedareas,
            locks: u32::try_from(self.locks).unwrap_or(u32::MAX),
            // Priority sub-directories are always scanned, `--spooler-ordered` or not:
            // uWSGI 2.0 scans them only with it, so without it a job acknowledged
            // with `ff 0000 01` would sit in `<dir>/<N>/` forever.
            spoolers: (self.spoolers.iter())
                .map(|dir| SpoolerConfig {
                    ordered: true,
                    ..SpoolerConfig::new(dir)
                })
                .collect(),
            snmp: self.snmp.then(|| SnmpConfig {
                community: self.snmp_community.clone(),
            }),
            ..StateConfig::default()
        })
    }

    /// The UDP addresses receiving replicated cache writes (`--cache-udp-server` and
    /// the `udp=` of every `--cache2`), each with the name of its cache, in cache order.
    pub fn cache_udp_bindings(&self) -> Result<Vec<(std::net::SocketAddr, String)>, String> {
        let mut bindings = Vec::new();
        for cache in self.state_config()?.caches {
            for addr in &cache.udp_servers {
                let resolved = crate::listen::resolve_inet(addr)
                    .map_err(|e| format!("cache \"{}\": udp address {addr}: {e}", cache.name))?;
                bindings.push((resolved, cache.name.clone()));
            }
        }
        Ok(bindings)
    }

    /// Decoding limits derived from the options.
    pub fn limits(&self) -> uwsgi_protocol::Limits {
        let defaults = uwsgi_protocol::Limits::DEFAULT;
        uwsgi_protocol::Limits {
            max_datasize: self.buffer_size,
            max_vars: self.max_vars.saturating_mul(2),
            max_body: if self.limit_post == 0 {
                defaults.max_body
            } else {
                self.limit_post
            },
            ..defaults
        }
    }
}

fn is_python_plugin(name: &str) -> bool {
    let name = name.strip_suffix("_plugin.so").unwrap_or(name);
    name == "python"
        || name
            .strip_prefix("python3")
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit()))
}

/// uWSGI's booleans.
fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" | "y" | "t" => Some(true),
        "0" | "false" | "no" | "off" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// `UWSGI_BUFFER_SIZE=8192` is `--buffer-size 8192`. Variables that name no option are
/// kept too: they may be placeholders (`%(foo)` for `UWSGI_FOO`), and a name that is
/// neither is reported like any other unknown option, except that the variables uWSGI
/// itself sets for its children are skipped.
fn environment_settings(env: &[(String, String)]) -> Vec<Setting> {
    env.iter()
        .filter_map(|(var, value)| {
            let name = var
                .strip_prefix("UWSGI_")?
                .to_ascii_lowercase()
                .replace('_', "-");
            options::find(&name)?;
            Some(Setting {
                name,
                value: value.clone(),
                origin: Origin::Environment(var.clone()),
                file: None,
            })
        })
        .collect()
}

/// `--name value`, `--name=value`, `-n value`, `-nvalue`, switches without a value, and a
/// bare `FILE.ini` argument as `--ini FILE.ini` (uWSGI guesses the format the same way).
fn argument_settings(args: &[String]) -> Result<Vec<Setting>, ConfigError> {
    let mut settings = Vec::new();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        let origin = Origin::Argument(index + 1);
        index += 1;
        let (name, inline) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (long.to_owned(), None),
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let letter: String = chars.next().map(String::from).unwrap_or_default();
            let rest = chars.as_str().trim_start_matches('=');
            (letter, (!rest.is_empty()).then(|| rest.to_owned()))
        } else if arg.ends_with(".ini") || arg.contains(".ini:") {
            ("ini".to_owned(), Some(arg.clone()))
        } else {
            return Err(ConfigError::Unknown {
                name: arg.clone(),
                origin,
            });
        };
        let arity = options::find(&name).map(|spec| spec.arity);
        let value = match (inline, arity) {
            (Some(value), _) => value,
            (None, Some(Arity::Flag)) => "true".to_owned(),
            (None, Some(arity)) => {
                // An optional value (`--chmod-socket` alone means 666, `--snmp` alone
                // has no address) is the next argument unless that is an option or a
                // bare `FILE.ini` (read as `--ini FILE.ini` below).
                let next_is_value = args.get(index).is_some_and(|next| {
                    !next.starts_with('-')
                        && (arity != Arity::Optional
                            || !(next.ends_with(".ini") || next.contains(".ini:")))
                });
                if next_is_value || arity != Arity::Optional {
                    let Some(value) = args.get(index) else {
                        return Err(ConfigError::MissingValue { name, origin });
                    };
                    index += 1;
                    value.clone()
                } else {
                    String::new()
                }
            }
            (None, None) => return Err(ConfigError::Unknown { name, origin }),
        };
        settings.push(Setting {
            name,
            value,
            origin,
            file: None,
        });
    }
    Ok(settings)
}

/// Replaces every `ini` setting by the pairs of its file, recursively.
fn include_ini_files(settings: Vec<Setting>, depth: usize) -> Result<Vec<Setting>, ConfigError> {
    let mut out = Vec::with_capacity(settings.len());
    for setting in settings {
        if options::find(&setting.name).map(|s| s.name) != Some("ini") {
            out.push(setting);
            continue;
        }
        if depth >= MAX_INI_DEPTH {
            return Err(ConfigError::TooDeep {
                max: MAX_INI_DEPTH,
                origin: setting.origin,
            });
        }
        // A relative include inside an ini file is relative to that file, like uWSGI's %d.
        let spec = match &setting.file {
            Some(parent) if !setting.value.starts_with('/') => parent
                .parent()
                .unwrap_or(Path::new(""))
                .join(&setting.value)
                .to_string_lossy()
                .into_owned(),
            _ => setting.value.clone(),
        };
        let (path, section) = split_section(&spec);
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let file_settings = ini_settings(ini::section_pairs(&text, path, section)?, path);
        out.extend(include_ini_files(file_settings, depth + 1)?);
    }
    Ok(out)
}

/// The pairs of an ini file as settings that remember their file and line.
fn ini_settings(pairs: Vec<(String, String, usize)>, path: &Path) -> Vec<Setting> {
    pairs
        .into_iter()
        .map(|(name, value, line)| Setting {
            name,
            value,
            origin: Origin::Ini {
                file: path.to_path_buf(),
                line,
            },
            file: Some(path.to_path_buf()),
        })
        .collect()
}

/// `app.ini:prod` → (`app.ini`, `prod`); no section means `uwsgi`.
fn split_section(spec: &str) -> (&Path, &str) {
    match spec.rsplit_once(':') {
        Some((path, section)) if !section.is_empty() && !section.contains('/') => {
            (Path::new(path), section)
        }
        _ => (Path::new(spec), "uwsgi"),
    }
}

/// Names used as `%(name)` anywhere: such a name in the config is a placeholder, not an
/// unknown option.
fn placeholder_names(settings: &[Setting]) -> std::collections::HashSet<&str> {
    let mut names: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for setting in settings {
        let mut rest = setting.value.as_str();
        while let Some(start) = rest.find("%(") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            names.insert(&after[..end]);
            rest = &after[end + 1..];
        }
        if options::find(&setting.name).map(|s| s.name) == Some("set-placeholder")
            && let Some((name, _)) = setting.value.split_once('=')
        {
            names.insert(name.trim());
        }
    }
    names
}

/// Expands `%(name)`, `$(VAR)` and, in values read from ini files, uWSGI's magic
/// variables (`%d` the file's directory with a trailing slash, `%p` its absolute path,
/// `%s` its name, `%n` the name without extension, `%e` the extension, `%c` the name of
/// its directory, `%x` FILE:section is not tracked and is refused, `%h` the host name,
/// `%V` the version, `%k` the CPU count, `%t` the start time, `%%` a percent sign).
/// Settings are expanded in order, so `%(name)` sees the value set most recently before
/// it, as in uWSGI.
pub fn expand(
    settings: Vec<Setting>,
    env: &[(String, String)],
) -> Result<Vec<Setting>, ConfigError> {
    let env: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(settings.len());
    for mut setting in settings {
        let value = expand_value(&setting, &seen, &env)?;
        setting.value = value;
        let canonical = options::find(&setting.name).map_or(setting.name.as_str(), |s| s.name);
        if canonical == "set-placeholder" {
            if let Some((name, value)) = setting.value.split_once('=') {
                seen.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        } else {
            seen.insert(canonical.to_owned(), setting.value.clone());
            seen.insert(setting.name.clone(), setting.value.clone());
        }
        out.push(setting);
    }
    Ok(out)
}

fn expand_value(
    setting: &Setting,
    seen: &HashMap<String, String>,
    env: &HashMap<&str, &str>,
) -> Result<String, ConfigError> {
    let text = setting.value.as_str();
    // `--logformat`'s own `%(uri)`… are not placeholders: as uWSGI, a name that is no
    // setting stays for the request log.
    let log_format = options::find(&setting.name).is_some_and(|s| s.name == "logformat");
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (c, chars.peek().map(|(_, n)| *n)) {
            ('%', Some('(')) | ('$', Some('(')) => {
                let body = &text[i + 2..];
                let Some(end) = body.find(')') else {
                    out.push(c);
                    continue;
                };
                let name = &body[..end];
                if c == '%' {
                    let defined = seen.contains_key(name)
                        || env.contains_key(
                            format!("UWSGI_{}", name.to_ascii_uppercase().replace('-', "_"))
                                .as_str(),
                        );
                    if log_format && !defined {
                        out.push_str("%(");
                        out.push_str(name);
                        out.push(')');
                        for _ in 0..name.chars().count() + 2 {
                            chars.next();
                        }
                        continue;
                    }
                    let value = seen
                        .get(name)
                        .map(String::as_str)
                        .or_else(|| {
                            env.get(
                                format!("UWSGI_{}", name.to_ascii_uppercase().replace('-', "_"))
                                    .as_str(),
                            )
                            .copied()
                        })
                        .ok_or_else(|| ConfigError::UndefinedPlaceholder {
                            name: name.to_owned(),
                            origin: setting.origin.clone(),
                        })?;
                    out.push_str(value);
                } else {
                    let value = env
                        .get(name)
                        .ok_or_else(|| ConfigError::UndefinedEnvironment {
                            var: name.to_owned(),
                            origin: setting.origin.clone(),
                        })?;
                    out.push_str(value);
                }
                // Skip `(name)`.
                for _ in 0..name.chars().count() + 2 {
                    chars.next();
                }
            }
            ('%', Some(magic)) if setting.file.is_some() => {
                chars.next();
                out.push_str(&magic_variable(magic, setting)?);
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

impl ServerConfig {
    /// uWSGI's magic table as the embedded Python sees it (`uwsgi.magic_table`): `v`
    /// (start directory), `h` (host name), `t`/`T` (start time in seconds and
    /// microseconds), `V` (version), `k` (CPUs), `u`/`g` and `U`/`G` (user and group,
    /// ids and names), the escapes `%`, `(` and `[`, and, when settings came from an ini file, what
    /// uWSGI derives from the last file it read (`o` as given, `b` the binary, `p` the
    /// absolute path, `s` its name, `d` its directory with a trailing slash, `c` that
    /// directory's name, `e`/`n` the extension and the name without it, `i` its inode,
    /// `j` its path's hash, `0`…`9` the components of `d`) and the same of the first
    /// file in capitals (`O`, `P`, `S`, `D`, `C`, `E`, `N`, `I`, `J`). Empty values are left out, as uWSGI's
    /// table leaves them out of the Python dict.
    pub fn magic_table(&self) -> Vec<(char, String)> {
        let mut table = process_magic();
        if let Some(last) = self.config_files.last() {
            if let Some(first) = self.config_files.first() {
                for (key, value) in file_magic(first) {
                    if let Some(upper) = key.is_ascii_lowercase().then(|| key.to_ascii_uppercase())
                    {
                        table.push((upper, value));
                    }
                }
            }
            table.extend(file_magic(last));
        } else {
            // `b` comes with the file keys in uWSGI's table.
            table.retain(|(key, _)| *key != 'b');
        }
        table.retain(|(_, value)| !value.is_empty());
        table
    }
}

/// The magic variables that do not depend on a config file: `v` (start directory), `h`
/// (host name), `t`/`T` (start time in seconds and microseconds), `V` (version), `k`
/// (CPUs), `u`/`g` and `U`/`G` (user and group, ids and names), `b` (the binary) and the
/// escapes `%`, `(` and `[` (ESC, for colours in log formats).
fn process_magic() -> Vec<(char, String)> {
    let mut table = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        table.push(('v', cwd.display().to_string()));
    }
    table.push(('h', crate::hostname()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    table.push(('t', now.as_secs().to_string()));
    table.push(('T', now.as_micros().to_string()));
    table.push(('V', env!("CARGO_PKG_VERSION").to_owned()));
    table.push((
        'k',
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .to_string(),
    ));
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    table.push(('u', uid.to_string()));
    table.push(('g', gid.to_string()));
    table.push(('U', account_name("/etc/passwd", uid).unwrap_or_default()));
    table.push(('G', account_name("/etc/group", gid).unwrap_or_default()));
    if let Ok(binary) = std::env::current_exe() {
        table.push(('b', binary.display().to_string()));
    }
    table.push(('%', "%".to_owned()));
    table.push(('(', "%(".to_owned()));
    table.push(('[', "\x1b".to_owned()));
    table
}

/// The name of user or group `id` in `/etc/passwd` or `/etc/group` (`name:x:id:…`), as
/// uWSGI's `%U`/`%G` (it asks getpwuid/getgrgid, which read the same files here).
fn account_name(file: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let id = id.to_string();
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == id).then(|| name.to_owned())
    })
}

/// uWSGI's `%j`: the djb33x hash of the config file's absolute path, its four bytes in
/// memory order as upper-case hex. Each byte enters the hash as a C `char` (signed on
/// x86, unsigned on ARM), as in uWSGI's `djb33x_hash`, so the value matches uWSGI's
/// on the same machine.
fn path_hash(path: &[u8]) -> String {
    let hash = path.iter().fold(5381u32, |hash, &byte| {
        // The C `char`, widened to int and then to the hash's unsigned width.
        let widened = i32::from(byte as std::ffi::c_char) as u32;
        (hash << 5).wrapping_add(hash) ^ widened
    });
    hash.to_ne_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The magic variables uWSGI derives from one config file (`config_magic_table_fill`).
fn file_magic(file: &Path) -> Vec<(char, String)> {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let text = |p: Option<&std::ffi::OsStr>| {
        p.map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let dir = absolute.parent().unwrap_or(Path::new("/"));
    let mut dir_text = dir.display().to_string();
    if !dir_text.ends_with('/') {
        dir_text.push('/');
    }
    let mut table = vec![
        ('o', file.display().to_string()),
        ('p', absolute.display().to_string()),
        ('s', text(absolute.file_name())),
        ('d', dir_text),
        ('c', text(dir.file_name())),
        ('e', text(absolute.extension())),
        ('n', text(absolute.file_stem())),
    ];
    if let Ok(meta) = std::fs::symlink_metadata(&absolute) {
        table.push(('i', std::os::unix::fs::MetadataExt::ino(&meta).to_string()));
    }
    table.push(('j', path_hash(absolute.as_os_str().as_encoded_bytes())));
    let components = dir.components().filter_map(|part| match part {
        std::path::Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
        _ => None,
    });
    table.extend(('0'..='9').zip(components));
    table
}

/// `%x` in a value read from `setting`'s file: the same keys as `uwsgi.magic_table`,
/// with the file-derived ones taken from that file; `%0`…`%9` past the directory's depth
/// are empty, as in uWSGI. A letter uWSGI does not define is an error.
fn magic_variable(magic: char, setting: &Setting) -> Result<String, ConfigError> {
    let file = setting.file.as_deref().unwrap_or(Path::new(""));
    let found = file_magic(file)
        .into_iter()
        .chain(process_magic())
        .find(|(key, _)| *key == magic);
    match found {
        Some((_, value)) => Ok(value),
        None if magic.is_ascii_digit() => Ok(String::new()),
        None => Err(ConfigError::BadValue {
            name: setting.name.clone(),
            value: setting.value.clone(),
            reason: format!(
                "magic variable %{magic} is not supported (write %% for a percent sign)"
            ),
            origin: setting.origin.clone(),
        }),
    }
}

#[cfg(test)]
mod tests;
